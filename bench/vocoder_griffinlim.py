"""Vocoder against Griffin-Lim on true 50 Hz mels: multi-scale mel L1 (duotok.md §5.2) per stem on fixed 4 s
crops of the validation split (``tokenizer.vocoder_train.evaluate_vocoder``), plus decode speed on 10 s.

    python -m bench.vocoder_griffinlim [--checkpoint runs/duotok-tiny/vocoder/final] [--songs 16]

Without ``--checkpoint`` only the Griffin-Lim baseline is meaningful (the vocoder column is an untrained
network). Quality bar of the issue (stage 4): vocals ≤ 0.42, accompaniment ≤ 0.60, and below Griffin-Lim.
Results in bench/results/vocoder_griffinlim.{json,md}."""

from __future__ import annotations

import argparse
import time

import torch

from bench.common import machine, save
from tokenizer.vocoder import Vocoder, get_vocoder_config, griffin_lim, load_vocoder
from tokenizer.vocoder_train import evaluate_vocoder

BAR = {"vocals": 0.42, "accompaniment": 0.60}


@torch.inference_mode()
def decode_seconds(vocoder: Vocoder, seconds: float = 10.0, repeats: int = 3) -> dict[str, float]:
    """Best-of-``repeats`` wall time to decode ``seconds`` of audio, vocoder and Griffin-Lim (32 iterations)."""
    config = vocoder.config
    mel = vocoder.latent(0.1 * torch.randn(1, int(seconds * config.sample_rate)))
    timings = {}
    for name, decode in (("vocoder", vocoder), ("griffin_lim", lambda m: griffin_lim(m, config))):
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            decode(mel)
            best = min(best, time.perf_counter() - started)
        timings[name] = round(best / seconds, 5)  # real-time factor: wall seconds per audio second
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="vocoder folder (default: an untrained tiny vocoder)")
    parser.add_argument("--data", default="data/corpus/validation")
    parser.add_argument("--songs", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--name", default="vocoder_griffinlim", help="result file name under bench/results")
    args = parser.parse_args(argv)
    vocoder = load_vocoder(args.checkpoint) if args.checkpoint else Vocoder(get_vocoder_config("tiny")).eval()
    scores = evaluate_vocoder(vocoder, args.data, n_songs=args.songs, crop_seconds=args.seconds)
    speed = decode_seconds(vocoder)
    result = {"benchmark": "vocoder_griffinlim", "machine": machine(), "checkpoint": args.checkpoint,
              "parameters": sum(p.numel() for p in vocoder.parameters()), "data": args.data, "scores": scores,
              "realtime_factor": speed, "bar": BAR}
    rows = ["| stem | vocoder mel L1 | Griffin-Lim mel L1 | bar | passes |", "|---|---|---|---|---|"]
    for stem, bar in BAR.items():
        ours, baseline = scores[stem]["vocoder"], scores[stem]["griffin_lim"]
        rows.append(f"| {stem} | {ours:.3f} | {baseline:.3f} | ≤ {bar} | {ours <= bar and ours < baseline} |")
    table = (f"# Vocoder vs Griffin-Lim on true mels\n\n{scores['n_songs']} songs of {args.data}, "
             f"{scores['crop_seconds']:.1f} s crops; checkpoint {args.checkpoint or '(untrained)'}; "
             f"{result['parameters'] / 1e6:.2f} M params\n\n" + "\n".join(rows) +
             f"\n\nreal-time factor on 10 s: vocoder {speed['vocoder']}, Griffin-Lim {speed['griffin_lim']}\n")
    print(table)
    save(args.name, result, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
