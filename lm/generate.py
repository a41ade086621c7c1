"""Sampling songs from the song LM (DESIGN.md §6): slot-constrained, seeded, KV-cached, with optional
classifier-free guidance and forced tokens for the conditioned modes.

The model is any causal LM with the Hugging Face interface (``model(input_ids=…, cache=…, use_cache=True)``
returning ``.logits`` and ``.past_key_values``); nothing here knows ``lm.model.SongLM``. Ids follow
``lm.layout``: the prompt is ``<bos> <style> style-text </style>`` (plus any prefix sections), then per section
``<section:TAG> lyric-text-or-<no_vocal> <audio>``, exactly ``n_frames`` frames of ``v a`` pairs, ``</audio>``.

- Slot constraints: an audio position can only take ids of its slot kind (``allowed_mask`` minus ``</audio>``:
  the frame count is fixed by the request, so the model never decides where a section ends). The candidates
  are cut out of the logits before any temperature / top-k / top-p, so no setting can break them.
- Forced tokens (accompaniment for a given vocal, vocal for a given accompaniment, re-sampling one track) are
  written, never sampled, so they come out bit-identical; they are fed to the model with the next sampled
  position's context in one chunked forward.
- Word cues (models trained with ``LMConfig.word_cues``): a request that carries ``words`` (each word's raw
  pieces, in sung order) lets the model emit ``<word>`` at any frame boundary while words remain; the next
  word's pieces are then written after it, and the same frame's vocal slot is sampled again. So the model
  decides when each word starts, as it learned from the corpus's word times. That choice is drawn first, at
  the model's own odds of ``<word>`` against the slot's codes, and only then the code with temperature, top-k
  and top-p: those settings shape the sound, and would otherwise also change the pace of the words. Each word
  also has a deadline (``cue_deadline``): by then it is cued without asking, so the words are never sung
  slower than evenly spread over their section. Without it the trained word-cue LM, sampling, cued a few words
  and then kept singing, leaving the rest to its section's last frames. A forced vocal (accompaniment for a
  given vocal) still gets its cues: the choice there is between ``<word>`` and the forced code. A phone-cue LM's
  requests list each word's phones after the word (``SongLM.cue_pieces``); here they are cues like any other.
- Classifier-free guidance runs a second stream whose prompt has the style and lyric text removed
  (``lm.data.drop_condition``: same markers, no condition) and mixes log-probabilities as
  ``uncond + scale·(cond − uncond)``. At ``cfg_scale == 1`` that stream is skipped, so the result is exactly
  the unguided one.
- Phone guidance (``phone_guidance`` λ > 0, with a ``lm.phone_prior.PhonePrior``): after each phone cue, the
  vocal codes' log-probabilities gain ``λ ·`` the table's log-ratio of each code for that phone at its age. It
  reshapes only the choice among codes, after the cue/no-cue draw, so it does not change the pace of the words.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from lm.layout import (
    FRAME_RATE_HZ,
    LayoutError,
    SectionTokens,
    SongTokens,
    Vocabulary,
    WordCue,
    allowed_mask,
    build_sequence,
    slot_kind,
)
from lm.lyrics import CANONICAL_TAGS
from lm.phone_prior import PhonePrior

__all__ = [
    "MAX_SECTION_FRAMES",
    "MAX_SONG_FRAMES",
    "GenerationError",
    "GenerationOptions",
    "SectionRequest",
    "accompaniment_for_vocal",
    "continue_song",
    "full_song",
    "generate_song",
    "guided_log_probs",
    "instrumental",
    "resample_track",
    "sample_from_log_probs",
    "vocal_for_accompaniment",
]

MAX_SECTION_FRAMES = FRAME_RATE_HZ * 600  # 10 min: far above any real section, low enough to catch unit mix-ups
MAX_SONG_FRAMES = FRAME_RATE_HZ * 600
TRACKS = ("vocal", "accomp")

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class GenerationOptions:
    """Decoding settings (frozen, like Whisper's ``DecodingOptions``), validated on construction.

    ``temperature == 0`` means greedy (argmax over the slot's candidates; top-k, top-p and the seed then do
    not matter). ``top_k=None`` and ``top_p=1.0`` switch those filters off. ``cfg_scale == 1`` is unguided;
    0 samples from the unconditional stream alone. ``phone_guidance`` is the weight of the phone table after
    each phone cue (module docstring; 0 = the LM alone). ``seed=None`` draws a fresh seed each call.
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    cfg_scale: float = 1.0
    phone_guidance: float = 0.0
    seed: int | None = None
    max_frames_per_section: int = MAX_SECTION_FRAMES
    max_song_frames: int = MAX_SONG_FRAMES

    def __post_init__(self):
        def number(name: str) -> float:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
                raise GenerationError(f"GenerationOptions.{name} must be a finite number, got {value!r}")
            return float(value)

        def count(name: str, allow_none: bool = False) -> None:
            value = getattr(self, name)
            if value is None and allow_none:
                return
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise GenerationError(f"GenerationOptions.{name} must be a positive integer"
                                      f"{' or None' if allow_none else ''}, got {value!r}")

        if number("temperature") < 0:
            raise GenerationError(f"GenerationOptions.temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < number("top_p") <= 1:
            raise GenerationError(f"GenerationOptions.top_p must be in (0, 1] (1 = off), got {self.top_p}")
        if number("cfg_scale") < 0:
            raise GenerationError(f"GenerationOptions.cfg_scale must be >= 0 (1 = no guidance), got {self.cfg_scale}")
        if number("phone_guidance") < 0:
            raise GenerationError(f"GenerationOptions.phone_guidance must be >= 0 (0 = off), got "
                                  f"{self.phone_guidance}")
        count("top_k", allow_none=True)
        count("max_frames_per_section")
        count("max_song_frames")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer)
                                      or not 0 <= self.seed < 2**63):
            raise GenerationError(f"GenerationOptions.seed must be None or an integer in [0, 2**63), got {self.seed!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def guided(self) -> bool:
        return self.cfg_scale != 1.0


class GenerationError(ValueError):
    """A request the generator cannot serve; the message names the section and the field."""


@dataclass
class SectionRequest:
    """One section to generate: canonical tag, raw lyric pieces (empty and ``instrumental`` for ``<no_vocal>``
    sections), exact length in 25 Hz frames, optionally a forced track of raw codes (``n_frames``,), and for a
    word-cue model the raw pieces of each sung word (``words``; None: no cues, the section-level layout)."""

    tag: str
    text_ids: list[int]
    n_frames: int
    instrumental: bool = False
    forced_vocal: np.ndarray | None = None
    forced_accomp: np.ndarray | None = None
    words: list[list[int]] | None = None


def _check_codes(codes, n_frames: int, codebook_size: int, where: str) -> np.ndarray:
    array = np.asarray(codes)
    if array.dtype.kind not in "iu" and array.size:
        raise GenerationError(f"{where} must be integer codes, got dtype {array.dtype}")
    if array.ndim != 1 or len(array) != n_frames:
        raise GenerationError(f"{where} must have shape ({n_frames},) to match n_frames, got {array.shape}")
    if array.size and (array.min() < 0 or array.max() >= codebook_size):
        bad = int(array[(array < 0) | (array >= codebook_size)][0])
        raise GenerationError(f"{where} holds code {bad}, outside the codebook 0..{codebook_size - 1}")
    return array.astype(np.int64)


def _check_pieces(pieces, vocab: Vocabulary, where: str) -> list[int]:
    array = np.asarray(list(pieces))
    if array.size and array.dtype.kind not in "iu":
        raise GenerationError(f"{where} must be integer text pieces, got dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= vocab.n_text):
        bad = int(array[(array < 0) | (array >= vocab.n_text)][0])
        raise GenerationError(f"{where} holds text piece {bad}, outside the text range 0..{vocab.n_text - 1}")
    return [int(piece) for piece in array]


def check_request(index: int, request: SectionRequest, vocab: Vocabulary,
                  options: GenerationOptions) -> SectionRequest:
    """Validate one request and return it with normalised fields (int lists, int64 arrays)."""
    where = f"section {index} [{getattr(request, 'tag', '?')}]"
    if not isinstance(request, SectionRequest):
        raise GenerationError(f"section {index} must be a SectionRequest, got {type(request).__name__}")
    if request.tag not in CANONICAL_TAGS:
        raise GenerationError(f"{where}: unknown section tag {request.tag!r}; expected one of "
                              f"{', '.join(CANONICAL_TAGS)}")
    n_frames = request.n_frames
    if isinstance(n_frames, bool) or not isinstance(n_frames, int | np.integer) or n_frames < 1:
        raise GenerationError(f"{where}: n_frames must be a positive integer, got {n_frames!r}")
    if n_frames > options.max_frames_per_section:
        raise GenerationError(f"{where}: n_frames {n_frames} is above the limit of {options.max_frames_per_section} "
                              f"({options.max_frames_per_section / FRAME_RATE_HZ:g} s at {FRAME_RATE_HZ} Hz)")
    text_ids = _check_pieces(request.text_ids, vocab, f"{where}: text_ids")
    if request.instrumental and text_ids:
        raise GenerationError(f"{where}: an instrumental section has no lyrics, got {len(text_ids)} text ids")
    forced_vocal, forced_accomp = (
        None if codes is None else _check_codes(codes, int(n_frames), size, f"{where}: {name}")
        for codes, size, name in ((request.forced_vocal, vocab.codebook_size_vocal, "forced_vocal"),
                                  (request.forced_accomp, vocab.codebook_size_accomp, "forced_accomp")))
    words = None
    if request.words is not None:
        if request.instrumental and len(request.words):
            raise GenerationError(f"{where}: an instrumental section sings no words, got {len(request.words)}")
        words = [_check_pieces(word, vocab, f"{where}: word {number}") for number, word in enumerate(request.words)]
        if len(words) > n_frames:
            raise GenerationError(f"{where}: {len(words)} words do not fit in {n_frames} frames (each word needs "
                                  "at least one frame)")
    return SectionRequest(request.tag, text_ids, int(n_frames), bool(request.instrumental),
                          forced_vocal, forced_accomp, words)


def check_song_inputs(model, vocab: Vocabulary, prefix: SongTokens, requests: Sequence[SectionRequest],
                      options: GenerationOptions, header_lengths: Sequence[int]) -> np.ndarray:
    """Check the song as a whole and return the prompt ids (the prefix's sequence without ``<eos>``)."""
    if not requests:
        raise GenerationError("no sections to generate: the sections list is empty")
    try:
        prompt = build_sequence(prefix, vocab)[:-1]
    except LayoutError as error:
        raise GenerationError(f"prefix: {error}") from None
    song_frames = prefix.n_frames + sum(r.n_frames for r in requests)
    if song_frames > options.max_song_frames:
        raise GenerationError(f"the song would have {song_frames} frames ({song_frames / FRAME_RATE_HZ:g} s), above "
                              f"the limit of {options.max_song_frames}")
    # Sequence length: prompt, then per section its header, 2 ids a frame, its word cues and </audio>, then <eos>.
    cue_lengths = sum(1 + len(word) for r in requests for word in r.words or [])
    length = len(prompt) + sum(header_lengths) + sum(2 * r.n_frames + 1 for r in requests) + cue_lengths + 1
    context = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if isinstance(context, int) and length > context:
        raise GenerationError(f"the song needs {length} tokens but the model's context is {context} "
                              "(max_position_embeddings)")
    return prompt


# --- sampling one slot -----------------------------------------------------------------------------------------


def guided_log_probs(cond_logits: torch.Tensor, uncond_logits: torch.Tensor | None, scale: float) -> torch.Tensor:
    """Classifier-free guidance on log-probabilities: ``uncond + scale·(cond − uncond)``.

    At ``scale == 1`` (or without an unconditional stream) this returns ``log_softmax(cond)`` itself rather
    than the algebraically equal mix, so unguided sampling is bit-for-bit what it would be without CFG code.
    """
    cond = torch.log_softmax(cond_logits.float(), dim=-1)
    if uncond_logits is None or scale == 1.0:
        return cond
    uncond = torch.log_softmax(uncond_logits.float(), dim=-1)
    return uncond + scale * (cond - uncond)


def sample_from_log_probs(scores: torch.Tensor, options: GenerationOptions, generator: torch.Generator) -> int:
    """Index into ``scores`` (1-D, unnormalised log-probabilities of the slot's candidates only) drawn with
    temperature, top-k and top-p; argmax when greedy. Runs on CPU so a seed gives the same draw everywhere."""
    scores = scores.detach().to("cpu", torch.float32)
    if options.greedy:
        return int(torch.argmax(scores))
    scores = scores / options.temperature
    if options.top_k is not None and options.top_k < scores.numel():
        kth_best = torch.topk(scores, options.top_k).values[-1]
        scores = scores.masked_fill(scores < kth_best, -torch.inf)
    if options.top_p < 1.0:
        # Keep the smallest head of the sorted distribution whose mass reaches top_p (always at least one).
        sorted_scores, order = torch.sort(scores, descending=True)
        sorted_probs = torch.softmax(sorted_scores, dim=-1)
        mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        drop = torch.zeros_like(scores, dtype=torch.bool)
        drop[order] = mass_before >= options.top_p
        scores = scores.masked_fill(drop, -torch.inf)
    probs = torch.softmax(scores, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


class _Stream:
    """One token stream through the model with its KV cache. Tokens wait in ``pending`` until logits are needed,
    so forced runs (headers, forced tracks, a prefix) go through in one forward each."""

    def __init__(self, model, device: torch.device):
        self.model, self.device = model, device
        self.cache = None
        self.pending: list[int] = []
        # transformers 5.x renamed the cache argument to ``cache`` (``past_key_values`` still works, with a
        # deprecation warning); older or custom models only know ``past_key_values``.
        parameters = inspect.signature(model.forward).parameters
        self.cache_argument = "cache" if "cache" in parameters else "past_key_values"
        # only the last position's logits are used; HF models can skip the (chunk, vocab) head output
        self.extra = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}

    def push(self, ids) -> None:
        self.pending.extend(int(token) for token in ids)

    def next_logits(self) -> torch.Tensor:
        """Logits for the position after everything pushed so far, shape (vocab,)."""
        if not self.pending:
            raise RuntimeError("next_logits needs at least one new token since the last call")
        kwargs = {"use_cache": True, **self.extra}
        if self.cache is not None:
            kwargs[self.cache_argument] = self.cache
        output = self.model(input_ids=torch.tensor([self.pending], device=self.device), **kwargs)
        # the output names its cache like the argument (transformers 5.x: ``cache``; reading the old
        # ``past_key_values`` name prints a deprecation warning on every call)
        cache = output.get("cache")
        self.cache = cache if cache is not None else output.past_key_values
        self.pending = []
        return output.logits[0, -1]


def cue_deadline(word: int, n_words: int, n_frames: int) -> int:
    """The frame by which word ``word`` (0-based) of ``n_words`` must have been cued in a section of
    ``n_frames``: ``(word + 1) · n_frames // (n_words + 1)``, so the model may sing the words sooner but never
    slower than evenly spread over the section, and never so late that a word after it finds no frame."""
    return min((word + 1) * n_frames // (n_words + 1), n_frames - (n_words - word))


def _phone_guided(phone_prior: PhonePrior | None, options: GenerationOptions, vocab: Vocabulary) -> bool:
    """Whether phone guidance is on; checks that a table is given and covers the vocal codes. A table row lines
    up with the vocal slot's candidates as they are: the whole vocal range, in code order."""
    if options.phone_guidance == 0:
        return False
    if phone_prior is None:
        raise GenerationError("phone_guidance needs the LM's phone table (lm.phone_prior; "
                              "phone_prior.safetensors in the checkpoint folder)")
    if phone_prior.codebook_size != vocab.codebook_size_vocal:
        raise GenerationError(f"the phone table covers {phone_prior.codebook_size} vocal codes, the LM "
                              f"{vocab.codebook_size_vocal}")
    return True


def _model_device(model) -> torch.device:
    device = getattr(model, "device", None)
    if isinstance(device, torch.device):
        return device
    parameter = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    return parameter.device if parameter is not None else torch.device("cpu")


def _header_ids(section: SectionTokens, vocab: Vocabulary) -> np.ndarray:
    """``<section:TAG> text-or-<no_vocal> <audio>``, cut from ``build_sequence`` so the layout stays in one place:
    a style-less one-section song with no frames is ``<bos> <style> </style> HEADER </audio> <eos>``."""
    empty = SectionTokens(section.tag, section.text_ids, np.zeros(0, np.int64), np.zeros(0, np.int64),
                          section.instrumental)
    return build_sequence(SongTokens([], [empty]), vocab)[3:-2]


def _drop_condition(song: SongTokens) -> SongTokens:
    """The unconditional twin of a song (style and lyric text blanked, markers kept), from ``lm.data``;
    imported here so ``lm.generate`` loads without the training data code."""
    from lm.data import drop_condition

    copy = SongTokens(list(song.style_ids), [SectionTokens(s.tag, list(s.text_ids), s.vocal, s.accomp, s.instrumental)
                                             for s in song.sections])
    uncond = drop_condition(copy)
    if len(uncond.sections) != len(song.sections):
        raise RuntimeError("drop_condition changed the number of sections")
    return uncond


# --- the one generation loop ----------------------------------------------------------------------------------


def generate_song(model, vocab: Vocabulary, style_ids: Sequence[int] | None, sections: Sequence[SectionRequest],
                  options: GenerationOptions | None = None, prefix: SongTokens | None = None,
                  progress: Progress | None = None, phone_prior: PhonePrior | None = None) -> SongTokens:
    """Sample the sections of ``sections`` after ``prefix`` (kept as is) and return the whole song.

    ``style_ids`` are raw text pieces; with a ``prefix`` they may be None (the prefix's style is used) but must
    not differ from it. Each request gives a tag, lyric pieces, an exact frame count and optionally forced
    vocal / accompaniment codes. ``progress(frames_done, frames_total)`` is called after every new frame.
    ``phone_prior`` (bound to the model's phone cue pieces) is needed when ``options.phone_guidance > 0``.
    Bad input raises ``GenerationError`` (a ``ValueError``) before the model runs.
    """
    options = options or GenerationOptions()
    phone_guided = _phone_guided(phone_prior, options, vocab)
    style_ids = None if style_ids is None else _check_pieces(style_ids, vocab, "style_ids")
    prefix = prefix if prefix is not None else SongTokens(list(style_ids or []), [])
    if style_ids is not None and style_ids != [int(i) for i in prefix.style_ids]:
        raise GenerationError("style_ids differ from the prefix's style_ids; pass None to keep the prefix's style")
    requests = [check_request(index, request, vocab, options) for index, request in enumerate(sections)]
    headers = [SectionTokens(r.tag, r.text_ids, np.zeros(0, np.int64), np.zeros(0, np.int64), r.instrumental)
               for r in requests]
    prompt = check_song_inputs(model, vocab, prefix, requests, options, [len(_header_ids(h, vocab)) for h in headers])

    device = _model_device(model)
    streams = [_Stream(model, device)]
    streams[0].push(prompt)
    stream_headers = [[_header_ids(h, vocab) for h in headers]]
    if options.guided:
        uncond_song = _drop_condition(SongTokens(prefix.style_ids, [*prefix.sections, *headers]))
        n_prefix = len(prefix.sections)
        uncond_prefix = SongTokens(uncond_song.style_ids, uncond_song.sections[:n_prefix])
        streams.append(_Stream(model, device))
        streams[1].push(build_sequence(uncond_prefix, vocab)[:-1])
        stream_headers.append([_header_ids(h, vocab) for h in uncond_song.sections[n_prefix:]])

    generator = torch.Generator()
    if options.seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(options.seed))
    close = np.zeros(vocab.size, dtype=bool)
    close[vocab.audio_close_id] = True  # frame counts are fixed, so </audio> is written, never sampled
    candidates = {kind: torch.from_numpy(np.flatnonzero(allowed_mask(kind, vocab) & ~close)) for kind in TRACKS}
    if phone_guided and not torch.equal(candidates["vocal"], torch.arange(vocab.vocal_start, vocab.accomp_start)):
        raise RuntimeError("the vocal candidates are no longer the vocal range in code order: the phone table's "
                           "rows would not line up with them")
    # a vocal slot with words left to cue: <word> or a vocal code (<word> first, so index 0 means a cue)
    cue_or_vocal = torch.cat([torch.tensor([vocab.word_id]), candidates["vocal"]])
    first_id = {"vocal": vocab.vocal_start, "accomp": vocab.accomp_start}

    def next_log_probs() -> torch.Tensor:
        logits = [stream.next_logits() for stream in streams]
        return guided_log_probs(logits[0], logits[1] if len(logits) > 1 else None, options.cfg_scale).cpu()

    def sample(slot_ids: torch.Tensor, log_probs: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> int:
        log_probs = next_log_probs() if log_probs is None else log_probs
        scores = log_probs[slot_ids] if bias is None else log_probs[slot_ids] + bias
        return int(slot_ids[sample_from_log_probs(scores, options, generator)])

    def vocal_bias(frame: int) -> torch.Tensor | None:
        """λ · the phone table's log-ratio of every vocal candidate, ``frame`` frames into the section."""
        if not phone_guided or phone_cue is None:
            return None
        row, cue_frame = phone_cue
        return options.phone_guidance * phone_prior.bias(row, frame - cue_frame)

    def starts_word(log_probs: torch.Tensor, slot_ids: torch.Tensor) -> bool:
        """Whether the next word starts here, drawn at the model's own odds of ``<word>`` against the slot's
        codes: temperature and top-k shape the sound, and would otherwise also change the pace of the words (a
        cue competes with thousands of codes, so a cooler temperature or a top-k cut lowers its odds). Greedy
        decoding cues when the odds are at least even."""
        chance = float(torch.softmax(log_probs[slot_ids].float(), dim=-1)[0])
        if options.greedy:
            return chance >= 0.5
        return float(torch.rand((), generator=generator)) < chance

    was_training = bool(getattr(model, "training", False))
    if hasattr(model, "eval"):
        model.eval()  # dropout would make sampling depend on more than the seed
    frames_total, frames_done, new_sections = sum(r.n_frames for r in requests), 0, []
    try:
        with torch.inference_mode():
            for index, request in enumerate(requests):
                for stream, per_stream_headers in zip(streams, stream_headers, strict=True):
                    stream.push(per_stream_headers[index])
                codes = {kind: np.empty(request.n_frames, dtype=np.int64) for kind in TRACKS}
                forced = {"vocal": request.forced_vocal, "accomp": request.forced_accomp}
                words, cues = request.words or [], []
                phone_cue = None  # (table row, frame) of the phone cued last in this section
                for position in range(2 * request.n_frames):
                    kind, frame = slot_kind(position), position // 2
                    token = None
                    while kind == "vocal" and len(cues) < len(words):  # a word may start before this frame
                        if frame < cue_deadline(len(cues), len(words), request.n_frames):
                            slot_ids = cue_or_vocal if forced["vocal"] is None else torch.tensor(
                                [vocab.word_id, first_id["vocal"] + int(forced["vocal"][frame])])
                            log_probs = next_log_probs()
                            if not starts_word(log_probs, slot_ids):
                                token = (int(slot_ids[1]) if forced["vocal"] is not None
                                         else sample(candidates["vocal"], log_probs, vocal_bias(frame)))
                                break
                        # a cue (sampled, or written because the word's deadline has come)
                        word = words[len(cues)]
                        cues.append(WordCue(frame, tuple(word)))
                        if phone_guided:  # a word cue ends the last word's phone; its own phones follow
                            row = phone_prior.row_of_cue(word)
                            phone_cue = None if row is None else (row, frame)
                        streams[0].push([vocab.word_id, *vocab.text_id(np.asarray(word, np.int64)).tolist()])
                        for stream in streams[1:]:  # the unconditional stream: the marker without the word
                            stream.push([vocab.word_id])
                        token = None
                    if token is None:  # not already chosen against a cue above
                        token = (first_id[kind] + int(forced[kind][frame]) if forced[kind] is not None
                                 else sample(candidates[kind], bias=vocal_bias(frame) if kind == "vocal" else None))
                    codes[kind][frame] = token - first_id[kind]
                    for stream in streams:
                        stream.push([token])
                    if kind == "accomp":
                        frames_done += 1
                        if progress is not None:
                            progress(frames_done, frames_total)
                for stream in streams:
                    stream.push([vocab.audio_close_id])
                new_sections.append(SectionTokens(request.tag, list(request.text_ids), codes["vocal"],
                                                  codes["accomp"], request.instrumental, cues))
    finally:
        if was_training and hasattr(model, "train"):
            model.train(True)
    return SongTokens(list(prefix.style_ids), [*prefix.sections, *new_sections])


# --- modes ------------------------------------------------------------------------------------------------------


def full_song(model, vocab: Vocabulary, style_ids: Sequence[int], sections: Sequence[SectionRequest],
              options: GenerationOptions | None = None, progress: Progress | None = None,
              phone_prior: PhonePrior | None = None) -> SongTokens:
    """Both tracks of every section sampled from style and lyrics."""
    if any(r.forced_vocal is not None or r.forced_accomp is not None for r in sections):
        raise GenerationError("full_song samples both tracks; use accompaniment_for_vocal or "
                              "vocal_for_accompaniment to give one")
    return generate_song(model, vocab, style_ids, sections, options, progress=progress, phone_prior=phone_prior)


def instrumental(model, vocab: Vocabulary, style_ids: Sequence[int], sections: Sequence[tuple[str, int]],
                 options: GenerationOptions | None = None, progress: Progress | None = None) -> SongTokens:
    """A song without lyrics: ``sections`` are ``(tag, n_frames)`` pairs, each becomes a ``<no_vocal>`` section."""
    requests = [SectionRequest(tag, [], n_frames, instrumental=True) for tag, n_frames in sections]
    return generate_song(model, vocab, style_ids, requests, options, progress=progress)


def _split_track(codes, sections: Sequence[SectionRequest], what: str) -> list[np.ndarray]:
    """A whole-song code track (T,) cut at the sections' frame counts (which must add up to T)."""
    if not sections:
        raise GenerationError("no sections to generate: the sections list is empty")
    codes = np.asarray(codes)
    if codes.ndim != 1:
        raise GenerationError(f"{what} must be a 1-D array of codes, got shape {codes.shape}")
    counts = [r.n_frames for r in sections]
    if any(isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1 for n in counts):
        raise GenerationError(f"every section needs n_frames >= 1, got {counts}")
    if sum(counts) != len(codes):
        raise GenerationError(f"{what} has {len(codes)} frames but the sections ask for {sum(counts)} "
                              f"({' + '.join(map(str, counts))})")
    return np.split(codes, np.cumsum(counts)[:-1])


def accompaniment_for_vocal(model, vocab: Vocabulary, style_ids: Sequence[int], sections: Sequence[SectionRequest],
                            vocal_codes, options: GenerationOptions | None = None,
                            progress: Progress | None = None,
                            phone_prior: PhonePrior | None = None) -> SongTokens:
    """Accompaniment sampled for a given vocal track ``vocal_codes`` (T,), cut at the sections' frame counts;
    the vocal comes back bit-identical. Any forced tracks already in ``sections`` are replaced."""
    pieces = _split_track(vocal_codes, sections, "vocal_codes")
    requests = [replace(r, forced_vocal=piece, forced_accomp=None) for r, piece in zip(sections, pieces, strict=True)]
    return generate_song(model, vocab, style_ids, requests, options, progress=progress, phone_prior=phone_prior)


def vocal_for_accompaniment(model, vocab: Vocabulary, style_ids: Sequence[int], sections: Sequence[SectionRequest],
                            accomp_codes, options: GenerationOptions | None = None,
                            progress: Progress | None = None,
                            phone_prior: PhonePrior | None = None) -> SongTokens:
    """A vocal sung to ``sections``' lyrics over a given accompaniment ``accomp_codes`` (T,); the accompaniment
    comes back bit-identical."""
    pieces = _split_track(accomp_codes, sections, "accomp_codes")
    requests = [replace(r, forced_vocal=None, forced_accomp=piece) for r, piece in zip(sections, pieces, strict=True)]
    return generate_song(model, vocab, style_ids, requests, options, progress=progress, phone_prior=phone_prior)


def continue_song(model, vocab: Vocabulary, prefix: SongTokens, sections: Sequence[SectionRequest],
                  options: GenerationOptions | None = None, progress: Progress | None = None,
                  phone_prior: PhonePrior | None = None) -> SongTokens:
    """More sections after an existing song; the prefix (style and sections) is kept unchanged."""
    return generate_song(model, vocab, None, sections, options, prefix=prefix, progress=progress,
                         phone_prior=phone_prior)


def resample_track(model, vocab: Vocabulary, song: SongTokens, section_index: int, track: str,
                   options: GenerationOptions | None = None, progress: Progress | None = None,
                   phone_prior: PhonePrior | None = None) -> SongTokens:
    """Re-sample one track (``"vocal"`` or ``"accomp"``) of one section; everything else stays as it was.

    The model is causal, so the sections before are the prompt, the section's other track is teacher-forced
    frame by frame (its frame t follows the new frame t of the re-sampled track), and the sections after
    cannot influence the new tokens: they are copied back without running the model over them.
    """
    if track not in TRACKS:
        raise GenerationError(f"track must be 'vocal' or 'accomp', got {track!r}")
    if isinstance(section_index, bool) or not isinstance(section_index, int | np.integer) \
            or not 0 <= section_index < len(song.sections):
        raise GenerationError(f"section_index {section_index!r} is out of range: the song has "
                              f"{len(song.sections)} sections")
    target = song.sections[section_index]
    request = SectionRequest(target.tag, list(target.text_ids), target.n_frames, target.instrumental,
                             forced_vocal=target.vocal if track == "accomp" else None,
                             forced_accomp=target.accomp if track == "vocal" else None,
                             words=[list(cue.text_ids) for cue in target.cues] if target.cues else None)
    before = SongTokens(list(song.style_ids), list(song.sections[:section_index]))
    result = generate_song(model, vocab, None, [request], options, prefix=before, progress=progress,
                           phone_prior=phone_prior)
    return SongTokens(result.style_ids, [*result.sections, *song.sections[section_index + 1:]])
