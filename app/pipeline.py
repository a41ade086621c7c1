"""``SongGenerator``: lyrics + style -> song LM -> Duo-Tok tokens -> decoders + vocoder -> vocals, accompaniment
and their mix (DESIGN.md §1, §2, §7).

    from app.pipeline import SongGenerator, save
    generator = SongGenerator()                       # loads checkpoints/duotok-tiny and checkpoints/lm-tiny once
    result = generator.generate("[verse]\\nhold me close tonight", "upbeat pop, female vocal", duration=10, seed=1)
    result.mix, result.vocals, result.accompaniment    # float32 [N] at result.sample_rate (24 kHz), N = frames·960
    save(result, "outputs/song")                      # mix.wav, vocals.wav, accompaniment.wav, manifest.json
    again = generator.redecode("outputs/song")        # the same audio from the manifest's tokens

The stages: ``app.request`` checks the inputs and plans the sections (``InputError`` for anything bad, before
a model runs); uploads are encoded to tokens ("encode"); ``lm.generate`` samples the tokens the mode asks for
("lm", one event per 25 Hz frame); with ``options.takes`` above 1 each sung section gets more vocal takes and
keeps the one Whisper hears best ("takes", ``SongGenerator._best_takes``); ``DuoTok.decode`` turns both token
tracks into audio through the per-track flow-matching decoders and the vocoder ("decode"). Every setting,
version and token goes into the manifest (``app.manifest``), so ``redecode`` rebuilds the same audio and
``continue``/``resample`` build on the song.

Threads: one lock serialises model use, so concurrent ``generate`` calls queue and each returns its own song;
every random draw comes from a per-call generator seeded from ``seed`` (LM sampling and the decoders' flow
noise), so the same inputs and seed give the same audio whatever else runs.
"""

from __future__ import annotations

import dataclasses
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from app.lrc import timed_lines
from app.lyric_check import check_lyrics
from app.manifest import (
    AUDIO_FORMATS,
    DEFAULT_CHECKPOINTS,
    LM_FOLDER,
    MANIFEST_NAME,
    TOKENIZER_FOLDER,
    ManifestError,
    based_on,
    build_manifest,
    checkpoint_versions,
    manifest_tokens,
    read_manifest,
    save,
    software_versions,
    song_from_manifest,
)
from app.mixing import check_levels, mix_stems, song_levels
from app.request import InputError, SongOptions, SongRequest, make_request, spread_frames, unlabelled_sections
from corpus.audio_io import read_int16
from lm.generate import (
    GenerationError,
    GenerationOptions,
    SectionRequest,
    accompaniment_for_vocal,
    continue_song,
    full_song,
    resample_track,
    vocal_for_accompaniment,
)
from lm.layout import FRAME_RATE_HZ, SectionTokens, SongTokens
from lm.model import SongLM
from lm.phonemes import strip_phonemes
from lm.text import LINE_SEPARATOR, TextTokenizerError
from tokenizer import DuoTok, TrackTokens

__all__ = ["DEFAULT_CHECKPOINTS", "InputError", "ProgressEvent", "SongGenerator", "SongOptions", "SongResult",
           "load_song", "save"]

TEXT_ALLOWANCE_TOKENS = 150  # style + lyrics of a short song, set aside when quoting the longest duration


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a generation: ``stage`` is "encode" (uploads to tokens), "lm" (``done`` of ``total`` frames
    sampled), "decode" (tokens to audio) or "done"."""

    stage: str
    done: int
    total: int
    message: str

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


@dataclass
class SongResult:
    """A generated song: mono float32 ``mix``, ``vocals``, ``accompaniment`` of ``len(tokens) * 960`` samples at
    ``sample_rate``; ``mix`` is the stems at the manifest's mix levels (``app.mixing``; at 0 dB each, ``vocals +
    accompaniment``). ``manifest`` records how it was made (app.manifest)."""

    mix: np.ndarray
    vocals: np.ndarray
    accompaniment: np.ndarray
    sample_rate: int
    manifest: dict
    tokens: TrackTokens

    @property
    def seconds(self) -> float:
        return len(self.mix) / self.sample_rate

    @property
    def warnings(self) -> list[str]:
        return list(self.manifest.get("warnings", []))

    @property
    def levels(self) -> dict:
        """The mix levels (``app.mixing``): ``{"vocals_db": …, "accompaniment_db": …}``, None = muted."""
        return song_levels(self.manifest)

    def remixed(self, levels) -> SongResult:
        """The same song with its mix made again at ``levels`` (``app.mixing.check_levels``; raises
        ``LevelError``); the stems, tokens and everything else in the manifest stay as they are."""
        levels = check_levels(levels)
        manifest = {**self.manifest, "mix": levels}
        return dataclasses.replace(self, mix=mix_stems(self.vocals, self.accompaniment, levels), manifest=manifest)


class Sampled(NamedTuple):
    """What the LM stage gives back: the whole song, per section the tracks sampled in this call (``[]`` for
    sections kept as they were), and the first section the LM saw as context (``app.manifest``)."""

    song: SongTokens
    tracks: list[list[str]]
    prompt_start: int = 0


class GenerationCancelled(Exception):
    """Raised inside a generation whose ``generate_events`` consumer went away."""


Progress = Callable[[ProgressEvent], None]


def _lm_options(options: SongOptions, seed: int, phone_table: bool) -> GenerationOptions:
    """The LM's sampling settings of a request; phone guidance only where the LM has a phone table."""
    return GenerationOptions(temperature=options.temperature, top_k=options.top_k, top_p=options.top_p,
                             cfg_scale=options.cfg_scale, phone_guidance=options.phone_guidance if phone_table else 0.0,
                             seed=seed)


def _tracks(song: SongTokens) -> tuple[np.ndarray, np.ndarray]:
    return (np.concatenate([s.vocal for s in song.sections]).astype(np.int64),
            np.concatenate([s.accomp for s in song.sections]).astype(np.int64))


class SongGenerator:
    """The shipped tokenizer and LM, loaded once; ``generate`` makes songs, ``redecode`` re-renders manifests.

    ``device``: None picks CUDA when available, else CPU."""

    def __init__(self, checkpoints: str | Path = DEFAULT_CHECKPOINTS, device: str | torch.device | None = None):
        self.checkpoints = Path(checkpoints)
        self.device = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = DuoTok.from_pretrained(self.checkpoints / TOKENIZER_FOLDER, device=str(self.device))
        for track in ("vocal", "accomp"):  # DuoTok loads its decoders on first use; load them now, once
            self.tokenizer.decoder(track)
        self.tokenizer.vocoder  # noqa: B018 (the property loads the vocoder)
        self.lm = SongLM.from_pretrained(self.checkpoints / LM_FOLDER, device=self.device)
        config, vocab = self.tokenizer.config, self.lm.vocab
        if (vocab.codebook_size_vocal, vocab.codebook_size_accomp) != (config.codebook_size, config.codebook_size):
            raise ValueError(f"{self.checkpoints}: the LM speaks {vocab.codebook_size_vocal}/"
                             f"{vocab.codebook_size_accomp} codes but the tokenizer has {config.codebook_size}")
        self.sample_rate = int(config.sample_rate)
        self.samples_per_frame = int(config.samples_per_token)
        self.context = int(self.lm.model.config.max_position_embeddings)
        self.versions = checkpoint_versions(self.checkpoints, [TOKENIZER_FOLDER, LM_FOLDER])
        self.software = software_versions()
        self._lock = threading.Lock()

    @property
    def max_duration(self) -> float:
        """About the longest song (s) the LM's context holds with a short lyric sheet: 2 tokens per frame."""
        return (self.context - TEXT_ALLOWANCE_TOKENS) / (2 * FRAME_RATE_HZ)

    # --- public entries ----------------------------------------------------------------------------------------

    def check_request(self, lyrics, style, duration=30.0, seed=0, mode="full", options=None, *, audio=None,
                      audio_rate=None, manifest=None, section=None, track=None) -> SongRequest:
        """Check the arguments of ``generate`` without running a model; raises ``InputError``."""
        return make_request(lyrics, style, duration, seed, mode, options, audio=audio, audio_rate=audio_rate,
                            manifest=manifest, section=section, track=track, sample_rate=self.sample_rate,
                            samples_per_frame=self.samples_per_frame)

    def generate(self, lyrics, style, duration=30.0, seed=0, mode="full", options=None, *, audio=None,
                 audio_rate=None, manifest=None, section=None, track=None,
                 progress: Progress | None = None) -> SongResult:
        """Make a song. ``lyrics`` with ``[verse]``/``[chorus]``/… tags, ``style`` a prompt, ``duration`` in seconds
        (5–120; the new part for ``continue``), ``seed`` 0..2**31-1, ``mode`` one of ``app.request.MODES``,
        ``options`` a ``SongOptions`` or a dict of its fields. ``audio`` (a path, a ``(rate, samples)`` pair or
        samples with ``audio_rate``) is the upload of accompany / sing_over / continue; ``manifest`` (a dict,
        a manifest.json or its folder) the previous song of continue / resample, which re-samples ``track``
        ("vocal" or "accompaniment"), only section ``section`` when given. ``progress`` receives
        ``ProgressEvent``s. Bad input raises ``InputError``; the module docstring describes the rest."""
        request = self.check_request(lyrics, style, duration, seed, mode, options, audio=audio, audio_rate=audio_rate,
                                     manifest=manifest, section=section, track=track)
        return self.run(request, progress)

    def generate_events(self, *args, **kwargs) -> Iterator[ProgressEvent | SongResult]:
        """``generate`` as a generator (for Gradio): yields ``ProgressEvent``s, then the ``SongResult``. Closing
        the generator early stops the generation at its next frame."""
        request = self.check_request(*args, **kwargs)
        events: queue.Queue = queue.Queue()
        cancelled = threading.Event()

        def progress(event: ProgressEvent) -> None:
            if cancelled.is_set():
                raise GenerationCancelled
            events.put(event)

        def work() -> None:
            try:
                events.put(self.run(request, progress))
            except BaseException as error:  # handed to the consumer, who re-raises it in its own thread
                events.put(error)

        threading.Thread(target=work, name="song-generation", daemon=True).start()
        try:
            while True:
                item = events.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, SongResult):
                    return
        finally:
            cancelled.set()

    def redecode(self, manifest, progress: Progress | None = None) -> SongResult:
        """The audio of a manifest's tokens, decoded again with its decoder steps and seed (so, with the same
        checkpoints, the same audio). ``manifest``: a dict, a manifest.json or the folder holding one."""
        try:
            manifest = read_manifest(manifest)
            song = song_from_manifest(manifest)
        except ManifestError as error:
            raise InputError("manifest", str(error)) from None
        vocal, accomp = _tracks(song)
        self._check_codes(vocal, accomp)
        try:  # a lyric-aware vocal decoder hears the words as when the song was made
            words = self._sung_words(song)
            manifest["lines"] = self._sung_lines(song)  # also for manifests written before lines were kept
        except TextTokenizerError as error:
            raise InputError("manifest", f"a word cue's text: {error}") from None
        decoder = manifest["decoder"]
        steps, seed = decoder.get("steps"), decoder.get("seed", 0)
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 0):
            raise InputError("manifest", f"decoder.steps must be null or a whole number >= 0, got {steps!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InputError("manifest", f"decoder.seed must be a whole number >= 0, got {seed!r}")
        report = progress or (lambda event: None)
        started = time.perf_counter()
        with self._lock:
            vocals, accompaniment, mix = self._decode(vocal, accomp, steps, seed, manifest["inputs"].get("mode"),
                                                      report, words, song_levels(manifest))
        seconds = round(time.perf_counter() - started, 3)
        manifest["timings"] = {"decode": seconds, "total": seconds}
        manifest["warnings"] = list(manifest.get("warnings", [])) + self._version_warnings(manifest)
        report(ProgressEvent("done", 1, 1, "done"))
        return SongResult(mix, vocals, accompaniment, self.sample_rate, manifest,
                          TrackTokens(vocal, accomp, float(FRAME_RATE_HZ)))

    # --- one generation ----------------------------------------------------------------------------------------

    def run(self, request: SongRequest, progress: Progress | None = None) -> SongResult:
        """Make the song of a request already checked by ``check_request`` (or ``app.request.make_request`` with
        this tokenizer's rates): what ``generate`` does after its checks."""
        report = progress or (lambda event: None)
        timings: dict[str, float] = {}
        warnings = list(request.warnings)
        if request.previous is not None:
            warnings += self._version_warnings(request.previous)
        if request.options.phone_guidance > 0 and self.lm.config.phone_cues and self.lm.phone_prior is None:
            warnings.append("This LM has no phone table (phone_prior.safetensors; python -m lm.phone_prior), so "
                            "lyric guidance was off.")
        # continue and resample keep the mix levels of the song they build on
        levels = song_levels(request.previous) if request.previous is not None else None
        started = time.perf_counter()
        with self._lock:
            sampled = self._sample(request, report, timings)
            sampled, takes = self._best_takes(request, sampled, report, timings)
            vocal, accomp = _tracks(sampled.song)
            clock = time.perf_counter()
            vocals, accompaniment, mix = self._decode(vocal, accomp, request.options.decoder_steps, request.seed,
                                                      request.mode, report, self._sung_words(sampled.song), levels)
            timings["decode"] = round(time.perf_counter() - clock, 3)
        timings["total"] = round(time.perf_counter() - started, 3)
        manifest = build_manifest(
            inputs=request.inputs(), lyrics_normalised=request.lyrics_normalised, warnings=warnings,
            based_on=None if request.previous is None else based_on(request.previous), sampled=sampled,
            software=self.software, checkpoints=self.versions, sample_rate=self.sample_rate,
            samples_per_frame=self.samples_per_frame,
            decoder=self._decoder_settings(request.options.decoder_steps, request.seed), timings=timings,
            lines=self._sung_lines(sampled.song), mix=levels, takes=takes)
        report(ProgressEvent("done", 1, 1, "done"))
        return SongResult(mix, vocals, accompaniment, self.sample_rate, manifest,
                          TrackTokens(vocal, accomp, float(FRAME_RATE_HZ)))

    def _sample(self, request: SongRequest, report: Progress, timings: dict) -> Sampled:
        """Run the LM for the request's mode."""
        model, vocab, mode = self.lm.model, self.lm.vocab, request.mode
        options = _lm_options(request.options, request.seed, self.lm.phone_prior is not None)
        style_ids = self.lm.text.encode(request.style) if request.style else []
        new_sections = self._section_requests(request)

        def lm_progress(done: int, total: int) -> None:
            report(ProgressEvent("lm", done, total, f"sampling tokens: {done / FRAME_RATE_HZ:.1f} of "
                                                    f"{total / FRAME_RATE_HZ:.1f} s"))

        upload_tokens = self._encode_upload(request, report, timings)
        clock = time.perf_counter()
        try:
            if mode in ("full", "a_cappella", "instrumental"):
                self._fit(style_ids, [], new_sections)
                song = full_song(model, vocab, style_ids, new_sections, options, lm_progress, self.lm.phone_prior)
                sampled = Sampled(song, [["vocal", "accomp"]] * len(new_sections))
            elif mode in ("accompany", "sing_over"):
                self._fit(style_ids, [], new_sections)
                keep = "vocal" if mode == "accompany" else "accomp"
                codes = getattr(upload_tokens, keep)[:request.n_frames]
                sample = accompaniment_for_vocal if mode == "accompany" else vocal_for_accompaniment
                song = sample(model, vocab, style_ids, new_sections, codes, options, lm_progress, self.lm.phone_prior)
                sampled = Sampled(song, [["accomp" if keep == "vocal" else "vocal"]] * len(new_sections))
            elif mode == "continue":
                previous = request.previous_song or self._song_from_upload(upload_tokens, style_ids)
                dropped = self._fit(previous.style_ids, previous.sections, new_sections)
                prompt = SongTokens(previous.style_ids, previous.sections[dropped:])
                tail = continue_song(model, vocab, prompt, new_sections, options, lm_progress, self.lm.phone_prior)
                song = SongTokens(previous.style_ids, [*previous.sections[:dropped], *tail.sections])
                sampled = Sampled(song, [[]] * len(previous.sections) + [["vocal", "accomp"]] * len(new_sections),
                                  dropped)
            else:
                sampled = self._resample(request, options, lm_progress)
        except GenerationError as error:  # app.request checks what it can; the LM's own checks catch the rest
            raise InputError("request", str(error)) from None
        timings["lm"] = round(time.perf_counter() - clock, 3)
        return sampled

    def _resample(self, request: SongRequest, options: GenerationOptions, lm_progress) -> Sampled:
        model, vocab, song, track = self.lm.model, self.lm.vocab, request.previous_song, request.track
        self._check_codes(*_tracks(song))
        if request.section is None:  # the whole track at once: the other track is forced frame by frame
            requests = [SectionRequest(s.tag, list(s.text_ids), s.n_frames, s.instrumental, words=self._cued_words(s))
                        for s in song.sections]
            self._fit(song.style_ids, [], requests, raise_for="section")
            sample = accompaniment_for_vocal if track == "accomp" else vocal_for_accompaniment
            kept = _tracks(song)[0 if track == "accomp" else 1]
            new = sample(model, vocab, song.style_ids, requests, kept, options, lm_progress, self.lm.phone_prior)
            return Sampled(new, [[track]] * len(song.sections))
        index = request.section
        new, dropped = self._resample_section(song, index, track, options, lm_progress)
        tracks = [[track] if i == index else [] for i in range(len(song.sections))]
        return Sampled(new, tracks, dropped)

    def _resample_section(self, song: SongTokens, index: int, track: str, options: GenerationOptions,
                          lm_progress) -> tuple[SongTokens, int]:
        """``song`` with one track of section ``index`` sampled again (the other track and every other section
        kept), and how many leading sections the LM prompt left out to fit its context (``_fit``)."""
        target = song.sections[index]
        target_request = SectionRequest(target.tag, list(target.text_ids), target.n_frames, target.instrumental,
                                        words=self._cued_words(target))
        dropped = self._fit(song.style_ids, song.sections[:index], [target_request])
        window = SongTokens(song.style_ids, song.sections[dropped:index + 1])
        new = resample_track(self.lm.model, self.lm.vocab, window, index - dropped, track, options, lm_progress,
                             self.lm.phone_prior)
        sections = [*song.sections[:dropped], *new.sections, *song.sections[index + 1:]]
        return SongTokens(song.style_ids, sections), dropped

    # --- vocal takes -------------------------------------------------------------------------------------------

    def _best_takes(self, request: SongRequest, sampled: Sampled, report: Progress, timings: dict
                    ) -> tuple[Sampled, list[dict]]:
        """Best of ``options.takes`` vocal takes per sung section (peers.md §5 #5: lines skipped or mumbled).

        Each sung section whose vocal this call sampled gets, in song order, ``takes - 1`` more vocal takes
        (``lm.generate.resample_track``: its accompaniment and every other section kept, its words cued again,
        a seed of its own per take), and the take whose words Whisper hears best is kept: fewest word errors in
        that section by the app's own lyric check (``app.lyric_check``), the earlier take on a tie. Each take is
        judged on the vocal track of the whole song decoded as the song will be, so the kept take's errors are
        what "Check the sung lyrics" then reports. Later sections' takes are sampled after the kept ones, so the
        song stays one causal piece. Returns the song with the kept takes and, per section, every take's errors
        (for the manifest)."""
        n_takes = request.options.takes
        song = sampled.song
        targets = [i for i, (section, tracks) in enumerate(zip(song.sections, sampled.tracks, strict=True))
                   if "vocal" in tracks and not section.instrumental and len(section.text_ids) and section.n_frames]
        if n_takes == 1 or not targets:
            return sampled, []
        clock = time.perf_counter()
        options = _lm_options(request.options, request.seed, self.lm.phone_prior is not None)
        total = (n_takes - 1) * sum(song.sections[i].n_frames for i in targets)
        done, records, best_vocals = 0, [], None
        for index in targets:
            section = song.sections[index]
            name = f"section {index + 1} [{section.tag}]"
            report(ProgressEvent("takes", done, total, f"judging the first take of {name}"))
            # the first take is the song as it stands, already decoded when an earlier section's take was judged
            vocals = best_vocals if best_vocals is not None else self._take_vocals(song, request)
            errors, words = self._take_errors(vocals, song, index)
            scores, best = [errors], (song, vocals)
            for take in range(1, n_takes):
                def progress(frames: int, _frames_total: int, base: int = done,
                             message: str = f"vocal take {take + 1} of {n_takes}, {name}") -> None:
                    report(ProgressEvent("takes", base + frames, total, message))

                seed = int(np.random.SeedSequence([request.seed, index, take]).generate_state(1)[0])
                candidate, _ = self._resample_section(song, index, "vocal", dataclasses.replace(options, seed=seed),
                                                      progress)
                done += section.n_frames
                vocals = self._take_vocals(candidate, request)
                errors, _ = self._take_errors(vocals, candidate, index)
                if errors < min(scores):
                    best = (candidate, vocals)
                scores.append(errors)
            song, best_vocals = best
            records.append({"section": index, "words": words, "errors": scores, "kept": scores.index(min(scores))})
        timings["takes"] = round(time.perf_counter() - clock, 3)
        return sampled._replace(song=song), records

    def _take_vocals(self, song: SongTokens, request: SongRequest) -> np.ndarray:
        """``song``'s vocal track decoded with the request's decoder steps and seed, as ``run`` decodes it."""
        vocal, _ = _tracks(song)
        return self.tokenizer.decode_track(vocal, "vocal", steps=request.options.decoder_steps, seed=request.seed,
                                           words=self._sung_words(song) or None)

    def _take_errors(self, vocals: np.ndarray, song: SongTokens, index: int) -> tuple[int, int]:
        """Whisper's word errors in section ``index`` of ``song``'s decoded ``vocals``, and the section's lyric
        words (``app.lyric_check``)."""
        first = sum(s.n_frames for s in song.sections[:index])
        section = song.sections[index]
        check = {"name": section.tag, "start_seconds": first / FRAME_RATE_HZ,
                 "end_seconds": (first + section.n_frames) / FRAME_RATE_HZ,
                 "lines": self.section_lines(section.text_ids, section.instrumental)}
        result = check_lyrics(vocals, self.sample_rate, [check]).sections[0]
        return result.errors, result.words

    # --- helpers -----------------------------------------------------------------------------------------------

    def _section_requests(self, request: SongRequest) -> list[SectionRequest]:
        """The planned sections as LM requests, with their lyric lines as raw sentencepiece pieces (and, for a
        word-cue LM, each word's pieces to cue, and on a phone-cue LM each word's phones after it)."""
        cues = self.lm.config.word_cues
        return [SectionRequest(s.tag, self.lm.text.encode_lyrics(s.text) if s.lines else [], s.n_frames,
                               s.instrumental, words=self._cues(s.lines, s.n_frames) if cues and s.lines else None)
                for s in request.sections]

    def _cues(self, lines, n_frames: int) -> list[list[int]]:
        """What a cue LM cues in a section of ``n_frames``: ``SongLM.cue_pieces``, but only the words when the
        phones would outnumber the frames (each cue needs a frame of its own before its deadline,
        ``lm.generate.cue_deadline``), so lyrics squeezed into a short section still sing."""
        cues = self.lm.cue_pieces(lines)
        return cues if len(cues) <= n_frames else self.lm.word_pieces(lines)

    def _cued_words(self, section: SectionTokens) -> list[list[int]] | None:
        """The words a re-sampled section cues again: those of its earlier cues, or, for a word-cue LM and a
        section made without cues (an older manifest), its lyric text's words."""
        if section.cues:
            return [list(cue.text_ids) for cue in section.cues]
        if not self.lm.config.word_cues or section.instrumental or not section.text_ids:
            return None
        return self._cues(self.lm.text.decode(section.text_ids).replace(LINE_SEPARATOR, "\n"), section.n_frames)

    def _fit(self, style_ids: Sequence[int], prefix: Sequence[SectionTokens], new: Sequence[SectionRequest],
             raise_for: str = "duration") -> int:
        """How many leading ``prefix`` sections to leave out of the LM prompt so that prompt + new sections fit the
        context (they stay in the song, only the model does not see them); raises ``InputError`` when even the
        new sections alone, after the last prefix section, do not fit."""

        def cost(instrumental: bool, n_text: int, n_frames: int, cues=()) -> int:
            # <section:TAG> text <audio> v a … (with <word> cues) </audio>
            return 2 + (1 if instrumental else n_text) + 2 * n_frames + 1 + sum(1 + len(word) for word in cues)

        fixed = 3 + len(style_ids) + 1  # <bos> <style> style </style> … <eos>
        new_cost = sum(cost(r.instrumental, len(r.text_ids), r.n_frames, r.words or ()) for r in new)
        prefix_costs = [cost(s.instrumental, len(s.text_ids), s.n_frames, [c.text_ids for c in s.cues])
                        for s in prefix]
        dropped = 0
        while fixed + new_cost + sum(prefix_costs[dropped:]) > self.context and dropped < len(prefix):
            dropped += 1
        keeps_context = not prefix or dropped < len(prefix)  # a continuation needs some of the song before it
        if fixed + new_cost + sum(prefix_costs[dropped:]) > self.context or not keeps_context:
            new_seconds = sum(r.n_frames for r in new) / FRAME_RATE_HZ
            text_tokens = fixed + sum(cost(r.instrumental, len(r.text_ids), 0) for r in new)
            most = (self.context - text_tokens - (prefix_costs[-1] if prefix else 0)) / (2 * FRAME_RATE_HZ)
            what = "the new part" if prefix else "the song"
            hint = "; re-sample one section at a time" if raise_for == "section" else ""
            raise InputError(raise_for, f"{what} ({new_seconds:g} s with these lyrics) is too long for the LM's "
                                        f"context of {self.context} tokens; at most {max(math.floor(most), 0)} s fit"
                                        + hint)
        return dropped

    def _encode_upload(self, request: SongRequest, report: Progress, timings: dict) -> TrackTokens | None:
        """Tokens of the upload: as the vocal stem (accompany), the instrumental (sing_over) or a mix (continue,
        separated by the tokenizer's own head)."""
        if request.upload is None:
            return None
        report(ProgressEvent("encode", 0, 1, "encoding the upload"))
        clock = time.perf_counter()
        samples = request.upload.samples
        silence = np.zeros_like(samples)
        if request.mode == "accompany":
            tokens = self.tokenizer.encode(vocals=samples, accompaniment=silence)
        elif request.mode == "sing_over":
            tokens = self.tokenizer.encode(vocals=silence, accompaniment=samples)
        else:
            tokens = self.tokenizer.encode(mix=samples)
        timings["encode"] = round(time.perf_counter() - clock, 3)
        report(ProgressEvent("encode", 1, 1, "upload encoded"))
        return tokens

    @staticmethod
    def _song_from_upload(tokens: TrackTokens, style_ids: list[int]) -> SongTokens:
        """An uploaded song as unlabelled sung sections of about 6 s (its words and form are unknown)."""
        shape = unlabelled_sections(len(tokens))
        bounds = np.cumsum([0, *spread_frames([1.0] * len(shape), len(tokens), 1)]).tolist()
        sections = [SectionTokens(tag, [], tokens.vocal[start:stop], tokens.accomp[start:stop], instrumental)
                    for (tag, _, instrumental), start, stop in zip(shape, bounds[:-1], bounds[1:], strict=True)]
        return SongTokens(list(style_ids), sections)

    def _check_codes(self, vocal: np.ndarray, accomp: np.ndarray) -> None:
        size = self.tokenizer.config.codebook_size
        if vocal.max(initial=0) >= size or accomp.max(initial=0) >= size:
            raise InputError("manifest", f"the tokens hold codes above {size - 1}, the size of this tokenizer's "
                                         "codebooks: the manifest was made with another tokenizer")

    def _version_warnings(self, manifest: dict) -> list[str]:
        theirs = manifest.get("checkpoints")
        if not isinstance(theirs, dict) or theirs == self.versions:
            return []
        changed = sorted(k for k in set(theirs) | set(self.versions) if theirs.get(k) != self.versions.get(k))
        return [f"the manifest was made with other checkpoints ({', '.join(changed)}); the audio will differ from "
                "the original"]

    def _decoder_settings(self, steps: int | None, seed: int) -> dict:
        """What the manifest records about decoding: the steps asked for (None: the decoders' default), the
        steps each decoder then ran, and the seed of the flow noise."""
        used = {track: steps if steps is not None else self.tokenizer.decoder(track).config.default_steps
                for track in ("vocal", "accomp")}
        return {"steps": steps, "steps_used": used, "seed": seed}

    def _sung_words(self, song: SongTokens) -> list[dict]:
        """Each word cue of the song as ``{"start_frame" (in the song), "text", "phones"}``, ``phones`` being the
        phone cues after it (``{"phone", "start_frame"}``; none from an LM without phone cues): what a lyric-aware
        vocal decoder reads (``tokenizer.word_context``). A song without cues (an LM without them, an older
        manifest) gives none."""
        words, first = [], 0
        for section in song.sections:
            for cue in section.cues:
                phone = self.lm.cued_phone(cue)
                if phone is None:
                    words.append({"start_frame": first + cue.frame, "phones": [],
                                  "text": strip_phonemes(self.lm.text.decode(cue.text_ids)).strip()})
                elif words:  # the layout puts a word's phone cues after its word cue
                    words[-1]["phones"].append({"phone": phone, "start_frame": first + cue.frame})
            first += section.n_frames
        return words

    def section_lines(self, text_ids: Sequence[int], instrumental: bool = False) -> list[str]:
        """A section's lyric lines, read back from the text pieces the LM was given (``text_ids``; a phoneme
        model's phones removed); none for an instrumental section."""
        if instrumental or not len(text_ids):
            return []
        text = strip_phonemes(self.lm.text.decode(text_ids))
        return [line.strip() for line in text.split(LINE_SEPARATOR.strip()) if line.strip()]

    def _sung_lines(self, song: SongTokens) -> list[dict]:
        """Each sung lyric line at the time its first word's cue starts, plus where each sung section ends
        (``app.lrc.timed_lines``); none for a song without word cues."""
        sections, first = [], 0
        for section in song.sections:
            sections.append(((first + section.n_frames) / FRAME_RATE_HZ,
                             self.section_lines(section.text_ids, section.instrumental),
                             [(first + cue.frame) / FRAME_RATE_HZ for cue in section.cues
                              if self.lm.is_word_cue(cue)]))
            first += section.n_frames
        return timed_lines(sections)

    def _decode(self, vocal: np.ndarray, accomp: np.ndarray, steps: int | None, seed: int, mode: str | None,
                report: Progress, words: list[dict] | None = None, levels: dict | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Both token tracks -> (vocals, accompaniment, mix) through the decoders and the vocoder; a cappella
        songs keep only the vocals. ``words``: the sung words at their frames, for a lyric-aware vocal decoder;
        ``levels``: the mix levels (``app.mixing``; default 0 dB each)."""
        report(ProgressEvent("decode", 0, 1, "decoding tokens to audio"))
        tokens = TrackTokens(vocal, accomp, float(FRAME_RATE_HZ))
        vocals, accompaniment, mix = self.tokenizer.decode(tokens, steps=steps, seed=seed, words=words or None)
        expected = len(tokens) * self.samples_per_frame
        if not len(vocals) == len(accompaniment) == len(mix) == expected:
            raise RuntimeError(f"the decoder returned {len(vocals)}/{len(accompaniment)}/{len(mix)} samples for "
                               f"{len(tokens)} frames; expected {expected}")
        vocals, accompaniment = (np.asarray(a, dtype=np.float32) for a in (vocals, accompaniment))
        if mode == "a_cappella":
            accompaniment = np.zeros_like(vocals)
        report(ProgressEvent("decode", 1, 1, "decoded"))
        return vocals, accompaniment, mix_stems(vocals, accompaniment, levels)


# --- a saved song ------------------------------------------------------------------------------------------------


def load_song(folder: str | Path) -> SongResult:
    """A song folder written by ``save`` (or its manifest.json), read back without any model: the stems as they
    were decoded (the 16-bit files with the folder's gain undone), the mix at the manifest's levels, the manifest
    (with the folder's ``files``, which ``save`` writes anew) and the tokens. ``load_song(folder).remixed(levels)``
    is the CLI's ``remix``. Raises ``InputError`` (field "song") when the folder is not a whole song."""
    path = Path(folder)
    folder = path.parent if path.name == MANIFEST_NAME else path
    try:
        manifest = read_manifest(folder)
        vocal, accomp = manifest_tokens(manifest)
    except ManifestError as error:
        raise InputError("song", str(error)) from None
    files = manifest.get("files")
    if not isinstance(files, dict) or not isinstance(files.get("names"), list):
        raise InputError("song", f"{folder / MANIFEST_NAME} lists no audio files (a manifest saved with its song "
                                 "has them); make the audio with redecode first")
    kind = next((fmt for fmt in AUDIO_FORMATS
                 if {f"vocals.{fmt}", f"accompaniment.{fmt}"} <= set(files["names"])), None)
    scale = files.get("gain")
    if kind is None or isinstance(scale, bool) or not isinstance(scale, int | float) or not 0 < scale <= 1:
        raise InputError("song", f"{folder / MANIFEST_NAME} does not list a vocal and an accompaniment file with "
                                 "their gain; make the audio with redecode first")
    rate, expected = int(manifest["audio"].get("sample_rate", 0)), len(vocal) * manifest["audio"].get(
        "samples_per_frame", 0)
    stems = []
    for name in (f"vocals.{kind}", f"accompaniment.{kind}"):
        try:  # the exact 16-bit samples: save wrote round(x · gain · 32767)
            samples, file_rate = read_int16(folder / name)
        except (OSError, RuntimeError, ValueError) as error:
            raise InputError("song", f"cannot read {name} beside the manifest ({error})") from None
        if file_rate != rate or len(samples) != expected:
            raise InputError("song", f"{name} holds {len(samples)} samples at {file_rate} Hz, but the manifest "
                                     f"describes {expected} at {rate} Hz: the folder mixes two songs")
        stems.append((samples.astype(np.float64) / (32767 * scale)).astype(np.float32))
    vocals, accompaniment = stems
    return SongResult(mix_stems(vocals, accompaniment, song_levels(manifest)), vocals, accompaniment, rate, manifest,
                      TrackTokens(vocal, accomp, float(FRAME_RATE_HZ)))
