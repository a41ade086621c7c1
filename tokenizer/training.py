"""Pieces shared by the tokenizer's training entries (encoder stages, vocoder, decoders): the accelerator set-up,
the registered step counter, the learning-rate schedule, resuming from the newest accelerate state, the step
log, and the final export."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration


def make_accelerator(stage_dir: Path, grad_accum: int = 1, mixed_precision: str = "no") -> Accelerator:
    """An accelerator that keeps its training states under ``stage_dir/state`` (automatic names, last two).

    torchrun on CPU-only machines: accelerate sets up gloo only when asked for its CPU backend; without it
    every rank believes it is the main process and they overwrite each other's checkpoints."""
    distributed_cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    return Accelerator(
        cpu=distributed_cpu, gradient_accumulation_steps=grad_accum, mixed_precision=mixed_precision,
        project_config=ProjectConfiguration(project_dir=str(Path(stage_dir) / "state"),
                                            automatic_checkpoint_naming=True, total_limit=2))


def export_final(accelerator: Accelerator, model, save: Callable, stage_dir: Path, export: str | None,
                 metadata: dict[str, str]):
    """Write ``stage_dir/final`` (fp32) and, with ``export``, the same weights in fp16 for shipping, through the
    component's own ``save(model, directory, dtype=…, metadata=…)``. Main process only; returns the model."""
    final = accelerator.unwrap_model(model).eval()
    save(final, Path(stage_dir) / "final", metadata=metadata)
    if export:
        save(final, export, dtype=torch.float16, metadata=metadata)
    accelerator.print(f"wrote {Path(stage_dir) / 'final'}" + (f" and {export}" if export else ""))
    return final


def apply_update(accelerator: Accelerator, loss: torch.Tensor, parameters, optimizer, scheduler,
                 max_grad_norm: float = 1.0) -> None:
    """Backward, clip (on the steps where accumulated gradients are applied), optimizer and schedule step."""
    accelerator.backward(loss)
    if accelerator.sync_gradients:
        accelerator.clip_grad_norm_(parameters, max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()


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
