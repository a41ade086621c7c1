"""Do the LM's generated vocal tokens spell the lyrics? A phone error rate read off the tokens: no decoder, no ASR.

Whisper cannot yet tell two LMs apart on decoded audio (``bench/app_lyrics``: both near WER 1.0), because the
decoders lose most of the words (``bench/decoder_reconstruction``). This reads the words where the LM puts them,
in the vocal tokens. A count table from the training split maps every vocal token id to the label it carries
most often at the frame centre: a festival phone, or "not sung" (as ``bench/token_content``, which counts only
sung frames). A token stream then reads as a phone string: runs of one label collapsed, runs of a single frame
and "not sung" dropped.

For each of the first ``--n`` validation songs, each LM generates the whole song (both tracks; by default at
temperature 1, top-k 50, no guidance, as in the LM card's table (the app now samples at 0.7); seed ``--seed`` +
the song's index) from that song's own style, section tags, section lengths and lyrics, and the phone string of
its vocal tokens is aligned with the phones the corpus sang there (``meta.json``, runs collapsed the same way).
Phone error rate (PER) = Levenshtein distance ÷ reference phones, summed over songs. Two references, measured
the same way:

- **true tokens**: the song's own tokens read through the table: the best that tokens read this way can score.
- **other lyrics**: the same LM and seed given the next song's lyrics instead (in order, section by section):
  what singing that ignores these words scores against them. ``other − own`` is how much the lyrics on the
  page steer the generated vocal tokens; 0 means not at all.

``python -m bench.lyric_phones --lm checkpoints/lm-tiny runs/x/final [--n 20] [--name lyric_phones]``
-> bench/results/<name>.{json,md}
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch
from rapidfuzz.distance import Levenshtein

from app.request import SongOptions
from bench.common import bootstrap_interval, machine, save
from bench.token_content import frame_labels
from lm.data import iter_token_records
from lm.generate import GenerationOptions, SectionRequest, full_song
from lm.layout import song_tokens_from_record
from lm.model import SongLM
from tokenizer.phones import SILENCES, phone_id

NOT_SUNG = -1
MIN_RUN = 2  # frames (80 ms): shorter runs of one label are read as noise (read_phones)
TOP_K = SongOptions().top_k  # the app's default


def token_phone_table(tokens_dir: Path, songs_dir: Path) -> dict[int, int]:
    """Vocal token id -> the label (phone id or NOT_SUNG) seen with it most often in ``tokens_dir``."""
    counts: dict[int, Counter] = defaultdict(Counter)
    for record in iter_token_records(tokens_dir):
        meta_path = songs_dir / record["id"] / "meta.json"
        if not meta_path.is_file():
            continue
        phones, _ = frame_labels(json.loads(meta_path.read_text()), len(record["vocal"]))
        for token, phone in zip(record["vocal"], phones, strict=True):
            counts[int(token)][NOT_SUNG if phone is None else phone] += 1
    return {token: label.most_common(1)[0][0] for token, label in counts.items()}


def collapse(labels, min_run: int = 1) -> list[int]:
    """Runs of one label become one label; runs shorter than ``min_run`` frames and NOT_SUNG are dropped, then
    equal neighbours merge again (also across a pause: the reference phone list has no pauses either)."""
    out: list[int] = []
    for label, run in itertools.groupby(labels):
        if label != NOT_SUNG and sum(1 for _ in run) >= min_run and (not out or out[-1] != label):
            out.append(label)
    return out


def read_phones(vocal: np.ndarray, table: dict[int, int]) -> list[int]:
    """A vocal token stream as a phone string. Runs of one frame are dropped: a table read frame by frame flips
    between labels inside a phone (the true tokens read with single frames kept give twice the reference's
    phones and a PER of 1.27 on 20 validation songs; with runs of 2 frames or more, 0.81 of its length and 0.54)."""
    return collapse((table.get(int(token), NOT_SUNG) for token in vocal), min_run=MIN_RUN)


def sung_phones(meta: dict) -> list[int]:
    """The phones the corpus sang, in order (silences left out), runs collapsed like a token reading."""
    return collapse(phone_id(phone["phone"]) for word in meta.get("words", []) for syllable in word["syllables"]
                    for phone in syllable["phones"] if phone["phone"] not in SILENCES)


def requests_for(song, lyrics_from, word_cues: bool = False, cues_of_word=None) -> list[SectionRequest]:
    """The song's own sections (tag, length, instrumental or not) with the lyric pieces of ``lyrics_from``'s
    sung sections, in order (cycled when it has fewer); for a word-cue LM also those sections' words (their
    cues' pieces: the words the corpus sang there), which the LM then places itself. ``cues_of_word`` turns one
    word's pieces into the cues a phone-cue LM writes for it (``SongLM.cue_pieces``: the word, then its
    dictionary phones, as in the app)."""
    sung = itertools.cycle([s for s in lyrics_from.sections if not s.instrumental] or [None])
    requests = []
    for section in song.sections:
        source = None if section.instrumental else next(sung)
        words = None
        if word_cues and source is not None:
            words = [cue for word in source.cues
                     for cue in (cues_of_word(list(word.text_ids)) if cues_of_word else [list(word.text_ids)])]
        requests.append(SectionRequest(section.tag, source.text_ids if source is not None else [], section.n_frames,
                                       section.instrumental, words=words))
    return requests


def phone_model_cues(lm: SongLM, word_pieces: list[int]) -> list[list[int]]:
    """One word's pieces -> what a phone-cue LM cues for it: the word, then its dictionary phones."""
    return lm.cue_pieces(lm.text.decode(word_pieces))


def generated_vocal(lm: SongLM, style_ids, requests, options: GenerationOptions) -> np.ndarray:
    song = full_song(lm.model, lm.vocab, style_ids, requests, options)
    return np.concatenate([section.vocal for section in song.sections])


def per(reference: list[int], hypothesis: list[int]) -> tuple[int, int]:
    """(edits, reference length)."""
    return Levenshtein.distance(reference, hypothesis), len(reference)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lyric_phones", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lm", nargs="+", type=Path, default=[Path("checkpoints/lm-tiny")],
                        help="LM checkpoint folders to compare")
    parser.add_argument("--tokens-train", type=Path, default=Path("data/tokens/train"))
    parser.add_argument("--songs-train", type=Path, default=Path("data/corpus/train"))
    parser.add_argument("--tokens-val", type=Path, default=Path("data/tokens/validation"))
    parser.add_argument("--songs-val", type=Path, default=Path("data/corpus/validation"))
    parser.add_argument("--n", type=int, default=20, help="validation songs (the first N by id)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=TOP_K)
    parser.add_argument("--cfg-scale", type=float, default=1.0,
                        help="classifier-free guidance on style and lyrics (1 = none, the app's default)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="lyric_phones", help="results file name under bench/results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.time()

    table = token_phone_table(args.tokens_train, args.songs_train)
    records = [r for r in iter_token_records(args.tokens_val) if (args.songs_val / r["id"] / "meta.json").is_file()]
    records = sorted(records, key=lambda r: r["id"])[: args.n]
    if len(records) < 2:
        raise SystemExit(f"error: need at least 2 validation songs with meta.json, found {len(records)}")
    references = [sung_phones(json.loads((args.songs_val / r["id"] / "meta.json").read_text())) for r in records]
    true = [per(ref, read_phones(np.asarray(r["vocal"]), table)) for r, ref in zip(records, references, strict=True)]

    results = {}
    for checkpoint in args.lm:
        lm = SongLM.from_pretrained(checkpoint)
        cues = lm.config.word_cues
        if cues and not any(r.get("words") for r in records):
            raise SystemExit(f"error: {checkpoint} places word cues, but {args.tokens_val} has no word times "
                             "(tokenize the validation songs again)")
        songs = [song_tokens_from_record(r, lm.text.encode, lm.text.encode_lyrics,
                                         word_to_ids=lm.text.encode_lyrics if cues else None) for r in records]
        expand = functools.partial(phone_model_cues, lm) if lm.config.phone_cues else None
        rows = []
        for index, (song, reference) in enumerate(zip(songs, references, strict=True)):
            options = GenerationOptions(temperature=args.temperature, top_k=args.top_k, cfg_scale=args.cfg_scale,
                                        seed=args.seed + index)
            own = generated_vocal(lm, song.style_ids, requests_for(song, song, cues, expand), options)
            other = generated_vocal(lm, song.style_ids,
                                    requests_for(song, songs[(index + 1) % len(songs)], cues, expand), options)
            rows.append({"id": records[index]["id"], "reference_phones": len(reference),
                         "own_edits": per(reference, read_phones(own, table))[0],
                         "other_edits": per(reference, read_phones(other, table))[0]})
            print(f"[lyric_phones] {checkpoint} {rows[-1]}", flush=True)
        results[str(checkpoint)] = rows

    total_ref = sum(n for _, n in true)
    true_per = sum(e for e, _ in true) / total_ref
    summary = {}
    for checkpoint, rows in results.items():
        own = np.array([r["own_edits"] / r["reference_phones"] for r in rows])
        other = np.array([r["other_edits"] / r["reference_phones"] for r in rows])
        summary[checkpoint] = {
            "per_own_lyrics": round(sum(r["own_edits"] for r in rows) / total_ref, 4),
            "per_other_lyrics": round(sum(r["other_edits"] for r in rows) / total_ref, 4),
            "steer_mean_per_song": round(float((other - own).mean()), 4),
            "steer_interval": bootstrap_interval(other - own)}
    names = list(results)
    comparison = None
    if len(names) > 1:
        first = np.array([r["own_edits"] / r["reference_phones"] for r in results[names[0]]])
        last = np.array([r["own_edits"] / r["reference_phones"] for r in results[names[-1]]])
        comparison = {"lms": [names[-1], names[0]], "per_own_difference_mean": round(float((last - first).mean()), 4),
                      "interval": bootstrap_interval(last - first)}

    result = {"machine": machine(), "seconds": round(time.time() - started, 1), "n_songs": len(records),
              "table_tokens": len(table), "reference_phones": total_ref, "true_tokens_per": round(true_per, 4),
              "lms": summary, "comparison": comparison, "per_song": results,
              "settings": {"temperature": args.temperature, "top_k": args.top_k, "cfg_scale": args.cfg_scale,
                           "seed": args.seed,
                           "tokens_train": str(args.tokens_train)}}
    lines = [f"# Lyric phones read off generated vocal tokens ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
             "",
             f"{len(records)} validation songs ({total_ref} sung phones, runs collapsed), each generated whole from "
             f"its own style, sections and lyrics (temperature {args.temperature:g}, top-k {args.top_k}, CFG scale "
             f"{args.cfg_scale:g}, seed {args.seed} + index); vocal "
             f"tokens read as phones through a token → label table counted on `{args.tokens_train}` "
             f"({len(table)} token ids). "
             "PER = Levenshtein distance ÷ reference phones (lower is better). Steer = PER with the next song's "
             "lyrics − PER with the song's own (mean over songs, 95% bootstrap interval): how much the words on the "
             "page move the singing.",
             "",
             "| tokens | PER, own lyrics | PER, other lyrics | steer (interval) |",
             "|---|---|---|---|",
             f"| true tokens of the songs | **{true_per:.3f}** | – | – |"]
    for checkpoint, s in summary.items():
        low, high = s["steer_interval"]
        lines.append(f"| generated by `{checkpoint}` | **{s['per_own_lyrics']:.3f}** | {s['per_other_lyrics']:.3f} | "
                     f"{s['steer_mean_per_song']:+.3f} ({low:+.3f} … {high:+.3f}) |")
    if comparison:
        lines += ["", f"PER with own lyrics, `{names[-1]}` − `{names[0]}`, mean over songs: "
                      f"{comparison['per_own_difference_mean']:+.4f} (95% interval {comparison['interval'][0]:+.4f} … "
                      f"{comparison['interval'][1]:+.4f})."]
    # the recorded command names every setting that differs from its default, so it re-makes this result
    changed = {option: getattr(args, option) for option in ("temperature", "top_k", "cfg_scale", "seed", "tokens_train",
                                                             "songs_train", "tokens_val", "songs_val")
               if getattr(args, option) != parser.get_default(option)}
    flags = "".join(f" --{option.replace('_', '-')} {value:g}" if isinstance(value, float)
                    else f" --{option.replace('_', '-')} {value}" for option, value in changed.items())
    name = "" if args.name == "lyric_phones" else f" --name {args.name}"
    lines += ["", f"`python -m bench.lyric_phones --lm {' '.join(names)} --n {args.n}{flags}{name}` "
                  f"({result['seconds']:.0f} s)"]
    save(args.name, result, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
