"""The Gradio web UI (DESIGN.md §7): lyrics + style in; a mix and its vocal and accompaniment stems out.

    from app.pipeline import SongGenerator
    from app.ui import create_ui
    create_ui(SongGenerator()).launch()          # what ``python app.py`` does

``create_ui(generator)`` builds the page around a ``SongGenerator`` it is handed (no model lives in module
globals, so tests and the Space decide when models load). Left column, top to bottom, in the order a first-time
user fills it: mode (with the upload it needs, shown only for the modes that take one), lyrics with a live lyric
checker (sections, the seconds each gets, warnings, a normalised copy), style with one-click examples, duration and
seed, an "Advanced" accordion with the sampling settings, Generate and Stop, then complete example songs. Right
column: the three players, a picture of the result (mel spectrogram per track with the section boundaries), a zip of
everything, a summary; then "Mix levels" (each track's level in the mix, or muted), "Change one track" (re-sample
the vocal or the accompaniment, of one section or all) and "Check the sung lyrics" (Whisper on the vocal stem, per
section, with a retake button for the worst section).

Named endpoints, callable with ``gradio_client`` (``Client(url).predict(..., api_name="/generate")``):

=====================  =====================================================  ======================================
api_name               inputs                                                 outputs
=====================  =====================================================  ======================================
``generate``           lyrics, style, duration (s), seed, mode, upload        mix, vocals, accompaniment (WAV files),
                       (audio file or None), manifest (manifest.json or        picture (PNG), download (zip of stems +
                       None; continue only), temperature, top_k (0 = off),    manifest + picture), manifest
                       top_p, cfg_scale, decoder_steps, takes (1-4),          (manifest.json), summary (Markdown)
                       phone_guidance
``resample``           manifest, track ("vocal"/"accompaniment"), section     the same seven outputs
                       ("all" or a 0-based section number), seed, then the
                       seven sampling settings
``check_lyrics``       lyrics, mode, duration                                 sections table, notes (Markdown),
                                                                              normalised lyrics
``check_sung_lyrics``  vocals (audio file), manifest                          per-section table, summary (Markdown)
``remix``              manifest, vocal level (dB), vocal muted, accompaniment  the same seven outputs, the mix at the
                       level (dB), accompaniment muted                        new levels (``app.mixing``)
=====================  =====================================================  ======================================

Errors: every handler turns bad input into a ``gr.Error`` whose text says which field is wrong and what to do
(the pipeline's ``InputError`` already names the field); anything unexpected is logged with its traceback on
the server and the user sees one line without internals. Out-of-range values sent straight to the API are
caught by the input components themselves (``_named_errors`` below), which name the field.

Stopping: the song handlers are generators that yield "no change" as the song is made (at most once per percent
of progress), so Gradio can stop them between yields: the Stop button cancels them, and so does closing the page.
Stopping closes the pipeline's ``generate_events``, which ends the generation at its next frame, so an abandoned
song does not keep the CPU from the next one in the queue.

Concurrency: the generator serialises model use with a lock, so song events run one at a time
(``concurrency_id`` "song"); the Whisper check has its own slot; the queue is bounded (``QUEUE_SIZE``) so a busy
Space refuses new work with a message instead of piling it up. The lyric checker is cheap and runs outside the
queue, so it answers while a song is being generated.
"""

from __future__ import annotations

import contextlib
import html
import logging
import random
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import gradio as gr
import librosa
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from app import lyric_check
from app.manifest import ManifestError, read_manifest
from app.mixing import LEVEL_RANGE_DB, UNITY_LEVELS, LevelError, describe, song_levels
from app.pipeline import InputError, ProgressEvent, SongGenerator, SongResult, save
from app.request import DURATION_RANGE, MAX_SEED, OPTION_RANGES, SUNG_MODES, UPLOAD_MODES, SongOptions
from corpus.audio_io import AudioReadError, read_audio
from lm.layout import FRAME_RATE_HZ
from lm.lyrics import LyricsError, format_lyrics, parse_lyrics

log = logging.getLogger(__name__)

QUEUE_SIZE = 16  # waiting requests; a 20 s song takes tens of seconds on CPU, so more would wait for minutes
N_SONG_OUTPUTS = 7  # mix, vocals, accompaniment, picture, download, manifest, summary
OUTPUT_ROOT = Path(tempfile.gettempdir()) / "duosong-ui"
KEEP_OUTPUTS_SECONDS = 3600  # a finished song's files stay downloadable this long
CPU_DEFAULT_SECONDS = 20.0  # about half a minute of waiting on a 2-core CPU; a GPU affords a longer first song
GPU_DEFAULT_SECONDS = 30.0

# --- what the page offers ---------------------------------------------------------------------------------------

# (label, value, one-line explanation); "resample" is not here: it changes a finished song, so it has its own panel
MODES = [
    ("Full song", "full", "Vocals and accompaniment from your lyrics and style."),
    ("Instrumental", "instrumental", "Accompaniment only. Lyrics are optional; their section tags give the form."),
    ("A cappella", "a_cappella", "The vocal alone, sung from your lyrics."),
    ("Accompany my vocal", "accompany", "Upload a vocal recording; the app plays an accompaniment under it."),
    ("Sing over my instrumental", "sing_over", "Upload an instrumental; the app sings your lyrics over it."),
    ("Continue a song", "continue", "Continues an uploaded song, or a song made here (its manifest.json), for "
                                    "Duration more seconds. Lyrics are optional."),
]
MODE_HELP = {value: text for _, value, text in MODES}
UPLOAD_LABEL = {"accompany": "Your vocal (a recording of the voice alone)",
                "sing_over": "Your instrumental (no vocals)",
                "continue": "The song to continue (or leave empty and use a manifest.json below)"}

# One per corpus genre, in the phrasing the LM was trained on (corpus style prompts).
STYLE_CHIPS = [
    ("Pop", "upbeat pop, female vocal, 120 bpm, piano and synth bass"),
    ("Rock", "driving hard rock, male vocal, overdriven guitar and bass guitar"),
    ("Ballad", "tender piano ballad, female vocal, 72 bpm, piano and strings"),
    ("Folk", "hopeful acoustic folk, male vocal, banjo and upright bass"),
    ("Electronic", "euphoric house, female vocal, 128 bpm, saw lead and synth bass"),
    ("Jazz", "smooth jazz, male vocal, electric piano, upright bass and tenor sax"),
    ("Country", "sunny country, female vocal, acoustic guitar and bass guitar"),
    ("Reggae", "laid-back roots reggae, male vocal, organ and synth bass"),
]

# Complete songs for gr.Examples: (lyrics, style, duration). Short enough for the tiny LM's ~38 s context.
EXAMPLES = [
    ("[verse]\nwe were dancing in the summer light\nholding on until the end of night\n\n"
     "[chorus]\nsing it loud and sing it clear\nall the dreams we have are here\n",
     STYLE_CHIPS[0][1], 20),
    ("[intro]\n\n[verse]\nthe river runs beside the road\ni carry home a heavy load\n\n"
     "[chorus]\nhold me close tonight\nuntil the morning light\n\n[outro]\n",
     STYLE_CHIPS[2][1], 25),
    ("[verse]\nsunshine on the water\nwe are walking slow\n\n[inst]\n\n"
     "[chorus]\nwe stay together\nwherever we go\n",
     STYLE_CHIPS[7][1], 20),
    # Written the way other apps format lyrics, to show what the checker normalises.
    ("[Verse 1]\nCity lights (city lights) are calling me\n\n[Hook]\nRun away, run away with me \u2764\ufe0f\n\n"
     "[Guitar Solo]\n",
     STYLE_CHIPS[1][1], 20),
]

# InputError.field -> the label the user sees on the page
FIELD_LABELS = {
    "lyrics": "Lyrics", "style": "Style", "duration": "Duration", "seed": "Seed", "mode": "Mode",
    "audio": "Upload", "audio_rate": "Upload", "manifest": "Song record (manifest.json)", "track": "Track",
    "section": "Section", "options": "Advanced settings", "options.temperature": "Temperature",
    "options.top_k": "Top-k", "options.top_p": "Top-p", "options.cfg_scale": "CFG scale",
    "options.decoder_steps": "Decoder steps", "options.takes": "Vocal takes", "request": "Request",
    "vocals_db": "Vocal level", "accompaniment_db": "Accompaniment level", "mix": "Mix levels",
}

TIMING_NAMES = {"encode": "upload", "lm": "LM", "takes": "vocal takes", "decode": "audio"}
STAGE_NAMES = {"encode": "Reading the upload", "lm": "Writing the song (LM)",
               "takes": "Vocal takes (Whisper keeps the clearest)", "decode": "Rendering audio", "done": "Done"}


def _escape(text: str) -> str:
    """User text inside Gradio's HTML-rendered messages and Markdown: <, > and & escaped, quotes left readable."""
    return html.escape(text, quote=False)


def _error(message: str) -> gr.Error:
    """A user-facing error. Gradio renders the text as HTML, so user text inside it is escaped; the traceback
    of an expected input error is noise in the server log, so it is not printed."""
    return gr.Error(_escape(message), print_exception=False)


# --- input checks that name the field -------------------------------------------------------------------------
# Gradio checks slider and number bounds and radio choices itself, before a handler runs, with messages such as
# "Value 500 is greater than maximum value 38." that do not say which control is meant. ``_named_errors`` wraps a
# component's ``preprocess`` so those errors name the field. (Wrapping the instance, not subclassing: Gradio's
# component metaclass writes a .pyi stub next to any module that subclasses a component.) A component that a handler
# changes with ``gr.update(...)`` is rebuilt by Gradio from its constructor arguments and loses the wrapper, so
# only components whose properties never change are wrapped.


def _expected(component) -> str:
    if isinstance(component, gr.Radio):
        return "is not one of " + ", ".join(repr(value) for _, value in component.choices)
    if isinstance(component, gr.Number) and component.precision == 0:
        return f"is not allowed; choose a whole number from {component.minimum:.0f} to {component.maximum:.0f}"
    return f"is out of range; choose {component.minimum:g} to {component.maximum:g}"


def _named_errors(component):
    """Make ``component`` report bad values sent to it as "<label>: <value> <what is allowed>"; returns it."""
    check = component.preprocess

    def preprocess(payload):
        try:
            return check(payload)
        except (gr.Error, TypeError, ValueError):
            raise _error(f"{component.label}: {payload!r} {_expected(component)}") from None

    component.preprocess = preprocess
    return component


def _slider(*args, **kwargs) -> gr.Slider:
    return _named_errors(gr.Slider(*args, **kwargs))


def _number(*args, **kwargs) -> gr.Number:
    return _named_errors(gr.Number(*args, **kwargs))


def _radio(*args, **kwargs) -> gr.Radio:
    return _named_errors(gr.Radio(*args, **kwargs))


# --- the lyric sheet (format check before generation) ------------------------------------------------------------

SHEET_HEADERS = ["#", "section", "seconds", "lines", "first line"]


def _table(rows: list[list], headers) -> pd.DataFrame:
    """Rows for a gr.Dataframe; a DataFrame keeps the column headers even when there are no rows."""
    return pd.DataFrame(rows, columns=list(headers))


def lyric_sheet(generator: SongGenerator, lyrics: str, mode: str, duration: float
                ) -> tuple[pd.DataFrame, str, str]:
    """What the song will be made of: one table row per section (with the seconds it gets at this duration), notes
    in Markdown (errors, the parser's warnings), and the lyrics in canonical form. Never raises for bad lyrics:
    a checker reports problems instead of failing.

    For modes without an upload this asks the generator itself (``check_request``), so the sections, seconds
    and warnings are exactly the ones Generate will use; with an upload the song's length and form come from the
    recording, so only the lyrics are parsed."""
    lyrics = lyrics if isinstance(lyrics, str) else ""
    sings = mode in SUNG_MODES
    try:
        normalised = format_lyrics(parse_lyrics(lyrics, require_vocals=False)) if lyrics.strip() else ""
    except LyricsError:
        normalised = ""
    if not lyrics.strip() and not sings:
        return _table([], SHEET_HEADERS), "No lyrics: fine for this mode; the song gets an instrumental form.", ""
    try:
        if mode in UPLOAD_MODES or mode == "continue":
            parsed = parse_lyrics(lyrics, require_vocals=sings)
            rows = [[i + 1, s.tag, "—", len(s.lines), s.display_lines[0] if s.display_lines else "(instrumental)"]
                    for i, s in enumerate(parsed.sections)]
            warnings = [*parsed.warnings, "section lengths follow your upload"]
        else:
            request = generator.check_request(lyrics, "", duration, 0, mode)
            rows = [[i + 1, s.tag, round(s.n_frames / FRAME_RATE_HZ, 1), len(s.lines),
                     s.lines[0] if s.lines else "(instrumental)"] for i, s in enumerate(request.sections)]
            warnings = request.warnings
    except (InputError, LyricsError) as error:
        message = error.message if isinstance(error, InputError) else str(error)
        return _table([], SHEET_HEADERS), f"⛔ **Cannot use these lyrics:** {_escape(message)}", normalised
    notes = [f"✅ {len(rows)} section{'s' if len(rows) != 1 else ''}, ready."]
    notes += [f"- ⚠️ {_escape(warning)}" for warning in warnings]
    return _table(rows, SHEET_HEADERS), "\n".join(notes), normalised


# --- the picture -----------------------------------------------------------------------------------------------

PICTURE_HOP = 240  # 10 ms at 24 kHz: fine enough to see syllables, ~4,000 columns for a 38 s song


def render_picture(result: SongResult, path: Path) -> Path:
    """A PNG with the mel spectrogram of the vocal and of the accompaniment, section boundaries and tags, and the
    parts this call kept rather than sampled (an upload, the other track of a re-sample) greyed out."""
    rate, seconds = result.sample_rate, len(result.mix) / result.sample_rate
    sections = result.manifest.get("sections", [])
    figure = Figure(figsize=(10, 4.8), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)  # the Agg canvas renders without pyplot's global state (handlers run in threads)
    axes = figure.subplots(2, 1, sharex=True)
    for axis, (title, track, audio) in zip(axes, (("Vocals", "vocal", result.vocals),
                                                  ("Accompaniment", "accomp", result.accompaniment)), strict=True):
        mel = librosa.feature.melspectrogram(y=np.asarray(audio, np.float32), sr=rate, n_fft=1024,
                                             hop_length=PICTURE_HOP, n_mels=80)
        silent = float(mel.max()) <= 1e-10
        image = librosa.power_to_db(mel, ref=max(float(mel.max()), 1e-10), top_db=80.0)
        axis.imshow(image, origin="lower", aspect="auto", extent=(0, seconds, 0, 80), cmap="magma", vmin=-80, vmax=0)
        axis.set_ylabel("mel band")
        axis.set_title(f"{title}{' (silent)' if silent else ''}", loc="left", fontsize=10)
        for section in sections:
            start, end = section["start_seconds"], section["end_seconds"]
            axis.axvline(start, color="white", linewidth=0.8, alpha=0.8)
            if track not in section.get("sampled", [track]):
                axis.axvspan(start, end, color="grey", alpha=0.55, linewidth=0)
                axis.text((start + end) / 2, 40, "kept", color="white", ha="center", va="center", fontsize=8)
            if axis is axes[0]:
                axis.text(start + 0.1, 76, f"[{section['tag']}]", color="white", va="top", fontsize=8)
    axes[-1].set_xlabel("seconds")
    figure.savefig(path)
    return path


# --- files of one song -------------------------------------------------------------------------------------------


def _new_output_folder() -> Path:
    """A fresh folder for one song's files. Folders older than ``KEEP_OUTPUTS_SECONDS`` are removed first, so a
    long-running Space does not fill its disk (Gradio keeps its own copies for the page, see ``delete_cache``)."""
    OUTPUT_ROOT.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - KEEP_OUTPUTS_SECONDS
    for old in OUTPUT_ROOT.iterdir():
        try:
            if old.is_dir() and old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except FileNotFoundError:  # another request removed it first
            pass
    return Path(tempfile.mkdtemp(prefix="song-", dir=OUTPUT_ROOT))


def _summary(result: SongResult) -> str:
    inputs, timings = result.manifest["inputs"], result.manifest.get("timings", {})
    mode = next((label for label, value, _ in MODES if value == inputs["mode"]), inputs["mode"])
    if inputs["mode"] == "resample":
        part = "all sections" if inputs.get("section") is None else f"section {inputs['section'] + 1}"
        mode = f"re-sampled the {'vocal' if inputs.get('track') == 'vocal' else 'accompaniment'} of {part}"
    stages = ", ".join(f"{TIMING_NAMES.get(name, name)} {seconds:.1f} s"
                       for name, seconds in timings.items() if name != "total")
    lines = [f"**{result.seconds:.1f} s** · {mode} · seed {inputs['seed']} · made in "
             f"{timings.get('total', 0):.1f} s ({stages})"]
    if result.levels != UNITY_LEVELS:
        lines.append(f"Mix levels: {describe(result.levels)} (the stems are as decoded)")
    lines += [f"- ⚠️ {_escape(warning)}" for warning in result.warnings]
    takes = result.manifest.get("takes") or []
    if takes:  # which take each section kept, and what Whisper heard in every take
        lines.append("\n**Vocal takes** (Whisper's word errors per take; the kept one in bold):\n")
        for record in takes:
            tag = result.manifest["sections"][record["section"]]["tag"]
            errors = " · ".join(f"**{e}**" if i == record["kept"] else str(e) for i, e in enumerate(record["errors"]))
            lines.append(f"- section {record['section'] + 1} [{tag}], {record['words']} words: {errors}")
    sung = [line for line in result.manifest.get("lines", []) if line["text"]]
    if sung:  # where to listen for each line (the LM's word cues; app.lrc)
        lines.append("\n**When each line is sung** (also in the zip, as `lyrics.lrc`):\n")
        for line in sung:
            minutes, tenths = divmod(round(line["seconds"] * 10), 600)  # 59.96 s is 1:00.0, not 0:60.0
            lines.append(f"- {minutes}:{tenths // 10:02d}.{tenths % 10} {_escape(line['text'])}")
    return "\n".join(lines)


def _song_files(result: SongResult) -> tuple:
    """Write a song's stems, manifest, picture and zip into a fresh folder; returns the seven song outputs
    (mix, vocals, accompaniment, picture, zip, manifest, summary)."""
    folder = _new_output_folder()
    paths = save(result, folder)
    picture = render_picture(result, folder / "song.png")
    inputs = result.manifest["inputs"]
    archive = folder / f"duosong-{inputs['mode']}-seed{inputs['seed']}.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for path in [*paths.values(), picture]:
            bundle.write(path, arcname=path.name)
    return (str(paths["mix.wav"]), str(paths["vocals.wav"]), str(paths["accompaniment.wav"]), str(picture),
            str(archive), str(paths["manifest.json"]), _summary(result))


# --- the handlers ----------------------------------------------------------------------------------------------


def _options(temperature, top_k, top_p, cfg_scale, decoder_steps, takes, phone_guidance) -> dict:
    """The Advanced sliders as ``SongOptions`` fields; top-k 0 means off (None)."""
    return {"temperature": temperature, "top_k": top_k if top_k else None, "top_p": top_p,
            "cfg_scale": cfg_scale, "decoder_steps": decoder_steps, "takes": takes, "phone_guidance": phone_guidance}


def _progress_reporter(progress: gr.Progress) -> Callable[[ProgressEvent], bool]:
    """Pipeline events -> the page's progress bar, one bar per stage. The LM reports every 25 Hz frame; only
    whole-percent changes are passed on, so the page is not flooded with updates. ``report`` says whether it
    passed the event on."""
    last = None

    def report(event: ProgressEvent) -> bool:
        nonlocal last
        key = (event.stage, int(100 * event.fraction))
        if key == last:
            return False
        last = key
        progress(event.fraction, desc=f"{STAGE_NAMES.get(event.stage, event.stage)}: {event.message}")
        return True

    return report


def _section_choice(section) -> int | None:
    """The re-sample section control: "all" (or empty) -> None, else a 0-based section number."""
    if section is None or (isinstance(section, str) and section.strip().lower() in ("", "all")):
        return None
    try:
        number = float(section)
    except (TypeError, ValueError):
        raise _error(f"Section: {section!r} is not a section; choose 'all' or a section number") from None
    if not number.is_integer():
        raise _error(f"Section: {section!r} is not a section; choose 'all' or a section number")
    return int(number)


def _hide_paths(text: str, *paths) -> str:
    """Uploaded files by their own names, not by the server's temporary paths (which mean nothing to the user and
    tell a stranger about the server)."""
    for path in paths:
        if isinstance(path, str) and path:
            text = text.replace(path, Path(path).name)
    return text


def _input_error_text(error: InputError, arguments: dict) -> str:
    """An ``InputError`` in the page's words, the field's label first: "Style is 600 characters long …",
    "Upload: the upload is silent …"."""
    label = FIELD_LABELS.get(error.field, error.field)
    verb_first = error.message.startswith(("is ", "must ", "only ", "has "))
    text = f"{label} {error.message}" if verb_first else f"{label}: {error.message}"
    return _hide_paths(text, arguments.get("audio"), arguments.get("manifest"))


class SongActions:
    """What the buttons do, around one ``SongGenerator``. Every public method is an event handler: Gradio passes
    the component values in, and a ``gr.Error`` carries anything that went wrong back to the page."""

    def __init__(self, generator: SongGenerator):
        self.generator = generator

    def _make(self, progress: gr.Progress, **arguments) -> Iterator[tuple]:
        """Run one generation and write its files: yields "no change" to the seven song outputs with each progress
        update (the points where Gradio can stop it, module docstring), then the seven song outputs."""
        report = _progress_reporter(progress)
        result = None
        try:
            for item in self.generator.generate_events(**arguments):
                if isinstance(item, SongResult):
                    result = item
                elif report(item):
                    yield tuple(gr.skip() for _ in range(N_SONG_OUTPUTS))
            if result is None:
                raise RuntimeError("the generation ended without a song")
            outputs = _song_files(result)
        except InputError as error:
            raise _error(_input_error_text(error, arguments)) from None
        except Exception as error:
            log.exception("generation failed (mode %s, seed %s)", arguments.get("mode"), arguments.get("seed"))
            raise _error(f"The song could not be made ({type(error).__name__}). This is a fault in the app, not in "
                         "your input; the server log has the details.") from None
        for warning in result.warnings:
            gr.Warning(_escape(warning))
        yield outputs

    def generate(self, lyrics, style, duration, seed, mode, upload, manifest, temperature, top_k, top_p, cfg_scale,
                 decoder_steps, takes, phone_guidance, progress=gr.Progress()):  # noqa: B008 (Gradio's way of asking for a progress bar)
        """Make a song in any mode but re-sample."""
        yield from self._make(progress, lyrics=lyrics, style=style, duration=duration, seed=seed, mode=mode,
                              audio=upload or None, manifest=manifest or None,
                              options=_options(temperature, top_k, top_p, cfg_scale, decoder_steps, takes,
                                               phone_guidance))

    def resample(self, manifest, track, section, seed, temperature, top_k, top_p, cfg_scale, decoder_steps, takes,
                 phone_guidance, progress=gr.Progress()):  # noqa: B008
        """Sample one track of a finished song again (one section or all), keeping the other track."""
        if not manifest:
            raise _error("Song record (manifest.json): make a song first, or upload the manifest.json of one")
        # lyrics, style and length come from the manifest; the pipeline still checks the duration argument, so a
        # valid placeholder is passed
        yield from self._make(progress, lyrics="", style="", duration=DURATION_RANGE[0], seed=seed,
                              mode="resample", manifest=manifest, track=track, section=_section_choice(section),
                              options=_options(temperature, top_k, top_p, cfg_scale, decoder_steps, takes,
                                               phone_guidance))

    def remix(self, manifest, vocals_db, vocals_muted, accompaniment_db, accompaniment_muted,
              progress=gr.Progress()) -> tuple:  # noqa: B008
        """The song's mix made again at new levels; returns the seven song outputs. The page holds Gradio's copy
        of the manifest, away from the song's files, so the stems are decoded again from its tokens (the same
        stems: same tokens, steps and seed; about half a second for a 30 s song at the default steps)."""
        if not manifest:
            raise _error("Mix levels: make a song first, or upload the manifest.json of one")
        levels = {"vocals_db": None if vocals_muted else vocals_db,
                  "accompaniment_db": None if accompaniment_muted else accompaniment_db}
        try:
            result = self.generator.redecode(manifest, _progress_reporter(progress)).remixed(levels)
            outputs = _song_files(result)
        except (InputError, LevelError) as error:
            label = FIELD_LABELS.get(error.field, error.field)
            raise _error(_hide_paths(f"{label}: {error.message}", manifest)) from None
        except Exception as error:
            log.exception("remix failed")
            raise _error(f"The mix could not be made ({type(error).__name__}); the server log has the details.") \
                from None
        return outputs

    def check_sung_lyrics(self, vocals, manifest) -> tuple[pd.DataFrame, str]:
        """Whisper on the vocal stem, section by section: what it heard and which lines it missed."""
        if not vocals or not manifest:
            raise _error("Check the sung lyrics: make a song first (the check needs its vocals and manifest)")
        try:
            record = read_manifest(manifest)
            samples, rate = read_audio(vocals)
        except (ManifestError, AudioReadError) as error:
            raise _error(_hide_paths(f"Check the sung lyrics: {error}", vocals, manifest)) from None
        sections = lyric_check.sections_from_manifest(
            record["sections"], [self._section_lines(s) for s in record["sections"]])
        try:
            report = lyric_check.check_lyrics(samples, int(rate), sections)
        except ValueError as error:  # sections that do not belong to this audio, empty audio
            raise _error(f"Check the sung lyrics: {error}") from None
        except Exception as error:
            log.exception("lyric check failed")
            raise _error(f"The lyric check failed ({type(error).__name__}); the server log has the details.") from None
        table = _table(report.to_rows(), lyric_check.ROW_HEADERS)
        if report.wer is None:
            return table, "This song has no sung lyrics to check."
        summary = (f"**Word error rate {report.wer:.0%}** ({report.errors} errors in {report.words} words). "
                   "Whisper misses some words even in clean singing (about 40 % on the training songs), "
                   "so compare sections with each other rather than with 0.")
        return table, summary

    def _section_lines(self, section: dict) -> list[str]:
        """A manifest section's lyric lines, read back from the text pieces the LM was given."""
        return self.generator.section_lines(section.get("text_ids") or [], bool(section.get("instrumental")))


# --- the page --------------------------------------------------------------------------------------------------


def _section_choices(manifest_path) -> list[tuple[str, str | int]]:
    """Dropdown entries for the sections of a manifest: "All sections", then "1 · [verse] 0.0–5.2 s", …"""
    choices: list[tuple[str, str | int]] = [("All sections", "all")]
    if manifest_path:
        try:
            sections = read_manifest(manifest_path)["sections"]
        except ManifestError:
            return choices
        choices += [(f"{i + 1} · [{s['tag']}] {s['start_seconds']:.1f}–{s['end_seconds']:.1f} s", i)
                    for i, s in enumerate(sections)]
    return choices


def _level_controls(manifest_path) -> tuple:
    """The values of the four mix level controls (vocal dB, vocal muted, accompaniment dB, accompaniment muted)
    for a song's manifest; 0 dB and not muted for none."""
    levels = dict(UNITY_LEVELS)
    if manifest_path:
        with contextlib.suppress(ManifestError):  # a broken record: the controls just start at 0 dB
            levels = song_levels(read_manifest(manifest_path))
    return (0.0 if levels["vocals_db"] is None else levels["vocals_db"], levels["vocals_db"] is None,
            0.0 if levels["accompaniment_db"] is None else levels["accompaniment_db"],
            levels["accompaniment_db"] is None)


def _worst_section(report: pd.DataFrame) -> int | None:
    """The 0-based index of the sung section with the highest word error rate in a lyric-check table (instrumental
    rows show "-" and are skipped), so "Re-sample this section's vocal" starts on the section most worth a retake."""
    wer = pd.to_numeric(report["WER"], errors="coerce").reset_index(drop=True) if "WER" in report else None
    return None if wer is None or wer.isna().all() else int(wer.idxmax())


def _decoder_default_steps(generator: SongGenerator) -> int:
    """The shipped decoders' own number of flow steps (what ``decoder_steps=None`` means): the slider starts there,
    so the page's default song is the CLI's default song. ``SongGenerator`` has loaded the decoders already."""
    return int(generator.tokenizer.decoder("vocal").config.default_steps)


def create_ui(generator: SongGenerator) -> gr.Blocks:
    """The whole page around ``generator``; call ``.launch()`` on the result (``app.py`` does)."""
    actions = SongActions(generator)
    longest = int(min(DURATION_RANGE[1], generator.max_duration))
    default_seconds = GPU_DEFAULT_SECONDS if generator.device.type == "cuda" else CPU_DEFAULT_SECONDS
    default_seconds = min(default_seconds, longest)
    defaults = SongOptions()

    with gr.Blocks(title="duosong — lyrics to song", delete_cache=(KEEP_OUTPUTS_SECONDS, KEEP_OUTPUTS_SECONDS)
                   ) as demo:
        gr.Markdown("# duosong — lyrics to song\nWrite lyrics, describe the style, press **Generate**. You get the "
                    "song plus its vocal and accompaniment as separate tracks.")
        with gr.Row(equal_height=False):
            with gr.Column(scale=5):
                mode = _radio([(label, value) for label, value, _ in MODES], value="full", label="Mode")
                mode_help = gr.Markdown(MODE_HELP["full"])
                upload = gr.Audio(label="Upload", sources=["upload", "microphone"], type="filepath", format=None,
                                  visible=False)
                continue_manifest = gr.File(label="…or continue a song made here (its manifest.json)",
                                            file_types=[".json"], type="filepath", visible=False)
                lyrics = gr.Textbox(label="Lyrics", lines=10, max_lines=30,
                                    info="Start sections with [verse], [chorus], [bridge], [intro], [outro] or "
                                         "[inst]; one sung line per line.",
                                    placeholder="[verse]\nwe were dancing in the summer light\n\n[chorus]\n…")
                sheet_notes = gr.Markdown("Type lyrics (or pick an example below) to see how they will be read.",
                                          label="Notes")
                with gr.Accordion("Lyrics check: sections and normalised lyrics", open=False):
                    sheet = gr.Dataframe(headers=SHEET_HEADERS, label="Sections", interactive=False, wrap=True)
                    normalised = gr.Textbox(label="Normalised lyrics", lines=4, interactive=False)
                    with gr.Row():
                        check_button = gr.Button("Check lyrics", size="sm")
                        use_normalised = gr.Button("Use normalised lyrics", size="sm")
                style = gr.Textbox(label="Style", lines=1, info="Genre, mood, voice, tempo, instruments.",
                                   placeholder=STYLE_CHIPS[0][1])
                chips = []
                for row in (STYLE_CHIPS[:4], STYLE_CHIPS[4:]):  # two even rows fit a narrow column
                    with gr.Row():
                        chips += [gr.Button(name, size="sm", min_width=60) for name, _ in row]
                with gr.Row():
                    duration = _slider(DURATION_RANGE[0], longest, value=default_seconds, step=1,
                                       label="Duration (s)", scale=3,
                                       info=f"Up to {longest} s with this model. Continue: the new part only.")
                    with gr.Column(scale=2, min_width=160):
                        seed = _number(value=0, label="Seed", precision=0, minimum=0, maximum=MAX_SEED,
                                       info="Same seed + same settings = same song.")
                        dice = gr.Button("🎲 New seed", size="sm")
                with gr.Accordion("Advanced", open=False):
                    temperature = _slider(*OPTION_RANGES["temperature"], value=defaults.temperature, step=0.05,
                                          label="Temperature", info="Lower = safer and more repetitive; 0 = greedy.")
                    # up to the codebook size: a larger top-k keeps every code, the same as off (0)
                    top_k = _slider(0, generator.tokenizer.config.codebook_size, value=defaults.top_k or 0,
                                    step=1, label="Top-k",
                                    info="Sample among the k likeliest tokens; 0 = off.")
                    top_p = _slider(*OPTION_RANGES["top_p"], value=defaults.top_p, step=0.01, label="Top-p",
                                    info="Nucleus sampling; 1 = off.")
                    cfg_scale = _slider(*OPTION_RANGES["cfg_scale"], value=defaults.cfg_scale, step=0.1,
                                        label="CFG scale",
                                        info="Above 1 follows style and lyrics harder, at twice the LM time; 1 = off.")
                    phone_guidance = _slider(*OPTION_RANGES["phone_guidance"], value=defaults.phone_guidance,
                                             step=0.1, label="Lyric guidance",
                                             info="Pull the vocal towards each sung sound of the lyrics (the LM's "
                                                  "phone table); higher = clearer words, less free melody. 0 = off.")
                    decoder_steps = _slider(*OPTION_RANGES["decoder_steps"], value=_decoder_default_steps(generator),
                                            step=1, label="Decoder steps",
                                            info="Flow steps from tokens to audio; more = finer, slower. "
                                                 "0 = fastest.")
                    takes = _slider(*OPTION_RANGES["takes"], value=defaults.takes, step=1,
                                    label="Vocal takes per section",
                                    info="Sing each section this many times and keep the take whose words "
                                         "Whisper hears best; each take adds about one more LM pass.")
                with gr.Row():
                    generate_button = gr.Button("Generate", variant="primary", size="lg", scale=3)
                    stop_button = gr.Button("Stop", variant="stop", size="lg", scale=1)
                gr.Examples(examples=[list(example) for example in EXAMPLES], inputs=[lyrics, style, duration],
                            label="Example songs (click to fill in)")

            with gr.Column(scale=6):
                mix = gr.Audio(label="Song (mix)", type="filepath", interactive=False)
                vocals = gr.Audio(label="Vocals", type="filepath", interactive=False)
                accompaniment = gr.Audio(label="Accompaniment", type="filepath", interactive=False)
                picture = gr.Image(label="Picture: mel spectrogram per track, with the sections", type="filepath",
                                   interactive=False)
                summary = gr.Markdown(label="Summary")
                download = gr.File(label="Download (stems + manifest + picture, zip)", interactive=False)
                with gr.Accordion("Mix levels", open=False):
                    gr.Markdown("Turn the vocal or the accompaniment up, down or off in the mix. The stems stay as "
                                "they are; the new mix replaces the song's mix and zip, and re-samples keep it. "
                                "Without the app: `python -m app remix SONG_FOLDER --vocals-db -3`.")
                    levels = []
                    for name in ("Vocal", "Accompaniment"):
                        with gr.Row():
                            levels.append(_slider(*LEVEL_RANGE_DB, value=0.0, step=0.5, label=f"{name} level (dB)",
                                                  scale=4))
                            levels.append(gr.Checkbox(value=False, label="Mute", scale=1, min_width=80))
                    remix_button = gr.Button("Apply to the mix", variant="secondary")
                with gr.Accordion("Change one track", open=False):
                    gr.Markdown("Sample the vocal or the accompaniment again (one section or the whole song) and "
                                "keep the other track as it is.")
                    manifest = gr.File(label="Song to change (manifest.json; filled in after each song)",
                                       file_types=[".json"], type="filepath", interactive=True)
                    with gr.Row():
                        track = _radio([("Vocal", "vocal"), ("Accompaniment", "accompaniment")], value="vocal",
                                       label="Track")
                        section = gr.Dropdown(_section_choices(None), value="all", label="Section",
                                              allow_custom_value=True)
                        resample_seed = _number(value=1, label="Seed", precision=0, minimum=0, maximum=MAX_SEED)
                    resample_button = gr.Button("Re-sample", variant="secondary")
                with gr.Accordion("Check the sung lyrics", open=False):
                    gr.Markdown("Whisper listens to the vocal track section by section and shows what it heard.")
                    check_sung_button = gr.Button("Check the sung lyrics")
                    sung_summary = gr.Markdown(label="Summary")
                    sung_table = gr.Dataframe(headers=list(lyric_check.ROW_HEADERS), label="Per section",
                                              interactive=False, wrap=True)
                    with gr.Row():
                        vocal_section = gr.Dropdown(_section_choices(None)[1:], label="Section", scale=3,
                                                    allow_custom_value=True)
                        resample_vocal_button = gr.Button("Re-sample this section's vocal", scale=2)

        # --- wiring: cheap page updates outside the queue; the models inside it -----------------------------------
        options = [temperature, top_k, top_p, cfg_scale, decoder_steps, takes, phone_guidance]
        song_outputs = [mix, vocals, accompaniment, picture, download, manifest, summary]

        def show_mode(chosen, upload_path, song_record):
            """Show the upload (and, for continue, the manifest input) only in the modes that take them. Hidden
            inputs are still sent, so they are emptied: a mode switch must not cause "takes no upload". Continue
            starts from the song made here unless a recording is already uploaded."""
            needs_upload = chosen in UPLOAD_MODES or chosen == "continue"
            record = song_record if chosen == "continue" and not upload_path else None
            return (MODE_HELP.get(chosen, ""),
                    gr.update(visible=needs_upload, label=UPLOAD_LABEL.get(chosen, "Upload"),
                              **({} if needs_upload else {"value": None})),
                    gr.update(visible=chosen == "continue", value=record))

        mode.change(show_mode, [mode, upload, manifest], [mode_help, upload, continue_manifest], queue=False,
                    api_visibility="private")
        # Continue takes a recording or a manifest, not both: the one given last wins.
        upload.upload(lambda: None, None, [continue_manifest], queue=False, api_visibility="private")
        continue_manifest.upload(lambda: None, None, [upload], queue=False, api_visibility="private")

        def check_lyrics(lyrics_text: str, chosen_mode: str, seconds: float):
            """How the lyrics will be read: sections (with the seconds each gets), notes, normalised lyrics."""
            return lyric_sheet(generator, lyrics_text, chosen_mode, seconds)

        sheet_outputs = [sheet, sheet_notes, normalised]
        check_button.click(check_lyrics, [lyrics, mode, duration], sheet_outputs, api_name="check_lyrics",
                           queue=False)
        for trigger in (lyrics.change, mode.change, duration.release):
            trigger(check_lyrics, [lyrics, mode, duration], sheet_outputs, queue=False, api_visibility="private")
        use_normalised.click(lambda current, canonical: canonical or current, [lyrics, normalised], [lyrics],
                             queue=False, api_visibility="private")
        for chip, (_, text) in zip(chips, STYLE_CHIPS, strict=True):
            chip.click(lambda text=text: text, None, [style], queue=False, api_visibility="private")
        dice.click(lambda: random.randint(0, MAX_SEED), None, [seed], queue=False, api_visibility="private")

        def after_song(manifest_path, chosen_mode):
            """Point the follow-up panels at the new song: its sections, a fresh re-sample seed (the same seed
            would draw the same tokens again), an emptied lyric check, the mix level controls at the song's
            levels (a re-sample keeps them); in continue mode the next Generate continues the new, longer song
            (the upload is part of it now)."""
            choices = _section_choices(manifest_path)
            continuing = chosen_mode == "continue"
            return (gr.update(choices=choices, value="all"), random.randint(0, MAX_SEED),
                    gr.update(choices=choices[1:], value=None), _table([], lyric_check.ROW_HEADERS), "",
                    gr.update(value=manifest_path if continuing else None),
                    gr.update(value=None) if continuing else gr.update(), *_level_controls(manifest_path))

        song_event = {"concurrency_id": "song", "concurrency_limit": 1}
        private = {"queue": False, "api_visibility": "private"}
        follow_up = (after_song, [manifest, mode],
                     [section, resample_seed, vocal_section, sung_table, sung_summary, continue_manifest, upload,
                      *levels])

        generate_event = generate_button.click(
            actions.generate, [lyrics, style, duration, seed, mode, upload, continue_manifest, *options],
            song_outputs, api_name="generate", **song_event,
        )
        generate_event.success(*follow_up, **private)
        resample_event = resample_button.click(
            actions.resample, [manifest, track, section, resample_seed, *options], song_outputs, api_name="resample",
            **song_event,
        )
        resample_event.success(*follow_up, **private)

        def resample_vocal(manifest_path, chosen, new_seed, *settings, progress=gr.Progress()):  # noqa: B008
            if chosen is None or chosen == "":
                raise _error("Section: pick the section whose vocal to re-sample")
            yield from actions.resample(manifest_path, "vocal", chosen, new_seed, *settings, progress=progress)

        retake_event = resample_vocal_button.click(
            resample_vocal, [manifest, vocal_section, resample_seed, *options], song_outputs,
            api_visibility="private", **song_event,
        )
        retake_event.success(*follow_up, **private)
        # Stop cancels whichever song event is running (the handlers stop between their yields, module docstring)
        stop_button.click(None, None, None, cancels=[generate_event, resample_event, retake_event], **private)
        remix_button.click(actions.remix, [manifest, *levels], song_outputs, api_name="remix", **song_event)
        check_sung_button.click(
            actions.check_sung_lyrics, [vocals, manifest], [sung_table, sung_summary], api_name="check_sung_lyrics",
            concurrency_id="whisper", concurrency_limit=1,
        ).success(_worst_section, [sung_table], [vocal_section], **private)
        manifest.upload(lambda path: gr.update(choices=_section_choices(path), value="all"), [manifest], [section],
                        **private)

    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1)
    return demo
