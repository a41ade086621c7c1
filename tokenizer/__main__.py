"""``python -m tokenizer COMMAND``: the tokenizer's command line.

    tokenize SONGS_DIR --out TOKENS_DIR    song folders -> the LM's token corpus (tokenizer/tokenize_corpus.py)
    diagnose SOURCE... [--out DIR]         how well the tokens represent your audio (tokenizer/diagnose.py)

Training stays ``python -m tokenizer.train`` (accelerate launches it as its own module). Each command is a
subparser whose ``run`` returns the exit code; add new commands to ``COMMANDS``."""

from __future__ import annotations

import argparse
import sys


def _tokenize(parser: argparse.ArgumentParser) -> None:
    # imported here so `--help` and other commands do not import pyarrow and the corpus reader
    from tokenizer.tokenize_corpus import add_tokenize_arguments, run_tokenize

    add_tokenize_arguments(parser)
    parser.set_defaults(run=run_tokenize)


def _diagnose(parser: argparse.ArgumentParser) -> None:
    from tokenizer.diagnose import add_diagnose_arguments, run_diagnose

    add_diagnose_arguments(parser)
    parser.set_defaults(run=run_diagnose)


# name -> (one-line help, function adding the arguments and setting `run`)
COMMANDS = {
    "tokenize": ("encode song folders into Parquet token shards for the LM (resumable, parallel)", _tokenize),
    "diagnose": ("tokenize and decode your own audio: codes used and reconstruction mel L1 per stem", _diagnose),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tokenizer", description="Duo-Tok tokenizer commands.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add) in COMMANDS.items():
        add(commands.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
