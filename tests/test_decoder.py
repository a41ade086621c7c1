"""Stage-4 track decoders and DuoTok.decode: hop arithmetic, windowed decoding without seams, determinism,
save/load, the training CLI (one step, then resume) and bad tokens."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.test_tokenizer_model import small_config
from tests.test_vocoder import small_config as small_vocoder_config
from tokenizer.checkpoint import CheckpointError, save_pretrained
from tokenizer.decoder import DecoderConfig, TrackDecoder, load_decoder, save_decoder, with_config_updates
from tokenizer.duotok import DuoTok, TrackTokens
from tokenizer.model import DuoTokModel
from tokenizer.train import main as train_main
from tokenizer.vocoder import Vocoder

K = 32  # small_config's codebook size


def small_decoder(track: str, seed: int = 0) -> TrackDecoder:
    torch.manual_seed(seed)
    model = TrackDecoder(DecoderConfig(track=track, codebook_size=K, code_dim=16, dim=32, n_heads=2, ffn_dim=64,
                                       conv_layers=1, encoder_layers=1, dit_layers=1, default_steps=3))
    # a random code table and non-zero output layers, so outputs depend on tokens, noise and flow time
    with torch.no_grad():
        model.code_table.normal_()
        for layer in (model.out, model.out_modulation, *(b.modulation for b in model.dit)):
            layer.weight.normal_(std=0.05)
    return model.eval()


@pytest.fixture(scope="module")
def tok() -> DuoTok:
    torch.manual_seed(0)
    decoders = {"vocal": small_decoder("vocal", 1), "accomp": small_decoder("accomp", 2)}
    return DuoTok(DuoTokModel(small_config()), decoders=decoders, vocoder=Vocoder(small_vocoder_config()).eval())


def random_tokens(n: int, seed: int = 0) -> TrackTokens:
    rng = np.random.default_rng(seed)
    return TrackTokens(rng.integers(0, K, n), rng.integers(0, K, n))


@pytest.mark.parametrize("n_tokens", [1, 7, 100, 181])
def test_decode_gives_960_samples_per_token_and_mix_is_the_sum(tok, n_tokens):
    vocals, accompaniment, mix = tok.decode(random_tokens(n_tokens), steps=2)
    assert vocals.shape == accompaniment.shape == mix.shape == (n_tokens * tok.config.samples_per_token,)
    assert vocals.dtype == np.float32
    np.testing.assert_allclose(mix, vocals + accompaniment, atol=1e-6)
    assert tok.decode_mel(random_tokens(n_tokens).vocal, "vocal", steps=2).shape == (2 * n_tokens, 100)


def test_decode_is_deterministic_under_a_seed_and_the_seed_matters(tok):
    tokens = random_tokens(40)
    first, second = tok.decode(tokens, steps=3, seed=5), tok.decode(tokens, steps=3, seed=5)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    other = tok.decode(tokens, steps=3, seed=6)
    assert not np.allclose(first[0], other[0])


def test_one_track_decoded_alone_equals_that_track_of_decode(tok):
    tokens = random_tokens(60)
    vocals, accompaniment, _ = tok.decode(tokens, steps=2, seed=9)
    np.testing.assert_array_equal(tok.decode_track(tokens.vocal, "vocal", steps=2, seed=9), vocals)
    np.testing.assert_array_equal(tok.decode_track(tokens.accomp, "accomp", steps=2, seed=10), accompaniment)


def test_zero_steps_is_the_regression_estimate(tok):
    tokens = random_tokens(30)
    decoder = tok.decoder("vocal")
    indices = torch.as_tensor(tokens.vocal)[None]
    prior = decoder.denormalise(decoder.prior(decoder.encode(indices)))[0]
    torch.testing.assert_close(tok.decode_mel(tokens.vocal, "vocal", steps=0), prior)
    assert not torch.allclose(tok.decode_mel(tokens.vocal, "vocal", steps=3), prior)


def test_windowed_decoding_has_no_seams_at_window_joins(tok):
    """A 350-token input decodes in 5 overlapping windows; the mel's frame-to-frame jumps at the window
    edges must look like the jumps elsewhere (a hard seam would be the largest jump of the song)."""
    n, window, overlap = 350, 100, 20
    indices = random_tokens(n, seed=3).vocal
    mel = tok.decode_mel(indices, "vocal", steps=2, window_tokens=window, overlap_tokens=overlap)
    assert mel.shape == (2 * n, 100)
    jumps = (mel[1:] - mel[:-1]).abs().mean(dim=1)  # jump between frame f and f + 1
    edges = set()
    for start in range(0, n - window, window - overlap):
        edges.update({2 * (start + window) - 1, 2 * (start + window - overlap) - 1})
    edges = sorted(e for e in edges if 0 <= e < len(jumps))
    others = torch.ones(len(jumps), dtype=torch.bool)
    others[edges] = False
    assert jumps[edges].max() <= 1.25 * torch.quantile(jumps[others], 0.99)
    # without the cross-fade the same windows leave a visible step: the check above can fail
    hard = tok.decode_mel(indices, "vocal", steps=2, window_tokens=window, overlap_tokens=0)
    hard_jumps = (hard[1:] - hard[:-1]).abs().mean(dim=1)
    hard_edges = [2 * s - 1 for s in range(window, n, window)]
    assert hard_jumps[hard_edges].mean() > jumps[others].mean()


def test_long_audio_join_has_no_click(tok):
    vocals, _, _ = tok.decode(random_tokens(260, seed=4), steps=2)
    per_token = tok.config.samples_per_token
    step = np.abs(np.diff(vocals))
    joins = np.concatenate([np.arange(t * per_token - 480, t * per_token + 480) for t in (100, 180)])
    assert step[joins].max() <= 2.0 * np.quantile(step, 0.999) + 1e-6


def test_decoder_save_load_round_trip(tmp_path):
    model = small_decoder("accomp", 3)
    save_decoder(model, tmp_path / "dec")
    loaded = load_decoder(tmp_path / "dec")
    indices = torch.randint(0, K, (2, 12))
    torch.testing.assert_close(loaded.generate(indices, steps=2, seed=1), model.generate(indices, steps=2, seed=1))
    assert json.loads((tmp_path / "dec" / "config.json").read_text())["track"] == "accomp"


def test_stage4_parts_load_from_the_checkpoint_folder(tmp_path, tok):
    save_pretrained(tok.model, tmp_path / "ck")
    with pytest.raises(CheckpointError, match="decoder-vocal"):
        DuoTok.from_pretrained(tmp_path / "ck").decode(random_tokens(5))
    for track, folder in (("vocal", "decoder-vocal"), ("accomp", "decoder-accomp")):
        save_decoder(tok.decoder(track), tmp_path / "ck" / folder)
    from tokenizer.vocoder import save_pretrained as save_vocoder

    save_vocoder(tok.vocoder, tmp_path / "ck" / "vocoder")
    loaded = DuoTok.from_pretrained(tmp_path / "ck")
    tokens = random_tokens(9)
    for a, b in zip(loaded.decode(tokens, steps=2), tok.decode(tokens, steps=2), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_load_rejects_a_folder_of_another_kind(tmp_path):
    save_pretrained(DuoTokModel(small_config()), tmp_path / "enc")
    with pytest.raises(CheckpointError, match="decoder"):
        load_decoder(tmp_path / "enc")


@pytest.mark.parametrize(("vocal", "error", "match"), [
    (np.array([0, 1, K]), ValueError, "lie in"),
    (np.array([-1, 0, 1]), ValueError, "lie in"),
    (np.array([0.0, 1.0, 2.0]), TypeError, "integers"),
    (np.array([], dtype=np.int64), ValueError, "non-empty"),
    (np.zeros((2, 3), dtype=np.int64), ValueError, "1-D"),
])
def test_bad_tokens_get_clear_errors(tok, vocal, error, match):
    accomp = np.zeros(vocal.shape[-1] if vocal.ndim else 0, dtype=np.int64)
    tokens = TrackTokens.__new__(TrackTokens)  # bypass the length check: decode must check on its own
    tokens.vocal, tokens.accomp, tokens.frame_rate = vocal, accomp, 25.0
    with pytest.raises(error, match=match):
        tok.decode(tokens)


def test_mismatched_track_lengths_and_wrong_types_are_refused(tok):
    with pytest.raises(ValueError, match="differ in length"):
        TrackTokens(np.zeros(5, dtype=np.int64), np.zeros(6, dtype=np.int64))
    with pytest.raises(TypeError, match="TrackTokens"):
        tok.decode(np.zeros(5, dtype=np.int64))
    with pytest.raises(ValueError, match="steps"):
        tok.decode(random_tokens(5), steps=-1)


def two_song_token_corpus(tmp_path, seed: int):
    """Two generated 6–7 s songs under ``tmp_path/songs``, a small random tokenizer in ``tmp_path/duotok`` and
    the songs' token corpus written by the real tokenize command in ``tmp_path/tokens``."""
    from corpus.song import SongOptions
    from corpus.synth import synthesize
    from tokenizer.__main__ import main as tokenizer_main

    synthesize(tmp_path / "songs", 2, seed, options=SongOptions(min_seconds=6, max_seconds=7), progress=False)
    torch.manual_seed(0)
    save_pretrained(DuoTokModel(small_config()), tmp_path / "duotok")
    assert tokenizer_main(["tokenize", str(tmp_path / "songs"), "--out", str(tmp_path / "tokens"), "--checkpoint",
                           str(tmp_path / "duotok"), "--no-progress"]) == 0
    return tmp_path / "songs"


def test_training_cli_runs_a_step_and_resumes(tmp_path):
    """One step through ``python -m tokenizer.train --stage decoder`` on a hand-made two-song corpus (stems +
    a token corpus written by the real tokenizer command), then a resumed run to step 2."""
    songs = two_song_token_corpus(tmp_path, 21)
    args = ["--stage", "decoder", "--track", "vocal", "--data", str(songs), "--tokens", str(tmp_path / "tokens"),
            "--tokenizer", str(tmp_path / "duotok"), "--run-dir", str(tmp_path / "run"), "--batch-size", "2",
            "--crop-tokens", "20", "--save-every", "1", "--log-every", "1", "--dim", "32", "--ffn-dim", "64",
            "--n-heads", "2", "--encoder-layers", "1", "--dit-layers", "1", "--conv-layers", "1"]
    assert train_main([*args, "--steps", "1"]) == 0
    assert train_main([*args, "--steps", "2", "--export", str(tmp_path / "export")]) == 0
    log = [json.loads(line) for line in (tmp_path / "run" / "decoder-vocal" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(np.isfinite(r["loss"]) for r in log)
    decoder = load_decoder(tmp_path / "export")
    assert decoder.code_table.abs().sum() > 0  # the tokenizer's codebook was copied in
    assert decoder.mel_std.min() > 0

    # fine-tuning follows a retrained tokenizer: the trained weights stay (lr 0), the code table is the new one
    torch.manual_seed(1)
    retrained = DuoTokModel(small_config())
    save_pretrained(retrained, tmp_path / "duotok2")
    tuned_args = [*args[:args.index("--tokenizer")], "--tokenizer", str(tmp_path / "duotok2"), "--run-dir",
                  str(tmp_path / "run2"), "--batch-size", "2", "--crop-tokens", "20", "--lr", "0"]
    assert train_main([*tuned_args, "--steps", "1", "--init", str(tmp_path / "export")]) == 0
    tuned = load_decoder(tmp_path / "run2" / "decoder-vocal" / "final")
    new_table = retrained.vocal_branch.indices_to_codes(torch.arange(retrained.config.codebook_size))
    assert torch.allclose(tuned.code_table, new_table) and not torch.allclose(tuned.code_table, decoder.code_table)
    for (name, a), b in zip(tuned.state_dict().items(), decoder.state_dict().values(), strict=True):
        if name != "code_table":
            assert torch.equal(a, b), name
    with pytest.raises(SystemExit, match="is a vocal decoder, not accomp"):
        train_main([*tuned_args, "--steps", "1", "--init", str(tmp_path / "export"), "--track", "accomp",
                    "--run-dir", str(tmp_path / "run3")])
    # a deeper decoder from the trained one, through the CLI: one more encoder block, the rest kept
    assert train_main([*tuned_args, "--steps", "1", "--init", str(tmp_path / "export"), "--run-dir",
                       str(tmp_path / "run4"), "--config-updates", '{"encoder_layers": 2}']) == 0
    deeper = load_decoder(tmp_path / "run4" / "decoder-vocal" / "final")
    assert deeper.config.encoder_layers == 2 and len(deeper.encoder) == 2
    with pytest.raises(SystemExit, match="invalid decoder config update"):
        train_main([*tuned_args, "--steps", "1", "--init", str(tmp_path / "export"), "--run-dir",
                    str(tmp_path / "run5"), "--config-updates", '{"encoder_layer": 2}'])
    # a tokenizer retrained with a larger codebook: refused with the way out, then followed with it
    save_pretrained(DuoTokModel(small_config().with_updates({"codebook_size": 2 * K})), tmp_path / "duotok3")
    larger_args = [*args[:args.index("--tokenizer")], "--tokenizer", str(tmp_path / "duotok3"), "--batch-size", "2",
                   "--crop-tokens", "20", "--steps", "1", "--init", str(tmp_path / "export")]
    with pytest.raises(SystemExit, match="codebook_size"):
        train_main([*larger_args, "--run-dir", str(tmp_path / "run6")])
    assert train_main([*larger_args, "--run-dir", str(tmp_path / "run7"), "--config-updates",
                       json.dumps({"codebook_size": 2 * K})]) == 0
    assert load_decoder(tmp_path / "run7" / "decoder-vocal" / "final").code_table.shape == (2 * K, 16)


def test_added_blocks_start_as_the_identity_and_the_trained_weights_are_kept():
    model = small_decoder("vocal", 4)
    with torch.no_grad():  # trained-looking blocks: non-zero outputs everywhere
        for block in (*model.encoder, *model.dit):
            block.attn.out.weight.normal_(std=0.05)
    deeper = with_config_updates(model, {"encoder_layers": 3, "dit_layers": 2}).eval()
    assert (len(deeper.encoder), len(deeper.dit)) == (3, 2)
    indices = torch.randint(0, K, (2, 10))
    torch.testing.assert_close(deeper.generate(indices, steps=0), model.generate(indices, steps=0))
    torch.testing.assert_close(deeper.generate(indices, steps=2, seed=3), model.generate(indices, steps=2, seed=3))
    torch.testing.assert_close(deeper.code_table, model.code_table)
    # the new blocks train: their zeroed outputs get a gradient
    deeper.train().losses(indices, torch.randn(2, 20, model.config.n_mels))["loss"].backward()
    assert deeper.encoder[2].attn.out.weight.grad.abs().sum() > 0


def test_paper_config_builds_and_takes_a_training_step():
    """The GPU-size decoder (12 + 12 layers, d 768, 32,768 codes) builds and back-propagates on a short crop."""
    from tokenizer.decoder import get_decoder_config

    model = TrackDecoder(get_decoder_config("paper", "vocal"))
    assert sum(p.numel() for p in model.parameters()) > 150e6
    indices = torch.randint(0, model.config.codebook_size, (1, 4))
    out = model.losses(indices, torch.randn(1, 8, model.config.n_mels))
    out["loss"].backward()
    assert out["loss"].isfinite() and model.prior_head.weight.grad is not None
