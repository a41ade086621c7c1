"""Two settings of the app, song by song: paired differences between ``bench.app_lyrics`` runs.

Each ``--a`` result is paired with the ``--b`` result at the same position (the same prompts and seeds, e.g. one
run with ``--takes 3`` and one without, per seed); their songs are matched by prompt and seed. For the section
check's word errors, its words heard right and the whole-song transcript's word errors, the table gives both
totals and the mean per-song difference (A − B) with a 95% bootstrap interval over songs, so a difference can
be told from Whisper's song-to-song noise.

``python -m bench.app_lyrics_compare --a app_lyrics_takes3_s0 app_lyrics_takes3_s100 --b app_lyrics_takes1_s0
app_lyrics_takes1_s100 --name app_lyrics_takes`` -> bench/results/<name>.{json,md}"""

from __future__ import annotations

import argparse
import json

import numpy as np

from bench.common import RESULTS, bootstrap_interval, machine, save

MEASURES = (("errors", "word errors, section check"), ("hits", "words heard right, section check"),
            ("whole_song_errors", "word errors, whole song (beam 5)"))


def paired_rows(a_runs: list[dict], b_runs: list[dict]) -> list[tuple[dict, dict]]:
    """(A song, B song) pairs, matched by prompt and seed; refuses runs that made different songs."""
    pairs = []
    for a_run, b_run in zip(a_runs, b_runs, strict=True):
        b_songs = {(row["prompt"], row["seed"]): row for row in b_run["generated"]["per_prompt"]}
        for row in a_run["generated"]["per_prompt"]:
            key = (row["prompt"], row["seed"])
            if key not in b_songs or b_songs[key]["words"] != row["words"]:
                raise SystemExit(f"error: prompt {key[0]} seed {key[1]} is not in both runs with the same lyrics")
            pairs.append((row, b_songs[key]))
    return pairs


def compare(pairs: list[tuple[dict, dict]]) -> dict:
    out = {}
    for key, _ in MEASURES:
        if any(key not in row for pair in pairs for row in pair):
            continue  # runs made before the whole-song column
        a, b = (np.array([pair[side][key] for pair in pairs]) for side in (0, 1))
        out[key] = {"a_total": int(a.sum()), "b_total": int(b.sum()),
                    "mean_difference": round(float((a - b).mean()), 3), "interval": bootstrap_interval(a - b),
                    "differences": (a - b).tolist()}
    return out


def table(result: dict) -> str:
    lines = [f"# App lyric check, two settings song by song ({result['machine']['date']})", "",
             f"A: {', '.join(result['a'])} ({result['a_options']}); B: {', '.join(result['b'])} "
             f"({result['b_options']}). {result['songs']} songs ({result['words']} lyric words), paired by prompt "
             "and seed; difference = A − B per song, mean with a 95% bootstrap interval over songs.", "",
             "| measure | A total | B total | mean difference per song (interval) |", "|---|---|---|---|"]
    for key, label in MEASURES:
        if key in result["measures"]:
            m = result["measures"][key]
            low, high = m["interval"]
            lines.append(f"| {label} | {m['a_total']} | {m['b_total']} | {m['mean_difference']:+.2f} "
                         f"({low:+.2f} … {high:+.2f}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", nargs="+", required=True, help="bench.app_lyrics result names (bench/results)")
    parser.add_argument("--b", nargs="+", required=True, help="as many result names, paired in order with --a")
    parser.add_argument("--name", default="app_lyrics_compare", help="results file name under bench/results")
    args = parser.parse_args(argv)
    if len(args.a) != len(args.b):
        parser.error("--a and --b need as many result names each")
    try:
        a_runs, b_runs = ([json.loads((RESULTS / f"{name}.json").read_text()) for name in names]
                          for names in (args.a, args.b))
    except (OSError, json.JSONDecodeError) as error:
        raise SystemExit(f"error: cannot read a result: {error}") from None
    pairs = paired_rows(a_runs, b_runs)
    result = {"benchmark": "app_lyrics_compare", "machine": machine(), "a": args.a, "b": args.b,
              "a_options": a_runs[0].get("options"), "b_options": b_runs[0].get("options"),
              "songs": len(pairs), "words": sum(pair[0]["words"] for pair in pairs), "measures": compare(pairs)}
    save(args.name, result, table(result))
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
