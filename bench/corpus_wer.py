"""Intelligibility of the corpus's own singing: Whisper tiny.en transcribes each song's vocal stem and the
word error rate against its lyrics is computed per voice and overall (errors summed over songs). It is the
ceiling every later stage (tokenizer, decoder, LM) is measured against.

``python -m bench.corpus_wer [--songs DIR] [--n 40]``: without --songs it renders N songs of the held-out
validation seed first. Results in bench/results/corpus_wer.{json,md}."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bench.asr import transcribe, word_errors
from bench.common import machine, save
from corpus.audio_io import read_audio
from corpus.reader import find_song_folders
from corpus.synth import synthesize

VALIDATION_SEED = 2  # the README's held-out validation split uses this corpus seed


def score_folder(songs: Path, limit: int | None = None) -> dict:
    per_voice: dict[str, list[int]] = {}
    rows = []
    for folder in find_song_folders(songs)[:limit]:
        meta = json.loads((folder / "meta.json").read_text())
        samples, rate = read_audio(folder / "vocals.flac")
        lyrics = (folder / "lyrics.txt").read_text()
        hypothesis = transcribe(samples, rate)
        errors, words = word_errors(lyrics, hypothesis)
        voice = meta["voice"]["name"]
        totals = per_voice.setdefault(voice, [0, 0])
        totals[0] += errors
        totals[1] += words
        rows.append({"id": meta["id"], "voice": voice, "errors": errors, "words": words,
                     "transcript": hypothesis.strip()})
    all_errors = sum(v[0] for v in per_voice.values())
    all_words = sum(v[1] for v in per_voice.values())
    return {"songs": len(rows), "words": all_words, "wer": round(all_errors / max(all_words, 1), 4),
            "wer_by_voice": {k: round(e / max(w, 1), 4) for k, (e, w) in sorted(per_voice.items())},
            "words_by_voice": {k: w for k, (_, w) in sorted(per_voice.items())}, "per_song": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--songs", type=Path, help="folder of song folders (default: render validation songs)")
    parser.add_argument("--n", type=int, default=40)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-wer-") as tmp:
        songs = args.songs
        if songs is None:
            songs = Path(tmp)
            synthesize(songs, args.n, VALIDATION_SEED, workers=2, progress=False)
        result = {"benchmark": "corpus_wer", "machine": machine(), "asr": "whisper tiny.en (faster-whisper, int8)",
                  "source": str(args.songs or f"rendered: seed {VALIDATION_SEED}, {args.n} songs"),
                  **score_folder(songs, args.n)}
    voices = "\n".join(f"| {v} | {result['words_by_voice'][v]} | {w:.3f} |" for v, w in result["wer_by_voice"].items())
    table = (f"# Whisper WER on the corpus's own vocal stems ({result['machine']['date']})\n\n"
             f"{result['songs']} songs ({result['source']}), {result['words']} lyric words, "
             f"{result['asr']}, lyrics normalised (lower case, no punctuation or tags).\n\n"
             "| voice | words | WER |\n|---|---|---|\n" + voices + f"\n| **all** | {result['words']} | "
             f"**{result['wer']:.3f}** |\n")
    save("corpus_wer", result, table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
