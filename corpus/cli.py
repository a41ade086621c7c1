"""``python -m corpus <command>``: synth, demo, validate, split."""

from __future__ import annotations

import argparse
import sys

from corpus.reader import add_validate_arguments, run_validate
from corpus.splits import add_split_arguments, run_split
from corpus.synth import add_synth_arguments, run_synth


def _add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="outputs/demo", help="folder for the demo songs")
    parser.add_argument("--n", type=int, default=3)


def _run_demo(args: argparse.Namespace) -> int:
    """Render a few songs and say where they are: the quickest look at what the corpus sounds like."""
    args.seed, args.workers, args.min_seconds, args.max_seconds = 7, 1, 10.0, 20.0
    code = run_synth(args)
    print(f"demo songs are in {args.out}/ (mix.flac, vocals.flac, accompaniment.flac, lyrics.txt, meta.json)")
    return code


COMMANDS = {
    "synth": ("render a procedural, fully labelled song corpus", add_synth_arguments, run_synth),
    "demo": ("render three demo songs", _add_demo_arguments, _run_demo),
    "validate": ("list every problem in a folder of user songs (never modifies it)", add_validate_arguments,
                 run_validate),
    "split": ("deterministic train/validation/test split of a song folder", add_split_arguments, run_split),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m corpus", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        add_arguments(commands.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    return COMMANDS[args.command][2](args)


if __name__ == "__main__":
    sys.exit(main())
