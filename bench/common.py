"""Small helpers for benchmarks: machine facts and atomic result files (JSON + a markdown table)."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from corpus.audio_io import atomic_write_json, atomic_write_text

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, check=False).stdout.strip()
    except OSError:
        commit = ""
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "commit": commit,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def save(name: str, result: dict, table: str) -> None:
    """Write ``bench/results/<name>.json`` and ``<name>.md`` (the table a person reads)."""
    atomic_write_json(RESULTS / f"{name}.json", result)
    atomic_write_text(RESULTS / f"{name}.md", table.rstrip() + "\n")


def bootstrap_interval(values, n_resamples: int = 2000, seed: int = 0) -> list[float]:
    """95% interval of the mean of per-song ``values``, resampling songs."""
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n_resamples, len(values)))].mean(1)
    return [round(float(np.percentile(means, 2.5)), 4), round(float(np.percentile(means, 97.5)), 4)]
