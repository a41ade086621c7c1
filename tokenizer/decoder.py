"""Stage-4 per-track decoders: one track's 25 Hz tokens -> that track's 50 Hz log-mel (the vocoder's input).

    decoder = load_decoder("checkpoints/duotok-tiny/decoder-vocal")
    mel = decoder.generate(indices[None], steps=8, seed=0)        # [1, 2T, n_mels], log-mel like LatentMel

Two parts, one network per track (duotok.md §2.4 plans one decoder per track):

1. a **code encoder**: the track's codebook vectors (the frozen SimVQ table, copied in at training start so a
   decoder folder is self-contained), repeated ×2 to 50 Hz, ConvNeXt blocks for local context and position,
   then transformer layers. A linear head gives ``prior``, an L1-regression estimate of the mel.
2. a **DiT flow-matching refiner** (adaLN-zero transformer blocks conditioned on the flow time) that carries
   ``prior + sigma·noise`` to the mel, as Grad-TTS starts from its encoder mean instead of pure noise. The
   issue's prototypes found that at CPU budgets a flow decoder from pure noise gets pitch wrong more often than
   a regression decoder while producing sharper mels; starting from the regression estimate keeps its pitch
   and lets the flow add the detail. ``steps=0`` returns the regression estimate itself.

Sampling uses diffusers' ``FlowMatchEulerDiscreteScheduler``: its sigma runs from 1 (the start, here the noisy
prior) to 0 (data); the network gets sigma in [0, 1] (a raw 0..1000 timestep into the time embedding stalls
training, libraries.md §2.2). Mels are modelled in per-bin standardised units (``mel_mean``/``mel_std``
buffers measured on the training data). Frame arithmetic: T tokens -> exactly 2T mel frames -> 2T·480 samples
through the vocoder, i.e. T·960 samples, the audio length the tokens came from (rounded down to whole tokens)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from tokenizer.checkpoint import load_component, rebuild_with_config_updates, save_component
from tokenizer.config import DictConfig
from tokenizer.phones import N_PHONES
from tokenizer.vocoder import ConvNeXtBlock
from tokenizer.word_context import N_PHONE_IDS, WordContext, word_context

KIND = "decoder"
TRACKS = ("vocal", "accomp")


@dataclass
class DecoderConfig(DictConfig):
    name: str = "tiny"
    track: str = "vocal"
    codebook_size: int = 1024
    code_dim: int = 64
    frames_per_token: int = 2  # 25 Hz tokens -> 50 Hz mel frames
    n_mels: int = 100
    dim: int = 256
    n_heads: int = 4
    ffn_dim: int = 768
    conv_layers: int = 2
    encoder_layers: int = 4
    dit_layers: int = 3
    kernel_size: int = 7
    # std of the noise added to the regression estimate where the flow starts (standardised mel units);
    # Grad-TTS uses 1 around its encoder mean; smaller keeps short CPU trainings close to the regression pitch
    prior_noise: float = 0.5
    # Flow steps when the caller gives none. 0 = the regression estimate: on the tiny decoders (3,000 steps on
    # this CPU) it measured better than 2, 4, 8 or 16 flow steps on mel L1 and STOI, and is 2x faster
    # (bench/results/decoder_reconstruction.md); pitch was within noise. Larger budgets may change that.
    default_steps: int = 0
    flow_loss_weight: float = 1.0
    # Lyric-aware decoding (vocal track; tokenizer.word_context): each frame attends to the phones of the word
    # being sung, at most this many (0: the decoder reads tokens only, as the paper's decoders do)
    word_phones: int = 0
    word_since: int = 64  # word ages (in frames) told apart; 64 frames = 1.28 s, longer notes share the last
    word_dropout: float = 0.2  # share of training crops shown no words, so decoding without words still works
    # Weight of the alignment loss: what each frame picked from its word must name the phone sung there (the
    # corpus's festival phone labels). The mel loss alone teaches the attention slowly: on the tiny vocal decoder
    # 1,000 steps of it moved decoded phone accuracy by ~1 point. Labels are only needed in training.
    word_phone_loss: float = 0.0
    # Training crops see each word start moved by up to this many token frames (a per-crop bound drawn from
    # 0..word_jitter, so some crops stay exact; order kept). In the app the starts are the LM's word cues, which
    # are only near where the tokens sing each word (most are forced by the cue deadline); a decoder trained on
    # exact starts lost most of its word gain when given evenly spread starts (bench.decoder_word_timing: 278 word
    # errors of 380 exact, 311 even, 319 without words). 0: exact starts, as the corpus gives them.
    word_jitter: int = 0
    # Phone times (tokenizer.word_context): each frame is also told which phone of its word is being sung and since
    # when, from the phone cues' frames (the corpus's sung phones in training). Its query embeddings start at zero,
    # so turning this on for a trained decoder starts from that decoder's exact output. ``phone_times_dropout``:
    # share of training crops shown their words without the times, so words without phone cues still decode.
    phone_times: bool = False
    phone_times_dropout: float = 0.2
    # Share of training token frames swapped, in spans of ``token_noise_span`` frames, for the tokens of another
    # place in the same crop (``swap_token_spans``). In the app the vocal tokens are the LM's, which sing the cued
    # phone far less often than the corpus's own tokens do (bench/results/lyric_phones*.md: phone error rate 0.73
    # against 0.57), and a decoder that only ever saw true tokens follows the tokens over the words it is given.
    # Swapped spans are tokens that disagree with the words and phone times, as the LM's often do. 0: off.
    token_noise: float = 0.0
    token_noise_span: int = 3
    # Accompaniment decoder only: also read the vocal tokens of the same frames (duotok.md §2.4: "the
    # accompaniment decoder may also see the vocal tokens"; the sung melody hints at the harmony and the beat).
    # The vocal codebook's vectors (frozen, copied in at training start like the track's own) enter through
    # their own input layer, added to the accompaniment codes'. That layer starts at zero, so turning this on
    # for a trained decoder starts from exactly that decoder's output. On the tiny decoder, 1,000 fine-tuning
    # steps with it tied with the same steps without it (tokenizer card), so the shipped one reads no vocals.
    vocal_context: bool = False

    def __post_init__(self):
        if self.track not in TRACKS:
            raise ValueError(f"decoder track must be one of {TRACKS}, not {self.track!r}")
        if self.vocal_context and self.track != "accomp":
            raise ValueError("vocal_context is for the accompaniment decoder (the vocal decoder reads the vocal "
                             "tokens already)")
        if self.dim % self.n_heads:
            raise ValueError(f"dim {self.dim} must be divisible by n_heads {self.n_heads}")
        if (self.word_phones < 0 or self.word_since < 2 or not 0.0 <= self.word_dropout <= 1.0
                or self.word_phone_loss < 0 or self.word_jitter < 0):
            raise ValueError(f"word_phones must be >= 0, word_since >= 2, word_dropout in [0, 1], word_phone_loss "
                             f">= 0 and word_jitter >= 0; got {self.word_phones}, {self.word_since}, "
                             f"{self.word_dropout}, {self.word_phone_loss}, {self.word_jitter}")
        if self.phone_times and not self.word_phones:
            raise ValueError("phone_times needs a lyric-aware decoder (word_phones > 0)")
        if not 0.0 <= self.phone_times_dropout <= 1.0:
            raise ValueError(f"phone_times_dropout must be in [0, 1], got {self.phone_times_dropout}")
        if not 0.0 <= self.token_noise < 1.0 or self.token_noise_span < 1:
            raise ValueError(f"token_noise must be in [0, 1) and token_noise_span >= 1, got {self.token_noise} and "
                             f"{self.token_noise_span}")



DECODER_CONFIGS = {
    "tiny": DecoderConfig(),
    # GPU size: a 12 + 12 layer, 768-wide stack, the scale of the paper's DiT decoders
    "paper": DecoderConfig(name="paper", codebook_size=32768, code_dim=128, dim=768, n_heads=12, ffn_dim=3072,
                           conv_layers=2, encoder_layers=12, dit_layers=12, default_steps=32),
}


def get_decoder_config(name: str, track: str, **overrides) -> DecoderConfig:
    if name not in DECODER_CONFIGS:
        raise ValueError(f"unknown decoder config {name!r}; choose one of {sorted(DECODER_CONFIGS)}")
    return dataclasses.replace(DECODER_CONFIGS[name], track=track, **overrides)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class TransformerBlock(nn.Module):
    """Pre-norm self-attention + GELU MLP, optionally modulated by a conditioning vector (adaLN-zero, DiT):
    each sublayer's normalised input is scaled and shifted, and its output gated, by values predicted from
    ``cond``; the gates start at zero, so every block starts as the identity."""

    def __init__(self, dim: int, n_heads: int, ffn_dim: int, modulated: bool = False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=not modulated, eps=1e-6)
        self.attn = SelfAttention(dim, n_heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=not modulated, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(), nn.Linear(ffn_dim, dim))
        self.modulation = nn.Linear(dim, 6 * dim) if modulated else None
        if self.modulation is not None:
            nn.init.zeros_(self.modulation.weight)
            nn.init.zeros_(self.modulation.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if self.modulation is None:
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(F.silu(cond))[:, None].chunk(6, dim=-1)
        x = x + gate1 * self.attn(self.norm1(x) * (1 + scale1) + shift1)
        return x + gate2 * self.mlp(self.norm2(x) * (1 + scale2) + shift2)


class WordPhoneAttention(nn.Module):
    """Adds to each frame what it picks, by one-head attention, from the phones of the word it is in (or a
    learned "nothing" key): the query is the frame's features plus the word's age at that frame, the keys the
    phones plus their position in the word. The output layer starts at zero, so adding this to a trained
    decoder leaves its output unchanged until training moves it. ``phone_head`` names the phone from what a
    frame picked, for the alignment loss (``DecoderConfig.word_phone_loss``). With ``phone_times`` the query also
    gets embeddings of which phone is being sung (its position, 0: unknown) and of its age; both start at zero,
    so they too leave a trained decoder's output unchanged until training moves them."""

    def __init__(self, dim: int, max_phones: int, max_since: int, with_phone_head: bool = False,
                 phone_times: bool = False):
        super().__init__()
        self.phone = nn.Embedding(N_PHONE_IDS, dim)
        self.position = nn.Embedding(max_phones, dim)
        self.since = nn.Embedding(max_since, dim)
        self.nothing = nn.Parameter(torch.zeros(dim))
        self.query = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.phone_head = nn.Linear(dim, N_PHONES) if with_phone_head else None
        self.current = self.phone_since = None
        if phone_times:
            self.current = nn.Embedding(max_phones + 1, dim)
            self.phone_since = nn.Embedding(max_since, dim)
            nn.init.zeros_(self.current.weight)
            nn.init.zeros_(self.phone_since.weight)

    def forward(self, x: torch.Tensor, phones: torch.Tensor, since: torch.Tensor, current: torch.Tensor,
                phone_since: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, F, dim]``, the batched ``WordContext`` (``phones [B, F, P]``, 0 pads; ``since``, ``current``,
        ``phone_since`` ``[B, F]``) -> (``x`` plus the picked phones, what each frame picked ``[B, F, dim]``)."""
        # A key is a phone embedding plus a position embedding (or the "nothing" key), and every map applied to
        # it is linear, so scores and values are sums of per-phone and per-position terms: computed on the small
        # tables and gathered, no [B, F, P, dim] tensor is ever built (it took ~120 MB on a 30 s song).
        p = phones.shape[-1]
        query = self.query(x) + self.since(since)
        if self.current is not None:
            query = query + self.current(current) + self.phone_since(phone_since)
        scale = math.sqrt(x.shape[-1])
        phone_scores = (query @ self.phone.weight.T).gather(-1, phones)  # [B, F, P]
        scores = torch.cat([query @ self.nothing[:, None], phone_scores + query @ self.position.weight[:p].T],
                           dim=-1) / scale  # [B, F, 1 + P]
        present = torch.cat([torch.ones_like(phones[..., :1], dtype=torch.bool), phones > 0], dim=-1)
        weights = scores.masked_fill(~present, float("-inf")).softmax(dim=-1)
        value_weight = self.value.weight.T
        per_phone = torch.zeros(*phones.shape[:2], self.phone.num_embeddings, device=x.device, dtype=weights.dtype)
        per_phone.scatter_add_(-1, phones, weights[..., 1:])  # each phone id's total weight (pads add to id 0)
        picked = (weights[..., :1] * (self.nothing @ value_weight) + per_phone @ (self.phone.weight @ value_weight)
                  + weights[..., 1:] @ (self.position.weight[:p] @ value_weight) + self.value.bias)
        return x + self.out(picked), picked


def swap_token_spans(indices: torch.Tensor, share: float, span: int, generator: torch.Generator | None = None
                     ) -> torch.Tensor:
    """``indices [B, T]`` with about ``share`` of each row's frames, in spans of ``span`` frames, replaced by the
    tokens ``offset`` frames further on in the same row (wrapping round; one random ``offset`` per row), so a
    swapped span is a real stretch of singing from elsewhere in the crop: its own pitch and phones."""
    batch, length = indices.shape
    starts = torch.rand(batch, length, generator=generator) < share / span
    swapped = starts.clone()
    for shift in range(1, min(span, length)):
        swapped[:, shift:] |= starts[:, :-shift]
    offsets = torch.randint(1, max(length, 2), (batch, 1), generator=generator)
    sources = (torch.arange(length)[None] + offsets) % length
    return torch.where(swapped.to(indices.device), indices.gather(1, sources.to(indices.device)), indices)


def sigma_embedding(sigma: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of the flow time ``sigma [B]`` in [0, 1] (scaled ×1000 inside, so the frequencies
    cover the whole range as in DiT's timestep embedding)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=sigma.device) / half)
    angles = 1000.0 * sigma.float()[:, None] * freqs[None]
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class TrackDecoder(nn.Module):
    """``prior(indices [B, T]) -> [B, 2T, n_mels]``, ``velocity(x, sigma, h)``, ``generate(indices, steps)``,
    ``losses(indices, mel)``. Mels outside are log-mels (``LatentMel`` units); inside, standardised."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.config = config
        dim = config.dim
        self.register_buffer("code_table", torch.zeros(config.codebook_size, config.code_dim))
        self.register_buffer("mel_mean", torch.zeros(config.n_mels))
        self.register_buffer("mel_std", torch.ones(config.n_mels))
        self.code_in = nn.Linear(config.code_dim, dim)
        self.context_in = None
        if config.vocal_context:
            self.register_buffer("context_code_table", torch.zeros(config.codebook_size, config.code_dim))
            self.context_in = nn.Linear(config.code_dim, dim)
            nn.init.zeros_(self.context_in.weight)
            nn.init.zeros_(self.context_in.bias)
        self.convs = nn.ModuleList(ConvNeXtBlock(dim, 3 * dim, config.kernel_size, 1.0 / max(1, config.conv_layers))
                                   for _ in range(config.conv_layers))
        self.words = (WordPhoneAttention(dim, config.word_phones, config.word_since, config.word_phone_loss > 0,
                                         config.phone_times) if config.word_phones else None)
        self.encoder = nn.ModuleList(TransformerBlock(dim, config.n_heads, config.ffn_dim)
                                     for _ in range(config.encoder_layers))
        self.encoder_norm = nn.LayerNorm(dim, eps=1e-6)
        self.prior_head = nn.Linear(dim, config.n_mels)
        # flow refiner: input = projected noisy mel + the encoder's features; a depthwise conv gives positions
        self.x_in = nn.Linear(config.n_mels, dim)
        self.h_in = nn.Linear(dim, dim)
        self.x_conv = nn.Conv1d(dim, dim, config.kernel_size, padding=config.kernel_size // 2, groups=dim)
        self.time_mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.dit = nn.ModuleList(TransformerBlock(dim, config.n_heads, config.ffn_dim, modulated=True)
                                 for _ in range(config.dit_layers))
        self.out_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.out_modulation = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, config.n_mels)
        for layer in (self.out_modulation, self.out):  # the velocity starts at zero (DiT's adaLN-zero init)
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    # ------------------------------------------------------------------------------------------- checks
    def check_indices(self, indices: torch.Tensor, track: str | None = None) -> torch.Tensor:
        """``indices`` as a long ``[B, T]`` tensor of ids in range, else a clear error naming ``track`` (default:
        this decoder's own)."""
        track = track or self.config.track
        if not isinstance(indices, torch.Tensor):
            raise TypeError(f"{track} token indices must be a torch tensor, got {type(indices).__name__}")
        if indices.dtype.is_floating_point or indices.dtype == torch.bool or indices.is_complex():
            raise TypeError(f"{track} token indices must be integers, got dtype {indices.dtype}")
        if indices.dim() != 2 or indices.shape[1] == 0 or indices.shape[0] == 0:
            raise ValueError(f"{track} token indices must be a non-empty [B, T] tensor, got shape "
                             f"{tuple(indices.shape)}")
        if indices.min() < 0 or indices.max() >= self.config.codebook_size:
            raise ValueError(f"{track} token ids must lie in [0, {self.config.codebook_size}), got "
                             f"{int(indices.min())}..{int(indices.max())}")
        return indices.long()

    def check_context(self, context: torch.Tensor | None, indices: torch.Tensor) -> torch.Tensor | None:
        """The vocal tokens ``[B, T]`` of the frames of ``indices``, for a decoder with ``vocal_context`` (which
        needs them); a decoder without it takes none."""
        if self.context_in is None:
            if context is not None:
                raise ValueError("this decoder reads no vocal tokens (config vocal_context false); decode without "
                                 "them")
            return None
        if context is None:
            raise ValueError("this accompaniment decoder reads the vocal tokens too (config vocal_context): give "
                             "the vocal tokens of the same frames")
        context = self.check_indices(context, "vocal")
        if context.shape != indices.shape:
            raise ValueError(f"the vocal tokens must match the accompaniment tokens' shape {tuple(indices.shape)}, "
                             f"got {tuple(context.shape)}")
        return context

    # ---------------------------------------------------------------------------------------- network
    def word_context(self, words, n_tokens: int) -> WordContext | None:
        """The ``WordContext`` tensors (``phones [2T, P]``, ``since``, ``current``, ``phone_since [2T]``) of one
        song's sung words (``tokenizer.word_context.word_starts``: ``{"start_frame", "text"[, "phones"]}`` dicts or
        ``(frame, text)`` pairs at the token rate), or None for a decoder that reads no words. Phone times are
        read only by a decoder with ``phone_times``."""
        if not self.config.word_phones:
            return None
        context = word_context(words, n_tokens, self.config.frames_per_token, self.config.word_phones,
                               self.config.word_since, self.config.phone_times)
        return WordContext(*(torch.from_numpy(part).to(self.code_table.device) for part in context))

    def check_words(self, words: WordContext | None, indices: torch.Tensor) -> WordContext | None:
        """Batched word context (``phones [B, 2T, P]``, the rest ``[B, 2T]``) for ``indices [B, T]``; None is "no
        words" (all frames before any word), which a word-reading decoder also handles."""
        if self.words is None:
            if words is not None:
                raise ValueError("this decoder reads no words (config word_phones 0); decode without words")
            return None
        batch, frames = indices.shape[0], indices.shape[1] * self.config.frames_per_token
        if words is None:
            zeros = torch.zeros(batch, frames, dtype=torch.long, device=indices.device)
            return WordContext(zeros[..., None].expand(-1, -1, self.config.word_phones), zeros, zeros, zeros)
        if len(words) != len(WordContext._fields):
            raise ValueError(f"word context must have the parts {WordContext._fields}, got {len(words)} parts")
        phones, *per_frame = words
        if phones.shape != (batch, frames, self.config.word_phones) or any(
                part.shape != phones.shape[:2] for part in per_frame):
            raise ValueError(f"word context must be phones [{batch}, {frames}, {self.config.word_phones}] and "
                             f"per-frame parts [{batch}, {frames}], got {[tuple(part.shape) for part in words]}")
        since, current, phone_since = (part.long() for part in per_frame)
        top = self.config.word_since - 1
        return WordContext(phones.long(), since.clamp(0, top), current.clamp(0, self.config.word_phones),
                           phone_since.clamp(0, top))

    def encode(self, indices: torch.Tensor, words: WordContext | None = None,
               picked: list | None = None, context: torch.Tensor | None = None) -> torch.Tensor:
        """``indices [B, T] -> features h [B, 2T, dim]`` at the mel frame rate; ``words``: the batched word
        context of a word-reading decoder (``check_words``); ``picked``: a list that receives what each frame
        picked from its word (for the alignment loss); ``context``: the vocal tokens ``[B, T]`` for a decoder
        with ``vocal_context``."""
        indices = self.check_indices(indices)
        words = self.check_words(words, indices)
        context = self.check_context(context, indices)
        x = self.code_in(self.code_table[indices])
        if context is not None:
            x = x + self.context_in(self.context_code_table[context])
        x = x.repeat_interleave(self.config.frames_per_token, dim=1)
        x = x.transpose(1, 2)
        for block in self.convs:
            x = block(x)
        x = x.transpose(1, 2)
        if self.words is not None:  # after the convolutions: the query then sees the codes around the frame
            x, frame_picks = self.words(x, *words)
            if picked is not None:
                picked.append(frame_picks)
        for block in self.encoder:
            x = block(x)
        return self.encoder_norm(x)

    def prior(self, h: torch.Tensor) -> torch.Tensor:
        """The regression estimate (standardised units) from the encoder features."""
        return self.prior_head(h)

    def velocity(self, x: torch.Tensor, sigma: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Flow velocity d x / d sigma-reversed: the target is ``start - data`` (diffusers' convention with
        sigma = 1 at the start). ``x [B, F, n_mels]``, ``sigma [B]`` in [0, 1], ``h [B, F, dim]``."""
        y = self.x_in(x) + self.h_in(h)
        y = y + self.x_conv(y.transpose(1, 2)).transpose(1, 2)
        cond = self.time_mlp(sigma_embedding(sigma, self.config.dim))
        for block in self.dit:
            y = block(y, cond)
        shift, scale = self.out_modulation(F.silu(cond))[:, None].chunk(2, dim=-1)
        return self.out(self.out_norm(y) * (1 + scale) + shift)

    def normalise(self, mel: torch.Tensor) -> torch.Tensor:
        return (mel - self.mel_mean) / self.mel_std

    def denormalise(self, mel: torch.Tensor) -> torch.Tensor:
        return mel * self.mel_std + self.mel_mean

    # --------------------------------------------------------------------------------------- training
    def forward(self, indices: torch.Tensor, mel: torch.Tensor, generator: torch.Generator | None = None,
                words: WordContext | None = None, phone_labels: torch.Tensor | None = None,
                context: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The training forward is :meth:`losses`: trainers call ``model(indices, mel)`` through their DDP
        wrapper, which only all-reduces gradients of calls that go through it."""
        return self.losses(indices, mel, generator, words, phone_labels, context)

    def losses(self, indices: torch.Tensor, mel: torch.Tensor, generator: torch.Generator | None = None,
               words: WordContext | None = None, phone_labels: torch.Tensor | None = None,
               context: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``indices [B, T]``, target log-mel ``mel [B, 2T, n_mels]`` -> ``{"prior", "flow", "loss"}``.
        The prior is trained with L1 (sharper than L2 on mels); the flow regresses the velocity from the
        noisy prior (the prior is detached there, so the flow cannot pull the regression away from the
        data) at a sigma drawn uniformly. A word-reading decoder in training mode is shown no words on a
        ``word_dropout`` share of the crops; with ``phone_labels [B, 2T]`` (festival ids, 0 where nothing is sung)
        and ``word_phone_loss`` > 0 it also gets the alignment loss ``"word_phone"`` on the sung frames of the
        crops that were shown words. With ``token_noise`` some token spans are swapped first (``swap_token_spans``);
        the target stays the true mel. ``context``: the vocal tokens, for a decoder with ``vocal_context``."""
        expected = indices.shape[1] * self.config.frames_per_token
        if mel.shape[:2] != (indices.shape[0], expected) or mel.shape[-1] != self.config.n_mels:
            raise ValueError(f"mel must be [B, {expected}, {self.config.n_mels}] for {indices.shape[1]} tokens, "
                             f"got {tuple(mel.shape)}")
        target = self.normalise(mel)
        if self.training and self.config.token_noise > 0:
            indices = swap_token_spans(indices, self.config.token_noise, self.config.token_noise_span, generator)
        shown = torch.ones(indices.shape[0], dtype=torch.bool, device=mel.device)
        if words is not None and self.training and self.config.word_dropout > 0:
            shown = torch.rand(indices.shape[0], generator=generator).to(mel.device) >= self.config.word_dropout
            words = WordContext(words[0] * shown[:, None, None], *(part * shown[:, None] for part in words[1:]))
        if words is not None and self.training and self.config.phone_times and self.config.phone_times_dropout > 0:
            timed = (torch.rand(indices.shape[0], generator=generator).to(mel.device)
                     >= self.config.phone_times_dropout)[:, None]
            words = WordContext(words[0], words[1], words[2] * timed, words[3] * timed)
        picked: list[torch.Tensor] = []
        h = self.encode(indices, words, picked, context)
        prior = self.prior(h)
        out = {"prior": F.l1_loss(prior, target)}
        alignment = torch.zeros((), device=mel.device)
        if picked and words is not None and phone_labels is not None and self.words.phone_head is not None:
            if phone_labels.shape != mel.shape[:2]:
                raise ValueError(f"phone_labels must be {tuple(mel.shape[:2])}, got {tuple(phone_labels.shape)}")
            sung = ((phone_labels > 0) & shown[:, None]).float()
            # every frame goes through the head (masked after), so the graph is the same on every process (DDP)
            per_frame = F.cross_entropy(self.words.phone_head(picked[0]).transpose(1, 2), phone_labels.long(),
                                        reduction="none")
            alignment = (per_frame * sung).sum() / sung.sum().clamp(min=1)
            out["word_phone"] = alignment
        noise = torch.randn(target.shape, generator=generator).to(target.device)
        start = prior.detach() + self.config.prior_noise * noise
        sigma = torch.rand(target.shape[0], generator=generator).to(target.device)
        x = sigma[:, None, None] * start + (1 - sigma[:, None, None]) * target
        out["flow"] = F.mse_loss(self.velocity(x, sigma, h), start - target)
        out["loss"] = (out["prior"] + self.config.flow_loss_weight * out["flow"]
                       + self.config.word_phone_loss * alignment)
        return out

    # --------------------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def generate(self, indices: torch.Tensor, steps: int | None = None, seed: int = 0,
                 noise: torch.Tensor | None = None, temperature: float = 1.0,
                 words: WordContext | None = None, context: torch.Tensor | None = None) -> torch.Tensor:
        """``indices [B, T] -> log-mel [B, 2T, n_mels]``. ``steps=0``: the regression estimate; otherwise
        ``steps`` Euler steps of the flow from ``prior + temperature·prior_noise·noise``, the noise drawn from
        ``seed`` unless given (``[B, 2T, n_mels]``, e.g. a slice of one song-long draw). ``words``: the batched
        word context of a lyric-aware decoder (``check_words``; None: no words); ``context``: the vocal tokens
        ``[B, T]`` for a decoder with ``vocal_context``."""
        from diffusers import FlowMatchEulerDiscreteScheduler

        steps = self.config.default_steps if steps is None else int(steps)
        if steps < 0:
            raise ValueError(f"decoder steps must be >= 0, got {steps}")
        h = self.encode(indices, words, context=context)
        x = self.prior(h)
        if steps > 0:
            if noise is None:
                noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(int(seed))).to(x.device)
            elif noise.shape != x.shape:
                raise ValueError(f"noise must have the mel's shape {tuple(x.shape)}, got {tuple(noise.shape)}")
            x = x + temperature * self.config.prior_noise * noise
            scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
            scheduler.set_timesteps(steps, device=x.device)
            for t in scheduler.timesteps:
                sigma = (t / scheduler.config.num_train_timesteps).expand(x.shape[0]).to(x.dtype)
                x = scheduler.step(self.velocity(x, sigma, h), t, x).prev_sample
        return self.denormalise(x)


# ------------------------------------------------------------------------------------------- save / load


def save_decoder(model: TrackDecoder, directory: str | Path, dtype: torch.dtype = torch.float32,
                 metadata: dict[str, str] | None = None) -> None:
    """``directory/config.json`` (``"kind": "decoder"``) + ``model.safetensors``, each written atomically."""
    save_component(model, directory, KIND, model.config.to_dict(), dtype, metadata)


def load_decoder(directory: str | Path, device: str | torch.device = "cpu") -> TrackDecoder:
    return load_component(directory, KIND, DecoderConfig.from_dict, TrackDecoder, device)


def with_config_updates(decoder: TrackDecoder, updates: dict) -> TrackDecoder:
    """A new decoder whose config is ``decoder``'s with ``updates`` applied (unknown keys are an error). Every
    trained tensor (and buffer: code table, standardisation) whose shape the update leaves alone is kept.
    Transformer blocks the update adds, e.g. ``{"encoder_layers": 6}`` on a 4-layer decoder, come after the
    trained ones and start as the identity (their attention and MLP outputs zeroed), so fine-tuning starts
    from exactly the trained decoder's output and only adds capacity; other new tensors start fresh."""
    updated, kept = rebuild_with_config_updates(decoder, updates, TrackDecoder, "decoder")
    for stack in ("encoder", "dit"):
        for index, block in enumerate(getattr(updated, stack)):
            if f"{stack}.{index}.attn.out.weight" not in kept:
                for layer in (block.attn.out, block.mlp[-1]):
                    nn.init.zeros_(layer.weight)
                    nn.init.zeros_(layer.bias)
    return updated
