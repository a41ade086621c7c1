"""Generate many songs in parallel: ``python -m corpus synth --n N --out DIR --seed S [--workers K]``.

Each song's seed is derived from the corpus seed and the song's index, so song i is the same whatever the
number of workers or the order they finish in, and a re-run skips the songs that are already complete
(a song folder appears only when it is whole, see ``render_song``)."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
import traceback
from pathlib import Path

import numpy as np
from tqdm import tqdm

from corpus.song import SongOptions, render_song


def song_seed(corpus_seed: int, index: int) -> int:
    return int(np.random.SeedSequence([corpus_seed, index]).generate_state(1)[0])


def song_id(corpus_seed: int, index: int) -> str:
    return f"s{corpus_seed}-{index:05d}"


def _render_one(job: tuple[int, str, str, SongOptions]) -> tuple[str, float | None, str | None]:
    seed, identifier, out_dir, options = job
    try:
        meta = render_song(seed, identifier, out_dir, options)
        return identifier, meta["duration"], None
    except Exception:  # report and keep going: one bad song must not stop a corpus run
        return identifier, None, traceback.format_exc(limit=3)


def synthesize(out_dir: str | Path, n: int, seed: int, workers: int = 1, options: SongOptions | None = None,
               progress: bool = True) -> dict:
    """Render songs 0..n-1 of corpus ``seed`` into ``out_dir``; returns a summary with the throughput."""
    options = options or SongOptions()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(song_seed(seed, i), song_id(seed, i), str(out_dir), options) for i in range(n)
            if not (out_dir / song_id(seed, i) / "meta.json").exists()]
    skipped = n - len(jobs)
    start = time.perf_counter()
    audio_seconds, failures = 0.0, {}
    if workers > 1 and len(jobs) > 1:
        # fork is not safe after fluidsynth/parselmouth have started threads in this process; spawn is.
        pool = multiprocessing.get_context("spawn").Pool(workers)
        results = pool.imap_unordered(_render_one, jobs)
    else:
        pool, results = None, map(_render_one, jobs)
    try:
        for identifier, duration, error in tqdm(results, total=len(jobs), disable=not progress, unit="song",
                                                desc="synth"):
            if error is None:
                audio_seconds += duration
            else:
                failures[identifier] = error
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    wall = time.perf_counter() - start
    return {"rendered": len(jobs) - len(failures), "skipped": skipped, "failed": failures,
            "audio_seconds": round(audio_seconds, 2), "wall_seconds": round(wall, 2),
            "realtime_factor": round(audio_seconds / wall, 2) if wall > 0 else None, "workers": workers}


def add_synth_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, required=True, help="number of songs")
    parser.add_argument("--out", required=True, help="output folder (one sub-folder per song)")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed; songs are s<seed>-<index>")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    parser.add_argument("--min-seconds", type=float, default=10.0)
    parser.add_argument("--max-seconds", type=float, default=30.0)


def run_synth(args: argparse.Namespace) -> int:
    if args.n < 1:
        print("error: --n must be at least 1", file=sys.stderr)
        return 2
    if not 4.0 <= args.min_seconds <= args.max_seconds <= 600:
        print("error: need 4 <= --min-seconds <= --max-seconds <= 600", file=sys.stderr)
        return 2
    options = SongOptions(min_seconds=args.min_seconds, max_seconds=args.max_seconds)
    summary = synthesize(args.out, args.n, args.seed, max(1, args.workers), options)
    for identifier, error in summary["failed"].items():
        print(f"FAILED {identifier}:\n{error}", file=sys.stderr)
    report = {k: v for k, v in summary.items() if k != "failed"} | {"failed": sorted(summary["failed"])}
    print(json.dumps(report))
    return 1 if summary["failed"] else 0
