"""The Duo-Tok facade: audio in, two synchronised 25 Hz token streams out (and, with stage 4, back).

    tok = DuoTok.from_pretrained("checkpoints/duotok-tiny")
    tokens = tok.encode(vocals=v, accompaniment=a)       # or tok.encode(mix=m): separated first
    tokens.vocal, tokens.accomp                          # int64 arrays [T], T = 25 per second
    vocals, accompaniment = tok.separate(m)              # the stage-2 mask head, no outside separator
    codes = tok.indices_to_codes(tokens.vocal, "vocal")  # [T, codebook_dim] for the decoders
    vocals, accompaniment, mix = tok.decode(tokens)      # stage 4: decoders + vocoder, T · 960 samples each
    vocals, accompaniment, mix = tok.reconstruct(audio)  # encode (from the mix) then decode

Audio is mono float32 at the model rate (24 kHz for tiny); other rates are resampled with soxr.
Long audio is encoded in windows of the training length with context on both sides, so the encoder never
sees positions it was not trained on and tokens do not depend on how long the song is. Decoding runs the
same way: windows of the training length, overlapping, their mels cross-faded before the vocoder.

The stage-4 parts live in sub-folders of the checkpoint (``decoder-vocal/``, ``decoder-accomp/``,
``vocoder/``) and are loaded on first use, so tokenizing a corpus never pays for them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from corpus.audio_io import resample
from tokenizer.checkpoint import CheckpointError, from_pretrained
from tokenizer.frontend import token_frames
from tokenizer.model import DuoTokModel
from tokenizer.word_context import WordContext

WINDOW_TOKENS = 100  # 4 s: the crop length the tiny encoder is trained on
CONTEXT_TOKENS = 12  # extra context on each side of a window, discarded after encoding
DECODE_OVERLAP_TOKENS = 20  # decoding windows overlap by 0.8 s, cross-faded linearly in the mel domain
TRACK_FOLDERS = {"vocal": "decoder-vocal", "accomp": "decoder-accomp"}


@dataclass
class TrackTokens:
    vocal: np.ndarray  # int64 [T]
    accomp: np.ndarray  # int64 [T]
    frame_rate: float = 25.0

    def __post_init__(self):
        if len(self.vocal) != len(self.accomp):
            raise ValueError(f"vocal and accompaniment tokens differ in length ({len(self.vocal)} vs "
                             f"{len(self.accomp)})")

    def __len__(self) -> int:
        return len(self.vocal)

    @property
    def seconds(self) -> float:
        return len(self) / self.frame_rate


class DuoTok:
    def __init__(self, model: DuoTokModel, directory: str | Path | None = None, decoders: dict | None = None,
                 vocoder=None):
        """``model``: the encoder. Stage-4 parts are given directly (``decoders={"vocal": …, "accomp": …}``,
        ``vocoder``) or loaded on first use from ``directory`` (the checkpoint folder)."""
        self.model = model.eval()
        self.config = model.config
        self.directory = Path(directory) if directory is not None else None
        self._decoders = dict(decoders or {})
        self._vocoder = vocoder

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str = "cpu") -> DuoTok:
        return cls(from_pretrained(directory, device), directory=directory)

    @property
    def device(self) -> torch.device:
        return self.model.mel_mean.device

    def _prepare(self, audio, sample_rate: int | None, name: str) -> torch.Tensor:
        samples = np.asarray(audio, dtype=np.float32)
        if samples.ndim == 2:  # [channels, N] or [N, channels]: mix down
            samples = samples.mean(axis=0 if samples.shape[0] < samples.shape[1] else 1)
        if samples.ndim != 1:
            raise ValueError(f"{name}: expected mono audio [N] or [channels, N], got shape {samples.shape}")
        if not np.isfinite(samples).all():
            raise ValueError(f"{name}: audio contains NaN or infinite samples")
        if sample_rate is not None and sample_rate != self.config.sample_rate:
            samples = resample(samples, sample_rate, self.config.sample_rate)
        if token_frames(len(samples), self.config.hop_length, self.config.subsampling) == 0:
            raise ValueError(f"{name}: {len(samples)} samples is shorter than one token frame "
                             f"({self.config.samples_per_token} samples at {self.config.sample_rate} Hz)")
        return torch.from_numpy(samples).to(self.device)

    @torch.no_grad()
    def _encode_track(self, audio: torch.Tensor, track: str) -> np.ndarray:
        per_token = self.config.samples_per_token
        n_tokens = token_frames(len(audio), self.config.hop_length, self.config.subsampling)
        out = []
        for start in range(0, n_tokens, WINDOW_TOKENS):
            end = min(n_tokens, start + WINDOW_TOKENS)
            left, right = max(0, start - CONTEXT_TOKENS), min(n_tokens, end + CONTEXT_TOKENS)
            window = audio[left * per_token: right * per_token][None]
            indices = self.model.quantize(window, track)[1][0]
            out.append(indices[start - left: start - left + (end - start)])
        return torch.cat(out).cpu().numpy().astype(np.int64)

    def encode(self, *, vocals=None, accompaniment=None, mix=None, sample_rate: int | None = None) -> TrackTokens:
        """Tokens of a song given as stems (``vocals`` + ``accompaniment``) or as a ``mix`` (separated by the
        stage-2 mask head first). Returns equal-length streams at 25 Hz."""
        if mix is not None and (vocals is not None or accompaniment is not None):
            raise ValueError("give either mix= or vocals= and accompaniment=, not both")
        if mix is not None:
            vocals, accompaniment = self.separate(mix, sample_rate=sample_rate)
            sample_rate = self.config.sample_rate
        if vocals is None or accompaniment is None:
            raise ValueError("encode needs vocals= and accompaniment= (or mix=)")
        vocal_audio = self._prepare(vocals, sample_rate, "vocals")
        accomp_audio = self._prepare(accompaniment, sample_rate, "accompaniment")
        n = min(len(vocal_audio), len(accomp_audio))
        return TrackTokens(self._encode_track(vocal_audio[:n], "vocal"),
                           self._encode_track(accomp_audio[:n], "accomp"), self.config.token_rate)

    @torch.no_grad()
    def separate(self, mix, sample_rate: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Split a mix into (vocals, accompaniment) with the stage-2 masks over the mixture STFT, window by
        window; accompaniment is what the vocal mask leaves (so the two sum to the input)."""
        audio = self._prepare(mix, sample_rate, "mix")
        per_token = self.config.samples_per_token
        n_tokens = token_frames(len(audio), self.config.hop_length, self.config.subsampling)
        vocals = torch.zeros_like(audio)
        for start in range(0, n_tokens, WINDOW_TOKENS):
            end = min(n_tokens, start + WINDOW_TOKENS)
            left, right = max(0, start - CONTEXT_TOKENS), min(n_tokens, end + CONTEXT_TOKENS)
            window = audio[left * per_token: right * per_token]
            estimate = self.vocal_estimate(window[None])[0]
            offset = (start - left) * per_token
            vocals[start * per_token: end * per_token] = estimate[offset: offset + (end - start) * per_token]
        accompaniment = audio - vocals
        return vocals.cpu().numpy(), accompaniment.cpu().numpy()

    def vocal_estimate(self, mix: torch.Tensor) -> torch.Tensor:
        """``mix [B, N] -> vocals [B, N]``: vocal mask × mixture STFT, inverted with the mixture phase."""
        masks, _ = self.model.separation_masks(mix)
        frontend = self.model.frontend
        full = torch.stft(mix, frontend.n_fft, frontend.hop_length, window=frontend.window, center=True,
                          pad_mode="reflect", return_complex=True)  # [B, F, frames + 1]
        vocal_mask = masks[:, 0].transpose(1, 2)  # [B, F, frames']
        pad = full.shape[-1] - vocal_mask.shape[-1]
        vocal_mask = torch.cat([vocal_mask, vocal_mask[..., -1:].expand(-1, -1, pad)], dim=-1)
        return torch.istft(full * vocal_mask, frontend.n_fft, frontend.hop_length, window=frontend.window,
                           center=True, length=mix.shape[-1])

    @torch.no_grad()
    def indices_to_codes(self, indices, track: str) -> torch.Tensor:
        """``indices [T]`` or ``[B, T]`` of one track ("vocal" or "accomp") -> codes ``[.., T, codebook_dim]``."""
        branch = {"vocal": self.model.vocal_branch, "accomp": self.model.accomp_branch}.get(track)
        if branch is None:
            raise ValueError(f"track must be 'vocal' or 'accomp', not {track!r}")
        indices = torch.as_tensor(np.asarray(indices), dtype=torch.long, device=self.device)
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.config.codebook_size):
            raise ValueError(f"token ids must lie in [0, {self.config.codebook_size})")
        return branch.indices_to_codes(indices)

    # ------------------------------------------------------------------------------------ stage 4: decode
    def _stage4_folder(self, name: str) -> Path:
        if self.directory is None:
            raise CheckpointError(f"this DuoTok has no {name} (load it with DuoTok.from_pretrained(folder) or pass "
                                  "decoders= / vocoder=)")
        return self.directory / name

    def decoder(self, track: str):
        """The track's stage-4 decoder (``tokenizer.decoder.TrackDecoder``), loaded on first use."""
        if track not in TRACK_FOLDERS:
            raise ValueError(f"track must be 'vocal' or 'accomp', not {track!r}")
        if track not in self._decoders:
            from tokenizer.decoder import load_decoder

            self._decoders[track] = load_decoder(self._stage4_folder(TRACK_FOLDERS[track]), self.device)
        return self._decoders[track]

    @property
    def vocoder(self):
        if self._vocoder is None:
            from tokenizer.vocoder import load_vocoder

            self._vocoder = load_vocoder(self._stage4_folder("vocoder"), self.device)
        return self._vocoder

    def _check_indices(self, indices, track: str) -> torch.Tensor:
        array = np.asarray(indices)
        if array.dtype.kind not in "iu":
            raise TypeError(f"{track} tokens must be integers, got dtype {array.dtype}")
        if array.ndim != 1 or len(array) == 0:
            raise ValueError(f"{track} tokens must be a non-empty 1-D array, got shape {array.shape}")
        if array.min() < 0 or array.max() >= self.config.codebook_size:
            raise ValueError(f"{track} token ids must lie in [0, {self.config.codebook_size}), got "
                             f"{array.min()}..{array.max()}")
        return torch.as_tensor(array.astype(np.int64), device=self.device)

    @torch.no_grad()
    def decode_mel(self, indices, track: str, steps: int | None = None, seed: int = 0,
                   window_tokens: int = WINDOW_TOKENS, overlap_tokens: int = DECODE_OVERLAP_TOKENS,
                   words=None, vocal=None) -> torch.Tensor:
        """One track's tokens ``[T]`` -> its 50 Hz log-mel ``[2T, n_mels]``. ``words``: the sung words as
        ``{"start_frame", "text"[, "phones"]}`` dicts or ``(start_frame, text)`` pairs at the token rate
        (``tokenizer.word_context.word_starts``), read by a lyric-aware decoder (``word_phones`` in its config; the
        phones' times only with ``phone_times``) and ignored by one that reads tokens only. ``vocal``: the vocal
        tokens ``[T]`` of the same frames, read by an accompaniment decoder with ``vocal_context`` (which needs
        them) and ignored by any other.

        Long inputs are decoded in windows of ``window_tokens`` (the training crop) that overlap by
        ``overlap_tokens``; in each overlap the two windows' mels are blended with linear ramps, so there is no
        seam. The flow's starting noise is drawn once for the whole song from ``seed`` and each window takes its
        slice, so overlapping windows refine the same noise and the result does not depend on the window grid
        more than the cross-fade allows."""
        indices = self._check_indices(indices, track)
        if not 0 <= overlap_tokens < window_tokens:
            raise ValueError(f"overlap_tokens must be in [0, window_tokens), got {overlap_tokens}")
        decoder = self.decoder(track)
        per_token = decoder.config.frames_per_token
        n_tokens = len(indices)
        if decoder.context_in is None:
            vocal = None
        elif vocal is not None:
            vocal = self._check_indices(vocal, "vocal")
            if len(vocal) != n_tokens:
                raise ValueError(f"the vocal tokens must be as long as the {track} tokens ({n_tokens}), got "
                                 f"{len(vocal)}")
        starts = [0]
        if n_tokens > window_tokens:
            starts = [*range(0, n_tokens - window_tokens, window_tokens - overlap_tokens), n_tokens - window_tokens]
        context = decoder.word_context(words, n_tokens) if words is not None else None  # whole song, then sliced
        noise = torch.randn(n_tokens * per_token, decoder.config.n_mels,
                            generator=torch.Generator().manual_seed(int(seed))).to(self.device)
        total = torch.zeros(n_tokens * per_token, decoder.config.n_mels, device=self.device)
        weight = torch.zeros(n_tokens * per_token, 1, device=self.device)
        ramp_frames = overlap_tokens * per_token
        # every window has the same length (the last one is aligned to the end), so they run as one batch:
        # on a CPU one batched pass is much faster than the same windows one after another
        length = min(n_tokens, window_tokens)
        batch = torch.stack([indices[start: start + length] for start in starts])
        batch_noise = torch.stack([noise[start * per_token: (start + length) * per_token] for start in starts])
        batch_vocal = None if vocal is None else torch.stack([vocal[start: start + length] for start in starts])
        batch_words = None
        if context is not None:
            batch_words = WordContext(*(torch.stack([part[start * per_token: (start + length) * per_token]
                                                     for start in starts]) for part in context))
        mels = decoder.generate(batch, steps=steps, noise=batch_noise, words=batch_words, context=batch_vocal)
        for start, mel in zip(starts, mels, strict=True):
            end = start + length
            frames = slice(start * per_token, end * per_token)
            fade = torch.ones(mel.shape[0], 1, device=self.device)
            if ramp_frames:
                ramp = (torch.arange(ramp_frames, device=self.device) + 0.5)[:, None] / ramp_frames
                if start > 0:
                    fade[:ramp_frames] = ramp
                if end < n_tokens:
                    fade[-ramp_frames:] = ramp.flip(0)
            total[frames] += mel * fade
            weight[frames] += fade
        return total / weight

    @torch.no_grad()
    def decode(self, tokens: TrackTokens, steps: int | None = None, seed: int = 0, words=None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Tokens -> ``(vocals, accompaniment, mix)``: float32 waveforms of exactly ``len(tokens) ·
        samples_per_token`` samples at ``config.sample_rate``, the mix being their sum. ``steps``: flow steps
        of the decoders (``None``: each decoder's default; 0: the regression estimate alone); ``seed`` makes
        the result reproducible (the accompaniment uses ``seed + 1`` so the two tracks get unrelated noise).
        ``words``: the sung words for a lyric-aware vocal decoder (``decode_mel``)."""
        if not isinstance(tokens, TrackTokens):
            raise TypeError(f"decode takes TrackTokens, got {type(tokens).__name__}")
        vocals = self.decode_track(tokens.vocal, "vocal", steps=steps, seed=seed, words=words)
        accompaniment = self.decode_track(tokens.accomp, "accomp", steps=steps, seed=seed + 1, vocal=tokens.vocal)
        return vocals, accompaniment, vocals + accompaniment

    @torch.no_grad()
    def decode_track(self, indices, track: str, steps: int | None = None, seed: int = 0, words=None,
                     vocal=None) -> np.ndarray:
        """One track's tokens ``[T]`` -> its float32 waveform of ``T · samples_per_token`` samples: ``decode_mel``
        then the vocoder. ``decode`` calls it with ``seed`` for the vocals and ``seed + 1`` (and the vocal
        tokens) for the accompaniment, so a track decoded alone equals that track of ``decode``."""
        mel = self.decode_mel(indices, track, steps=steps, seed=seed, words=words if track == "vocal" else None,
                              vocal=vocal if track == "accomp" else None)
        return self.vocoder(mel[None].float())[0].cpu().numpy().astype(np.float32)

    def reconstruct(self, audio, sample_rate: int | None = None, steps: int | None = None, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A mix through the whole tokenizer: separate, encode, decode. Returns ``decode``'s triple."""
        return self.decode(self.encode(mix=audio, sample_rate=sample_rate), steps=steps, seed=seed)
