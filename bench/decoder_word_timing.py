"""How much a lyric-aware vocal decoder depends on exact word timing: the true vocal tokens of held-out songs
decoded with the sung words given four ways, each judged by Whisper (line by line, as in
``bench.decoder_reconstruction``), pitch agreement and multi-scale mel L1.

Word timings (``--timings``; all but ``words`` by default):
- ``exact``: each word at the token frame the corpus says it starts in (what a token corpus gives), with its sung
  phones at theirs where the corpus has them (read by a decoder with ``phone_times``);
- ``words``: the exact word starts without the phones' times (what a phone-time decoder gets from a word-cue LM);
- ``even``: each section's cues at the LM's cue deadlines (``lm.generate.cue_deadline``), i.e. spread evenly
  over the section: the words' cues, and where the words have phones, each word's cue followed by one per phone,
  as a phone-cue LM cues them. In the app most cues are forced at these deadlines (55-58% of the word cues in the
  app_lyrics songs), so this is the app's timing without the LM singing to it: the decoder's worst case;
- ``shiftK``: every word start moved by a shift drawn from -K..K token frames (seeded), clipped and kept in order;
  no phone times;
- ``none``: no words (the tokens alone; ``DuoTok.reconstruct`` and older manifests).

Songs decode as the app decodes them: ``DuoTok.decode_mel`` (4 s windows, each with its slice of the whole
song's word context), regression estimate (steps 0), then the vocoder.

``python -m bench.decoder_word_timing [--decoder DIR] [--n 20] [--timings exact even shift3 none]
[--name decoder_word_timing]`` -> bench/results/<name>.{json,md}"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import machine, save
from bench.decoder_reconstruction import line_errors
from bench.vocoder_quality import pitch_agreement
from corpus.audio_io import read_audio
from lm.generate import cue_deadline
from tokenizer.checkpoint import from_pretrained
from tokenizer.decoder import load_decoder
from tokenizer.duotok import DuoTok
from tokenizer.tokenize_corpus import iter_records
from tokenizer.vocoder import multiscale_mel_l1

SAMPLE_RATE = 24_000
SAMPLES_PER_TOKEN = SAMPLE_RATE // 25  # 25 Hz tokens


def timed_words(record: dict, timing: str, rng: np.random.Generator) -> list[dict] | None:
    """The record's sung words (``{"text", "start_frame"[, "phones"]}``) with the starts of ``timing`` (module
    docstring)."""
    words = [dict(word) for word in record["words"]]
    if timing == "exact":
        return words
    if timing == "none":
        return None
    if timing == "words":
        return [{"text": word["text"], "start_frame": word["start_frame"]} for word in words]
    if timing == "even":
        moved = []
        for section in record["sections"]:
            first, end = section["start_frame"], section["end_frame"]
            inside = [word for word in words if first <= word["start_frame"] < end]
            phones = [word.get("phones") or [] for word in inside]
            n_cues = sum(1 + len(word_phones) for word_phones in phones)
            cue = 0
            for word, word_phones in zip(inside, phones, strict=True):
                frames = [first + cue_deadline(cue + k, n_cues, end - first) for k in range(1 + len(word_phones))]
                moved.append({"text": word["text"], "start_frame": frames[0],
                              "phones": [{"phone": phone["phone"], "start_frame": frame}
                                         for phone, frame in zip(word_phones, frames[1:], strict=True)]})
                cue += len(frames)
        return moved
    if timing.startswith("shift") and timing[5:].isdigit():
        bound = int(timing[5:])
        starts = sorted(min(max(word["start_frame"] + int(rng.integers(-bound, bound + 1)), 0), record["n_frames"] - 1)
                        for word in words)
        return [{"text": word["text"], "start_frame": start} for word, start in zip(words, starts, strict=True)]
    raise ValueError(f"unknown word timing {timing!r}: exact, words, even, none or shiftK (K token frames)")


def measure(tok: DuoTok, records: list[dict], songs: Path, timing: str) -> dict:
    """Whisper errors, pitch and mel L1 of ``records`` decoded with ``timing``; per song and in total."""
    rng = np.random.default_rng(0)  # the same shifts for every decoder measured
    errors = words = close = voiced = 0
    per_song = []
    for record in records:
        folder = songs / record["id"]
        meta = json.loads((folder / "meta.json").read_text())
        n_samples = len(record["vocal"]) * SAMPLES_PER_TOKEN
        original = read_audio(folder / "vocals.flac", sample_rate=SAMPLE_RATE)[0][:n_samples]
        with torch.no_grad():
            mel = tok.decode_mel(record["vocal"], "vocal", steps=0, words=timed_words(record, timing, rng))
            audio = tok.vocoder(mel[None].float())[0].numpy()
        lines = [line for line in meta["lines"] if line["end"] * SAMPLE_RATE <= n_samples]
        song_errors, song_words = line_errors(audio, SAMPLE_RATE, lines)
        song_close, song_voiced = pitch_agreement(original, audio, SAMPLE_RATE)
        errors, words = errors + song_errors, words + song_words
        close, voiced = close + song_close, voiced + song_voiced
        per_song.append({"id": record["id"], "errors": song_errors, "words": song_words,
                         "mel_l1": round(multiscale_mel_l1(original, audio, SAMPLE_RATE), 4)})
    return {"timing": timing, "errors": errors, "words": words, "wer": round(errors / max(words, 1), 4),
            "pitch": round(close / max(voiced, 1), 4),
            "mel_l1": round(float(np.mean([song["mel_l1"] for song in per_song])), 4), "per_song": per_song}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.decoder_word_timing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="checkpoints/duotok-tiny")
    parser.add_argument("--decoder", help="vocal decoder folder to measure (default: the checkpoint's)")
    parser.add_argument("--songs", type=Path, default=Path("data/corpus/validation"))
    parser.add_argument("--tokens", default="data/tokens/validation", help="token corpus with the words column")
    parser.add_argument("--n", type=int, default=20, help="first N songs by id")
    parser.add_argument("--timings", nargs="+", default=["exact", "even", "shift3", "none"])
    parser.add_argument("--name", default="decoder_word_timing")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    decoders = {"vocal": load_decoder(args.decoder)} if args.decoder else None
    tok = DuoTok(from_pretrained(args.checkpoint), directory=args.checkpoint, decoders=decoders)
    if not tok.decoder("vocal").config.word_phones:
        raise SystemExit("error: this vocal decoder reads no words (word_phones 0); nothing to measure")
    records = sorted(iter_records(args.tokens), key=lambda record: record["id"])[: args.n]
    if not records or "words" not in records[0]:
        raise SystemExit(f"error: {args.tokens} has no songs with a words column")
    for timing in args.timings:
        timed_words(records[0], timing, np.random.default_rng(0))  # a bad name fails before any decoding
    started = time.time()
    rows = [measure(tok, records, args.songs, timing) for timing in args.timings]
    result = {"benchmark": "decoder_word_timing", "machine": machine(), "checkpoint": args.checkpoint,
              "decoder": args.decoder or f"{args.checkpoint}/decoder-vocal", "songs": len(records),
              "rows": rows, "wall_seconds": round(time.time() - started, 1)}
    save(args.name, result, table(result))
    print(table(result))
    return 0


def table(result: dict) -> str:
    lines = [f"# Vocal decoder and word timing ({result['machine']['date']})", "",
             f"Decoder `{result['decoder']}`, the true vocal tokens of the first {result['songs']} validation songs, "
             "regression estimate, windowed as `DuoTok.decode_mel`; Whisper tiny.en line by line (as "
             "`bench.decoder_reconstruction`). Timings: exact = the corpus's word starts (and its phones' starts, "
             "read by a phone-time decoder); words = the word starts alone; even = each section's word (and phone) "
             "cues at the LM's cue deadlines (evenly spread); shiftK = each word start moved by up to K token "
             "frames (seed 0), no phone times; none = no words.", "",
             "| word timing | word errors / words | WER | pitch within 50 cents | multi-scale mel L1 |",
             "|---|---|---|---|---|"]
    lines += [f"| {row['timing']} | {row['errors']} / {row['words']} | {row['wer']:.3f} | {row['pitch']:.1%} | "
              f"{row['mel_l1']:.3f} |" for row in result["rows"]]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
