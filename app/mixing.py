"""Mix levels: how loud the vocal and the accompaniment are in a song's mix (a stem mixer, peers.md §6 #7).

The stems stay as decoded; only the mix changes:

    mix = gain(vocals_db) · vocals + gain(accompaniment_db) · accompaniment,   gain(dB) = 10^(dB / 20)

with a muted track at gain 0. A song's levels live in its manifest as ``"mix": {"vocals_db": 0.0,
"accompaniment_db": 0.0}`` (``null`` for a muted track; a manifest without ``"mix"`` is at 0 dB each), so
``redecode``, ``continue`` and ``resample`` keep them, and ``remix`` (``app.pipeline``, the CLI's ``remix``
command, the UI's "Mix levels") changes them from the saved stems without running a model.

This module depends on numpy only, so the output folder's writer (``app.manifest.save``) can use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

LEVEL_RANGE_DB = (-30.0, 12.0)  # −30 dB is nearly gone under the other track; +12 dB is as far as a mix needs
LEVEL_KEYS = ("vocals_db", "accompaniment_db")
UNITY_LEVELS = {"vocals_db": 0.0, "accompaniment_db": 0.0}


class LevelError(ValueError):
    """A mix level that is not a number of dB in ``LEVEL_RANGE_DB`` (or ``None`` for muted); ``field`` names it
    (``"vocals_db"`` or ``"accompaniment_db"``) and ``str(error)`` starts with it."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


def check_levels(levels: Mapping | None) -> dict:
    """``levels`` as a checked ``{"vocals_db": float | None, "accompaniment_db": float | None}``; ``None`` (the
    mapping) means both at 0 dB. Raises ``LevelError`` for unknown keys, non-numbers and values out of range."""
    if levels is None:
        return dict(UNITY_LEVELS)
    if not isinstance(levels, Mapping):
        raise LevelError("mix", f"expected {{'vocals_db': …, 'accompaniment_db': …}}, got {type(levels).__name__}")
    unknown = sorted(set(levels) - set(LEVEL_KEYS))
    if unknown:
        raise LevelError("mix", f"unknown level {unknown[0]!r}; known: {', '.join(LEVEL_KEYS)}")
    checked = {}
    low, high = LEVEL_RANGE_DB
    for key in LEVEL_KEYS:
        value = levels.get(key, 0.0)
        if value is None:  # muted
            checked[key] = None
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise LevelError(key, f"must be a number of dB (or null for muted), got {value!r}")
        if not low <= value <= high:
            raise LevelError(key, f"{value:g} dB is out of range; choose {low:g} to {high:g} dB, or mute the track")
        checked[key] = float(value)
    return checked


def song_levels(manifest: Mapping) -> dict:
    """A manifest's mix levels, checked (0 dB each for a manifest written before levels were kept)."""
    return check_levels(manifest.get("mix"))


def gain(level_db: float | None) -> float:
    """The linear gain of a level in dB; 0 for a muted track (``None``)."""
    return 0.0 if level_db is None else float(10.0 ** (level_db / 20.0))


def mix_stems(vocals: np.ndarray, accompaniment: np.ndarray, levels: Mapping | None = None) -> np.ndarray:
    """The float32 mix of two equally long stems at ``levels`` (``check_levels``; default 0 dB each)."""
    levels = check_levels(levels)
    vocals, accompaniment = np.asarray(vocals), np.asarray(accompaniment)
    if vocals.shape != accompaniment.shape:
        raise ValueError(f"the stems differ in length: {vocals.shape} and {accompaniment.shape}")
    mix = (gain(levels["vocals_db"]) * vocals.astype(np.float64)
           + gain(levels["accompaniment_db"]) * accompaniment.astype(np.float64))
    return mix.astype(np.float32)


def describe(levels: Mapping) -> str:
    """One line for people: "vocals −3.0 dB, accompaniment muted"."""
    def level(value):
        return "muted" if value is None else f"{value:+.1f} dB".replace("-", "−")

    return f"vocals {level(levels['vocals_db'])}, accompaniment {level(levels['accompaniment_db'])}"
