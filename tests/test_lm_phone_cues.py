"""Phone cues (a word's cue followed by a cue per sung phone, each right before the frame that phone starts in),
end to end: the token corpus's phone times, the text model's phone pieces, training songs and windows, the cues a
phone-cue LM is asked to place, and the training CLI (``--word-cues --phone-cues``)."""

from __future__ import annotations

import pytest

from lm.data import TokenDataError, TokenDataset
from lm.generate import GenerationOptions, SectionRequest, generate_song
from lm.layout import WordCue, build_sequence, revert_sequence, song_tokens_from_record
from lm.model import LM_CONFIGS, LMConfig, SongLM
from lm.phonemes import ARPABET, arpabet_from_festival, word_phones
from lm.train import main as train_main
from tests.test_lm_model import TEST_CONFIG
from tests.test_lm_word_cues import record_with_words, save_start_lm, write_cued_corpus
from tokenizer.tokenize_corpus import WORD_TYPE, frame_words

# --- token corpus --------------------------------------------------------------------------------------------


def test_festival_phones_map_to_arpabet():
    assert arpabet_from_festival("ax") == "AH" and arpabet_from_festival("axr") == "ER"
    assert arpabet_from_festival("hh") == "HH" and arpabet_from_festival("zh") == "ZH"
    assert arpabet_from_festival("pau") is None and arpabet_from_festival(None) is None


def test_frame_words_give_each_word_its_phones_at_floored_frames_in_sung_order():
    syllables = [{"phones": [{"phone": "dh", "start": 0.10}, {"phone": "ax", "start": 0.13}]},
                 {"phones": [{"phone": "pau", "start": 0.2}, {"phone": "s", "start": 0.25},
                             {"phone": "t", "start": 3.99}, {"phone": "aa", "start": 4.1}]}]
    words = frame_words([{"text": "the", "start": 0.1, "syllables": syllables}], n_frames=100, frame_rate=25.0)
    # 0.10 and 0.13 s both floor to frame 2; the pause is no phone; 4.1 s lies past the 100 tokenized frames
    assert words == [{"text": "the", "start_frame": 2, "phones": [
        {"phone": "DH", "start_frame": 2}, {"phone": "AH", "start_frame": 3}, {"phone": "S", "start_frame": 6},
        {"phone": "T", "start_frame": 99}]}]
    early = frame_words([{"text": "a", "start": 0.5, "syllables": [{"phones": [{"phone": "ax", "start": 0.4}]}]}],
                        100, 25.0)
    assert early[0]["phones"] == [{"phone": "AH", "start_frame": 12}]  # never before its word's own frame
    with pytest.raises(ValueError, match="word 0: each phone needs a start"):
        frame_words([{"text": "a", "start": 0.5, "syllables": [{"phones": [{"phone": "ax"}]}]}], 100, 25.0)


# --- text model ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus_with_phones(tmp_path_factory):
    """Toy records whose words carry their CMUdict phones, one frame apart from the word's start on."""
    records = []
    for index in range(6):
        record = record_with_words(index)
        for word in record["words"]:
            word["phones"] = [{"phone": phone, "start_frame": word["start_frame"] + offset}
                              for offset, phone in enumerate(word_phones(word["text"]))]
        records.append(record)
    return write_cued_corpus(tmp_path_factory.mktemp("phones"), records, WORD_TYPE)


@pytest.fixture(scope="module")
def start_lm(corpus_with_phones, tmp_path_factory):
    return save_start_lm(corpus_with_phones, tmp_path_factory)


def test_each_phone_has_a_piece_of_its_own_that_no_text_uses(start_lm):
    text = SongLM.from_pretrained(start_lm).text
    pieces = [text.phone_piece(phone) for phone in ARPABET]
    assert len(set(pieces)) == len(ARPABET)
    assert all(text.is_phone_cue([piece]) for piece in pieces)
    assert [text.cued_phone([piece]) for piece in pieces] == list(ARPABET)  # read back, e.g. for the decoder
    lyric = text.encode("love the night, heart of gold! Ünïcode 🎵")
    assert not set(lyric) & set(pieces) and not text.is_phone_cue(text.encode("sky")[:1] * 2)
    with pytest.raises(ValueError, match="not an ARPAbet phone"):
        text.phone_piece("ax")


# --- training songs ------------------------------------------------------------------------------------------


def test_each_word_cue_is_followed_by_its_phone_cues_and_the_song_round_trips(corpus_with_phones, start_lm):
    lm = SongLM.from_pretrained(start_lm)
    record = next(iter(TokenDataset(corpus_with_phones, lm.text, 256, split="all", word_cues=True,
                                    phone_cues=True).songs))
    source = record_with_words(0)
    verse = record.sections[1]
    first_word = source["words"][0]
    phones = word_phones(first_word["text"])
    start = first_word["start_frame"] - source["sections"][1]["start_frame"]
    assert verse.cues[:1 + len(phones)] == [
        WordCue(start, tuple(lm.text.encode_lyrics(first_word["text"]))),
        *(WordCue(start + k, (lm.text.phone_piece(phone),)) for k, phone in enumerate(phones))]
    assert [cue.frame for cue in verse.cues] == sorted(cue.frame for cue in verse.cues)
    assert revert_sequence(build_sequence(record, lm.vocab), lm.vocab) == record
    words_only = song_tokens_from_record(source, lm.text.encode, lm.text.encode_lyrics, lm.text.encode_lyrics)
    assert [c for c in verse.cues if not lm.text.is_phone_cue(c.text_ids)] == words_only.sections[1].cues
    with_phones = TokenDataset(corpus_with_phones, lm.text, 256, split="all", word_cues=True, phone_cues=True)
    plain = TokenDataset(corpus_with_phones, lm.text, 256, split="all", word_cues=True)
    assert sum(with_phones.lengths) > sum(plain.lengths)


def test_a_phone_past_its_section_is_cued_on_the_sections_last_frame():
    record = {**record_with_words(1)}
    verse = record["sections"][1]
    word = next(w for w in record["words"] if verse["start_frame"] <= w["start_frame"] < verse["end_frame"])
    record["words"] = [{**word, "phones": [{"phone": "L", "start_frame": verse["end_frame"] + 5}]}]
    song = song_tokens_from_record(record, lambda t: [1], lambda t: [2], lambda t: [3], lambda p: (4,))
    assert song.sections[1].cues[-1] == WordCue(song.sections[1].n_frames - 1, (4,))


def test_phone_cues_need_word_cues():
    with pytest.raises(ValueError, match="phone_cues needs word_cues"):
        LMConfig("x", 32, 1, 2, 1, 64, 64, 10_000.0, phone_cues=True)


def test_a_dataset_refuses_phone_cues_without_word_cues(corpus_with_phones, start_lm):
    text = SongLM.from_pretrained(start_lm).text
    with pytest.raises(TokenDataError, match="phone cues need word cues"):
        TokenDataset(corpus_with_phones, text, 256, split="all", phone_cues=True)


# --- what a phone-cue LM is asked to cue ---------------------------------------------------------------------


def test_a_phone_cue_lm_cues_each_word_then_its_dictionary_phones(start_lm):
    lm = SongLM.from_pretrained(start_lm)
    assert lm.cue_pieces("love zzqx") == lm.word_pieces("love zzqx")  # a plain word-cue LM: the words only
    assert lm.cued_phone([lm.text.phone_piece("L")]) is None  # its cues are all words
    lm.config = LMConfig(**{**lm.config.to_dict(), "word_cues": True, "phone_cues": True})
    cues = lm.cue_pieces(["love", "zzqx"])
    love = [[lm.text.phone_piece(p)] for p in ("L", "AH", "V")]
    assert cues == [lm.word_pieces("love")[0], *love, lm.word_pieces("zzqx")[0]]  # an unknown word: no phones
    assert [lm.is_word_cue(cue) for cue in cues] == [True, False, False, False, True]
    assert [lm.cued_phone(cue) for cue in cues] == [None, "L", "AH", "V", None]
    song = generate_song(lm.model, lm.vocab, [], [SectionRequest("verse", lm.lyric_pieces("love zzqx"), 12,
                                                                 words=cues)], GenerationOptions(seed=0))
    assert [list(cue.text_ids) for cue in song.sections[0].cues] == cues


# --- training CLI --------------------------------------------------------------------------------------------


def test_training_cli_fine_tunes_with_phone_cues(corpus_with_phones, start_lm, tmp_path, monkeypatch):
    monkeypatch.setitem(LM_CONFIGS, "test", TEST_CONFIG)
    export = tmp_path / "export"
    common = ["--init-from", str(start_lm), "--steps", "1", "--batch-size", "2", "--max-len", "128",
              "--val-fraction", "0"]
    assert train_main(["--data", str(corpus_with_phones), "--word-cues", "--phone-cues", "--run-dir",
                       str(tmp_path / "run"), "--export", str(export), *common]) == 0
    trained = SongLM.from_pretrained(export)
    assert trained.config.word_cues and trained.config.phone_cues
    with pytest.raises(SystemExit, match="--phone-cues needs --word-cues"):
        train_main(["--data", str(corpus_with_phones), "--phone-cues", "--run-dir", str(tmp_path / "r2"), *common])
    words_only = write_cued_corpus(tmp_path / "words", [record_with_words(i) for i in range(3)], WORD_TYPE)
    with pytest.raises(SystemExit, match=r"no record .* has phone times"):
        train_main(["--data", str(words_only), "--word-cues", "--phone-cues", "--run-dir", str(tmp_path / "r3"),
                    *common])
