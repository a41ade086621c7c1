"""``python -m app``: a real run writes the song folder, redecode rebuilds it, and every bad input ends with one
``error:`` line and exit code 2 before any model loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from app.cli import main

ROOT = Path(__file__).resolve().parents[1]
LYRICS = "[verse]\nhold me close tonight\nunder city lights\n\n[chorus]\nsing it loud\n"


def run_app(*args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env=environment, check=False)


@pytest.fixture(scope="module")
def lyrics_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "song.txt"
    path.write_text(LYRICS)
    return path


def test_generate_then_redecode_through_the_real_command(lyrics_file, tmp_path):
    out = tmp_path / "song"
    done = run_app("generate", "--lyrics", str(lyrics_file), "--style", "upbeat pop, female vocal", "--duration", "5",
                   "--seed", "3", "--decoder-steps", "2", "--top-k", "40", "--phone-guidance", "1.5", "--format", "wav",
                   "--format", "flac", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "lm" in done.stderr  # progress went to stderr
    stems = {f"{stem}.{fmt}" for stem in ("mix", "vocals", "accompaniment") for fmt in ("wav", "flac")}
    assert {p.name for p in out.iterdir()} == {"manifest.json", "lyrics.lrc", *stems}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"]["seed"] == 3 and manifest["inputs"]["options"]["top_k"] == 40
    assert manifest["inputs"]["options"]["phone_guidance"] == 1.5
    assert manifest["inputs"]["lyrics"] == LYRICS and manifest["audio"]["n_frames"] == 125
    mix, rate = sf.read(out / "mix.wav", dtype="int16")
    assert rate == 24_000 and len(mix) == 125 * 960

    # redecode in-process (main is what python -m app runs): the same files, sample for sample
    again = tmp_path / "again"
    assert main(["redecode", str(out / "manifest.json"), "--out", str(again)]) == 0
    for stem in ("mix", "vocals", "accompaniment"):
        np.testing.assert_array_equal(sf.read(again / f"{stem}.wav", dtype="int16")[0],
                                      sf.read(out / f"{stem}.wav", dtype="int16")[0])


def test_bad_input_is_one_error_line_with_exit_code_2(lyrics_file, tmp_path):
    done = run_app("generate", "--lyrics", str(lyrics_file), "--duration", "500", "--out", str(tmp_path / "x"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: duration: 500 s is out of range; choose 5 s to 120 s"]
    assert not (tmp_path / "x").exists()


def test_bad_command_line_is_one_error_line_too(tmp_path):
    done = run_app("generate", "--mode", "karaoke", "--out", str(tmp_path))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("error: argument --mode: invalid choice: 'karaoke'")


@pytest.mark.parametrize(("arguments", "message"), [
    (["generate", "--lyrics", "{missing}"], "error: --lyrics: cannot read"),
    (["generate", "--lyrics", "{lyrics}", "--seed", "-4"], "error: seed: -4 is out of range"),
    (["generate", "--lyrics", "{lyrics}", "--top-p", "1.5"], "error: options.top_p: 1.5 is out of range"),
    (["generate", "--lyrics", "{lyrics}", "--takes", "9"], "error: options.takes: 9 is out of range"),
    (["generate", "--lyrics", "{lyrics}", "--mode", "accompany"], "error: audio: mode 'accompany' needs an upload"),
    (["generate", "--lyrics", "{lyrics}", "--mode", "accompany", "--audio", "{lyrics}"],
     "error: audio: cannot read the uploaded file"),
    (["generate", "--mode", "full"], "error: lyrics: the lyrics are empty"),
    (["generate", "--mode", "resample", "--manifest", "{lyrics}", "--track", "vocal"],
     "error: manifest: {lyrics} is not a readable JSON file"),
    (["generate", "--lyrics", "{lyrics}", "--track", "vocal"], "error: track: only applies to mode 'resample'"),
    (["redecode", "{missing}"], "error: manifest: {missing} does not exist"),
])
def test_cli_errors(lyrics_file, tmp_path, capsys, arguments, message):
    names = {"lyrics": str(lyrics_file), "missing": str(tmp_path / "missing.txt")}
    arguments = [a.format(**names) for a in arguments]
    assert main([*arguments, "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(message.format(**names)) and len(error.splitlines()) == 1
    assert not (tmp_path / "out").exists()
