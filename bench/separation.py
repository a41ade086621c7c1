"""Separation quality of the tokenizer's own stage-2 mask head on whole validation songs: SI-SDR of the
vocal estimate and of the unprocessed mix against the true vocal stem, per song and on average.

``python -m bench.separation [--checkpoint checkpoints/duotok-tiny] [--songs data/corpus/validation]``;
results in bench/results/separation.{json,md}."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from bench.common import machine, save
from corpus.reader import find_song_folders, read_song
from tokenizer import DuoTok
from tokenizer.eval import si_sdr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default="checkpoints/duotok-tiny")
    parser.add_argument("--songs", type=Path, default=Path("data/corpus/validation"))
    args = parser.parse_args(argv)
    tok = DuoTok.from_pretrained(args.checkpoint)
    rows = []
    for folder in find_song_folders(args.songs):
        song = read_song(folder)
        vocals, _ = tok.separate(song.mix)
        reference = torch.from_numpy(song.vocals)
        estimate_db = float(si_sdr(torch.from_numpy(vocals), reference))
        mix_db = float(si_sdr(torch.from_numpy(song.mix), reference))
        ratio = json.loads((folder / "meta.json").read_text())["mix_gains_db"]["vocal_to_accompaniment"]
        rows.append({"id": song.id, "vocal_to_accompaniment_db": ratio, "mix_si_sdr_db": round(mix_db, 2),
                     "estimate_si_sdr_db": round(estimate_db, 2), "improvement_db": round(estimate_db - mix_db, 2)})
    improvements = np.array([r["improvement_db"] for r in rows])
    result = {"benchmark": "separation", "machine": machine(), "checkpoint": args.checkpoint,
              "songs": len(rows), "mean_improvement_db": round(float(improvements.mean()), 2),
              "median_improvement_db": round(float(np.median(improvements)), 2),
              "share_improved": round(float((improvements > 0).mean()), 3),
              "mean_estimate_si_sdr_db": round(float(np.mean([r["estimate_si_sdr_db"] for r in rows])), 2),
              "per_song": rows}
    table = (f"# Vocal separation by the Duo-Tok stage-2 mask head ({result['machine']['date']})\n\n"
             f"{len(rows)} whole songs from {args.songs}, checkpoint {args.checkpoint}.\n\n"
             "| measure | value |\n|---|---|\n"
             f"| mean SI-SDR improvement over the mix | {result['mean_improvement_db']:+.2f} dB |\n"
             f"| median improvement | {result['median_improvement_db']:+.2f} dB |\n"
             f"| songs improved | {result['share_improved']:.0%} |\n"
             f"| mean vocal-estimate SI-SDR | {result['mean_estimate_si_sdr_db']:.2f} dB |\n")
    save("separation", result, table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
