"""Tests for tokenizer.phones (the CTC label set) and tokenizer.data (token-aligned song crops).

Song folders are built here in tmp folders (a few seconds of sawtooth ramps written as 16-bit FLAC and a
meta.json with phones at known times), so the tests need no corpus. Every track is a ramp with its own gain,
so a crop's samples tell where it was read from and which file it came from.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tokenizer.config import DuoTokConfig
from tokenizer.data import (
    STEM_ORDER,
    TRACK_FILES,
    SongCropDataset,
    collate_crops,
    estimate_mel_stats,
    make_loader,
)
from tokenizer.frontend import AudioFrontEnd
from tokenizer.phones import BLANK, N_PHONES, PHONES, ids_to_phones, phone_id, phones_to_ids

RATE = 24_000
TOKEN = 960
TRACK_GAINS = {"mix": 0.9, "vocals": 0.2, "accompaniment": 0.7, "drums": 0.3, "bass": 0.25, "other": 0.15}
SLOT_S = 0.1  # song "long" has one phone per 100 ms slot, at [0.1k + 0.02, 0.1k + 0.08]
CYCLE = ("s", "t", "aa", "r", "pau", "n", "iy")  # "pau" must never become a target


def ramp(n_samples: int) -> np.ndarray:
    """A sawtooth whose value identifies the sample index modulo 1000 (exact in 16 bits)."""
    return ((np.arange(n_samples) % 1000) - 500).astype(np.float32) / 1000


def write_song(folder: Path, n_samples: int, phones: list[tuple[str, float, float]],
               skip: tuple[str, ...] = ()) -> None:
    """A song folder in the corpus layout; ``phones`` as (name, start, end), one word per phone."""
    (folder / "stems").mkdir(parents=True)
    for track, name in TRACK_FILES.items():
        if track not in skip:
            sf.write(folder / name, TRACK_GAINS[track] * ramp(n_samples), RATE, subtype="PCM_16", format="FLAC")
    words = [{"text": "w", "start": s, "end": e,
              "syllables": [{"start": s, "end": e, "phones": [{"phone": p, "start": s, "end": e}]}]}
             for p, s, e in phones]
    meta = {"id": folder.name, "sample_rate": RATE, "num_samples": n_samples, "words": words}
    (folder / "meta.json").write_text(json.dumps(meta))


def long_song_phones(seconds: float) -> list[tuple[str, float, float]]:
    slots = round(seconds / SLOT_S)
    return [(CYCLE[k % len(CYCLE)], round(SLOT_S * k + 0.02, 3), round(SLOT_S * k + 0.08, 3)) for k in range(slots)]


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("songs")
    # long: 3 s, crops of 1 s can start at any of 51 token positions
    write_song(root / "long", 3 * RATE, long_song_phones(3.0))
    # edge: 1 s + 500 samples, so a 1 s crop can only start at 0 (500 < one token); a phone ends exactly
    # at the crop end (kept), one straddles it (dropped), a pause is dropped
    write_song(root / "edge", RATE + 500, [("pau", 0.0, 0.1), ("hh", 0.1, 0.2), ("ay", 0.2, 0.96),
                                           ("t", 0.96, 1.0), ("s", 0.99, 1.02)])
    # short: 0.5 s, padded to the crop
    write_song(root / "short", RATE // 2, [("n", 0.1, 0.2), ("ow", 0.2, 0.45)])
    # broken: no bass stem, must be skipped
    write_song(root / "broken", RATE, [], skip=("bass",))
    return root


@pytest.fixture(scope="module")
def dataset(corpus_root) -> SongCropDataset:
    return SongCropDataset(corpus_root, crop_seconds=1.01, seed=3, crops_per_song=8)


def items_of(dataset: SongCropDataset, song_id: str) -> list[dict]:
    return [dataset[i] for i in range(len(dataset)) if dataset.songs[i // dataset.crops_per_song].id == song_id]


# --- phones -----------------------------------------------------------------------------------------------


def test_phone_set_fits_the_ctc_head_and_round_trips():
    assert PHONES[BLANK] == "<blank>" and BLANK == 0
    assert N_PHONES == len(set(PHONES)) <= DuoTokConfig().n_ctc_tokens
    assert {"aa", "ax", "hh", "zh", "dx", "axr"} <= set(PHONES)
    ids = phones_to_ids(["dh", "ax", "s", "t", "aa", "r"])
    assert ids_to_phones([*ids, BLANK]) == ["dh", "ax", "s", "t", "aa", "r"]
    assert ids_to_phones([BLANK], drop_blank=False) == ["<blank>"]
    with pytest.raises(KeyError, match="unknown phone 'qq'"):
        phone_id("qq")
    with pytest.raises(KeyError, match="silence"):
        phone_id("pau")
    with pytest.raises(KeyError, match="out of range"):
        ids_to_phones([N_PHONES])


# --- crops ------------------------------------------------------------------------------------------------


def test_crops_are_token_aligned_equal_length_and_read_from_the_right_place(dataset):
    assert dataset.crop_samples == RATE  # 1.01 s rounds down to 25 tokens
    assert [song.id for song in dataset.songs] == ["edge", "long", "short"]
    for item in items_of(dataset, "long"):
        start, n = item["start_sample"], dataset.crop_samples
        assert start % TOKEN == 0 and n % TOKEN == 0
        assert item["mix"].shape == item["vocals"].shape == item["accompaniment"].shape == (n,)
        assert item["stems"].shape == (4, n) and item["stems"].dtype == torch.float32
        assert item["valid_samples"] == n
        expected = ramp(3 * RATE)[start:start + n]
        for track in ("mix", "vocals", "accompaniment"):
            np.testing.assert_allclose(item[track].numpy(), TRACK_GAINS[track] * expected, atol=1e-4)
        for row, stem in enumerate(STEM_ORDER):
            np.testing.assert_allclose(item["stems"][row].numpy(), TRACK_GAINS[stem] * expected, atol=1e-4)


def test_crops_are_reproducible_and_move_with_the_epoch(corpus_root):
    first = SongCropDataset(corpus_root, crop_seconds=1.0, seed=7, crops_per_song=8)
    again = SongCropDataset(corpus_root, crop_seconds=1.0, seed=7, crops_per_song=8)
    long_items = [i for i in range(len(first)) if first.songs[i // 8].id == "long"]
    starts = [first.crop_start(i) for i in long_items]
    assert starts == [again.crop_start(i) for i in long_items]
    assert len(set(starts)) > 1  # items of one song get different crops
    torch.testing.assert_close(first[long_items[0]]["mix"], again[long_items[0]]["mix"])
    first.set_epoch(1)
    moved = [first.crop_start(i) for i in long_items]
    assert moved != starts
    again.set_epoch(1)
    assert moved == [again.crop_start(i) for i in long_items]
    first.set_epoch(0)
    assert [first.crop_start(i) for i in long_items] == starts


def test_phone_targets_are_the_phones_inside_the_crop(dataset):
    (edge,) = {tuple(item["phones"].tolist()) for item in items_of(dataset, "edge")}
    assert ids_to_phones(edge) == ["hh", "ay", "t"]  # pau dropped, "s" crosses the crop end

    for epoch in range(3):
        dataset.set_epoch(epoch)
        for item in items_of(dataset, "long"):
            begin = item["start_sample"] / RATE
            end = begin + dataset.crop_samples / RATE
            # independent of the implementation: whole slots k with [0.1k+0.02, 0.1k+0.08] in [begin, end]
            expected = [CYCLE[k % len(CYCLE)] for k in range(30)
                        if SLOT_S * k + 0.02 >= begin - 1e-9 and SLOT_S * k + 0.08 <= end + 1e-9]
            expected = [p for p in expected if p != "pau"]
            assert ids_to_phones(item["phones"].tolist()) == expected
            assert item["n_phones"] == len(expected) and item["has_vocals"] == bool(expected)
    dataset.set_epoch(0)


def test_short_song_is_zero_padded_with_valid_samples(dataset):
    for item in items_of(dataset, "short"):
        assert item["start_sample"] == 0
        assert item["valid_samples"] == RATE // 2
        assert item["mix"].shape == (RATE,)
        assert torch.all(item["mix"][RATE // 2:] == 0) and torch.all(item["stems"][:, RATE // 2:] == 0)
        assert item["mix"][: RATE // 2].abs().max() > 0.4
        assert ids_to_phones(item["phones"].tolist()) == ["n", "ow"]


def test_collate_pads_phones_and_keeps_lengths(dataset):
    short, edge = items_of(dataset, "short")[0], items_of(dataset, "edge")[0]
    batch = collate_crops([short, edge])
    assert batch["mix"].shape == (2, RATE) and batch["stems"].shape == (2, 4, RATE)
    assert batch["phones"].tolist() == [[*phones_to_ids(["n", "ow"]), 0], phones_to_ids(["hh", "ay", "t"])]
    assert batch["phone_lengths"].tolist() == [2, 3]
    assert batch["valid_samples"].tolist() == [RATE // 2, RATE]
    assert batch["has_vocals"].tolist() == [True, True]
    assert batch["song_id"] == ["short", "edge"]


def test_make_loader_batches_every_crop(corpus_root):
    loader = make_loader(corpus_root, batch_size=4, crop_seconds=1.0, seed=0, crops_per_song=2)
    batches = list(loader)
    assert sum(len(batch["song_id"]) for batch in batches) == 6
    assert batches[0]["stems"].shape == (4, 4, RATE)


# --- folders that cannot be used --------------------------------------------------------------------------


def test_folder_missing_a_stem_is_skipped_with_a_warning(corpus_root, caplog):
    with caplog.at_level(logging.WARNING, logger="tokenizer.data"):
        dataset = SongCropDataset(corpus_root, crop_seconds=1.0)
    assert "broken" not in {song.id for song in dataset.songs}
    assert "broken (missing stems/bass.flac)" in caplog.text


def test_empty_root_raises_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"no usable songs under .*: no song folders found; .*needs mix.flac"):
        SongCropDataset(tmp_path)
    with pytest.raises(ValueError, match=r"no usable songs under .*missing"):
        SongCropDataset(tmp_path / "missing")
    write_song(tmp_path / "only_broken", RATE, [], skip=("drums",))
    with pytest.raises(ValueError, match=r"all 1 song folders were skipped"):
        SongCropDataset(tmp_path)


def test_unknown_phone_in_meta_names_the_song(tmp_path):
    write_song(tmp_path / "odd", RATE, [("qq", 0.1, 0.2)])
    with pytest.raises(ValueError, match=r"song odd: unknown phone 'qq'"):
        SongCropDataset(tmp_path, crop_seconds=0.5)


# --- normalisation stats ----------------------------------------------------------------------------------


def test_estimate_mel_stats_is_finite_and_positive(dataset):
    config = DuoTokConfig()
    frontend = AudioFrontEnd(config.sample_rate, config.n_fft, config.hop_length, config.n_mels)
    mean, std = estimate_mel_stats(dataset, frontend, n_items=6)
    assert mean.shape == std.shape == (128,)
    assert torch.isfinite(mean).all() and torch.isfinite(std).all()
    assert (std > 0).all()
    assert std.mean() > 0.1  # the tracks' different gains and the sawtooth's harmonics vary the bins


def test_frame_phone_labels_name_the_phone_at_each_token_centre(dataset):
    item = items_of(dataset, "edge")[0]
    labels = item["phone_frames"].tolist()
    assert len(labels) == dataset.crop_samples // dataset.samples_per_token == 25
    # token k's centre is at (k + 0.5) * 0.04 s: pau (0..0.1) -> 0, hh (0.1..0.2), ay (0.2..0.96), t (0.96..1.0)
    expected = []
    for k in range(len(labels)):
        centre = (k + 0.5) * 0.04
        name = "hh" if 0.1 <= centre < 0.2 else "ay" if 0.2 <= centre < 0.96 else "t" if centre >= 0.96 else None
        expected.append(phone_id(name) if name else 0)
    assert labels == expected
    batch = collate_crops(items_of(dataset, "short")[:2])
    assert batch["phone_frames"].shape == (2, 25)
    assert batch["phone_frames"][0].tolist().count(0) < 25  # "n" and "ow" are sung in the short song


def test_pitch_labels_are_the_sung_semitone_of_each_token_frame(tmp_path):
    from tokenizer.data import PITCH_LOW_MIDI

    write_song(tmp_path / "sung", RATE, [("ay", 0.1, 0.9)])
    meta = json.loads((tmp_path / "sung" / "meta.json").read_text())
    # F0 every 10 ms: 0.2 s unvoiced, A3 (220 Hz, MIDI 57) a little sharp, C4 (MIDI 60), then one token
    # frame with a single voiced value (not enough) and the rest unvoiced
    hz = [0.0] * 20 + [224.0] * 40 + [261.63] * 20 + [0.0, 0.0, 0.0, 300.0] + [0.0] * 16
    meta["f0"] = {"hop_seconds": 0.01, "hz": hz}
    (tmp_path / "sung" / "meta.json").write_text(json.dumps(meta))
    item = SongCropDataset(tmp_path, crop_seconds=1.0, crops_per_song=1)[0]
    labels = item["pitch_frames"].tolist()
    a3, c4 = 57 - PITCH_LOW_MIDI + 1, 60 - PITCH_LOW_MIDI + 1
    assert labels == [0] * 5 + [a3] * 10 + [c4] * 5 + [0] * 5


def test_songs_without_an_f0_track_have_no_pitch_labels(dataset):
    batch = collate_crops(items_of(dataset, "long")[:2])
    assert batch["pitch_frames"].shape == (2, 25)
    assert batch["pitch_frames"].eq(0).all()
