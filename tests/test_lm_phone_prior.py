"""Phone guidance (``lm.phone_prior``): the phone contexts read from a token record, the count table built from a
corpus, its file round trip and errors, the CLI, the LM checkpoint carrying it, and sampling with it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from lm.generate import GenerationError, GenerationOptions, SectionRequest, generate_song
from lm.model import CheckpointError, LMConfig, SongLM
from lm.phone_prior import (
    AGE_EDGES,
    PHONE_PRIOR_NAME,
    PhonePrior,
    PhonePriorError,
    build_phone_prior,
    main,
    phone_contexts,
)
from lm.phonemes import ARPABET
from tests.test_lm_model import CODEBOOK
from tests.test_lm_word_cues import record_with_words, save_start_lm, write_cued_corpus
from tokenizer.tokenize_corpus import WORD_TYPE

ROW = {phone: row for row, phone in enumerate(ARPABET)}


def test_each_sung_frame_after_a_phone_gets_that_phone_and_its_age():
    record = {"vocal": np.zeros(30, np.int64),
              "sections": [{"name": "verse", "start_frame": 0, "end_frame": 12, "vocal": True},
                           {"name": "bridge", "start_frame": 12, "end_frame": 20, "vocal": False},
                           {"name": "chorus", "start_frame": 20, "end_frame": 30, "vocal": True}],
              "words": [{"text": "love", "start_frame": 3,
                         "phones": [{"phone": "L", "start_frame": 3}, {"phone": "AH", "start_frame": 5},
                                    {"phone": "V", "start_frame": 9}]},
                        {"text": "sky", "start_frame": 24, "phones": [{"phone": "S", "start_frame": 24}]}]}
    frames, rows, ages = phone_contexts(record)
    # frames 0-2 come before the first phone; the bridge is not sung; the chorus starts afresh at its own phone
    assert frames.tolist() == [*range(3, 12), *range(24, 30)]
    assert rows.tolist() == [ROW["L"]] * 2 + [ROW["AH"]] * 4 + [ROW["V"]] * 3 + [ROW["S"]] * 6
    assert ages.tolist() == [0, 1, 0, 1, 2, 3, 0, 1, 2, *range(6)]
    without = phone_contexts({**record, "words": [{"text": "love", "start_frame": 3}]})
    assert all(len(part) == 0 for part in without)


@pytest.fixture(scope="module")
def phone_corpus(tmp_path_factory):
    """Toy records in which each phone is always sung with code (its row mod the codebook) and its cues start
    every two frames from each word's start."""
    records = []
    for index in range(6):
        record = record_with_words(index)
        vocal = np.asarray(record["vocal"])
        for word in record["words"]:
            word["phones"] = [{"phone": phone, "start_frame": word["start_frame"] + 2 * offset}
                              for offset, phone in enumerate(("L", "AH", "V"))]
        frames, rows, _ = phone_contexts(record)
        vocal[frames] = rows % CODEBOOK
        records.append({**record, "vocal": vocal.tolist()})
    return write_cued_corpus(tmp_path_factory.mktemp("phone-prior"), records, WORD_TYPE)


def test_the_table_favours_the_code_each_phone_is_sung_with(phone_corpus):
    prior = build_phone_prior(phone_corpus)
    assert prior.log_ratio.shape == (len(ARPABET), len(AGE_EDGES), CODEBOOK)
    assert prior.info["songs"] == 6 and prior.info["frames"] > 0
    for phone in ("L", "AH", "V"):
        row = ROW[phone]
        bias = prior.bias(row, 0)
        assert int(bias.argmax()) == row % CODEBOOK and bias[row % CODEBOOK] > 0
        assert bias[(row + 1) % CODEBOOK] < 0  # a code never sung on this phone is discouraged
    # a phone never sung has no counts: every code keeps its overall frequency (log-ratio 0)
    assert torch.allclose(prior.bias(ROW["ZH"], 3), torch.zeros(CODEBOOK))
    assert prior.age_bucket(0) == 0 and prior.age_bucket(3) == 2 and prior.age_bucket(500) == len(AGE_EDGES) - 1
    with pytest.raises(ValueError, match="cannot be negative"):
        prior.bias(0, -1)


def test_the_table_round_trips_through_its_file_and_refuses_bad_ones(phone_corpus, tmp_path):
    prior = build_phone_prior(phone_corpus)
    path = prior.save(tmp_path / "prior.safetensors")
    loaded = PhonePrior.load(path)
    assert loaded.phones == prior.phones and loaded.age_edges == prior.age_edges and loaded.info == prior.info
    assert torch.allclose(loaded.log_ratio, prior.log_ratio, atol=5e-3)  # stored in fp16
    (tmp_path / "junk.safetensors").write_bytes(b"not a table")
    with pytest.raises(PhonePriorError, match="not a phone table"):
        PhonePrior.load(tmp_path / "junk.safetensors")
    with pytest.raises(PhonePriorError, match="expected"):
        PhonePrior(torch.zeros(3, 2, 4))
    with pytest.raises(PhonePriorError, match="not finite"):
        PhonePrior(torch.full((len(ARPABET), len(AGE_EDGES), 4), float("nan")))
    words_only = write_cued_corpus(tmp_path / "words", [record_with_words(i) for i in range(2)], WORD_TYPE)
    with pytest.raises(PhonePriorError, match="no vocal frames with phone times"):
        build_phone_prior(words_only)


def test_the_cli_writes_the_table_into_an_lm_folder(phone_corpus, tmp_path):
    folder = tmp_path / "lm"
    folder.mkdir()
    done = subprocess.run([sys.executable, "-m", "lm.phone_prior", "--tokens", str(phone_corpus), "--lm",
                           str(folder)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert PhonePrior.load(folder / PHONE_PRIOR_NAME).info["songs"] == 6
    assert main(["--tokens", str(tmp_path / "missing"), "--out", str(tmp_path / "x.safetensors")]) == 2


@pytest.fixture(scope="module")
def phone_lm(phone_corpus, tmp_path_factory):
    """The test-size LM, made a phone-cue model."""
    lm = SongLM.from_pretrained(save_start_lm(phone_corpus, tmp_path_factory))
    lm.config = LMConfig(**{**lm.config.to_dict(), "word_cues": True, "phone_cues": True})
    return lm


def one_code_prior(phone: str, code: int, strength: float = 60.0) -> PhonePrior:
    """A table that makes ``code`` overwhelmingly likely while ``phone`` sounds, and leaves every other phone be."""
    table = torch.zeros(len(ARPABET), len(AGE_EDGES), CODEBOOK)
    table[ROW[phone], :, code] = strength
    return PhonePrior(table)


def test_an_lm_checkpoint_carries_its_phone_table(phone_lm, tmp_path):
    prior = one_code_prior("AH", 7)
    lm = SongLM(phone_lm.model, phone_lm.vocab, phone_lm.text, phone_lm.config, prior)
    loaded = SongLM.from_pretrained(lm.save_pretrained(tmp_path / "with-table"))
    assert torch.equal(loaded.phone_prior.log_ratio, prior.log_ratio)
    assert loaded.phone_prior.row_of_cue([loaded.text.phone_piece("AH")]) == ROW["AH"]
    assert loaded.phone_prior.row_of_cue(loaded.word_pieces("love")[0]) is None
    words_model = LMConfig(**{**phone_lm.config.to_dict(), "phone_cues": False})
    with pytest.raises(CheckpointError, match="goes with a phone-cue model"):
        SongLM(phone_lm.model, phone_lm.vocab, phone_lm.text, words_model, prior)


def sing(lm: SongLM, options: GenerationOptions, prior: PhonePrior | None):
    cues = lm.cue_pieces("love love")  # love L AH V love L AH V
    request = SectionRequest("verse", lm.lyric_pieces("love love"), 24, words=cues)
    return generate_song(lm.model, lm.vocab, [], [request], options, phone_prior=prior).sections[0]


def test_guidance_sings_the_tables_code_while_its_phone_sounds(phone_lm):
    prior = one_code_prior("AH", 7).bind(phone_lm.text.phone_piece)
    section = sing(phone_lm, GenerationOptions(seed=3, phone_guidance=1.0), prior)
    ah = phone_lm.text.phone_piece("AH")
    cue_frames = [cue.frame for cue in section.cues]
    for index, cue in enumerate(section.cues):
        if cue.text_ids == (ah,):  # from this cue up to the next one (a later cue's frame is sampled after it)
            end = cue_frames[index + 1] if index + 1 < len(cue_frames) else section.n_frames
            assert set(section.vocal[cue.frame:end].tolist()) <= {7}
    assert any(cue.text_ids == (ah,) for cue in section.cues)
    unguided = sing(phone_lm, GenerationOptions(seed=3), None)
    assert (unguided.vocal == 7).mean() < 0.5  # the test LM alone does not sing code 7 everywhere


def test_no_guidance_is_the_lm_alone_and_guidance_needs_a_table(phone_lm):
    prior = one_code_prior("AH", 7).bind(phone_lm.text.phone_piece)
    alone = sing(phone_lm, GenerationOptions(seed=5), None)
    with_table = sing(phone_lm, GenerationOptions(seed=5, phone_guidance=0.0), prior)
    assert np.array_equal(alone.vocal, with_table.vocal) and alone.cues == with_table.cues
    with pytest.raises(GenerationError, match="needs the LM's phone table"):
        sing(phone_lm, GenerationOptions(seed=5, phone_guidance=1.0), None)
    with pytest.raises(GenerationError, match="phone_guidance must be >= 0"):
        GenerationOptions(phone_guidance=-1.0)
    small = PhonePrior(torch.zeros(len(ARPABET), len(AGE_EDGES), CODEBOOK // 2)).bind(phone_lm.text.phone_piece)
    with pytest.raises(GenerationError, match="covers 16 vocal codes"):
        sing(phone_lm, GenerationOptions(seed=5, phone_guidance=1.0), small)
