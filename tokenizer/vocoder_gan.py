"""The vocoder's optional GAN stage (``python -m tokenizer.train --stage vocoder --gan``, off by default): the two
discriminators Vocos trains with and their losses.

- Multi-period discriminator (HiFi-GAN): the waveform folded into ``[samples / p, p]`` for each period p and
  read by 2-D convolutions along the first axis, so each one judges the signal's structure at one period,
  which is where a vocoder's pitch and periodicity artefacts show.
- Multi-resolution discriminator (UnivNet): 2-D convolutions over the magnitude spectrogram at several STFT
  sizes, which judges the spectral texture (noise floor, partials) that L1 losses average away.
- Losses: hinge adversarial losses (Vocos) and feature matching (L1 between the discriminators' inner
  activations on the original and on the vocoded audio).

Written by hand because the ``vocos`` package that holds these imports torchaudio, which cannot be installed
here (reference/libraries.md §0). Each discriminator's loss is its mean over the discriminators of one kind,
and the two kinds are averaged, so the weights in :class:`DiscriminatorConfig` do not change meaning when a
period or a resolution is added. The ``paper`` sizes are HiFi-GAN's and Vocos's (about 42 M parameters,
several seconds per step on a CPU: libraries.md §2.9, so a GPU stage); ``tiny`` is a narrow version for
trying the stage on a CPU (0.19 M parameters; one forward and backward over 8 half-second crops took 0.6 s on
one busy core here)."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

from tokenizer.config import DictConfig

LEAKY_SLOPE = 0.1


@dataclass
class DiscriminatorConfig(DictConfig):
    name: str = "tiny"
    periods: list[int] = field(default_factory=lambda: [2, 3, 5, 7, 11])
    # output channels of the strided period convolutions; the last one keeps the length (stride 1)
    period_channels: list[int] = field(default_factory=lambda: [8, 16, 32, 64, 64])
    # STFT (n_fft, hop) of each resolution discriminator
    resolutions: list[list[int]] = field(default_factory=lambda: [[512, 128], [1024, 256], [2048, 512]])
    resolution_channels: int = 8
    # weights of the generator's GAN losses, added to the reconstruction losses (which sum to about 1.5 on a
    # trained vocoder). Vocos sums its terms over discriminators and layers and weighs its mel L1 45 times
    # them, so its adversarial part comes to roughly a quarter of its mel part; 0.2 on these averaged terms
    # gives about that share, and 2.0 is HiFi-GAN's feature-matching weight.
    adversarial_weight: float = 0.2
    feature_matching_weight: float = 2.0

    def __post_init__(self):
        if not self.periods or not self.resolutions:
            raise ValueError("the GAN stage needs at least one period and one resolution discriminator")
        if any(p < 2 for p in self.periods):
            raise ValueError(f"periods must be at least 2, got {self.periods}")
        if any(len(r) != 2 or r[0] < 2 * r[1] for r in self.resolutions):
            raise ValueError(f"resolutions must be [n_fft, hop] pairs with n_fft ≥ 2 × hop, got {self.resolutions}")


DISCRIMINATOR_CONFIGS = {
    "tiny": DiscriminatorConfig(),
    # HiFi-GAN's MPD widths and Vocos's MRD width
    "paper": DiscriminatorConfig(name="paper", period_channels=[32, 128, 512, 1024, 1024], resolution_channels=32),
}


def get_discriminator_config(name: str) -> DiscriminatorConfig:
    if name not in DISCRIMINATOR_CONFIGS:
        raise ValueError(f"unknown discriminator config {name!r}; choose one of {sorted(DISCRIMINATOR_CONFIGS)}")
    return dataclasses.replace(DISCRIMINATOR_CONFIGS[name])


def _judge(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A discriminator's layers on its 2-D input: ``(logits [B, L], every layer's activations)``."""
    activations = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LEAKY_SLOPE)
        activations.append(x)
    x = post(x)
    activations.append(x)
    return x.flatten(1), activations


class PeriodDiscriminator(nn.Module):
    """``audio [B, N] -> (logits [B, L], activations)`` for one period."""

    def __init__(self, period: int, channels: list[int]):
        super().__init__()
        self.period = period
        widths = [1, *channels]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(c_in, c_out, (5, 1), stride=(3 if i < len(channels) - 1 else 1, 1),
                                  padding=(2, 0)))
            for i, (c_in, c_out) in enumerate(itertools.pairwise(widths)))
        self.post = weight_norm(nn.Conv2d(channels[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, n = audio.shape
        pad = (-n) % self.period
        if pad:  # reflect padding needs more samples than it adds; a period is at most a few samples
            audio = F.pad(audio[:, None], (0, pad), mode="reflect")[:, 0]
        return _judge(self.convs, self.post, audio.reshape(b, 1, -1, self.period))


class ResolutionDiscriminator(nn.Module):
    """``audio [B, N] -> (logits [B, L], activations)`` from the magnitude spectrogram at one STFT size."""

    def __init__(self, n_fft: int, hop: int, channels: int):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        # time × frequency kernels; the frequency axis is strided down by 2 three times (UnivNet / Vocos)
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv2d(1, channels, (3, 9), padding=(1, 4))),
            *(weight_norm(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4))) for _ in range(3)),
            weight_norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))),
        ])
        self.post = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        pad_mode = "reflect" if audio.shape[-1] > self.n_fft // 2 else "constant"
        spec = torch.stft(audio.float(), self.n_fft, self.hop, window=self.window, center=True, pad_mode=pad_mode,
                          return_complex=True)
        # log(1 + |S|): the training crops vary in loudness by design (random gain), and a compressed
        # magnitude keeps quiet partials visible next to loud ones
        return _judge(self.convs, self.post, torch.log1p(spec.abs()).transpose(1, 2)[:, None])  # [B, 1, frames, bins]


class VocoderDiscriminator(nn.Module):
    """All the period and resolution discriminators: ``audio [B, N] -> {"period": [...], "resolution": [...]}``,
    each entry ``(logits, activations)`` of one discriminator."""

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        self.config = config
        self.period = nn.ModuleList(PeriodDiscriminator(p, config.period_channels) for p in config.periods)
        self.resolution = nn.ModuleList(ResolutionDiscriminator(n_fft, hop, config.resolution_channels)
                                        for n_fft, hop in config.resolutions)

    def forward(self, audio: torch.Tensor) -> dict[str, list[tuple[torch.Tensor, list[torch.Tensor]]]]:
        if audio.dim() != 2:
            raise ValueError(f"the discriminators take audio [B, N], got shape {tuple(audio.shape)}")
        return {"period": [d(audio) for d in self.period], "resolution": [d(audio) for d in self.resolution]}


def _mean_over_kinds(per_kind: dict[str, list[torch.Tensor]]) -> torch.Tensor:
    return torch.stack([torch.stack(losses).mean() for losses in per_kind.values()]).mean()


def discriminator_loss(real: dict, fake: dict) -> torch.Tensor:
    """Hinge loss of the discriminators: original audio pushed to logits ≥ 1, vocoded audio to ≤ −1."""
    return _mean_over_kinds({
        kind: [F.relu(1 - r_logits).mean() + F.relu(1 + f_logits).mean()
               for (r_logits, _), (f_logits, _) in zip(real[kind], fake[kind], strict=True)]
        for kind in real})


def generator_adversarial_loss(fake: dict) -> torch.Tensor:
    """Hinge loss of the vocoder: its audio should reach logits ≥ 1 (be taken for the original)."""
    return _mean_over_kinds({kind: [F.relu(1 - logits).mean() for logits, _ in fake[kind]] for kind in fake})


def feature_matching_loss(real: dict, fake: dict) -> torch.Tensor:
    """Mean L1 between the discriminators' activations on the original (held fixed) and on the vocoded audio,
    averaged over each discriminator's layers."""
    return _mean_over_kinds({
        kind: [torch.stack([F.l1_loss(f, r.detach()) for r, f in zip(r_acts, f_acts, strict=True)]).mean()
               for (_, r_acts), (_, f_acts) in zip(real[kind], fake[kind], strict=True)]
        for kind in real})


def split_batch(outputs: dict, first: int) -> tuple[dict, dict]:
    """Split the discriminators' outputs on a concatenated ``[originals; vocoded]`` batch into the two halves
    (one forward for both keeps a distributed wrapper to one forward per backward)."""
    def take(part: slice) -> dict:
        return {kind: [(logits[part], [a[part] for a in acts]) for logits, acts in entries]
                for kind, entries in outputs.items()}
    return take(slice(None, first)), take(slice(first, None))
