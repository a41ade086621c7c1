"""An accompaniment decoder that also reads the vocal tokens (``DecoderConfig.vocal_context``): it starts as the
decoder it was made from, then follows the vocal tokens; DuoTok feeds it the vocal track; the training CLI
copies the vocal codebook in and crops the vocal ids with the accompaniment's; bad use gets clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.test_decoder import K, small_decoder, two_song_token_corpus
from tests.test_tokenizer_model import small_config
from tests.test_vocoder import small_config as small_vocoder_config
from tokenizer.checkpoint import from_pretrained
from tokenizer.decoder import DecoderConfig, load_decoder, save_decoder, with_config_updates
from tokenizer.decoder_train import TrackCache
from tokenizer.duotok import DuoTok, TrackTokens
from tokenizer.model import DuoTokModel
from tokenizer.train import main as train_main
from tokenizer.vocoder import Vocoder


def reading_vocals(seed: int = 0):
    """A small accompaniment decoder and the same decoder turned into one that reads the vocal tokens, with a
    random vocal code table and input layer (as after training), so its output depends on them."""
    base = small_decoder("accomp", seed)
    model = with_config_updates(base, {"vocal_context": True}).eval()
    return base, model


def test_vocal_context_starts_as_the_decoder_it_was_made_from():
    base, model = reading_vocals(1)
    indices, vocal = torch.randint(0, K, (2, 12)), torch.randint(0, K, (2, 12))
    with torch.no_grad():
        model.context_code_table.normal_()  # the zeroed input layer still hides the vocal codes
    torch.testing.assert_close(model.generate(indices, steps=0, context=vocal), base.generate(indices, steps=0))
    torch.testing.assert_close(model.generate(indices, steps=2, seed=3, context=vocal),
                               base.generate(indices, steps=2, seed=3))
    # the new input layer trains: its zeroed weights get a gradient
    model.train().losses(indices, torch.randn(2, 24, base.config.n_mels), context=vocal)["loss"].backward()
    assert model.context_in.weight.grad.abs().sum() > 0


def test_the_vocal_tokens_change_the_accompaniment_and_save_load_keeps_them(tmp_path):
    _, model = reading_vocals(2)
    with torch.no_grad():
        model.context_code_table.normal_()
        model.context_in.weight.normal_(std=0.5)
    indices = torch.randint(0, K, (1, 15))
    first, second = torch.randint(0, K, (2, 1, 15))
    assert not torch.allclose(model.generate(indices, steps=0, context=first),
                              model.generate(indices, steps=0, context=second))
    save_decoder(model, tmp_path / "decoder")
    loaded = load_decoder(tmp_path / "decoder")
    assert loaded.config.vocal_context
    torch.testing.assert_close(loaded.context_code_table, model.context_code_table)
    torch.testing.assert_close(loaded.generate(indices, steps=2, seed=1, context=first),
                               model.generate(indices, steps=2, seed=1, context=first))


def test_duotok_gives_the_accompaniment_decoder_the_vocal_track():
    _, accomp = reading_vocals(3)
    with torch.no_grad():
        accomp.context_code_table.normal_()
        accomp.context_in.weight.normal_(std=0.5)
    tok = DuoTok(DuoTokModel(small_config()), decoders={"vocal": small_decoder("vocal", 4), "accomp": accomp},
                 vocoder=Vocoder(small_vocoder_config()).eval())
    rng = np.random.default_rng(0)
    n = 130  # longer than one decoding window: the vocal tokens are windowed with the accompaniment's
    tokens = TrackTokens(rng.integers(0, K, n), rng.integers(0, K, n))
    vocals, accompaniment, _ = tok.decode(tokens, steps=2, seed=5)
    assert len(accompaniment) == n * 960
    np.testing.assert_array_equal(tok.decode_track(tokens.accomp, "accomp", steps=2, seed=6, vocal=tokens.vocal),
                                  accompaniment)
    other = tok.decode_track(tokens.accomp, "accomp", steps=2, seed=6, vocal=rng.integers(0, K, n))
    assert not np.allclose(other, accompaniment)
    # the vocal decoder reads no vocal context: decode_track ignores it there, as decode_mel does words
    np.testing.assert_array_equal(tok.decode_track(tokens.vocal, "vocal", steps=2, seed=5, vocal=tokens.vocal),
                                  vocals)
    with pytest.raises(ValueError, match="reads the vocal tokens too"):
        tok.decode_mel(tokens.accomp, "accomp", steps=0)
    with pytest.raises(ValueError, match="as long as the accomp tokens"):
        tok.decode_mel(tokens.accomp, "accomp", steps=0, vocal=tokens.vocal[:-1])
    with pytest.raises(ValueError, match=r"vocal token ids must lie in \[0, 32\)"):
        tok.decode_mel(tokens.accomp, "accomp", steps=0, vocal=np.full(n, K))


def test_bad_vocal_context_gets_clear_errors():
    with pytest.raises(ValueError, match="vocal_context is for the accompaniment decoder"):
        DecoderConfig(track="vocal", vocal_context=True)
    base, model = reading_vocals(5)
    indices = torch.randint(0, K, (1, 8))
    with pytest.raises(ValueError, match="reads no vocal tokens"):
        base.generate(indices, steps=0, context=indices)
    with pytest.raises(ValueError, match="must match the accompaniment tokens' shape"):
        model.generate(indices, steps=0, context=indices[:, :4])
    with pytest.raises(TypeError, match="vocal token indices must be integers"):
        model.generate(indices, steps=0, context=indices.float())


def test_training_cli_trains_a_decoder_that_reads_the_vocal_tokens(tmp_path):
    """One step through the real CLI: the accompaniment cache keeps each song's vocal ids (frame for frame with
    the accompaniment's), the vocal codebook is copied in, and a cache without vocal ids is refused."""
    songs = two_song_token_corpus(tmp_path, 23)
    args = ["--stage", "decoder", "--track", "accomp", "--data", str(songs), "--tokens", str(tmp_path / "tokens"),
            "--tokenizer", str(tmp_path / "duotok"), "--run-dir", str(tmp_path / "run"), "--batch-size", "2",
            "--crop-tokens", "20", "--log-every", "1", "--dim", "32", "--ffn-dim", "64", "--n-heads", "2",
            "--encoder-layers", "1", "--dit-layers", "1", "--conv-layers", "1", "--steps", "1",
            "--config-updates", '{"vocal_context": true}']
    assert train_main(args) == 0
    decoder = load_decoder(tmp_path / "run" / "decoder-accomp" / "final")
    tokenizer = from_pretrained(tmp_path / "duotok")
    vocal_table = tokenizer.vocal_branch.indices_to_codes(torch.arange(tokenizer.config.codebook_size))
    torch.testing.assert_close(decoder.context_code_table, vocal_table)
    cache_path = tmp_path / "run" / "decoder-accomp" / "cache.npz"
    cache = TrackCache.load(cache_path)
    assert cache.vocal is not None and [len(v) for v in cache.vocal] == [len(i) for i in cache.indices]
    crops = cache.batch(2, 20, torch.Generator().manual_seed(0))
    assert crops.vocal.shape == crops.indices.shape
    # a cache saved before vocal ids were kept is refused with the way out
    cache.vocal = None
    cache.save(cache_path)
    with pytest.raises(SystemExit, match="holds no vocal token ids"):
        train_main([*args, "--steps", "2"])
