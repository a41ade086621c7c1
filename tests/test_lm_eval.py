"""Tests for lm.eval: which positions are targets, the PPL@1024 / bits-per-frame arithmetic on hand-made numbers,
evaluate_ppl against a direct computation (whole sequences, sliding windows, padding, training windows), and the
add-one unigram baseline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lm.eval import KINDS, NOT_A_TARGET, evaluate_ppl, summarize, target_kinds, unigram_baseline
from lm.layout import SectionTokens, SongTokens, Vocabulary, build_sequence

VOCAB = Vocabulary(n_text=50, codebook_size_vocal=16, codebook_size_accomp=16)


def song(seed: int, frames=(6, 4, 9)) -> SongTokens:
    rng = np.random.default_rng(seed)
    tags = ("verse", "inst", "chorus")
    return SongTokens([4, 5], [SectionTokens(tag, [] if tag == "inst" else rng.integers(0, 50, 3).tolist(),
                                             rng.integers(0, 16, n), rng.integers(0, 16, n), tag == "inst")
                               for tag, n in zip(tags, frames, strict=True)])


class BigramModel(torch.nn.Module):
    """Logits at position t depend on ids[t] only (a lookup table), so the exact CE is easy to compute directly
    and does not depend on context: windowed scoring must give the same numbers as one pass."""

    def __init__(self, seed: int = 0):
        super().__init__()
        self.table = torch.nn.Embedding(VOCAB.size, VOCAB.size)
        torch.nn.init.normal_(self.table.weight, generator=torch.Generator().manual_seed(seed), std=2.0)

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return type("Output", (), {"logits": self.table(input_ids)})()


def direct_nll(model, ids) -> np.ndarray:
    """-ln p(ids[t] | ids[<t]) for t = 1.., from one full forward."""
    with torch.no_grad():
        logits = model(input_ids=torch.as_tensor(ids)[None]).logits[0].double()
    log_probs = torch.log_softmax(logits[:-1], -1)
    return -log_probs.gather(1, torch.as_tensor(ids[1:])[:, None])[:, 0].numpy()


def direct_report(model, sequences) -> dict:
    nats, counts = np.zeros(len(KINDS)), np.zeros(len(KINDS), dtype=np.int64)
    for ids in sequences:
        kinds = target_kinds(ids, VOCAB)[1:]
        nll = direct_nll(model, ids)
        for kind in range(len(KINDS)):
            nats[kind] += nll[kinds == kind].sum()
            counts[kind] += (kinds == kind).sum()
    return summarize(nats, counts, VOCAB)


def assert_reports_close(actual: dict, expected: dict):
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, rel=1e-5, abs=1e-9, nan_ok=True), key


def test_target_kinds_counts():
    example = SongTokens([1, 2], [SectionTokens("verse", [3, 4, 5], np.arange(4), np.arange(4)),
                                  SectionTokens("inst", [], np.arange(2), np.arange(2), instrumental=True)])
    ids = build_sequence(example, VOCAB)
    kinds = target_kinds(np.concatenate([ids, [VOCAB.pad_id] * 3]), VOCAB)
    assert kinds[0] == NOT_A_TARGET and np.all(kinds[-3:] == NOT_A_TARGET)  # <bos> and padding
    counts = {name: int((kinds == index).sum()) for index, name in enumerate(KINDS)}
    # markers: <style> </style> <section:verse> <audio> </audio> <section:inst> <no_vocal> <audio> </audio> <eos>
    assert counts == {"vocal": 6, "accomp": 6, "text": 5, "marker": 10, "cue": 0}
    assert np.all(VOCAB.is_vocal(ids[kinds[:len(ids)] == 0])) and np.all(VOCAB.is_accomp(ids[kinds[:len(ids)] == 1]))


def test_ppl_at_1024_arithmetic():
    # CE_vocal = ln 8, CE_accomp = ln 32 nats per token; V = 16: PPL@1024 = exp(mean CE) / (16/1024)
    report = summarize([10 * math.log(8), 10 * math.log(32), 3.0, 2.0, 0.0], [10, 10, 3, 4, 0], VOCAB)
    assert report["ce_vocal"] == pytest.approx(math.log(8)) and report["ce_accomp"] == pytest.approx(math.log(32))
    assert report["raw_ppl"] == pytest.approx(16.0)
    assert report["ppl@1024"] == pytest.approx(1024.0)
    assert report["ppl_vocal@1024"] == pytest.approx(512.0) and report["ppl_accomp@1024"] == pytest.approx(2048.0)
    assert report["bits_per_frame"] == pytest.approx(3 + 5) and report["bits_per_second"] == pytest.approx(200.0)
    assert report["ce_text"] == pytest.approx(1.0) and report["ce_marker"] == pytest.approx(0.5)
    assert report["ce_all"] == pytest.approx((10 * math.log(256) + 5) / 27)
    # unequal codebooks: uniform guesses over each still give 1024 (V is the geometric mean)
    uneven = Vocabulary(n_text=50, codebook_size_vocal=16, codebook_size_accomp=64)
    report = summarize([math.log(16), math.log(64), 0, 0, 0], [1, 1, 0, 0, 0], uneven)
    assert report["ppl@1024"] == pytest.approx(1024.0) and report["ppl_accomp@1024"] == pytest.approx(1024.0)
    assert math.isnan(report["ce_text"])


class UniformModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return type("Output", (), {"logits": torch.zeros(*input_ids.shape, VOCAB.size)})()


def test_uniform_model_scores_log_vocab():
    sequences = [build_sequence(song(seed), VOCAB) for seed in range(3)]
    report = evaluate_ppl(UniformModel(), VOCAB, sequences)
    for kind in KINDS:
        if kind != "cue":  # these songs have no word cues
            assert report[f"ce_{kind}"] == pytest.approx(math.log(VOCAB.size))
    assert report["n_cue"] == 0
    assert report["ppl@1024"] == pytest.approx(VOCAB.size * 1024 / 16)
    assert report["bits_per_frame"] == pytest.approx(2 * math.log2(VOCAB.size))
    assert report["n_vocal"] == report["n_accomp"] == 3 * 19 and report["n_sequences"] == 3


@pytest.mark.parametrize(("max_len", "stride", "batch_size"), [(1024, None, 4), (20, 7, 1), (17, 16, 3), (9, 1, 5)])
def test_windows_and_batches_match_direct(max_len, stride, batch_size):
    model = BigramModel()
    sequences = [build_sequence(song(seed, frames=(6 + seed, 4, 9)), VOCAB) for seed in range(3)]
    padded = [np.concatenate([sequences[0], [VOCAB.pad_id] * 5]), *sequences[1:]]
    report = evaluate_ppl(model, VOCAB, padded, max_len=max_len, stride=stride, batch_size=batch_size)
    assert_reports_close(report, direct_report(model, sequences))
    assert (report["n_windows"] == 3) == (max_len >= max(map(len, sequences)))


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB.size, hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                        max_position_embeddings=512, initializer_range=0.3))


def test_llama_matches_direct_and_restores_mode():
    model = tiny_llama().train()
    sequences = [build_sequence(song(seed), VOCAB) for seed in range(3)]
    report = evaluate_ppl(model, VOCAB, sequences, batch_size=2)  # right-padded batch of unequal lengths
    assert model.training
    assert_reports_close(report, direct_report(model.eval(), sequences))


def test_training_windows_count_each_frame_once():
    from lm.data import plan_windows, window_ids

    model, example = tiny_llama().eval(), song(5, frames=(12, 5, 30))
    windows = [window_ids(example, window, VOCAB) for window, _ in plan_windows(example, max_len=30)]
    assert len(windows) > 2 and windows[0][-1] != VOCAB.eos_id  # cut windows, no closing tokens
    report = evaluate_ppl(model, VOCAB, windows, max_len=30)
    assert report["n_vocal"] == report["n_accomp"] == example.n_frames
    assert_reports_close(report, direct_report(model, windows))


def test_unigram_baseline_by_hand():
    train = SongTokens([1], [SectionTokens("verse", [2, 2], np.array([0, 0, 1]), np.array([2, 2, 2]))])
    held_out = SongTokens([1], [SectionTokens("verse", [3], np.array([0, 1]), np.array([2, 3]))])
    report = unigram_baseline([build_sequence(train, VOCAB)], [build_sequence(held_out, VOCAB)], VOCAB)
    # add-one over each kind's own range: vocal (3 seen, 16 codes): p(0)=3/19, p(1)=2/19; accomp p(2)=4/19, p(3)=1/19
    assert report["ce_vocal"] == pytest.approx(-(math.log(3 / 19) + math.log(2 / 19)) / 2)
    assert report["ce_accomp"] == pytest.approx(-(math.log(4 / 19) + math.log(1 / 19)) / 2)
    # text: train pieces 1, 2, 2 (3 of 50): p(1)=2/53, p(3)=1/53
    assert report["ce_text"] == pytest.approx(-(math.log(2 / 53) + math.log(1 / 53)) / 2)
    n_special = VOCAB.n_special  # markers in train: <style> </style> <section:verse> <audio> </audio> <eos>
    assert report["ce_marker"] == pytest.approx(-math.log(2 / (6 + n_special)))
    expected = math.exp((report["ce_vocal"] + report["ce_accomp"]) / 2) / (16 / 1024)
    assert report["ppl@1024"] == pytest.approx(expected)
    # no training data: add-one alone is the uniform guess, PPL@1024 = 1024
    assert unigram_baseline([], [build_sequence(held_out, VOCAB)], VOCAB)["ppl@1024"] == pytest.approx(1024.0)


def test_bad_input():
    good = build_sequence(song(0), VOCAB)
    with pytest.raises(ValueError, match=r"sequence 1: .*accompaniment slot"):
        broken = good.copy()
        broken[np.flatnonzero(VOCAB.is_accomp(good))[0]] = VOCAB.vocal_start
        evaluate_ppl(UniformModel(), VOCAB, [good, broken])
    with pytest.raises(ValueError, match="max_len must be an integer >= 2"):
        evaluate_ppl(UniformModel(), VOCAB, [good], max_len=1)
    with pytest.raises(ValueError, match=r"stride must be an integer in 1\.\.max_len-1"):
        evaluate_ppl(UniformModel(), VOCAB, [good], max_len=8, stride=8)
    with pytest.raises(ValueError, match="training sequence 0"):
        unigram_baseline([good[1:]], [good], VOCAB)
