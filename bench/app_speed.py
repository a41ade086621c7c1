"""End-to-end speed and memory of the generation app on this CPU: ``SongGenerator`` with the shipped checkpoints
(checkpoints/duotok-tiny + checkpoints/lm-tiny) making full songs (vocals + accompaniment) of each length.

What is measured, per song length (default 10 s and 30 s) and seed (default 3 seeds, 0..N-1):
- **real-time factor** (RTF) = wall-clock seconds of ``SongGenerator.generate`` / seconds of audio it returns;
  below 1 means faster than real time. The model load is not part of it (the app loads once, then serves
  many songs) and is reported on its own;
- the split of that time into **LM** (token sampling, ``manifest["timings"]["lm"]``), **decoders** (the two
  flow-matching token -> mel decoders) and **vocoder** (mel -> waveform). The manifest times decoders and
  vocoder together (``timings["decode"]``), so after each song its tokens are decoded once more, outside the
  pipeline, timing ``DuoTok.decode_mel`` per track and ``DuoTok.vocoder`` separately with the same steps and
  seeds ``DuoTok.decode`` uses (the same work); ``decode`` from the manifest is shown beside their sum;
- **peak memory**: the resident-set high-water mark (``getrusage(RUSAGE_SELF).ru_maxrss``) of a fresh Python
  process per length, which imports the app, loads the models and makes that length's songs; so one length's
  peak cannot hide another's. The high-water mark right after loading is reported too (the models' share).
  The process also holds the decode re-run above, which allocates what the pipeline's decode did;
- **load**: seconds to import the app (torch, transformers, …) and to build ``SongGenerator()``.

Before the timed songs each process makes one untimed 5 s warm-up song: the first call after loading pays
one-off costs (lazy initialisation inside torch and the models; 0.1-0.2 s of extra decode time in a trial run)
that would otherwise land in seed 0's row and make its decoders + vocoder split disagree with its decode time.
The warm-up song's time is reported beside the load, so the first song a user waits for is still visible.
Torch uses its default thread count (all cores) unless OMP_NUM_THREADS says otherwise; the load average at the
start is recorded so that numbers from a busy machine can be recognised.

Quality bar (issue 7): "a 30 s song generates on this 2-core CPU in less time than its own length". It passes
when the slowest 30 s run's ``generate`` time is below 30 s (model load excluded, see above).

With ``--takes N`` every song (the warm-up too, so Whisper's load falls there) is made with N vocal takes per
section (``SongOptions.takes``), and the vocal takes' share of the time gets its own column.

``python -m bench.app_speed [--seconds 10 30] [--seeds 3] [--takes 1] [--name app_speed]``
-> bench/results/app_speed.{json,md}"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import machine, save

# Nothing heavy is imported at module level: the parent process only starts workers and writes the tables, and
# a small parent keeps the workers' ru_maxrss honest. Linux carries the parent's high-water mark into a child it
# starts (checked: a parent at 313 MiB starts a bare python whose ru_maxrss reads 313 MiB), so the parent (about
# 30 MiB) must stay far below any worker's peak; its own mark is recorded as "parent_peak_rss_mib".

# One lyric line per section of about 5 s (a 7-syllable line needs about 4 s sung, app.request), verse and chorus
# in turn: a 30 s song gets 6 sections, as a user's sheet would, and no section outgrows the 12 s the LM saw.
LINES = [("verse", "hold me close and tell me why"), ("chorus", "sing it loud and let it go"),
         ("verse", "the night is long and so am i"), ("chorus", "dance with me and take it slow"),
         ("verse", "walking home along the road"), ("chorus", "singing softly as we go")]
STYLE = "upbeat pop, female vocal, 120 bpm, piano, bass and drums"
QUALITY_BAR_SECONDS = 30.0
SECONDS_PER_SECTION = 5.0
WARMUP_SECONDS = 5.0  # the shortest song the app makes (app.request.DURATION_RANGE)


def lyrics_for(seconds: float) -> str:
    """The lyric sheet of a song of ``seconds``: ``LINES`` in order, one per ~5 s section, repeated if needed."""
    count = max(1, round(seconds / SECONDS_PER_SECTION))
    sections = [LINES[i % len(LINES)] for i in range(count)]
    return "\n\n".join(f"[{tag}]\n{line}" for tag, line in sections) + "\n"


def max_rss_mib() -> float:
    """This process's resident-set high-water mark in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_decode_parts(tokenizer, tokens, steps, seed: int) -> tuple[float, float]:
    """``(decoder seconds, vocoder seconds)`` for both tracks: ``DuoTok.decode``'s own loop, timed in parts."""
    import torch

    decoders = vocoder = 0.0
    with torch.no_grad():
        for offset, track in enumerate(("vocal", "accomp")):
            clock = time.perf_counter()
            mel = tokenizer.decode_mel(getattr(tokens, track), track, steps=steps, seed=seed + offset,
                                       vocal=tokens.vocal if track == "accomp" else None)
            decoders += time.perf_counter() - clock
            clock = time.perf_counter()
            tokenizer.vocoder(mel[None].float())
            vocoder += time.perf_counter() - clock
    return decoders, vocoder


def worker(seconds: float, seeds: list[int], checkpoints: str | None, takes: int = 1) -> dict:
    """One song length, in this (fresh) process: import, load, generate every seed. Returns the measurements."""
    load_average = os.getloadavg()[0]
    clock = time.perf_counter()
    import torch

    from app.pipeline import SongGenerator
    imported = time.perf_counter() - clock

    clock = time.perf_counter()
    # on the CPU even where a GPU exists: the quality bar is about this CPU
    generator = SongGenerator(device="cpu") if checkpoints is None else SongGenerator(checkpoints, device="cpu")
    loaded = time.perf_counter() - clock
    rss_after_load = max_rss_mib()
    clock = time.perf_counter()
    options = {"takes": takes}
    generator.generate(lyrics_for(WARMUP_SECONDS), STYLE, duration=WARMUP_SECONDS, seed=0, options=options)
    warmup = time.perf_counter() - clock

    runs = []
    for seed in seeds:
        clock = time.perf_counter()
        result = generator.generate(lyrics_for(seconds), STYLE, duration=seconds, seed=seed, options=options)
        wall = time.perf_counter() - clock
        timings, decoder = result.manifest["timings"], result.manifest["decoder"]
        decoders, vocoder = time_decode_parts(generator.tokenizer, result.tokens, decoder["steps"], decoder["seed"])
        runs.append({"seed": seed, "audio_seconds": round(result.seconds, 3), "generate_seconds": round(wall, 3),
                     "rtf": round(wall / result.seconds, 4), "lm_seconds": timings["lm"],
                     "takes_seconds": timings.get("takes", 0.0),
                     "decode_seconds": timings["decode"], "decoders_seconds": round(decoders, 3),
                     "vocoder_seconds": round(vocoder, 3), "warnings": result.warnings})
        print(f"[app_speed] {seconds:g} s, seed {seed}: {wall:.2f} s (RTF {wall / result.seconds:.3f})", flush=True)
    return {"seconds": seconds, "threads": torch.get_num_threads(), "load_average_at_start": round(load_average, 2),
            "import_seconds": round(imported, 2), "load_seconds": round(loaded, 2), "warmup_seconds": round(warmup, 2),
            "rss_after_load_mib": round(rss_after_load, 1), "peak_rss_mib": round(max_rss_mib(), 1),
            "decoder_steps": decoder["steps_used"], "runs": runs}


def run_length(seconds: float, n_seeds: int, checkpoints: str | None, takes: int = 1) -> dict:
    """``worker`` in a fresh Python process (its own memory high-water mark); returns its measurements."""
    with tempfile.TemporaryDirectory(prefix="bench-app-speed-") as tmp:
        out = Path(tmp) / "length.json"
        command = [sys.executable, "-m", "bench.app_speed", "--worker", "--seconds", str(seconds),
                   "--seeds", str(n_seeds), "--takes", str(takes), "--out", str(out)]
        if checkpoints is not None:
            command += ["--checkpoints", checkpoints]
        subprocess.run(command, check=True, cwd=Path(__file__).resolve().parents[1])
        return json.loads(out.read_text())


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def summarise(length: dict) -> dict:
    """Means over the seeds of one length, and whether it beats real time in the slowest run."""
    runs = length["runs"]
    keys = ("generate_seconds", "rtf", "lm_seconds", "takes_seconds", "decode_seconds", "decoders_seconds",
            "vocoder_seconds")
    summary = {f"mean_{k}": round(mean(r[k] for r in runs), 4 if k == "rtf" else 3) for k in keys}
    summary["slowest_generate_seconds"] = max(r["generate_seconds"] for r in runs)
    summary["audio_seconds"] = runs[0]["audio_seconds"]
    summary["faster_than_real_time"] = summary["slowest_generate_seconds"] < summary["audio_seconds"]
    return summary


def quality_bar(lengths: list[dict]) -> dict:
    """Issue 7's bar, judged on the slowest 30 s run; "not measured" when no 30 s song was made."""
    bar = {"text": "a 30 s song generates on this 2-core CPU in less time than its own length",
           "verdict": "not measured"}
    for length in lengths:
        if length["seconds"] == QUALITY_BAR_SECONDS:
            summary = length["summary"]
            bar.update(verdict="PASS" if summary["faster_than_real_time"] else "FAIL",
                       slowest_generate_seconds=summary["slowest_generate_seconds"],
                       mean_generate_seconds=summary["mean_generate_seconds"], load_seconds=length["load_seconds"])
    return bar


def table(result: dict) -> str:
    lines = [f"# Generation app: speed and memory on this CPU ({result['machine']['date']})", "",
             f"`SongGenerator()` with the shipped checkpoints, mode full, {result['takes']} vocal take(s) per "
             f"section, seeds 0..{result['seeds'] - 1} per length, "
             f"{result['machine']['cpu']} ({result['machine']['cores']} cores). RTF = `generate` seconds ÷ audio "
             "seconds (below 1 is faster than real time). LM and decode (decoders + vocoder) are the manifest's "
             "timings; the decoders / vocoder split is a re-timed second decode of the same tokens.", "",
             "| length | seed | generate s | RTF | LM s | vocal takes s | decode s | decoders s | vocoder s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for length in result["lengths"]:
        for run in length["runs"]:
            lines.append(f"| {length['seconds']:g} s | {run['seed']} | {run['generate_seconds']:.2f} | "
                         f"{run['rtf']:.3f} | {run['lm_seconds']:.2f} | {run['takes_seconds']:.2f} | "
                         f"{run['decode_seconds']:.2f} | "
                         f"{run['decoders_seconds']:.2f} | {run['vocoder_seconds']:.2f} |")
        s = length["summary"]
        lines.append(f"| **{length['seconds']:g} s** | **mean** | **{s['mean_generate_seconds']:.2f}** | "
                     f"**{s['mean_rtf']:.3f}** | {s['mean_lm_seconds']:.2f} | {s['mean_takes_seconds']:.2f} | "
                     f"{s['mean_decode_seconds']:.2f} | "
                     f"{s['mean_decoders_seconds']:.2f} | {s['mean_vocoder_seconds']:.2f} |")
    lines += ["", "Memory and load, one fresh process per length (ru_maxrss high-water mark):", "",
              "| length | threads | load avg at start | import s | model load s | warm-up 5 s song s "
              "| RSS after load MiB | peak RSS MiB |",
              "|---|---|---|---|---|---|---|---|"]
    for length in result["lengths"]:
        lines.append(f"| {length['seconds']:g} s | {length['threads']} | {length['load_average_at_start']} | "
                     f"{length['import_seconds']:.2f} | {length['load_seconds']:.2f} | "
                     f"{length['warmup_seconds']:.2f} | "
                     f"{length['rss_after_load_mib']:.0f} | {length['peak_rss_mib']:.0f} |")
    bar = result["quality_bar"]
    lines += ["", f"Quality bar (issue 7): \"{bar['text']}\": **{bar['verdict']}**" + (
        f" (slowest of {result['seeds']} runs {bar['slowest_generate_seconds']:.2f} s, mean "
        f"{bar['mean_generate_seconds']:.2f} s, model load of {bar['load_seconds']:.1f} s not included)."
        if bar["verdict"] != "not measured" else f" (run with --seconds {QUALITY_BAR_SECONDS:g} to measure it).")]
    if result["takes"] != 1:
        lines.append(f"These songs had {result['takes']} vocal takes per section; the bar is about the app's "
                     "default of one.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0, 30.0], help="song lengths")
    parser.add_argument("--seeds", type=int, default=3, help="songs per length (seeds 0..N-1)")
    parser.add_argument("--checkpoints", help="checkpoint root (default: the shipped checkpoints/)")
    parser.add_argument("--takes", type=int, default=1, help="vocal takes per section (SongOptions.takes)")
    parser.add_argument("--name", default="app_speed", help="results file name under bench/results")
    # internal: one length in this process (the parent runs each length so)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")

    if args.worker:
        measured = worker(args.seconds[0], list(range(args.seeds)), args.checkpoints, args.takes)
        args.out.write_text(json.dumps(measured))
        return 0

    lengths = []
    for seconds in args.seconds:
        length = run_length(seconds, args.seeds, args.checkpoints, args.takes)
        length["summary"] = summarise(length)
        lengths.append(length)
    result = {"benchmark": "app_speed", "machine": machine(), "checkpoints": args.checkpoints or "checkpoints/",
              "lyrics": {f"{s:g}": lyrics_for(s) for s in args.seconds}, "style": STYLE, "seeds": args.seeds,
              "takes": args.takes, "quality_bar": quality_bar(lengths),
              "parent_peak_rss_mib": round(max_rss_mib(), 1), "lengths": lengths}
    save(args.name, result, table(result))
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
