"""LM training data: token-corpus shards -> per-song ``SongTokens`` -> context-sized windows -> padded batches.

Reading: the token corpus format is documented in ``tokenizer/tokenize_corpus.py`` (``shard-*.parquet`` with one
row per song + ``info.json``); this module reads it with pyarrow directly, because ``lm`` never imports
``tokenizer`` (DESIGN.md §3). Each record becomes ``SongTokens`` through ``lm.layout.song_tokens_from_record``
with ``text_to_ids`` = raw sentencepiece pieces (``TextTokenizer.encode``, *not* ``SongLM.text_ids``, which is
already shifted into the LM range). Code arrays are kept as int16, so a 3-minute song costs ~18 KB.

Windows: a song longer than ``max_len`` is cut into windows that each start with the song's whole style
prefix ``<bos> <style> … </style>`` (the condition is never cut away) followed by:
- sections k, k+1, … starting at a section boundary, when section k fits; the window closes after the last
  section that fits whole, or inside the next one at a frame boundary (never between a vocal and its
  accompaniment token); the next window starts at the section the previous one was cut in, so its start
  again lies on a section boundary;
- when a single section is longer than a window, its continuation windows restate its header
  (``<section:TAG> lyric-text <audio>``) and continue the audio from the first frame not yet covered.
A window that does not reach the song's end has no ``<eos>`` (and no ``</audio>`` when cut inside a section),
so the model is never taught to stop early. ``plan_windows`` / ``window_ids`` hold these rules; a song that
fits is one window equal to ``build_sequence(song)``.

Classifier-free guidance: with probability ``cond_dropout`` an item is built from ``drop_condition(song)``
(no style text, no lyric text, every layout marker kept). The generator builds its unconditional branch with
the same function, so training and sampling agree on what "no condition" looks like. The draw for item
``i`` comes from a generator seeded by ``(seed, epoch, i)`` alone, so it does not depend on workers or order.

Batches: windows are shuffled, then sorted by length inside pools of ``POOL_BATCHES`` batches (little padding,
still random), padded on the right with ``<pad>``; ``labels`` equal ``input_ids`` with -100 on padding.

Validation: either a separate token folder (``split="all"`` on it) or the songs of one folder whose
``sha1(id)`` falls in the lowest ``val_fraction`` (``split="val"``; ``"train"`` is the rest), which is stable
as the corpus grows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from lm.layout import (
    LayoutError,
    SectionTokens,
    SongTokens,
    Vocabulary,
    WordCue,
    build_sequence,
    song_tokens_from_record,
)
from lm.lyrics import LyricsError, parse_lyrics
from lm.phonemes import add_phonemes
from lm.text import text_for_model

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1  # of the token corpus (tokenizer/tokenize_corpus.py)
INFO_NAME = "info.json"
SHARD_PATTERN = re.compile(r"shard-(\d+)-(\d+)\.parquet")
DEFAULT_VAL_FRACTION = 0.05
POOL_BATCHES = 50  # length-sorting pool, in batches: larger pools pad less but make batches less random
IGNORE_INDEX = -100  # labels that the loss skips (torch cross-entropy's default ignore_index)
SPLITS = ("train", "val", "all")


class TokenDataError(ValueError):
    """A token corpus that cannot be used for LM training; the message names the folder or record."""


# --- reading the documented shard format --------------------------------------------------------------------


def read_corpus_info(tokens_dir: str | Path) -> dict:
    """``info.json`` of a token folder, checked: the folder, its shards and a usable codebook size."""
    tokens_dir = Path(tokens_dir)
    if not tokens_dir.is_dir():
        raise TokenDataError(f"token corpus folder {tokens_dir} does not exist (make one with "
                             "python -m tokenizer tokenize SONGS_DIR --out TOKENS_DIR)")
    info_path = tokens_dir / INFO_NAME
    if not info_path.is_file():
        raise TokenDataError(f"{tokens_dir} has no {INFO_NAME}: not a token corpus folder")
    try:
        info = json.loads(info_path.read_text())
    except (ValueError, OSError) as error:
        raise TokenDataError(f"{info_path}: unreadable ({error})") from error
    if info.get("format_version") != FORMAT_VERSION:
        raise TokenDataError(f"{info_path}: token format version {info.get('format_version')!r}, this code "
                             f"reads version {FORMAT_VERSION}")
    size = info.get("codebook_size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise TokenDataError(f"{info_path}: codebook_size must be a positive integer, got {size!r}")
    if not shard_paths(tokens_dir):
        raise TokenDataError(f"{tokens_dir} holds no token shards (shard-*.parquet): the corpus is empty")
    return info


def shard_paths(tokens_dir: str | Path) -> list[Path]:
    tokens_dir = Path(tokens_dir)
    return sorted(p for p in tokens_dir.iterdir() if SHARD_PATTERN.fullmatch(p.name) and p.is_file())


def iter_token_records(tokens_dir: str | Path, columns: Sequence[str] | None = None) -> Iterator[dict]:
    """Every record as a dict (``vocal``/``accomp`` as int64 numpy arrays when read), one row group at a
    time so memory stays bounded whatever the corpus size."""
    for path in shard_paths(tokens_dir):
        try:
            batches = pq.ParquetFile(path).iter_batches(batch_size=64, columns=list(columns) if columns else None)
            for batch in batches:
                for row in batch.to_pylist():
                    for name in ("vocal", "accomp"):
                        if name in row:
                            row[name] = np.asarray(row[name] or [], dtype=np.int64)
                    yield row
        except OSError as error:  # pyarrow's ArrowInvalid/ArrowIOError are OSError subclasses
            raise TokenDataError(f"{path}: unreadable shard ({error})") from error


def corpus_texts(tokens_dir: str | Path, phonemes: bool = False) -> Iterator[str]:
    """What the text tokenizer trains on: every style prompt and every sung section's ``text_for_model``
    (with each known word's phones after it when ``phonemes``, as ``TextTokenizer.encode_lyrics`` writes them)."""
    for record in iter_token_records(tokens_dir, columns=["style", "lyrics"]):
        if record.get("style"):
            yield record["style"]
        try:
            sections = parse_lyrics(record["lyrics"], require_vocals=False).sections if record.get("lyrics") else []
        except LyricsError:
            continue  # the dataset reports such records; the text model just does not learn from them
        for section in sections:
            if section.lines:
                yield text_for_model(add_phonemes(section.text).splitlines() if phonemes else section.lines)


def in_validation(song_id: str, val_fraction: float) -> bool:
    """Whether a song belongs to the validation split: a hash of its id, stable across runs and corpus growth."""
    return int(hashlib.sha1(song_id.encode("utf-8")).hexdigest()[:8], 16) / 2**32 < val_fraction


# --- condition dropout and windows --------------------------------------------------------------------------


def drop_condition(song: SongTokens) -> SongTokens:
    """The unconditional form of a song for classifier-free guidance: no style text, no lyric text (also none
    in the word cues); section tags, ``<no_vocal>`` and ``<word>`` markers and all audio stay. Keeping each
    ``<word>`` where it was leaves the unconditional stream the singing's rhythm, not its words, and keeps it
    in step with the conditional one. Used by training (``cond_dropout``) and by generation."""
    return SongTokens([], [SectionTokens(s.tag, [], s.vocal, s.accomp, s.instrumental,
                                         [WordCue(cue.frame, ()) for cue in s.cues]) for s in song.sections])


@dataclass(frozen=True)
class Window:
    """Sections ``first_section..last_section`` of a song, the first from frame ``first_frame``, the last up to
    frame ``stop_frame`` (exclusive; frames counted inside each section). ``closed``: the last section's
    ``</audio>`` is included; ``ends_song``: ``<eos>`` is included."""

    first_section: int
    first_frame: int
    last_section: int
    stop_frame: int
    closed: bool
    ends_song: bool


def _header_length(section: SectionTokens) -> int:
    return 2 + (1 if section.instrumental else len(section.text_ids))  # tag, text or <no_vocal>, <audio>


def _frame_costs(section: SectionTokens, start: int) -> np.ndarray:
    """Tokens each frame from ``start`` on adds to a sequence: its ``v a`` pair and the word cues before it."""
    costs = np.full(section.n_frames - start, 2, dtype=np.int64)
    for cue in section.cues:
        if cue.frame >= start:
            costs[cue.frame - start] += 1 + len(cue.text_ids)
    return costs


def plan_windows(song: SongTokens, max_len: int) -> list[tuple[Window, int]]:
    """The windows (module docstring) of one song with their conditional token lengths."""
    if not song.sections:
        raise LayoutError("a song without sections has no audio to train on")
    prefix = 3 + len(song.style_ids)  # <bos> <style> … </style>
    budget = max_len - prefix
    last = len(song.sections) - 1
    windows, first, offset = [], 0, 0
    while True:
        used, index, start = 0, first, offset
        while True:
            section = song.sections[index]
            cumulative = np.cumsum(_frame_costs(section, start))  # tokens of the first 1, 2, … frames left
            tail = 2 if index == last else 1  # </audio>, and <eos> after the last section
            need = _header_length(section) + (int(cumulative[-1]) if len(cumulative) else 0) + tail
            if used + need <= budget:
                used += need
                if index == last:
                    windows.append((Window(first, offset, index, section.n_frames, True, True), prefix + used))
                    return windows
                index, start = index + 1, 0
                continue
            fit = int(np.searchsorted(cumulative, budget - used - _header_length(section), side="right"))
            if fit > 0:  # cut inside this section, after a whole frame
                windows.append((Window(first, offset, index, start + fit, False, False),
                                prefix + used + _header_length(section) + int(cumulative[fit - 1])))
                first, offset = (index, 0) if index > first else (first, start + fit)
            elif index > first:  # not one frame of it fits: close at the section boundary before it
                windows.append((Window(first, offset, index - 1, song.sections[index - 1].n_frames, True, False),
                                prefix + used))
                first, offset = index, 0
            else:
                raise LayoutError(f"max_len {max_len} is too short: the style prefix ({prefix} tokens) and the "
                                  f"header of section {index} [{section.tag}] ({_header_length(section)} tokens) "
                                  "leave no room for one frame")
            break


def window_ids(song: SongTokens, window: Window, vocab: Vocabulary) -> np.ndarray:
    """The id sequence of one window: ``build_sequence`` of the covered part, without the closing tokens the
    window does not reach."""
    sections = []
    for index in range(window.first_section, window.last_section + 1):
        section = song.sections[index]
        start = window.first_frame if index == window.first_section else 0
        stop = window.stop_frame if index == window.last_section else section.n_frames
        if (start, stop) != (0, section.n_frames):
            section = section.frames(start, stop)
        sections.append(section)
    ids = build_sequence(SongTokens(song.style_ids, sections), vocab)
    drop = (0 if window.ends_song else 1) + (0 if window.closed else 1)
    return ids[:len(ids) - drop]


# --- dataset, sampler, collation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextEncoders:
    """Text -> raw sentencepiece pieces, one function for style prompts and one for sung lyrics."""

    style: Callable[[str], Sequence[int]]
    lyrics: Callable[[str], Sequence[int]]


def _resolve_text(text_to_ids, vocab: Vocabulary | None) -> tuple[TextEncoders, int | None]:
    """Accept a ``TextTokenizer`` (its ``encode`` for styles, ``encode_lyrics`` for lyrics, and its size) or a
    plain callable used for both (then ``vocab`` is required)."""
    if hasattr(text_to_ids, "encode") and hasattr(text_to_ids, "vocab_size"):
        lyrics = getattr(text_to_ids, "encode_lyrics", text_to_ids.encode)
        return TextEncoders(text_to_ids.encode, lyrics), text_to_ids.vocab_size
    if not callable(text_to_ids):
        raise TypeError("text_to_ids must be a TextTokenizer or a callable text -> sentencepiece piece ids")
    return TextEncoders(text_to_ids, text_to_ids), vocab.n_text if vocab is not None else None


class TokenDataset(Dataset):
    """Training windows of one split of a token folder; item ``i`` is ``{"input_ids": LongTensor [T]}``.
    ``word_cues``: sung sections carry a ``<word>`` cue before each word's first frame (``lm.layout``), from
    the records' ``words``; records without word times get none. ``phone_cues`` (with ``word_cues``, and
    ``text_to_ids`` a ``TextTokenizer``): each word's cue is followed by a cue for each of its sung phones, from
    the words' ``phones``; words without phone times get none."""

    def __init__(self, tokens_dir: str | Path, text_to_ids, max_len: int, *, vocab: Vocabulary | None = None,
                 split: str = "all", val_fraction: float = DEFAULT_VAL_FRACTION, cond_dropout: float = 0.0,
                 seed: int = 0, word_cues: bool = False, phone_cues: bool = False):
        if phone_cues and not (word_cues and hasattr(text_to_ids, "phone_cue")):
            raise TokenDataError("phone cues need word cues too and a TextTokenizer, whose phone_cue names them")
        if split not in SPLITS:
            raise TokenDataError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if not 0.0 <= cond_dropout < 1.0:
            raise TokenDataError(f"cond_dropout must be in [0, 1), got {cond_dropout}")
        self.info = read_corpus_info(tokens_dir)
        codebook_size = self.info["codebook_size"]
        encode, n_text = _resolve_text(text_to_ids, vocab)
        if vocab is None:
            if n_text is None:
                raise TypeError("pass vocab= when text_to_ids is a plain callable")
            vocab = Vocabulary(n_text, codebook_size, codebook_size)
        if (vocab.codebook_size_vocal, vocab.codebook_size_accomp) != (codebook_size, codebook_size):
            raise TokenDataError(f"codebook mismatch: {tokens_dir} was tokenized with codebook size {codebook_size} "
                                 f"but the vocabulary expects {vocab.codebook_size_vocal} vocal / "
                                 f"{vocab.codebook_size_accomp} accompaniment codes (another tokenizer checkpoint?)")
        self.vocab, self.max_len, self.cond_dropout, self.seed, self.epoch = vocab, max_len, cond_dropout, seed, 0
        code_dtype = np.int16 if codebook_size <= 2**15 else np.int32  # compact storage; ids are int64 on build
        self.songs: list[SongTokens] = []
        self.song_ids: list[str] = []
        self.windows: list[tuple[int, Window]] = []
        self.lengths: list[int] = []
        self.skipped: list[tuple[str, str]] = []  # (song id, reason) of records that do not fit the layout
        for record in iter_token_records(tokens_dir):
            song_id = str(record.get("id", "?"))
            if split != "all" and in_validation(song_id, val_fraction) != (split == "val"):
                continue
            if record.get("codebook_size", codebook_size) != codebook_size:
                raise TokenDataError(f"codebook mismatch: record {song_id} in {tokens_dir} has codebook size "
                                     f"{record['codebook_size']}, {INFO_NAME} says {codebook_size}")
            for name in ("vocal", "accomp"):
                codes = record[name]
                if codes.size and (codes.min() < 0 or codes.max() >= codebook_size):
                    raise TokenDataError(f"record {song_id}: {name} code {int(codes.max())} is outside the "
                                         f"codebook (size {codebook_size})")
            try:
                song = song_tokens_from_record(
                    record, encode.style, encode.lyrics, word_to_ids=encode.lyrics if word_cues else None,
                    phone_to_ids=text_to_ids.phone_cue if phone_cues else None)
            except LayoutError as error:  # one odd record (e.g. lyrics that do not match its sections)
                logger.warning("skipping record %s: %s", song_id, error)
                self.skipped.append((song_id, str(error)))
                continue
            try:
                planned = plan_windows(song, max_len)
            except LayoutError as error:  # a max_len too short for this corpus: a setting to fix, not a record
                raise TokenDataError(f"record {song_id}: {error}") from None
            for section in song.sections:
                section.vocal, section.accomp = section.vocal.astype(code_dtype), section.accomp.astype(code_dtype)
            for window, length in planned:
                self.windows.append((len(self.songs), window))
                self.lengths.append(length)
            self.songs.append(song)
            self.song_ids.append(song_id)
        if not self.songs:
            reason = f" ({len(self.skipped)} records skipped, first: {self.skipped[0][1]})" if self.skipped else ""
            raise TokenDataError(f"no usable songs in split {split!r} of {tokens_dir}{reason}")

    def set_epoch(self, epoch: int) -> None:
        """New condition-dropout draws and a new shuffle each epoch (the sampler reads this epoch too)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        song_index, window = self.windows[index]
        song = self.songs[song_index]
        if self.cond_dropout > 0:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            if rng.random() < self.cond_dropout:
                song = drop_condition(song)
        return {"input_ids": torch.from_numpy(window_ids(song, window, self.vocab))}


class LengthBucketBatchSampler(Sampler[list[int]]):
    """Shuffled batches of similar length: a permutation seeded by ``(seed, epoch)`` is cut into pools of
    ``POOL_BATCHES`` batches, each pool sorted by length and cut into batches, and the batches shuffled.
    Without ``shuffle`` the order is fixed (validation)."""

    def __init__(self, dataset: TokenDataset, batch_size: int, seed: int, shuffle: bool = True):
        if batch_size < 1:
            raise TokenDataError(f"batch_size must be positive, got {batch_size}")
        self.dataset, self.batch_size, self.seed, self.shuffle = dataset, batch_size, seed, shuffle
        self.drop_last = False  # read by accelerate when it shards batches across processes

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return math.ceil(len(self.dataset) / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng((self.seed, self.dataset.epoch))
        lengths = np.asarray(self.dataset.lengths)
        order = rng.permutation(len(lengths)) if self.shuffle else np.arange(len(lengths))
        pool_size = self.batch_size * POOL_BATCHES
        batches = []
        for pool_start in range(0, len(order), pool_size):
            pool = order[pool_start:pool_start + pool_size]
            pool = pool[np.argsort(lengths[pool], kind="stable")]
            batches += [pool[i:i + self.batch_size].tolist() for i in range(0, len(pool), self.batch_size)]
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        yield from batches


class PadCollator:
    """Items -> ``input_ids``, ``attention_mask``, ``labels`` [B, T_max], right-padded with ``<pad>``; labels
    are -100 on padding so the loss never sees it. (A class, not a closure, so DataLoader workers can pickle it.)"""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        longest = max(len(item["input_ids"]) for item in items)
        input_ids = torch.full((len(items), longest), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(items), longest), dtype=torch.long)
        for row, item in enumerate(items):
            input_ids[row, :len(item["input_ids"])] = item["input_ids"]
            attention_mask[row, :len(item["input_ids"])] = 1
        labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def make_loader(tokens_dir: str | Path, text_to_ids, batch_size: int, max_len: int, seed: int = 0,
                split: str = "train", *, vocab: Vocabulary | None = None, cond_dropout: float = 0.0,
                val_fraction: float = DEFAULT_VAL_FRACTION, shuffle: bool | None = None,
                num_workers: int = 0, word_cues: bool = False, phone_cues: bool = False) -> DataLoader:
    """A DataLoader of padded window batches from one split of a token folder.

    ``text_to_ids``: a ``TextTokenizer`` or a callable text -> raw piece ids (then pass ``vocab``).
    ``shuffle`` defaults to True for ``split="train"``; ``cond_dropout`` is meant for training only.
    Call ``loader.dataset.set_epoch(e)`` (or accelerate's ``loader.set_epoch``) before each epoch."""
    dataset = TokenDataset(tokens_dir, text_to_ids, max_len, vocab=vocab, split=split, val_fraction=val_fraction,
                           cond_dropout=cond_dropout, seed=seed, word_cues=word_cues, phone_cues=phone_cues)
    sampler = LengthBucketBatchSampler(dataset, batch_size, seed, shuffle=split == "train" if shuffle is None
                                       else shuffle)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=PadCollator(dataset.vocab.pad_id),
                      num_workers=num_workers)
