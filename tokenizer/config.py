"""Duo-Tok configurations. One plain dataclass of sizes, passed whole to the model and saved next to every
checkpoint as ``config.json`` (no code in configs). ``tiny`` trains on a 2-core CPU; ``paper`` is the
full-size model of reference/duotok.md (12 + 12 layers, d = 1024, 2 × 32,768 codes)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path


class DictConfig:
    """``to_dict`` / ``from_dict`` for the tokenizer's config dataclasses (encoder, vocoder, decoders): a key the
    class does not know is an error, so a typo in a config.json cannot pass silently."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
        return cls(**data)

    def with_updates(self, updates: dict):
        """A copy with ``updates`` applied; dict-valued fields (``loss_weights``) merge key by key, so an update
        of one weight keeps the others; unknown keys are an error."""
        data = self.to_dict()
        for key, value in updates.items():
            data[key] = {**data[key], **value} if isinstance(data.get(key), dict) else value
        return type(self).from_dict(data)


@dataclass
class DuoTokConfig(DictConfig):
    name: str = "tiny"
    # audio front end: mel at 100 Hz, conv subsampling x4 -> 25 Hz tokens
    sample_rate: int = 24_000
    n_fft: int = 1024
    hop_length: int = 240  # sample_rate / 100
    n_mels: int = 128
    subsampling: int = 4
    # encoder
    d_model: int = 256
    n_heads: int = 4
    ffn_dim: int = 1024
    lower_layers: int = 4
    upper_layers: int = 4
    dropout: float = 0.0
    conv_channels: int = 64
    max_frames: int = 25 * 60  # positional table length in token frames (60 s)
    # stage 1: BEST-RQ targets on normalised mels stacked over `subsampling` frames
    ssl_codebook_size: int = 1024
    ssl_codebook_dim: int = 16
    ssl_num_codebooks: int = 1
    mask_start_prob: float = 0.025  # per mel frame
    mask_span_frames: int = 40  # 400 ms at 100 Hz
    # stage 2: bottleneck with Gaussian replacement noise, multi-task heads
    bottleneck_dim: int = 64
    noise_prob: float = 0.2
    noise_scale: float = 1.0  # times the running std of the bottleneck
    n_stems: int = 4  # vocals, drums, bass, other
    n_ctc_tokens: int = 48  # blank + festival phones (tokenizer/phones.py)
    # frame-wise pitch head (0 = none): the sung note at each token frame, classes in tokenizer/data.py
    n_pitch_classes: int = 0
    loss_weights: dict[str, float] = field(default_factory=lambda: {
        "mel": 1.0, "chroma": 1.0, "separation": 1.0, "ctc": 0.2, "commit": 1.0, "frame_phone": 0.0,
        "frame_pitch": 0.0})
    # stage 3: dual SimVQ
    codebook_size: int = 1024
    codebook_dim: int = 64
    # each branch also sees the token's own 4 normalised mel frames through a small MLP (zero at the start), added
    # to the frozen lower stack's output: the SSL-trained stack keeps little of the sung note (a probe on its
    # output found 31% of notes, on the mel frames 95%), and stage 3 cannot retrain it
    branch_mel_skip: bool = False
    # and (> 0) a convolution over the mel frames of this many tokens on each side (zero at the start): the token's
    # own 40 ms hold the note but too little of the phone (30% from the token id alone with the skip only)
    branch_mel_context: int = 0

    @property
    def token_rate(self) -> float:
        return self.sample_rate / (self.hop_length * self.subsampling)

    @property
    def samples_per_token(self) -> int:
        return self.hop_length * self.subsampling

    @property
    def bitrate(self) -> float:
        """Bits per second of both token streams: 2 × 25 × log2(K)."""
        import math

        return 2 * self.token_rate * math.log2(self.codebook_size)

    def save(self, path: str | Path) -> None:
        from corpus.audio_io import atomic_write_json

        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> DuoTokConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


CONFIGS = {
    "tiny": DuoTokConfig(),
    "paper": DuoTokConfig(name="paper", n_fft=2048, d_model=1024, n_heads=16, ffn_dim=4096, lower_layers=12,
                          upper_layers=12, conv_channels=256, ssl_codebook_size=4096, bottleneck_dim=256,
                          codebook_size=32_768, codebook_dim=256),
}


def get_config(name: str) -> DuoTokConfig:
    if name not in CONFIGS:
        raise ValueError(f"unknown config {name!r}; choose one of {sorted(CONFIGS)}")
    return dataclasses.replace(CONFIGS[name])
