"""The lyrics + style text tokenizer: one sentencepiece model, stored as ``spm.model`` next to the LM.

Pieces are numbered ``0..vocab_size-1`` with ``<unk>`` at 0 and no BOS/EOS/PAD pieces: the LM's own specials
(``lm.layout``) frame every text run, so sentencepiece control pieces would only waste ids. The LM places
these pieces in its text range with ``Vocabulary.text_id`` (``SongLM.text_ids`` does that).

Line breaks: sentencepiece's default normaliser turns a newline into an ordinary space, which would erase
the line structure a singer phrases by. So a section's lines become one string joined by ``LINE_SEPARATOR``
(" / "), a visible token the model learns as "end of a sung line" (``text_for_model``). ``encode`` applies the
same rule to any newline in its input, so ``encode("a\\nb") == encode(text_for_model(["a", "b"]))``; this is
what keeps ``lm.layout.song_tokens_from_record`` (which hands over ``LyricSection.text``, lines joined by
newlines) and generation-time prompts on the same pieces. The cleaned lyrics of ``lm.lyrics`` never contain
"/", so the separator cannot be confused with a sung word; ``decode`` returns the " / " form.

Section tags (``[verse]`` …) are ``user_defined_symbols`` so each stays one piece if raw tagged lyrics are
ever encoded. In the LM layout they never reach sentencepiece: a section tag is a layout special
(``<section:verse>``) and the lyric text passed in is the plain lines of that section.

``byte_fallback`` is on, so a character the training corpus never showed (an accent, an emoji in a style
prompt) becomes UTF-8 byte pieces instead of a lossy ``<unk>``.

Phonemes (``train_text_tokenizer(..., phonemes=True)``): the model then also holds the 39 phone symbols of
``lm.phonemes`` as user-defined pieces, and that is what marks it as a phoneme model (``TextTokenizer.phonemes``)
wherever it is loaded. ``encode_lyrics`` follows each known lyric word with its phones on such a model and is
plain ``encode`` otherwise, so every caller encodes lyrics through ``encode_lyrics`` and styles through
``encode`` without knowing which kind of model it holds.

Phone cues (``lm.layout``): an LM trained with ``phone_cues`` cues each sung phone as ``<word>`` followed by one
piece, ``phone_piece(phone)``: the byte-fallback piece of one of ``PHONE_CUE_BYTES``. Those bytes never come out
of text: ASCII control characters (sentencepiece's normaliser drops them; tab, newline and carriage return are
left out anyway) and 0xF5–0xFF, which valid UTF-8 never uses. So every byte-fallback model already has an id for
each phone that no lyric or style ever uses, and the shipped text model (and every id after it) stays as it is.
(Printable ASCII would not do: a model that never saw "!" writes it as its byte piece.)
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import sentencepiece as spm

from corpus.audio_io import atomic_write_bytes
from lm.lyrics import CANONICAL_TAGS
from lm.phonemes import ARPABET, PHONE_SYMBOLS, add_phonemes

LINE_SEPARATOR = " / "
DEFAULT_VOCAB_SIZE = 2000
SECTION_TAG_SYMBOLS = tuple(f"[{tag}]" for tag in CANONICAL_TAGS)
PHONE_CUE_BYTES = tuple(b for b in range(1, 32) if b not in (9, 10, 13)) + tuple(range(0xF5, 0x100))
MAX_SENTENCE_CHARS = 4096  # one section of lyrics or one style prompt; sentencepiece skips longer inputs


class TextTokenizerError(ValueError):
    """A text model that cannot be trained or loaded; the message names the file or the reason."""


def text_for_model(lines: Sequence[str]) -> str:
    """A section's lyric lines -> the one string the text tokenizer sees: stripped, empty lines dropped,
    joined by ``LINE_SEPARATOR`` (a visible line break; see the module docstring)."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    return LINE_SEPARATOR.join(line.strip() for line in lines if line.strip())


class TextTokenizer:
    """A loaded sentencepiece model. Build with ``train_text_tokenizer`` or ``TextTokenizer.load``."""

    def __init__(self, processor: spm.SentencePieceProcessor, model_bytes: bytes, path: Path | None = None):
        self._processor = processor
        self.model_bytes = model_bytes  # kept so SongLM.save_pretrained can copy the exact model
        self.path = path

    @classmethod
    def load(cls, path: str | Path) -> TextTokenizer:
        path = Path(path)
        if not path.is_file():
            raise TextTokenizerError(f"text model {path} does not exist")
        model_bytes = path.read_bytes()
        processor = spm.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(model_bytes)
        except (RuntimeError, OSError) as error:
            raise TextTokenizerError(f"{path}: not a readable sentencepiece model ({error})") from error
        if processor.get_piece_size() < 1:
            raise TextTokenizerError(f"{path}: the sentencepiece model has no pieces")
        return cls(processor, model_bytes, path)

    @property
    def vocab_size(self) -> int:
        return self._processor.get_piece_size()

    @functools.cached_property
    def phonemes(self) -> bool:
        """Whether lyrics are encoded with phonemes: the model was trained with the phone symbols as pieces."""
        unknown = self._processor.unk_id()
        return all(self._processor.piece_to_id(symbol) != unknown for symbol in PHONE_SYMBOLS)

    def encode_lyrics(self, text: str) -> list[int]:
        """Sung lyric text (lines joined by newlines) -> piece ids; on a phoneme model each word the
        dictionary knows is followed by its phones (``lm.phonemes.add_phonemes``)."""
        if not isinstance(text, str):
            raise TypeError(f"encode_lyrics expects a string, got {type(text).__name__}")
        return self.encode(add_phonemes(text) if self.phonemes else text)

    def encode(self, text: str) -> list[int]:
        """Text -> piece ids in ``0..vocab_size-1``; newlines count as line breaks (``LINE_SEPARATOR``)."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a string, got {type(text).__name__}")
        if "\n" in text or "\r" in text:
            text = text_for_model(text.splitlines())
        return list(self._processor.encode(text.strip(), out_type=int)) if text.strip() else []

    @functools.cached_property
    def _phone_pieces(self) -> dict[str, int]:
        pieces = {phone: self._processor.piece_to_id(f"<0x{byte:02X}>")
                  for phone, byte in zip(ARPABET, PHONE_CUE_BYTES, strict=True)}
        if self._processor.unk_id() in pieces.values():
            raise TextTokenizerError("this text model has no byte-fallback pieces, which phone cues are written "
                                     "with (module docstring); train it with byte_fallback")
        return pieces

    def phone_piece(self, phone: str) -> int:
        """The one piece that cues ARPAbet ``phone`` (module docstring); a ``ValueError`` for any other name."""
        if phone not in ARPABET:
            raise ValueError(f"{phone!r} is not an ARPAbet phone ({', '.join(ARPABET)})")
        return self._phone_pieces[phone]

    def phone_cue(self, phone: str) -> list[int]:
        """The pieces a phone cue writes after ``<word>``: ``[phone_piece(phone)]`` (what ``lm.layout``'s
        ``phone_to_ids`` and ``SongLM.cue_pieces`` take)."""
        return [self.phone_piece(phone)]

    def is_phone_cue(self, pieces: Sequence[int]) -> bool:
        """Whether a cue's pieces name a phone (one ``phone_piece``) rather than a word."""
        return self.cued_phone(pieces) is not None

    def cued_phone(self, pieces: Sequence[int]) -> str | None:
        """The ARPAbet phone a phone cue's pieces name, or None for a word cue."""
        return self._phone_of_piece.get(int(pieces[0])) if len(pieces) == 1 else None

    @functools.cached_property
    def _phone_of_piece(self) -> dict[int, str]:
        return {piece: phone for phone, piece in self._phone_pieces.items()}

    def decode(self, ids: Iterable[int]) -> str:
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise TextTokenizerError(f"piece id {bad[0]} is out of range 0..{self.vocab_size - 1}")
        return self._processor.decode(ids)

    def id_to_piece(self, piece_id: int) -> str:
        return self._processor.id_to_piece(int(piece_id))

    def save(self, path: str | Path) -> None:
        atomic_write_bytes(path, self.model_bytes)


def train_text_tokenizer(texts: Iterable[str], out_path: str | Path, vocab_size: int = DEFAULT_VOCAB_SIZE,
                         model_type: str = "unigram", phonemes: bool = False) -> TextTokenizer:
    """Train sentencepiece on ``texts`` (style prompts and ``text_for_model`` lyric strings, one per item)
    and write the model atomically to ``out_path``. With ``phonemes`` the phone symbols become pieces of
    their own (the lyric texts should then carry them: ``lm.data.corpus_texts(..., phonemes=True)``).

    ``hard_vocab_limit=False`` lets a small corpus end up with fewer pieces than asked for instead of failing;
    read the real size from ``.vocab_size``. Unigram is the default (it also gives sensible pieces for the
    short, repetitive lines of lyrics); ``model_type="bpe"`` works as well.
    """
    sentences = [text_for_model(text.splitlines()) for text in texts if isinstance(text, str)]
    sentences = [s[:MAX_SENTENCE_CHARS] for s in sentences if s]
    if not sentences:
        raise TextTokenizerError("no text to train the text tokenizer on (every lyric and style prompt is empty)")
    if vocab_size < 1:
        raise TextTokenizerError(f"vocab_size must be positive, got {vocab_size}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".spm-", dir=out_path.parent) as scratch:
        prefix = os.path.join(scratch, "spm")
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(sentences), model_prefix=prefix, vocab_size=vocab_size,
                model_type=model_type, hard_vocab_limit=False, character_coverage=1.0, byte_fallback=True,
                unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,
                user_defined_symbols=list(SECTION_TAG_SYMBOLS) + (list(PHONE_SYMBOLS) if phonemes else []),
                max_sentence_length=MAX_SENTENCE_CHARS * 4,  # bytes, and UTF-8 letters take up to 4
                num_threads=1, minloglevel=2)
        except RuntimeError as error:
            raise TextTokenizerError(f"sentencepiece training failed: {error}") from error
        model_bytes = Path(prefix + ".model").read_bytes()
    atomic_write_bytes(out_path, model_bytes)
    return TextTokenizer.load(out_path)
