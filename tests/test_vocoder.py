"""Stage-4 vocoder: frame arithmetic, output length, the multi-scale mel L1 metric, Griffin-Lim, checkpoints,
input errors, and the training CLI (2 steps, then resume to 3) on a tiny generated corpus."""

from __future__ import annotations

import functools
import json
import math

import pytest
import torch

from tokenizer.checkpoint import CheckpointError
from tokenizer.vocoder import (
    LatentMel,
    Vocoder,
    VocoderConfig,
    gated_running_sum,
    get_vocoder_config,
    griffin_lim,
    latent_frames,
    load_vocoder,
    multiscale_mel_l1,
    save_pretrained,
    with_config_updates,
)
from tokenizer.vocoder_train import choose_tracks, evaluate_vocoder
from tokenizer.vocoder_train import main as train_main

SR = 24_000


def small_config(**changes) -> VocoderConfig:
    """The tiny layout, narrow and shallow so tests run in a blink (same frame arithmetic)."""
    values = {"dim": 32, "intermediate_dim": 64, "num_layers": 1}
    values.update(changes)
    return VocoderConfig(**values)


def tone(seconds: float, freq: float = 220.0, amplitude: float = 0.3) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    return amplitude * torch.sin(2 * math.pi * freq * t) + 0.3 * amplitude * torch.sin(2 * math.pi * 2 * freq * t)


@pytest.mark.parametrize("seconds", [1, 2, 3])
def test_whole_seconds_give_50_latent_frames_per_second(seconds):
    latent = LatentMel(VocoderConfig())
    mel = latent(torch.zeros(2, seconds * SR))
    assert mel.shape == (2, 50 * seconds, 100)
    assert latent_frames(seconds * SR) == 50 * seconds
    # two latent frames per 25 Hz token (960 samples)
    assert latent_frames(960) == 2


@pytest.mark.parametrize("n_samples", [480, 959, 1000, 24_000, 24_479])
def test_output_length_is_frames_times_hop(n_samples):
    model = Vocoder(small_config()).eval()
    with torch.no_grad():
        mel = model.latent(torch.randn(2, n_samples) * 0.1)
        audio = model(mel)
    frames = n_samples // 480
    assert mel.shape[1] == frames
    assert audio.shape == (2, frames * 480)
    assert audio.isfinite().all()


def test_head_can_emit_several_istft_frames_per_latent_frame():
    for prior in (True, False):
        model = Vocoder(small_config(head_n_fft=960, head_hop=240, magnitude_prior=prior)).eval()
        with torch.no_grad():
            audio = model(torch.full((1, 7, 100), -5.0))
        assert audio.shape == (1, 7 * 480) and audio.isfinite().all()
    with pytest.raises(ValueError, match="must divide"):
        VocoderConfig(head_hop=500)


def test_tiny_config_size_and_paper_is_larger():
    def count(config):
        return sum(p.numel() for p in Vocoder(config).parameters())

    assert 2e6 <= count(get_vocoder_config("tiny")) <= 4e6
    assert count(get_vocoder_config("paper")) > 10e6
    with pytest.raises(ValueError, match="unknown vocoder config"):
        get_vocoder_config("huge")


def test_multiscale_mel_l1_is_zero_for_identical_and_positive_otherwise():
    x = tone(1.0)
    noise = 0.05 * torch.randn(SR, generator=torch.Generator().manual_seed(0))
    assert multiscale_mel_l1(x, x) == 0.0
    forward, backward = multiscale_mel_l1(x, x + noise), multiscale_mel_l1(x + noise, x)
    assert forward > 0 and backward > 0
    assert forward == pytest.approx(backward, rel=1e-5)  # an L1 distance: symmetric
    # trimmed to the common length, batched input gives the same number as the single item
    assert multiscale_mel_l1(x, torch.cat([x + noise, torch.zeros(100)])) == pytest.approx(forward, rel=1e-5)
    assert multiscale_mel_l1(x[None].repeat(2, 1), (x + noise)[None].repeat(2, 1)) == pytest.approx(forward, rel=1e-5)
    # a louder mismatch is further away
    assert multiscale_mel_l1(x, x + 4 * noise) > forward


def test_griffin_lim_has_the_right_length_and_beats_noise():
    config = VocoderConfig()
    x = tone(1.0)[None]
    mel = LatentMel(config)(x)
    audio = griffin_lim(mel, config, n_iter=16)
    assert audio.shape == (1, 50 * 480)
    noise = 0.1 * torch.randn(1, SR, generator=torch.Generator().manual_seed(0))
    assert multiscale_mel_l1(x, audio) < 0.5 * multiscale_mel_l1(x, noise)


def test_losses_are_named_finite_and_train():
    model = Vocoder(small_config()).train()
    audio = tone(0.5)[None].repeat(2, 1)
    out = model.losses(audio)
    assert set(out) == {"mel", "multiscale_mel", "stft_sc", "stft_mag", "stft_if", "loss"}
    assert all(v.isfinite() for v in out.values())
    out["loss"].backward()
    assert all(p.grad is not None and p.grad.isfinite().all() for p in model.parameters())
    # silence (an instrumental section of a vocals crop) must not divide by zero
    assert model.losses(torch.zeros(2, SR // 2))["loss"].isfinite()
    with pytest.raises(ValueError, match="unknown vocoder losses"):
        VocoderConfig(loss_weights={"gan": 1.0})


def test_bad_input_is_a_clear_error():
    model = Vocoder(small_config())
    with pytest.raises(ValueError, match=r"mel must be \[B, T, 100\]"):
        model(torch.zeros(1, 10, 80))
    with pytest.raises(ValueError, match="empty"):
        model(torch.zeros(1, 0, 100))
    with pytest.raises(ValueError, match=r"mel must be \[B, T, 100\]"):
        model(torch.zeros(10, 100))
    with pytest.raises(ValueError, match="shorter than one latent frame"):
        model.latent(torch.zeros(1, 100))
    with pytest.raises(ValueError, match="non-empty"):
        griffin_lim(torch.zeros(1, 0, 100), model.config)


def test_save_load_round_trip_gives_identical_audio(tmp_path):
    model = Vocoder(small_config()).eval()
    save_pretrained(model, tmp_path / "vocoder")
    config = json.loads((tmp_path / "vocoder" / "config.json").read_text())
    assert config["kind"] == "vocoder" and config["dim"] == 32
    loaded = load_vocoder(tmp_path / "vocoder")
    mel = model.latent(tone(0.4)[None])
    with torch.no_grad():
        assert torch.equal(model(mel), loaded(mel))
    # fp16 export loads back as float32 and stays close
    save_pretrained(model, tmp_path / "half", dtype=torch.float16)
    with torch.no_grad():
        assert torch.allclose(load_vocoder(tmp_path / "half")(mel), model(mel), atol=1e-3)


def test_wrong_or_broken_checkpoint_is_a_clear_error(tmp_path):
    save_pretrained(Vocoder(small_config()), tmp_path / "v")
    with pytest.raises(CheckpointError, match=r"missing config\.json"):
        load_vocoder(tmp_path)
    config_path = tmp_path / "v" / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "kind": "duotok"}))
    with pytest.raises(CheckpointError, match="kind"):
        load_vocoder(tmp_path / "v")
    config_path.write_text(json.dumps({**config, "dim": 48}))
    with pytest.raises(CheckpointError, match="do not match"):
        load_vocoder(tmp_path / "v")


def test_training_cli_runs_resumes_exports_and_evaluates(tiny_songs, tmp_path, monkeypatch, capsys):
    import tokenizer.vocoder as vocoder_module

    monkeypatch.setitem(vocoder_module.VOCODER_CONFIGS, "tiny", small_config())
    run = tmp_path / "run"
    common = ["--data", str(tiny_songs), "--run-dir", str(run), "--batch-size", "2", "--crop-seconds", "1",
              "--log-every", "1", "--warmup", "1", "--save-every", "1"]
    assert train_main(["--steps", "2", *common]) == 0
    assert (run / "vocoder" / "final" / "model.safetensors").exists()
    # resume: a longer run continues from the saved step instead of starting over
    export = tmp_path / "export" / "vocoder"
    assert train_main(["--steps", "3", "--export", str(export), *common]) == 0
    steps = [json.loads(line)["step"] for line in (run / "vocoder" / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    assert load_vocoder(export).config.dim == 32

    capsys.readouterr()
    assert train_main(["--eval-only", "--checkpoint", str(export), "--data", str(tiny_songs),
                       "--eval-songs", "1", "--eval-seconds", "2"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["n_songs"] == 1
    for stem in ("vocals", "accompaniment"):
        assert printed[stem]["vocoder"] > 0 and printed[stem]["griffin_lim"] > 0


def test_chosen_tracks_stay_on_the_batch_device_with_a_cpu_generator():
    # the loader puts the batch on the GPU while the random draws come from a CPU generator; "meta" stands in
    # for the GPU here (any device other than the generator's)
    batch = {name: torch.zeros(3, 240, device="meta") for name in ("mix", "vocals", "accompaniment")}
    assert choose_tracks(batch, torch.Generator().manual_seed(0), 6.0).device.type == "meta"


def test_evaluate_vocoder_without_songs_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no song folders"):
        evaluate_vocoder(Vocoder(small_config()), tmp_path, n_songs=1)


def test_fine_tuning_starts_from_the_init_weights(tiny_songs, tmp_path):
    torch.manual_seed(3)
    start = Vocoder(small_config(dim=40))  # a width --config would not give, so the init's config must be used
    save_pretrained(start, tmp_path / "start", dtype=torch.float16)
    common = ["--data", str(tiny_songs), "--batch-size", "2", "--crop-seconds", "1", "--warmup", "1"]
    assert train_main(["--steps", "1", "--lr", "0", "--init", str(tmp_path / "start"),
                       "--run-dir", str(tmp_path / "run0"), *common]) == 0
    unchanged = load_vocoder(tmp_path / "run0" / "vocoder" / "final")
    widened = load_vocoder(tmp_path / "start")  # the fp16 export, read back as fp32
    assert unchanged.config.dim == 40
    for (name, a), b in zip(unchanged.state_dict().items(), widened.state_dict().values(), strict=True):
        assert torch.equal(a, b), name  # lr 0: the weights are exactly the init's
    assert train_main(["--steps", "1", "--lr", "1e-3", "--init", str(tmp_path / "start"),
                       "--run-dir", str(tmp_path / "run1"), *common]) == 0
    moved = load_vocoder(tmp_path / "run1" / "vocoder" / "final")
    assert any(not torch.equal(a, b) for a, b in zip(moved.state_dict().values(), widened.state_dict().values(),
                                                      strict=True))


def test_config_updates_keep_the_backbone_and_start_a_new_head_fresh(tiny_songs, tmp_path):
    torch.manual_seed(4)
    start = Vocoder(small_config(dim=40))
    save_pretrained(start, tmp_path / "start", dtype=torch.float16)
    assert train_main(["--steps", "1", "--lr", "0", "--init", str(tmp_path / "start"), "--config-updates",
                       '{"head_n_fft": 960, "head_hop": 240}', "--run-dir", str(tmp_path / "run"), "--data",
                       str(tiny_songs), "--batch-size", "2", "--crop-seconds", "1", "--warmup", "1"]) == 0
    tuned, widened = load_vocoder(tmp_path / "run" / "vocoder" / "final"), load_vocoder(tmp_path / "start")
    assert (tuned.config.dim, tuned.config.head_n_fft, tuned.config.head_hop) == (40, 960, 240)
    old = widened.state_dict()
    for name, tensor in tuned.state_dict().items():
        if name.startswith("head."):  # 2 iSTFT frames of 481 bins per latent frame now: a new shape
            assert tensor.shape != old[name].shape
        else:
            assert torch.equal(tensor, old[name]), name
    assert tuned(torch.randn(1, 7, 100)).shape == (1, 7 * 480)
    with pytest.raises(SystemExit, match="head_hop 250 must divide"):
        train_main(["--steps", "1", "--init", str(tmp_path / "start"), "--config-updates", '{"head_hop": 250}',
                    "--run-dir", str(tmp_path / "bad"), "--data", str(tiny_songs)])


def test_mel_l1_scale_by_scale_and_the_phase_only_reference():
    from tokenizer.vocoder import MULTISCALE_MEL, griffin_lim_from_audio_stft, multiscale_mel_l1_per_scale

    clean, other = tone(1.0), tone(1.0, freq=330.0)
    terms = multiscale_mel_l1_per_scale(clean[None], other[None], SR)
    assert len(terms) == len(MULTISCALE_MEL)
    assert float(torch.stack(terms).mean()) == pytest.approx(multiscale_mel_l1(clean, other), abs=1e-6)
    # the phase-only reference keeps the length and, knowing the whole magnitude, is far closer than a fifth above
    rebuilt = griffin_lim_from_audio_stft(clean[None], n_iter=32)
    assert rebuilt.shape == (1, SR)
    assert multiscale_mel_l1(clean, rebuilt[0]) < 0.5 * multiscale_mel_l1(clean, other)


def test_config_updates_merge_loss_weights_key_by_key():
    updated = VocoderConfig().with_updates({"loss_weights": {"mel": 2.0}, "head_hop": 240})
    assert updated.loss_weights == {"mel": 2.0, "multiscale_mel": 1.0, "stft_sc": 1.0, "stft_mag": 1.0}
    assert updated.head_hop == 240 and VocoderConfig().head_hop == 480  # a copy: the original is unchanged
    with pytest.raises(ValueError, match="unknown VocoderConfig keys"):
        VocoderConfig().with_updates({"head_hopp": 240})


def test_instantaneous_frequency_loss_sees_a_partial_off_its_frequency_but_not_a_phase_offset():
    from tokenizer.vocoder import _magnitude, _stft, instantaneous_frequency_loss

    def spectrum(freq: float, phase: float = 0.0) -> torch.Tensor:
        t = torch.arange(SR) / SR
        return _stft((0.3 * torch.sin(2 * math.pi * freq * t + phase))[None], 1024, 256, torch.hann_window(1024))

    def loss(reference: torch.Tensor, estimate: torch.Tensor) -> float:
        return float(instantaneous_frequency_loss(reference, estimate, _magnitude(reference), _magnitude(estimate)))

    reference = spectrum(220.0)
    assert loss(reference, reference) == pytest.approx(0.0, abs=1e-6)
    # 80 cents sharp: within a bin or so (23 Hz bins), so the magnitude barely moves, but the advance does
    sharp = loss(reference, spectrum(220.0 * 2 ** (80 / 1200)))
    slightly_sharp = loss(reference, spectrum(220.0 * 2 ** (20 / 1200)))
    assert sharp > 0.05 and slightly_sharp < sharp
    # a constant phase offset keeps the frame-to-frame advance (only the reflect-padded edge frames differ)
    assert loss(reference, spectrum(220.0, phase=2.0)) < 0.05 * sharp


def test_phase_integration_starts_as_the_plain_head_and_sums_the_advances(tmp_path):
    torch.manual_seed(2)
    plain = Vocoder(small_config(head_n_fft=960, head_hop=240)).eval()
    integrating = with_config_updates(plain, {"phase_integration": True}).eval()
    mel = plain.latent(tone(0.5)[None])
    with torch.no_grad():
        assert torch.equal(plain(mel), integrating(mel))  # the advance layer starts at zero
        base = integrating.spectrum(mel).angle()
        integrating.phase_advance.bias.fill_(0.3)  # a constant advance of 0.3 rad per iSTFT frame
        integrating.phase_keep.bias.fill_(50.0)  # all of it kept
        turned = integrating.spectrum(mel).angle()
    frames = base.shape[-1]
    assert frames == mel.shape[1] * 2
    extra = torch.remainder(turned - base, 2 * math.pi)  # frame k gained 0.3 (k + 1), wrapped
    expected = torch.remainder(0.3 * torch.arange(1, frames + 1, dtype=torch.float32), 2 * math.pi)
    distance = torch.remainder(extra - expected + math.pi, 2 * math.pi) - math.pi
    assert distance.abs().max() < 1e-3
    assert get_vocoder_config("tiny").phase_integration is False
    # the option and its extra layer round-trip through a checkpoint
    save_pretrained(integrating, tmp_path / "integrating")
    loaded = load_vocoder(tmp_path / "integrating")
    assert loaded.config.phase_integration
    with torch.no_grad():
        assert torch.equal(loaded(mel), integrating(mel))


def test_gated_running_sum_keeps_what_its_gate_says():
    torch.manual_seed(0)
    values = torch.rand(2, 30, 5)
    wrap = functools.partial(torch.remainder, other=2 * math.pi)
    assert torch.allclose(gated_running_sum(values, torch.ones_like(values)), wrap(values.cumsum(1)), atol=1e-5)
    assert torch.allclose(gated_running_sum(values, torch.zeros_like(values)), values)
    keep = torch.rand(2, 30, 5)
    running, expected = torch.zeros(2, 5), []
    for k in range(30):
        running = keep[:, k] * running + values[:, k]
        expected.append(running)
    assert torch.allclose(gated_running_sum(values, keep), wrap(torch.stack(expected, 1)), atol=1e-5)
