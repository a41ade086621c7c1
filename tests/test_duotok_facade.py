"""The DuoTok facade: routing, determinism, save/load, windowed encoding and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.test_tokenizer_model import small_config
from tokenizer.checkpoint import save_pretrained
from tokenizer.duotok import WINDOW_TOKENS, DuoTok, TrackTokens
from tokenizer.model import DuoTokModel

SR = 24_000


@pytest.fixture(scope="module")
def tok() -> DuoTok:
    torch.manual_seed(0)
    return DuoTok(DuoTokModel(small_config()))


def _noise(seconds: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(int(seconds * SR)).astype(np.float32) * 0.1


def test_encode_gives_25_tokens_per_second_on_both_tracks(tok):
    tokens = tok.encode(vocals=_noise(3, 1), accompaniment=_noise(3, 2))
    assert isinstance(tokens, TrackTokens)
    assert len(tokens.vocal) == len(tokens.accomp) == 75 and tokens.frame_rate == 25.0
    assert tokens.vocal.dtype == np.int64 and tokens.vocal.max() < tok.config.codebook_size


def test_hard_routing_each_track_only_reaches_its_own_codebook(tok):
    vocals, accompaniment = _noise(2, 1), _noise(2, 2)
    base = tok.encode(vocals=vocals, accompaniment=accompaniment)
    changed_accomp = tok.encode(vocals=vocals, accompaniment=_noise(2, 3))
    changed_vocals = tok.encode(vocals=_noise(2, 4), accompaniment=accompaniment)
    np.testing.assert_array_equal(base.vocal, changed_accomp.vocal)
    np.testing.assert_array_equal(base.accomp, changed_vocals.accomp)
    assert not np.array_equal(base.accomp, changed_accomp.accomp)
    assert not np.array_equal(base.vocal, changed_vocals.vocal)
    # the same audio through the two branches gives different codes: the codebooks are separate
    same = tok.encode(vocals=vocals, accompaniment=vocals)
    assert not np.array_equal(same.vocal, same.accomp)


def test_encode_is_deterministic_and_survives_save_load(tok, tmp_path):
    audio = (_noise(2, 5), _noise(2, 6))
    first = tok.encode(vocals=audio[0], accompaniment=audio[1])
    save_pretrained(tok.model, tmp_path / "ck")
    loaded = DuoTok.from_pretrained(tmp_path / "ck")
    second = loaded.encode(vocals=audio[0], accompaniment=audio[1])
    np.testing.assert_array_equal(first.vocal, second.vocal)
    np.testing.assert_array_equal(first.accomp, second.accomp)


def test_long_input_is_encoded_window_by_window_without_changing_window_tokens(tok):
    long = _noise(10 * 60, 7)  # ten minutes
    tokens = tok.encode(vocals=long, accompaniment=long)
    assert len(tokens) == 25 * 600
    # a window far from the ends equals encoding that window (with its context) on its own: tokens do not
    # depend on the song's length or on positions the encoder was never trained on
    start = 40 * WINDOW_TOKENS
    window = torch.from_numpy(long[(start - 12) * 960:(start + WINDOW_TOKENS + 12) * 960])[None]
    with torch.no_grad():
        expected = tok.model.quantize(window, "vocal")[1][0, 12:12 + WINDOW_TOKENS].numpy()
    np.testing.assert_array_equal(tokens.vocal[start:start + WINDOW_TOKENS], expected)


def test_mix_only_songs_are_separated_first(tok):
    mix = _noise(2, 8)
    vocals, accompaniment = tok.separate(mix)
    assert vocals.shape == accompaniment.shape == mix.shape
    np.testing.assert_allclose(vocals + accompaniment, mix, atol=1e-5)
    tokens = tok.encode(mix=mix)
    direct = tok.encode(vocals=vocals, accompaniment=accompaniment)
    np.testing.assert_array_equal(tokens.vocal, direct.vocal)


def test_stereo_and_other_rates_are_handled(tok):
    mono = _noise(2, 9)
    stereo = np.stack([mono, mono])
    np.testing.assert_array_equal(tok.encode(vocals=stereo, accompaniment=stereo).vocal,
                                  tok.encode(vocals=mono, accompaniment=mono).vocal)
    at_48k = np.repeat(mono, 2)
    assert len(tok.encode(vocals=at_48k, accompaniment=at_48k, sample_rate=48_000)) == 50


def test_silence_is_tokenized(tok):
    silent = np.zeros(SR, dtype=np.float32)
    assert len(tok.encode(vocals=silent, accompaniment=silent)) == 25


@pytest.mark.parametrize(("audio", "message"), [
    (np.zeros(0, dtype=np.float32), "shorter than one token frame"),
    (np.zeros(500, dtype=np.float32), "shorter than one token frame"),
    (np.full(SR, np.nan, dtype=np.float32), "NaN or infinite"),
    (np.full(SR, np.inf, dtype=np.float32), "NaN or infinite"),
    (np.zeros((2, 2, SR), dtype=np.float32), "expected mono audio"),
])
def test_bad_audio_gives_a_clear_error(tok, audio, message):
    with pytest.raises(ValueError, match=message):
        tok.encode(vocals=audio, accompaniment=audio)


def test_bad_calls_give_clear_errors(tok):
    with pytest.raises(ValueError, match="not both"):
        tok.encode(mix=_noise(1, 0), vocals=_noise(1, 0))
    with pytest.raises(ValueError, match="needs vocals"):
        tok.encode(vocals=_noise(1, 0))
    with pytest.raises(ValueError, match="track must be"):
        tok.indices_to_codes([1, 2], "drums")
    with pytest.raises(ValueError, match="token ids must lie"):
        tok.indices_to_codes([tok.config.codebook_size], "vocal")
    with pytest.raises(ValueError, match="differ in length"):
        TrackTokens(np.zeros(3, dtype=np.int64), np.zeros(4, dtype=np.int64))


def test_indices_to_codes_matches_the_branch(tok):
    tokens = tok.encode(vocals=_noise(1, 1), accompaniment=_noise(1, 2))
    codes = tok.indices_to_codes(tokens.vocal, "vocal")
    assert codes.shape == (25, tok.config.codebook_dim)
