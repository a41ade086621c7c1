"""Train (or evaluate) the stage-4 vocoder: 50 Hz log-mel → 24 kHz audio.

    python -m tokenizer.vocoder_train --data data/corpus/train --run-dir runs/duotok-tiny --steps 3000 \
        --batch-size 8 --crop-seconds 1.0 --export checkpoints/duotok-tiny/vocoder
    python -m tokenizer.vocoder_train --eval-only --checkpoint runs/duotok-tiny/vocoder/final \
        --data data/corpus/validation
    accelerate launch --multi_gpu --num_processes 8 -m tokenizer.vocoder_train --config paper ...   (GPUs)

The vocoder is trained on the true mels of crops of vocals, accompaniment and mixes (each item picks one
track), with the multi-resolution STFT and mel losses of ``tokenizer/vocoder.py``. ``--gan`` adds the
discriminators of ``tokenizer/vocoder_gan.py`` (off by default: the ``paper`` discriminators cost seconds per
step on a CPU, reference/libraries.md §2.9; meant for fine-tuning a trained vocoder on GPUs, ``--discriminator
tiny`` to try it here); a GAN run keeps its own folder, ``<run-dir>/vocoder-gan``, so it never resumes a state
saved without discriminators. Conventions are those of ``tokenizer/train.py``: accelerate state (models,
optimizers, schedulers, RNG, step) every ``--save-every`` steps under ``<run-dir>/vocoder/state``, resume from
the newest state after a kill, ``log.jsonl``, and ``<run-dir>/vocoder/final`` at the end (plus ``--export`` in
fp16; only the vocoder is exported)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from accelerate.utils import set_seed

from corpus.reader import find_song_folders
from tokenizer.data import TRACK_FILES, make_loader
from tokenizer.training import (
    TrainProgress,
    apply_update,
    export_final,
    log_step,
    make_accelerator,
    resume_latest,
    warmup_cosine,
)
from tokenizer.vocoder import (
    Vocoder,
    get_vocoder_config,
    griffin_lim,
    load_vocoder,
    multiscale_mel_l1,
    save_pretrained,
    with_config_updates,
)
from tokenizer.vocoder_gan import (
    DiscriminatorConfig,
    VocoderDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    get_discriminator_config,
    split_batch,
)

# Share of training items per track: stems are what the decoder produces, mixes keep it general.
TRACK_PROBS = {"vocals": 0.4, "accompaniment": 0.4, "mix": 0.2}
EVAL_STEMS = ("vocals", "accompaniment")


def choose_tracks(batch: dict, generator: torch.Generator, max_gain_db: float) -> torch.Tensor:
    """One track per item (vocals / accompaniment / mix by ``TRACK_PROBS``), with a random gain of
    0 … −``max_gain_db`` dB so the vocoder does not learn one loudness only."""
    names = list(TRACK_PROBS)
    pick = torch.multinomial(torch.tensor(list(TRACK_PROBS.values())), batch["mix"].shape[0], replacement=True,
                             generator=generator)
    audio = torch.stack([batch[names[int(k)]][row] for row, k in enumerate(pick)])
    # drawn on the CPU generator (the same draws on every device), then moved to the batch's device (the GPU)
    gain_db = (-max_gain_db * torch.rand(audio.shape[0], 1, generator=generator)).to(audio.device)
    return audio * 10 ** (gain_db / 20)


def _loudest_window(audio: np.ndarray, window: int, step: int) -> int:
    """Start of the ``window``-sample span with the most energy (starts on a ``step`` grid)."""
    if len(audio) <= window:
        return 0
    energy = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    starts = np.arange(0, len(audio) - window + 1, step)
    return int(starts[np.argmax(energy[starts + window] - energy[starts])])


@torch.no_grad()
def evaluate_vocoder(vocoder: Vocoder, data_dir: str | Path, n_songs: int = 8, crop_seconds: float = 4.0,
                     gl_iters: int = 32) -> dict:
    """Multi-scale mel L1 (duotok.md §5.2) of audio vocoded from the true mel against the original, per
    stem, next to the Griffin-Lim baseline from the same mel. The crops are fixed: for each of the first
    ``n_songs`` songs (sorted), the ``crop_seconds`` span where the vocals are loudest (on a 1 s grid), so
    the vocals are sung there and both stems are measured on the same span. Returns
    ``{stem: {"vocoder": …, "griffin_lim": …}, "n_songs": …}`` (means over songs)."""
    config = vocoder.config
    vocoder = vocoder.eval()
    device = next(vocoder.parameters()).device
    window = int(crop_seconds * config.sample_rate) // config.hop_length * config.hop_length
    folders = [f for f in find_song_folders(Path(data_dir))
               if all((f / TRACK_FILES[s]).is_file() for s in EVAL_STEMS)][:n_songs]
    if not folders:
        raise ValueError(f"no song folders with {', '.join(TRACK_FILES[s] for s in EVAL_STEMS)} under {data_dir}")
    scores: dict[str, dict[str, list[float]]] = {s: {"vocoder": [], "griffin_lim": []} for s in EVAL_STEMS}
    for folder in folders:
        tracks = {}
        for stem in EVAL_STEMS:
            samples, rate = sf.read(str(folder / TRACK_FILES[stem]), dtype="float32", always_2d=True)
            if rate != config.sample_rate:
                raise ValueError(f"{folder / TRACK_FILES[stem]} is {rate} Hz, the vocoder is {config.sample_rate} Hz")
            tracks[stem] = samples.mean(axis=1)
        start = _loudest_window(tracks["vocals"], window, config.sample_rate)
        for stem in EVAL_STEMS:
            crop = tracks[stem][start: start + window]
            crop = crop[: len(crop) // config.hop_length * config.hop_length]
            audio = torch.from_numpy(np.ascontiguousarray(crop))[None].to(device)
            mel = vocoder.latent(audio)
            scores[stem]["vocoder"].append(multiscale_mel_l1(audio, vocoder(mel), config.sample_rate))
            scores[stem]["griffin_lim"].append(
                multiscale_mel_l1(audio, griffin_lim(mel, config, n_iter=gl_iters), config.sample_rate))
    result: dict = {stem: {k: round(float(np.mean(v)), 4) for k, v in by.items()} for stem, by in scores.items()}
    result["n_songs"] = len(folders)
    result["crop_seconds"] = window / config.sample_rate
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tokenizer.vocoder_train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="tiny", help="tiny (CPU) or paper")
    parser.add_argument("--init", help="fine-tune a trained vocoder folder (its config replaces --config), e.g. "
                                       "checkpoints/duotok-tiny/vocoder; a resumed run ignores it")
    parser.add_argument("--config-updates", type=json.loads, default=None,
                        help='JSON changes to the config, e.g. \'{"head_n_fft": 960, "head_hop": 240}\'; with --init, '
                             "the trained tensors the change leaves in shape are kept, the rest start fresh")
    parser.add_argument("--data", required=True, help="folder of song folders (training, or evaluation with "
                                                      "--eval-only)")
    parser.add_argument("--run-dir", default="runs/duotok-tiny")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop-seconds", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--max-gain-db", type=float, default=6.0, help="random attenuation of training crops")
    parser.add_argument("--save-every", type=int, default=200)
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export", help="also write the final weights here in fp16 "
                                         "(e.g. checkpoints/duotok-tiny/vocoder)")
    parser.add_argument("--mixed-precision", default="no", choices=("no", "bf16", "fp16"))
    parser.add_argument("--gan", action="store_true",
                        help="add the adversarial and feature-matching losses of tokenizer/vocoder_gan.py "
                             "(a GPU stage; run dir <run-dir>/vocoder-gan)")
    parser.add_argument("--discriminator", default="tiny", help="discriminator sizes with --gan: tiny or paper")
    parser.add_argument("--discriminator-updates", type=json.loads, default=None,
                        help='JSON changes to the discriminator config, e.g. \'{"adversarial_weight": 0.1}\'')
    parser.add_argument("--discriminator-lr", type=float, default=None, help="default: --lr")
    parser.add_argument("--eval-data", help="after training, evaluate on this split (e.g. data/corpus/validation)")
    parser.add_argument("--eval-only", action="store_true", help="evaluate --checkpoint on --data and exit")
    parser.add_argument("--checkpoint", help="vocoder folder to evaluate with --eval-only")
    parser.add_argument("--eval-songs", type=int, default=8)
    parser.add_argument("--eval-seconds", type=float, default=4.0)
    return parser.parse_args(argv)


def run_eval(vocoder: Vocoder, args: argparse.Namespace, data: str, out: Path | None) -> dict:
    result = evaluate_vocoder(vocoder, data, n_songs=args.eval_songs, crop_seconds=args.eval_seconds)
    print(json.dumps(result))
    if out is not None:
        from corpus.audio_io import atomic_write_json

        atomic_write_json(out, result)
    return result


@dataclass
class GanParts:
    """The discriminators, their optimizer and schedule (prepared by the accelerator) and their config."""
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    config: DiscriminatorConfig


def make_gan(args: argparse.Namespace, accelerator) -> GanParts:
    try:
        config = get_discriminator_config(args.discriminator)
        if args.discriminator_updates:
            config = config.with_updates(args.discriminator_updates)
    except (ValueError, TypeError) as error:
        raise SystemExit(f"error: invalid discriminator settings ({error})") from error
    model = VocoderDiscriminator(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.discriminator_lr or args.lr, betas=(0.8, 0.99),
                                  weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(args.warmup, args.steps))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    return GanParts(model, optimizer, scheduler, config)


def gan_step(accelerator, model, unwrapped: Vocoder, optimizer, scheduler, gan: GanParts,
             audio: torch.Tensor) -> dict[str, torch.Tensor]:
    """One GAN training step: first the discriminators on originals against the vocoder's current audio (one
    forward over both, through the distributed wrapper), then the vocoder on its reconstruction losses plus the
    weighted adversarial and feature-matching losses. The vocoder's step reads the discriminators through the
    unwrapped module with their weights frozen: their gradients there would be thrown away, and a distributed
    wrapper would wait for them. Feature matching compares with the originals' activations from the
    discriminators' forward just before their update (detached), which saves a third forward per step."""
    estimate = model(unwrapped.latent(audio))
    batch = audio.shape[0]
    real, fake = split_batch(gan.model(torch.cat([audio, estimate.detach()])), batch)
    d_loss = discriminator_loss(real, fake)
    apply_update(accelerator, d_loss, gan.model.parameters(), gan.optimizer, gan.scheduler)

    discriminators = accelerator.unwrap_model(gan.model)
    discriminators.requires_grad_(False)
    try:
        judged = discriminators(estimate)
        out = unwrapped.compute_losses(audio, estimate)
        out["adversarial"] = generator_adversarial_loss(judged)
        out["feature_matching"] = feature_matching_loss(real, judged)
        out["reconstruction"] = out["loss"]
        out["loss"] = (out["loss"] + gan.config.adversarial_weight * out["adversarial"]
                       + gan.config.feature_matching_weight * out["feature_matching"])
        apply_update(accelerator, out["loss"], model.parameters(), optimizer, scheduler)
    finally:
        discriminators.requires_grad_(True)
    out["discriminator"] = d_loss.detach()
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.eval_only:
        if not args.checkpoint:
            raise SystemExit("error: --eval-only needs --checkpoint DIR (a folder written by save_pretrained)")
        run_eval(load_vocoder(args.checkpoint), args, args.data, None)
        return 0

    stage_dir = Path(args.run_dir) / ("vocoder-gan" if args.gan else "vocoder")
    accelerator = make_accelerator(stage_dir, args.grad_accum, args.mixed_precision)
    set_seed(args.seed)
    loader = make_loader(args.data, args.batch_size, args.crop_seconds, seed=args.seed, shuffle=True,
                         num_workers=args.num_workers)
    # Fine-tuning starts from the trained weights in fp32 (a shipped fp16 export is widened on load); the optimizer
    # and schedule start fresh, so --lr and --warmup set the fine-tuning schedule.
    try:
        if args.init:
            model = load_vocoder(args.init)
            if args.config_updates:
                model = with_config_updates(model, args.config_updates)
        else:
            config = get_vocoder_config(args.config)
            model = Vocoder(config.with_updates(args.config_updates) if args.config_updates else config)
    except (ValueError, TypeError) as error:
        raise SystemExit(f"error: invalid --config-updates {args.config_updates} ({error})") from error
    model = model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.8, 0.99), weight_decay=0.01)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(args.warmup, args.steps))
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    gan = make_gan(args, accelerator) if args.gan else None
    progress = TrainProgress()
    accelerator.register_for_checkpointing(progress)
    resumed = resume_latest(accelerator, stage_dir / "state")
    if resumed is not None:
        accelerator.print(f"resumed vocoder from {resumed} at step {progress.step}")

    # seeded by the step, so a resumed run does not replay the track choices of the steps it already did
    generator = torch.Generator().manual_seed(args.seed + progress.step)
    unwrapped: Vocoder = accelerator.unwrap_model(model)
    hop = unwrapped.config.hop_length
    log_path = stage_dir / "log.jsonl"
    stage_dir.mkdir(parents=True, exist_ok=True)
    started, epoch = time.time(), progress.step // max(1, len(loader))
    while progress.step < args.steps:
        loader.dataset.set_epoch(epoch)
        for batch in loader:
            if progress.step >= args.steps:
                break
            audio = choose_tracks(batch, generator, args.max_gain_db).to(accelerator.device)
            audio = audio[..., : audio.shape[-1] // hop * hop]
            if gan is None:
                with accelerator.accumulate(model):
                    out = unwrapped.compute_losses(audio, model(unwrapped.latent(audio)))
                    apply_update(accelerator, out["loss"], model.parameters(), optimizer, scheduler)
            else:
                with accelerator.accumulate(model, gan.model):
                    out = gan_step(accelerator, model, unwrapped, optimizer, scheduler, gan, audio)
            progress.step += 1
            if progress.step % args.log_every == 0 or progress.step == args.steps:
                log_step(accelerator, log_path, progress.step, started, scheduler.get_last_lr()[0], out)
            if progress.step % args.save_every == 0:
                accelerator.save_state()
        epoch += 1

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        metadata = {"stage": "vocoder", "steps": str(progress.step), "init": str(args.init or "")}
        if gan is not None:
            metadata["discriminator"] = json.dumps(gan.config.to_dict())
        final = export_final(accelerator, model, save_pretrained, stage_dir, args.export, metadata)
        if args.eval_data:
            run_eval(final, args, args.eval_data, stage_dir / "eval.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
