"""``python -m app COMMAND``: song generation without the UI.

    python -m app generate --lyrics song.txt --style "upbeat pop, female vocal" --duration 20 --seed 1 --out outputs/s1
    python -m app generate --mode instrumental --style "calm piano" --duration 15 --out outputs/inst
    python -m app generate --mode accompany --audio my_vocal.wav --lyrics song.txt --out outputs/acc
    python -m app generate --mode resample --manifest outputs/s1 --track vocal --section 1 --seed 2 --out outputs/s1b
    python -m app redecode outputs/s1/manifest.json --out outputs/s1-again
    python -m app remix outputs/s1 --vocals-db -3 --accompaniment-db off       # new mix levels, no model runs

Each writes mix, vocals and accompaniment (``--format wav`` and/or ``flac``) and manifest.json into ``--out``
(``app.manifest.save``); ``remix`` rewrites a saved song's mix at new levels (``app.mixing``) from its stems, in
place unless ``--out`` is given. Inputs are checked before the models load; a bad one ends the run with a single
``error: …`` line on stderr and exit code 2. Progress and warnings go to stderr, the written files to stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from app.request import DURATION_RANGE, MAX_SEED, MODES, TRACK_NAMES, InputError, SongOptions, make_request

USAGE_ERROR = 2


class UsageError(Exception):
    """A problem the user can fix (bad argument, unreadable file, missing checkpoint): one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one ``error:`` line (no usage dump) and exits with 2."""

    def error(self, message: str):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(USAGE_ERROR)


def _add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="folder for the audio files and manifest.json")
    parser.add_argument("--format", action="append", choices=("wav", "flac"), dest="formats",
                        help="audio format, may be repeated (default: wav)")
    parser.add_argument("--checkpoints", type=Path, default=None,
                        help="folder holding duotok-tiny/ and lm-tiny/ (default: the project's checkpoints/)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")


def _add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SongOptions()
    parser.add_argument("--lyrics", type=Path, default=None,
                        help="text file with [verse]/[chorus]/… sections ('-' reads stdin); optional for the "
                             "instrumental, accompany and continue modes")
    parser.add_argument("--style", default="", help='style prompt, e.g. "upbeat pop, female vocal, piano"')
    parser.add_argument("--duration", type=float, default=30.0,
                        help=f"seconds, {DURATION_RANGE[0]:g}–{DURATION_RANGE[1]:g} (continue: the new part; "
                             "the tiny LM holds about 38 s) (default: 30)")
    parser.add_argument("--seed", type=int, default=0, help=f"0–{MAX_SEED} (default: 0)")
    parser.add_argument("--mode", default="full", choices=MODES, help="what to make (default: full)")
    parser.add_argument("--audio", type=Path, default=None,
                        help="upload: the vocal (accompany), the instrumental (sing_over) or the song (continue)")
    parser.add_argument("--manifest", type=Path, default=None,
                        help="manifest.json (or its folder) of the song to continue or re-sample")
    parser.add_argument("--track", choices=sorted(TRACK_NAMES), default=None, help="resample: the track to re-sample")
    parser.add_argument("--section", type=int, default=None, help="resample: only this section (0-based)")
    parser.add_argument("--temperature", type=float, default=defaults.temperature, help="0 = greedy")
    parser.add_argument("--top-k", type=int, default=defaults.top_k, help="0 = off (default: %(default)s)")
    parser.add_argument("--top-p", type=float, default=defaults.top_p, help="1 = off")
    parser.add_argument("--cfg-scale", type=float, default=defaults.cfg_scale,
                        help="classifier-free guidance; 1 = off, >1 follows lyrics and style harder (2x slower)")
    parser.add_argument("--phone-guidance", type=float, default=defaults.phone_guidance,
                        help="how hard the vocal codes are pulled towards each cued phone (the LM's phone table, "
                             "lm.phone_prior); 0 = off (default: %(default)s)")
    parser.add_argument("--decoder-steps", type=int, default=None,
                        help="flow steps of the token -> audio decoders (default: theirs; 0 = no flow)")
    parser.add_argument("--takes", type=int, default=defaults.takes,
                        help="vocal takes per sung section, the one Whisper hears best kept (default: %(default)s; "
                             "each take costs about one more LM pass over its section)")
    _add_output_arguments(parser)


def _add_redecode_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, help="manifest.json of a generated song, or its folder")
    _add_output_arguments(parser)


def _level(text: str) -> float | None:
    """A mix level on the command line: dB as a number, or "off"/"mute" for a muted track."""
    if text.strip().lower() in ("off", "mute", "muted"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of dB or 'off', got {text!r}") from None


def _add_remix_arguments(parser: argparse.ArgumentParser) -> None:
    from app.mixing import LEVEL_RANGE_DB

    parser.add_argument("song", type=Path, help="a song folder written by generate/redecode (or its manifest.json)")
    low, high = LEVEL_RANGE_DB
    for track in ("vocals", "accompaniment"):
        parser.add_argument(f"--{track}-db", type=_level, default=0.0, metavar="DB",
                            help=f"level of the {track} in the mix, {low:g} to {high:g} dB, or 'off' (default: 0)")
    parser.add_argument("--out", type=Path, default=None, help="folder to write to (default: the song's own folder)")


def _read_lyrics(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"--lyrics: cannot read {path} as UTF-8 text ({error})") from None


def _tokenizer_rates(checkpoints: Path | None) -> tuple[int, int]:
    """The tokenizer's sample rate and samples per frame, from its config.json (no model loaded)."""
    from app.manifest import DEFAULT_CHECKPOINTS, TOKENIZER_FOLDER
    from tokenizer.config import DuoTokConfig

    path = (checkpoints or DEFAULT_CHECKPOINTS) / TOKENIZER_FOLDER / "config.json"
    try:
        config = DuoTokConfig.load(path)
    except (OSError, ValueError, TypeError) as error:
        raise UsageError(f"cannot read the tokenizer config {path} ({error})") from None
    return int(config.sample_rate), int(config.samples_per_token)


def _load_generator(args: argparse.Namespace):
    from app.pipeline import DEFAULT_CHECKPOINTS, SongGenerator

    print("loading models…", file=sys.stderr)
    try:
        return SongGenerator(args.checkpoints or DEFAULT_CHECKPOINTS, device=args.device)
    except (OSError, ValueError, RuntimeError) as error:  # missing/corrupt checkpoints, unknown device
        raise UsageError(f"cannot load the models: {error}") from None


class _StderrProgress:
    """Progress events on stderr: a tqdm bar for the LM's frames, one line for the other stages."""

    def __init__(self):
        self.bar: tqdm | None = None

    def __call__(self, event) -> None:
        if event.stage == "lm":
            if self.bar is None:
                self.bar = tqdm(total=event.total, desc="lm", unit="frame", file=sys.stderr, leave=True)
            self.bar.update(event.done - self.bar.n)
            return
        self.close()
        if event.done == 0 or event.stage == "done":
            print(f"{event.stage}: {event.message}", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _save(result, args: argparse.Namespace) -> int:
    from app.manifest import save

    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        paths = save(result, args.out, formats=tuple(args.formats or ("wav",)))
    except OSError as error:
        raise UsageError(f"--out: cannot write to {args.out} ({error})") from None
    print(f"{result.seconds:.2f} s song written to {args.out}: {', '.join(sorted(paths))}")
    return 0


def run_generate(args: argparse.Namespace) -> int:
    options = {"temperature": args.temperature, "top_k": args.top_k or None, "top_p": args.top_p,
               "cfg_scale": args.cfg_scale, "phone_guidance": args.phone_guidance, "decoder_steps": args.decoder_steps,
               "takes": args.takes}
    sample_rate, samples_per_frame = _tokenizer_rates(args.checkpoints)
    # checked before the models load, so a typo costs a second, not a model load
    request = make_request(_read_lyrics(args.lyrics), args.style, args.duration, args.seed, args.mode, options,
                           audio=args.audio, manifest=args.manifest, section=args.section, track=args.track,
                           sample_rate=sample_rate, samples_per_frame=samples_per_frame)
    generator = _load_generator(args)
    progress = _StderrProgress()
    try:
        result = generator.run(request, progress)
    finally:
        progress.close()
    return _save(result, args)


def run_redecode(args: argparse.Namespace) -> int:
    from app.manifest import ManifestError, manifest_tokens, read_manifest

    try:
        manifest_tokens(read_manifest(args.manifest))
    except ManifestError as error:
        raise UsageError(f"manifest: {error}") from None
    generator = _load_generator(args)
    return _save(generator.redecode(args.manifest, _StderrProgress()), args)


def run_remix(args: argparse.Namespace) -> int:
    from app.manifest import AUDIO_FORMATS, MANIFEST_NAME, save
    from app.mixing import LevelError, describe
    from app.pipeline import load_song

    song = load_song(args.song)  # InputError names the song folder's problem
    kept = [fmt for fmt in AUDIO_FORMATS if f"vocals.{fmt}" in song.manifest.get("files", {}).get("names", [])]
    try:
        result = song.remixed({"vocals_db": args.vocals_db, "accompaniment_db": args.accompaniment_db})
    except LevelError as error:
        raise UsageError(f"--{error.field.removesuffix('_db')}-db: {error.message}") from None
    out = args.out or (args.song.parent if args.song.name == MANIFEST_NAME else args.song)
    try:
        paths = save(result, out, formats=tuple(kept or ("wav",)))
    except OSError as error:
        raise UsageError(f"--out: cannot write to {out} ({error})") from None
    print(f"mix at {describe(result.levels)} written to {out}: {', '.join(sorted(paths))}")
    return 0


COMMANDS = {
    "generate": ("make a song from lyrics and a style (all modes)", _add_generate_arguments, run_generate),
    "redecode": ("rebuild a song's audio from its manifest", _add_redecode_arguments, run_redecode),
    "remix": ("mix a saved song's stems again at new levels (no model runs)", _add_remix_arguments, run_remix),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m app", description="Lyrics-to-song generation without the UI.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, run) in COMMANDS.items():
        command = commands.add_parser(name, help=help_text, description=help_text)
        add_arguments(command)
        command.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (InputError, UsageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
