"""Tests for lm.generate: slot constraints under any sampling settings, KV cache against a full forward, greedy
and guided decoding against a teacher-forced reference, seeds, forced tracks, the modes and input errors.

The model is a tiny random ``LlamaForCausalLM`` over ``Vocabulary(50, 16, 16)``, initialised with large weights
so its logits are far from uniform (argmax comparisons then have no near-ties).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lm.generate import (
    GenerationOptions,
    SectionRequest,
    _Stream,
    accompaniment_for_vocal,
    continue_song,
    full_song,
    generate_song,
    guided_log_probs,
    instrumental,
    resample_track,
    sample_from_log_probs,
    vocal_for_accompaniment,
)
from lm.layout import SectionTokens, SongTokens, Vocabulary, build_sequence, revert_sequence, section_frame_spans
from lm.layout import slot_kind as layout_slot_kind

VOCAB = Vocabulary(n_text=50, codebook_size_vocal=16, codebook_size_accomp=16)
STYLE = [3, 7, 11]
REQUESTS = [SectionRequest("intro", [], 5, instrumental=True),
            SectionRequest("verse", [1, 2, 3, 4], 7),
            SectionRequest("chorus", [5, 6], 6)]


def local_drop_condition(song: SongTokens) -> SongTokens:
    """What lm.data.drop_condition does (style and lyric text blanked, markers and audio kept)."""
    return SongTokens([], [SectionTokens(s.tag, [], s.vocal, s.accomp, s.instrumental) for s in song.sections])


def make_model(max_positions: int = 512) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB.size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
                         initializer_range=0.5)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def model():
    return make_model()


class Adversary(torch.nn.Module):
    """Wraps a model and pushes its logits toward what slots must never emit: specials and text (incl.
    ``</audio>``) most, then accompaniment codes (wrong in a vocal slot). Its forward has no ``cache`` argument,
    so it also covers the ``past_key_values`` fallback."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        bias = torch.zeros(VOCAB.size)
        bias[:VOCAB.vocal_start] = 50.0
        bias[VOCAB.accomp_start:] = 20.0
        self.register_buffer("bias", bias)

    def forward(self, input_ids, **kwargs):
        output = self.inner(input_ids=input_ids, **kwargs)
        output.logits = output.logits + self.bias
        return output


def full_logits(model, ids) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.as_tensor(np.asarray(ids))[None]).logits[0].float()


def audio_positions(ids):
    """(position in the sequence, slot kind, section index) of every audio token."""
    for index, span in enumerate(section_frame_spans(ids, VOCAB)):
        for offset in range(2 * span.n_frames):
            yield span.token_start + offset, layout_slot_kind(offset), index


RANGES = {"vocal": (VOCAB.vocal_start, VOCAB.accomp_start), "accomp": (VOCAB.accomp_start, VOCAB.size)}


def check_structure(song: SongTokens, requests, style=STYLE):
    assert revert_sequence(build_sequence(song, VOCAB), VOCAB) == song  # every slot holds its kind
    assert song.style_ids == style
    assert [s.tag for s in song.sections] == [r.tag for r in requests]
    assert [s.n_frames for s in song.sections] == [r.n_frames for r in requests]
    assert [s.text_ids for s in song.sections] == [list(r.text_ids) for r in requests]
    assert [s.instrumental for s in song.sections] == [r.instrumental for r in requests]
    for section in song.sections:
        assert section.vocal.min() >= 0 and section.vocal.max() < VOCAB.codebook_size_vocal
        assert section.accomp.min() >= 0 and section.accomp.max() < VOCAB.codebook_size_accomp


SETTINGS = [dict(temperature=0.0), dict(temperature=1.0), dict(temperature=2.5, top_k=3),
            dict(temperature=1.0, top_p=0.3), dict(temperature=5.0, top_k=40, top_p=0.9),
            dict(temperature=1.5, cfg_scale=3.0)]


@pytest.mark.filterwarnings("ignore:`past_key_values` is deprecated:FutureWarning")  # the Adversary's fallback
@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("adversarial", [False, True])
def test_slot_constraints_and_frame_counts(model, settings, adversarial):
    lm = Adversary(model) if adversarial else model
    song = generate_song(lm, VOCAB, STYLE, REQUESTS, GenerationOptions(seed=1, **settings))
    check_structure(song, REQUESTS)


def test_kv_cache_logits_equal_full_forward(model):
    ids = build_sequence(SongTokens(STYLE, [SectionTokens("verse", [1, 2], np.arange(9), np.arange(9) % 5)]), VOCAB)
    reference = full_logits(model, ids)
    stream, cursor = _Stream(model, torch.device("cpu")), 0
    assert stream.cache_argument == "cache"  # transformers 5.x name
    with torch.no_grad():
        for chunk in (4, 1, 1, 3, 1, 2, 1, 1, 5, 1):  # prompt, single tokens and forced runs
            stream.push(ids[cursor:cursor + chunk])
            cursor += chunk
            torch.testing.assert_close(stream.next_logits().float(), reference[cursor - 1], atol=1e-4, rtol=1e-4)
    with pytest.raises(RuntimeError):
        stream.next_logits()


def teacher_check(model, song: SongTokens, sampled_kinds=("vocal", "accomp"), cfg_scale: float = 1.0,
                  first_section: int = 0):
    """Greedy output == argmax over the slot's range of the full-forward (guided) log-probs, at every sampled
    audio position of the sections from ``first_section`` on."""
    ids = build_sequence(song, VOCAB)
    cond = torch.log_softmax(full_logits(model, ids), -1)
    positions = list(audio_positions(ids))
    if cfg_scale != 1.0:
        uncond_ids = build_sequence(local_drop_condition(song), VOCAB)
        uncond = torch.log_softmax(full_logits(model, uncond_ids), -1)
        uncond_positions = [p for p, _, _ in audio_positions(uncond_ids)]
    for index, (position, kind, section) in enumerate(positions):
        if kind not in sampled_kinds or section < first_section:
            continue
        scores = cond[position - 1]
        if cfg_scale != 1.0:
            other = uncond[uncond_positions[index] - 1]
            scores = other + cfg_scale * (scores - other)
        start, stop = RANGES[kind]
        assert ids[position] == start + int(torch.argmax(scores[start:stop])), (position, kind)


def test_greedy_matches_full_forward(model):
    song = generate_song(model, VOCAB, STYLE, REQUESTS, GenerationOptions(temperature=0.0))
    teacher_check(model, song)


def test_guided_greedy_matches_reference(model):
    from lm.data import drop_condition

    song = generate_song(model, VOCAB, STYLE, REQUESTS, GenerationOptions(temperature=0.0, cfg_scale=3.0))
    # the reference below builds the unconditional stream with the local definition: it must be lm.data's
    assert drop_condition(song).style_ids == [] and drop_condition(song).sections == local_drop_condition(song).sections
    teacher_check(model, song, cfg_scale=3.0)
    unguided = generate_song(model, VOCAB, STYLE, REQUESTS, GenerationOptions(temperature=0.0))
    assert song != unguided


class CountingModel(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, input_ids, cache=None, **kwargs):
        self.calls += 1
        return self.inner(input_ids=input_ids, cache=cache, **kwargs)


def test_cfg_scale_one_is_unguided(model):
    logits = torch.randn(2, VOCAB.size)
    assert torch.equal(guided_log_probs(logits[0], logits[1], 1.0), torch.log_softmax(logits[0], -1))
    counting = CountingModel(model)
    one = generate_song(counting, VOCAB, STYLE, REQUESTS, GenerationOptions(seed=5, cfg_scale=1.0))
    calls_unguided = counting.calls
    counting.calls = 0
    default = generate_song(counting, VOCAB, STYLE, REQUESTS, GenerationOptions(seed=5))
    assert one == default and counting.calls == calls_unguided
    assert calls_unguided == 2 * sum(r.n_frames for r in REQUESTS)  # one forward per sampled token
    counting.calls = 0
    generate_song(counting, VOCAB, STYLE, REQUESTS, GenerationOptions(seed=5, cfg_scale=2.0))
    assert counting.calls == 2 * calls_unguided  # the second (unconditional) stream


def test_seed_determinism(model):
    def run(seed):
        return generate_song(model, VOCAB, STYLE, REQUESTS, GenerationOptions(seed=seed, temperature=1.5))

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_sample_from_log_probs_filters():
    generator = torch.Generator().manual_seed(0)
    scores = torch.tensor([0.0, 3.0, 1.0, 2.5, -1.0])
    assert sample_from_log_probs(scores, GenerationOptions(temperature=0.0), generator) == 1
    assert sample_from_log_probs(scores, GenerationOptions(top_k=1), generator) == 1
    assert sample_from_log_probs(scores, GenerationOptions(top_p=0.01), generator) == 1
    top2 = {sample_from_log_probs(scores, GenerationOptions(temperature=10.0, top_k=2), generator)
            for _ in range(200)}
    assert top2 == {1, 3}
    nucleus = {sample_from_log_probs(scores, GenerationOptions(temperature=1.0, top_p=0.8), generator)
               for _ in range(300)}
    assert nucleus == {1, 3}  # p(1)+p(3) ≈ 0.88 reaches 0.8; the rest is cut


def test_progress_callback(model):
    calls = []
    generate_song(model, VOCAB, STYLE, REQUESTS, GenerationOptions(seed=0, cfg_scale=2.0),
                  progress=lambda done, total: calls.append((done, total)))
    total = sum(r.n_frames for r in REQUESTS)
    assert calls == [(done, total) for done in range(1, total + 1)]


# --- modes ------------------------------------------------------------------------------------------------------


def test_full_song_and_instrumental(model):
    check_structure(full_song(model, VOCAB, STYLE, REQUESTS, GenerationOptions(seed=2)), REQUESTS)
    song = instrumental(model, VOCAB, STYLE, [("intro", 4), ("inst", 6), ("outro", 3)], GenerationOptions(seed=2))
    assert [(s.tag, s.n_frames, s.instrumental, s.text_ids) for s in song.sections] == [
        ("intro", 4, True, []), ("inst", 6, True, []), ("outro", 3, True, [])]
    with pytest.raises(ValueError, match="full_song samples both tracks"):
        full_song(model, VOCAB, STYLE, [SectionRequest("verse", [1], 2, forced_vocal=np.zeros(2, int))])


@pytest.mark.parametrize("cfg_scale", [1.0, 2.5])
def test_accompaniment_for_vocal_keeps_vocal(model, cfg_scale):
    rng = np.random.default_rng(0)
    vocal = rng.integers(0, 16, sum(r.n_frames for r in REQUESTS))
    options = GenerationOptions(temperature=0.0, cfg_scale=cfg_scale)
    song = accompaniment_for_vocal(model, VOCAB, STYLE, REQUESTS, vocal, options)
    check_structure(song, REQUESTS)
    assert np.array_equal(np.concatenate([s.vocal for s in song.sections]), vocal)
    teacher_check(model, song, sampled_kinds=("accomp",), cfg_scale=cfg_scale)


def test_vocal_for_accompaniment_keeps_accompaniment(model):
    rng = np.random.default_rng(1)
    accomp = rng.integers(0, 16, sum(r.n_frames for r in REQUESTS))
    song = vocal_for_accompaniment(model, VOCAB, STYLE, REQUESTS, accomp, GenerationOptions(temperature=0.0))
    check_structure(song, REQUESTS)
    assert np.array_equal(np.concatenate([s.accomp for s in song.sections]), accomp)
    teacher_check(model, song, sampled_kinds=("vocal",))
    with pytest.raises(ValueError, match="has 17 frames but the sections ask for 18"):
        vocal_for_accompaniment(model, VOCAB, STYLE, REQUESTS, accomp[:-1])


def random_song(seed: int) -> SongTokens:
    rng = np.random.default_rng(seed)
    return SongTokens(STYLE, [SectionTokens(r.tag, r.text_ids, rng.integers(0, 16, r.n_frames),
                                            rng.integers(0, 16, r.n_frames), r.instrumental) for r in REQUESTS])


@pytest.mark.parametrize("track", ["vocal", "accomp"])
def test_resample_track_keeps_everything_else(model, track):
    song = random_song(7)
    new = resample_track(model, VOCAB, song, 1, track, GenerationOptions(seed=0))
    assert new.style_ids == song.style_ids and len(new.sections) == 3
    assert new.sections[0] == song.sections[0] and new.sections[2] == song.sections[2]
    kept = "accomp" if track == "vocal" else "vocal"
    assert np.array_equal(getattr(new.sections[1], kept), getattr(song.sections[1], kept))
    assert not np.array_equal(getattr(new.sections[1], track), getattr(song.sections[1], track))
    assert new.sections[1].text_ids == song.sections[1].text_ids
    greedy = resample_track(model, VOCAB, song, 1, track, GenerationOptions(temperature=0.0))
    teacher_check(model, SongTokens(STYLE, greedy.sections[:2]), sampled_kinds=(track,), first_section=1)


def test_continue_song_keeps_prefix(model):
    prefix = random_song(3)
    more = [SectionRequest("bridge", [9, 8], 4), SectionRequest("outro", [], 3, instrumental=True)]
    song = continue_song(model, VOCAB, prefix, more, GenerationOptions(temperature=0.0))
    assert song.style_ids == STYLE and song.sections[:3] == prefix.sections
    check_structure(SongTokens(STYLE, song.sections[3:]), more)
    teacher_check(model, song, first_section=3)


# --- bad input ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("settings", "message"), [
    (dict(temperature=-0.5), "temperature must be >= 0"),
    (dict(temperature=float("nan")), "temperature must be a finite number"),
    (dict(top_p=0.0), r"top_p must be in \(0, 1\]"),
    (dict(top_p=1.5), r"top_p must be in \(0, 1\]"),
    (dict(top_k=0), "top_k must be a positive integer or None"),
    (dict(top_k=2.5), "top_k must be a positive integer or None"),
    (dict(cfg_scale=-1.0), "cfg_scale must be >= 0"),
    (dict(seed=-3), "seed must be None or an integer"),
    (dict(seed="7"), "seed must be None or an integer"),
    (dict(max_frames_per_section=0), "max_frames_per_section must be a positive integer"),
    (dict(max_song_frames=True), "max_song_frames must be a positive integer"),
])
def test_bad_options(settings, message):
    with pytest.raises(ValueError, match=message):
        GenerationOptions(**settings)


def test_options_are_frozen():
    with pytest.raises(AttributeError):
        GenerationOptions().temperature = 2.0


def codes(n, value=0):
    return np.full(n, value, dtype=np.int64)


@pytest.mark.parametrize(("sections", "message"), [
    ([], "sections list is empty"),
    ([SectionRequest("drop", [1], 4)], "unknown section tag 'drop'"),
    ([SectionRequest("verse", [1], 0)], "n_frames must be a positive integer"),
    ([SectionRequest("verse", [1], -2)], "n_frames must be a positive integer"),
    ([SectionRequest("verse", [1], 3.0)], "n_frames must be a positive integer"),
    ([SectionRequest("verse", [1], 25 * 600 + 1)], "above the limit of 15000"),
    ([SectionRequest("verse", [1, 50], 4)], r"text piece 50, outside the text range 0\.\.49"),
    ([SectionRequest("verse", [-1], 4)], "text piece -1"),
    ([SectionRequest("inst", [1], 4, instrumental=True)], "instrumental section has no lyrics"),
    ([SectionRequest("verse", [1], 4, forced_vocal=codes(4, 16))], r"forced_vocal holds code 16, outside .*0\.\.15"),
    ([SectionRequest("verse", [1], 4, forced_accomp=codes(4, -1))], "forced_accomp holds code -1"),
    ([SectionRequest("verse", [1], 4, forced_vocal=codes(5))], r"forced_vocal must have shape \(4,\)"),
    ([SectionRequest("verse", [1], 4, forced_accomp=np.zeros(4))], "forced_accomp must be integer codes"),
    ([SectionRequest("verse", [1], 2), SectionRequest("chorus", [1], 2, forced_vocal=codes((2, 1)))],
     r"section 1 \[chorus\]: forced_vocal must have shape"),
])
def test_bad_sections(model, sections, message):
    with pytest.raises(ValueError, match=message):
        generate_song(model, VOCAB, STYLE, sections, GenerationOptions(seed=0))


def test_bad_song_inputs(model):
    one = [SectionRequest("verse", [1], 3)]
    with pytest.raises(ValueError, match="style_ids holds text piece 99"):
        generate_song(model, VOCAB, [1, 99], one)
    bad_prefix = SongTokens(STYLE, [SectionTokens("verse", [1], codes(3, 20), codes(3))])
    with pytest.raises(ValueError, match=r"prefix: section 0 .*vocal code 20 is out of range"):
        continue_song(model, VOCAB, bad_prefix, one)
    with pytest.raises(ValueError, match="style_ids differ from the prefix"):
        generate_song(model, VOCAB, [2], one, prefix=random_song(0))
    with pytest.raises(ValueError, match="song would have 40 frames"):
        generate_song(model, VOCAB, STYLE, [SectionRequest("verse", [1], 20)] * 2,
                      GenerationOptions(max_song_frames=30))
    with pytest.raises(ValueError, match="model's context is 64"):
        generate_song(make_model(max_positions=64), VOCAB, STYLE, [SectionRequest("verse", [1], 40)])
    with pytest.raises(ValueError, match="track must be 'vocal' or 'accomp'"):
        resample_track(model, VOCAB, random_song(0), 0, "drums")
    with pytest.raises(ValueError, match="section_index 3 is out of range: the song has 3 sections"):
        resample_track(model, VOCAB, random_song(0), 3, "vocal")
    with pytest.raises(ValueError, match="sections list is empty"):
        accompaniment_for_vocal(model, VOCAB, STYLE, [], codes(0))
    with pytest.raises(ValueError, match="must be a 1-D array"):
        accompaniment_for_vocal(model, VOCAB, STYLE, one, codes((3, 2)))
