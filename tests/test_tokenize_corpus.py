"""``python -m tokenizer tokenize``: records, sections, resume, errors, workers, bad arguments.

One small corpus (two generated songs, a mix-only folder, a broken folder) and one random-init tiny Duo-Tok
are built per module, and the first run's output is shared, so the whole file stays within seconds."""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch

from lm.layout import song_tokens_from_record
from tokenizer.__main__ import main
from tokenizer.checkpoint import save_pretrained
from tokenizer.config import DuoTokConfig
from tokenizer.frontend import token_frames
from tokenizer.model import DuoTokModel
from tokenizer.tokenize_corpus import (
    ERRORS_NAME,
    FORMAT_VERSION,
    INFO_NAME,
    SCHEMA,
    frame_sections,
    iter_records,
    load_token_corpus,
    shard_paths,
)

SR = 24_000


def small_config() -> DuoTokConfig:
    """The values of tests/test_tokenizer_model.py::small_config: a model that encodes in a blink."""
    return DuoTokConfig(d_model=64, n_heads=2, ffn_dim=128, lower_layers=1, upper_layers=1, conv_channels=8,
                        ssl_codebook_size=64, codebook_size=32, codebook_dim=16, bottleneck_dim=16)


def make_checkpoint(directory: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    save_pretrained(DuoTokModel(small_config()), directory)
    return directory


@pytest.fixture(scope="module")
def songs(tiny_songs, tmp_path_factory) -> Path:
    """The shared two songs (copied: this corpus adds a mix-only and a broken song folder beside them)."""
    root = tmp_path_factory.mktemp("songs") / "corpus"
    shutil.copytree(tiny_songs, root)
    mix_only = root / "mixonly"
    mix_only.mkdir()
    t = np.arange(int(3.3 * SR)) / SR
    sf.write(mix_only / "mix.flac", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR)
    (mix_only / "lyrics.txt").write_text("[Verse 1]\nHello there my friend\n")
    (mix_only / "style.txt").write_text("quiet sine drone\n")
    broken = root / "broken"
    broken.mkdir()
    (broken / "vocals.flac").write_bytes(b"this is not audio")
    sf.write(broken / "accompaniment.flac", (0.3 * np.sin(2 * np.pi * 110 * t)).astype(np.float32), SR)
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "duotok-test", seed=0)


def tokenize(songs_dir, out, checkpoint, *extra) -> int:
    return main(["tokenize", str(songs_dir), "--out", str(out), "--checkpoint", str(checkpoint), "--no-progress",
                 *map(str, extra)])


def last_json_line(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def first_run(songs, checkpoint, tmp_path_factory):
    """One single-process run, shards of 2 songs (3 good songs -> 2 shards)."""
    out = tmp_path_factory.mktemp("tokens") / "train"
    code = tokenize(songs, out, checkpoint, "--shard-size", 2)
    return out, code


def by_id(out: Path) -> dict[str, dict]:
    return {record["id"]: record for record in iter_records(out)}


def test_records_have_equal_tracks_at_25_hz_and_contiguous_sections(songs, checkpoint, first_run):
    out, code = first_run
    assert code == 1  # the broken folder failed, the others did not
    records = by_id(out)
    generated = sorted(p.name for p in songs.iterdir() if p.name.startswith("s11-"))
    assert sorted(records) == sorted([*generated, "mixonly"])
    version = hashlib.sha1((checkpoint / "model.safetensors").read_bytes()).hexdigest()[:12]
    for song_id, record in records.items():
        mix, rate = sf.read(songs / song_id / "mix.flac")
        assert rate == SR
        expected = token_frames(len(mix), 240, 4)
        assert expected == len(mix) * 25 // SR  # floor to whole token frames
        assert record["n_frames"] == expected == len(record["vocal"]) == len(record["accomp"])
        assert record["vocal"].dtype == np.int64 and record["accomp"].dtype == np.int64
        assert record["vocal"].min() >= 0 and record["vocal"].max() < 32 and record["accomp"].max() < 32
        assert record["frame_rate"] == 25.0 and record["codebook_size"] == 32
        assert record["tokenizer"] == "duotok-test" and record["tokenizer_version"] == version
        sections = record["sections"]
        assert sections[0]["start_frame"] == 0 and sections[-1]["end_frame"] == record["n_frames"]
        for before, after in itertools.pairwise(sections):
            assert before["end_frame"] == after["start_frame"]
        assert all(s["end_frame"] >= s["start_frame"] for s in sections)
    for song_id in generated:
        meta = json.loads((songs / song_id / "meta.json").read_text())
        record = records[song_id]
        assert record["source"] == "stems"
        assert record["style"] == meta["style_prompt"]
        assert record["lyrics"].strip() == (songs / song_id / "lyrics.txt").read_text().strip()
        assert [s["name"] for s in record["sections"]] == [s["name"] for s in meta["sections"]]
        assert [s["vocal"] for s in record["sections"]] == [s["vocal"] for s in meta["sections"]]
        assert [s["start_frame"] for s in record["sections"]] == [round(s["start"] * 25) for s in meta["sections"]]
    mix_only = records["mixonly"]
    assert mix_only["source"] == "mix" and mix_only["style"] == "quiet sine drone"
    assert mix_only["lyrics"] == "[verse]\nHello there my friend\n"  # canonical form
    assert mix_only["sections"] == [{"name": "verse", "start_frame": 0, "end_frame": mix_only["n_frames"],
                                     "vocal": True}]


def test_parquet_shards_info_and_datasets_loading(first_run, tmp_path):
    out, _ = first_run
    shards = shard_paths(out)
    assert [p.name for p in shards] == ["shard-00-00000.parquet", "shard-00-00001.parquet"]
    assert pq.read_schema(shards[0]).remove_metadata() == SCHEMA
    assert not list(out.glob(".*tmp"))
    info = json.loads((out / INFO_NAME).read_text())
    records = by_id(out)
    assert info["format_version"] == FORMAT_VERSION and info["n_songs"] == 3
    assert info["n_frames"] == sum(r["n_frames"] for r in records.values())
    assert info["codebook_size"] == 32 and info["frame_rate"] == 25.0 and info["tokenizer"] == "duotok-test"
    dataset = load_token_corpus(out)
    assert dataset.num_rows == 3 and set(dataset.column_names) == set(SCHEMA.names)
    row = next(r for r in dataset if r["id"] == "mixonly")
    assert row["vocal"] == records["mixonly"]["vocal"].tolist()
    # the format promise: plain `datasets` reads the shards without this module
    from datasets import load_dataset

    plain = load_dataset("parquet", data_files=[str(p) for p in shards], split="train", cache_dir=str(tmp_path))
    assert sorted(plain["id"]) == sorted(records)


def test_broken_song_is_listed_in_errors_and_the_others_succeed(first_run, songs):
    out, code = first_run
    assert code == 1
    errors = [json.loads(line) for line in (out / ERRORS_NAME).read_text().splitlines()]
    assert [e["id"] for e in errors] == ["broken"]
    assert errors[0]["path"] == str(songs / "broken") and "vocals.flac" in errors[0]["message"]


def test_second_run_skips_finished_songs_and_changes_no_shard(first_run, songs, checkpoint, capsys):
    out, _ = first_run
    before = {p.name: p.read_bytes() for p in shard_paths(out)}
    capsys.readouterr()
    assert tokenize(songs, out, checkpoint, "--shard-size", 2) == 1  # the broken song still fails
    summary = last_json_line(capsys.readouterr().out)
    assert summary["done"] == 0 and summary["skipped"] == 3 and summary["failed"] == 1
    assert {p.name: p.read_bytes() for p in shard_paths(out)} == before


def test_a_lost_shard_is_redone_and_only_its_songs(first_run, songs, checkpoint, tmp_path, capsys):
    out = tmp_path / "tokens"
    shutil.copytree(first_run[0], out)
    lost = shard_paths(out)[0]
    lost_ids = pq.read_table(lost, columns=["id"])["id"].to_pylist()
    lost.unlink()
    capsys.readouterr()
    tokenize(songs, out, checkpoint, "--shard-size", 2)
    summary = last_json_line(capsys.readouterr().out)
    assert summary["done"] == len(lost_ids) and summary["skipped"] == 3 - len(lost_ids)
    assert shard_paths(out)[-1].name == "shard-00-00002.parquet"  # new shards never reuse a name
    redone, original = by_id(out), by_id(first_run[0])
    assert sorted(redone) == sorted(original)
    for song_id in lost_ids:
        np.testing.assert_array_equal(redone[song_id]["vocal"], original[song_id]["vocal"])


def test_two_workers_give_the_same_records(first_run, songs, checkpoint, tmp_path):
    out = tmp_path / "tokens"
    assert tokenize(songs, out, checkpoint, "--workers", 2, "--shard-size", 2) == 1
    names = sorted(p.name for p in shard_paths(out))
    assert any(n.startswith("shard-00-") for n in names) and any(n.startswith("shard-01-") for n in names)
    two, one = by_id(out), by_id(first_run[0])
    assert sorted(two) == sorted(one)
    for song_id, record in one.items():
        for key, value in record.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(two[song_id][key], value, err_msg=f"{song_id} {key}")
            else:
                assert two[song_id][key] == value, (song_id, key)
    assert [json.loads(line)["id"] for line in (out / ERRORS_NAME).read_text().splitlines()] == ["broken"]


def test_records_feed_the_lm_layout(first_run):
    for record in iter_records(first_run[0]):
        song = song_tokens_from_record(record, lambda text: [ord(c) % 50 for c in text])
        assert sum(len(section.vocal) for section in song.sections) == record["n_frames"]
        assert len(song.sections) == len(record["sections"])


def test_shards_of_another_tokenizer_version_are_refused_unless_overwrite(songs, checkpoint, tmp_path, capsys):
    corpus = tmp_path / "songs"
    shutil.copytree(songs / "mixonly", corpus / "mixonly")
    out = tmp_path / "tokens"
    assert tokenize(corpus, out, checkpoint) == 0
    other = make_checkpoint(tmp_path / "duotok-other", seed=1)
    capsys.readouterr()
    assert tokenize(corpus, out, other) == 2
    message = capsys.readouterr().err
    assert "tokenizer version" in message and "--overwrite" in message
    assert tokenize(corpus, out, other, "--overwrite") == 0
    assert [r["tokenizer"] for r in iter_records(out)] == ["duotok-other"]


@pytest.mark.parametrize("case", ["missing songs", "no songs", "missing checkpoint", "no weights", "workers 0"])
def test_bad_arguments_exit_2_with_a_clear_message(case, songs, checkpoint, tmp_path, capsys):
    songs_dir, ckpt, extra = songs, checkpoint, []
    if case == "missing songs":
        songs_dir, expected = tmp_path / "nope", "does not exist"
    elif case == "no songs":
        songs_dir, expected = tmp_path, "no song folders"
    elif case == "missing checkpoint":
        ckpt, expected = tmp_path / "duotok-missing", "duotok-missing"
    elif case == "no weights":
        ckpt = tmp_path / "duotok-empty"
        ckpt.mkdir()
        (ckpt / "config.json").write_text("{}")
        expected = "model.safetensors"
    else:
        extra, expected = ["--workers", 0], "--workers"
    assert tokenize(songs_dir, tmp_path / "out", ckpt, *extra) == 2
    assert expected in capsys.readouterr().err
    assert not shard_paths(tmp_path / "out")


def test_frame_sections_round_clip_and_stay_contiguous():
    meta = [{"name": "intro", "start": 0.5, "end": 2.0, "vocal": False},
            {"name": "Verse 1", "start": 2.01, "end": 4.0},  # no flag: a verse is sung
            {"name": "outro", "start": 4.5, "end": 9.0},  # gap before it; runs past the audio
            {"name": "chorus", "start": 9.0, "end": 10.0, "vocal": True}]  # starts after the audio ends
    assert frame_sections(meta, 150, 25.0, True) == [
        {"name": "intro", "start_frame": 0, "end_frame": 50, "vocal": False},
        {"name": "verse", "start_frame": 50, "end_frame": 112, "vocal": True},
        {"name": "outro", "start_frame": 112, "end_frame": 150, "vocal": False},
        {"name": "chorus", "start_frame": 150, "end_frame": 150, "vocal": True}]
    assert frame_sections(None, 80, 25.0, False) == [
        {"name": "inst", "start_frame": 0, "end_frame": 80, "vocal": False}]
    with pytest.raises(ValueError, match="section 0"):
        frame_sections([{"name": "verse", "start": 3.0, "end": 1.0}], 80, 25.0, True)
