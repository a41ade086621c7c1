"""The token-content probe: a token that names its label is read perfectly, a token that says nothing is not
better than the token-blind guess; frame labels follow the phone and F0 times."""

from __future__ import annotations

import numpy as np

from bench.token_content import frame_labels, probe
from tokenizer.phones import phone_id


def test_an_informative_token_is_read_perfectly_and_a_blind_one_is_not():
    rng = np.random.default_rng(0)
    labels = rng.integers(1, 6, 2000).tolist()
    named = [(label + 100, label) for label in labels]  # the token id encodes the label
    result = probe(named[:1500], named[1500:])
    assert result["accuracy_from_token"] == 1.0 and result["accuracy_from_token"] > result["accuracy_token_blind"]
    assert result["information_bits"] > 1.5
    blind = [(7, label) for label in labels]  # one token for everything
    result = probe(blind[:1500], blind[1500:])
    assert result["accuracy_from_token"] == result["accuracy_token_blind"]
    assert abs(result["information_bits"]) < 0.01


def test_frame_labels_take_the_phone_and_the_note_at_each_frame_centre():
    meta = {"words": [{"syllables": [{"phones": [{"phone": "pau", "start": 0.0, "end": 0.04},
                                                  {"phone": "aa", "start": 0.04, "end": 0.12}]}]}],
            "f0": {"hop_seconds": 0.01, "hz": [0.0] * 6 + [440.0] * 10}}
    phones, notes = frame_labels(meta, 4)
    assert phones == [None, phone_id("aa"), phone_id("aa"), None]
    assert notes == [None, 69, 69, 69]
