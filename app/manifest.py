"""A generated song's record (the manifest) and its output folder.

The manifest is a JSON-able dict holding everything needed to re-make the song and to know what made it:

    format, version          "duosong-song", MANIFEST_VERSION
    inputs                   mode, lyrics as typed, style, duration, seed, sampling options, track, section,
                             and what was uploaded (file name, rate, length, peak)
    lyrics_normalised        the lyrics as sung (lm.lyrics.format_lyrics), "" without words
    warnings                 notes for the user (guessed tags, trimmed uploads, …)
    based_on                 for continue/resample from a manifest: its mode, seed and token hash
    software, checkpoints    package versions; sha1 (12 hex) of every model.safetensors under the checkpoint
                             folder, the same hash the token corpus calls tokenizer_version
    audio                    sample_rate, frame_rate, samples_per_frame, n_frames, seconds
    decoder                  steps (None: the decoders' default) and seed of the token -> audio decoders
    style_ids                the style text as sentencepiece pieces
    lm                       prompt_start_section: the first section the LM saw as context (continue and
                             resample leave the start of a song longer than its context out of the prompt)
    sections                 tag, instrumental, text_ids (pieces), first_frame, n_frames, start/end seconds,
                             which tracks were sampled in this call ("sampled"; the others were kept), and the
                             word cues of a word-cue LM ("cues": [frame in the section, [pieces]] each)
    lines                    each sung lyric line at the second its first word's cue starts, and an empty line
                             where each sung section ends (app.lrc; [] without word cues)
    tokens                   vocal and accomp codes (lists of ints, 25 Hz) and their sha1
    mix                      the mix levels: {"vocals_db": dB, "accompaniment_db": dB}, null = muted (app.mixing;
                             0 dB each when absent)
    takes                    with options.takes > 1, per sung section given vocal takes: its index, its lyric
                             words, Whisper's word errors for each take and which take was kept (app.pipeline)
    timings                  seconds per stage
    files                    (manifest.json written by ``save`` only) the audio files beside it and the gain
                             applied to all three (1 unless the mix was louder than full scale)

``redecode`` needs only ``tokens``, ``decoder`` and ``inputs.mode`` (and ``mix`` for the mix's levels): the same
tokens, steps and seed give the same audio. ``save`` writes ``mix``, ``vocals`` and ``accompaniment`` audio,
``lyrics.lrc`` (when the song has timed lines) and ``manifest.json`` into a folder; each file is written to a
temporary name and renamed, and ``manifest.json`` is removed first and written last, so a folder with a manifest
always holds the whole song it describes (``app.pipeline.load_song`` reads it back).
"""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import json
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from app.lrc import LRC_NAME, lrc_text
from app.mixing import LEVEL_KEYS, LevelError, check_levels, gain, song_levels
from corpus.audio_io import atomic_write_json, atomic_write_text, write_audio
from lm.layout import FRAME_RATE_HZ, LayoutError, SectionTokens, SongTokens
from lm.lyrics import CANONICAL_TAGS

# the shipped checkpoints a SongGenerator loads by default (DESIGN.md §3: one folder per component)
DEFAULT_CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
TOKENIZER_FOLDER, LM_FOLDER = "duotok-tiny", "lm-tiny"

MANIFEST_FORMAT = "duosong-song"
MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.json"
STEMS = ("mix", "vocals", "accompaniment")
AUDIO_FORMATS = ("wav", "flac")


class ManifestError(ValueError):
    """A manifest that cannot be read or does not describe a song; the message says which part."""


# --- versions ---------------------------------------------------------------------------------------------------


def file_version(path: str | Path) -> str:
    """sha1 of a file, 12 hex digits (tokenizer/tokenize_corpus.py hashes checkpoints the same way)."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def checkpoint_versions(root: str | Path, folders: Sequence[str]) -> dict[str, str]:
    """``{"duotok-tiny": sha, "duotok-tiny/vocoder": sha, …}`` for every ``model.safetensors`` in or under
    the given checkpoint folders."""
    root = Path(root)
    versions = {}
    for folder in folders:
        for weights in sorted((root / folder).rglob("model.safetensors")):
            versions[weights.parent.relative_to(root).as_posix()] = file_version(weights)
    return versions


def software_versions() -> dict[str, str]:
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return {"duosong": version("duosong"), "python": platform.python_version(), "torch": version("torch"),
            "transformers": version("transformers"), "numpy": np.__version__}


def tokens_version(vocal: np.ndarray, accomp: np.ndarray) -> str:
    """sha1 of the two code tracks, 12 hex digits: names a song's tokens in ``based_on``."""
    digest = hashlib.sha1(np.ascontiguousarray(vocal, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(accomp, dtype=np.int64).tobytes())
    return digest.hexdigest()[:12]


# --- building -----------------------------------------------------------------------------------------------


def build_manifest(*, inputs: dict, lyrics_normalised: str, warnings: list[str], based_on: dict | None,
                   sampled, software: dict, checkpoints: dict, sample_rate: int, samples_per_frame: int,
                   decoder: dict, timings: dict, lines: list[dict] | None = None,
                   mix: dict | None = None, takes: list[dict] | None = None) -> dict:
    """The manifest of a finished song (module docstring) from the LM stage's ``app.pipeline.Sampled``: the
    song, per section the tracks sampled in this call, the first section the LM saw as context."""
    song = sampled.song
    vocal = np.concatenate([s.vocal for s in song.sections]).astype(np.int64)
    accomp = np.concatenate([s.accomp for s in song.sections]).astype(np.int64)
    sections, first = [], 0
    for section, tracks in zip(song.sections, sampled.tracks, strict=True):
        sections.append({"tag": section.tag, "instrumental": bool(section.instrumental),
                         "text_ids": [int(i) for i in section.text_ids], "first_frame": first,
                         "n_frames": section.n_frames, "start_seconds": first / FRAME_RATE_HZ,
                         "end_seconds": (first + section.n_frames) / FRAME_RATE_HZ, "sampled": list(tracks),
                         "cues": [[cue.frame, list(cue.text_ids)] for cue in section.cues]})
        first += section.n_frames
    return {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
        "inputs": inputs, "lyrics_normalised": lyrics_normalised, "warnings": list(warnings), "based_on": based_on,
        "software": software, "checkpoints": checkpoints,
        "audio": {"sample_rate": int(sample_rate), "frame_rate": FRAME_RATE_HZ,
                  "samples_per_frame": int(samples_per_frame), "n_frames": len(vocal),
                  "seconds": len(vocal) / FRAME_RATE_HZ},
        "decoder": decoder,
        "lm": {"prompt_start_section": int(sampled.prompt_start)},
        "style_ids": [int(i) for i in song.style_ids],
        "sections": sections,
        "lines": list(lines or []),
        "tokens": {"vocal": vocal.tolist(), "accomp": accomp.tolist(), "sha1": tokens_version(vocal, accomp)},
        "mix": check_levels(mix),
        "takes": list(takes or []),
        "timings": timings,
    }


def based_on(manifest: Mapping) -> dict:
    """What a continue/resample records about the song it started from."""
    return {"mode": manifest["inputs"].get("mode"), "seed": manifest["inputs"].get("seed"),
            "tokens_sha1": manifest["tokens"].get("sha1")}


# --- reading ------------------------------------------------------------------------------------------------


def read_manifest(source) -> dict:
    """A manifest from a dict, a JSON file, or a folder holding ``manifest.json``; checked as far as the
    format goes (``song_from_manifest`` checks the song). Returns a deep copy the caller may change."""
    if isinstance(source, str | Path):
        path = Path(source)
        if path.is_dir():
            path = path / MANIFEST_NAME
        try:
            source = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ManifestError(f"{path} does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ManifestError(f"{path} is not a readable JSON file ({error})") from None
    if not isinstance(source, Mapping):
        raise ManifestError(f"expected a manifest (a JSON object), got {type(source).__name__}")
    if source.get("format") != MANIFEST_FORMAT:
        raise ManifestError(f"not a song manifest (format is {source.get('format')!r}, expected {MANIFEST_FORMAT!r})")
    if source.get("version") != MANIFEST_VERSION:
        raise ManifestError(f"manifest version {source.get('version')!r} is not supported (this app reads "
                            f"version {MANIFEST_VERSION})")
    for key, kind in (("inputs", Mapping), ("tokens", Mapping), ("sections", list), ("style_ids", list),
                      ("decoder", Mapping), ("audio", Mapping)):
        if not isinstance(source.get(key), kind):
            raise ManifestError(f"the manifest lacks {key!r} or it has the wrong type")
    try:
        check_levels(source.get("mix"))
    except LevelError as error:
        raise ManifestError(f"the mix levels: {error}") from None
    return copy.deepcopy(dict(source))


def _int_list(values, what: str) -> np.ndarray:
    if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ManifestError(f"{what} must be a list of integers")
    return np.asarray(values, dtype=np.int64)


def manifest_tokens(manifest: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """The manifest's (vocal, accomp) code tracks, checked to be integer lists of one length."""
    vocal = _int_list(manifest["tokens"].get("vocal"), "tokens.vocal")
    accomp = _int_list(manifest["tokens"].get("accomp"), "tokens.accomp")
    if len(vocal) != len(accomp) or not len(vocal):
        raise ManifestError(f"tokens.vocal ({len(vocal)}) and tokens.accomp ({len(accomp)}) must be non-empty "
                            "and equally long")
    if (vocal < 0).any() or (accomp < 0).any():
        raise ManifestError("tokens hold negative codes")
    return vocal, accomp


def song_from_manifest(manifest: Mapping) -> SongTokens:
    """The manifest's song as ``SongTokens`` (style pieces, sections with their codes), checked: sections
    contiguous from frame 0 and covering the tokens exactly."""
    vocal, accomp = manifest_tokens(manifest)
    style_ids = _int_list(manifest["style_ids"], "style_ids")
    sections, first = [], 0
    for index, entry in enumerate(manifest["sections"]):
        where = f"sections[{index}]"
        if not isinstance(entry, Mapping):
            raise ManifestError(f"{where} must be an object")
        tag, instrumental, n_frames = entry.get("tag"), entry.get("instrumental"), entry.get("n_frames")
        if tag not in CANONICAL_TAGS:
            raise ManifestError(f"{where}.tag {tag!r} is not one of {', '.join(CANONICAL_TAGS)}")
        if not isinstance(instrumental, bool):
            raise ManifestError(f"{where}.instrumental must be true or false")
        if isinstance(n_frames, bool) or not isinstance(n_frames, int) or n_frames < 1:
            raise ManifestError(f"{where}.n_frames must be a positive integer")
        if entry.get("first_frame") != first:
            raise ManifestError(f"{where} starts at frame {entry.get('first_frame')!r}; sections must be contiguous "
                                f"(expected {first})")
        text_ids = _int_list(entry.get("text_ids"), f"{where}.text_ids")
        if instrumental and len(text_ids):
            raise ManifestError(f"{where} is instrumental but has lyric text")
        cues = entry.get("cues", [])  # absent in manifests written before word cues
        if not isinstance(cues, list) or not all(isinstance(c, list) and len(c) == 2 and isinstance(c[0], int)
                                                 and not isinstance(c[0], bool) for c in cues):
            raise ManifestError(f"{where}.cues must be a list of [frame, [pieces]] pairs")
        cues = [(frame, _int_list(pieces, f"{where}.cues pieces").tolist()) for frame, pieces in cues]
        try:  # SectionTokens checks the cues: in frame order, inside the section, none in an instrumental one
            sections.append(SectionTokens(tag, text_ids.tolist(), vocal[first:first + n_frames],
                                          accomp[first:first + n_frames], instrumental, cues))
        except LayoutError as error:
            raise ManifestError(f"{where}.cues: {error}") from None
        first += n_frames
    if not sections or first != len(vocal):
        raise ManifestError(f"the sections cover {first} frames but the tokens have {len(vocal)}")
    return SongTokens(style_ids.tolist(), sections)


# --- the output folder --------------------------------------------------------------------------------------


def _check_formats(formats) -> tuple[str, ...]:
    if isinstance(formats, str):
        formats = (formats,)
    formats = tuple(dict.fromkeys(str(f).lower().lstrip(".") for f in formats))
    bad = [f for f in formats if f not in AUDIO_FORMATS]
    if bad or not formats:
        raise ValueError(f"audio format {bad[0] if bad else 'list'!r} is not supported; choose from "
                         f"{', '.join(AUDIO_FORMATS)}")
    return formats


def save(result, out_dir: str | Path, formats=("wav",)) -> dict[str, Path]:
    """Write ``result`` (a ``SongResult``) as ``mix``, ``vocals``, ``accompaniment`` in each of ``formats``
    (wav, flac; 16-bit), ``lyrics.lrc`` when the manifest has timed lines, and ``manifest.json`` into
    ``out_dir``; returns ``{name: path}``.

    The stems are written as decoded and the mix at the manifest's levels (``app.mixing``): each stem is rounded
    to 16 bits at its mix level and the mix file is their integer sum, so at 0 dB mix = vocals + accompaniment
    holds sample-exactly in the files, as in the corpus's song folders (DESIGN.md §4). A song louder than full
    scale (in the mix or in a stem) is turned down as a whole (all three files alike) and the gain recorded."""
    formats = _check_formats(formats)
    levels = song_levels(result.manifest)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)  # from here until the end the folder is "incomplete"
    (out_dir / LRC_NAME).unlink(missing_ok=True)  # an older song's lyric times
    for stem in STEMS:  # files of formats not asked for now would describe an older song
        for other in AUDIO_FORMATS:
            if other not in formats:
                (out_dir / f"{stem}.{other}").unlink(missing_ok=True)

    stems = [np.asarray(result.vocals, np.float64), np.asarray(result.accompaniment, np.float64)]
    levelled = [stem * gain(levels[key]) for stem, key in zip(stems, LEVEL_KEYS, strict=True)]
    peak = max((float(np.abs(a).max()) for a in (*stems, levelled[0] + levelled[1]) if len(a)), default=0.0)
    scale = 1.0 if peak <= 0.999 else 0.999 / peak
    vocals, accompaniment = (np.round(stem * scale * 32767).astype(np.int16) for stem in stems)
    # |g_v·v + g_a·a| <= 0.999 full scale before rounding, so the integer sum stays inside int16
    mix = sum(np.round(stem * scale * 32767).astype(np.int32) for stem in levelled)
    mix = np.asarray(mix, np.int32).clip(-32768, 32767).astype(np.int16)

    paths = {}
    for fmt in formats:
        for stem, samples in zip(STEMS, (mix, vocals, accompaniment), strict=True):
            path = out_dir / f"{stem}.{fmt}"
            write_audio(path, samples, result.sample_rate)
            paths[f"{stem}.{fmt}"] = path
    manifest = dict(result.manifest)
    if manifest.get("lines"):
        atomic_write_text(out_dir / LRC_NAME, lrc_text(manifest["lines"], len(result.mix) / result.sample_rate))
        paths[LRC_NAME] = out_dir / LRC_NAME
    manifest["files"] = {"names": sorted(paths), "gain": scale}
    atomic_write_json(out_dir / MANIFEST_NAME, manifest)
    paths[MANIFEST_NAME] = out_dir / MANIFEST_NAME
    return paths
