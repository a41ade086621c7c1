"""Audio file I/O shared by the corpus, the tokenizer and the app: soundfile for reading and writing
(no ffmpeg, no torchaudio; reference/libraries.md §0), soxr for resampling, atomic writes so a reader
never sees a half-written file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

# tempfile's mkstemp / mkdtemp make private temporaries (files 0600, folders 0700). Once one is renamed into place
# it is an ordinary output, so it gets the mode open() or mkdir() would have given it under this process's umask:
# a corpus, a checkpoint or a song written for others to read is readable by them. The umask can only be read by
# setting it, so it is read once, at import.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def give_default_mode(path: str | Path, directory: bool = False) -> None:
    """Set ``path`` to the mode a plain ``open`` (0666) or ``mkdir`` (0777) would have given it, less the umask."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_UMASK)


class AudioReadError(ValueError):
    """A file that exists but cannot be read as audio."""


@contextlib.contextmanager
def atomic_target(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` for the caller to write; when the block ends without an error it gets the
    default mode and is renamed onto ``path`` (a reader sees the old file or the new one, never half of one);
    on an error it is removed and ``path`` is left as it was. ``suffix`` is for writers that infer the format
    from it. Every atomic write of the project goes through here."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        give_default_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    with atomic_target(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, ensure_ascii=False) + "\n")


def write_audio(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write mono audio atomically. int16 input is stored bit-exactly (so sums of stems stay exact);
    float input is clipped to [-1, 1] and stored as 16-bit PCM. The format follows the suffix."""
    path = Path(path)
    samples = np.asarray(samples)
    subtype = "PCM_16"
    fmt = {".flac": "FLAC", ".wav": "WAV"}.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"unsupported audio suffix {path.suffix!r} for {path} (use .flac or .wav)")
    if samples.dtype != np.int16:
        samples = np.clip(samples.astype(np.float32), -1.0, 1.0)
    with atomic_target(path, suffix=path.suffix) as tmp:
        sf.write(tmp, samples, sample_rate, subtype=subtype, format=fmt)


def read_audio(path: str | Path, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read a file as mono float32. Channels are averaged; with ``sample_rate`` given the audio is
    resampled to it with soxr. Returns ``(samples[N], rate)``. Raises AudioReadError with the path."""
    path = Path(path)
    try:
        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioReadError(f"{path}: cannot read as audio ({error})") from error
    mono = samples.mean(axis=1)
    if sample_rate is not None and rate != sample_rate:
        mono = resample(mono, rate, sample_rate)
        rate = sample_rate
    return mono.astype(np.float32), rate


def read_int16(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a 16-bit file as its exact integer samples (used to check sample-exact sums)."""
    samples, rate = sf.read(str(path), dtype="int16", always_2d=True)
    return samples[:, 0], rate


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """High-quality resampling of a mono signal."""
    if rate_in == rate_out:
        return samples
    return soxr.resample(samples, rate_in, rate_out, quality="HQ").astype(samples.dtype, copy=False)
