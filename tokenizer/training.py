"""Pieces shared by the tokenizer's training entries (encoder stages and vocoder): the registered step
counter, the learning-rate schedule, and resuming from the newest accelerate state."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

from accelerate import Accelerator


class TrainProgress:
    """The step counter, saved with accelerate's state so a resumed run continues where it stopped."""

    def __init__(self):
        self.step = 0

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])


def warmup_cosine(warmup: int, steps: int, floor: float = 0.1) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up, then cosine decay to ``floor``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def resume_latest(accelerator: Accelerator, state_dir: Path) -> Path | None:
    """Load the newest ``state_dir/checkpoints/checkpoint_N`` if there is one; returns its path."""
    checkpoints = sorted((Path(state_dir) / "checkpoints").glob("checkpoint_*"),
                         key=lambda p: int(p.name.rsplit("_", 1)[1]))
    if not checkpoints:
        return None
    accelerator.load_state(str(checkpoints[-1]))
    # automatic naming would otherwise try to reuse a name that exists (libraries.md §2.4)
    accelerator.project_configuration.iteration = int(checkpoints[-1].name.rsplit("_", 1)[1]) + 1
    return checkpoints[-1]


def log_step(accelerator: Accelerator, log_path: Path, step: int, started: float, lr: float,
             losses: dict) -> None:
    """Print one JSON line of scalar losses and append it to ``log.jsonl`` (main process only)."""
    record = {"step": step, "seconds": round(time.time() - started, 1), "lr": lr,
              **{k: round(float(v.detach()), 4) for k, v in losses.items() if v.dim() == 0}}
    accelerator.print(json.dumps(record))
    if accelerator.is_main_process:
        with open(log_path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
