"""The song LM: a Llama decoder from ``transformers``, built from a config (nothing downloaded), over the one
id space of ``lm.layout`` (DESIGN.md §6).

A Llama body gives us, for free, the KV cache, ``generate``, SDPA/flash attention and the ecosystem's
serving tools; the song-specific parts live around it: the vocabulary (``lm.layout.Vocabulary``), the text
tokenizer (``lm.text.TextTokenizer``) and the size preset (``LMConfig``).

A checkpoint folder (``SongLM.save_pretrained``) holds::

    config.json, model.safetensors, generation_config.json   the HF model (model.save_pretrained)
    lm_config.json                                           LMConfig (name, sizes, cond_dropout)
    vocab.json                                               Vocabulary.to_dict (ranges + special tokens)
    spm.model                                                the sentencepiece text model
    phone_prior.safetensors (optional)                       a phone-cue model's phone table (lm.phone_prior)

``SongLM.from_pretrained`` checks that these agree with each other (vocab size, text pieces, layer sizes)
and loads the weights strictly; it never unpickles anything.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

from corpus.audio_io import give_default_mode
from lm.layout import LayoutError, Vocabulary
from lm.phone_prior import PHONE_PRIOR_NAME, PhonePrior, PhonePriorError
from lm.phonemes import word_phones
from lm.text import TextTokenizer, TextTokenizerError

LM_CONFIG_NAME, VOCAB_NAME, TEXT_MODEL_NAME = "lm_config.json", "vocab.json", "spm.model"
HF_FILES = ("config.json", "model.safetensors")


class CheckpointError(ValueError):
    """A checkpoint folder that is missing a file, or whose files disagree; the message says which."""


@dataclass(frozen=True)
class LMConfig:
    """Transformer sizes; the vocabulary comes from the data (text pieces + codebook sizes), not from here."""

    name: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    max_position_embeddings: int
    rope_theta: float
    cond_dropout: float = 0.1  # share of training windows without style/lyric text (classifier-free guidance)
    word_cues: bool = False  # trained with a <word> cue before each sung word (lm.layout); generation then cues
    phone_cues: bool = False  # and each word's cue followed by a cue per sung phone (lm.layout, lm.text)

    def __post_init__(self):
        for name in ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size",
                     "max_position_embeddings"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"LMConfig.{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError(f"LMConfig {self.name!r}: hidden_size {self.hidden_size} must divide into num_heads "
                             f"{self.num_heads}, which must divide into num_kv_heads {self.num_kv_heads}")
        if not 0.0 <= self.cond_dropout < 1.0:
            raise ValueError(f"LMConfig.cond_dropout must be in [0, 1), got {self.cond_dropout}")
        if self.phone_cues and not self.word_cues:
            raise ValueError("LMConfig.phone_cues needs word_cues: a phone cue follows its word's cue")
        if self.rope_theta <= 0:
            raise ValueError(f"LMConfig.rope_theta must be positive, got {self.rope_theta}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LMConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown LMConfig fields {', '.join(unknown)}")
        return cls(**data)


# Parameter counts exclude the embedding, which is vocab.size x hidden_size (tied with the output head):
# about 2k text pieces + 2 x codebook size, so 2 x 32,768 codes add 52M to "base" and 100M to "large".
LM_CONFIGS = {
    # ~3.4M body params. One 8 x 1024-token step took 6-12 s on the (shared) 2-core dev CPU, so ~20 minutes is
    # ~300 steps at batch 4: enough to learn the layout and the per-track code statistics.
    "tiny": LMConfig("tiny", hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=4,
                     intermediate_size=768, max_position_embeddings=2048, rope_theta=10_000.0),
    # ~76M body params (12 x 6.3M): YuE-style grouped-query attention, 4k context = 80 s of music.
    "base": LMConfig("base", hidden_size=768, num_layers=12, num_heads=12, num_kv_heads=4,
                     intermediate_size=2048, max_position_embeddings=4096, rope_theta=100_000.0),
    # ~625M body params (24 x 26M), 8k context = 160 s; the larger rope base keeps long-range positions apart.
    "large": LMConfig("large", hidden_size=1536, num_layers=24, num_heads=16, num_kv_heads=8,
                      intermediate_size=4096, max_position_embeddings=8192, rope_theta=500_000.0),
}


def get_lm_config(config: str | LMConfig) -> LMConfig:
    if isinstance(config, LMConfig):
        return config
    if config not in LM_CONFIGS:
        raise ValueError(f"unknown LM config {config!r}; expected one of {', '.join(LM_CONFIGS)}")
    return LM_CONFIGS[config]


def llama_config(config: LMConfig, vocab: Vocabulary) -> LlamaConfig:
    """The HF config of the body: sizes from ``config``, ids from ``vocab``; embeddings tied (the output head
    is the embedding matrix, which halves the vocabulary's share of the parameters)."""
    return LlamaConfig(
        vocab_size=vocab.size, hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads, max_position_embeddings=config.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": float(config.rope_theta)},
        pad_token_id=vocab.pad_id, bos_token_id=vocab.bos_id, eos_token_id=vocab.eos_id,
        tie_word_embeddings=True, use_cache=True)


class SongLM:
    """The model plus everything needed to feed it: ``model`` (``LlamaForCausalLM``), ``vocab``, ``text``,
    ``config``. ``model(input_ids [B, T], attention_mask [B, T], labels [B, T])`` returns logits
    ``[B, T, vocab.size]`` and, with labels, the mean next-token loss. ``phone_prior`` is the phone table for
    phone guidance (``lm.phone_prior``), bound to this model's phone cues; None when the checkpoint has none."""

    def __init__(self, model: LlamaForCausalLM, vocab: Vocabulary, text: TextTokenizer, config: LMConfig,
                 phone_prior: PhonePrior | None = None):
        if vocab.n_text != text.vocab_size:
            raise CheckpointError(f"the vocabulary has {vocab.n_text} text ids but the text model has "
                                  f"{text.vocab_size} pieces")
        if model.config.vocab_size != vocab.size:
            raise CheckpointError(f"the model has {model.config.vocab_size} embeddings, the vocabulary "
                                  f"{vocab.size} ids")
        self.model, self.vocab, self.text, self.config = model, vocab, text, config
        self.phone_prior = None
        if phone_prior is not None:
            if not config.phone_cues:
                raise CheckpointError("a phone table goes with a phone-cue model (LMConfig.phone_cues)")
            if phone_prior.codebook_size != vocab.codebook_size_vocal:
                raise CheckpointError(f"the phone table covers {phone_prior.codebook_size} vocal codes, the "
                                      f"vocabulary {vocab.codebook_size_vocal}")
            self.phone_prior = phone_prior.bind(text.phone_piece)

    @classmethod
    def create(cls, config: str | LMConfig, vocab: Vocabulary, text: TextTokenizer) -> SongLM:
        """A randomly initialised model (seed with ``torch.manual_seed`` first for a reproducible init)."""
        config = get_lm_config(config)
        if vocab.n_text != text.vocab_size:
            raise CheckpointError(f"Vocabulary(n_text={vocab.n_text}) does not match the text model's "
                                  f"{text.vocab_size} pieces; build it as Vocabulary(n_text=text.vocab_size, …)")
        return cls(LlamaForCausalLM(llama_config(config, vocab)), vocab, text, config)

    # --- text -> LM ids -------------------------------------------------------------------------------------

    def text_ids(self, text: str) -> list[int]:
        """Text -> ids in the LM's text range (sentencepiece pieces shifted by ``vocab.text_start``)."""
        pieces = self.text.encode(text)
        return [int(i) for i in self.vocab.text_id(pieces)] if pieces else []

    def style_ids(self, style: str) -> list[int]:
        return self.text_ids(style or "")

    def lyric_ids(self, lines) -> list[int]:
        """A section's lyric lines (list of strings, or one string with newlines) -> LM text ids (with each
        word's phones on a phoneme text model, ``TextTokenizer.encode_lyrics``)."""
        pieces = self.lyric_pieces(lines)
        return [int(i) for i in self.vocab.text_id(pieces)] if pieces else []

    # --- text -> raw pieces, what lm.generate's SectionRequest.text_ids and style_ids take -----------------

    def lyric_pieces(self, lines) -> list[int]:
        """A section's lyric lines -> raw sentencepiece pieces (not shifted), for ``SectionRequest``."""
        text = lines if isinstance(lines, str) else "\n".join(lines)  # encode strips and joins the lines itself
        return [int(i) for i in self.text.encode_lyrics(text)]

    def word_pieces(self, lines) -> list[list[int]]:
        """A section's lyric lines -> raw pieces of each sung word, in order: what a word-cue model
        (``LMConfig.word_cues``) writes after each ``<word>``. Words are the whitespace-separated tokens of the
        normalised lines (``lm.lyrics``), as the corpus's word times name them."""
        text = lines if isinstance(lines, str) else "\n".join(lines)
        return [[int(i) for i in self.text.encode_lyrics(word)] for word in text.split()]

    def cue_pieces(self, lines) -> list[list[int]]:
        """What a cue model writes after each ``<word>`` of a section, in order: each word's pieces
        (``word_pieces``), and on a phone-cue model (``LMConfig.phone_cues``) after each word one phone piece per
        phone of its CMUdict pronunciation (``lm.phonemes.word_phones``; a word the dictionary lacks gets none)."""
        text = lines if isinstance(lines, str) else "\n".join(lines)
        cues = []
        for word, pieces in zip(text.split(), self.word_pieces(text), strict=True):
            cues.append(pieces)
            if self.config.phone_cues:
                cues += [self.text.phone_cue(phone) for phone in word_phones(word) or []]
        return cues

    def is_word_cue(self, cue) -> bool:
        """Whether a cue (``lm.layout.WordCue`` or its pieces) names a word, not one of its phones."""
        return self.cued_phone(cue) is None

    def cued_phone(self, cue) -> str | None:
        """The ARPAbet phone a cue (``lm.layout.WordCue`` or its pieces) of a phone-cue model names; None for a
        word cue, and for every cue of a model without phone cues."""
        pieces = cue.text_ids if hasattr(cue, "text_ids") else cue
        return self.text.cued_phone(pieces) if self.config.phone_cues else None

    def style_pieces(self, style: str) -> list[int]:
        """A style prompt -> raw sentencepiece pieces (not shifted), for ``lm.generate``'s ``style_ids``."""
        return [int(i) for i in self.text.encode(style)] if style else []

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        return self.model.num_parameters(exclude_embeddings=exclude_embeddings)

    # --- checkpoints ----------------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path, dtype: torch.dtype | None = None) -> Path:
        """Write the checkpoint folder (module docstring) into a temporary sibling, then rename it into place,
        so ``directory`` is never seen half-written. An existing folder there is replaced.

        ``dtype`` (e.g. ``torch.float16``) stores the weights in that type, leaving the model in memory as it is;
        ``from_pretrained`` casts them back to the model's float32, so only the storage is rounded."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
        give_default_mode(staging, directory=True)
        try:
            state = None
            if dtype is not None:
                # casting unties the shared embedding / output head, so the tied head is left out here
                # (as transformers does) and ``from_pretrained`` ties it again
                tied = {"lm_head.weight"} if self.model.config.tie_word_embeddings else set()
                state = {name: tensor.to(dtype) if tensor.is_floating_point() else tensor
                         for name, tensor in self.model.state_dict().items() if name not in tied}
            self.model.save_pretrained(staging, state_dict=state, safe_serialization=True)
            (staging / LM_CONFIG_NAME).write_text(json.dumps(self.config.to_dict(), indent=1) + "\n")
            (staging / VOCAB_NAME).write_text(json.dumps(self.vocab.to_dict(), indent=1) + "\n")
            (staging / TEXT_MODEL_NAME).write_bytes(self.text.model_bytes)
            if self.phone_prior is not None:
                self.phone_prior.save(staging / PHONE_PRIOR_NAME)
            for written in staging.iterdir():  # whoever wrote it (transformers writes its weights as 0600)
                give_default_mode(written)
            if directory.exists():
                # rename the old folder away first: a rename cannot replace a non-empty directory
                retired = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".old", dir=directory.parent))
                retired.rmdir()
                directory.rename(retired)
                staging.rename(directory)
                shutil.rmtree(retired, ignore_errors=True)
            else:
                staging.rename(directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> SongLM:
        """Load a folder written by ``save_pretrained``; strict: every file present, every weight matching."""
        directory = Path(directory)
        if not directory.is_dir():
            raise CheckpointError(f"checkpoint folder {directory} does not exist")
        missing = [name for name in (*HF_FILES, LM_CONFIG_NAME, VOCAB_NAME, TEXT_MODEL_NAME)
                   if not (directory / name).is_file()]
        if missing:
            raise CheckpointError(f"{directory}: missing {', '.join(missing)} (not a SongLM checkpoint folder)")
        try:
            config = LMConfig.from_dict(json.loads((directory / LM_CONFIG_NAME).read_text()))
            vocab = Vocabulary.from_dict(json.loads((directory / VOCAB_NAME).read_text()))
            hf_config = LlamaConfig.from_dict(json.loads((directory / "config.json").read_text()))
        except (ValueError, TypeError, LayoutError) as error:  # JSONDecodeError is a ValueError
            raise CheckpointError(f"{directory}: invalid config file ({error})") from error
        try:
            text = TextTokenizer.load(directory / TEXT_MODEL_NAME)
        except TextTokenizerError as error:
            raise CheckpointError(str(error)) from error
        expected = llama_config(config, vocab)
        for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                    "num_key_value_heads", "tie_word_embeddings"):
            if getattr(hf_config, key) != getattr(expected, key):
                raise CheckpointError(f"{directory}: config.json says {key}={getattr(hf_config, key)} but "
                                      f"{LM_CONFIG_NAME} + {VOCAB_NAME} give {getattr(expected, key)}")
        model = LlamaForCausalLM(expected)
        try:
            state = load_file(directory / "model.safetensors")
        except Exception as error:  # safetensors raises its own error types for truncated or corrupt files
            raise CheckpointError(f"{directory / 'model.safetensors'}: unreadable ({error})") from error
        reference = model.state_dict()
        # the tied output head is stored once, as the embedding
        allowed_missing = {"lm_head.weight"} if expected.tie_word_embeddings else set()
        missing_keys = sorted(set(reference) - set(state) - allowed_missing)
        unexpected = sorted(set(state) - set(reference))
        wrong_shape = sorted(k for k in state if k in reference and state[k].shape != reference[k].shape)
        if missing_keys or unexpected or wrong_shape:
            raise CheckpointError(f"{directory}: weights do not match the config (missing {missing_keys[:3]}, "
                                  f"unexpected {unexpected[:3]}, wrong shape {wrong_shape[:3]})")
        model.load_state_dict({k: v.to(reference[k].dtype) for k, v in state.items()}, strict=False)
        model.tie_weights()
        phone_prior = None
        if (directory / PHONE_PRIOR_NAME).is_file():
            try:
                phone_prior = PhonePrior.load(directory / PHONE_PRIOR_NAME)
            except PhonePriorError as error:
                raise CheckpointError(str(error)) from error
        return cls(model.to(device).eval(), vocab, text, config, phone_prior)
