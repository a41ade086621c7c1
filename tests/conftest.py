"""Fixtures shared by several test files."""

import pytest


@pytest.fixture(scope="session")
def tiny_songs(tmp_path_factory):
    """Two generated 6–8 s songs (corpus seed 11) for the training CLIs' one-step runs; read only, so every test
    file shares one synthesis."""
    from corpus.song import SongOptions
    from corpus.synth import synthesize

    out = tmp_path_factory.mktemp("songs")
    summary = synthesize(out, 2, 11, options=SongOptions(min_seconds=6, max_seconds=8), progress=False)
    assert summary["failed"] == {}
    return out
