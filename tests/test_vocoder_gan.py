"""The vocoder's optional GAN stage: discriminator outputs, the hinge and feature-matching losses, one training
step (both networks move, the discriminators' gradients stay off in the vocoder's step), and the training CLI
with ``--gan`` (2 steps, resume to 3, export) on a tiny generated corpus."""

from __future__ import annotations

import json

import pytest
import torch

from tokenizer.training import make_accelerator, warmup_cosine
from tokenizer.vocoder import Vocoder, VocoderConfig, load_vocoder
from tokenizer.vocoder_gan import (
    DiscriminatorConfig,
    VocoderDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    get_discriminator_config,
    split_batch,
)
from tokenizer.vocoder_train import GanParts, gan_step
from tokenizer.vocoder_train import main as train_main

SMALL = {"periods": [2, 3], "period_channels": [4, 4, 8], "resolutions": [[256, 64], [512, 128]],
         "resolution_channels": 4}


def small_vocoder() -> Vocoder:
    return Vocoder(VocoderConfig(dim=32, intermediate_dim=64, num_layers=1))


def test_every_discriminator_judges_and_exposes_its_layers():
    config = DiscriminatorConfig(**SMALL)
    outputs = VocoderDiscriminator(config)(torch.randn(3, 4800))
    assert len(outputs["period"]) == 2 and len(outputs["resolution"]) == 2
    for logits, activations in outputs["period"]:
        assert logits.shape[0] == 3 and logits.dim() == 2
        assert len(activations) == len(config.period_channels) + 1  # each conv plus the output layer
        assert activations[-2].shape[1] == config.period_channels[-1]
    for logits, activations in outputs["resolution"]:
        assert logits.shape[0] == 3 and len(activations) == 6


def test_the_period_discriminator_folds_by_its_period_and_pads_odd_lengths():
    discriminator = VocoderDiscriminator(DiscriminatorConfig(**SMALL)).period[1]  # period 3
    _, activations = discriminator(torch.randn(2, 4801))  # 4801 = 3 × 1600 + 1: padded to 4803
    assert activations[0].shape[-1] == 3
    assert activations[0].shape[-2] == -(-1601 // 3)  # 1601 rows, stride 3, kernel 5 with padding 2


def test_paper_discriminators_are_hifigan_and_vocos_sized_and_tiny_is_small():
    count = lambda config: sum(p.numel() for p in VocoderDiscriminator(config).parameters())  # noqa: E731
    assert 35e6 < count(get_discriminator_config("paper")) < 50e6  # libraries.md §2.9: 42.5 M
    assert count(get_discriminator_config("tiny")) < 0.5e6
    with pytest.raises(ValueError, match="unknown discriminator config"):
        get_discriminator_config("huge")


@pytest.mark.parametrize("changes, message", [
    ({"periods": [1, 2]}, "periods must be at least 2"),
    ({"periods": []}, "at least one period"),
    ({"resolutions": [[128, 128]]}, "n_fft ≥ 2 × hop"),
])
def test_bad_discriminator_configs_are_clear_errors(changes, message):
    with pytest.raises(ValueError, match=message):
        DiscriminatorConfig(**{**SMALL, **changes})


def test_bad_audio_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"audio \[B, N\]"):
        VocoderDiscriminator(DiscriminatorConfig(**SMALL))(torch.randn(1, 1, 4800))


def _outputs(real_value: float, fake_value: float) -> tuple[dict, dict]:
    def make(value):
        return {kind: [(torch.full((2, 5), value), [torch.full((2, 3), value)])] for kind in ("period", "resolution")}
    return make(real_value), make(fake_value)


def test_hinge_losses_vanish_only_beyond_the_margins():
    real, fake = _outputs(1.5, -1.5)
    assert float(discriminator_loss(real, fake)) == 0.0  # both sides beyond their margin
    real, fake = _outputs(0.0, 0.0)
    assert float(discriminator_loss(real, fake)) == pytest.approx(2.0)  # 1 from each side
    assert float(generator_adversarial_loss(_outputs(0, 1.0)[1])) == 0.0
    assert float(generator_adversarial_loss(_outputs(0, -1.0)[1])) == pytest.approx(2.0)


def test_feature_matching_is_zero_for_equal_activations_and_holds_the_original_fixed():
    real, fake = _outputs(0.5, 0.5)
    assert float(feature_matching_loss(real, fake)) == 0.0
    real_act = torch.full((2, 3), 0.5, requires_grad=True)
    fake_act = torch.full((2, 3), 0.0, requires_grad=True)
    entry = lambda act: {"period": [(torch.zeros(2, 1), [act])]}  # noqa: E731
    loss = feature_matching_loss(entry(real_act), entry(fake_act))
    assert float(loss.detach()) == pytest.approx(0.5)
    loss.backward()
    assert real_act.grad is None and fake_act.grad is not None


def test_one_forward_over_both_halves_equals_two_forwards():
    torch.manual_seed(0)
    discriminators = VocoderDiscriminator(DiscriminatorConfig(**SMALL)).eval()
    a, b = torch.randn(2, 4800), torch.randn(3, 4800)
    first, second = split_batch(discriminators(torch.cat([a, b])), 2)
    for halves, alone in ((first, discriminators(a)), (second, discriminators(b))):
        for kind in alone:
            for (logits, acts), (logits_alone, acts_alone) in zip(halves[kind], alone[kind], strict=True):
                torch.testing.assert_close(logits, logits_alone, atol=1e-5, rtol=1e-4)
                torch.testing.assert_close(acts[0], acts_alone[0], atol=1e-5, rtol=1e-4)


def test_the_adversarial_loss_reaches_the_vocoder():
    torch.manual_seed(0)
    vocoder, discriminators = small_vocoder(), VocoderDiscriminator(DiscriminatorConfig(**SMALL))
    discriminators.requires_grad_(False)
    audio = vocoder(vocoder.latent(torch.randn(1, 4800) * 0.1))
    generator_adversarial_loss(discriminators(audio)).backward()
    assert vocoder.head.weight.grad.abs().sum() > 0


def test_a_gan_step_moves_both_networks_and_leaves_the_discriminators_trainable(tmp_path):
    torch.manual_seed(0)
    accelerator = make_accelerator(tmp_path)
    vocoder = small_vocoder()
    optimizer = torch.optim.AdamW(vocoder.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(1, 10))
    config = DiscriminatorConfig(**SMALL)
    discriminators = VocoderDiscriminator(config)
    d_optimizer = torch.optim.AdamW(discriminators.parameters(), lr=1e-3)
    gan = GanParts(discriminators, d_optimizer, torch.optim.lr_scheduler.LambdaLR(d_optimizer, warmup_cosine(1, 10)),
                   config)
    before = {name: [p.detach().clone() for p in module.parameters()]
              for name, module in (("vocoder", vocoder), ("discriminators", discriminators))}
    audio = 0.1 * torch.randn(2, 4800)
    out = gan_step(accelerator, vocoder, vocoder, optimizer, scheduler, gan, audio)
    for name, module in (("vocoder", vocoder), ("discriminators", discriminators)):
        assert any(not torch.equal(a, b) for a, b in zip(before[name], module.parameters(), strict=True)), name
    assert all(p.requires_grad for p in discriminators.parameters())
    expected = (out["reconstruction"] + config.adversarial_weight * out["adversarial"]
                + config.feature_matching_weight * out["feature_matching"])
    assert float(out["loss"].detach()) == pytest.approx(float(expected.detach()))
    assert float(out["discriminator"]) > 0


def test_gan_training_cli_runs_resumes_and_exports_the_vocoder_only(tiny_songs, tmp_path, monkeypatch):
    import tokenizer.vocoder as vocoder_module

    monkeypatch.setitem(vocoder_module.VOCODER_CONFIGS, "tiny", small_vocoder().config)
    run, export = tmp_path / "run", tmp_path / "export"
    common = ["--gan", "--discriminator-updates", json.dumps(SMALL), "--data", str(tiny_songs), "--run-dir",
              str(run), "--batch-size", "2", "--crop-seconds", "0.5", "--log-every", "1", "--warmup", "1",
              "--save-every", "1"]
    assert train_main(["--steps", "2", *common]) == 0
    assert train_main(["--steps", "3", "--export", str(export), *common]) == 0
    records = [json.loads(line) for line in (run / "vocoder-gan" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]  # resumed with its discriminators, not restarted
    assert {"adversarial", "feature_matching", "discriminator", "reconstruction"} <= set(records[-1])
    assert not (run / "vocoder").exists()  # a GAN run never shares a state folder with a plain one
    exported = load_vocoder(export)
    assert exported.config.dim == 32
    from safetensors import safe_open

    with safe_open(str(export / "model.safetensors"), "pt") as handle:
        assert json.loads(handle.metadata()["discriminator"])["periods"] == [2, 3]
        names = list(handle.keys())
        assert names and not any(name.startswith(("period", "resolution")) for name in names)


@pytest.mark.parametrize("flags, message", [
    (["--discriminator", "huge"], "unknown discriminator config"),
    (["--discriminator-updates", '{"periods": [1]}'], "periods must be at least 2"),
    (["--discriminator-updates", '{"colour": 1}'], "unknown DiscriminatorConfig keys"),
])
def test_bad_gan_settings_are_one_line_errors(tiny_songs, tmp_path, flags, message):
    with pytest.raises(SystemExit, match=message):
        train_main(["--gan", *flags, "--data", str(tiny_songs), "--run-dir", str(tmp_path), "--steps", "1"])
