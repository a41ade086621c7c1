"""What phone guidance does to the sung melody: pitch statistics of generated vocal stems at several weights.

Phone guidance (``lm.phone_prior``) reweights the LM's vocal codes towards the cued phone. A vocal code also
carries the sung note, so the weight could flatten or scatter the melody. No judge here scores a melody's worth;
this reads what can be counted from the decoded vocal stem's F0 (Praat, 10 ms frames, as ``bench.vocoder_quality``)
inside the sung sections, and puts the corpus's own vocals next to it:

- **voiced**: share of frames with an F0 (singing, not rests or noise);
- **range**: the 10th–90th percentile span of the voiced F0, in semitones;
- **note changes per second**: how often the F0, rounded to semitones, moves to another note (held over at least
  3 frames, so vibrato and tracker jitter do not count);
- **jumps**: share of voiced frame pairs whose F0 moves more than 3 semitones in 10 ms (glitches, not leaps: the
  corpus's melodies move between notes in 30 ms glides).

Each weight generates the same prompts (``bench.app_lyrics.PROMPTS``) with the same seeds and the app's other
defaults.

``python -m bench.vocal_melody [--weights 0 1 1.5 2] [--seed 0]`` -> bench/results/<name>.{json,md}
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench.common import machine, save

HOP_SECONDS = 0.01
MIN_NOTE_FRAMES = 3
JUMP_SEMITONES = 3.0


def semitones(f0: np.ndarray) -> np.ndarray:
    return 69 + 12 * np.log2(f0 / 440.0)


def melody_stats(f0: np.ndarray, spans: list[tuple[float, float]]) -> dict:
    """Counts over the F0 frames (Hz, 0 = unvoiced) inside ``spans`` (seconds): frames, voiced frames, the voiced
    pitches (semitones), note changes and jumps; ``summarise`` turns pooled counts into the table's measures."""
    frames = np.arange(len(f0)) * HOP_SECONDS
    inside = np.zeros(len(f0), bool)
    for start, end in spans:
        inside |= (frames >= start) & (frames < end)
    changes = jumps = pairs = 0
    pitches = []
    for start, end in spans:
        segment = f0[(frames >= start) & (frames < end)]
        voiced = segment > 0
        pitch = np.where(voiced, semitones(np.where(voiced, segment, 440.0)), np.nan)
        pitches.append(pitch[voiced])
        both = voiced[1:] & voiced[:-1]
        pairs += int(both.sum())
        jumps += int((np.abs(np.diff(pitch))[both] > JUMP_SEMITONES).sum())
        note, held, current, candidate = np.round(pitch), 0, None, None
        for value in note:  # a note counts once it has lasted MIN_NOTE_FRAMES voiced frames
            if np.isnan(value):
                held = 0
                continue
            held = held + 1 if held and value == candidate else 1
            candidate = value
            if held == MIN_NOTE_FRAMES and value != current:
                changes += current is not None
                current = value
    return {"frames": int(inside.sum()), "voiced": int((f0[inside] > 0).sum()),
            "pitches": np.concatenate(pitches) if pitches else np.zeros(0), "changes": changes, "jumps": jumps,
            "pairs": pairs, "seconds": float(inside.sum() * HOP_SECONDS)}


def summarise(parts: list[dict]) -> dict:
    pitches = np.concatenate([p["pitches"] for p in parts])
    frames, seconds = sum(p["frames"] for p in parts), sum(p["seconds"] for p in parts)
    low, high = np.percentile(pitches, [10, 90]) if len(pitches) else (0.0, 0.0)
    return {"songs": len(parts), "sung_seconds": round(seconds, 1),
            "voiced": round(sum(p["voiced"] for p in parts) / max(frames, 1), 4),
            "range_semitones": round(float(high - low), 2),
            "note_changes_per_second": round(sum(p["changes"] for p in parts) / max(seconds, 1e-9), 3),
            "jumps": round(sum(p["jumps"] for p in parts) / max(sum(p["pairs"] for p in parts), 1), 4)}


def generated_parts(generator, weight: float, seed: int, seconds: float, prompts) -> list[dict]:
    from bench.vocoder_quality import f0_track

    parts = []
    for index, (style, lyrics) in enumerate(prompts):
        result = generator.generate(lyrics, style, duration=seconds, seed=seed + index,
                                    options={"phone_guidance": weight})
        spans = [(s["start_seconds"], s["end_seconds"]) for s in result.manifest["sections"] if not s["instrumental"]]
        parts.append(melody_stats(f0_track(result.vocals, result.sample_rate), spans))
    return parts


def corpus_parts(folder: Path, n: int) -> list[dict]:
    from app.lyric_check import sections_from_meta
    from bench.vocoder_quality import f0_track
    from corpus.audio_io import read_audio
    from corpus.reader import find_song_folders

    parts = []
    for song_folder in find_song_folders(folder)[:n]:
        meta = json.loads((song_folder / "meta.json").read_text())
        samples, rate = read_audio(song_folder / "vocals.flac")
        spans = [(s["start_seconds"], s["end_seconds"]) for s in sections_from_meta(meta) if s["lines"]]
        parts.append(melody_stats(f0_track(samples, rate), spans))
    return parts


def table(result: dict) -> str:
    lines = [f"# Sung melody at several phone-guidance weights ({result['machine']['date']})", "",
             f"Vocal stems of the {result['prompts']} `bench.app_lyrics` prompts, {result['seconds']:g} s songs, "
             f"seeds {result['seed']}…; F0 by Praat every 10 ms inside the sung sections. Corpus: the first "
             f"{result['corpus']['songs']} songs of `{result['corpus_folder']}` (ground-truth vocals).", "",
             "| singing | sung s | voiced | range (semitones, p10–p90) | note changes / s | jumps > 3 st in 10 ms |",
             "|---|---|---|---|---|---|"]
    rows = [(f"guidance {w}", s) for w, s in result["weights"].items()] + [("corpus vocals", result["corpus"])]
    for label, s in rows:
        lines.append(f"| {label} | {s['sung_seconds']:g} | {s['voiced']:.1%} | {s['range_semitones']:.1f} | "
                     f"{s['note_changes_per_second']:.2f} | {s['jumps']:.2%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 1.0, 1.5, 2.0])
    parser.add_argument("--seed", type=int, default=0, help="prompt i is generated with seed SEED + i")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--checkpoints", help="checkpoint root (default: the shipped checkpoints/)")
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus/validation"))
    parser.add_argument("--n-corpus", type=int, default=10)
    parser.add_argument("--name", default="vocal_melody", help="results file name under bench/results")
    args = parser.parse_args(argv)

    from app.pipeline import SongGenerator
    from bench.app_lyrics import PROMPTS

    started = time.time()
    generator = SongGenerator() if args.checkpoints is None else SongGenerator(args.checkpoints)
    weights = {}
    for weight in args.weights:
        weights[f"{weight:g}"] = summarise(generated_parts(generator, weight, args.seed, args.seconds, PROMPTS))
        print(f"[vocal_melody] guidance {weight:g}: {weights[f'{weight:g}']}", flush=True)
    result = {"benchmark": "vocal_melody", "machine": machine(), "checkpoints": args.checkpoints or "checkpoints",
              "prompts": len(PROMPTS), "seconds": args.seconds, "seed": args.seed, "weights": weights,
              "corpus_folder": str(args.corpus), "corpus": summarise(corpus_parts(args.corpus, args.n_corpus)),
              "wall_seconds": round(time.time() - started, 1)}
    save(args.name, result, table(result))
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
