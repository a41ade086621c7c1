"""Train one Duo-Tok encoder stage.

    python -m tokenizer.train --stage ssl       --data data/corpus/train --steps 1500
    python -m tokenizer.train --stage multitask --data data/corpus/train --steps 1500
    python -m tokenizer.train --stage codebook  --data data/corpus/train --steps 1500 --export checkpoints/duotok-tiny
    accelerate launch --multi_gpu --num_processes 8 -m tokenizer.train --stage ssl --config paper ...   (GPUs)
    torchrun --nproc_per_node 2 -m tokenizer.train ...                                                 (2 CPU procs)
    python -m tokenizer.train --stage vocoder --data data/corpus/train --steps 3000   (tokenizer/vocoder_train.py)
    python -m tokenizer.train --stage decoder --track vocal --data data/corpus/train --tokens data/tokens/train
                                                                                      (tokenizer/decoder_train.py)

Each stage starts from the previous stage's final weights (``<run-dir>/<previous>/final``), saves its
training state (model, optimizer, scheduler, RNG, step) every ``--save-every`` steps through accelerate, and
resumes from the newest state after a kill. At the end it writes ``<run-dir>/<stage>/final`` with
``save_pretrained`` and, with ``--export``, the same folder in fp16 for shipping."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from tokenizer.checkpoint import from_pretrained, save_pretrained
from tokenizer.config import get_config
from tokenizer.data import estimate_mel_stats, make_loader
from tokenizer.model import DuoTokModel
from tokenizer.training import (
    TrainProgress,
    apply_update,
    export_final,
    log_step,
    make_accelerator,
    resume_latest,
    warmup_cosine,
)

STAGES = ("ssl", "multitask", "codebook")
PREVIOUS = {"multitask": "ssl", "codebook": "multitask"}
STAGE4_ENTRIES = {"vocoder": "tokenizer.vocoder_train", "decoder": "tokenizer.decoder_train"}


def choose_inputs(batch: dict, generator: torch.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stages 1-2 see mixes half of the time and single tracks otherwise, so the encoder works on both
    (stage 3 feeds it isolated stems). Returns the inputs, the stems they contain, the phone lengths and the
    frame-wise phone and pitch labels (zero where the input has no vocals)."""
    b = batch["mix"].shape[0]
    pick = torch.randint(0, 4, (b,), generator=generator)  # 0,1: mix, 2: vocals, 3: accompaniment
    stems = batch["stems"].clone()
    inputs = batch["mix"].clone()
    vocal_only, accomp_only = pick == 2, pick == 3
    inputs[vocal_only] = batch["vocals"][vocal_only]
    inputs[accomp_only] = batch["accompaniment"][accomp_only]
    stems[vocal_only, 1:] = 0
    stems[accomp_only, 0] = 0
    lengths = batch["phone_lengths"].clone()
    lengths[accomp_only] = 0
    frames = batch["phone_frames"].clone()
    frames[accomp_only] = 0
    pitches = batch["pitch_frames"].clone()
    pitches[accomp_only] = 0
    return inputs, stems, lengths, frames, pitches


def frozen_lower_layers(step: int, total: int, n_layers: int) -> int:
    """Progressive freezing in stage 2: over the first half of training the conv front and the lower
    layers freeze bottom-up, one at a time, so the top of the lower stack adapts longest to the heads."""
    progress = min(1.0, step / max(1, total // 2))
    return int(progress * (n_layers + 1))


def apply_freezing(model: DuoTokModel, n_frozen: int) -> None:
    modules = [model.subsample, *model.lower.layers]
    for index, module in enumerate(modules):
        for parameter in module.parameters():
            parameter.requires_grad_(index >= n_frozen)


def run_step(model, stage: str, batch: dict, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """One stage forward through ``model(...)`` (the accelerate-wrapped module, so DDP syncs gradients)."""
    if stage == "ssl":
        inputs, *_ = choose_inputs(batch, generator)
        return model("ssl", audio=inputs)
    if stage == "multitask":
        inputs, stems, lengths, frames, pitches = choose_inputs(batch, generator)
        return model("multitask", inputs=inputs, stems=stems, phones=batch["phones"], phone_lengths=lengths,
                     phone_frames=frames, pitch_frames=pitches)
    return model("codebook", vocals=batch["vocals"], accompaniment=batch["accompaniment"], phones=batch["phones"],
                 phone_lengths=batch["phone_lengths"], phone_frames=batch["phone_frames"],
                 pitch_frames=batch["pitch_frames"])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tokenizer.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=(*STAGES, *STAGE4_ENTRIES), required=True)
    parser.add_argument("--config", default="tiny", help="tiny (CPU) or paper")
    parser.add_argument("--data", required=True, help="folder of song folders with stems, lyrics and meta.json")
    parser.add_argument("--run-dir", default="runs/duotok-tiny")
    parser.add_argument("--init", help="weights to start from (default: the previous stage's final folder)")
    parser.add_argument("--continue-codebook", action="store_true",
                        help="stage codebook only: --init is already a stage-3 model (e.g. checkpoints/duotok-tiny); "
                             "train its quantized path on instead of starting it afresh from the stage-2 path")
    parser.add_argument("--config-updates", type=json.loads, default=None, metavar="JSON",
                        help='change the starting checkpoint\'s config, e.g. \'{"n_pitch_classes": 49, '
                             '"loss_weights": {"frame_pitch": 1.0}}\' (added heads start fresh)')
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop-seconds", type=float, default=4.0)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--save-every", type=int, default=200)
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export", help="also write the final weights here in fp16 (e.g. checkpoints/duotok-tiny)")
    parser.add_argument("--mixed-precision", default="no", choices=("no", "bf16", "fp16"))
    args = parser.parse_args(argv)
    if args.continue_codebook and (args.stage != "codebook" or not args.init):
        raise SystemExit("error: --continue-codebook needs --stage codebook and --init (a trained stage-3 folder)")
    return args


def build_model(args: argparse.Namespace, accelerator: Accelerator, loader) -> DuoTokModel:
    init = Path(args.init) if args.init else (
        Path(args.run_dir) / PREVIOUS[args.stage] / "final" if args.stage in PREVIOUS else None)
    if init is not None:
        if not (init / "model.safetensors").exists():
            raise SystemExit(f"error: stage {args.stage} starts from {init}, which does not exist; train stage "
                             f"{PREVIOUS.get(args.stage, '?')} first or pass --init")
        model = from_pretrained(init, config_updates=args.config_updates).train()
        if model.config.name != args.config:
            raise SystemExit(f"error: {init} is a {model.config.name!r} model, not {args.config!r}")
    else:
        config = get_config(args.config)
        model = DuoTokModel(config.with_updates(args.config_updates) if args.config_updates else config)
        with accelerator.main_process_first():  # the same statistics on every process
            mean, std = estimate_mel_stats(loader.dataset, model.frontend)
        model.mel_mean.copy_(mean)
        model.mel_std.copy_(std)
    if args.stage == "codebook" and init is not None and not args.continue_codebook:
        model.init_codebook_stage()  # (a resumed run then overwrites everything from its saved state)
    return model


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    at = argv.index("--stage") if "--stage" in argv[:-1] else None
    if at is not None and argv[at + 1] in STAGE4_ENTRIES:
        # stage 4 trains other networks (vocoder on audio, decoders on tokens + mels) with their own loops:
        # same entry point, their own modules
        import importlib

        stage_main = importlib.import_module(STAGE4_ENTRIES[argv[at + 1]]).main
        return stage_main(argv[:at] + argv[at + 2:])
    args = parse_args(argv)
    stage_dir = Path(args.run_dir) / args.stage
    accelerator = make_accelerator(stage_dir, args.grad_accum, args.mixed_precision)
    set_seed(args.seed)
    loader = make_loader(args.data, args.batch_size, args.crop_seconds, seed=args.seed, shuffle=True)
    model = build_model(args, accelerator, loader)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    trainable = model.stage_parameters(args.stage)
    for parameter in trainable:
        parameter.requires_grad_(True)
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(args.warmup, args.steps))
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    progress = TrainProgress()
    accelerator.register_for_checkpointing(progress)
    resumed = resume_latest(accelerator, stage_dir / "state")
    if resumed is not None:
        accelerator.print(f"resumed {args.stage} from {resumed} at step {progress.step}")

    generator = torch.Generator().manual_seed(args.seed + progress.step)
    unwrapped: DuoTokModel = accelerator.unwrap_model(model)
    log_path = stage_dir / "log.jsonl"
    stage_dir.mkdir(parents=True, exist_ok=True)
    started, epoch = time.time(), progress.step // max(1, len(loader))
    while progress.step < args.steps:
        loader.dataset.set_epoch(epoch)
        for batch in loader:
            if progress.step >= args.steps:
                break
            if args.stage == "multitask":
                apply_freezing(unwrapped, frozen_lower_layers(progress.step, args.steps, len(unwrapped.lower.layers)))
            with accelerator.accumulate(model):
                out = run_step(model, args.stage, batch, generator)
                apply_update(accelerator, out["loss"], [p for p in trainable if p.requires_grad], optimizer, scheduler)
            progress.step += 1
            if progress.step % args.log_every == 0 or progress.step == args.steps:
                log_step(accelerator, log_path, progress.step, started, scheduler.get_last_lr()[0], out)
            if progress.step % args.save_every == 0:
                accelerator.save_state()
        epoch += 1

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        metadata = {"stage": args.stage, "steps": str(progress.step)}
        export_final(accelerator, model, save_pretrained, stage_dir, args.export, metadata)
    return 0


if __name__ == "__main__":
    sys.exit(main())
