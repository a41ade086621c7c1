"""Audio front end: log-mel at 100 Hz, chroma and the mixture STFT, all on ``torch.stft`` (torchaudio is
not usable here, reference/libraries.md §0); filterbanks come from librosa once and live in buffers.

Frame arithmetic (documented once, tested): a signal of N samples gives ``N // hop`` mel frames (the STFT is
centred with reflect padding, and the one extra frame ``torch.stft`` returns is dropped), and
``(N // hop) // 4`` token frames. At 24 kHz with hop 240, N seconds give exactly 100·N mel frames and 25·N
tokens; a partial last token (fewer than 4 mel frames) is dropped."""

from __future__ import annotations

import librosa
import numpy as np
import torch
from torch import nn

LOG_FLOOR = 1e-5


def mel_frames(n_samples: int, hop_length: int) -> int:
    return n_samples // hop_length


def token_frames(n_samples: int, hop_length: int, subsampling: int = 4) -> int:
    return mel_frames(n_samples, hop_length) // subsampling


class AudioFrontEnd(nn.Module):
    """``log_mel(audio[B, N]) -> [B, frames, n_mels]``, ``chroma -> [B, frames, 12]``,
    ``stft -> complex [B, frames, n_fft/2+1]``, all on the same frame grid."""

    def __init__(self, sample_rate: int, n_fft: int, hop_length: int, n_mels: int):
        super().__init__()
        self.sample_rate, self.n_fft, self.hop_length = sample_rate, n_fft, hop_length
        mel = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, htk=True, norm=None)
        chroma = librosa.filters.chroma(sr=sample_rate, n_fft=n_fft)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("mel_basis", torch.from_numpy(mel.astype(np.float32)), persistent=False)
        self.register_buffer("chroma_basis", torch.from_numpy(chroma.astype(np.float32)), persistent=False)

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    def stft(self, audio: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(audio, self.n_fft, self.hop_length, window=self.window, center=True,
                          pad_mode="reflect", return_complex=True)  # [B, F, frames+1]
        frames = audio.shape[-1] // self.hop_length
        return spec[..., :frames].transpose(1, 2)

    def log_mel(self, audio: torch.Tensor | None = None, spec: torch.Tensor | None = None) -> torch.Tensor:
        magnitude = (spec if spec is not None else self.stft(audio)).abs()
        return torch.log(torch.clamp(magnitude @ self.mel_basis.T, min=LOG_FLOOR))

    def chroma(self, audio: torch.Tensor | None = None, spec: torch.Tensor | None = None) -> torch.Tensor:
        """Energy per pitch class, normalised per frame to sum 1 (silent frames stay near uniform 0)."""
        power = (spec if spec is not None else self.stft(audio)).abs() ** 2
        energy = power @ self.chroma_basis.T
        return energy / (energy.sum(-1, keepdim=True) + 1e-6)
