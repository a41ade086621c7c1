"""What the vocal tokens know about the words and the melody: a count-based probe, no training.

Every 25 Hz vocal token frame of the tokenized training split gets two labels from the song's meta.json: the
festival phone sung at the frame's centre, and the sung note (F0 rounded to the nearest semitone, from the
10 ms F0 track). A "decoder" that knows only the token id can at best output the label seen most often with
that id in training; its accuracy on the validation split, next to the best token-blind guess (the most
frequent label overall), measures how much phone and pitch information the tokens carry. The same numbers
in bits: the conditional entropy H(label | token) against H(label), estimated on the validation frames with
the training counts (add-one smoothing). Only sung frames count (a phone or a voiced F0 at the frame centre).

``python -m bench.token_content [--tokens-train data/tokens/train --songs-train data/corpus/train
--tokens-val data/tokens/validation --songs-val data/corpus/validation]`` -> bench/results/token_content.{json,md}
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from bench.common import machine, save
from tokenizer.phones import SILENCES, phone_id
from tokenizer.tokenize_corpus import iter_records

FRAME_SECONDS = 0.04  # one 25 Hz token


def frame_labels(meta: dict, n_frames: int) -> tuple[list[int | None], list[int | None]]:
    """Per token frame: the phone id sung at its centre and the MIDI note of the F0 there (None if neither)."""
    centres = (np.arange(n_frames) + 0.5) * FRAME_SECONDS
    phones: list[int | None] = [None] * n_frames
    for word in meta.get("words", []):
        for syllable in word["syllables"]:
            for phone in syllable["phones"]:
                if phone["phone"] in SILENCES:
                    continue
                inside = np.nonzero((centres >= phone["start"]) & (centres < phone["end"]))[0]
                for frame in inside:
                    phones[frame] = phone_id(phone["phone"])
    f0, hop = np.asarray(meta["f0"]["hz"], dtype=float), float(meta["f0"]["hop_seconds"])
    notes: list[int | None] = [None] * n_frames
    for frame, centre in enumerate(centres):
        index = round(centre / hop)
        if index < len(f0) and f0[index] > 0:
            notes[frame] = round(69 + 12 * np.log2(f0[index] / 440.0))
    return phones, notes


def collect(tokens_dir: Path, songs_dir: Path) -> dict[str, list[tuple[int, int]]]:
    """{"phone": [(token, phone)…], "note": [(token, note)…]} over every sung frame of the split."""
    pairs: dict[str, list[tuple[int, int]]] = {"phone": [], "note": []}
    for record in iter_records(tokens_dir):
        meta_path = songs_dir / record["id"] / "meta.json"
        if not meta_path.is_file():
            continue
        tokens = record["vocal"]
        phones, notes = frame_labels(json.loads(meta_path.read_text()), len(tokens))
        for token, phone, note in zip(tokens.tolist(), phones, notes, strict=True):
            if phone is not None:
                pairs["phone"].append((token, phone))
            if note is not None:
                pairs["note"].append((token, note))
    return pairs


def probe(train: list[tuple[int, int]], val: list[tuple[int, int]]) -> dict:
    """Accuracy of token -> most frequent training label vs the overall most frequent label, and the
    conditional entropy H(label | token) vs H(label) on the validation pairs (bits, add-one smoothing)."""
    by_token: dict[int, Counter] = defaultdict(Counter)
    overall = Counter()
    for token, label in train:
        by_token[token][label] += 1
        overall[label] += 1
    labels = sorted(overall)
    majority = overall.most_common(1)[0][0]
    best = {token: counts.most_common(1)[0][0] for token, counts in by_token.items()}
    token_hits = sum(best.get(token, majority) == label for token, label in val)
    blind_hits = sum(majority == label for _, label in val)
    total = sum(overall.values())

    def p_label(label: int) -> float:
        return (overall[label] + 1) / (total + len(labels))

    def p_label_given(token: int, label: int) -> float:
        counts = by_token.get(token)
        if not counts:
            return p_label(label)
        return (counts[label] + 1) / (sum(counts.values()) + len(labels))

    h = -np.mean([np.log2(p_label(label)) for _, label in val])
    h_given = -np.mean([np.log2(p_label_given(token, label)) for token, label in val])
    return {"train_frames": len(train), "val_frames": len(val), "labels": len(labels),
            "accuracy_from_token": round(token_hits / len(val), 4),
            "accuracy_token_blind": round(blind_hits / len(val), 4),
            "entropy_bits": round(float(h), 3), "entropy_given_token_bits": round(float(h_given), 3),
            "information_bits": round(float(h - h_given), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens-train", type=Path, default=Path("data/tokens/train"))
    parser.add_argument("--songs-train", type=Path, default=Path("data/corpus/train"))
    parser.add_argument("--tokens-val", type=Path, default=Path("data/tokens/validation"))
    parser.add_argument("--songs-val", type=Path, default=Path("data/corpus/validation"))
    parser.add_argument("--name", default="token_content")
    args = parser.parse_args(argv)
    train, val = collect(args.tokens_train, args.songs_train), collect(args.tokens_val, args.songs_val)
    if not val["phone"] or not train["phone"]:
        raise SystemExit("error: no sung frames found: are the token corpora made from these song folders?")
    result = {"benchmark": "token_content", "machine": machine(), "tokens": str(args.tokens_train),
              "phone": probe(train["phone"], val["phone"]), "note": probe(train["note"], val["note"])}
    rows = []
    for name, what in (("phone", "festival phone at the frame centre"), ("note", "sung note (F0, nearest semitone)")):
        r = result[name]
        rows.append(f"| {what} | {r['labels']} | {r['val_frames']} | {r['accuracy_from_token']:.3f} | "
                    f"{r['accuracy_token_blind']:.3f} | {r['entropy_bits']:.2f} | "
                    f"{r['entropy_given_token_bits']:.2f} |")
    table = (f"# What the vocal tokens know ({result['machine']['date']})\n\n"
             f"Vocal tokens of `{args.tokens_train}` (labels counted there) probed on `{args.tokens_val}`: the best "
             "label per token id vs the best token-blind guess, and the entropy of the label with and without the "
             "token (bits, add-one smoothing). Sung frames only.\n\n"
             "| label | classes | validation frames | accuracy from the token | token-blind accuracy | H(label) | "
             "H(label given token) |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    save(args.name, result, table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
