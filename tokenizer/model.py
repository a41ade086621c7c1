"""The Duo-Tok network and its three encoder training stages (reference/duotok.md §2.1–2.3).

Data flow (T = token frames at 25 Hz, 4T mel frames at 100 Hz):

    audio [B, N] -> log-mel [B, 4T, 128] -> normalise -> ConvSubsampling -> lower stack [B, T, d]
      stage 1: -> upper stack -> linear -> BEST-RQ target logits (masked frames only)
      stage 2: -> NoisyBottleneck -> upper stack -> heads: mel, chroma, 4 separation masks, CTC phones
      stage 3: (lower frozen) vocal stem -> vocal branch (proj_in, SimVQ, proj_out) ┐-> quantized upper
               accompaniment stem -> accompaniment branch ─────────────────────────┘   -> mel, chroma, CTC,
               (optionally each branch adds an MLP of the token's own mel frames)        (optional) pitch

The stage-2 path (bottleneck + upper + mask head) stays frozen after stage 2: it is the tokenizer's own
separator, used when a song comes as a mix only. Stage 3 trains a copy of the upper stack and heads on the
quantized path. Every ``forward_*`` returns a dict of named losses and metrics; weights come from the
config's ``loss_weights``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from vector_quantize_pytorch import RandomProjectionQuantizer

from tokenizer.config import DuoTokConfig
from tokenizer.frontend import AudioFrontEnd, token_frames
from tokenizer.modules import (
    ConvSubsampling,
    FrameHeads,
    NoisyBottleneck,
    QuantizedBranch,
    TransformerStack,
    sinusoidal_positions,
)

STEMS = ("vocals", "drums", "bass", "other")
COMPRESS = 0.3  # magnitude compression for the separation loss, so quiet stems still count


class DuoTokModel(nn.Module):
    def __init__(self, config: DuoTokConfig):
        super().__init__()
        self.config = c = config
        self.frontend = AudioFrontEnd(c.sample_rate, c.n_fft, c.hop_length, c.n_mels)
        # dataset log-mel statistics (BEST-RQ needs normalised features); set before stage 1
        self.register_buffer("mel_mean", torch.zeros(c.n_mels))
        self.register_buffer("mel_std", torch.ones(c.n_mels))
        self.ssl_targets = RandomProjectionQuantizer(dim=c.n_mels * c.subsampling, codebook_size=c.ssl_codebook_size,
                                                     codebook_dim=c.ssl_codebook_dim,
                                                     num_codebooks=c.ssl_num_codebooks)
        self.subsample = ConvSubsampling(c.n_mels, c.conv_channels, c.d_model)
        self.lower = TransformerStack(c.lower_layers, c.d_model, c.n_heads, c.ffn_dim, c.dropout)
        self.upper = TransformerStack(c.upper_layers, c.d_model, c.n_heads, c.ffn_dim, c.dropout)
        self.ssl_head = nn.Linear(c.d_model, c.ssl_codebook_size * c.ssl_num_codebooks)
        self.bottleneck = NoisyBottleneck(c.d_model, c.bottleneck_dim, c.noise_prob, c.noise_scale)
        n_freq = c.n_fft // 2 + 1
        self.heads = FrameHeads(c.d_model, c.n_mels, n_freq, c.n_stems, c.n_ctc_tokens, c.subsampling, True,
                                c.n_pitch_classes)
        mel_frames_dim = c.n_mels * c.subsampling if c.branch_mel_skip else 0
        self.vocal_branch = QuantizedBranch(c.d_model, c.codebook_dim, c.codebook_size, mel_frames_dim,
                                            c.branch_mel_context)
        self.accomp_branch = QuantizedBranch(c.d_model, c.codebook_dim, c.codebook_size, mel_frames_dim,
                                             c.branch_mel_context)
        self.quantized_upper = TransformerStack(c.upper_layers, c.d_model, c.n_heads, c.ffn_dim, c.dropout)
        self.quantized_heads = FrameHeads(c.d_model, c.n_mels, n_freq, c.n_stems, c.n_ctc_tokens, c.subsampling,
                                          False, c.n_pitch_classes)

    # ---- shared pieces -------------------------------------------------------------------------------
    def analyse(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``audio [B, N] -> (stft [B, 4T, F] complex, log-mel [B, 4T, n_mels])``, cropped to whole tokens."""
        n_mel = token_frames(audio.shape[-1], self.config.hop_length, self.config.subsampling) * self.config.subsampling
        if n_mel == 0:
            raise ValueError(f"audio of {audio.shape[-1]} samples is shorter than one token frame "
                             f"({self.config.samples_per_token} samples)")
        spec = self.frontend.stft(audio)[:, :n_mel]
        return spec, self.frontend.log_mel(spec=spec)

    def normalise(self, mel: torch.Tensor) -> torch.Tensor:
        return (mel - self.mel_mean) / self.mel_std

    def encode_lower(self, normalised_mel: torch.Tensor) -> torch.Tensor:
        x = self.subsample(normalised_mel)
        x = x + sinusoidal_positions(x.shape[1], x.shape[2], x.device)
        return self.lower(x)

    def stage_parameters(self, stage: str) -> list[nn.Parameter]:
        """The parameters a stage trains (everything else is frozen in that stage)."""
        parts = {
            "ssl": [self.subsample, self.lower, self.upper, self.ssl_head],
            "multitask": [self.subsample, self.lower, self.bottleneck, self.upper, self.heads],
            "codebook": [self.vocal_branch, self.accomp_branch, self.quantized_upper, self.quantized_heads],
        }[stage]
        return [p for module in parts for p in module.parameters()]

    def init_codebook_stage(self) -> None:
        """Start stage 3 from stage 2: the quantized path copies the upper stack and heads, and each branch's
        projections start as the bottleneck's (the codebook dimension equals the bottleneck's)."""
        self.quantized_upper.load_state_dict(self.upper.state_dict())
        self.quantized_heads.load_state_dict({k: v for k, v in self.heads.state_dict().items()
                                              if not k.startswith("masks.")})
        if self.config.codebook_dim == self.config.bottleneck_dim:
            for branch in (self.vocal_branch, self.accomp_branch):
                branch.proj_in.load_state_dict(self.bottleneck.proj_in.state_dict())
                branch.proj_out.load_state_dict(self.bottleneck.proj_out.state_dict())

    def forward(self, stage: str, **inputs) -> dict[str, torch.Tensor]:
        """Dispatch to a stage's forward. Training calls the (possibly DDP-wrapped) model through here so
        that gradients are synchronised across processes."""
        stage_forward = {"ssl": self.forward_ssl, "multitask": self.forward_multitask,
                         "codebook": self.forward_codebook}.get(stage)
        if stage_forward is None:
            raise ValueError(f"unknown stage {stage!r}")
        return stage_forward(**inputs)

    # ---- stage 1: BEST-RQ -----------------------------------------------------------------------------
    def span_mask(self, batch: int, n_mel: int, device) -> torch.Tensor:
        """Mel-frame mask: spans of ``mask_span_frames`` starting with probability ``mask_start_prob``."""
        starts = torch.rand(batch, n_mel, device=device) < self.config.mask_start_prob
        span = torch.ones(1, 1, self.config.mask_span_frames, device=device)
        covered = F.conv1d(starts.float()[:, None], span, padding=self.config.mask_span_frames - 1)
        return covered[:, 0, :n_mel] > 0

    def forward_ssl(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        _, mel = self.analyse(audio)
        normalised = self.normalise(mel)
        b, n_mel, n_mels = normalised.shape
        sub = self.config.subsampling
        with torch.no_grad():
            targets = self.ssl_targets(normalised.reshape(b, n_mel // sub, sub * n_mels))  # [B, T] (or [B, T, H])
            if targets.dim() == 2:
                targets = targets[..., None]
        mask = self.span_mask(b, n_mel, audio.device)
        noisy = torch.where(mask[..., None], torch.randn_like(normalised) * 0.1, normalised)
        hidden = self.upper(self.encode_lower(noisy))
        logits = self.ssl_head(hidden).view(b, n_mel // sub, targets.shape[-1], self.config.ssl_codebook_size)
        token_mask = mask.view(b, n_mel // sub, sub).any(-1)
        if not token_mask.any():  # a batch with no masked span still trains nothing useful, but must not crash
            token_mask[:, 0] = True
        chosen_logits, chosen_targets = logits[token_mask], targets[token_mask]
        ce = F.cross_entropy(chosen_logits.flatten(0, 1), chosen_targets.flatten())
        accuracy = (chosen_logits.argmax(-1) == chosen_targets).float().mean()
        return {"loss": ce, "ce": ce.detach(), "masked_accuracy": accuracy.detach(),
                "masked_share": token_mask.float().mean().detach()}

    # ---- stage 2: multi-task with the noisy bottleneck -------------------------------------------------
    def _frame_losses(self, out: dict, mel_target, chroma_target, phones, phone_lengths,
                      phone_frames=None, pitch_frames=None) -> dict[str, torch.Tensor]:
        losses = {"mel": F.l1_loss(out["mel"], mel_target),
                  "chroma": (out["chroma"] - chroma_target).abs().sum(-1).mean()}
        if phones is not None:
            log_probs = out["ctc"].transpose(0, 1)  # [T, B, C]
            input_lengths = torch.full((log_probs.shape[1],), log_probs.shape[0], dtype=torch.long)
            losses["ctc"] = F.ctc_loss(log_probs, phones, input_lengths, phone_lengths, blank=0, reduction="mean",
                                       zero_infinity=True)
        # Optional frame-wise phone targets (the corpus knows every phone's time) on the same head, blank = no
        # phone, so greedy CTC decoding reads it unchanged. Computed only when its weight is set: CTC alone
        # sat on its all-blank plateau in short CPU runs, and this is the direct signal that may lift it.
        if phones is not None and phone_frames is not None and self.config.loss_weights.get("frame_phone", 0) > 0:
            frames = phone_frames[:, : out["ctc"].shape[1]]
            losses["frame_phone"] = F.nll_loss(out["ctc"][:, : frames.shape[1]].flatten(0, 1), frames.flatten())
        # Optional frame-wise sung note (class 0 = unvoiced), from the corpus's F0 track: the mel and chroma
        # losses alone let the vocal codebook keep too little of the melody (a decoder re-sang 6% of frames
        # within 50 cents), so this asks the tokens for the note directly.
        if pitch_frames is not None and "pitch" in out and self.config.loss_weights.get("frame_pitch", 0) > 0:
            frames = pitch_frames[:, : out["pitch"].shape[1]]
            losses["frame_pitch"] = F.nll_loss(out["pitch"][:, : frames.shape[1]].flatten(0, 1), frames.flatten())
        return losses

    def _weighted(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        weights = self.config.loss_weights
        return sum(weights.get(name, 1.0) * value for name, value in losses.items())

    def forward_multitask(self, inputs: torch.Tensor, stems: torch.Tensor, phones: torch.Tensor,
                          phone_lengths: torch.Tensor, phone_frames: torch.Tensor | None = None,
                          pitch_frames: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``inputs [B, N]`` (a mix or a single track), ``stems [B, 4, N]`` (what the input contains, zeros
        for absent stems), phones ``[B, L]`` padded with ``phone_lengths`` (0 where no vocals), optionally
        ``phone_frames [B, T]`` (the phone at each token frame, 0 for none) and ``pitch_frames [B, T]`` (the
        sung note's class, 0 for none)."""
        spec, mel = self.analyse(inputs)
        normalised = self.normalise(mel)
        hidden = self.upper(self.bottleneck(self.encode_lower(normalised)))
        out = self.heads(hidden)
        losses = self._frame_losses(out, normalised, self.frontend.chroma(spec=spec), phones, phone_lengths,
                                    phone_frames, pitch_frames)
        n_mel = spec.shape[1]
        stem_mag = torch.stack([self.frontend.stft(stems[:, k])[:, :n_mel].abs() for k in range(stems.shape[1])], 1)
        estimate = out["masks"] * spec.abs()[:, None]
        losses["separation"] = F.l1_loss((estimate + 1e-5) ** COMPRESS, (stem_mag + 1e-5) ** COMPRESS)
        return {"loss": self._weighted(losses), **{k: v.detach() for k, v in losses.items()}}

    def separation_masks(self, mix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage-2 separator: ``mix [B, N] -> (masks [B, 4, 4T, F], mixture stft [B, 4T, F])``."""
        spec, mel = self.analyse(mix)
        hidden = self.upper(self.bottleneck(self.encode_lower(self.normalise(mel))))
        return self.heads(hidden)["masks"], spec

    # ---- stage 3: dual codebooks with hard routing -----------------------------------------------------
    def quantize(self, audio: torch.Tensor, track: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """Route ``audio`` of one track through its branch: ``(decoded [B,T,d], indices [B,T], commit, analysis)``."""
        branch = {"vocal": self.vocal_branch, "accomp": self.accomp_branch}[track]
        lower, mel_frames, analysis = self.branch_inputs(audio)
        decoded, indices, commit = branch(lower, mel_frames)
        return decoded, indices, commit, analysis

    def branch_inputs(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """What a branch reads from ``audio``: ``(frozen lower-stack output [B,T,d], each token's stacked
        normalised mel frames [B,T,subsampling·n_mels], {"spec", "normalised"})``."""
        spec, mel = self.analyse(audio)
        normalised = self.normalise(mel)
        with torch.no_grad():  # the lower stack is frozen from stage 3 on
            lower = self.encode_lower(normalised)
        b, n_mel, n_mels = normalised.shape  # n_mel is a whole number of tokens (analyse crops it)
        mel_frames = normalised.reshape(b, n_mel // self.config.subsampling, self.config.subsampling * n_mels)
        return lower, mel_frames, {"spec": spec, "normalised": normalised}

    def forward_codebook(self, vocals: torch.Tensor, accompaniment: torch.Tensor, phones: torch.Tensor,
                         phone_lengths: torch.Tensor, phone_frames: torch.Tensor | None = None,
                         pitch_frames: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        result: dict[str, torch.Tensor] = {}
        total = 0.0
        for track, audio in (("vocal", vocals), ("accomp", accompaniment)):
            decoded, indices, commit, analysis = self.quantize(audio, track)
            out = self.quantized_heads(self.quantized_upper(decoded))
            vocal = track == "vocal"
            losses = self._frame_losses(out, analysis["normalised"], self.frontend.chroma(spec=analysis["spec"]),
                                        phones if vocal else None, phone_lengths, phone_frames,
                                        pitch_frames if vocal else None)
            losses["commit"] = commit
            total = total + self._weighted(losses)
            result.update({f"{track}_{k}": v.detach() for k, v in losses.items()})
            result[f"{track}_indices"] = indices.detach()
        result["loss"] = total
        return result
