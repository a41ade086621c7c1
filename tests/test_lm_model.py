"""Tests for lm.text, lm.model, lm.data and lm.train on a toy token corpus written in the documented shard format
(tokenizer/tokenize_corpus.py docstring) with pyarrow, so they exercise the format, not the tokenizer code."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors import safe_open

from corpus import audio_io
from lm.data import (
    IGNORE_INDEX,
    TokenDataError,
    TokenDataset,
    corpus_texts,
    drop_condition,
    make_loader,
    plan_windows,
    window_ids,
)
from lm.layout import SectionTokens, SongTokens, Vocabulary, build_sequence, revert_sequence
from lm.model import LM_CONFIGS, CheckpointError, LMConfig, SongLM
from lm.text import text_for_model, train_text_tokenizer
from lm.train import main as train_main

CODEBOOK = 32
TEST_CONFIG = LMConfig("test", hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64,
                       max_position_embeddings=256, rope_theta=10_000.0, cond_dropout=0.5)
SECTION_TYPE = pa.struct([("name", pa.string()), ("start_frame", pa.int32()), ("end_frame", pa.int32()),
                          ("vocal", pa.bool_())])
SCHEMA = pa.schema([("id", pa.string()), ("vocal", pa.list_(pa.int16())), ("accomp", pa.list_(pa.int16())),
                    ("n_frames", pa.int32()), ("frame_rate", pa.float64()), ("codebook_size", pa.int32()),
                    ("tokenizer", pa.string()), ("tokenizer_version", pa.string()), ("lyrics", pa.string()),
                    ("style", pa.string()), ("sections", pa.list_(SECTION_TYPE)), ("source", pa.string())])
WORDS = ["love", "night", "fire", "road", "home", "dream", "rain", "light", "heart", "river", "gold", "sky"]
STYLES = ["upbeat pop, female vocal, 120 bpm, piano", "slow ballad, male vocal, guitar", "funk, bass, 100 bpm"]


def toy_record(index: int, codebook_size: int = CODEBOOK) -> dict:
    rng = np.random.default_rng(index)
    layout = [("intro", False), ("verse", True), ("chorus", True), ("outro", False)]
    sections, lyrics, frame = [], [], 0
    for name, sung in layout:
        n_frames = int(rng.integers(8, 40))
        sections.append({"name": name, "start_frame": frame, "end_frame": frame + n_frames, "vocal": sung})
        frame += n_frames
        if sung:
            lines = [" ".join(rng.choice(WORDS, 4)) for _ in range(2)]
            lyrics.append(f"[{name}]\n" + "\n".join(lines))
    return {"id": f"song-{index:03d}", "vocal": rng.integers(0, codebook_size, frame).tolist(),
            "accomp": rng.integers(0, codebook_size, frame).tolist(), "n_frames": frame, "frame_rate": 25.0,
            "codebook_size": codebook_size, "tokenizer": "toy", "tokenizer_version": "000000000000",
            "lyrics": "\n\n".join(lyrics) + "\n", "style": STYLES[index % len(STYLES)], "sections": sections,
            "source": "stems"}


def write_corpus(folder, records: list[dict], codebook_size: int = CODEBOOK):
    folder.mkdir(parents=True, exist_ok=True)
    if records:
        pq.write_table(pa.Table.from_pylist(records, schema=SCHEMA), folder / "shard-0-0.parquet")
    info = {"format_version": 1, "codebook_size": codebook_size, "frame_rate": 25.0, "tokenizer": "toy",
            "tokenizer_version": "000000000000", "n_songs": len(records),
            "n_frames": sum(r["n_frames"] for r in records), "shards": ["shard-0-0.parquet"] if records else []}
    (folder / "info.json").write_text(json.dumps(info))
    return folder


@pytest.fixture(scope="module")
def toy_corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("tokens"), [toy_record(i) for i in range(8)])


@pytest.fixture(scope="module")
def text_model(toy_corpus, tmp_path_factory):
    return train_text_tokenizer(corpus_texts(toy_corpus), tmp_path_factory.mktemp("spm") / "spm.model", 300)


@pytest.fixture(scope="module")
def vocab(text_model):
    return Vocabulary(text_model.vocab_size, CODEBOOK, CODEBOOK)


def random_song(rng, frames: list[int], n_style: int = 5) -> SongTokens:
    sections = []
    for index, n_frames in enumerate(frames):
        instrumental = index % 3 == 0
        sections.append(SectionTokens("inst" if instrumental else "verse",
                                      [] if instrumental else rng.integers(0, 50, int(rng.integers(1, 9))).tolist(),
                                      rng.integers(0, CODEBOOK, n_frames), rng.integers(0, CODEBOOK, n_frames),
                                      instrumental))
    return SongTokens(rng.integers(0, 50, n_style).tolist(), sections)


def test_text_model_marks_line_breaks_and_round_trips(text_model):
    lines = ["love night fire road", "home dream rain"]
    assert text_model.encode("love night fire road\nhome dream rain") == text_model.encode(text_for_model(lines))
    assert text_model.decode(text_model.encode(text_for_model(lines))) == "love night fire road / home dream rain"
    pieces = text_model.encode("unseen wörds ✨")  # byte fallback: nothing becomes <unk>
    assert 0 not in pieces and text_model.decode(pieces) == "unseen wörds ✨"
    assert all(0 <= i < text_model.vocab_size for i in pieces)


def test_songlm_save_load_round_trip_gives_identical_logits(tmp_path, text_model, vocab):
    torch.manual_seed(0)
    song_lm = SongLM.create(TEST_CONFIG, vocab, text_model)
    song_lm.model.eval()
    song_lm.save_pretrained(tmp_path / "ckpt")
    song_lm.save_pretrained(tmp_path / "ckpt")  # replacing an existing folder works and leaves no temp folders
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    # the folder has a plain mkdir's mode, not the 0700 of the temporary folder it was written into
    assert (tmp_path / "ckpt").stat().st_mode & 0o777 == 0o777 & ~audio_io._UMASK
    # and every file a plain open's mode (transformers writes its weights file as 0600)
    assert {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "ckpt").iterdir()} == {
        p.name: 0o666 & ~audio_io._UMASK for p in (tmp_path / "ckpt").iterdir()}
    loaded = SongLM.from_pretrained(tmp_path / "ckpt")
    ids = torch.randint(0, vocab.size, (2, 40))
    assert torch.equal(song_lm.model(ids).logits, loaded.model(ids).logits)
    assert loaded.vocab == vocab and loaded.config == TEST_CONFIG and loaded.text.vocab_size == text_model.vocab_size
    assert loaded.model.lm_head.weight is loaded.model.model.embed_tokens.weight  # still tied
    assert loaded.lyric_ids(["love night", "fire road"]) == song_lm.text_ids("love night\nfire road")
    assert all(vocab.is_text(i) for i in loaded.style_ids("upbeat pop"))

    (tmp_path / "ckpt" / "spm.model").unlink()
    with pytest.raises(CheckpointError, match=r"missing spm.model"):
        SongLM.from_pretrained(tmp_path / "ckpt")
    song_lm.save_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="unreadable"):
        SongLM.from_pretrained(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="does not exist"):
        SongLM.from_pretrained(tmp_path / "nowhere")


def test_float16_storage_halves_the_file_and_loads_back_tied_in_float32(tmp_path, text_model, vocab):
    torch.manual_seed(0)
    song_lm = SongLM.create(TEST_CONFIG, vocab, text_model)
    song_lm.model.eval()
    song_lm.save_pretrained(tmp_path / "fp32")
    song_lm.save_pretrained(tmp_path / "fp16", dtype=torch.float16)
    assert next(song_lm.model.parameters()).dtype == torch.float32  # the model in memory is untouched
    with safe_open(tmp_path / "fp16" / "model.safetensors", "pt") as stored:
        names = stored.keys()  # a safetensors file handle is not a mapping: no `in`, no iteration
        assert "lm_head.weight" not in names  # the tied head is stored once, as the embedding
        assert {stored.get_slice(name).get_dtype() for name in names} == {"F16"}
    size = {name: (tmp_path / name / "model.safetensors").stat().st_size for name in ("fp32", "fp16")}
    assert size["fp16"] < 0.55 * size["fp32"]
    loaded = SongLM.from_pretrained(tmp_path / "fp16")
    assert next(loaded.model.parameters()).dtype == torch.float32
    assert loaded.model.lm_head.weight is loaded.model.model.embed_tokens.weight
    rounded = {name: tensor.half().float() for name, tensor in song_lm.model.state_dict().items()}
    assert all(torch.equal(loaded.model.state_dict()[name], rounded[name]) for name in rounded)


@pytest.mark.parametrize("seed", range(6))
def test_windows_keep_the_style_prefix_and_never_split_a_frame(seed, vocab):
    rng = np.random.default_rng(seed)
    song = random_song(rng, [int(n) for n in rng.integers(0, 70, int(rng.integers(1, 6)))] + [90])
    max_len = 64  # shorter than the 90-frame section: continuation windows are exercised too
    full = build_sequence(song, vocab)
    prefix = full[:3 + len(song.style_ids)]
    windows = plan_windows(song, max_len)
    covered = [np.zeros(section.n_frames, dtype=bool) for section in song.sections]
    for window, length in windows:
        ids = window_ids(song, window, vocab)
        assert len(ids) == length <= max_len
        assert np.array_equal(ids[:len(prefix)], prefix)  # the whole condition, every time
        assert vocab.section_tag(int(ids[len(prefix)])) is not None  # then a section starts
        # closing what the window leaves open must give a valid sequence: every frame is a (vocal, accomp) pair
        closers = [vocab.audio_close_id] * (not window.closed) + [vocab.eos_id] * (not window.ends_song)
        reverted = revert_sequence(np.concatenate([ids, np.array(closers, dtype=np.int64)]), vocab)
        assert reverted.style_ids == song.style_ids
        for offset, section in enumerate(reverted.sections):
            index = window.first_section + offset
            start = window.first_frame if offset == 0 else 0
            original = song.sections[index]
            assert section.text_ids == original.text_ids  # a continuation window restates its lyrics
            assert np.array_equal(section.vocal, original.vocal[start:start + section.n_frames])
            covered[index][start:start + section.n_frames] = True
    assert windows[-1][0].ends_song and all(c.all() for c in covered)
    whole = plan_windows(song, len(full))
    assert len(whole) == 1 and np.array_equal(window_ids(song, whole[0][0], vocab), full)


def test_drop_condition_blanks_exactly_the_text(vocab):
    song = random_song(np.random.default_rng(3), [5, 7, 4, 6])
    dropped = drop_condition(song)
    full, unconditional = build_sequence(song, vocab), build_sequence(dropped, vocab)
    assert not vocab.is_text(unconditional).any()
    assert np.array_equal(full[~vocab.is_text(full)], unconditional)  # everything but the text is kept, in order
    assert song.style_ids and song.sections[1].text_ids  # the original is untouched


def test_batches_are_padded_with_ignored_labels_and_dropout_removes_text(toy_corpus, text_model, vocab):
    loader = make_loader(toy_corpus, text_model, batch_size=3, max_len=80, seed=0, split="all", shuffle=True)
    assert loader.dataset.vocab == vocab and len(loader.dataset.songs) == 8
    batches = list(loader)
    assert sum(len(b["input_ids"]) for b in batches) == len(loader.dataset)
    padded = False
    for batch in batches:
        pad = batch["attention_mask"] == 0
        padded |= bool(pad.any())
        assert torch.all(batch["labels"][pad] == IGNORE_INDEX) and torch.all(batch["input_ids"][pad] == vocab.pad_id)
        assert torch.equal(batch["labels"][~pad], batch["input_ids"][~pad])
    assert padded
    dropping = TokenDataset(toy_corpus, text_model, 80, split="all", cond_dropout=0.999)
    assert not any(vocab.is_text(dropping[i]["input_ids"].numpy()).any() for i in range(len(dropping)))
    keeping = TokenDataset(toy_corpus, text_model, 80, split="all", cond_dropout=0.0)
    assert vocab.is_text(keeping[0]["input_ids"].numpy()).any()


def test_hash_split_partitions_the_songs(toy_corpus, text_model):
    train = TokenDataset(toy_corpus, text_model, 512, split="train", val_fraction=0.5)
    val = TokenDataset(toy_corpus, text_model, 512, split="val", val_fraction=0.5)
    assert sorted(train.song_ids + val.song_ids) == [f"song-{i:03d}" for i in range(8)]


def test_training_cli_runs_two_steps_and_resumes_to_three(toy_corpus, tmp_path, monkeypatch):
    monkeypatch.setitem(LM_CONFIGS, "test", TEST_CONFIG)
    run_dir, export = tmp_path / "run", tmp_path / "export"
    common = ["--data", str(toy_corpus), "--val-data", str(toy_corpus), "--config", "test", "--run-dir", str(run_dir),
              "--batch-size", "2", "--max-len", "96", "--text-vocab-size", "300", "--save-every", "1",
              "--log-every", "1", "--eval-every", "2", "--eval-batches", "2"]
    assert train_main([*common, "--steps", "2"]) == 0
    assert train_main([*common, "--steps", "3", "--export", str(export), "--export-dtype", "float16"]) == 0
    lines = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if "loss" in line] == [1, 2, 3]
    evals = [line for line in lines if "val_loss" in line]
    assert [line["step"] for line in evals] == [2, 3]
    assert all(line[f"val_{track}"] > 0 for line in evals for track in ("vocal", "accomp", "text", "markers"))
    loaded = SongLM.from_pretrained(export)
    assert loaded.config == TEST_CONFIG and loaded.vocab.codebook_size_vocal == CODEBOOK
    with safe_open(export / "model.safetensors", "pt") as stored:
        assert stored.get_slice("model.embed_tokens.weight").get_dtype() == "F16"
    assert (run_dir / "spm.model").is_file()


def test_training_keeps_the_lowest_validation_loss_across_a_resume_and_exports_it(toy_corpus, tmp_path,
                                                                                  monkeypatch):
    monkeypatch.setitem(LM_CONFIGS, "test", TEST_CONFIG)
    run_dir, export = tmp_path / "run", tmp_path / "export"
    common = ["--data", str(toy_corpus), "--val-data", str(toy_corpus), "--config", "test", "--run-dir", str(run_dir),
              "--batch-size", "2", "--max-len", "96", "--text-vocab-size", "300", "--save-every", "2",
              "--eval-every", "1", "--eval-batches", "2", "--warmup", "1"]
    assert train_main([*common, "--steps", "3", "--lr", "3e-3"]) == 0
    # resumed with a learning rate that wrecks the weights: every later evaluation is worse than the first three,
    # so the best must stay one of those (which also needs the resumed run to remember it)
    assert train_main([*common, "--steps", "6", "--lr", "30", "--export", str(export), "--export-best"]) == 0
    evals = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    losses = {line["step"]: line["val_loss"] for line in evals if "val_loss" in line}
    assert sorted(losses) == [1, 2, 3, 4, 5, 6]
    best = json.loads((run_dir / "best.json").read_text())
    assert best["step"] <= 3 and best["val_loss"] == losses[best["step"]] == min(losses.values())
    exported, kept = SongLM.from_pretrained(export), SongLM.from_pretrained(run_dir / "best")
    last = SongLM.from_pretrained(run_dir / "final").model.state_dict()
    assert all(torch.equal(exported.model.state_dict()[name], tensor)
               for name, tensor in kept.model.state_dict().items())
    assert not all(torch.equal(last[name], tensor) for name, tensor in kept.model.state_dict().items())


def test_export_best_needs_an_export_and_validation_songs(toy_corpus, tmp_path):
    with pytest.raises(SystemExit, match="add --export"):
        train_main(["--data", str(toy_corpus), "--run-dir", str(tmp_path / "run"), "--export-best"])
    with pytest.raises(SystemExit, match="needs validation songs"):
        train_main(["--data", str(toy_corpus), "--run-dir", str(tmp_path / "run"), "--val-fraction", "0",
                    "--export", str(tmp_path / "export"), "--export-best"])


def test_bad_inputs_give_clear_errors(toy_corpus, tmp_path, text_model):
    with pytest.raises(TokenDataError, match="does not exist"):
        make_loader(tmp_path / "missing", text_model, 2, 64)
    with pytest.raises(SystemExit, match="does not exist"):
        train_main(["--data", str(tmp_path / "missing"), "--run-dir", str(tmp_path / "run")])
    with pytest.raises(TokenDataError, match="empty"):
        make_loader(write_corpus(tmp_path / "empty", []), text_model, 2, 64)
    with pytest.raises(TokenDataError, match="codebook mismatch"):
        make_loader(toy_corpus, text_model, 2, 64, vocab=Vocabulary(text_model.vocab_size, 64, 64))
    other = write_corpus(tmp_path / "other", [toy_record(0, codebook_size=64)], codebook_size=64)
    with pytest.raises(SystemExit, match="codebook mismatch"):
        train_main(["--data", str(toy_corpus), "--val-data", str(other), "--run-dir", str(tmp_path / "run")])
    lying = toy_record(1)
    lying["vocal"][0] = CODEBOOK + 5  # a code that info.json's codebook cannot hold
    with pytest.raises(TokenDataError, match="outside the codebook"):
        make_loader(write_corpus(tmp_path / "lying", [lying]), text_model, 2, 64, split="all")
    with pytest.raises(TokenDataError, match="too short"):
        make_loader(toy_corpus, text_model, 2, 8, split="all")


def test_pieces_for_generation_are_the_unshifted_text_ids(text_model, vocab):
    song_lm = SongLM.create(TEST_CONFIG, vocab, text_model)
    pieces = song_lm.lyric_pieces(["love night", "fire road"])
    assert song_lm.vocab.text_id(pieces).tolist() == song_lm.lyric_ids(["love night", "fire road"])
    assert song_lm.style_pieces("") == []
