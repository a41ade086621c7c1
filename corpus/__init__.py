"""Procedural, fully labelled song corpus and readers for user song folders.

The song-folder format (DESIGN.md §4) is the contract between this package and the tokenizer:
``<id>/mix.flac``, ``vocals.flac``, ``accompaniment.flac`` (mix = vocals + accompaniment, sample-exact),
optional ``stems/{drums,bass,other}.flac``, ``lyrics.txt`` with section tags and ``meta.json``.
"""

GENERATOR_VERSION = "0.1.0"
SAMPLE_RATE = 24_000  # the rate of the tiny models; every file the generator writes uses it
