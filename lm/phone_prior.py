"""Phone guidance: a count table of which vocal codes are sung on which phone, fused into sampling.

Why: a phone-cue LM places a cue where each phone of the lyrics starts, but the tiny LM's vocal codes then sing
the cued phone far less often than the corpus's own codes do (``bench.lyric_phones``: phone error rate 0.73
against 0.57), and Whisper hears few of the words in the app. The vocal codes themselves carry the phone (a code
id alone names it on 57% of sung frames, ``bench.token_content``), so the corpus can say which codes go with
which phone without any training.

The table: over a token corpus with phone times (``tokenize`` with the corpus's ``meta.json``), every vocal frame
of a sung section after its first phone gets a context: the last phone that started at or before it and that
phone's age in frames, bucketed (``AGE_EDGES``: the first frames of a phone sound different from its held middle,
and a phone long past is likely a rest). Per context it stores the log-ratio ``log P(code | phone, age) −
log P(code)``, with the context's counts smoothed towards the overall code frequencies (``SMOOTHING``
pseudo-frames), so rare contexts fall back to "no preference".

Sampling (``lm.generate``, ``GenerationOptions.phone_guidance`` = λ) adds ``λ · table[phone, age]`` to the vocal
codes' log-probabilities after each phone cue: a product of the LM and a count-based phone model, as speech
recognisers fuse an external language model into decoding ("shallow fusion"). λ = 0 is the LM alone. The table
is written by hand here because it is a few lines of counting that no library packages for this token layout.

``python -m lm.phone_prior --tokens data/tokens/train-all-ph --lm checkpoints/lm-tiny`` writes
``phone_prior.safetensors`` into the LM checkpoint folder, where ``SongLM.from_pretrained`` finds it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from corpus.audio_io import atomic_write_bytes
from lm.data import TokenDataError, iter_token_records, read_corpus_info
from lm.phonemes import ARPABET

PHONE_PRIOR_NAME = "phone_prior.safetensors"
AGE_EDGES = (0, 1, 2, 4, 8, 16)  # frames since the phone started: buckets 0, 1, 2–3, 4–7, 8–15, 16 and more
SMOOTHING = 50.0  # pseudo-frames of the overall code distribution added to every context's counts
FORMAT_VERSION = 1


class PhonePriorError(ValueError):
    """A table that cannot be built or read; the message says why."""


class PhonePrior:
    """``log_ratio[phone, age bucket, code]`` (float32) with the phones (ARPAbet, rows) and age bucket edges.

    ``bind(phone_piece)`` tells it which text piece cues each phone, so ``row_of_cue`` can read a generated
    cue's pieces; ``SongLM.from_pretrained`` binds it to the LM's text model."""

    def __init__(self, log_ratio: torch.Tensor, phones: Sequence[str] = ARPABET,
                 age_edges: Sequence[int] = AGE_EDGES, info: dict | None = None):
        log_ratio = torch.as_tensor(log_ratio, dtype=torch.float32)
        phones, age_edges = tuple(phones), tuple(int(edge) for edge in age_edges)
        if not age_edges or age_edges[0] != 0 or list(age_edges) != sorted(set(age_edges)):
            raise PhonePriorError(f"age edges must rise strictly from 0, got {age_edges}")
        if log_ratio.ndim != 3 or log_ratio.shape[:2] != (len(phones), len(age_edges)):
            raise PhonePriorError(f"the table has shape {tuple(log_ratio.shape)}; expected ({len(phones)} phones, "
                                  f"{len(age_edges)} age buckets, codebook size)")
        if not torch.isfinite(log_ratio).all():
            raise PhonePriorError("the table holds values that are not finite")
        unknown = sorted(set(phones) - set(ARPABET))
        if unknown:
            raise PhonePriorError(f"the table names phones that are not ARPAbet: {unknown}")
        self.log_ratio, self.phones, self.age_edges = log_ratio, phones, age_edges
        self.info = dict(info or {})
        self._row_of_phone = {phone: row for row, phone in enumerate(phones)}
        self._row_of_piece: dict[int, int] = {}

    @property
    def codebook_size(self) -> int:
        return self.log_ratio.shape[2]

    def bind(self, phone_piece: Callable[[str], int]) -> PhonePrior:
        """Learn each phone's cue piece (``TextTokenizer.phone_piece``); returns self."""
        self._row_of_piece = {int(phone_piece(phone)): row for phone, row in self._row_of_phone.items()}
        return self

    def row_of_cue(self, pieces: Sequence[int]) -> int | None:
        """The table row of a phone cue's raw pieces; None for a word cue (or before ``bind``)."""
        return self._row_of_piece.get(int(pieces[0])) if len(pieces) == 1 else None

    def age_bucket(self, age: int) -> int:
        return int(np.searchsorted(self.age_edges, age, side="right")) - 1

    def bias(self, row: int, age: int) -> torch.Tensor:
        """Log-ratio of every code (codebook_size,) ``age`` frames after phone ``row`` started."""
        if age < 0:
            raise ValueError(f"a phone's age cannot be negative, got {age}")
        return self.log_ratio[row, self.age_bucket(age)]

    # --- files ------------------------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write atomically as safetensors (the table in fp16: it is a smoothed log-ratio, a few hundredths of
        rounding do not matter) with the phones, edges and ``info`` as metadata."""
        metadata = {"format_version": str(FORMAT_VERSION), "phones": json.dumps(self.phones),
                    "age_edges": json.dumps(self.age_edges), "info": json.dumps(self.info)}
        path = Path(path)
        atomic_write_bytes(path, save({"log_ratio": self.log_ratio.to(torch.float16).contiguous()}, metadata))
        return path

    @classmethod
    def load(cls, path: str | Path) -> PhonePrior:
        path = Path(path)
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                if metadata.get("format_version") != str(FORMAT_VERSION):
                    raise PhonePriorError(f"{path}: format version {metadata.get('format_version')!r}, "
                                          f"expected {FORMAT_VERSION}")
                table = handle.get_tensor("log_ratio").float()
            return cls(table, json.loads(metadata["phones"]), json.loads(metadata["age_edges"]),
                       json.loads(metadata.get("info", "{}")))
        except (OSError, SafetensorError, KeyError, json.JSONDecodeError) as error:
            raise PhonePriorError(f"{path}: not a phone table ({error})") from None


# --- building the table ---------------------------------------------------------------------------------------


def phone_contexts(record: dict, phones: Sequence[str] = ARPABET) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One token record -> (frames, phone rows, ages) of its vocal frames that have a phone context: inside a
    sung section, at or after the section's first timed phone. Phones the table does not list are skipped."""
    row_of_phone = {phone: row for row, phone in enumerate(phones)}
    starts = sorted((int(phone["start_frame"]), row_of_phone[phone["phone"]])
                    for word in record.get("words") or [] for phone in word.get("phones") or []
                    if phone["phone"] in row_of_phone)
    if not starts:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    start_frames = np.array([frame for frame, _ in starts])
    rows = np.array([row for _, row in starts])
    frames_out, rows_out, ages_out = [], [], []
    for section in record.get("sections") or []:
        if not section.get("vocal"):
            continue
        first, stop = int(section["start_frame"]), min(int(section["end_frame"]), len(record["vocal"]))
        inside = (start_frames >= first) & (start_frames < stop)
        if not inside.any():
            continue
        section_starts, section_rows = start_frames[inside], rows[inside]
        frames = np.arange(section_starts[0], stop)
        last = np.searchsorted(section_starts, frames, side="right") - 1  # the phone sounding at each frame
        frames_out.append(frames)
        rows_out.append(section_rows[last])
        ages_out.append(frames - section_starts[last])
    if not frames_out:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    return np.concatenate(frames_out), np.concatenate(rows_out), np.concatenate(ages_out)


def build_phone_prior(tokens_dir: str | Path, smoothing: float = SMOOTHING,
                      age_edges: Sequence[int] = AGE_EDGES) -> PhonePrior:
    """Count (phone, age bucket, code) over the vocal frames of ``tokens_dir`` and return the smoothed table."""
    if smoothing <= 0:
        raise PhonePriorError(f"smoothing must be positive, got {smoothing}")
    corpus = read_corpus_info(tokens_dir)
    codebook_size = int(corpus["codebook_size"])
    n_phones, n_ages = len(ARPABET), len(age_edges)
    counts = np.zeros(n_phones * n_ages * codebook_size, np.float64)
    songs = 0
    for record in iter_token_records(tokens_dir, columns=["id", "vocal", "sections", "words"]):
        frames, rows, ages = phone_contexts(record)
        if not len(frames):
            continue
        buckets = np.searchsorted(np.asarray(age_edges), ages, side="right") - 1
        codes = record["vocal"][frames]
        counts += np.bincount((rows * n_ages + buckets) * codebook_size + codes, minlength=counts.size)
        songs += 1
    counts = counts.reshape(n_phones, n_ages, codebook_size)
    frames_counted = int(counts.sum())
    if frames_counted == 0:
        raise PhonePriorError(f"{tokens_dir}: no vocal frames with phone times (tokenize the corpus with its "
                              "meta.json, so each word carries its phones)")
    overall = (counts.sum(axis=(0, 1)) + 1.0) / (frames_counted + codebook_size)  # add-one: no code has P = 0
    context = (counts + smoothing * overall) / (counts.sum(axis=2, keepdims=True) + smoothing)
    info = {"tokens": str(tokens_dir), "tokenizer": corpus.get("tokenizer"),
            "tokenizer_version": corpus.get("tokenizer_version"), "songs": songs, "frames": frames_counted,
            "smoothing": smoothing}
    return PhonePrior(torch.from_numpy(np.log(context / overall)).float(), ARPABET, age_edges, info)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lm.phone_prior", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=Path, required=True, help="token corpus with phone times")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--lm", type=Path, help=f"LM checkpoint folder: writes {PHONE_PRIOR_NAME} into it")
    target.add_argument("--out", type=Path, help="write the table to this file instead")
    parser.add_argument("--smoothing", type=float, default=SMOOTHING)
    args = parser.parse_args(argv)
    if args.lm is not None and not args.lm.is_dir():
        print(f"error: {args.lm} is not a folder", file=sys.stderr)
        return 2
    try:
        prior = build_phone_prior(args.tokens, smoothing=args.smoothing)
    except (PhonePriorError, TokenDataError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    path = prior.save(args.out if args.out is not None else args.lm / PHONE_PRIOR_NAME)
    print(f"wrote {path}: {prior.info['songs']} songs, {prior.info['frames']} frames, "
          f"{tuple(prior.log_ratio.shape)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
