"""Where the vocal tokens lose the words: a trained probe of the sung phone at three points of the vocal branch.

``bench.token_content`` asks what the token id alone tells. This asks where along the way the phone is lost.
A small convolutional classifier is trained to name the festival phone sung at each 25 Hz token (the
``phone_frames`` labels of the tokenizer's own data pipeline; frames where nothing is sung are left out) from:

- ``mel``: the token's four normalised 128-bin log-mel frames (the vocal branch's mel skip input);
- ``quantizer input``: the branch's continuous 64-d vector just before SimVQ (stack output + mel skip + context);
- ``code vectors``: the 64-d SimVQ code each token is quantized to (what the decoders and the LM see).

Each with a receptive field of the token alone and of ``--radius`` tokens on each side. The gap from one point to
the next is what that step of the branch drops; the ``mel`` row is roughly what any tokenizer of this front end
could keep. The probe is trained on crops of the training split and scored on crops of the validation split
(seeded; each probe the same steps, batch and learning rate).

``python -m bench.phone_probe [--checkpoint checkpoints/duotok-tiny] [--train data/corpus/train]
[--validation data/corpus/validation]`` -> bench/results/phone_probe.{json,md}
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from bench.common import machine, save
from tokenizer.checkpoint import from_pretrained
from tokenizer.data import SongCropDataset, collate_crops
from tokenizer.model import DuoTokModel

POINTS = ("mel", "quantizer input", "code vectors")


@torch.no_grad()
def branch_features(model: DuoTokModel, songs: Path, crops_per_song: int, seed: int
                    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """``({point: [N, T, dim]}, phone labels [N, T])`` for 4 s vocal crops of the songs under ``songs``."""
    config = model.config
    dataset = SongCropDataset(songs, crop_seconds=4.0, sample_rate=config.sample_rate,
                              samples_per_token=config.samples_per_token, seed=seed, crops_per_song=crops_per_song)
    loader = torch.utils.data.DataLoader(dataset, batch_size=16, shuffle=False, collate_fn=collate_crops)
    branch = model.vocal_branch
    features: dict[str, list[torch.Tensor]] = {point: [] for point in POINTS}
    labels = []
    for batch in loader:
        lower, mel_frames, _ = model.branch_inputs(batch["vocals"])
        quantizer_input = branch.quantizer_input(lower, mel_frames)
        indices = branch.quantizer(quantizer_input)[1]
        for point, value in zip(POINTS, (mel_frames, quantizer_input, branch.indices_to_codes(indices)), strict=True):
            features[point].append(value)
        labels.append(batch["phone_frames"])
    return {point: torch.cat(values) for point, values in features.items()}, torch.cat(labels)


def train_probe(train_x: torch.Tensor, train_y: torch.Tensor, radius: int, n_classes: int, steps: int,
                seed: int = 0, hidden: int = 256) -> nn.Module:
    """A 1×1 conv, one conv of ``2·radius + 1`` tokens, a 1×1 conv to the classes; cross-entropy on sung frames."""
    torch.manual_seed(seed)
    probe = nn.Sequential(nn.Conv1d(train_x.shape[-1], hidden, 1), nn.GELU(),
                          nn.Conv1d(hidden, hidden, 2 * radius + 1, padding=radius), nn.GELU(),
                          nn.Conv1d(hidden, n_classes, 1))
    optimizer = torch.optim.AdamW(probe.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        pick = torch.randint(0, len(train_x), (32,), generator=generator)
        logits, target = probe(train_x[pick].transpose(1, 2)).transpose(1, 2), train_y[pick]
        sung = target > 0
        loss = F.cross_entropy(logits[sung], target[sung])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return probe.eval()


@torch.no_grad()
def accuracy(probe: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of sung frames whose most likely phone (blank / silence class 0 left out) is the sung one."""
    predicted = probe(x.transpose(1, 2)).transpose(1, 2)[..., 1:].argmax(-1) + 1
    sung = y > 0
    return float((predicted == y)[sung].float().mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="checkpoints/duotok-tiny")
    parser.add_argument("--train", type=Path, default=Path("data/corpus/train"))
    parser.add_argument("--validation", type=Path, default=Path("data/corpus/validation"))
    parser.add_argument("--crops-per-song", type=int, default=2)
    parser.add_argument("--radius", type=int, default=4, help="context of the wider probe, tokens on each side")
    parser.add_argument("--steps", type=int, default=1500, help="training steps of each probe (batch 32 crops)")
    parser.add_argument("--name", default="phone_probe", help="results file name under bench/results")
    args = parser.parse_args(argv)

    started = time.time()
    model = from_pretrained(args.checkpoint).eval()
    train_x, train_y = branch_features(model, args.train, args.crops_per_song, 5)
    val_x, val_y = branch_features(model, args.validation, args.crops_per_song, 5)
    n_classes = int(max(train_y.max(), val_y.max())) + 1
    rows = []
    for point in POINTS:
        row = {"point": point, "dim": int(train_x[point].shape[-1])}
        for radius in (0, args.radius):
            probe = train_probe(train_x[point], train_y, radius, n_classes, args.steps)
            row[f"accuracy_radius_{radius}"] = round(accuracy(probe, val_x[point], val_y), 4)
        rows.append(row)
    result = {"benchmark": "phone_probe", "machine": machine(), "checkpoint": args.checkpoint,
              "train_crops": len(train_x["mel"]), "validation_crops": len(val_x["mel"]),
              "sung_validation_frames": int((val_y > 0).sum()), "steps": args.steps, "radius": args.radius,
              "rows": rows, "seconds": round(time.time() - started, 1)}
    save(args.name, result, table(result))
    return 0


def table(result: dict) -> str:
    radius = result["radius"]
    lines = [f"# Where the vocal tokens lose the phone ({result['checkpoint']})", "",
             f"A probe trained {result['steps']} steps on {result['train_crops']} training crops of 4 s names the "
             f"phone sung at each token; accuracy on the {result['sung_validation_frames']} sung token frames of "
             f"{result['validation_crops']} validation crops.", "",
             f"| point of the vocal branch | dim | token alone | ±{radius} tokens |", "|---|---|---|---|"]
    for row in result["rows"]:
        lines.append(f"| {row['point']} | {row['dim']} | {row['accuracy_radius_0']:.1%} | "
                     f"{row[f'accuracy_radius_{radius}']:.1%} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
