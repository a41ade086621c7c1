"""Read and validate song folders (DESIGN.md §4).

A song folder holds ``mix.*``, ``vocals.*`` and ``accompaniment.*`` (mix = vocals + accompaniment),
optional ``stems/{drums,bass,other}.*``, ``lyrics.txt`` with section tags, ``meta.json`` and optionally
``style.txt``. The generator writes all of it as 24 kHz FLAC; a user folder may hold a mix only, the two
stems only, or both, in .flac/.wav/.ogg/.mp3 at any rate and channel count.

``read_song`` loads one folder for training and raises ``SongFolderError`` at the first thing that makes
the song unusable. ``validate_folder`` walks a whole corpus and lists every problem it finds, each with
the file it concerns, so a user can fix a folder in one pass. Both go through ``_inspect_song`` so that
"error" in the validator means exactly "read_song would refuse this song". Nothing here writes to the
user's folders: files are only ever opened for reading.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from corpus import SAMPLE_RATE
from corpus.audio_io import AudioReadError, read_audio, resample

AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".mp3")  # also the preference order when a name has several
TRACK_NAMES = ("mix", "vocals", "accompaniment")
STEM_NAMES = ("drums", "bass", "other")
LENGTH_TOLERANCE_S = 0.050  # encoders pad by a few ms; more than this means the files do not belong together
SILENCE_PEAK = 1e-4  # about -80 dBFS: below this a track carries nothing to learn from
CLIP_LEVEL = 0.999
CLIP_FRACTION = 1e-4  # a few full-scale samples are normal in mastered audio; more is clipping
MIX_RESIDUAL_RATIO = 0.1  # -20 dB: resampling and lossy codecs stay far below this


class SongFolderError(ValueError):
    """A song folder that cannot be used. ``path`` is the file (or folder) at fault."""

    def __init__(self, path: str | Path, message: str):
        self.path = Path(path)
        self.reason = message
        super().__init__(f"{path}: {message}")


@dataclass(frozen=True)
class Problem:
    """One finding of ``validate_folder``; ``severity`` is "error" (unusable) or "warning"."""

    path: Path
    message: str
    severity: str

    def __str__(self) -> str:
        return f"{self.severity.upper()} {self.path}: {self.message}"


@dataclass
class Song:
    """One song, every track mono float32 at ``sample_rate`` and trimmed to the same length."""

    id: str
    path: Path
    sample_rate: int
    mix: np.ndarray | None
    vocals: np.ndarray | None
    accompaniment: np.ndarray | None
    lyrics: str | None
    style: str | None
    meta: dict = field(default_factory=dict)

    @property
    def has_stems(self) -> bool:
        return self.vocals is not None and self.accompaniment is not None

    @property
    def full_mix(self) -> np.ndarray:
        """The mix file if there is one, else vocals + accompaniment."""
        if self.mix is not None:
            return self.mix
        return self.vocals + self.accompaniment

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.full_mix) / self.sample_rate


class _Report:
    """Collects problems; in strict mode the first error is raised instead (that is ``read_song``)."""

    def __init__(self, strict: bool):
        self.strict = strict
        self.problems: list[Problem] = []
        self.has_error = False

    def error(self, path: Path, message: str) -> None:
        self.has_error = True
        if self.strict:
            raise SongFolderError(path, message)
        self.problems.append(Problem(Path(path), message, "error"))

    def warning(self, path: Path, message: str) -> None:
        self.problems.append(Problem(Path(path), message, "warning"))


def _audio_candidates(folder: Path, names: tuple[str, ...]) -> dict[str, list[Path]]:
    """Audio files in ``folder`` whose stem is one of ``names`` (case-insensitive), best suffix first."""
    found: dict[str, list[Path]] = {}
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return found
    for entry in entries:
        stem, suffix = entry.stem.lower(), entry.suffix.lower()
        if stem in names and suffix in AUDIO_SUFFIXES and entry.is_file():
            found.setdefault(stem, []).append(entry)
    for paths in found.values():
        paths.sort(key=lambda p: AUDIO_SUFFIXES.index(p.suffix.lower()))
    return found


TEXT_FILES = ("lyrics.txt", "meta.json", "style.txt")


def _is_song_folder(folder: Path) -> bool:
    return folder.is_dir() and bool(_audio_candidates(folder, TRACK_NAMES))


def _looks_like_song_folder(folder: Path) -> bool:
    """A song folder, or one with a song's text files but no audio (the validator reports those)."""
    return _is_song_folder(folder) or any((folder / name).is_file() for name in TEXT_FILES)


def _walk_folders(root: Path, accept) -> list[Path]:
    if not root.is_dir():
        return []
    if accept(root):
        return [root]
    folders = []
    for current, subdirs, _files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))  # skip .git, caches
        here = Path(current)
        if here != root and accept(here):
            folders.append(here)
            subdirs[:] = []  # a song's stems/ folder is part of the song, not another song
    return sorted(folders)


def find_song_folders(root: str | Path) -> list[Path]:
    """Song folders under ``root`` (sorted); ``[root]`` when ``root`` is itself a song folder."""
    return _walk_folders(Path(root), _is_song_folder)


def _choose(found: dict[str, list[Path]], names: tuple[str, ...], prefix: str, report: _Report):
    """One file per track name; extra files for the same name are reported and ignored."""
    chosen: dict[str, Path] = {}
    for name in names:
        paths = found.get(name, [])
        for extra in paths[1:]:
            report.warning(extra, f"ignored: {paths[0].name} is used for the {name} track")
        if paths:
            chosen[prefix + name] = paths[0]
    return chosen


def _most_agreed(keys: list[str], agrees) -> str:
    """The key that agrees with most others (ties: the first, so the mix wins); it is the reference
    the odd files are named against, so a single bad file is the one reported."""
    return max(keys, key=lambda key: sum(agrees(key, other) for other in keys))


def _check_audio(folder: Path, sample_rate: int, report: _Report, thorough: bool):
    """Read, check and align the audio. Returns ``{track: samples}`` at ``sample_rate``, or None."""
    chosen = _choose(_audio_candidates(folder, TRACK_NAMES), TRACK_NAMES, "", report)
    if not chosen:
        report.error(folder, "no audio: expected mix.* and/or vocals.* + accompaniment.* "
                             f"({' '.join(AUDIO_SUFFIXES)})")
        return None
    if "mix" not in chosen and len(chosen) == 1:
        present = next(iter(chosen))
        missing = "accompaniment" if present == "vocals" else "vocals"
        report.error(chosen[present], f"{present} without {missing}.* and no mix.*: "
                                      "a folder without a mix needs both vocals and accompaniment")
        return None
    if thorough:  # stems are not used for training, so read_song does not spend time on them
        stems_found = _audio_candidates(folder / "stems", STEM_NAMES)
        chosen.update(_choose(stems_found, STEM_NAMES, "stems/", report))

    native: dict[str, tuple[np.ndarray, int]] = {}
    for key, path in chosen.items():
        try:
            native[key] = read_audio(path)
        except AudioReadError as error:
            report.error(path, f"cannot read as audio ({error.__cause__ or error})")
    for key, (samples, _rate) in native.items():
        path = chosen[key]
        peak = float(np.abs(samples).max()) if samples.size else 0.0
        if peak < SILENCE_PEAK:
            message = f"silent (peak {peak:.1e} < {SILENCE_PEAK:.0e})"
            if key == "mix":
                report.error(path, message)
            else:  # an instrumental has silent vocals; that is allowed but worth a look
                report.warning(path, message)
        if thorough and samples.size:
            clipped = int(np.count_nonzero(np.abs(samples) >= CLIP_LEVEL))
            if clipped > CLIP_FRACTION * samples.size:
                report.warning(path, f"clipped: {clipped} samples ({100 * clipped / samples.size:.2f}%) "
                                     "at full scale")
    if not native:
        return None

    # Rates and lengths are compared on the files as stored, before any resampling.
    keys = list(native)
    rate_ref = _most_agreed(keys, lambda a, b: native[a][1] == native[b][1])
    seconds = {key: len(samples) / rate for key, (samples, rate) in native.items()}
    length_ref = _most_agreed(keys, lambda a, b: abs(seconds[a] - seconds[b]) <= LENGTH_TOLERANCE_S)
    for key in keys:
        rate, ref_rate = native[key][1], native[rate_ref][1]
        if rate != ref_rate:
            report.warning(chosen[key], f"sample rate {rate} Hz differs from {chosen[rate_ref].name} "
                                        f"({ref_rate} Hz); both are resampled to {sample_rate} Hz")
        gap = seconds[key] - seconds[length_ref]
        if abs(gap) > LENGTH_TOLERANCE_S:
            report.error(chosen[key], f"length {seconds[key]:.3f} s differs from {chosen[length_ref].name} "
                                      f"({seconds[length_ref]:.3f} s) by {1000 * abs(gap):.0f} ms "
                                      f"(tolerance {1000 * LENGTH_TOLERANCE_S:.0f} ms)")
    if report.has_error:
        return None

    tracks = {key: resample(samples, rate, sample_rate) for key, (samples, rate) in native.items()}
    shortest = min(len(samples) for samples in tracks.values())  # small gaps: trim, not pad
    tracks = {key: samples[:shortest] for key, samples in tracks.items()}

    if "mix" not in tracks:
        summed = tracks["vocals"] + tracks["accompaniment"]
        peak = float(np.abs(summed).max()) if summed.size else 0.0
        if peak < SILENCE_PEAK:
            report.error(chosen["vocals"], "vocals + accompaniment are silent together (no mix to use)")
            return None
    elif thorough and "vocals" in tracks and "accompaniment" in tracks:
        residual = tracks["mix"] - (tracks["vocals"] + tracks["accompaniment"])
        ratio = float(np.sqrt(np.mean(residual**2)) / max(np.sqrt(np.mean(tracks["mix"] ** 2)), 1e-12))
        if ratio > MIX_RESIDUAL_RATIO:
            report.warning(chosen["mix"], f"mix differs from vocals + accompaniment by "
                                          f"{20 * np.log10(ratio):.1f} dB relative to the mix "
                                          f"(expected below {20 * np.log10(MIX_RESIDUAL_RATIO):.0f} dB)")
    return tracks


def _read_text(path: Path, report: _Report) -> str | None:
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: editors on Windows prepend a BOM
    except UnicodeDecodeError as error:
        report.error(path, f"not UTF-8 text ({error.reason} at byte {error.start})")
    except OSError as error:
        report.error(path, f"cannot read ({error.strerror})")
    return None


def _check_text(folder: Path, report: _Report) -> tuple[str | None, str | None, dict]:
    """Lyrics, style and meta. Returns ``(lyrics, style, meta)``."""
    meta: dict = {}
    meta_path = folder / "meta.json"
    if meta_path.is_file():
        text = _read_text(meta_path, report)
        if text is not None:
            try:
                loaded = json.loads(text)
            except json.JSONDecodeError as error:
                report.error(meta_path, f"invalid JSON ({error.msg} at line {error.lineno})")
            else:
                if isinstance(loaded, dict):
                    meta = loaded
                else:
                    report.error(meta_path, f"must hold a JSON object, not {type(loaded).__name__}")

    lyrics = None
    lyrics_path = folder / "lyrics.txt"
    if not lyrics_path.is_file():
        report.warning(lyrics_path, "missing: the song is used without lyrics")
    else:
        text = _read_text(lyrics_path, report)
        if text is not None and not text.strip():
            report.warning(lyrics_path, "empty: the song is used without lyrics")
        elif text is not None:
            lyrics = text.strip()

    # meta.json's style_prompt first: the generator writes it there; style.txt is the user's way.
    style = None
    prompt = meta.get("style_prompt")
    if prompt is not None and not isinstance(prompt, str):
        report.error(meta_path, f'"style_prompt" must be a string, not {type(prompt).__name__}')
    elif prompt and prompt.strip():
        style = prompt.strip()
    style_path = folder / "style.txt"
    if style is None and style_path.is_file():
        text = _read_text(style_path, report)
        if text is not None and text.strip():
            style = text.strip()
        elif text is not None:
            report.warning(style_path, "empty: the song is used without a style text")
    elif style is None:
        report.warning(style_path, 'missing style: add style.txt or a "style_prompt" in meta.json')
    return lyrics, style, meta


def _inspect_song(folder: Path, sample_rate: int, report: _Report, thorough: bool) -> Song | None:
    tracks = _check_audio(folder, sample_rate, report, thorough)
    lyrics, style, meta = _check_text(folder, report)
    if tracks is None or report.has_error:
        return None
    return Song(id=folder.name, path=folder, sample_rate=sample_rate, mix=tracks.get("mix"),
                vocals=tracks.get("vocals"), accompaniment=tracks.get("accompaniment"),
                lyrics=lyrics, style=style, meta=meta)


def read_song(folder: str | Path, sample_rate: int = SAMPLE_RATE) -> Song:
    """Load one song folder. Raises SongFolderError (naming the file) if the song is unusable."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SongFolderError(folder, "not a folder" if folder.exists() else "does not exist")
    song = _inspect_song(folder, sample_rate, _Report(strict=True), thorough=False)
    assert song is not None  # strict mode raises on every error
    return song


def validate_folder(root: str | Path, sample_rate: int = SAMPLE_RATE) -> list[Problem]:
    """Every problem in every song folder under ``root``. Never writes anything."""
    root = Path(root)
    if not root.exists():
        return [Problem(root, "does not exist", "error")]
    if not root.is_dir():
        return [Problem(root, "is not a folder", "error")]
    folders = _walk_folders(root, _looks_like_song_folder)
    if not folders:
        return [Problem(root, "no song folders (a song folder holds mix.* and/or vocals.* + "
                              "accompaniment.*)", "error")]
    problems: list[Problem] = []
    first_with_id: dict[str, Path] = {}
    for folder in folders:
        # ids key the splits and the token caches, so two folders with one name would collide
        if folder.name in first_with_id:
            problems.append(Problem(folder, f"song id {folder.name!r} is also used by "
                                            f"{first_with_id[folder.name]}", "error"))
        first_with_id.setdefault(folder.name, folder)
        report = _Report(strict=False)
        _inspect_song(folder, sample_rate, report, thorough=True)
        problems.extend(report.problems)
    return problems


def add_validate_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``validate DIR``."""
    parser.add_argument("dir", type=Path, help="a song folder or a folder of song folders")
    parser.add_argument("--sample-rate", type=int, default=SAMPLE_RATE,
                        help="rate the tracks are compared at (default %(default)s)")


def run_validate(args: argparse.Namespace) -> int:
    """Print one line per problem and a summary; exit code 1 if there is any error."""
    problems = validate_folder(args.dir, args.sample_rate)
    for problem in problems:
        print(problem)
    errors = sum(problem.severity == "error" for problem in problems)
    warnings = len(problems) - errors
    print(f"{len(find_song_folders(args.dir))} songs, {errors} errors, {warnings} warnings")
    return 1 if errors else 0
