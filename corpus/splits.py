"""Deterministic train / validation / test splits of a user corpus by song id.

A song's split depends only on its id: sha1(id) is read as a number in [0, 1) and placed on the
cumulative fractions. So adding or removing songs never moves another song between splits, and two
machines agree without sharing a file. (The procedural generator does not need this: it renders its
validation sets with other seeds into separate folders.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from corpus.audio_io import atomic_write_json
from corpus.reader import find_song_folders

DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.9, "validation": 0.05, "test": 0.05}


def _check_fractions(fractions: Mapping[str, float]) -> None:
    if not fractions:
        raise ValueError("no splits given")
    if any(value < 0 for value in fractions.values()):
        raise ValueError(f"split fractions must not be negative: {dict(fractions)}")
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"split fractions must sum to 1, not {total:g}: {dict(fractions)}")


def hash_position(song_id: str) -> float:
    """A stable number in [0, 1) for ``song_id`` (the first 8 bytes of its sha1)."""
    digest = hashlib.sha1(song_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(song_id: str, fractions: Mapping[str, float] = DEFAULT_FRACTIONS) -> str:
    """The split ``song_id`` belongs to; splits take consecutive ranges in the order given."""
    _check_fractions(fractions)
    position = hash_position(song_id)
    cumulative = 0.0
    last_nonempty = None
    for name, fraction in fractions.items():
        if fraction <= 0:
            continue
        last_nonempty = name
        cumulative += fraction
        if position < cumulative:
            return name
    return last_nonempty  # only when rounding leaves the sum a hair below the position


def assign_splits(ids: Iterable[str], fractions: Mapping[str, float] = DEFAULT_FRACTIONS
                  ) -> dict[str, list[str]]:
    """``{split: sorted ids}`` with every split present, even when empty; duplicate ids count once."""
    _check_fractions(fractions)
    splits: dict[str, list[str]] = {name: [] for name in fractions}
    for song_id in sorted(set(ids)):
        splits[split_of(song_id, fractions)].append(song_id)
    return splits


def load_splits(path: str | Path) -> dict[str, list[str]]:
    """Read a file written by ``split``; checks it is ``{split: [ids]}`` with no id in two splits."""
    path = Path(path)
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read splits ({error})") from error
    if not isinstance(loaded, dict) or not all(
        isinstance(ids, list) and all(isinstance(song_id, str) for song_id in ids) for ids in loaded.values()
    ):
        raise ValueError(f"{path}: expected {{split: [song ids]}}")
    owner: dict[str, str] = {}
    for name, ids in loaded.items():
        for song_id in ids:
            if song_id in owner:  # a song in two splits would leak test data into training
                raise ValueError(f"{path}: song {song_id!r} is in both {owner[song_id]!r} and {name!r}")
            owner[song_id] = name
    return loaded


def add_split_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``split DIR [--out FILE.json]``."""
    parser.add_argument("dir", type=Path, help="a folder of song folders")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the JSON here (atomically); default: print it")
    for name, fraction in DEFAULT_FRACTIONS.items():
        parser.add_argument(f"--{name}", type=float, default=fraction,
                            help=f"fraction of songs in {name} (default %(default)s)")


def run_split(args: argparse.Namespace) -> int:
    """Assign the song folders under ``args.dir`` to splits; 1 if there are none or bad fractions."""
    fractions = {name: getattr(args, name) for name in DEFAULT_FRACTIONS}
    try:
        _check_fractions(fractions)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    folders = find_song_folders(args.dir)
    if not folders:
        print(f"error: {args.dir}: no song folders", file=sys.stderr)
        return 1
    ids = [folder.name for folder in folders]
    if len(set(ids)) < len(ids):
        duplicates = sorted({song_id for song_id in ids if ids.count(song_id) > 1})
        print(f"warning: song ids used by several folders count once: {', '.join(duplicates)}",
              file=sys.stderr)
    splits = assign_splits(ids, fractions)
    if args.out is None:
        print(json.dumps(splits, indent=1, ensure_ascii=False))
    else:
        atomic_write_json(args.out, splits)
        counts = ", ".join(f"{name} {len(members)}" for name, members in splits.items())
        print(f"{args.out}: {counts}", file=sys.stderr)
    return 0
