"""Train one stage-4 track decoder (tokens -> 50 Hz log-mel) on a token corpus and its song folders.

    python -m tokenizer.train --stage decoder --track vocal --data data/corpus/train --tokens data/tokens/train \
        --steps 4000 --export checkpoints/duotok-tiny/decoder-vocal
    python -m tokenizer.decoder_train ...                   (the same entry, called directly)
    accelerate launch --multi_gpu --num_processes 8 -m tokenizer.decoder_train --config paper ...   (GPUs)

Targets: the ``LatentMel`` of the track's stem (``vocals.flac`` / ``accompaniment.flac``), the vocoder's input.
Inputs: the token ids of ``python -m tokenizer tokenize`` for the same songs (matched by song id), looked up
in the tokenizer's frozen codebook (copied into the decoder at the start, so the decoder folder is
self-contained). Both are cached once per run in ``<run-dir>/decoder-<track>/cache.npz`` (fp16 mels; the
reference corpus takes ~150 MB), then crops of ``--crop-tokens`` tokens are drawn at random. Loop conventions
are those of ``tokenizer/train.py``: accelerate state every ``--save-every`` steps, resume after a kill,
``log.jsonl``, ``final`` at the end and ``--export`` in fp16."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from accelerate.utils import set_seed

from corpus.audio_io import read_audio
from tokenizer.checkpoint import from_pretrained
from tokenizer.data import TRACK_FILES, phones_at, read_phones
from tokenizer.decoder import TrackDecoder, get_decoder_config, load_decoder, save_decoder, with_config_updates
from tokenizer.tokenize_corpus import iter_records
from tokenizer.training import (
    TrainProgress,
    apply_update,
    export_final,
    log_step,
    make_accelerator,
    resume_latest,
    warmup_cosine,
)
from tokenizer.vocoder import LatentMel, get_vocoder_config
from tokenizer.word_context import SungWord, WordContext, word_starts

STEM_FOR_TRACK = {"vocal": "vocals", "accomp": "accompaniment"}


class CropBatch(NamedTuple):
    indices: torch.Tensor  # [B, crop] token ids
    mel: torch.Tensor  # [B, crop·fpt, n_mels] target log-mel
    words: WordContext | None  # the crops' word context after use_words_of
    phone_labels: torch.Tensor | None  # [B, crop·fpt] festival phone sung at each frame, 0 where none
    vocal: torch.Tensor | None = None  # [B, crop] the vocal token ids of the same frames (accompaniment caches)

    def to(self, device: torch.device | str) -> CropBatch:
        words = None if self.words is None else WordContext(*(part.to(device) for part in self.words))
        labels = None if self.phone_labels is None else self.phone_labels.to(device)
        vocal = None if self.vocal is None else self.vocal.to(device)
        return CropBatch(self.indices.to(device), self.mel.to(device), words, labels, vocal)


class TrackCache:
    """Every song's token ids and target mel for one track, in memory: ``indices[i] [T_i]`` int16,
    ``mels[i] [2·T_i, n_mels]`` float16; for a lyric-aware vocal decoder also ``words[i]``, the sung words as
    ``SungWord``s (the token corpus's ``words`` column, with each word's timed phones where the corpus has them;
    empty for corpora tokenized before it), and ``phone_labels[i] [2·T_i]`` int8, the phone sung at each frame
    (from ``meta.json``; the alignment loss's targets); for the accompaniment also ``vocal[i] [T_i]`` int16, the
    vocal token ids of the same frames (read by a decoder with ``vocal_context``). Caches saved before words,
    phones, labels and vocal ids were kept load without them."""

    def __init__(self, indices: list[np.ndarray], mels: list[np.ndarray], ids: list[str],
                 words: list[list] | None = None, phone_labels: list[np.ndarray] | None = None,
                 vocal: list[np.ndarray] | None = None):
        if not indices:
            raise ValueError("the decoder cache is empty: no song of the token corpus was found in the song folder")
        self.indices, self.mels, self.ids = indices, mels, ids
        # words as SungWords, those starting past their song's tokens dropped (a corpus song can be a little
        # longer than the mel it was cut to)
        self.words = ([[word for word in word_starts(song) if word.start_frame < len(song_indices)]
                       for song, song_indices in zip(words, indices, strict=True)]
                      if words is not None else [[] for _ in ids])
        self.phone_labels = phone_labels
        self.vocal = vocal
        self._word_model: TrackDecoder | None = None  # set by use_words_of: crops then carry word contexts
        self._jitter = 0
        self._contexts: list[WordContext] | None = None  # exact starts' contexts, computed once

    @property
    def has_words(self) -> bool:
        return any(self.words)

    @property
    def has_phone_times(self) -> bool:
        return any(word.phones for song in self.words for word in song)

    @classmethod
    def build(cls, tokens_dir: str | Path, songs_dir: str | Path, track: str, frames_per_token: int = 2,
              limit: int | None = None) -> TrackCache:
        mel_config = get_vocoder_config("tiny")
        latent = LatentMel(mel_config)
        stem_file = TRACK_FILES[STEM_FOR_TRACK[track]]
        indices, mels, ids, words, labels, vocal, missing = [], [], [], [], [], [], []
        frame_seconds = mel_config.hop_length / mel_config.sample_rate
        for record in iter_records(tokens_dir):
            if limit is not None and len(ids) >= limit:
                break
            path = Path(songs_dir) / record["id"] / stem_file
            if not path.is_file():
                missing.append(record["id"])
                continue
            audio, _ = read_audio(path, sample_rate=24_000)
            with torch.no_grad():
                mel = latent(torch.from_numpy(audio))[0].numpy()
            n_tokens = min(len(record[track]), len(mel) // frames_per_token)
            indices.append(record[track][:n_tokens].astype(np.int16))
            if track == "accomp":
                vocal.append(record["vocal"][:n_tokens].astype(np.int16))
            mels.append(mel[: n_tokens * frames_per_token].astype(np.float16))
            ids.append(record["id"])
            words.append(record.get("words") or [])  # read and cut to the song by __init__
            labels.append(frame_phone_labels(path.parent / "meta.json", n_tokens * frames_per_token, frame_seconds))
        if missing:
            print(f"warning: {len(missing)} songs of {tokens_dir} have no {stem_file} under {songs_dir} "
                  f"(first: {missing[:3]})", file=sys.stderr)
        return cls(indices, mels, ids, words, labels, vocal if track == "accomp" else None)

    def save(self, path: Path) -> None:
        offsets = np.cumsum([0] + [len(i) for i in self.indices])
        word_offsets = np.cumsum([0] + [len(w) for w in self.words])
        flat_words = [word for song in self.words for word in song]
        phone_offsets = np.cumsum([0] + [len(word.phones) for word in flat_words])
        flat_phones = [phone for word in flat_words for phone in word.phones]
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez(tmp, indices=np.concatenate(self.indices), mels=np.concatenate(self.mels), offsets=offsets,
                 ids=np.array(self.ids), word_offsets=word_offsets,
                 word_frames=np.array([word.start_frame for word in flat_words], dtype=np.int32),
                 word_texts=np.array([word.text for word in flat_words], dtype=str),
                 phone_offsets=phone_offsets, phone_names=np.array([name for name, _ in flat_phones], dtype=str),
                 phone_frames=np.array([frame for _, frame in flat_phones], dtype=np.int32),
                 **({} if self.phone_labels is None else {"phone_labels": np.concatenate(self.phone_labels)}),
                 **({} if self.vocal is None else {"vocal": np.concatenate(self.vocal)}))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, frames_per_token: int = 2) -> TrackCache:
        # read each array once: every ``data[key]`` access decodes the whole array again
        with np.load(path) as data:
            all_indices, all_mels, offsets, ids = data["indices"], data["mels"], data["offsets"], data["ids"]
            words = None
            if "word_offsets" in data:  # caches saved before words were kept have none
                frames, texts = data["word_frames"].tolist(), data["word_texts"].tolist()
                phones = [()] * len(frames)  # caches saved before phones were kept: words without phone times
                if "phone_offsets" in data:
                    pairs = list(zip(data["phone_names"].tolist(), data["phone_frames"].tolist(), strict=True))
                    phones = [tuple(pairs[a:b]) for a, b in itertools.pairwise(data["phone_offsets"].tolist())]
                flat = [SungWord(*word) for word in zip(frames, texts, phones, strict=True)]
                words = [flat[a:b] for a, b in itertools.pairwise(data["word_offsets"].tolist())]
            all_labels = data.get("phone_labels")
            all_vocal = data.get("vocal")
        frames_of = [slice(a * frames_per_token, b * frames_per_token) for a, b in itertools.pairwise(offsets)]
        indices = [all_indices[a:b] for a, b in itertools.pairwise(offsets)]
        mels = [all_mels[frames] for frames in frames_of]
        labels = None if all_labels is None else [all_labels[frames] for frames in frames_of]
        vocal = None if all_vocal is None else [all_vocal[a:b] for a, b in itertools.pairwise(offsets)]
        return cls(indices, mels, [str(i) for i in ids], words, labels, vocal)

    def mel_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        frames = np.concatenate(self.mels).astype(np.float32)
        return torch.from_numpy(frames.mean(axis=0)), torch.from_numpy(frames.std(axis=0).clip(min=1e-3))

    def use_words_of(self, model: TrackDecoder, jitter: int = 0) -> None:
        """Give ``batch``'s crops ``model``'s word context. With exact starts every song's context is computed
        once; with ``jitter`` > 0 (training: ``DecoderConfig.word_jitter``) each crop's is computed from its song's
        word starts moved anew (``jitter_word_starts``)."""
        self._word_model, self._jitter = model, jitter
        self._contexts = None if jitter > 0 else [self._context(words, len(song)) for words, song in
                                                  zip(self.words, self.indices, strict=True)]

    def _context(self, words: list[SungWord], n_tokens: int) -> WordContext:
        return WordContext(*(t.cpu().numpy() for t in self._word_model.word_context(words, n_tokens)))

    def _song_context(self, song: int, generator: torch.Generator) -> WordContext:
        if self._contexts is not None:
            return self._contexts[song]
        n_tokens = len(self.indices[song])
        return self._context(jitter_word_starts(self.words[song], n_tokens, self._jitter, generator), n_tokens)

    def batch(self, batch_size: int, crop_tokens: int, generator: torch.Generator, frames_per_token: int = 2
              ) -> CropBatch:
        """Random crops (``CropBatch``); songs drawn in proportion to their length, so every second of the corpus
        is equally likely. ``words`` is the crops' ``WordContext`` (``phones [B, crop·fpt, P]``, the rest ``[B,
        crop·fpt]``) after ``use_words_of``, else None; ``phone_labels`` and ``vocal`` None for a cache without
        them. Songs shorter than the crop are skipped (the reference corpus has none)."""
        lengths = torch.tensor([len(i) for i in self.indices], dtype=torch.float64)
        weights = torch.where(lengths >= crop_tokens, lengths, torch.zeros_like(lengths))
        if weights.sum() == 0:
            raise ValueError(f"every song is shorter than the crop of {crop_tokens} tokens")
        songs = torch.multinomial(weights, batch_size, replacement=True, generator=generator).tolist()
        out_indices, out_mels, out_words, out_labels, out_vocal = [], [], [], [], []
        for song in songs:
            start = int(torch.randint(0, len(self.indices[song]) - crop_tokens + 1, (1,), generator=generator))
            out_indices.append(torch.from_numpy(self.indices[song][start: start + crop_tokens].astype(np.int64)))
            if self.vocal is not None:
                out_vocal.append(torch.from_numpy(self.vocal[song][start: start + crop_tokens].astype(np.int64)))
            frames = slice(start * frames_per_token, (start + crop_tokens) * frames_per_token)
            out_mels.append(torch.from_numpy(self.mels[song][frames].astype(np.float32)))
            if self._word_model is not None:
                out_words.append([torch.from_numpy(part[frames]) for part in self._song_context(song, generator)])
            if self.phone_labels is not None:
                out_labels.append(torch.from_numpy(self.phone_labels[song][frames].astype(np.int64)))
        words = (WordContext(*(torch.stack(parts) for parts in zip(*out_words, strict=True)))
                 if self._word_model is not None else None)
        labels = torch.stack(out_labels) if self.phone_labels is not None else None
        vocal = torch.stack(out_vocal) if self.vocal is not None else None
        return CropBatch(torch.stack(out_indices), torch.stack(out_mels), words, labels, vocal)


def jitter_word_starts(words: list[SungWord], n_tokens: int, max_shift: int, generator: torch.Generator
                       ) -> list[SungWord]:
    """The same words, in the same order, each start moved by a shift drawn from ``-bound..bound``, where
    ``bound`` is drawn once per call from ``0..max_shift`` (so some crops keep exact starts), then clipped to the
    song's ``n_tokens`` frames and sorted back into sung order. A word's timed phones move with its start (kept
    at or after it), as the LM's phone cues follow its word cue."""
    if max_shift <= 0 or not words:
        return list(words)
    bound = int(torch.randint(0, max_shift + 1, (1,), generator=generator))
    shifts = torch.randint(-bound, bound + 1, (len(words),), generator=generator).tolist()
    starts = sorted(min(max(word.start_frame + shift, 0), n_tokens - 1)
                    for word, shift in zip(words, shifts, strict=True))
    return [SungWord(start, word.text, tuple((name, max(frame + start - word.start_frame, start))
                                             for name, frame in word.phones))
            for start, word in zip(starts, words, strict=True)]


def frame_phone_labels(meta_path: Path, n_frames: int, frame_seconds: float) -> np.ndarray:
    """The festival phone id sung at the centre of each mel frame of a song, 0 where none (int8: 48 ids)."""
    meta = json.loads(meta_path.read_text())
    starts, ends, ids = read_phones(meta, meta_path, meta_path.parent.name)
    return phones_at(starts, ends, ids, (np.arange(n_frames) + 0.5) * frame_seconds).astype(np.int8)


def load_or_build_cache(path: Path, tokens: str, data: str, track: str, limit: int | None) -> TrackCache:
    if path.is_file():
        return TrackCache.load(path)
    started = time.time()
    cache = TrackCache.build(tokens, data, track, limit=limit)
    path.parent.mkdir(parents=True, exist_ok=True)
    cache.save(path)
    print(f"cached {len(cache.ids)} songs' {track} mels in {time.time() - started:.0f} s -> {path}", file=sys.stderr)
    return cache


@torch.no_grad()
def validation_losses(model: TrackDecoder, cache: TrackCache, crop_tokens: int, n_batches: int = 4,
                      batch_size: int = 8) -> dict[str, float]:
    """Mean losses on fixed random crops of a held-out cache (same crops every call: seed 0)."""
    model.eval()
    generator = torch.Generator().manual_seed(0)
    totals: dict[str, float] = {}
    device = next(model.parameters()).device
    for _ in range(n_batches):
        crops = cache.batch(batch_size, crop_tokens, generator).to(device)
        vocal = crops.vocal if model.context_in is not None else None
        for name, value in model.losses(crops.indices, crops.mel, generator, crops.words, crops.phone_labels,
                                        vocal).items():
            totals[name] = totals.get(name, 0.0) + float(value) / n_batches
    model.train()
    return {f"val_{name}": round(value, 4) for name, value in totals.items()}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tokenizer.decoder_train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--track", choices=("vocal", "accomp"), required=True)
    parser.add_argument("--config", default="tiny", help="tiny (CPU) or paper")
    parser.add_argument("--data", required=True, help="folder of song folders with vocals/accompaniment stems")
    parser.add_argument("--tokens", required=True, help="token corpus of the same songs (python -m tokenizer tokenize)")
    parser.add_argument("--tokenizer", default="checkpoints/duotok-tiny",
                        help="Duo-Tok folder whose codebook produced --tokens (its code table is copied in)")
    parser.add_argument("--init", help="fine-tune a trained decoder folder of the same track (its config replaces "
                                       "--config and the size overrides); the code table still comes from "
                                       "--tokenizer, so a decoder can follow a retrained tokenizer")
    parser.add_argument("--config-updates", type=json.loads, default=None,
                        help='JSON changes to the decoder config, mainly with --init, e.g. \'{"encoder_layers": 6}\' '
                             "(trained tensors the change leaves alone are kept; added transformer blocks start as "
                             "the identity)")
    parser.add_argument("--eval-data", help="held-out song folders (e.g. data/corpus/validation)")
    parser.add_argument("--eval-tokens", help="their token corpus (e.g. data/tokens/validation)")
    parser.add_argument("--run-dir", default="runs/duotok-tiny")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--crop-tokens", type=int, default=100, help="4 s at 25 Hz, the window decode uses")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--save-every", type=int, default=200)
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--limit-songs", type=int, help="use only the first N songs (tests, quick looks)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export", help="also write the final weights here in fp16 "
                                         "(e.g. checkpoints/duotok-tiny/decoder-vocal)")
    parser.add_argument("--mixed-precision", default="no", choices=("no", "bf16", "fp16"))
    sizes = parser.add_argument_group("size overrides of the --config (e.g. a narrow decoder for a quick test)")
    for name in ("dim", "ffn_dim", "n_heads", "conv_layers", "encoder_layers", "dit_layers"):
        sizes.add_argument(f"--{name.replace('_', '-')}", type=int)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stage_dir = Path(args.run_dir) / f"decoder-{args.track}"
    accelerator = make_accelerator(stage_dir, args.grad_accum, args.mixed_precision)
    set_seed(args.seed)
    with accelerator.main_process_first():  # one process builds the cache, the others read it
        cache = load_or_build_cache(stage_dir / "cache.npz", args.tokens, args.data, args.track, args.limit_songs)
        eval_cache = None
        if args.eval_data and args.eval_tokens:
            eval_cache = load_or_build_cache(stage_dir / "eval-cache.npz", args.eval_tokens, args.eval_data,
                                             args.track, None)

    # the code table (and so the decoder's input size) comes from the tokenizer that made the tokens
    tokenizer = from_pretrained(args.tokenizer)
    overrides = {"codebook_size": tokenizer.config.codebook_size, "code_dim": tokenizer.config.codebook_dim}
    for name in ("dim", "ffn_dim", "n_heads", "conv_layers", "encoder_layers", "dit_layers"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.init:
        model = load_decoder(args.init)
        if model.config.track != args.track:
            raise SystemExit(f"error: {args.init} is a {model.config.track} decoder, not {args.track}")
    else:
        model = TrackDecoder(get_decoder_config(args.config, args.track, **overrides))
    if args.config_updates:
        try:
            model = with_config_updates(model, args.config_updates)
        except ValueError as error:
            raise SystemExit(f"error: {error}") from error
    if (model.config.codebook_size, model.config.code_dim) != (overrides["codebook_size"], overrides["code_dim"]):
        size, dim = overrides["codebook_size"], overrides["code_dim"]
        raise SystemExit(f"error: {args.init or 'the decoder'} reads {model.config.codebook_size} codes of "
                         f"{model.config.code_dim} dimensions; {args.tokenizer} has {size} of {dim} (a larger "
                         f"codebook: --config-updates '{{\"codebook_size\": {size}}}')")
    branch = {"vocal": tokenizer.vocal_branch, "accomp": tokenizer.accomp_branch}[args.track]
    with torch.no_grad():
        model.code_table.copy_(branch.indices_to_codes(torch.arange(tokenizer.config.codebook_size)))
        if model.context_in is not None:  # an accompaniment decoder that reads the vocal tokens too
            model.context_code_table.copy_(
                tokenizer.vocal_branch.indices_to_codes(torch.arange(tokenizer.config.codebook_size)))
    if not args.init:  # a fine-tuned decoder keeps the standardisation its weights were trained in
        mean, std = cache.mel_stats()
        model.mel_mean.copy_(mean)
        model.mel_std.copy_(std)
    del tokenizer
    if model.words is not None:  # a lyric-aware decoder learns from the sung words of the token corpus
        for name, songs in (("--tokens", cache), ("--eval-tokens", eval_cache)):
            if songs is not None and not songs.has_words:
                raise SystemExit(f"error: the {name} cache holds no sung words, which a decoder with word_phones "
                                 f"reads: tokenize the corpus again (python -m tokenizer tokenize) and delete the "
                                 f"cache files under {stage_dir}")
            if songs is not None and model.config.phone_times and not songs.has_phone_times:
                raise SystemExit(f"error: the {name} cache holds no phone times, which a decoder with phone_times "
                                 f"reads: tokenize the corpus again (its words then carry their sung phones) and "
                                 f"delete the cache files under {stage_dir}")
            if songs is not None and model.config.word_phone_loss > 0 and songs.phone_labels is None:
                raise SystemExit(f"error: the {name} cache holds no phone labels, which the alignment loss "
                                 f"(word_phone_loss) needs: delete the cache files under {stage_dir} to rebuild them")
            if songs is not None:  # only training crops move the word starts; validation keeps them exact
                songs.use_words_of(model, model.config.word_jitter if songs is cache else 0)
    if model.context_in is not None:
        for name, songs in (("--tokens", cache), ("--eval-tokens", eval_cache)):
            if songs is not None and songs.vocal is None:
                raise SystemExit(f"error: the {name} cache holds no vocal token ids, which a decoder with "
                                 f"vocal_context reads: delete the cache files under {stage_dir} to rebuild them")

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(args.warmup, args.steps))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    progress = TrainProgress()
    accelerator.register_for_checkpointing(progress)
    resumed = resume_latest(accelerator, stage_dir / "state")
    if resumed is not None:
        accelerator.print(f"resumed decoder-{args.track} from {resumed} at step {progress.step}")

    unwrapped: TrackDecoder = accelerator.unwrap_model(model)
    log_path = stage_dir / "log.jsonl"
    started = time.time()
    while progress.step < args.steps:
        # seeded by step and rank: a resumed run draws new crops, and processes draw different ones
        generator = torch.Generator().manual_seed(
            args.seed + 1_000_003 * progress.step + accelerator.process_index)
        crops = cache.batch(args.batch_size, args.crop_tokens, generator).to(accelerator.device)
        with accelerator.accumulate(model):
            out = model(crops.indices, crops.mel, generator, crops.words, crops.phone_labels,
                        crops.vocal if unwrapped.context_in is not None else None)
            apply_update(accelerator, out["loss"], model.parameters(), optimizer, scheduler)
        progress.step += 1
        if eval_cache is not None and (progress.step % args.eval_every == 0 or progress.step == args.steps):
            out = {**out, **{k: torch.tensor(v) for k, v in validation_losses(unwrapped, eval_cache,
                                                                               args.crop_tokens).items()}}
        if progress.step % args.log_every == 0 or progress.step == args.steps or "val_loss" in out:
            log_step(accelerator, log_path, progress.step, started, scheduler.get_last_lr()[0], out)
        if progress.step % args.save_every == 0:
            accelerator.save_state()

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        metadata = {"stage": "decoder", "track": args.track, "steps": str(progress.step), "init": str(args.init or "")}
        export_final(accelerator, model, save_decoder, stage_dir, args.export, metadata)
    return 0


if __name__ == "__main__":
    sys.exit(main())
