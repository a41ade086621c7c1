"""Atomic writes (corpus.audio_io, tokenizer.checkpoint.write_weights): the new file replaces the old whole, a
failed write leaves the old file and no temporary behind, and what lands has the mode a plain open() would give
it under the umask (not the 0600 of the temporary it was written through)."""

import os
import stat

import numpy as np
import pytest
from torch import nn

from corpus import audio_io
from corpus.audio_io import atomic_write_bytes, atomic_write_json, give_default_mode, read_audio, write_audio
from tokenizer.checkpoint import write_weights


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a" / "b.json"
    atomic_write_json(target, {"x": 1})
    atomic_write_json(target, {"x": 2})
    assert target.read_text() == '{\n "x": 2\n}\n'
    assert [p.name for p in target.parent.iterdir()] == ["b.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "b.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["b.bin"]


def test_written_files_get_the_default_mode(tmp_path):
    expected = 0o666 & ~audio_io._UMASK  # 0644 under the usual umask 022; the temporary was 0600
    atomic_write_bytes(tmp_path / "a.bin", b"x")
    write_audio(tmp_path / "a.flac", np.zeros(2400, dtype=np.float32), 24_000)
    write_weights(nn.Linear(2, 2), tmp_path / "weights")
    for path in (tmp_path / "a.bin", tmp_path / "a.flac", tmp_path / "weights" / "model.safetensors"):
        assert mode(path) == expected, path
    audio, rate = read_audio(tmp_path / "a.flac")
    assert rate == 24_000 and audio.shape == (2400,)


def test_give_default_mode_on_a_folder(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir(mode=0o700)
    give_default_mode(folder, directory=True)
    assert mode(folder) == 0o777 & ~audio_io._UMASK
