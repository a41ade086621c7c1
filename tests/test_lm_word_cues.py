"""Word cues (``<word> text`` before the frame where a word's singing starts), end to end: the token corpus's
word times, the layout's build/revert, training windows, condition dropout, sampling with a cue decision at
every frame boundary, the manifest, and the training CLI (``--word-cues --init-from``)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from app.manifest import ManifestError, build_manifest, song_from_manifest
from lm.data import TokenDataset, drop_condition, plan_windows, window_ids
from lm.generate import (
    GenerationError,
    GenerationOptions,
    SectionRequest,
    accompaniment_for_vocal,
    cue_deadline,
    generate_song,
    resample_track,
)
from lm.layout import (
    SPECIAL_TOKENS,
    WORD,
    LayoutError,
    SectionTokens,
    SongTokens,
    Vocabulary,
    WordCue,
    build_sequence,
    revert_sequence,
    split_cues,
)
from lm.model import LM_CONFIGS, SongLM
from lm.train import main as train_main
from tests.test_lm_generate import STYLE, VOCAB, make_model
from tests.test_lm_model import SCHEMA, TEST_CONFIG, toy_record, write_corpus
from tokenizer.tokenize_corpus import frame_words

WORD_TYPE = pa.struct([("text", pa.string()), ("start_frame", pa.int32())])


def cued_section(rng, n_frames: int, n_cues: int, tag: str = "verse") -> SectionTokens:
    frames = np.sort(rng.integers(0, n_frames, n_cues))
    cues = [WordCue(int(f), tuple(rng.integers(0, VOCAB.n_text, int(rng.integers(0, 3))).tolist())) for f in frames]
    return SectionTokens(tag, [1, 2, 3], rng.integers(0, 16, n_frames), rng.integers(0, 16, n_frames), cues=cues)


# --- layout -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_build_and_revert_round_trip_with_cues(seed):
    rng = np.random.default_rng(seed)
    song = SongTokens(STYLE, [cued_section(rng, 9, 4), SectionTokens("inst", [], np.arange(3), np.arange(3),
                                                                     instrumental=True),
                              cued_section(rng, 12, 6, "chorus")])
    ids = build_sequence(song, VOCAB)
    assert revert_sequence(ids, VOCAB) == song
    assert int(np.sum(ids == VOCAB.word_id)) == 10
    # every cue marker sits at an even offset from <audio>, counting only audio tokens before it
    for section in revert_sequence(ids, VOCAB).sections:
        assert [c.frame for c in section.cues] == sorted(c.frame for c in section.cues)


def test_cue_stands_right_before_its_frame():
    section = SectionTokens("verse", [4], np.array([0, 1, 2]), np.array([3, 4, 5]),
                            cues=[WordCue(1, (7, 8)), WordCue(1, ())])
    ids = build_sequence(SongTokens([], [section]), VOCAB)
    audio = ids[ids.tolist().index(VOCAB.audio_open_id) + 1:ids.tolist().index(VOCAB.audio_close_id)]
    assert [VOCAB.describe(i) for i in audio] == ["vocal:0", "accomp:3", WORD, "text:7", "text:8", WORD,
                                                  "vocal:1", "accomp:4", "vocal:2", "accomp:5"]
    plain, cues = split_cues(audio, VOCAB)
    assert cues == [WordCue(1, (7, 8)), WordCue(1, ())] and len(plain) == 6


@pytest.mark.parametrize("ids, message", [
    (["v", "w", "a"], "inside frame 0"),
    (["v", "a", "w", "t"], "after the last frame"),
    (["t", "v", "a"], "outside a <word> cue"),
    (["v", "a", "w", "t", "v", "t", "a"], "outside a <word> cue"),
])
def test_misplaced_cues_raise(ids, message):
    codes = {"v": VOCAB.vocal_id(0), "a": VOCAB.accomp_id(0), "w": VOCAB.word_id, "t": VOCAB.text_id(0)}
    with pytest.raises(LayoutError, match=message):
        split_cues(np.array([codes[i] for i in ids]), VOCAB)


def test_bad_cues_are_refused_when_building():
    with pytest.raises(LayoutError, match="frame order"):
        build_sequence(SongTokens([], [SectionTokens("verse", [1], np.arange(3), np.arange(3),
                                                     cues=[WordCue(3, (1,))])]), VOCAB)
    with pytest.raises(LayoutError, match="instrumental"):
        build_sequence(SongTokens([], [SectionTokens("inst", [], np.arange(3), np.arange(3), True,
                                                     cues=[WordCue(0, (1,))])]), VOCAB)


def test_checkpoints_from_before_the_word_marker_still_load():
    stored = VOCAB.to_dict()
    stored["special_tokens"] = [name if name != WORD else "<reserved_0>" for name in SPECIAL_TOKENS]
    assert Vocabulary.from_dict(stored) == VOCAB
    stored["special_tokens"][-1] = "<something_else>"
    with pytest.raises(LayoutError, match="another layout"):
        Vocabulary.from_dict(stored)


# --- token corpus and training data --------------------------------------------------------------------------


def test_frame_words_floor_onsets_sort_and_drop_what_was_not_tokenized():
    meta = [{"text": "b", "start": 0.079}, {"text": "a", "start": 0.0}, {"text": "late", "start": 4.0},
            {"text": " ", "start": 1.0}]
    assert frame_words(meta, n_frames=100, frame_rate=25.0) == [{"text": "a", "start_frame": 0, "phones": []},
                                                                 {"text": "b", "start_frame": 1, "phones": []}]
    assert frame_words(None, 10, 25.0) == []
    with pytest.raises(ValueError, match="word 0"):
        frame_words([{"text": "x", "start": -1}], 10, 25.0)


def record_with_words(index: int) -> dict:
    """A toy record whose sung sections' words start at evenly spaced frames."""
    record = toy_record(index)
    lyric_sections = [block.splitlines()[1:] for block in record["lyrics"].strip().split("\n\n")]
    sung = [s for s in record["sections"] if s["vocal"]]
    words = []
    for section, lines in zip(sung, lyric_sections, strict=True):
        section_words = " ".join(lines).split()
        span = section["end_frame"] - section["start_frame"]
        for number, word in enumerate(section_words):
            words.append({"text": word, "start_frame": section["start_frame"] + number * span // len(section_words)})
    return {**record, "words": words}


def write_cued_corpus(folder, records: list[dict], word_type: pa.DataType = WORD_TYPE):
    """A token folder of ``records`` with their ``words`` column (of ``word_type``)."""
    write_corpus(folder, [])
    schema = SCHEMA.append(pa.field("words", pa.list_(word_type)))
    pq.write_table(pa.Table.from_pylist(records, schema=schema), folder / "shard-0-0.parquet")
    info = json.loads((folder / "info.json").read_text())
    info.update(n_songs=len(records), n_frames=sum(r["n_frames"] for r in records), shards=["shard-0-0.parquet"])
    (folder / "info.json").write_text(json.dumps(info))
    return folder


@pytest.fixture(scope="module")
def cued_corpus(tmp_path_factory):
    return write_cued_corpus(tmp_path_factory.mktemp("cued"), [record_with_words(i) for i in range(6)])


def save_start_lm(corpus, tmp_path_factory):
    """A randomly initialised test-size SongLM with a text model of ``corpus``, saved like a shipped one, to start
    fine-tuning from."""
    from lm.data import corpus_texts
    from lm.text import train_text_tokenizer

    text = train_text_tokenizer(corpus_texts(corpus), tmp_path_factory.mktemp("spm") / "spm.model", 300)
    torch.manual_seed(0)
    lm = SongLM.create(TEST_CONFIG, Vocabulary(text.vocab_size, 32, 32), text)
    return lm.save_pretrained(tmp_path_factory.mktemp("lm") / "start")


@pytest.fixture(scope="module")
def cued_lm(cued_corpus, tmp_path_factory):
    return save_start_lm(cued_corpus, tmp_path_factory)


def test_windows_with_cues_match_their_planned_length_and_keep_every_cue(cued_corpus, cued_lm):
    text = SongLM.from_pretrained(cued_lm).text
    dataset = TokenDataset(cued_corpus, text, 100, split="all", word_cues=True)
    song = dataset.songs[0]
    n_words = len(record_with_words(0)["words"])
    assert sum(len(s.cues) for s in song.sections) == n_words > 0
    windows = plan_windows(song, 100)
    assert len(windows) > 1  # cues are cut across windows too
    cued = [np.zeros(len(s.cues), dtype=bool) for s in song.sections]
    for window, length in windows:
        ids = window_ids(song, window, dataset.vocab)
        assert len(ids) == length <= 100
        closers = [dataset.vocab.audio_close_id] * (not window.closed) + [dataset.vocab.eos_id] * (not window.ends_song)
        reverted = revert_sequence(np.concatenate([ids, np.array(closers, dtype=np.int64)]), dataset.vocab)
        for offset, section in enumerate(reverted.sections):
            index = window.first_section + offset
            start = window.first_frame if offset == 0 else 0
            # the window holds exactly the cues of the frames it holds, renumbered from its first frame
            assert section.cues == song.sections[index].frames(start, start + section.n_frames).cues
            cued[index] |= np.array([start <= c.frame < start + section.n_frames for c in song.sections[index].cues],
                                    dtype=bool)
    assert all(c.all() for c in cued)
    plain = TokenDataset(cued_corpus, text, 100, split="all")
    assert not any(s.cues for song in plain.songs for s in song.sections)


def test_dropping_the_condition_keeps_the_markers_and_drops_the_words():
    rng = np.random.default_rng(0)
    song = SongTokens(STYLE, [cued_section(rng, 10, 4)])
    dropped = drop_condition(song)
    assert [c.frame for c in dropped.sections[0].cues] == [c.frame for c in song.sections[0].cues]
    assert all(c.text_ids == () for c in dropped.sections[0].cues)
    assert not VOCAB.is_text(build_sequence(dropped, VOCAB)).any()


def test_training_cli_fine_tunes_a_saved_lm_with_word_cues(cued_corpus, cued_lm, tmp_path, monkeypatch):
    monkeypatch.setitem(LM_CONFIGS, "test", TEST_CONFIG)
    export = tmp_path / "export"
    assert train_main(["--data", str(cued_corpus), "--init-from", str(cued_lm), "--word-cues", "--run-dir",
                       str(tmp_path / "run"), "--steps", "1", "--batch-size", "2", "--max-len", "96",
                       "--val-fraction", "0", "--export", str(export)]) == 0
    trained, start = SongLM.from_pretrained(export), SongLM.from_pretrained(cued_lm)
    assert trained.config.word_cues and not start.config.word_cues
    assert trained.text.model_bytes == start.text.model_bytes  # the text ids did not change
    changed = [not torch.equal(a, b) for a, b in zip(trained.model.parameters(), start.model.parameters(),
                                                      strict=True)]
    assert any(changed)
    with pytest.raises(SystemExit, match=r"no record .* has word times"):
        train_main(["--data", str(write_corpus(tmp_path / "plain", [toy_record(i) for i in range(3)])),
                    "--init-from", str(cued_lm), "--word-cues", "--run-dir", str(tmp_path / "run2"), "--steps", "1",
                    "--max-len", "96"])


# --- generation ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    return make_model()


WORDS = [[1], [2, 3], [4], [5, 6]]


def cue_decisions(model, song: SongTokens, words_per_section):
    """Replays a greedy song with cues against one full forward: at each frame boundary with words left, the
    next token must be ``<word>`` when its odds against the vocal codes are at least even, else the best vocal
    code (or a cue written because every frame left is needed), and after ``<word>`` the next word's pieces."""
    ids = build_sequence(song, VOCAB)
    log_probs = torch.log_softmax(model(input_ids=torch.as_tensor(ids)[None]).logits[0].float(), -1)
    candidates = torch.cat([torch.tensor([VOCAB.word_id]), torch.arange(VOCAB.vocal_start, VOCAB.accomp_start)])
    position, written = 0, 0
    for section, words in zip(song.sections, words_per_section, strict=True):
        position = ids.tolist().index(VOCAB.audio_open_id, position) + 1
        frame, cued = 0, 0
        while frame < section.n_frames:
            token = int(ids[position])
            if cued < len(words):
                if frame >= cue_deadline(cued, len(words), section.n_frames):
                    assert token == VOCAB.word_id
                    written += 1
                else:  # greedy: a cue when its odds against the vocal codes are at least even, else the best code
                    odds = torch.softmax(log_probs[position - 1][candidates], -1)[0]
                    vocal = candidates[1:]
                    assert token == (VOCAB.word_id if odds >= 0.5
                                     else int(vocal[torch.argmax(log_probs[position - 1][vocal])]))
            if token == VOCAB.word_id:
                word = words[cued]
                assert VOCAB.text_piece(ids[position + 1:position + 1 + len(word)]).tolist() == word
                position, cued = position + 1 + len(word), cued + 1
                continue
            position, frame = position + 2, frame + 1
        assert cued == len(words)
    return written


@pytest.mark.parametrize("n_words, n_frames", [(1, 1), (3, 3), (4, 9), (9, 200), (15, 16)])
def test_cue_deadlines_spread_the_words_at_most_evenly_and_leave_each_a_frame(n_words, n_frames):
    deadlines = [cue_deadline(k, n_words, n_frames) for k in range(n_words)]
    assert all(b > a for a, b in itertools.pairwise(deadlines))  # one frame each at least
    assert deadlines[0] >= 0 and deadlines[-1] <= n_frames - 1
    assert all(d <= (k + 1) * n_frames / (n_words + 1) for k, d in enumerate(deadlines))


def test_greedy_cues_are_the_models_choice_and_every_word_is_cued(model):
    requests = [SectionRequest("verse", [1, 2, 3], 9, words=WORDS), SectionRequest("inst", [], 3, True),
                SectionRequest("chorus", [5], 4, words=[[7], [8], [9], [10]])]
    song = generate_song(model, VOCAB, STYLE, requests, GenerationOptions(temperature=0))
    assert [len(s.cues) for s in song.sections] == [4, 0, 4]
    assert [c.frame for c in song.sections[2].cues] == [0, 1, 2, 3]  # 4 words in 4 frames: one per frame
    assert revert_sequence(build_sequence(song, VOCAB), VOCAB) == song
    with torch.no_grad():
        assert cue_decisions(model, song, [WORDS, [], [[7], [8], [9], [10]]]) >= 4


def test_cued_sampling_is_seeded_and_guidance_keeps_streams_in_step(model):
    requests = [SectionRequest("verse", [1, 2, 3], 12, words=WORDS)]
    first, again = (generate_song(model, VOCAB, STYLE, requests, GenerationOptions(seed=5, cfg_scale=2.0))
                    for _ in range(2))
    assert first == again and len(first.sections[0].cues) == 4


def test_a_forced_vocal_stays_exact_and_still_gets_its_cues(model):
    vocal = np.arange(10) % 16
    song = accompaniment_for_vocal(model, VOCAB, STYLE, [SectionRequest("verse", [1], 10, words=WORDS)], vocal,
                                   GenerationOptions(seed=2))
    assert np.array_equal(song.sections[0].vocal, vocal) and len(song.sections[0].cues) == 4
    again = resample_track(model, VOCAB, song, 0, "vocal", GenerationOptions(seed=3))
    assert np.array_equal(again.sections[0].accomp, song.sections[0].accomp)
    assert [c.text_ids for c in again.sections[0].cues] == [c.text_ids for c in song.sections[0].cues]


@pytest.mark.parametrize("request_, message", [
    (SectionRequest("inst", [], 5, True, words=[[1]]), "instrumental section sings no words"),
    (SectionRequest("verse", [1], 2, words=[[1], [2], [3]]), "3 words do not fit in 2 frames"),
    (SectionRequest("verse", [1], 5, words=[[999]]), "word 0 holds text piece 999"),
])
def test_bad_word_requests_raise(model, request_, message):
    with pytest.raises(GenerationError, match=message):
        generate_song(model, VOCAB, STYLE, [request_])


def test_evaluation_counts_the_cue_choices_with_the_audio(model):
    from lm.eval import evaluate_ppl

    rng = np.random.default_rng(1)
    cued = SongTokens(STYLE, [cued_section(rng, 10, 3)])
    plain = SongTokens(STYLE, [SectionTokens("verse", [1, 2, 3], cued.sections[0].vocal, cued.sections[0].accomp)])
    with_cues, without = (evaluate_ppl(model, VOCAB, [build_sequence(song, VOCAB)]) for song in (cued, plain))
    assert with_cues["n_cue"] == 3 and without["n_cue"] == 0 and with_cues["n_vocal"] == 10
    assert with_cues["bits_per_frame_with_cues"] > with_cues["bits_per_frame"]
    assert without["bits_per_frame_with_cues"] == without["bits_per_frame"]


# --- manifest -----------------------------------------------------------------------------------------------


def test_manifest_keeps_cues_and_checks_them(model):
    from app.pipeline import Sampled

    song = generate_song(model, VOCAB, STYLE, [SectionRequest("verse", [1, 2], 8, words=WORDS)],
                         GenerationOptions(seed=1))
    manifest = build_manifest(inputs={"mode": "song"}, lyrics_normalised="", warnings=[], based_on=None,
                              sampled=Sampled(song, [["vocal", "accomp"]]), software={}, checkpoints={},
                              sample_rate=24_000, samples_per_frame=960, decoder={}, timings={})
    manifest = json.loads(json.dumps(manifest))
    assert song_from_manifest(manifest) == song
    manifest["sections"][0]["cues"] = [[9, [1]]]
    with pytest.raises(ManifestError, match="cues must lie in frame order"):
        song_from_manifest(manifest)
    del manifest["sections"][0]["cues"]  # a manifest from before word cues
    assert song_from_manifest(manifest).sections[0].cues == []
