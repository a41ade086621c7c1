"""Layers of the Duo-Tok encoder: conv subsampling to 25 Hz, transformer stacks, the noisy bottleneck,
per-branch SimVQ quantizers and the heads. Assembled in ``tokenizer/model.py``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from vector_quantize_pytorch import SimVQ


class ConvSubsampling(nn.Module):
    """Two stride-2 2-D convolutions over (time, mel): ``[B, T, n_mels] -> [B, T/4, d_model]``.
    T must be a multiple of 4 (the caller crops to whole token frames)."""

    def __init__(self, n_mels: int, channels: int, d_model: int):
        super().__init__()
        self.convs = nn.Sequential(nn.Conv2d(1, channels, 3, stride=2, padding=1), nn.GELU(),
                                   nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.GELU())
        self.out = nn.Linear(channels * math.ceil(math.ceil(n_mels / 2) / 2), d_model)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.convs(mel.unsqueeze(1))  # [B, C, T/4, n_mels/4]
        return self.out(x.permute(0, 2, 1, 3).flatten(2))


def sinusoidal_positions(n: int, dim: int, device) -> torch.Tensor:
    position = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(n, dim, device=device)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table


class TransformerStack(nn.Module):
    """Pre-norm transformer layers (torch's own, so SDPA kernels are used) with a final LayerNorm."""

    def __init__(self, n_layers: int, d_model: int, n_heads: int, ffn_dim: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, n_heads, ffn_dim, dropout, activation="gelu", batch_first=True,
                                       norm_first=True)
            for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class NoisyBottleneck(nn.Module):
    """``proj_in -> Gaussian replacement noise -> proj_out`` (reference/duotok.md §2.2). In training, each
    frame's bottleneck vector is replaced with probability ``p`` by noise of the bottleneck's running std:
    the upper stack learns to work from corrupted frames, which prepares it for quantisation error and
    smooths the representation. Never applied in evaluation."""

    def __init__(self, d_model: int, dim: int, noise_prob: float, noise_scale: float):
        super().__init__()
        self.proj_in = nn.Linear(d_model, dim)
        self.proj_out = nn.Linear(dim, d_model)
        self.noise_prob, self.noise_scale = noise_prob, noise_scale
        self.register_buffer("running_std", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.proj_in(x)
        if self.training and self.noise_prob > 0:
            with torch.no_grad():
                self.running_std.lerp_(z.detach().float().std(), 0.01)  # fp32 buffer, bf16 z under autocast
            replace = torch.rand(z.shape[:-1], device=z.device) < self.noise_prob
            noise = torch.randn_like(z) * self.running_std * self.noise_scale
            z = torch.where(replace[..., None], noise, z)
        return self.proj_out(z)


class QuantizedBranch(nn.Module):
    """One track's path: ``proj_in -> SimVQ -> proj_out`` (hard routing: each track has its own branch).
    SimVQ keeps a frozen random codebook as a buffer and learns only its linear transform. With
    ``mel_frames_dim > 0`` an MLP of each token's stacked mel frames is added to the input (``mel_skip``; its
    last layer starts at zero, so training starts from the plain branch). With ``mel_context > 0`` as well, a
    small convolution over the mel frames of ``mel_context`` tokens on each side is added too
    (``mel_context_conv``, also zero at the start): phones are told apart over a few hundred milliseconds, more
    than one token's 40 ms."""

    context_channels = 128  # small: the skip only has to carry what the frozen stack lost, and it ships in fp16

    def __init__(self, d_model: int, codebook_dim: int, codebook_size: int, mel_frames_dim: int = 0,
                 mel_context: int = 0):
        super().__init__()
        if mel_context > 0 and mel_frames_dim == 0:
            raise ValueError("a mel context needs the mel skip (mel_frames_dim > 0)")
        self.mel_skip = None
        if mel_frames_dim > 0:
            self.mel_skip = nn.Sequential(nn.Linear(mel_frames_dim, d_model), nn.GELU(), nn.Linear(d_model, d_model))
            nn.init.zeros_(self.mel_skip[-1].weight)
            nn.init.zeros_(self.mel_skip[-1].bias)
        self.mel_context_conv = None
        if mel_context > 0:
            # two convolutions of half the width each: the receptive field is 2 * mel_context + 1 tokens
            half, hidden = (mel_context + 1) // 2, self.context_channels
            kernels = (2 * half + 1, 2 * (mel_context - half) + 1)
            self.mel_context_conv = nn.Sequential(
                nn.Conv1d(mel_frames_dim, hidden, 1), nn.GELU(),
                nn.Conv1d(hidden, hidden, kernels[0], padding=kernels[0] // 2), nn.GELU(),
                nn.Conv1d(hidden, hidden, kernels[1], padding=kernels[1] // 2), nn.GELU(),
                nn.Conv1d(hidden, d_model, 1))
            nn.init.zeros_(self.mel_context_conv[-1].weight)
            nn.init.zeros_(self.mel_context_conv[-1].bias)
        self.proj_in = nn.Linear(d_model, codebook_dim)
        self.quantizer = SimVQ(dim=codebook_dim, codebook_size=codebook_size, rotation_trick=True)
        self.proj_out = nn.Linear(codebook_dim, d_model)

    def forward(self, x: torch.Tensor, mel_frames: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x [B, T, d]`` (and ``mel_frames [B, T, mel_frames_dim]`` when the branch has a mel skip)
        ``-> (decoded [B, T, d], indices [B, T], commitment loss)``."""
        quantized, indices, commit = self.quantizer(self.quantizer_input(x, mel_frames))
        return self.proj_out(quantized), indices, commit

    def quantizer_input(self, x: torch.Tensor, mel_frames: torch.Tensor | None = None) -> torch.Tensor:
        """The vector SimVQ quantizes, ``[B, T, codebook_dim]``: ``proj_in`` of the stack's output plus the mel
        skip and context."""
        if self.mel_skip is not None:
            if mel_frames is None:
                raise ValueError("this branch has a mel skip: pass the token frames' stacked mels")
            x = x + self.mel_skip(mel_frames)
            if self.mel_context_conv is not None:
                x = x + self.mel_context_conv(mel_frames.transpose(1, 2)).transpose(1, 2)
        return self.proj_in(x)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """``indices [B, T] -> codes [B, T, codebook_dim]`` (the quantized vectors the decoders consume)."""
        return self.quantizer.indices_to_codes(indices)


class FrameHeads(nn.Module):
    """Heads at the mel frame rate after ×4 transposed-conv upsampling: log-mel, chroma and (optionally)
    separation masks over the mixture STFT; plus a CTC phone head and (``n_pitch > 0``) a sung-note head at
    the token rate."""

    def __init__(self, d_model: int, n_mels: int, n_freq: int, n_stems: int, n_ctc: int, subsampling: int,
                 with_masks: bool, n_pitch: int = 0):
        super().__init__()
        hidden = d_model // 2
        self.upsample = nn.Sequential(nn.ConvTranspose1d(d_model, hidden, subsampling, stride=subsampling),
                                      nn.GELU(), nn.Conv1d(hidden, hidden, 3, padding=1), nn.GELU())
        self.mel = nn.Linear(hidden, n_mels)
        self.chroma = nn.Linear(hidden, 12)
        self.masks = nn.Linear(hidden, n_stems * n_freq) if with_masks else None
        self.ctc = nn.Linear(d_model, n_ctc)
        self.pitch = nn.Linear(d_model, n_pitch) if n_pitch > 0 else None
        self.n_stems, self.n_freq = n_stems, n_freq

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x [B, T, d]`` -> mel ``[B, 4T, n_mels]``, chroma ``[B, 4T, 12]`` (probabilities),
        masks ``[B, n_stems, 4T, n_freq]`` in [0, 1], ctc log-probs ``[B, T, n_ctc]``, pitch log-probs
        ``[B, T, n_pitch]``."""
        up = self.upsample(x.transpose(1, 2)).transpose(1, 2)
        out = {"mel": self.mel(up), "chroma": F.softmax(self.chroma(up), dim=-1),
               "ctc": F.log_softmax(self.ctc(x), dim=-1)}
        if self.pitch is not None:
            out["pitch"] = F.log_softmax(self.pitch(x), dim=-1)
        if self.masks is not None:
            b, t, _ = up.shape
            masks = torch.sigmoid(self.masks(up)).view(b, t, self.n_stems, self.n_freq)
            out["masks"] = masks.permute(0, 2, 1, 3)
        return out
