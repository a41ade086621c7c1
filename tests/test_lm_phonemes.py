"""Lyric phonemes (lm/phonemes.py) through the text model, the training data, the LM and its training CLI; and the
frame labels of bench/unseen_words.py, which measures whether they help."""

from __future__ import annotations

import numpy as np
import pytest

from bench.unseen_words import GROUPS, frame_groups, training_words
from lm.data import TokenDataset, corpus_texts
from lm.layout import Vocabulary
from lm.model import LM_CONFIGS, SongLM
from lm.phonemes import PHONE_SYMBOLS, add_phonemes, has_phonemes, strip_phonemes, word_phones
from lm.text import text_for_model, train_text_tokenizer
from lm.train import main as train_main
from tests.test_lm_model import CODEBOOK, TEST_CONFIG, toy_record, write_corpus


@pytest.fixture(scope="module")
def toy_corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("tokens"), [toy_record(i) for i in range(8)])


@pytest.fixture(scope="module")
def phoneme_model(toy_corpus, tmp_path_factory):
    return train_text_tokenizer(corpus_texts(toy_corpus, phonemes=True), tmp_path_factory.mktemp("spm") / "spm.model",
                                400, phonemes=True)


@pytest.fixture(scope="module")
def plain_model(toy_corpus, tmp_path_factory):
    return train_text_tokenizer(corpus_texts(toy_corpus), tmp_path_factory.mktemp("spm") / "spm.model", 300)


def test_word_phones_drop_stress_case_and_edge_punctuation():
    assert word_phones("Hold,") == ["HH", "OW", "L", "D"]
    assert word_phones("tonight!") == ["T", "AH", "N", "AY", "T"]
    assert word_phones("don't") == ["D", "OW", "N", "T"]
    assert word_phones("zxqvbl") is None and word_phones("...") is None


def test_add_phonemes_keeps_every_word_and_line_and_strip_undoes_it():
    text = "hold me close,\nzxqvbl tonight"
    marked = add_phonemes(text)
    assert marked == "hold{HH}{OW}{L}{D} me{M}{IY} close,{K}{L}{OW}{S}\nzxqvbl tonight{T}{AH}{N}{AY}{T}"
    assert strip_phonemes(marked) == text and has_phonemes(marked) and not has_phonemes(text)


def test_phoneme_text_model_gives_each_phone_one_piece_and_only_lyrics_get_phones(phoneme_model, plain_model):
    assert phoneme_model.phonemes and not plain_model.phonemes
    for symbol in PHONE_SYMBOLS:
        assert len(phoneme_model.encode(symbol)) <= 2  # the symbol, after at most a word-start piece
        assert phoneme_model.id_to_piece(phoneme_model.encode(symbol)[-1]) == symbol
    lyric = phoneme_model.encode_lyrics("love night\nfire road")
    pieces = [phoneme_model.id_to_piece(i) for i in lyric]
    assert "{L}" in pieces and "{AY}" in pieces
    assert strip_phonemes(phoneme_model.decode(lyric)) == text_for_model(["love night", "fire road"])
    style = [phoneme_model.id_to_piece(i) for i in phoneme_model.encode("love night")]
    assert not any(piece in PHONE_SYMBOLS for piece in style)
    assert plain_model.encode_lyrics("love night\nfire road") == plain_model.encode("love night\nfire road")


def test_training_windows_and_the_lm_encode_lyrics_with_phones(toy_corpus, phoneme_model):
    vocab = Vocabulary(phoneme_model.vocab_size, CODEBOOK, CODEBOOK)
    dataset = TokenDataset(toy_corpus, phoneme_model, 256, split="all")
    phone_ids = {phoneme_model.encode(symbol)[-1] for symbol in PHONE_SYMBOLS}
    sung = [s for song in dataset.songs for s in song.sections if not s.instrumental]
    assert sung and all(phone_ids & set(s.text_ids) for s in sung)
    assert not any(phone_ids & set(song.style_ids) for song in dataset.songs)
    song_lm = SongLM.create(TEST_CONFIG, vocab, phoneme_model)
    assert song_lm.lyric_pieces(["love night", "fire road"]) == phoneme_model.encode_lyrics("love night\nfire road")
    assert song_lm.lyric_ids("love night") == vocab.text_id(phoneme_model.encode_lyrics("love night")).tolist()


def test_training_cli_trains_a_phoneme_text_model_and_refuses_to_mix_kinds(toy_corpus, tmp_path, monkeypatch):
    monkeypatch.setitem(LM_CONFIGS, "test", TEST_CONFIG)
    run_dir, export = tmp_path / "run", tmp_path / "export"
    common = ["--data", str(toy_corpus), "--config", "test", "--run-dir", str(run_dir), "--batch-size", "2",
              "--max-len", "128", "--text-vocab-size", "400", "--save-every", "1", "--log-every", "1"]
    assert train_main([*common, "--steps", "1", "--lyric-phonemes", "--export", str(export)]) == 0
    loaded = SongLM.from_pretrained(export)
    assert loaded.text.phonemes and has_phonemes(loaded.text.decode(loaded.lyric_pieces(["love night"])))
    with pytest.raises(SystemExit, match="trained with lyric phonemes"):
        train_main([*common, "--steps", "2"])


def test_unseen_word_frames_are_labelled_from_word_times(toy_corpus):
    seen = training_words(toy_corpus)
    assert {"love", "night", "sky"} <= seen
    meta = {"words": [{"text": "Love,", "start": 0.0, "end": 0.1}, {"text": "zebra", "start": 0.2, "end": 0.3}]}
    groups = frame_groups(meta, 10, seen)
    expected = ["seen"] * 2 + ["outside"] * 3 + ["unseen"] * 2 + ["outside"] * 3  # frame centres 0.02, 0.06, …
    assert groups.tolist() == [GROUPS.index(name) for name in expected]
    assert np.all(frame_groups({"words": []}, 4, seen) == GROUPS.index("outside"))


def test_unseen_words_bench_scores_both_lms_on_the_same_frames(toy_corpus, phoneme_model, plain_model, tmp_path,
                                                             monkeypatch):
    import json

    import bench.common
    from bench.unseen_words import main as bench_main

    songs, seen_frames, unseen_frames = tmp_path / "songs", 0, 0
    for index in range(8):
        record = toy_record(index)
        verse, chorus = record["sections"][1], record["sections"][2]  # the sung ones
        seen_frames += verse["end_frame"] - verse["start_frame"]
        unseen_frames += chorus["end_frame"] - chorus["start_frame"]
        words = [{"text": "love", "start": verse["start_frame"] / 25, "end": verse["end_frame"] / 25},
                 {"text": "zebra", "start": chorus["start_frame"] / 25, "end": chorus["end_frame"] / 25}]
        (songs / record["id"]).mkdir(parents=True)
        (songs / record["id"] / "meta.json").write_text(json.dumps({"words": words}))
    checkpoints = []
    for name, text in (("plain", plain_model), ("phonemes", phoneme_model)):
        SongLM.create(TEST_CONFIG, Vocabulary(text.vocab_size, CODEBOOK, CODEBOOK), text).save_pretrained(
            tmp_path / name)
        checkpoints.append(str(tmp_path / name))
    monkeypatch.setattr(bench.common, "RESULTS", tmp_path / "results")
    bench_main(["--lm", *checkpoints, "--tokens-val", str(toy_corpus), "--songs-val", str(songs),
                "--tokens-train", str(toy_corpus), "--max-len", "256", "--threads", "1"])
    result = json.loads((tmp_path / "results" / "unseen_words.json").read_text())
    assert [model["phonemes"] for model in result["models"]] == [False, True]
    for model in result["models"]:
        assert model["frames"] == {"unseen": unseen_frames, "seen": seen_frames, "outside": 0}
        assert all(model["nats"][group]["lyrics"] > 0 for group in ("unseen", "seen"))
    assert result["validation_words"] == {"words": 16, "unseen": 8, "unseen_in_cmudict": 8}


def test_paired_difference_is_zero_against_itself_and_finds_a_uniform_shift():
    from bench.unseen_words import paired_difference

    rng = np.random.default_rng(0)
    n = 400
    base = {"group": np.where(np.arange(n) % 3 == 0, GROUPS.index("unseen"), GROUPS.index("seen")),
            "section": np.arange(n) // 40, "lyrics": rng.uniform(1, 3, n), "none": rng.uniform(1, 3, n)}
    valid = np.ones(n, dtype=bool)
    same = paired_difference(base, base, valid, "unseen")
    assert same["sections"] == 10
    assert same["lyrics"] == {"difference": 0.0, "interval_95": [0.0, 0.0]}
    better = {**base, "lyrics": base["lyrics"] - 0.5}  # the text now helps 0.5 nats more on every frame
    shifted = paired_difference(base, better, valid, "unseen")
    assert shifted["lyrics"]["difference"] == pytest.approx(-0.5)
    assert shifted["gain"]["difference"] == pytest.approx(0.5)
    assert shifted["lyrics"]["interval_95"][1] < 0 < shifted["gain"]["interval_95"][0]
    assert paired_difference(base, base, np.zeros(n, dtype=bool), "unseen") == {}
