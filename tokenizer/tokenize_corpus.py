"""Tokenize a folder of songs into the token corpus the LM trains on (DESIGN.md §4).

    python -m tokenizer tokenize data/corpus/train --out data/tokens/train \\
        [--checkpoint checkpoints/duotok-tiny] [--workers 2] [--shard-size 64] [--overwrite]

Every song folder under SONGS_DIR (``corpus.reader.find_song_folders``) is read at the tokenizer's sample rate
and encoded with Duo-Tok: from its ``vocals`` + ``accompaniment`` stems when it has both (exact), else from its
mix (separated by the tokenizer's own mask head first).

Format (version ``FORMAT_VERSION``), readable without this module
-------------------------------------------------------------------
``TOKENS_DIR/shard-<worker>-<n>.parquet``: Parquet files with one row per song and the schema ``SCHEMA``:

===================  ==========================================  ===============================================
field                type                                        meaning
===================  ==========================================  ===============================================
id                   string                                      song folder name (unique in the corpus)
vocal, accomp        list<int16>                                 codebook indices, one per frame, equal lengths
n_frames             int32                                       ``len(vocal)``: floor(seconds × frame_rate)
frame_rate           float64                                     tokens per second per track (25.0)
codebook_size        int32                                       indices lie in ``[0, codebook_size)``
tokenizer            string                                      checkpoint folder name, e.g. ``duotok-tiny``
tokenizer_version    string                                      sha1 of its model.safetensors, 12 hex chars
lyrics               string                                      canonical lyrics (``lm.lyrics.format_lyrics``),
                                                                 ``""`` for none
style                string                                      style prompt, ``""`` for none
sections             list<struct<name: string, start_frame:      contiguous frame spans from 0 to n_frames;
                     int32, end_frame: int32, vocal: bool>>      ``name`` is a canonical tag
words                list<struct<text: string, start_frame:      each sung word and the frame its singing
                     int32, phones: list<struct<phone:           starts in (floor of onset × frame_rate), in
                     string, start_frame: int32>>>>              time order, with its sung phones (ARPAbet)
                                                                 and the frame each starts in; empty when
                                                                 meta.json has no word times (the LM's word
                                                                 cues need them), ``phones`` empty when it has
                                                                 no phone times (the LM's phone cues need them)
source               string                                      ``"stems"`` or ``"mix"``
===================  ==========================================  ===============================================

Row order carries no meaning (it depends on the number of workers); sort by ``id`` where order matters.
``info.json`` sums the corpus up: format_version, codebook_size, frame_rate, tokenizer, tokenizer_version,
n_songs, n_frames, shards. ``errors.jsonl`` lists the songs the latest run could not tokenize (id, path,
message). Any Parquet reader works, e.g. ``pyarrow.parquet.read_table(path)`` or
``datasets.load_dataset("parquet", data_files=sorted(glob("TOKENS_DIR/shard-*.parquet")), split="train")``;
``load_token_corpus`` and ``iter_records`` below are the convenience forms.

Indices are stored as int16 (half of int32 on disk and in memory); codebooks have at most 32,768 entries
(the paper config's size), so every index fits.

Runs are resumable: each shard is written to a temporary file and renamed, so a shard either exists whole or
not at all; a new run reads the ``id`` column of the existing shards and skips those songs, so a killed run
loses at most the unfinished shard of each worker. Shards made with a different checkpoint (another
``tokenizer_version``) are refused unless ``--overwrite`` deletes them first.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing
import os
import queue as queue_module
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from corpus.audio_io import atomic_write_json
from corpus.reader import find_song_folders, read_song
from lm.lyrics import INSTRUMENTAL_TAGS, LyricsError, canonical_tag, format_lyrics, parse_lyrics
from lm.phonemes import arpabet_from_festival
from tokenizer.config import DuoTokConfig

FORMAT_VERSION = 1
DEFAULT_CHECKPOINT = "checkpoints/duotok-tiny"
DEFAULT_SHARD_SIZE = 64
MAX_CODEBOOK_SIZE = 32_768  # int16 holds 0..32767
SHARD_PATTERN = re.compile(r"shard-(\d+)-(\d+)\.parquet")
INFO_NAME, ERRORS_NAME = "info.json", "errors.jsonl"

SECTION_TYPE = pa.struct([("name", pa.string()), ("start_frame", pa.int32()), ("end_frame", pa.int32()),
                          ("vocal", pa.bool_())])
PHONE_TYPE = pa.struct([("phone", pa.string()), ("start_frame", pa.int32())])
WORD_TYPE = pa.struct([("text", pa.string()), ("start_frame", pa.int32()), ("phones", pa.list_(PHONE_TYPE))])
SCHEMA = pa.schema([
    ("id", pa.string()),
    ("vocal", pa.list_(pa.int16())),
    ("accomp", pa.list_(pa.int16())),
    ("n_frames", pa.int32()),
    ("frame_rate", pa.float64()),
    ("codebook_size", pa.int32()),
    ("tokenizer", pa.string()),
    ("tokenizer_version", pa.string()),
    ("lyrics", pa.string()),
    ("style", pa.string()),
    ("sections", pa.list_(SECTION_TYPE)),
    ("source", pa.string()),
    ("words", pa.list_(WORD_TYPE)),
])


class UsageError(ValueError):
    """Bad arguments or an output folder this run must not touch; the CLI exits with code 2."""


# --------------------------------------------------------------------------------------------- checkpoint


def checkpoint_identity(checkpoint: str | Path) -> dict:
    """Name, version and sizes of a checkpoint, without building the model (a resumed run with nothing left
    to do never pays for loading it)."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        raise UsageError(f"checkpoint folder {checkpoint} does not exist (train one with python -m "
                         "tokenizer.train, or pass --checkpoint)")
    for name in ("config.json", "model.safetensors"):
        if not (checkpoint / name).is_file():
            raise UsageError(f"checkpoint folder {checkpoint} has no {name} (not a Duo-Tok checkpoint folder)")
    try:
        config = DuoTokConfig.load(checkpoint / "config.json")
    except (ValueError, TypeError) as error:
        raise UsageError(f"{checkpoint / 'config.json'}: invalid config ({error})") from error
    if not 1 <= config.codebook_size <= MAX_CODEBOOK_SIZE:
        raise UsageError(f"{checkpoint}: codebook_size {config.codebook_size} does not fit the int16 token "
                         f"format (at most {MAX_CODEBOOK_SIZE})")
    digest = hashlib.sha1()
    with open(checkpoint / "model.safetensors", "rb") as weights:
        for block in iter(lambda: weights.read(1 << 20), b""):
            digest.update(block)
    return {"tokenizer": checkpoint.resolve().name, "tokenizer_version": digest.hexdigest()[:12],
            "codebook_size": int(config.codebook_size), "frame_rate": float(config.token_rate),
            "sample_rate": int(config.sample_rate)}


# ------------------------------------------------------------------------------------------------ records


def canonical_lyrics(text: str | None) -> str:
    """The ``lm.lyrics`` canonical form of a song's lyrics, ``""`` for none. Unusable lyrics raise
    ``LyricsError``: better to name lyrics.txt now than to have the LM reject the record later."""
    if not text or not text.strip():
        return ""
    return format_lyrics(parse_lyrics(text, require_vocals=False))


def frame_sections(meta_sections, n_frames: int, frame_rate: float, has_words: bool) -> list[dict]:
    """Section spans in frames: contiguous, the first starting at 0 and the last ending at ``n_frames``.

    ``meta_sections`` is meta.json's ``sections`` list (name, start and end in seconds, optional ``vocal``).
    Starts are rounded to frames and clipped to the tracks; each section then ends where the next begins, so
    gaps between sections (and the generator's silent tail after the last one) belong to the section before.
    Sections pushed past the end keep a zero-length span rather than vanish, so the vocal sections still pair
    one to one with the lyric sections. Without sections the song is one section spanning every frame.
    """
    if not meta_sections:
        return [{"name": "verse" if has_words else "inst", "start_frame": 0, "end_frame": n_frames,
                 "vocal": has_words}]
    if not isinstance(meta_sections, list):
        raise ValueError(f"meta.json: sections must be a list, not {type(meta_sections).__name__}")
    names, flags, starts = [], [], []
    for index, section in enumerate(meta_sections):
        if not isinstance(section, dict) or not isinstance(section.get("name"), str):
            raise ValueError(f"meta.json: section {index} must be an object with a string name")
        start, end = section.get("start"), section.get("end")
        if not all(isinstance(t, int | float) and not isinstance(t, bool) and np.isfinite(t) for t in (start, end)):
            raise ValueError(f"meta.json: section {index} needs numeric start and end seconds")
        if end < start:
            raise ValueError(f"meta.json: section {index} ends ({end}) before it starts ({start})")
        raw_name = section["name"].strip()
        vocal = section.get("vocal")
        if vocal is None:  # the LM's convention: only intro/inst/outro are played, not sung
            vocal = canonical_tag(raw_name)[0] not in INSTRUMENTAL_TAGS
        names.append(canonical_tag(raw_name, has_words=bool(vocal))[0])
        flags.append(bool(vocal))
        frame = min(max(round(start * frame_rate), 0), n_frames)
        starts.append(max(frame, starts[-1]) if starts else 0)  # nothing precedes the first section
    ends = [*starts[1:], n_frames]
    return [{"name": name, "start_frame": int(start), "end_frame": int(end), "vocal": vocal}
            for name, start, end, vocal in zip(names, starts, ends, flags, strict=True)]


def frame_words(meta_words, n_frames: int, frame_rate: float) -> list[dict]:
    """Sung words with the frame their singing starts in: meta.json's ``words`` (``text`` and ``start``
    seconds) -> ``{"text", "start_frame", "phones"}`` in time order. The onset is floored, so the frame holds the
    word's first sound: the LM reads the word just before it sings it. Words starting at or after the last
    frame are dropped (nothing of them was tokenized); a song without word times gives an empty list.
    ``phones``: the word's sung phones from its ``syllables`` (``frame_phones``), empty when it has none."""
    if not meta_words:
        return []
    if not isinstance(meta_words, list):
        raise ValueError(f"meta.json: words must be a list, not {type(meta_words).__name__}")
    words = []
    for index, word in enumerate(meta_words):
        start = word.get("start") if isinstance(word, dict) else None
        text = word.get("text") if isinstance(word, dict) else None
        if not isinstance(text, str) or isinstance(start, bool) or not isinstance(start, int | float) \
                or not np.isfinite(start) or start < 0:
            raise ValueError(f"meta.json: word {index} must be an object with a text and a start >= 0 seconds")
        frame = int(np.floor(start * frame_rate))
        if text.strip() and frame < n_frames:
            phones = frame_phones(word.get("syllables"), frame, n_frames, frame_rate, f"word {index}")
            words.append({"text": text.strip(), "start_frame": frame, "phones": phones})
    return sorted(words, key=lambda word: word["start_frame"])  # stable: same-frame words keep sung order


def frame_phones(syllables, word_frame: int, n_frames: int, frame_rate: float, where: str) -> list[dict]:
    """One word's sung phones (``syllables[*].phones[*]``: festival ``phone`` names and ``start`` seconds) ->
    ``{"phone" (ARPAbet), "start_frame"}`` in sung order. Each start is floored like the word's, and kept from
    the word's own frame on and never before the phone before it, so a word's phone cues follow its word cue;
    pauses are dropped, and phones from the last frame on (nothing of them was tokenized)."""
    phones, previous = [], word_frame
    for syllable in syllables or []:
        for phone in (syllable.get("phones") if isinstance(syllable, dict) else None) or []:
            start = phone.get("start") if isinstance(phone, dict) else None
            if isinstance(start, bool) or not isinstance(start, int | float) or not np.isfinite(start):
                raise ValueError(f"meta.json: {where}: each phone needs a start in seconds, got {phone!r}")
            name = arpabet_from_festival(phone.get("phone"))
            frame = max(previous, int(np.floor(start * frame_rate)))
            if name is not None and frame < n_frames:
                phones.append({"phone": name, "start_frame": frame})
                previous = frame
    return phones


def _token_list(indices, codebook_size: int, what: str) -> np.ndarray:
    indices = np.asarray(indices)
    if indices.size and (indices.min() < 0 or indices.max() >= codebook_size):
        raise ValueError(f"{what} tokens outside [0, {codebook_size})")
    assert codebook_size <= MAX_CODEBOOK_SIZE  # checked in checkpoint_identity; int16 would wrap otherwise
    return indices.astype(np.int16)


def encode_song(tok, folder: Path, identity: dict) -> dict:
    """One song folder -> one record (the ``SCHEMA`` fields). Raises on anything unusable."""
    song = read_song(folder, sample_rate=identity["sample_rate"])
    try:
        lyrics = canonical_lyrics(song.lyrics)
    except LyricsError as error:
        raise ValueError(f"{folder / 'lyrics.txt'}: {error}") from None
    if song.has_stems:
        tokens, source = tok.encode(vocals=song.vocals, accompaniment=song.accompaniment,
                                    sample_rate=song.sample_rate), "stems"
    else:
        tokens, source = tok.encode(mix=song.mix, sample_rate=song.sample_rate), "mix"
    n_frames = len(tokens)
    has_words = lyrics != "" and parse_lyrics(lyrics, require_vocals=False).has_words
    return {
        "id": song.id,
        "vocal": _token_list(tokens.vocal, identity["codebook_size"], "vocal"),
        "accomp": _token_list(tokens.accomp, identity["codebook_size"], "accompaniment"),
        "n_frames": n_frames,
        "frame_rate": float(tokens.frame_rate),
        "codebook_size": identity["codebook_size"],
        "tokenizer": identity["tokenizer"],
        "tokenizer_version": identity["tokenizer_version"],
        "lyrics": lyrics,
        "style": song.style or "",
        "sections": frame_sections(song.meta.get("sections"), n_frames, float(tokens.frame_rate), has_words),
        "source": source,
        "words": frame_words(song.meta.get("words"), n_frames, float(tokens.frame_rate)),
    }


# ------------------------------------------------------------------------------------------------- shards


def shard_paths(out_dir: str | Path) -> list[Path]:
    """The finished shards in ``out_dir``, in name order."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    return sorted(p for p in out_dir.iterdir() if SHARD_PATTERN.fullmatch(p.name) and p.is_file())


def _read_columns(out_dir: Path, columns: list[str]) -> pa.Table:
    tables = []
    for path in shard_paths(out_dir):
        try:
            tables.append(pq.read_table(path, columns=columns))
        except (pa.ArrowException, OSError) as error:
            raise UsageError(f"{path}: unreadable shard ({error}); delete it to re-tokenize its songs") from error
    if not tables:
        return pa.table({name: pa.array([], SCHEMA.field(name).type) for name in columns})
    return pa.concat_tables(tables)


class ShardWriter:
    """Buffers records and writes ``shard-<worker>-<n>.parquet`` every ``shard_size`` songs, atomically."""

    def __init__(self, out_dir: Path, worker: int, first_index: int, shard_size: int):
        self.out_dir, self.worker, self.index, self.shard_size = out_dir, worker, first_index, shard_size
        self.buffer: list[dict] = []

    def add(self, record: dict) -> list[str]:
        """Buffer a record; returns the ids written if this filled a shard."""
        self.buffer.append(record)
        return self.flush() if len(self.buffer) >= self.shard_size else []

    def flush(self) -> list[str]:
        if not self.buffer:
            return []
        table = pa.Table.from_pylist(self.buffer, schema=SCHEMA)
        final = self.out_dir / f"shard-{self.worker:02d}-{self.index:05d}.parquet"
        # A dot name never matches SHARD_PATTERN, so readers cannot see a half-written file.
        tmp = self.out_dir / f".{final.name}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as handle:
                pq.write_table(table, handle, compression="zstd")
                handle.flush()
                os.fsync(handle.fileno())  # the rename must not outlive the data after a power cut
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        ids = [record["id"] for record in self.buffer]
        self.buffer, self.index = [], self.index + 1
        return ids


def _next_shard_index(out_dir: Path, worker: int) -> int:
    used = [int(m.group(2)) for p in shard_paths(out_dir) if (m := SHARD_PATTERN.fullmatch(p.name))
            and int(m.group(1)) == worker]
    return max(used, default=-1) + 1


# ------------------------------------------------------------------------------------------------ workers

Emit = Callable[[tuple], None]


def _encode_jobs(tok, jobs: list[tuple[str, str]], writer: ShardWriter, identity: dict, emit: Emit) -> None:
    """Encode ``(id, folder)`` jobs in order; every song ends in one ``encoded`` or ``failed`` event and every
    shard in a ``written`` event. Complete records are flushed even when interrupted (they are whole)."""
    try:
        for song_id, folder in jobs:
            try:
                record = encode_song(tok, Path(folder), identity)
            except Exception as error:  # one bad song must not stop the corpus; it is reported instead
                emit(("failed", song_id, folder, str(error) or type(error).__name__))
                continue
            emit(("encoded", song_id, record["n_frames"]))
            written = writer.add(record)
            if written:
                emit(("written", written))
    finally:
        written = writer.flush()
        if written:
            emit(("written", written))


def _worker_main(worker: int, checkpoint: str, jobs: list[tuple[str, str]], out_dir: str, first_index: int,
                 shard_size: int, identity: dict, events) -> None:
    """Entry point of one spawned process: load the tokenizer once, encode its share, write its shards."""
    import torch

    torch.set_num_threads(1)  # K workers on K cores: more threads per process only contend
    try:
        from tokenizer.duotok import DuoTok

        tok = DuoTok.from_pretrained(checkpoint)
    except Exception as error:
        for song_id, folder in jobs:
            events.put(("failed", song_id, folder, f"worker {worker} could not load the tokenizer: {error}"))
        events.put(("exit", worker))
        return
    writer = ShardWriter(Path(out_dir), worker, first_index, shard_size)
    # On Ctrl-C the parent reports the interruption; the finally in _encode_jobs has kept what was done.
    with contextlib.suppress(KeyboardInterrupt):
        _encode_jobs(tok, jobs, writer, identity, events.put)
    events.put(("exit", worker))


def _run_workers(checkpoint: Path, chunks: list[list[tuple[str, str]]], out_dir: Path, shard_size: int,
                 identity: dict, handle: Emit) -> None:
    """Run one spawned process per chunk and feed their events to ``handle``; a worker that dies without
    saying goodbye is noticed, and its unreported songs come back as failures."""
    # spawn, not fork: torch's thread pools do not survive fork, and spawn behaves the same on every OS.
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    processes = {}
    for worker, jobs in enumerate(chunks):
        process = context.Process(target=_worker_main, daemon=True, name=f"tokenize-{worker}",
                                  args=(worker, str(checkpoint), jobs, str(out_dir),
                                        _next_shard_index(out_dir, worker), shard_size, identity, events))
        process.start()
        processes[worker] = process
    running = set(processes)
    reported: set[str] = set()
    suspects: set[int] = set()
    try:
        while running:
            try:
                event = events.get(timeout=1.0)
            except queue_module.Empty:
                # A worker's events reach the pipe before it exits, but may arrive just after a timeout:
                # only a worker found dead at two timeouts in a row died without its exit event (killed,
                # out of memory).
                dead = {w for w in running if not processes[w].is_alive()}
                confirmed, suspects = dead & suspects, dead
                for worker in confirmed:
                    running.discard(worker)
                    code = processes[worker].exitcode
                    for song_id, folder in chunks[worker]:
                        if song_id not in reported:
                            handle(("failed", song_id, folder, f"worker {worker} died (exit code {code}) "
                                                               "before writing this song"))
                            reported.add(song_id)
                continue
            if event[0] == "exit":
                running.discard(event[1])
                continue
            if event[0] == "written":
                reported.update(event[1])
            elif event[0] == "failed":
                reported.add(event[1])
            handle(event)
    finally:
        for process in processes.values():
            process.join(timeout=30)  # an interrupted worker is flushing its last records
            if process.is_alive():
                process.terminate()
                process.join()


# ------------------------------------------------------------------------------------------------ the run


def _pending_jobs(folders: list[Path], done: set[str]) -> tuple[list[tuple[str, str]], list[tuple], int]:
    """``(jobs, failures, skipped)``: songs to encode, duplicate ids (failed up front) and finished songs."""
    jobs, failures, skipped, first = [], [], 0, {}
    for folder in folders:
        song_id = folder.name
        if song_id in first:  # ids key the records, so a second folder with the same name cannot be stored
            failures.append(("failed", song_id, str(folder), f"song id {song_id!r} is also used by {first[song_id]}"))
            continue
        first[song_id] = folder
        if song_id in done:
            skipped += 1
        else:
            jobs.append((song_id, str(folder)))
    return jobs, failures, skipped


def write_info(out_dir: Path, identity: dict) -> dict:
    """(Re)write ``info.json`` from the shards as they now are, so it also counts earlier runs."""
    table = _read_columns(out_dir, ["id", "n_frames"])
    info = {"format_version": FORMAT_VERSION,
            "codebook_size": identity["codebook_size"], "frame_rate": identity["frame_rate"],
            "tokenizer": identity["tokenizer"], "tokenizer_version": identity["tokenizer_version"],
            "n_songs": table.num_rows, "n_frames": int(pc.sum(table["n_frames"]).as_py() or 0),
            "shards": [p.name for p in shard_paths(out_dir)]}
    atomic_write_json(out_dir / INFO_NAME, info)
    return info


def tokenize_corpus(songs_dir: str | Path, out_dir: str | Path, checkpoint: str | Path = DEFAULT_CHECKPOINT,
                    workers: int = 1, shard_size: int = DEFAULT_SHARD_SIZE, overwrite: bool = False,
                    progress: bool = True, log: Callable[[str], None] | None = None) -> dict:
    """Tokenize every song under ``songs_dir`` not yet in ``out_dir``; returns the run's summary.

    Raises ``UsageError`` for bad arguments (missing folders, no songs, no checkpoint, shards from another
    tokenizer version without ``overwrite``). Songs that fail are listed in ``errors.jsonl`` and counted in
    ``summary["failed"]``; the rest are written regardless."""
    start_time = time.perf_counter()
    log = log or (lambda message: tqdm.write(message, file=sys.stderr))
    songs_dir, out_dir, checkpoint = Path(songs_dir), Path(out_dir), Path(checkpoint)
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if shard_size < 1:
        raise UsageError(f"--shard-size must be at least 1, got {shard_size}")
    if not songs_dir.is_dir():
        raise UsageError(f"songs folder {songs_dir} " + ("is not a folder" if songs_dir.exists() else "does not exist"))
    folders = find_song_folders(songs_dir)
    if not folders:
        raise UsageError(f"no song folders under {songs_dir} (a song folder holds mix.* and/or vocals.* + "
                         "accompaniment.*)")
    identity = checkpoint_identity(checkpoint)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"output {out_dir} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(".shard-*.tmp"):  # left by a killed run; never a finished shard
        stale.unlink(missing_ok=True)

    existing = _read_columns(out_dir, ["id", "tokenizer_version"])
    versions = set(existing["tokenizer_version"].to_pylist())
    if overwrite:
        for path in shard_paths(out_dir):
            path.unlink()
        (out_dir / INFO_NAME).unlink(missing_ok=True)
        existing = existing.slice(0, 0)
    elif versions - {identity["tokenizer_version"]}:
        raise UsageError(f"{out_dir} holds tokens from tokenizer version(s) {', '.join(sorted(versions))}, but "
                         f"{checkpoint} is version {identity['tokenizer_version']}; mixing them would corrupt the "
                         "corpus. Use another --out folder, or --overwrite to delete the old shards")

    jobs, failures, skipped = _pending_jobs(folders, set(existing["id"].to_pylist()))
    summary = {"songs": len(folders), "done": 0, "skipped": skipped, "failed": 0, "frames": 0}
    pending_ids, encoded_ids = {job[0] for job in jobs}, set()
    bar = tqdm(total=len(jobs), disable=not progress, unit="song", desc="tokenize", file=sys.stderr)
    with open(out_dir / ERRORS_NAME, "w", encoding="utf-8") as errors:  # lists this run's failures only

        def handle(event: tuple) -> None:
            kind = event[0]
            if kind == "encoded":
                encoded_ids.add(event[1])
                bar.update(1)
            elif kind == "written":
                summary["done"] += len(event[1])
            elif kind == "failed":
                _, song_id, folder, message = event
                summary["failed"] += 1
                errors.write(json.dumps({"id": song_id, "path": folder, "message": message},
                                        ensure_ascii=False) + "\n")
                errors.flush()
                log(f"FAILED {song_id}: {message}")
                if song_id in pending_ids and song_id not in encoded_ids:
                    bar.update(1)

        for failure in failures:
            handle(failure)
        try:
            chunks = [jobs[w::workers] for w in range(min(workers, len(jobs)))]  # round-robin
            if len(chunks) == 1:  # in-process: no spawn start-up, and the caller's thread settings stand
                from tokenizer.duotok import DuoTok

                tok = DuoTok.from_pretrained(checkpoint)
                writer = ShardWriter(out_dir, 0, _next_shard_index(out_dir, 0), shard_size)
                _encode_jobs(tok, chunks[0], writer, identity, handle)
            elif chunks:
                _run_workers(checkpoint, chunks, out_dir, shard_size, identity, handle)
        finally:
            bar.close()
    info = write_info(out_dir, identity)
    summary.update(frames=info["n_frames"], corpus_songs=info["n_songs"],
                   seconds=round(time.perf_counter() - start_time, 2))
    return summary


# ---------------------------------------------------------------------------------------------- reading


def load_token_corpus(out_dir: str | Path):
    """All shards as one in-memory ``datasets.Dataset`` (token corpora are small: 2 bytes per token)."""
    from datasets import Dataset
    from datasets.table import InMemoryTable

    paths = shard_paths(out_dir)
    if not paths:
        raise FileNotFoundError(f"no token shards (shard-*.parquet) in {out_dir}")
    return Dataset(InMemoryTable(pa.concat_tables([pq.read_table(p, schema=SCHEMA) for p in paths])))


def iter_records(out_dir: str | Path) -> Iterator[dict]:
    """Yield every record as a dict, ``vocal``/``accomp`` as int64 numpy arrays (the LM's id arithmetic),
    reading one row group at a time so memory stays bounded whatever the corpus size."""
    paths = shard_paths(out_dir)
    if not paths:
        raise FileNotFoundError(f"no token shards (shard-*.parquet) in {out_dir}")
    other = [name for name in SCHEMA.names if name not in ("vocal", "accomp")]
    for path in paths:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
            # ListArray offsets index the (unsliced) child values, so slicing them gives each row's tokens
            # without going through Python ints.
            tracks = {}
            for name in ("vocal", "accomp"):
                column = batch.column(name)
                tracks[name] = (column.offsets.to_numpy(), column.values.to_numpy(zero_copy_only=False))
            # shards written before a column existed (``words``) lack it; their rows simply have no such key
            rows = batch.select([name for name in other if name in batch.schema.names]).to_pylist()
            for index, row in enumerate(rows):
                for name, (offsets, values) in tracks.items():
                    row[name] = values[offsets[index]: offsets[index + 1]].astype(np.int64)
                yield row


# -------------------------------------------------------------------------------------------------- CLI


def add_tokenize_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("songs_dir", type=Path, metavar="SONGS_DIR", help="a folder of song folders")
    parser.add_argument("--out", type=Path, required=True, metavar="TOKENS_DIR",
                        help="token corpus folder (created; resumed if it holds shards)")
    parser.add_argument("--checkpoint", type=Path, default=Path(DEFAULT_CHECKPOINT),
                        help="Duo-Tok checkpoint folder (default %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="processes (default %(default)s)")
    parser.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE,
                        help="songs per Parquet shard (default %(default)s)")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the existing shards and tokenize every song again")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_tokenize(args: argparse.Namespace) -> int:
    """Exit codes: 0 all songs tokenized, 1 some failed (see errors.jsonl), 2 bad arguments."""
    try:
        summary = tokenize_corpus(args.songs_dir, args.out, args.checkpoint, workers=args.workers,
                                  shard_size=args.shard_size, overwrite=args.overwrite,
                                  progress=not args.no_progress)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if summary["failed"]:
        print(f"{summary['failed']} song(s) failed; see {Path(args.out) / ERRORS_NAME}", file=sys.stderr)
    print(json.dumps(summary))
    return 1 if summary["failed"] else 0
