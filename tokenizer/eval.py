"""Encoder metrics on a held-out split (the numbers in the model card).

    python -m tokenizer.eval --checkpoint runs/duotok-tiny/ssl/final --metrics ssl --data data/corpus/validation
    python -m tokenizer.eval --checkpoint checkpoints/duotok-tiny --metrics separation,ctc,codebook --data ...

- ssl: BEST-RQ masked-prediction accuracy (meaningful on the stage-1 checkpoint only: later stages retrain
  the stacks under the SSL head);
- separation: SI-SDR improvement of the vocal estimate (stage-2 vocal mask over the mixture STFT) over the
  unprocessed mix, on crops that contain singing;
- ctc: phone error rate of greedy CTC decoding on vocal stems, on the stage-2 path and on the quantized path;
- frames: on the quantized vocal path, frame-wise accuracy of the phone (the CTC head's most likely phone,
  blank excluded, on frames where a phone is sung) and of the sung note (the pitch head's most likely note,
  "unvoiced" excluded, on voiced frames; models with a pitch head);
- codebook: per-track codebook utilisation (share of codes used) and code perplexity over the split, and
  the bitrate."""

from __future__ import annotations

import argparse
import json
import math
import sys

import jiwer
import numpy as np
import torch

from corpus.audio_io import atomic_write_json
from tokenizer.checkpoint import from_pretrained
from tokenizer.data import SongCropDataset, collate_crops
from tokenizer.duotok import DuoTok
from tokenizer.model import DuoTokModel
from tokenizer.phones import ids_to_phones

METRICS = ("ssl", "separation", "ctc", "frames", "codebook")


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Scale-invariant SDR in dB per row (Le Roux et al. 2019); written out because it is five lines and
    torchmetrics would be a dependency for this alone."""
    estimate = estimate - estimate.mean(-1, keepdim=True)
    reference = reference - reference.mean(-1, keepdim=True)
    scale = (estimate * reference).sum(-1, keepdim=True) / (reference.pow(2).sum(-1, keepdim=True) + 1e-8)
    target = scale * reference
    return 10 * torch.log10(target.pow(2).sum(-1) / ((estimate - target).pow(2).sum(-1) + 1e-8) + 1e-8)


def greedy_ctc(log_probs: torch.Tensor) -> list[list[int]]:
    """Best path: argmax per frame, repeats collapsed, blanks (0) dropped."""
    out = []
    for row in log_probs.argmax(-1).tolist():
        collapsed = [p for i, p in enumerate(row) if p != 0 and (i == 0 or p != row[i - 1])]
        out.append(collapsed)
    return out


def phone_error_rate(references: list[list[int]], hypotheses: list[list[int]]) -> float:
    pairs = [(" ".join(ids_to_phones(r)), " ".join(ids_to_phones(h)) or "-") for r, h in
             zip(references, hypotheses, strict=True) if r]
    if not pairs:
        return float("nan")
    return float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))


def code_statistics(indices: np.ndarray, codebook_size: int) -> dict:
    counts = np.bincount(indices.ravel(), minlength=codebook_size)
    probabilities = counts[counts > 0] / counts.sum()
    return {"utilisation": round(float((counts > 0).mean()), 4), "codes_used": int((counts > 0).sum()),
            "perplexity": round(float(np.exp(-(probabilities * np.log(probabilities)).sum())), 1)}


@torch.no_grad()
def evaluate(model: DuoTokModel, data: str, metrics: tuple[str, ...] = METRICS, crop_seconds: float = 4.0,
             crops_per_song: int = 2, batch_size: int = 8, seed: int = 1234) -> dict:
    model.eval()
    config = model.config
    dataset = SongCropDataset(data, crop_seconds=crop_seconds, sample_rate=config.sample_rate,
                              samples_per_token=config.samples_per_token, seed=seed, crops_per_song=crops_per_song)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_crops)
    facade = DuoTok(model)
    torch.manual_seed(seed)  # BEST-RQ masks are random
    totals: dict[str, list] = {k: [] for k in ("acc", "sdr", "ref", "hyp2", "hyp3", "vocal", "accomp",
                                                     "phone_hits", "pitch_hits")}
    for batch in loader:
        vocals, mix = batch["vocals"], batch["mix"]
        if "ssl" in metrics:
            totals["acc"].append(float(model.forward_ssl(mix)["masked_accuracy"]))
        singing = batch["phone_lengths"] > 0
        if "separation" in metrics and singing.any():
            estimate = facade.vocal_estimate(mix[singing])
            gain = si_sdr(estimate, vocals[singing]) - si_sdr(mix[singing], vocals[singing])
            totals["sdr"].extend(gain.tolist())
        if "ctc" in metrics and singing.any():
            stems = vocals[singing]
            _, mel = model.analyse(stems)
            stage2 = model.heads(model.upper(model.bottleneck(model.encode_lower(model.normalise(mel)))))
            decoded = model.quantize(stems, "vocal")[0]
            stage3 = model.quantized_heads(model.quantized_upper(decoded))
            phones = batch["phones"][singing]
            lengths = batch["phone_lengths"][singing]
            totals["ref"].extend(p[:n].tolist() for p, n in zip(phones, lengths, strict=True))
            totals["hyp2"].extend(greedy_ctc(stage2["ctc"]))
            totals["hyp3"].extend(greedy_ctc(stage3["ctc"]))
        if "frames" in metrics or "codebook" in metrics:  # one pass through the vocal branch serves both
            vocal_decoded, vocal_indices = model.quantize(vocals, "vocal")[:2]
        if "frames" in metrics:
            out = model.quantized_heads(model.quantized_upper(vocal_decoded))
            sung, voiced = batch["phone_frames"] > 0, batch["pitch_frames"] > 0
            # class 0 (blank / unvoiced) left out of the argmax: the question is which phone or note, given one
            phone = out["ctc"][..., 1:].argmax(-1) + 1
            totals["phone_hits"].extend((phone == batch["phone_frames"])[sung].tolist())
            if "pitch" in out:
                note = out["pitch"][..., 1:].argmax(-1) + 1
                totals["pitch_hits"].extend((note == batch["pitch_frames"])[voiced].tolist())
        if "codebook" in metrics:
            totals["vocal"].append(vocal_indices.numpy())
            totals["accomp"].append(model.quantize(batch["accompaniment"], "accomp")[1].numpy())
    result: dict = {"crops": len(dataset), "songs": len(dataset.songs), "crop_seconds": crop_seconds}
    if "ssl" in metrics:
        result["masked_accuracy"] = round(float(np.mean(totals["acc"])), 4)
    if "separation" in metrics:
        result["vocal_si_sdr_improvement_db"] = round(float(np.mean(totals["sdr"])), 2)
    if "ctc" in metrics:
        result["phone_error_rate_stage2"] = round(phone_error_rate(totals["ref"], totals["hyp2"]), 4)
        result["phone_error_rate_quantized"] = round(phone_error_rate(totals["ref"], totals["hyp3"]), 4)
    if "frames" in metrics:
        result["frame_phone_accuracy_quantized"] = round(float(np.mean(totals["phone_hits"])), 4)
        if totals["pitch_hits"]:
            result["frame_note_accuracy_quantized"] = round(float(np.mean(totals["pitch_hits"])), 4)
    if "codebook" in metrics:
        for track in ("vocal", "accomp"):
            result[f"{track}_codes"] = code_statistics(np.concatenate(totals[track]), config.codebook_size)
        result["bitrate_bps"] = round(2 * config.token_rate * math.log2(config.codebook_size), 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tokenizer.eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--metrics", default=",".join(METRICS))
    parser.add_argument("--crops-per-song", type=int, default=2)
    parser.add_argument("--out", help="write the metrics here as JSON")
    args = parser.parse_args(argv)
    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    unknown = set(metrics) - set(METRICS)
    if unknown:
        parser.error(f"unknown metrics {sorted(unknown)}; choose from {METRICS}")
    result = evaluate(from_pretrained(args.checkpoint), args.data, metrics, crops_per_song=args.crops_per_song)
    result["checkpoint"] = args.checkpoint
    print(json.dumps(result, indent=1))
    if args.out:
        atomic_write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
