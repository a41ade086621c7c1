"""Does the generated vocal follow the lyrics section by section? Each section's transcript against every section's
lyrics, from ``bench.app_lyrics`` results (no new generation, no new Whisper pass).

Issue 7 asks for a vocal stem that "follows the lyrics section by section". The word error rate mixes two things:
how clearly a word is sung and whether the right words are sung there at all. This reads the second: for each
sung section of the generated songs, the section check's transcript (Whisper tiny.en, ``app.lyric_check``) is
scored against the lyrics of every distinct section of the same runs (word-level edit distance ÷ the lyrics'
words). Per section:

- **rank**: the share of the other sections' lyrics that match the transcript worse than its own lyrics do (ties
  count half). Singing that ignores the words scores 0.5 on average; 1.0 means its own lyrics match best of all.
- **identified**: its own lyrics match strictly best of all (chance: one in the number of distinct lyrics).

The corpus's own vocals, read the same way from the same result files (``corpus`` rows: ground-truth singing
against the lyrics of the corpus sections), give the reference a sung corpus reaches under this judge; where the
results hold them (``bench.app_lyrics --corpus-tokens``), the same songs' own tokens through the app's decoders
give the ceiling these decoders leave for generated tokens. With
``--against``, the two sets of runs are paired section by section (same prompt, seed and section) and the mean
rank difference gets a 95% bootstrap interval over sections.

``python -m bench.section_following --runs app_lyrics_pg10_s0 app_lyrics_pg10_s100 --against app_lyrics_vp1_s0
app_lyrics_vp1_s100 --name section_following_pg10`` -> bench/results/<name>.{json,md}
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from rapidfuzz.distance import Levenshtein

from app.lyric_check import normalise
from bench.common import RESULTS, bootstrap_interval, machine, save


def sections_of(runs: list[dict], kind: str) -> list[dict]:
    """Sung sections with words, as ``{"key", "lyrics" (normalised words), "heard" (normalised words)}``;
    ``kind`` "generated" (keyed by prompt, seed, section), "corpus" or "corpus_decoded" (by song id, section)."""
    sections = []
    for run in runs:
        rows = run[kind]["per_prompt" if kind == "generated" else "per_song"]
        for row in rows:
            song = (row["prompt"], row["seed"]) if kind == "generated" else (row["id"],)
            for section in row["sections"]:
                lyrics = normalise(" ".join(section["lines"]))
                if lyrics:
                    sections.append({"key": (*song, section["name"]), "lyrics": lyrics,
                                     "heard": normalise(section["hypothesis"])})
    return sections


def following(sections: list[dict]) -> dict:
    """Rank and identification of each section among the distinct lyrics of ``sections`` (module docstring)."""
    pool: list[tuple[str, ...]] = []
    for section in sections:
        if tuple(section["lyrics"]) not in pool:
            pool.append(tuple(section["lyrics"]))
    if len(pool) < 2:
        raise SystemExit("error: fewer than two distinct section lyrics: nothing to tell apart")
    ranks, identified = [], []
    for section in sections:
        own = tuple(section["lyrics"])
        distance = {lyrics: Levenshtein.distance(list(lyrics), section["heard"]) / len(lyrics) for lyrics in pool}
        others = np.array([d for lyrics, d in distance.items() if lyrics != own])
        ranks.append(float(np.mean(distance[own] < others) + 0.5 * np.mean(distance[own] == others)))
        identified.append(bool(distance[own] < others.min()))
    return {"sections": len(sections), "distinct_lyrics": len(pool), "mean_rank": round(float(np.mean(ranks)), 4),
            "rank_interval": bootstrap_interval(ranks), "identified": int(sum(identified)),
            "chance_identified": round(len(sections) / len(pool), 2),
            "per_section": [{"key": list(s["key"]), "rank": round(r, 4), "identified": i}
                            for s, r, i in zip(sections, ranks, identified, strict=True)]}


def paired(a: dict, b: dict) -> dict:
    """Mean rank difference A − B over the sections both have (same prompt, seed and section)."""
    b_rank = {tuple(row["key"]): row["rank"] for row in b["per_section"]}
    differences = [row["rank"] - b_rank[tuple(row["key"])] for row in a["per_section"] if tuple(row["key"]) in b_rank]
    if not differences:
        raise SystemExit("error: the two sets of runs share no section (same prompt, seed and section name)")
    return {"sections": len(differences), "mean_difference": round(float(np.mean(differences)), 4),
            "interval": bootstrap_interval(differences)}


def _row(label: str, m: dict) -> str:
    low, high = m["rank_interval"]
    return (f"| {label} | {m['sections']} | {m['distinct_lyrics']} | **{m['mean_rank']:.3f}** ({low:.3f} … "
            f"{high:.3f}) | {m['identified']} (chance {m['chance_identified']:g}) |")


def table(result: dict) -> str:
    lines = [f"# Section by section: does each sung section match its own lyrics best? ({result['machine']['date']})",
             "", f"Runs: {', '.join(result['runs'])} ({result['options']})"
             + (f"; against {', '.join(result['against'])} ({result['against_options']})" if result["against"] else "")
             + ". Rank: share of the other sections' lyrics that match a section's transcript worse than its own "
               "(0.5 = the words are not followed); identified: its own lyrics match best of all. 95% bootstrap "
               "intervals over sections.", "",
             "| singing | sections | distinct lyrics | mean rank (interval) | identified |", "|---|---|---|---|---|",
             _row("generated", result["generated"])]
    if result["against"]:
        lines.append(_row("generated, against", result["against_generated"]))
    lines.append(_row("corpus vocals (ground truth)", result["corpus"]))
    if "corpus_decoded" in result:
        lines.append(_row("corpus tokens, decoded", result["corpus_decoded"]))
    if result["against"]:
        p = result["paired"]
        low, high = p["interval"]
        lines += ["", f"Paired over {p['sections']} sections, mean rank difference (runs − against): "
                      f"**{p['mean_difference']:+.3f}** ({low:+.3f} … {high:+.3f})."]
    return "\n".join(lines)


def _load(names: list[str]) -> list[dict]:
    try:
        return [json.loads((RESULTS / f"{name}.json").read_text()) for name in names]
    except (OSError, json.JSONDecodeError) as error:
        raise SystemExit(f"error: cannot read a result: {error}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="bench.app_lyrics result names (bench/results)")
    parser.add_argument("--against", nargs="*", default=[], help="result names of another setting, same prompts")
    parser.add_argument("--name", default="section_following", help="results file name under bench/results")
    args = parser.parse_args(argv)
    runs, against = _load(args.runs), _load(args.against)
    result = {"benchmark": "section_following", "machine": machine(), "runs": args.runs, "against": args.against,
              "options": runs[0].get("options") or "the app's defaults of the day",
              "generated": following(sections_of(runs, "generated")),
              "corpus": following(sections_of(runs[:1], "corpus"))}
    if "corpus_decoded" in runs[0]:
        result["corpus_decoded"] = following(sections_of(runs[:1], "corpus_decoded"))
    if against:
        result["against_options"] = against[0].get("options") or "the app's defaults of the day"
        result["against_generated"] = following(sections_of(against, "generated"))
        result["paired"] = paired(result["generated"], result["against_generated"])
    save(args.name, result, table(result))
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
