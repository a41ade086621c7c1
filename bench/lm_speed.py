"""Generation speed of the song LM on this CPU: audio tokens per second with the KV cache (the real
sampler, ``lm.generate.full_song``) and without it (a full forward over the whole sequence for every new token,
the cost the cache saves). ``python -m bench.lm_speed [--checkpoint checkpoints/lm-tiny] [--seconds 10]``."""

from __future__ import annotations

import argparse
import time

import torch

from bench.common import machine, save
from lm.generate import GenerationOptions, SectionRequest, full_song
from lm.model import SongLM

LYRICS = ["hold me close and tell me why", "the night is long and so am i"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default="checkpoints/lm-tiny")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--uncached-tokens", type=int, default=500)
    args = parser.parse_args(argv)
    lm = SongLM.from_pretrained(args.checkpoint)
    frames = int(args.seconds * 25)
    sections = [SectionRequest("verse", lm.lyric_pieces(LYRICS), frames, False)]
    options = GenerationOptions(temperature=1.0, top_k=50, seed=0)
    start = time.perf_counter()
    song = full_song(lm.model, lm.vocab, lm.style_pieces("upbeat pop, female vocal, 120 bpm, piano"), sections, options)
    cached = time.perf_counter() - start
    assert song.sections[0].vocal.shape[0] == frames

    ids = torch.tensor([[lm.vocab.bos_id, *lm.style_ids("upbeat pop")]])
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(args.uncached_tokens):
            logits = lm.model(input_ids=ids, use_cache=False).logits[0, -1]
            ids = torch.cat([ids, logits.argmax().view(1, 1)], dim=1)
    uncached = time.perf_counter() - start
    result = {"benchmark": "lm_speed", "machine": machine(), "checkpoint": args.checkpoint,
              "threads": torch.get_num_threads(),
              "cached_audio_tokens_per_second": round(2 * frames / cached, 1),
              "cached_seconds_for_song": round(cached, 2), "song_seconds": args.seconds,
              "uncached_tokens_per_second": round(args.uncached_tokens / uncached, 1)}
    table = (f"# Song LM generation speed ({result['machine']['date']}, {torch.get_num_threads()} threads)\n\n"
             "| mode | tokens/s |\n|---|---|\n"
             f"| KV cache (`lm.generate`, {args.seconds:.0f} s song = {2 * frames} audio tokens) | "
             f"{result['cached_audio_tokens_per_second']} |\n"
             f"| no cache (full forward per token, first {args.uncached_tokens} tokens) | "
             f"{result['uncached_tokens_per_second']} |\n\n"
             f"A {args.seconds:.0f} s song's tokens took {cached:.1f} s with the cache.\n")
    save("lm_speed", result, table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
