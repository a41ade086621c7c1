"""Are the generated songs' words intelligible? Lyric word error rate of the generation app's vocals, next to
the same check on the corpus's own ground-truth vocals, so the two numbers share one judge and one scale.

Generated: ``SongGenerator()`` (the shipped checkpoints) makes each of ``PROMPTS`` (8 lyric sheets of 3
sections in common words, one per corpus genre, female and male voices in turn) as a full song of
``--seconds`` (20 s) with a fixed seed (``--seed`` + the prompt's index). ``app.lyric_check.check_lyrics`` — the
app's own "check the sung lyrics" step: Whisper tiny.en, greedy, one section at a time — transcribes the
generated vocal stem inside each section span of the manifest and aligns the transcript to that section's lyric
lines. The lines are the request's section plan (``SongGenerator.check_request``), i.e. exactly the lines the
LM was given for each manifest section; the app's UI reads the same lines back from the manifest's text pieces.

Reference: the same ``check_lyrics`` on the vocal stems of the first ``--n-corpus`` songs (sorted) of
``data/corpus/validation``, with sections and lines from their ``meta.json`` (``sections_from_meta``). That is
the judge's floor: Whisper misses sung words even in the training data's own clean singing, so the generated
WER is read against it (the ratio), not against 0. With ``--corpus-tokens`` (the same songs' token corpus, with
their words' phone times), a second reference: those songs' own tokens decoded by the app's decoders, given their
sung words and phone times as the app gives the LM's cues. That is what the decoders let through of true tokens:
the ceiling for generated tokens under these decoders.

WER = errors (substitutions + deletions + insertions) over reference words, summed over sections and songs.
Sections judged silent (vocal below -60 dBFS: the model sang nothing) count all their words as errors and are
counted separately.

With ``--takes N`` the app makes N vocal takes of each section and keeps the one its lyric check hears best, so
the section WER above is then the judge the takes were chosen by; the whole-song column (the vocal stem
transcribed at once with beam 5) is a second view of the same Whisper that they were not chosen by.

``python -m bench.app_lyrics [--n-corpus 10] [--seconds 20] [--prompts 8] [--takes N] [--name app_lyrics]``
-> bench/results/app_lyrics.{json,md}"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.common import machine, save

# (style, lyrics): one per genre of the corpus (folk, electronic, country, ballad, rock, jazz, reggae, pop),
# voices alternating. Three sections of 1-2 lines of everyday words, about 35 syllables per sheet: the planner
# (app.request, ~0.55 s per syllable) fits that into 20 s without a "too many words" warning, in sections of
# 4-10 s like the corpus's (an LM section longer than 12 s was never seen in training).
PROMPTS = [
    ("hopeful folk, female vocal, 90 bpm, acoustic guitar and upright bass",
     "[verse]\nwe walked along the river\nthe morning sun was gold\n\n[chorus]\ncome home to me tonight\n"
     "come home to me\n\n[verse]\nthe road is long and cold"),
    ("energetic electronic, male vocal, 124 bpm, saw lead, synth bass and drums",
     "[verse]\nlights are moving in the city\nall the people feel alive\n\n[chorus]\nwe can dance until the "
     "morning\n\n[verse]\nhold my hand and feel the beat"),
    ("upbeat country pop, female vocal, 110 bpm, acoustic guitar, strings and drums",
     "[verse]\nmy old truck is on the road\nthe radio is playing\n\n[chorus]\ntake me back to you\n"
     "take me back home\n\n[verse]\ni miss you every day"),
    ("heartfelt piano ballad, male vocal, 70 bpm, piano and strings",
     "[verse]\ni remember every word you said\n\n[chorus]\nstay with me my love\nstay with me tonight\n\n"
     "[verse]\nthe stars are shining in your eyes"),
    ("driving hard rock, female vocal, 130 bpm, distorted guitar, bass and drums",
     "[verse]\nwe never stop we never fall\nwe run into the night\n\n[chorus]\nstand up and shout it out\n\n"
     "[verse]\nthe fire is burning in my heart"),
    ("smooth jazz, male vocal, 95 bpm, piano, upright bass and brushed drums",
     "[verse]\nthe rain is falling on the street\nyou smile at me again\n\n[chorus]\nit feels like love\n"
     "it feels so good\n\n[verse]\nwe talk until the dawn"),
    ("relaxed reggae, female vocal, 80 bpm, guitar, organ, bass and drums",
     "[verse]\nsunshine on the water\nsmiling faces everywhere\n\n[chorus]\nevery little thing is fine\n\n"
     "[verse]\nwe sing together all day long"),
    ("upbeat pop, male vocal, 120 bpm, piano, synth bass and drums",
     "[verse]\ni see you in the crowd tonight\n\n[chorus]\nwe are young and we are free\n"
     "we are young and free\n\n[verse]\nyou and me forever"),
]


def check_generated(generator, index: int, style: str, lyrics: str, seconds: float, seed: int,
                    options: dict | None = None) -> dict:
    """Make one prompt's song and check its vocal stem; one row of the results."""
    from app.lyric_check import check_lyrics, sections_from_manifest
    from bench.asr import transcribe, word_errors

    request = generator.check_request(lyrics, style, duration=seconds, seed=seed, options=options)
    clock = time.perf_counter()
    result = generator.generate(lyrics, style, duration=seconds, seed=seed, options=options)
    generate_seconds = time.perf_counter() - clock
    planned, recorded = request.sections, result.manifest["sections"]
    # the manifest stores a section's lyrics as LM text pieces; the plan has the same sections as lines
    if [s.n_frames for s in planned] != [s["n_frames"] for s in recorded]:
        raise RuntimeError(f"prompt {index}: the manifest's sections do not match the request's plan")
    sections = sections_from_manifest(
        recorded, [[] if s["instrumental"] else list(plan.lines) for s, plan in zip(recorded, planned, strict=True)])
    clock = time.perf_counter()
    report = check_lyrics(result.vocals, result.sample_rate, sections)
    # a second view, not the one vocal takes are chosen by: the whole stem at once, beam 5 (bench.asr)
    sung = " ".join(line for section in sections for line in section["lines"])
    whole_errors, whole_words = word_errors(sung, transcribe(result.vocals, result.sample_rate))
    takes = result.manifest.get("takes", [])
    return {"prompt": index, "style": style, "seed": seed, "seconds": round(result.seconds, 2),
            "errors": report.errors, "words": report.words, "hits": report.hits, "wer": round(report.wer, 4),
            "whole_song_errors": whole_errors, "whole_song_words": whole_words,
            "takes": takes, "later_takes_kept": sum(record["kept"] > 0 for record in takes),
            "silent_sections": sum(s.note == "(silence)" for s in report.sections),
            "generate_seconds": round(generate_seconds, 2), "check_seconds": round(time.perf_counter() - clock, 2),
            "warnings": result.warnings, "sections": report.to_dict()["sections"]}


def corpus_row(meta: dict, seconds: float, report) -> dict:
    """One corpus song's row of the results, from its ``check_lyrics`` report."""
    return {"id": meta["id"], "voice": meta["voice"]["name"], "seconds": round(seconds, 2),
            "errors": report.errors, "words": report.words, "hits": report.hits,
            "wer": None if report.wer is None else round(report.wer, 4),
            "silent_sections": sum(s.note == "(silence)" for s in report.sections),
            "sections": report.to_dict()["sections"]}


def check_corpus(folder: Path) -> dict:
    """The same check on one corpus song's ground-truth vocal stem."""
    from app.lyric_check import check_lyrics, sections_from_meta
    from corpus.audio_io import read_audio

    meta = json.loads((folder / "meta.json").read_text())
    samples, rate = read_audio(folder / "vocals.flac")
    return corpus_row(meta, len(samples) / rate, check_lyrics(samples, rate, sections_from_meta(meta)))


def check_corpus_decoded(generator, folder: Path, record: dict) -> dict:
    """The same check on one corpus song's vocal decoded from its own tokens (``--corpus-tokens``)."""
    from app.lyric_check import check_lyrics, sections_from_meta
    from tokenizer.duotok import TrackTokens

    meta = json.loads((folder / "meta.json").read_text())
    vocals, _, _ = generator.tokenizer.decode(TrackTokens(record["vocal"], record["accomp"]), seed=0,
                                              words=record.get("words") or None)
    rate = generator.sample_rate
    return corpus_row(meta, len(vocals) / rate, check_lyrics(vocals, rate, sections_from_meta(meta)))


def total(rows: list[dict]) -> dict:
    errors, words, hits = (sum(r[key] for r in rows) for key in ("errors", "words", "hits"))
    result = {"songs": len(rows), "errors": errors, "words": words,
              "wer": round(errors / words, 4) if words else None, "hits": hits,
              "silent_sections": sum(r["silent_sections"] for r in rows)}
    if rows and "whole_song_errors" in rows[0]:  # generated rows only
        whole_errors, whole_words = (sum(r[key] for r in rows) for key in ("whole_song_errors", "whole_song_words"))
        result |= {"whole_song_errors": whole_errors, "whole_song_words": whole_words,
                   "whole_song_wer": round(whole_errors / whole_words, 4) if whole_words else None,
                   "later_takes_kept": sum(r["later_takes_kept"] for r in rows),
                   "sections_with_takes": sum(len(r["takes"]) for r in rows)}
    return result


def table(result: dict) -> str:
    generated, corpus = result["generated"], result["corpus"]
    lines = [f"# Lyric WER: generated vocals vs the corpus's own ({result['machine']['date']})", "",
             f"`app.lyric_check.check_lyrics` (Whisper tiny.en, section by section) on the vocal stem. Generated: "
             f"`SongGenerator()` with the checkpoints in `{result['checkpoints']}`, {result['seconds']:g} s songs, "
             f"mode full, LM sampling options {result.get('options', 'the app defaults')}. Reference: the first "
             f"{corpus['total']['songs']} songs of `{result['corpus_folder']}` "
             "(ground-truth vocals). "
             "WER = errors ÷ lyric words, summed over sections and songs; silent = sections where no voice was "
             "found (all their words count as errors); heard right = lyric words the transcript matches exactly "
             "(WER counts silence and wrong words alike, this counts only the words that came through). "
             "Whole song: `bench.asr` (the same Whisper, beam 5) on the whole vocal stem at once, a view that "
             "vocal takes are not chosen by. Later takes kept: sections where a take after the first won "
             "(`options.takes` > 1).", "",
             "| prompt | style | seed | words | errors | WER | heard right | silent sections | WER, whole song | "
             "later takes kept |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in generated["per_prompt"]:
        whole = row["whole_song_errors"] / row["whole_song_words"] if row["whole_song_words"] else float("nan")
        lines.append(f"| {row['prompt']} | {row['style']} | {row['seed']} | {row['words']} | {row['errors']} | "
                     f"{row['wer']:.3f} | {row['hits']} | {row['silent_sections']} | {whole:.3f} | "
                     f"{row['later_takes_kept']} of {len(row['takes'])} |")
    g, c = generated["total"], corpus["total"]
    lines += [f"| **generated, all** | | | {g['words']} | {g['errors']} | **{g['wer']:.3f}** | {g['hits']} | "
              f"{g['silent_sections']} | **{g['whole_song_wer']:.3f}** | {g['later_takes_kept']} of "
              f"{g['sections_with_takes']} |", "",
              "| corpus song | voice | words | errors | WER | heard right |", "|---|---|---|---|---|---|"]
    for row in corpus["per_song"]:
        wer = "–" if row["wer"] is None else f"{row['wer']:.3f}"
        lines.append(f"| {row['id']} | {row['voice']} | {row['words']} | {row['errors']} | {wer} | {row['hits']} |")
    lines.append(f"| **corpus, all** | | {c['words']} | {c['errors']} | **{c['wer']:.3f}** | {c['hits']} |")
    if "corpus_decoded" in result:
        d = result["corpus_decoded"]["total"]
        lines.append(f"| **corpus tokens, decoded** | | {d['words']} | {d['errors']} | **{d['wer']:.3f}** | "
                     f"{d['hits']} |")
    lines += ["",
              f"Generated WER {g['wer']:.3f} against the ground truth's {c['wer']:.3f} under the same judge: "
              f"{result['wer_ratio']:.2f}× the floor."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-corpus", type=int, default=10, help="corpus songs checked as the reference")
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus/validation"))
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each generated song")
    parser.add_argument("--prompts", type=int, default=len(PROMPTS), help="use the first N prompts")
    parser.add_argument("--seed", type=int, default=0, help="prompt i is generated with seed SEED + i")
    parser.add_argument("--checkpoints", help="checkpoint root (default: the shipped checkpoints/)")
    parser.add_argument("--temperature", type=float, help="LM sampling temperature (default: the app's)")
    parser.add_argument("--cfg-scale", type=float, help="LM classifier-free guidance scale (default: the app's)")
    parser.add_argument("--phone-guidance", type=float, help="weight of the LM's phone table (default: the app's)")
    parser.add_argument("--takes", type=int, help="vocal takes per sung section (default: the app's)")
    parser.add_argument("--corpus-tokens", type=Path,
                        help="token corpus of --corpus (e.g. data/tokens/validation-ph): also check those songs' own "
                             "tokens decoded by the app's decoders")
    parser.add_argument("--name", default="app_lyrics", help="results file name under bench/results")
    args = parser.parse_args(argv)
    if not 1 <= args.prompts <= len(PROMPTS):
        parser.error(f"--prompts must be 1..{len(PROMPTS)}")
    if args.n_corpus < 1:
        parser.error("--n-corpus must be at least 1")

    from app.pipeline import SongGenerator
    from corpus.reader import find_song_folders

    folders = find_song_folders(args.corpus)[: args.n_corpus]
    if not folders:
        raise SystemExit(f"error: no song folders under {args.corpus}")
    started = time.time()
    generator = SongGenerator() if args.checkpoints is None else SongGenerator(args.checkpoints)
    options = {name: value for name, value in (("temperature", args.temperature), ("cfg_scale", args.cfg_scale),
                                                ("phone_guidance", args.phone_guidance), ("takes", args.takes))
               if value is not None} or None
    generated = []
    for index, (style, lyrics) in enumerate(PROMPTS[: args.prompts]):
        row = check_generated(generator, index, style, lyrics, args.seconds, args.seed + index, options)
        generated.append(row)
        print(f"[app_lyrics] prompt {index}: WER {row['wer']:.3f} ({row['errors']}/{row['words']})", flush=True)
    corpus = []
    for folder in folders:
        row = check_corpus(folder)
        corpus.append(row)
        print(f"[app_lyrics] corpus {row['id']}: WER {row['wer']} ({row['errors']}/{row['words']})", flush=True)

    decoded = []
    if args.corpus_tokens is not None:
        from lm.data import iter_token_records

        records = {r["id"]: r for r in iter_token_records(args.corpus_tokens)}
        missing = [folder.name for folder in folders if folder.name not in records]
        if missing:
            raise SystemExit(f"error: {args.corpus_tokens} has no tokens for {', '.join(missing[:3])}")
        for folder in folders:
            row = check_corpus_decoded(generator, folder, records[folder.name])
            decoded.append(row)
            print(f"[app_lyrics] corpus decoded {row['id']}: WER {row['wer']} ({row['errors']}/{row['words']})",
                  flush=True)

    g, c = total(generated), total(corpus)
    result = {"benchmark": "app_lyrics", "machine": machine(), "checkpoints": args.checkpoints or "checkpoints/",
              "asr": "app.lyric_check: whisper tiny.en (faster-whisper, int8), greedy, per section",
              "seconds": args.seconds, "corpus_folder": str(args.corpus), "options": options or "the app's defaults",
              "wer_ratio": round(g["wer"] / c["wer"], 3) if g["wer"] is not None and c["wer"] else None,
              "generated": {"total": g, "per_prompt": generated,
                            "prompts": [{"style": s, "lyrics": lyr} for s, lyr in PROMPTS[: args.prompts]]},
              "corpus": {"total": c, "per_song": corpus}, "wall_seconds": round(time.time() - started, 1)}
    if decoded:
        result["corpus_decoded"] = {"tokens": str(args.corpus_tokens), "total": total(decoded), "per_song": decoded}
    save(args.name, result, table(result))
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
