"""Duo-Tok encoder: frame arithmetic, stage forwards, quantizer round trips, checkpoints, training CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tokenizer.checkpoint import CheckpointError, from_pretrained, save_pretrained
from tokenizer.config import DuoTokConfig, get_config
from tokenizer.frontend import AudioFrontEnd, mel_frames, token_frames
from tokenizer.model import DuoTokModel
from tokenizer.modules import NoisyBottleneck
from tokenizer.train import frozen_lower_layers
from tokenizer.train import main as train_main

SR = 24_000


def small_config(**changes) -> DuoTokConfig:
    """The tiny layout with fewer/narrower layers so tests run in a blink."""
    values = {"d_model": 64, "n_heads": 2, "ffn_dim": 128, "lower_layers": 1, "upper_layers": 1, "conv_channels": 8,
              "ssl_codebook_size": 64, "codebook_size": 32, "codebook_dim": 16, "bottleneck_dim": 16}
    values.update(changes)
    return DuoTokConfig(**values)


@pytest.mark.parametrize("seconds", [1, 2, 5])
def test_whole_seconds_give_100_mel_and_25_token_frames_per_second(seconds):
    frontend = AudioFrontEnd(SR, 1024, 240, 128)
    audio = torch.randn(1, SR * seconds)
    assert frontend.log_mel(audio).shape == (1, 100 * seconds, 128)
    assert frontend.chroma(audio).shape == (1, 100 * seconds, 12)
    assert token_frames(SR * seconds, 240) == 25 * seconds


def test_partial_frames_are_dropped():
    assert mel_frames(SR + 239, 240) == 100
    assert token_frames(SR + 959, 240) == 25
    assert token_frames(959, 240) == 0


def test_stage_forwards_have_shapes_from_the_hop_arithmetic():
    torch.manual_seed(0)
    model = DuoTokModel(small_config())
    audio = torch.randn(2, SR * 2)
    out = model.forward_ssl(audio)
    assert out["loss"].isfinite() and 0 <= out["masked_accuracy"] <= 1
    stems = torch.randn(2, 4, SR * 2)
    phones, lengths = torch.randint(1, 48, (2, 6)), torch.tensor([6, 0])
    multitask = model.forward_multitask(audio, stems, phones, lengths)
    assert {"mel", "chroma", "separation", "ctc"} <= set(multitask)
    masks, spec = model.separation_masks(audio)
    assert masks.shape == (2, 4, 200, 513) and spec.shape == (2, 200, 513)
    assert masks.min() >= 0 and masks.max() <= 1
    codebook = model.forward_codebook(audio, audio, phones, lengths)
    assert codebook["vocal_indices"].shape == (2, 50) and codebook["accomp_indices"].shape == (2, 50)
    # frame-wise phone targets count only when their loss weight is set
    frames = torch.randint(0, 48, (2, 50))
    assert "frame_phone" not in model.forward_multitask(audio, stems, phones, lengths, frames)
    weighted = DuoTokModel(small_config(loss_weights={**small_config().loss_weights, "frame_phone": 1.0}))
    out = weighted.forward_multitask(audio, stems, phones, lengths, frames)
    assert out["frame_phone"].isfinite() and out["frame_phone"] > 0


def test_too_short_audio_is_a_clear_error():
    model = DuoTokModel(small_config())
    with pytest.raises(ValueError, match="shorter than one token frame"):
        model.analyse(torch.randn(1, 500))


def test_indices_to_codes_reproduces_the_quantized_vectors():
    torch.manual_seed(0)
    model = DuoTokModel(small_config()).eval()
    branch = model.vocal_branch
    hidden = torch.randn(1, 30, 64)
    quantized, indices, _ = branch.quantizer(branch.proj_in(hidden))
    torch.testing.assert_close(branch.indices_to_codes(indices), quantized, atol=1e-5, rtol=1e-5)


def test_tokens_change_when_the_audio_changes_and_are_deterministic():
    torch.manual_seed(0)
    model = DuoTokModel(small_config()).eval()
    a, b = torch.randn(1, SR), torch.randn(1, SR)
    with torch.no_grad():
        first = model.quantize(a, "vocal")[1]
        again = model.quantize(a, "vocal")[1]
        other = model.quantize(b, "vocal")[1]
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_bottleneck_noise_only_in_training():
    torch.manual_seed(0)
    bottleneck = NoisyBottleneck(32, 8, noise_prob=0.5, noise_scale=1.0)
    x = torch.randn(4, 20, 32)
    bottleneck.eval()
    torch.testing.assert_close(bottleneck(x), bottleneck(x))
    bottleneck.train()
    clean = bottleneck.proj_out(bottleneck.proj_in(x))
    replaced = ~torch.isclose(bottleneck(x), clean).all(-1)
    assert 0.3 < replaced.float().mean() < 0.7


def test_bottleneck_trains_under_bf16_autocast_and_keeps_its_std_in_fp32():
    # on a GPU the stages train under bf16 autocast; the running std (an fp32 buffer) must accept a bf16 z
    bottleneck = NoisyBottleneck(32, 8, noise_prob=0.5, noise_scale=1.0).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = bottleneck(torch.randn(4, 20, 32))
    assert out.dtype == torch.bfloat16 and bottleneck.running_std.dtype == torch.float32
    assert bottleneck.running_std.item() != 1.0  # it was updated


def test_progressive_freezing_goes_bottom_up_over_the_first_half():
    assert frozen_lower_layers(0, 1000, 4) == 0
    assert frozen_lower_layers(250, 1000, 4) == 2
    assert frozen_lower_layers(500, 1000, 4) == 5
    assert frozen_lower_layers(900, 1000, 4) == 5


def test_save_load_round_trip_is_strict(tmp_path):
    torch.manual_seed(0)
    model = DuoTokModel(small_config()).eval()
    save_pretrained(model, tmp_path / "ck")
    loaded = from_pretrained(tmp_path / "ck")
    for (name, expected), actual in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(expected, actual), name
    # frozen random parts are saved as buffers
    assert "vocal_branch.quantizer.frozen_codebook" in loaded.state_dict()
    assert "ssl_targets.rand_projs" in loaded.state_dict()
    # a config that does not match the weights is refused
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    config["codebook_size"] = 64
    (tmp_path / "ck" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="do not match"):
        from_pretrained(tmp_path / "ck")


def test_config_updates_add_fresh_parts_and_keep_every_trained_weight(tmp_path):
    torch.manual_seed(0)
    model = DuoTokModel(small_config()).eval()
    save_pretrained(model, tmp_path / "ck")
    updated = from_pretrained(tmp_path / "ck", config_updates={
        "n_pitch_classes": 49, "branch_mel_skip": True, "loss_weights": {"frame_pitch": 1.0}})
    assert updated.config.n_pitch_classes == 49 and updated.config.branch_mel_skip
    assert updated.config.loss_weights["frame_pitch"] == 1.0 and updated.config.loss_weights["mel"] == 1.0
    state = updated.state_dict()
    for name, tensor in model.state_dict().items():
        assert torch.equal(state[name], tensor), name
    assert state["quantized_heads.pitch.weight"].shape == (49, model.config.d_model)
    assert "vocal_branch.mel_skip.0.weight" in state and "accomp_branch.mel_skip.0.weight" in state
    # the mel skip starts at zero: the updated model still gives the old model's tokens
    audio = torch.randn(2, SR)
    for track in ("vocal", "accomp"):
        assert torch.equal(updated.quantize(audio, track)[1], model.quantize(audio, track)[1])
    # the pitch head adds a loss on the vocal branch only; its gradient reaches the vocal branch and its skip
    pitches = torch.randint(0, 49, (2, 25))
    out = updated.train().forward_codebook(audio, audio, torch.ones(2, 3, dtype=torch.long),
                                           torch.full((2,), 3), pitch_frames=pitches)
    assert out["vocal_frame_pitch"].isfinite() and "accomp_frame_pitch" not in out
    out["loss"].backward()
    assert updated.vocal_branch.proj_in.weight.grad.abs().sum() > 0
    assert updated.vocal_branch.mel_skip[-1].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="mel skip"):
        updated.vocal_branch(torch.randn(1, 5, model.config.d_model))
    with pytest.raises(CheckpointError, match="invalid config update"):
        from_pretrained(tmp_path / "ck", config_updates={"n_pitch_clases": 49})
    with pytest.raises(CheckpointError, match="do not match"):  # an update that reshapes trained weights
        from_pretrained(tmp_path / "ck", config_updates={"codebook_dim": model.config.codebook_dim * 2})
    # a larger codebook: new random frozen codes, every trained tensor kept (the codes' learned transform too)
    larger = from_pretrained(tmp_path / "ck", config_updates={"codebook_size": 4 * model.config.codebook_size})
    state = larger.state_dict()
    for name, tensor in model.state_dict().items():
        if name.endswith("frozen_codebook"):
            assert state[name].shape[0] == 4 * tensor.shape[0], name
        else:
            assert torch.equal(state[name], tensor), name
    assert larger.quantize(audio, "vocal")[1].max() < 4 * model.config.codebook_size


def test_mel_context_starts_at_zero_and_sees_exactly_its_neighbours(tmp_path):
    torch.manual_seed(0)
    model = DuoTokModel(small_config().with_updates({"branch_mel_skip": True})).eval()
    save_pretrained(model, tmp_path / "ck")
    updated = from_pretrained(tmp_path / "ck", config_updates={"branch_mel_context": 2})
    assert "vocal_branch.mel_context_conv.0.weight" in updated.state_dict()
    audio = torch.randn(2, SR)
    for track in ("vocal", "accomp"):  # zero at the start: the same tokens as before the update
        assert torch.equal(updated.quantize(audio, track)[1], model.quantize(audio, track)[1])
    # its gradient flows from the losses
    out = updated.train().forward_codebook(audio, audio, torch.ones(2, 3, dtype=torch.long), torch.full((2,), 3))
    out["loss"].backward()
    assert updated.vocal_branch.mel_context_conv[-1].weight.grad.abs().sum() > 0
    # receptive field: token t sees the mel frames of tokens t-2 .. t+2 and no further
    branch = updated.vocal_branch.eval()
    torch.nn.init.normal_(branch.mel_context_conv[-1].weight)
    d, frames_dim = updated.config.d_model, updated.config.n_mels * updated.config.subsampling
    hidden, frames = torch.zeros(1, 9, d), torch.randn(1, 9, frames_dim)
    with torch.no_grad():
        base = branch.quantizer_input(hidden, frames)
        for neighbour, seen in ((6, True), (7, False)):
            changed = frames.clone()
            changed[0, neighbour] += 1.0
            moved = branch.quantizer_input(hidden, changed)
            assert (moved[0, 4] - base[0, 4]).abs().max().item() > 0 if seen else torch.equal(moved[0, 4], base[0, 4])
    with pytest.raises(ValueError, match="needs the mel skip"):
        DuoTokModel(small_config().with_updates({"branch_mel_context": 2}))


def test_corrupt_or_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match=r"missing config\.json"):
        from_pretrained(tmp_path)
    save_pretrained(DuoTokModel(small_config()), tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="unreadable"):
        from_pretrained(tmp_path)


def test_paper_config_builds_and_takes_a_training_step_on_two_seconds():
    config = get_config("paper")
    assert config.codebook_size == 32_768 and config.lower_layers == config.upper_layers == 12
    assert config.d_model == 1024 and config.bitrate == pytest.approx(750.0)
    torch.manual_seed(0)
    model = DuoTokModel(config)
    params = model.stage_parameters("ssl")
    optimizer = torch.optim.SGD(params, lr=1e-4)  # plain SGD: AdamW's state for ~300M parameters is not the point
    before = model.ssl_head.weight.detach().clone()
    out = model.forward_ssl(torch.randn(1, SR * 2))
    out["loss"].backward()
    optimizer.step()
    assert out["loss"].isfinite()
    assert not torch.equal(before, model.ssl_head.weight)


def test_every_training_stage_runs_through_its_cli_and_resumes(tiny_songs, tmp_path, monkeypatch):
    import tokenizer.config as config_module

    monkeypatch.setitem(config_module.CONFIGS, "tiny", small_config())
    run = tmp_path / "run"
    common = ["--data", str(tiny_songs), "--run-dir", str(run), "--batch-size", "2", "--crop-seconds", "2",
              "--log-every", "1", "--warmup", "1"]
    assert train_main(["--stage", "ssl", "--steps", "2", "--save-every", "1", *common]) == 0
    assert (run / "ssl" / "final" / "model.safetensors").exists()
    # resume: a longer run continues from the saved step instead of starting over
    assert train_main(["--stage", "ssl", "--steps", "3", "--save-every", "1", *common]) == 0
    steps = [json.loads(line)["step"] for line in (run / "ssl" / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    assert train_main(["--stage", "multitask", "--steps", "1", *common]) == 0
    export = tmp_path / "export"
    updates = ('{"n_pitch_classes": 49, "branch_mel_skip": true, '
               '"loss_weights": {"frame_pitch": 1.0, "frame_phone": 1.0}}')
    assert train_main(["--stage", "codebook", "--steps", "1", "--export", str(export), "--config-updates", updates,
                       *common]) == 0
    model = from_pretrained(export)
    assert model.config.codebook_size == 32 and model.config.n_pitch_classes == 49 and model.config.branch_mel_skip
    logged = json.loads((run / "codebook" / "log.jsonl").read_text().splitlines()[-1])
    assert "vocal_frame_pitch" in logged and "vocal_frame_phone" in logged
    # continuing a trained stage 3 keeps its quantized path (lr 0: exactly); without the flag it restarts
    # from the stage-2 path
    for flag, name in ((["--continue-codebook"], "continued"), ([], "restarted")):
        assert train_main(["--stage", "codebook", "--steps", "1", "--lr", "0", "--init", str(export), *flag,
                           *common[:2], "--run-dir", str(tmp_path / name), *common[4:]]) == 0
    trained = model.state_dict()
    continued = from_pretrained(tmp_path / "continued" / "codebook" / "final").state_dict()
    restarted = from_pretrained(tmp_path / "restarted" / "codebook" / "final").state_dict()
    quantized = [k for k in trained if k.startswith(("quantized_upper.", "vocal_branch.proj_in"))]
    assert quantized and all(torch.equal(continued[k], trained[k]) for k in quantized)
    assert any(not torch.equal(restarted[k], trained[k]) for k in quantized)
    with pytest.raises(SystemExit, match="needs --stage codebook and --init"):
        train_main(["--stage", "multitask", "--continue-codebook", "--steps", "1", *common])


@pytest.fixture
def fresh_accelerate_state():
    """accelerate keeps one process-wide state and refuses a second mixed-precision setting in the same
    process; start this test from none and leave none behind for the fp32 tests."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_the_three_stages_train_in_bf16_mixed_precision(tiny_songs, tmp_path, monkeypatch, fresh_accelerate_state):
    # what `accelerate launch --mixed_precision bf16` does on GPUs, here on the CPU's bf16 autocast
    import tokenizer.config as config_module

    monkeypatch.setitem(config_module.CONFIGS, "tiny", small_config())
    common = ["--data", str(tiny_songs), "--run-dir", str(tmp_path / "run"), "--batch-size", "2", "--crop-seconds",
              "2", "--warmup", "1", "--steps", "1", "--mixed-precision", "bf16"]
    for stage in ("ssl", "multitask", "codebook"):
        assert train_main(["--stage", stage, *common]) == 0
        logged = json.loads((tmp_path / "run" / stage / "log.jsonl").read_text().splitlines()[-1])
        assert math.isfinite(logged["loss"])


def test_a_stage_without_its_predecessor_says_so(tiny_songs, tmp_path):
    with pytest.raises(SystemExit, match="train stage ssl first"):
        train_main(["--stage", "multitask", "--data", str(tiny_songs), "--run-dir", str(tmp_path), "--steps", "1"])


def test_eval_reports_every_metric_in_range(tiny_songs):
    from tokenizer.eval import evaluate

    torch.manual_seed(0)
    model = DuoTokModel(small_config(n_pitch_classes=49))
    result = evaluate(model, str(tiny_songs), ("separation", "ctc", "frames", "codebook"), crop_seconds=2.0,
                      crops_per_song=1, batch_size=2)
    assert result["songs"] == 2
    for key in ("phone_error_rate_quantized", "frame_phone_accuracy_quantized", "frame_note_accuracy_quantized"):
        assert 0 <= result[key] <= 1.5, key  # an error rate may pass 1 (insertions); accuracies may not
    assert result["frame_note_accuracy_quantized"] <= 1 and result["frame_phone_accuracy_quantized"] <= 1
    assert 0 < result["vocal_codes"]["utilisation"] <= 1
    assert result["bitrate_bps"] == pytest.approx(2 * 25 * 5)  # 32 codes
    assert math.isfinite(result["vocal_si_sdr_improvement_db"])
