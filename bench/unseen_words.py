"""How well does a song LM sing words it never saw in training? Teacher-forced, on the validation split.

Users type words the corpus never sang. For each LM, every sung section of every validation song is scored
the way a training window begins (``<bos> <style> … </style> <section> lyric-text <audio> v0 a0 …``) and once
more with its style and lyric text removed (the unconditional form that classifier-free guidance uses). Each
vocal token gets the cross-entropy the LM gives it (nats, over the whole vocabulary, as ``lm.eval``), and each
frame is labelled from the song's ``meta.json`` word times: inside a word the training lyrics never contain
(unseen), inside a word they do contain (seen), or outside every word. The lyric gain of a group of frames is
its cross-entropy without the text minus with it: how much the words on the page help the LM predict what is
sung there. A model that sings unseen words better gains more on unseen-word frames. A word-cue LM
(``LMConfig.word_cues``) is scored on sections with their cues, at the corpus's word times (the token folder
needs its ``words`` column); "without the text" keeps each ``<word>`` marker and drops the words
(``lm.data.drop_condition``), so the gain is still what the words themselves are worth.

This measures the LM on tokens, not on audio: the generated singing is not yet intelligible enough for Whisper
to tell two LMs apart (``bench/app_lyrics``), and the vocal tokens do carry phone information
(``bench/token_content``), so a better reading of the lyrics shows up here first.

``python -m bench.unseen_words --lm checkpoints/lm-tiny runs/lm-phonemes/final [--tokens-val data/tokens/validation
--songs-val data/corpus/validation --tokens-train data/tokens/train] [--name unseen_words]``
-> bench/results/<name>.{json,md}
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import machine, save
from lm.data import drop_condition, iter_token_records
from lm.layout import FRAME_RATE_HZ, SongTokens, build_sequence, song_tokens_from_record
from lm.lyrics import LyricsError, parse_lyrics
from lm.model import SongLM
from lm.phonemes import word_key, word_phones

GROUPS = ("unseen", "seen", "outside")


def training_words(tokens_dir: Path) -> set[str]:
    """Every word of every sung line in the training token corpus's lyrics."""
    words = set()
    for record in iter_token_records(tokens_dir, columns=["lyrics"]):
        try:
            sections = parse_lyrics(record.get("lyrics") or "", require_vocals=False).sections
        except LyricsError:
            continue
        for section in sections:
            for line in section.lines:
                words.update(word_key(word) for word in line.split() if word_key(word))
    return words


def frame_groups(meta: dict, n_frames: int, seen: set[str]) -> np.ndarray:
    """Per 25 Hz frame: 0 unseen word, 1 seen word, 2 outside every word (a frame belongs to the word that
    covers its centre)."""
    groups = np.full(n_frames, GROUPS.index("outside"), dtype=np.int8)
    centres = (np.arange(n_frames) + 0.5) / FRAME_RATE_HZ
    for word in meta.get("words", []):
        inside = (centres >= word["start"]) & (centres < word["end"])
        groups[inside] = GROUPS.index("seen" if word_key(word["text"]) in seen else "unseen")
    return groups


@torch.inference_mode()
def vocal_nats(lm: SongLM, song: SongTokens, max_len: int) -> np.ndarray:
    """Cross-entropy (nats) of each vocal token of a one-section song, from a forward over at most ``max_len``
    ids; frames that do not fit are NaN."""
    ids = build_sequence(song, lm.vocab)
    vocal_positions = np.flatnonzero(lm.vocab.is_vocal(ids))  # frame f's vocal slot (word cues may stand between)
    ids = ids[:max_len]
    inputs = torch.from_numpy(ids).unsqueeze(0).to(lm.device)
    logits = lm.model(input_ids=inputs).logits[0].float()
    nll = torch.nn.functional.cross_entropy(logits[:-1], inputs[0, 1:], reduction="none").cpu().numpy()
    n_frames = song.sections[0].n_frames
    out = np.full(n_frames, np.nan)
    positions = vocal_positions[:n_frames]
    fits = positions < len(ids)
    out[fits] = nll[positions[fits] - 1]  # logits at t predict the id at t + 1
    return out


def score_lm(checkpoint: Path, tokens_dir: Path, songs_dir: Path, seen: set[str], max_len: int) -> dict:
    """Per sung frame of the split (songs in shard order): its group and the LM's vocal-token nats with the
    section's text and without it (NaN where the frame did not fit into ``max_len``)."""
    lm = SongLM.from_pretrained(checkpoint)
    lm.model.eval()
    frames: dict[str, list[np.ndarray]] = {"group": [], "section": [], "lyrics": [], "none": []}
    started = time.perf_counter()
    for record in iter_token_records(tokens_dir):
        meta_path = songs_dir / str(record["id"]) / "meta.json"
        if not meta_path.is_file():
            continue
        song = song_tokens_from_record(  # with its word (and phone) cues, if any
            record, lm.text.encode, lm.text.encode_lyrics,
            word_to_ids=lm.text.encode_lyrics if lm.config.word_cues else None,
            phone_to_ids=lm.text.phone_cue if lm.config.phone_cues else None)
        groups = frame_groups(json.loads(meta_path.read_text()), len(record["vocal"]), seen)
        offset = 0
        for section in song.sections:
            span = slice(offset, offset + section.n_frames)
            offset += section.n_frames
            if section.instrumental:
                continue
            alone = SongTokens(song.style_ids, [section])
            frames["group"].append(groups[span])
            frames["section"].append(np.full(section.n_frames, len(frames["section"])))  # the section's number
            frames["lyrics"].append(vocal_nats(lm, alone, max_len))
            frames["none"].append(vocal_nats(lm, drop_condition(alone), max_len))
    return {"checkpoint": str(checkpoint), "phonemes": bool(lm.text.phonemes),
            "seconds": round(time.perf_counter() - started, 1),
            **{name: np.concatenate(parts) if parts else np.zeros(0) for name, parts in frames.items()}}


def summarise(scored: dict, valid: np.ndarray) -> dict:
    """Mean nats per group and condition over the ``valid`` frames, and the lyric gain."""
    result = {"checkpoint": scored["checkpoint"], "phonemes": scored["phonemes"], "seconds": scored["seconds"],
              "frames": {}, "nats": {}, "lyric_gain": {}}
    for index, name in enumerate(GROUPS):
        chosen = valid & (scored["group"] == index)
        n = int(chosen.sum())
        result["frames"][name] = n
        result["nats"][name] = {c: round(float(scored[c][chosen].mean()), 4) if n else None for c in ("lyrics", "none")}
        result["lyric_gain"][name] = (round(result["nats"][name]["none"] - result["nats"][name]["lyrics"], 4)
                                      if n else None)
    return result


def paired_difference(base: dict, other: dict, valid: np.ndarray, group: str, n_resamples: int = 2000,
                      seed: int = 0) -> dict:
    """``other`` minus ``base`` on the ``group`` frames: mean nats with the text and lyric gain, each with a 95%
    bootstrap interval over sections (a section's frames share one context, so sections are the units). An
    interval that holds 0 means the two LMs cannot be told apart on these songs."""
    chosen = valid & (base["group"] == GROUPS.index(group))
    sections = np.unique(base["section"][chosen])
    if not len(sections):
        return {}
    per_section = {name: np.zeros((len(sections), 2)) for name in ("lyrics", "gain")}  # [sum, count]
    for row, number in enumerate(sections):
        frames = chosen & (base["section"] == number)
        n = int(frames.sum())
        per_section["lyrics"][row] = [(other["lyrics"][frames] - base["lyrics"][frames]).sum(), n]
        gains = (other["none"][frames] - other["lyrics"][frames]) - (base["none"][frames] - base["lyrics"][frames])
        per_section["gain"][row] = [gains.sum(), n]
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(sections), (n_resamples, len(sections)))
    result = {"sections": len(sections)}
    for name, table in per_section.items():
        resampled = table[draws].sum(axis=1)  # [n_resamples, 2]
        low, high = np.percentile(resampled[:, 0] / resampled[:, 1], [2.5, 97.5])
        result[name] = {"difference": round(float(table[:, 0].sum() / table[:, 1].sum()), 4),
                        "interval_95": [round(float(low), 4), round(float(high), 4)]}
    return result


def validation_words(songs_dir: Path, seen: set[str]) -> dict:
    """How many sung validation words the training lyrics lack, and how many of those CMUdict knows."""
    total = unseen = known = 0
    for meta_path in sorted(songs_dir.glob("*/meta.json")):
        for word in json.loads(meta_path.read_text()).get("words", []):
            total += 1
            if word_key(word["text"]) not in seen:
                unseen += 1
                known += word_phones(word["text"]) is not None
    return {"words": total, "unseen": unseen, "unseen_in_cmudict": known}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.unseen_words", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lm", nargs="+", required=True, help="LM checkpoint folders to compare")
    parser.add_argument("--tokens-val", default="data/tokens/validation")
    parser.add_argument("--songs-val", default="data/corpus/validation")
    parser.add_argument("--tokens-train", default="data/tokens/train")
    parser.add_argument("--max-len", type=int, default=1024, help="ids per forward (the training window)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="unseen_words", help="results file name under bench/results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    seen = training_words(Path(args.tokens_train))
    words = validation_words(Path(args.songs_val), seen)
    scored = [score_lm(Path(path), Path(args.tokens_val), Path(args.songs_val), seen, args.max_len)
              for path in args.lm]
    if len({len(s["group"]) for s in scored}) != 1:
        raise SystemExit("error: the LMs cut the validation songs into different sections; compare LMs of one "
                         "token corpus")
    # A longer lyric text (phonemes) leaves less room for audio in max_len ids: compare on the frames that fit
    # for every model, so each model is scored on exactly the same frames.
    valid = np.logical_and.reduce([~np.isnan(s["lyrics"]) & ~np.isnan(s["none"]) for s in scored])
    models = [summarise(s, valid) for s in scored]
    for model, other in zip(models[1:], scored[1:], strict=True):
        model["against_first"] = {group: paired_difference(scored[0], other, valid, group)
                                  for group in ("unseen", "seen")}
    result = {"machine": machine(), "training_vocabulary": len(seen), "validation_words": words,
              "frames_cut_by_max_len": int((~valid).sum()), "models": models}
    lines = [
        "# Unseen words: vocal-token cross-entropy on the validation split, with and without the lyric text",
        "",
        f"Validation: {words['words']} sung words, {words['unseen']} of them never in the training lyrics "
        f"({words['unseen_in_cmudict']} of those in CMUdict); training vocabulary {len(seen)} words. "
        "Nats per vocal token (lower is better); gain = without text − with text.",
        "",
        "| LM | phonemes | unseen: with text / without / gain | seen: with / without / gain | outside words: "
        "with / gain |",
        "|---|---|---|---|---|",
    ]
    def number(value: float | None, sign: str = "") -> str:
        return "–" if value is None else f"{value:{sign}.4f}"

    for model in models:
        nats, gain = model["nats"], model["lyric_gain"]
        lines.append(
            f"| `{model['checkpoint']}` | {'yes' if model['phonemes'] else 'no'} | "
            f"{number(nats['unseen']['lyrics'])} / {number(nats['unseen']['none'])} / "
            f"**{number(gain['unseen'], '+')}** | {number(nats['seen']['lyrics'])} / {number(nats['seen']['none'])} / "
            f"{number(gain['seen'], '+')} | {number(nats['outside']['lyrics'])} / {number(gain['outside'], '+')} |")
    lines.append("")
    for model in models[1:]:
        for group, diff in model["against_first"].items():
            if diff:
                lines.append(f"- `{model['checkpoint']}` − `{models[0]['checkpoint']}`, {group} words "
                             f"({diff['sections']} sections): nats with text {diff['lyrics']['difference']:+.4f} "
                             f"(95% interval {diff['lyrics']['interval_95']}), lyric gain "
                             f"{diff['gain']['difference']:+.4f} (95% interval {diff['gain']['interval_95']})")
    lines += ["", f"Frames scored (the same for every LM): {models[0]['frames']}; left out because a section did "
              f"not fit into {args.max_len} ids for some LM: {result['frames_cut_by_max_len']}.", "",
              f"`python -m bench.unseen_words --lm {' '.join(args.lm)}"
              f"{'' if args.name == 'unseen_words' else f' --name {args.name}'}`"]
    save(args.name, result, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
