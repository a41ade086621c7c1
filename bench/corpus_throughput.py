"""Corpus generator throughput: render N songs (default 20) on one core and on all cores, report audio
seconds per wall second. ``python -m bench.corpus_throughput [--n 20]``; results in bench/results/."""

from __future__ import annotations

import argparse
import os
import tempfile

from bench.common import machine, save
from corpus.song import SongOptions
from corpus.synth import synthesize


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--seed", type=int, default=90_001)
    args = parser.parse_args(argv)
    runs = {}
    for workers in sorted({1, os.cpu_count() or 1}):
        with tempfile.TemporaryDirectory(prefix="bench-corpus-") as out:
            summary = synthesize(out, args.n, args.seed, workers, SongOptions(), progress=False)
        if summary["failed"]:
            raise SystemExit(f"songs failed: {sorted(summary['failed'])}")
        runs[workers] = summary
    one = runs[1]
    result = {"benchmark": "corpus_throughput", "machine": machine(), "songs": args.n, "sample_rate": 24_000,
              "runs": {str(k): {key: v[key] for key in ("audio_seconds", "wall_seconds", "realtime_factor",
                                                           "workers")} for k, v in runs.items()},
              "realtime_per_core": one["realtime_factor"], "required_per_core": 10.0}
    rows = "\n".join(f"| {w} | {v['audio_seconds']:.0f} | {v['wall_seconds']:.1f} | {v['realtime_factor']:.1f}x |"
                     for w, v in runs.items())
    table = (f"# Corpus generator throughput ({result['machine']['date']}, {result['machine']['cpu']})\n\n"
             f"{args.n} songs of 10-30 s at 24 kHz, seed {args.seed}; six FLAC files + labels per song.\n\n"
             "| workers | audio s | wall s | real time |\n|---|---|---|---|\n" + rows + "\n\n"
             f"Per core: {one['realtime_factor']:.1f}x real time (required: at least 10x).\n")
    save("corpus_throughput", result, table)
    print(table)
    return 0 if one["realtime_factor"] >= 10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
