"""The checkpoints in checkpoints/ load strictly and do their job on a freshly generated song."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from corpus.reader import read_song
from corpus.song import SongOptions, render_song
from tokenizer import DuoTok
from tokenizer.eval import si_sdr

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    out = tmp_path_factory.mktemp("shipped")
    render_song(4242, "song", out, SongOptions(min_seconds=8, max_seconds=10))
    return read_song(out / "song")


@pytest.fixture(scope="module")
def duotok() -> DuoTok:
    return DuoTok.from_pretrained(CHECKPOINTS / "duotok-tiny")


def test_every_shipped_checkpoint_has_a_model_card():
    folders = [p for p in CHECKPOINTS.iterdir() if p.is_dir()]
    assert folders, "no shipped checkpoints"
    for folder in folders:
        card = (folder / "README.md").read_text()
        assert "## Measured" in card and "steps" in card.lower(), folder


def test_shipped_tokenizer_encodes_a_new_song(duotok, song):
    tokens = duotok.encode(vocals=song.vocals, accompaniment=song.accompaniment)
    assert len(tokens) == int(len(song.vocals) // 960)
    assert tokens.vocal.max() < duotok.config.codebook_size
    again = duotok.encode(vocals=song.vocals, accompaniment=song.accompaniment)
    np.testing.assert_array_equal(tokens.vocal, again.vocal)
    # the accompaniment track changes over the song, and so do its tokens
    assert len(np.unique(tokens.accomp)) > 10


def test_shipped_tokenizer_separates_mixes(duotok, tmp_path):
    # over whole songs (instrumental parts included), averaged: single songs vary by several dB
    improvements = []
    for seed in (4242, 4243, 4244):
        render_song(seed, f"s{seed}", tmp_path, SongOptions(min_seconds=8, max_seconds=10))
        mix_song = read_song(tmp_path / f"s{seed}")
        vocals, _ = duotok.separate(mix_song.mix)
        reference = torch.from_numpy(mix_song.vocals)
        improvements.append(float(si_sdr(torch.from_numpy(vocals), reference)
                                   - si_sdr(torch.from_numpy(mix_song.mix), reference)))
    assert np.mean(improvements) > 0, f"the separation head does not beat the unprocessed mix: {improvements}"


def test_shipped_configs_are_the_tiny_ones():
    config = json.loads((CHECKPOINTS / "duotok-tiny" / "config.json").read_text())
    assert config["name"] == "tiny"


def test_shipped_lm_generates_a_section_that_respects_the_layout():
    from lm.generate import GenerationOptions, SectionRequest, full_song
    from lm.layout import build_sequence, revert_sequence
    from lm.model import SongLM

    lm = SongLM.from_pretrained(CHECKPOINTS / "lm-tiny")
    sections = [SectionRequest("verse", lm.lyric_pieces(["hold me close tonight"]), 25, False),
                SectionRequest("inst", [], 10, True)]
    song = full_song(lm.model, lm.vocab, lm.style_pieces("upbeat pop, female vocal"), sections,
                     GenerationOptions(seed=3, top_k=50))
    assert [s.tag for s in song.sections] == ["verse", "inst"]
    assert [len(s.vocal) for s in song.sections] == [25, 10]
    assert all(s.vocal.max() < lm.vocab.codebook_size_vocal and s.accomp.max() < lm.vocab.codebook_size_accomp
               for s in song.sections)
    assert revert_sequence(build_sequence(song, lm.vocab), lm.vocab) == song


def test_shipped_vocoder_rebuilds_a_vocal_better_than_griffin_lim(song):
    from tokenizer.vocoder import griffin_lim, load_vocoder, multiscale_mel_l1

    vocoder = load_vocoder(CHECKPOINTS / "duotok-tiny" / "vocoder")
    hop = vocoder.config.hop_length
    audio = song.vocals[: len(song.vocals) // hop * hop]
    signal = torch.from_numpy(np.ascontiguousarray(audio))[None]
    with torch.no_grad():
        mel = vocoder.latent(signal)
        rebuilt = vocoder(mel)[0].numpy()
        baseline = griffin_lim(mel, vocoder.config)[0].numpy()
    assert rebuilt.shape == audio.shape
    assert multiscale_mel_l1(audio, rebuilt, 24_000) < multiscale_mel_l1(audio, baseline, 24_000)


def test_shipped_decoders_rebuild_a_new_song_better_than_the_token_blind_floor(duotok, song):
    """Stems -> tokens -> decoders -> vocoder on a song no model saw: the right length, and closer to the
    original (multi-scale mel L1) than the same decoders fed one constant token, for both stems."""
    from tokenizer.duotok import TrackTokens
    from tokenizer.vocoder import multiscale_mel_l1

    tokens = duotok.encode(vocals=song.vocals, accompaniment=song.accompaniment)
    vocals, accompaniment, mix = duotok.decode(tokens, seed=0)
    assert len(mix) == len(tokens) * 960
    constant = TrackTokens(np.full(len(tokens), np.bincount(tokens.vocal).argmax()),
                           np.full(len(tokens), np.bincount(tokens.accomp).argmax()))
    floor_vocals, floor_accompaniment, _ = duotok.decode(constant, seed=0)
    n = len(mix)
    for original, decoded, floor in ((song.vocals, vocals, floor_vocals),
                                     (song.accompaniment, accompaniment, floor_accompaniment)):
        assert multiscale_mel_l1(original[:n], decoded) < multiscale_mel_l1(original[:n], floor)
