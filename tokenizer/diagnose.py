"""``python -m tokenizer diagnose SOURCE...``: how well Duo-Tok represents your own audio, before you tokenize a
corpus with it or train an LM on its tokens (a tokenizer diagnostic no peer offers, peers.md §6 #12).

    python -m tokenizer diagnose my_song.wav                      # a mix: separated by the stage-2 masks first
    python -m tokenizer diagnose data/corpus/validation/song_0001 # a folder with vocals.* and accompaniment.*
    python -m tokenizer diagnose a.wav b.flac --out diagnosis      # + the decoded audio and diagnosis.json

A SOURCE is an audio file (taken as a mix) or a song folder holding the stems ``vocals.<ext>`` and
``accompaniment.<ext>`` (the corpus layout; any format soundfile reads). For each one it reports:

- the tokens: frames, seconds, bitrate, and per track the codes used and their perplexity
  (``tokenizer.eval.code_statistics``): audio far from what the tokenizer was trained on tends to use few codes;
- reconstruction: the tokens decoded back to audio (``DuoTok.decode``, no lyrics), scored with the multi-scale
  mel L1 of duotok.md §5.2 (lower is better) per stem against the stems given (for a mix, against its separated
  stems) and for the mix against the input; next to it the vocoder on each reference's own mel, the part of the
  error the tokens are not to blame for. The tokenizer's model card has the same two figures on its held-out
  songs, for scale.

With ``--out DIR`` each source's decoded ``vocals.wav``, ``accompaniment.wav`` and ``mix.wav`` go to
``DIR/<source name>/`` and everything measured to ``DIR/diagnosis.json``. A source that cannot be read is
reported and skipped; the exit code is 2 if any source failed, else 0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from corpus.audio_io import AudioReadError, atomic_write_json, read_audio, write_audio
from tokenizer.duotok import DuoTok
from tokenizer.eval import code_statistics
from tokenizer.vocoder import multiscale_mel_l1

STEMS = ("vocals", "accompaniment")
TRACKS = {"vocals": "vocal", "accompaniment": "accomp"}  # stem name -> the tokenizer's track name
SILENT_PEAK = 1e-4  # a stem this quiet has nothing to reconstruct; its mel L1 would only measure the floor


class SourceError(ValueError):
    """A source that cannot be diagnosed; the message names the file or folder and what is wrong."""


def read_source(path: str | Path, sample_rate: int) -> tuple[dict[str, np.ndarray] | None, np.ndarray]:
    """``(stems, mix)`` of a source at ``sample_rate``: ``stems`` is None for an audio file (a mix); for a song
    folder the two stems, cut to the shorter, and their sum as the mix."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path} does not exist")
    try:
        if not path.is_dir():
            return None, read_audio(path, sample_rate)[0]
        stems = {}
        for stem in STEMS:
            files = sorted(p for p in path.glob(f"{stem}.*") if p.is_file())
            if not files:
                raise SourceError(f"{path} is a folder without a {stem}.* file (a song folder holds "
                                  f"{' and '.join(f'{s}.<ext>' for s in STEMS)})")
            stems[stem] = read_audio(files[0], sample_rate)[0]
    except AudioReadError as error:
        raise SourceError(str(error)) from None
    n = min(len(audio) for audio in stems.values())
    stems = {stem: audio[:n] for stem, audio in stems.items()}
    return stems, stems["vocals"] + stems["accompaniment"]


def _vocoded(tok: DuoTok, audio: np.ndarray, n_frames: int) -> np.ndarray:
    """``audio`` through the vocoder on its own mel, cut to the tokens' span: the reconstruction bound."""
    with torch.no_grad():
        mel = tok.vocoder.latent(torch.from_numpy(audio).to(tok.device)[None])[:, : 2 * n_frames]
        return tok.vocoder(mel.float())[0].cpu().numpy()


def diagnose(tok: DuoTok, path: str | Path, steps: int | None = None, seed: int = 0
             ) -> tuple[dict, dict[str, np.ndarray]]:
    """``(report, decoded)`` for one source: the report (module docstring; JSON-able) and the decoded
    ``{"vocals", "accompaniment", "mix"}`` waveforms. Raises ``SourceError`` for a source it cannot use."""
    rate = int(tok.config.sample_rate)
    stems, mix = read_source(path, rate)
    separated = stems is None
    try:
        references = dict(zip(STEMS, tok.separate(mix), strict=True)) if separated else stems
        tokens = tok.encode(vocals=references["vocals"], accompaniment=references["accompaniment"])
    except ValueError as error:  # shorter than one token frame, NaN or infinite samples (DuoTok checks both)
        raise SourceError(f"{path}: {error}") from None
    n = len(tokens) * int(tok.config.samples_per_token)
    decoded = dict(zip((*STEMS, "mix"), tok.decode(tokens, steps=steps, seed=seed), strict=True))
    report = {"source": str(path), "input": "mix, separated by the tokenizer" if separated else "stems",
              "seconds": round(n / rate, 2), "frames": len(tokens),
              "bitrate": round(2 * tokens.frame_rate * np.log2(tok.config.codebook_size)),
              "codes": {stem: code_statistics(getattr(tokens, TRACKS[stem]), tok.config.codebook_size)
                        for stem in STEMS},
              "mel_l1": {}}
    for name in (*STEMS, "mix"):
        reference = references.get(name, mix)[:n]
        silent = float(np.abs(reference).max()) < SILENT_PEAK
        report["mel_l1"][name] = {
            "decoded": None if silent else round(multiscale_mel_l1(reference, decoded[name], rate), 3),
            "vocoder": None if silent else round(multiscale_mel_l1(reference, _vocoded(tok, reference, len(tokens)),
                                                                   rate), 3),
            "silent": silent}
    return report, decoded


def describe(report: dict) -> str:
    """A report as a few lines of text for the terminal."""
    lines = [f"{report['source']}: {report['seconds']:.1f} s, {report['input']}; {report['frames']} token frames "
             f"per track, {report['bitrate']} bit/s"]
    for stem in STEMS:
        codes = report["codes"][stem]
        lines.append(f"  {stem:<14} codes used {codes['codes_used']:>5}, perplexity {codes['perplexity']:>7.1f}")
    lines.append(f"  {'mel L1':<14} {'decoded':>8} {'vocoder':>8}   (lower is better; vocoder: on the reference's "
                 "own mel)")
    for name, scores in report["mel_l1"].items():
        if scores["silent"]:
            lines.append(f"  {name:<14} {'silent':>8}")
        else:
            lines.append(f"  {name:<14} {scores['decoded']:>8.3f} {scores['vocoder']:>8.3f}")
    return "\n".join(lines)


def add_diagnose_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sources", nargs="+", type=Path,
                        help="audio files (mixes) or song folders with vocals.* and accompaniment.*")
    parser.add_argument("--checkpoint", type=Path, default=Path(__file__).resolve().parents[1] / "checkpoints" /
                        "duotok-tiny", help="the tokenizer checkpoint folder (default: the shipped duotok-tiny)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write each source's decoded audio and diagnosis.json here")
    parser.add_argument("--steps", type=int, default=None, help="decoder flow steps (default: the decoders' own)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the decoders' flow noise (default: 0)")


def run_diagnose(args: argparse.Namespace) -> int:
    if args.steps is not None and args.steps < 0:
        print(f"error: --steps must be 0 or more, got {args.steps}", file=sys.stderr)
        return 2
    try:
        tok = DuoTok.from_pretrained(args.checkpoint)
    except (OSError, ValueError) as error:
        print(f"error: cannot load the tokenizer from {args.checkpoint} ({error})", file=sys.stderr)
        return 2
    reports, failed = [], 0
    for index, source in enumerate(args.sources):
        try:
            report, decoded = diagnose(tok, source, steps=args.steps, seed=args.seed)
        except SourceError as error:
            print(f"error: {error}", file=sys.stderr)
            failed += 1
            continue
        print(describe(report), flush=True)
        if args.out is not None:  # one folder per source; the index keeps two sources of one name apart
            folder = args.out / f"{index:02d}-{source.stem or 'source'}"
            for name, audio in decoded.items():
                write_audio(folder / f"{name}.wav", audio, int(tok.config.sample_rate))
            report["decoded_folder"] = str(folder)
        reports.append(report)
    if args.out is not None and reports:
        atomic_write_json(args.out / "diagnosis.json", {"checkpoint": str(args.checkpoint), "sources": reports})
    return 2 if failed else 0
