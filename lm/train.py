"""Train the song LM on a token corpus.

    python -m lm.train --data data/tokens/train --val-data data/tokens/val --config tiny --run-dir runs/lm-tiny \\
        --steps 300 --batch-size 4 --max-len 1024 --export checkpoints/lm-tiny
    accelerate launch --multi_gpu --num_processes 8 -m lm.train --data … --config base --mixed-precision bf16 …
    torchrun --nproc_per_node 2 -m lm.train --data …                                        (2 CPU processes)

Text model: ``--text-model PATH`` uses an existing sentencepiece model; otherwise the first run trains one on
the style prompts and lyrics of ``--data`` and keeps it as ``<run-dir>/spm.model`` (later runs and resumed
runs reuse it, so the text ids never change under a half-trained model). The vocabulary is then
``Vocabulary(n_text=pieces, codebook sizes from the shards' info.json)``. ``--lyric-phonemes`` trains that text
model with each lyric word's phones after it (``lm/phonemes.py``); the phone symbols in ``spm.model`` then make
every later encoder of lyrics (training data, evaluation, generation, the app) add the phones the same way.

``--init-from DIR`` starts from a saved SongLM (its config, text model and weights) instead of random weights,
e.g. to fine-tune the shipped LM; ``--word-cues`` trains the layout's word cues (``lm.layout``: ``<word>
word-text`` before the frame each sung word starts in), from the token corpus's ``words`` column, and marks the
saved model so that generation places them too; ``--phone-cues`` adds a cue for each sung phone after its
word's cue, from the words' ``phones``.

Training state (model, optimizer, RNG, the step counter) is saved through accelerate every ``--save-every``
optimizer steps and at the end, in ``<run-dir>/state``; a run started again with the same ``--run-dir``
resumes from the newest state, including the position inside the epoch. ``--steps`` counts optimizer
updates (each ``--grad-accum`` micro-batches). ``<run-dir>/log.jsonl`` gets a line per ``--log-every`` steps
and one per evaluation: validation loss overall and per track, i.e. on the positions whose target is a
vocal code, an accompaniment code, lyric/style text, or a layout marker. The end writes
``<run-dir>/final`` (and ``--export``) with ``SongLM.save_pretrained``.

Each evaluation that lowers the overall validation loss below every earlier one of the run (resumed parts
included) also writes the model to ``<run-dir>/best`` and its step and losses to ``<run-dir>/best.json``.
A small corpus is overfitted within a pass or two (validation loss turns up while training loss keeps
falling), so ``--export-best`` makes ``--export`` the best-validation weights instead of the last ones.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed

from corpus.audio_io import atomic_write_json
from lm.data import IGNORE_INDEX, TokenDataError, corpus_texts, make_loader, read_corpus_info
from lm.layout import LayoutError, Vocabulary
from lm.model import LM_CONFIGS, CheckpointError, LMConfig, SongLM
from lm.text import DEFAULT_VOCAB_SIZE, TextTokenizer, TextTokenizerError, train_text_tokenizer

TRACKS = ("vocal", "accomp", "text", "markers")


class TrainProgress:
    """Optimizer steps and micro-batches done, and the lowest validation loss so far, saved with accelerate's
    state so a resumed run continues at the same step, the same place in its epoch, and the same best."""

    def __init__(self):
        self.step = 0
        self.batches = 0
        self.best_val_loss = math.inf

    def state_dict(self) -> dict:
        return {"step": self.step, "batches": self.batches, "best_val_loss": self.best_val_loss}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.batches = int(state["step"]), int(state["batches"])
        # states saved before the best was tracked have none: the next evaluation becomes the best
        self.best_val_loss = float(state.get("best_val_loss", math.inf))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lm.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="token corpus folder (shard-*.parquet + info.json)")
    parser.add_argument("--val-data", help="separate validation token folder (default: a hash split of --data)")
    parser.add_argument("--val-fraction", type=float, default=0.05, help="hash split share when no --val-data")
    parser.add_argument("--config", default="tiny", choices=sorted(LM_CONFIGS))
    parser.add_argument("--run-dir", default="runs/lm-tiny")
    parser.add_argument("--text-model", help="existing sentencepiece model (default: train one into --run-dir)")
    parser.add_argument("--text-vocab-size", type=int, default=DEFAULT_VOCAB_SIZE)
    parser.add_argument("--lyric-phonemes", action="store_true",
                        help="train the text model with each lyric word's CMUdict phones after it (lm/phonemes.py); "
                             "only when the run trains its text model (no --text-model, no spm.model yet)")
    parser.add_argument("--word-cues", action="store_true",
                        help="put a <word> cue before each sung word's first frame (needs the token corpus's "
                             "word times; lm.layout) so the model keeps its place in the lyrics")
    parser.add_argument("--phone-cues", action="store_true",
                        help="with --word-cues: after each word's cue, cue each of its sung phones at the frame "
                             "it starts in (needs the token corpus's phone times; lm.layout)")
    parser.add_argument("--init-from", help="start from this saved SongLM's weights (its config and text model; "
                                            "e.g. checkpoints/lm-tiny) instead of random ones")
    parser.add_argument("--steps", type=int, default=300, help="optimizer updates")
    parser.add_argument("--batch-size", type=int, default=4, help="windows per micro-batch and process")
    parser.add_argument("--max-len", type=int, default=1024, help="tokens per window")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--save-every", type=int, default=100)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--eval-batches", type=int, default=50, help="validation batches per evaluation")
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--export", help="also write the final checkpoint here (e.g. checkpoints/lm-tiny)")
    parser.add_argument("--export-best", action="store_true",
                        help="--export gets the weights of the evaluation with the lowest validation loss "
                             "(<run-dir>/best) instead of the last step's")
    parser.add_argument("--mixed-precision", default="no", choices=("no", "bf16", "fp16"))
    parser.add_argument("--export-dtype", default="float32", choices=("float32", "float16"),
                        help="storage type of the final checkpoint's weights (float16 halves the file; loading "
                             "casts back to float32)")
    args = parser.parse_args(argv)
    for name in ("steps", "batch_size", "max_len", "grad_accum", "save_every", "log_every", "eval_batches"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not 0.0 <= args.val_fraction < 1.0:
        parser.error("--val-fraction must be in [0, 1)")
    return args


def load_text_model(args: argparse.Namespace, accelerator: Accelerator) -> TextTokenizer:
    if args.text_model:
        return TextTokenizer.load(args.text_model)
    path = Path(args.run_dir) / "spm.model"
    with accelerator.main_process_first():  # one process trains it, the others then load the same file
        if not path.exists():
            accelerator.print(f"training the text tokenizer on {args.data} -> {path}")
            train_text_tokenizer(corpus_texts(args.data, phonemes=args.lyric_phonemes), path,
                                 vocab_size=args.text_vocab_size, phonemes=args.lyric_phonemes)
        text = TextTokenizer.load(path)
    if text.phonemes != args.lyric_phonemes:
        raise TextTokenizerError(f"{path} was trained {'with' if text.phonemes else 'without'} lyric phonemes; "
                                 f"{'drop' if text.phonemes else 'add'} --lyric-phonemes or use another --run-dir")
    return text


def check_run_identity(run_dir: Path, identity: dict, accelerator: Accelerator) -> None:
    """Refuse to resume a run made with another model config or vocabulary: its saved state would not fit."""
    path = run_dir / "run_config.json"
    if path.exists():
        saved = json.loads(path.read_text())
        if saved != identity:
            raise SystemExit(f"error: {run_dir} holds a run with {saved}, not {identity}; use another --run-dir")
    elif accelerator.is_main_process:
        atomic_write_json(path, identity)


def learning_rate(step: int, args: argparse.Namespace) -> float:
    """Linear warm-up, then cosine decay to 10% (computed from the step, so resuming needs no scheduler state)."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def track_of_targets(targets: torch.Tensor, vocab: Vocabulary) -> dict[str, torch.Tensor]:
    """Boolean masks over target positions: which track each next token belongs to (padding in none)."""
    valid = targets != IGNORE_INDEX
    return {"vocal": valid & (targets >= vocab.vocal_start) & (targets < vocab.accomp_start),
            "accomp": valid & (targets >= vocab.accomp_start),
            "text": valid & (targets >= vocab.text_start) & (targets < vocab.vocal_start),
            "markers": valid & (targets >= 0) & (targets < vocab.text_start)}


@torch.no_grad()
def evaluate(model, loader, vocab: Vocabulary, accelerator: Accelerator, max_batches: int) -> dict[str, float]:
    """Mean next-token loss (nats) over the validation windows, overall and per track."""
    model.eval()
    sums = torch.zeros(len(TRACKS) + 1, dtype=torch.float64, device=accelerator.device)
    counts = torch.zeros_like(sums)
    for index, batch in enumerate(loader):
        if index >= max_batches:
            break
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        targets = batch["labels"][:, 1:]
        losses = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), targets, ignore_index=IGNORE_INDEX,
                                 reduction="none")
        masks = track_of_targets(targets, vocab)
        for slot, mask in enumerate([targets != IGNORE_INDEX, *(masks[name] for name in TRACKS)]):
            sums[slot] += losses[mask].double().sum()
            counts[slot] += mask.sum()
    model.train()
    sums, counts = accelerator.reduce(sums, "sum"), accelerator.reduce(counts, "sum")
    result = {"val_tokens": int(counts[0])}
    for slot, name in enumerate(("all", *TRACKS)):
        key = "val_loss" if name == "all" else f"val_{name}"
        result[key] = round(float(sums[slot] / counts[slot]), 4) if counts[slot] > 0 else None
    return result


def load_initial_model(args: argparse.Namespace, info: dict) -> SongLM | None:
    """The saved SongLM that ``--init-from`` names (None without it), checked against the data's codebooks."""
    if not args.init_from:
        return None
    if args.text_model:
        raise SystemExit("error: --init-from brings its own text model; drop --text-model")
    try:
        initial = SongLM.from_pretrained(args.init_from)
    except (CheckpointError, LayoutError, TextTokenizerError, OSError, ValueError) as error:
        raise SystemExit(f"error: --init-from {args.init_from}: {error}") from None
    sizes = (initial.vocab.codebook_size_vocal, initial.vocab.codebook_size_accomp)
    if sizes != (info["codebook_size"], info["codebook_size"]):
        raise SystemExit(f"error: --init-from {args.init_from} has {sizes[0]} / {sizes[1]} codes per track but "
                         f"{args.data} was tokenized with {info['codebook_size']}")
    return initial


def song_has_phone_cues(song, text: TextTokenizer) -> bool:
    return any(text.is_phone_cue(cue.text_ids) for section in song.sections for cue in section.cues)


def build_loaders(args: argparse.Namespace, text: TextTokenizer, vocab: Vocabulary, config: LMConfig):
    """(train loader, validation loader or None)."""
    common = {"vocab": vocab, "val_fraction": args.val_fraction, "num_workers": args.num_workers,
              "word_cues": config.word_cues, "phone_cues": config.phone_cues}
    train_split = "all" if args.val_data else "train"
    train = make_loader(args.data, text, args.batch_size, args.max_len, args.seed, train_split,
                        cond_dropout=config.cond_dropout, **common)
    try:
        val = make_loader(args.val_data or args.data, text, args.batch_size, args.max_len, args.seed,
                          "all" if args.val_data else "val", **common)
    except TokenDataError as error:
        if args.val_data:
            raise
        print(f"note: no validation songs in the hash split of {args.data} ({error}); pass --val-data",
              file=sys.stderr)
        val = None
    return train, val


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.export_best and not args.export:  # an argument check: before any corpus or model is read
        raise SystemExit("error: --export-best says which weights --export gets; add --export DIR")
    run_dir = Path(args.run_dir)
    try:
        info = read_corpus_info(args.data)
        if args.val_data and read_corpus_info(args.val_data)["codebook_size"] != info["codebook_size"]:
            raise TokenDataError(f"codebook mismatch: {args.val_data} uses codebook size "
                                 f"{read_corpus_info(args.val_data)['codebook_size']}, {args.data} "
                                 f"{info['codebook_size']}")
    except TokenDataError as error:
        raise SystemExit(f"error: {error}") from None
    # Under torchrun without CUDA, accelerate stays single-process (every rank thinking it is the main one)
    # unless asked for its CPU backend, gloo; ACCELERATE_USE_CPU=1 does the same from the environment.
    distributed_cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    accelerator = Accelerator(
        cpu=distributed_cpu, gradient_accumulation_steps=args.grad_accum, mixed_precision=args.mixed_precision,
        project_config=ProjectConfiguration(project_dir=str(run_dir / "state"), automatic_checkpoint_naming=True,
                                            total_limit=2))
    set_seed(args.seed)  # the same initial weights on every process
    initial = load_initial_model(args, info)
    if args.phone_cues and not args.word_cues:
        raise SystemExit("error: --phone-cues needs --word-cues (a phone cue follows its word's cue)")
    config = replace(initial.config if initial else LM_CONFIGS[args.config], word_cues=args.word_cues,
                     phone_cues=args.phone_cues)
    if args.max_len > config.max_position_embeddings:
        raise SystemExit(f"error: --max-len {args.max_len} exceeds the {config.name} config's "
                         f"{config.max_position_embeddings} positions")
    try:
        text = initial.text if initial else load_text_model(args, accelerator)
        vocab = Vocabulary(n_text=text.vocab_size, codebook_size_vocal=info["codebook_size"],
                           codebook_size_accomp=info["codebook_size"])
        train_loader, val_loader = build_loaders(args, text, vocab, config)
    except (TokenDataError, TextTokenizerError) as error:
        raise SystemExit(f"error: {error}") from None
    if args.export_best and val_loader is None:
        raise SystemExit("error: --export-best needs validation songs; pass --val-data")
    if config.word_cues and not any(s.cues for song in train_loader.dataset.songs for s in song.sections):
        raise SystemExit(f"error: --word-cues, but no record in {args.data} has word times (a token corpus "
                         "made before the words column, or songs without them in meta.json); tokenize again")
    if config.phone_cues and not any(song_has_phone_cues(song, text) for song in train_loader.dataset.songs):
        raise SystemExit(f"error: --phone-cues, but no record in {args.data} has phone times (a token corpus "
                         "made before the words' phones, or songs without them in meta.json); tokenize again")
    check_run_identity(run_dir, {"config": config.to_dict(), "vocab": vocab.to_dict(),
                                 **({"init_from": str(args.init_from)} if initial else {})}, accelerator)

    song_lm = initial or SongLM.create(config, vocab, text)
    song_lm.config = config
    model = song_lm.model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=args.weight_decay)
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    if val_loader is not None:
        val_loader = accelerator.prepare(val_loader)
    progress = TrainProgress()
    accelerator.register_for_checkpointing(progress)
    checkpoints = sorted((run_dir / "state" / "checkpoints").glob("checkpoint_*"),
                         key=lambda p: int(p.name.rsplit("_", 1)[1]))
    if checkpoints:
        accelerator.load_state(str(checkpoints[-1]))
        # automatic naming would otherwise try to reuse a name that exists (libraries.md §2.4)
        accelerator.project_configuration.iteration = int(checkpoints[-1].name.rsplit("_", 1)[1]) + 1
        accelerator.print(f"resumed from {checkpoints[-1]} at step {progress.step}")
    accelerator.print(f"{args.config}: {song_lm.num_parameters() / 1e6:.2f}M parameters, vocabulary {vocab.size}, "
                      f"{len(train_loader.dataset)} training windows")

    log_path = run_dir / "log.jsonl"

    def log(record: dict) -> None:
        accelerator.print(json.dumps(record))
        if accelerator.is_main_process:
            with open(log_path, "a") as handle:
                handle.write(json.dumps(record) + "\n")

    dtype = getattr(torch, args.export_dtype)

    def evaluate_and_keep_best() -> bool:
        """Log a validation pass; if it is the run's lowest loss, write ``best`` and ``best.json`` (True)."""
        result = evaluate(model, val_loader, vocab, accelerator, args.eval_batches)
        log({"step": progress.step, **result})
        if result["val_loss"] is None or not result["val_loss"] < progress.best_val_loss:  # NaN is never best
            return False
        progress.best_val_loss = result["val_loss"]  # every process sees the same reduced loss
        if accelerator.is_main_process:
            best = SongLM(accelerator.unwrap_model(model), vocab, text, config)
            best.save_pretrained(run_dir / "best", dtype=dtype)
            atomic_write_json(run_dir / "best.json", {"step": progress.step, **result})
        return True

    started, last_saved, last_eval, step_losses = time.time(), progress.step, None, []
    while progress.step < args.steps:
        # resume inside the epoch: skip the micro-batches this epoch already consumed
        epoch, consumed = divmod(progress.batches, len(train_loader))
        epoch_loader = accelerator.skip_first_batches(train_loader, consumed) if consumed else train_loader
        epoch_loader.set_epoch(epoch)  # new order and new condition-dropout draws per epoch
        for batch in epoch_loader:
            with accelerator.accumulate(model):
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(progress.step, args)
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad()
            progress.batches += 1
            step_losses.append(loss.detach())
            if not accelerator.sync_gradients:
                continue
            progress.step += 1
            if progress.step % args.log_every == 0 or progress.step == args.steps:
                mean_loss = accelerator.reduce(torch.stack(step_losses).mean(), "mean")
                log({"step": progress.step, "seconds": round(time.time() - started, 1),
                     "lr": optimizer.param_groups[0]["lr"], "loss": round(float(mean_loss), 4), "epoch": epoch})
            step_losses = []
            if val_loader is not None and progress.step % args.eval_every == 0:
                evaluate_and_keep_best()
                last_eval = progress.step
            if progress.step % args.save_every == 0:
                accelerator.save_state()
                last_saved = progress.step
            if progress.step >= args.steps:
                break

    new_best = val_loader is not None and last_eval != progress.step and evaluate_and_keep_best()
    if last_saved != progress.step or new_best:  # a later, longer run continues from here, with this best
        accelerator.save_state()
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        final = SongLM(accelerator.unwrap_model(model).eval(), vocab, text, config)
        final.save_pretrained(run_dir / "final", dtype=dtype)
        if args.export_best:
            if not (run_dir / "best.json").is_file():  # every evaluation gave no loss (NaN or none)
                raise SystemExit(f"error: --export-best, but no evaluation of {run_dir} gave a finite validation "
                                 "loss, so there are no best weights to export")
            # reloaded and saved again (save_pretrained's atomic replace), so the export is what ``best`` holds
            SongLM.from_pretrained(run_dir / "best").save_pretrained(args.export, dtype=dtype)
            best_step = json.loads((run_dir / "best.json").read_text())["step"]
            accelerator.print(f"wrote {run_dir / 'final'}, and {args.export} from step {best_step} (best)")
        elif args.export:
            final.save_pretrained(args.export, dtype=dtype)
            accelerator.print(f"wrote {run_dir / 'final'} and {args.export}")
        else:
            accelerator.print(f"wrote {run_dir / 'final'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
