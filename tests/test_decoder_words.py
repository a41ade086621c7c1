"""The lyric-aware vocal decoder: per-frame word context (phones of the sung word, its age), the word-phone
attention (starts as the identity, then changes the output), windowed decoding hands each window its slice of
the song's context, the decoder cache keeps the words through save and load, and the training CLI learns from
the words of a real token corpus (and refuses a cache without them)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.test_decoder import K, small_decoder, two_song_token_corpus
from tests.test_tokenizer_model import small_config
from tests.test_vocoder import small_config as small_vocoder_config
from tokenizer.decoder import load_decoder, save_decoder, with_config_updates
from tokenizer.decoder_train import TrackCache, jitter_word_starts
from tokenizer.duotok import DuoTok, TrackTokens
from tokenizer.model import DuoTokModel
from tokenizer.train import main as train_main
from tokenizer.vocoder import Vocoder
from tokenizer.word_context import PHONE_IDS, SungWord, word_context, word_starts


def test_word_context_marks_each_frame_with_its_words_phones_and_age():
    phones, since, *_ = word_context([{"start_frame": 2, "text": "hold"}, (5, "Me,")], n_tokens=8, frames_per_token=2,
                                 max_phones=3, max_since=4)
    assert phones.shape == (16, 3) and since.shape == (16,)
    hold = [PHONE_IDS[p] for p in ("HH", "OW", "L")]  # "hold" is HH OW L D: cut at max_phones
    me = [PHONE_IDS["M"], PHONE_IDS["IY"], 0]
    assert (phones[:4] == 0).all() and (since[:4] == 0).all()  # before the first word
    assert (phones[4:10] == hold).all() and (phones[10:] == me).all()
    assert since[4:10].tolist() == [1, 2, 3, 3, 3, 3]  # the age counts from 1 and stops at max_since - 1
    assert since[10:13].tolist() == [1, 2, 3]


def test_word_context_of_unknown_words_and_unsorted_input():
    phones, since, *_ = word_context([(3, "hello"), (0, "zzxqv")], n_tokens=4, frames_per_token=1, max_phones=6,
                                 max_since=10)
    assert (phones[:3] == 0).all() and since[:3].tolist() == [1, 2, 3]  # a word CMUdict lacks: age, no phones
    assert (phones[3, :4] > 0).all()
    assert word_starts([(3, "b"), (1, "a")]) == [SungWord(1, "a"), SungWord(3, "b")]


@pytest.mark.parametrize("words, match", [
    ([(9, "late")], "outside the song"),
    ([(-1, "early")], "outside the song"),
    ([("1", "x")], "start_frame must be an integer"),
    ([{"text": "no frame"}], "start_frame must be an integer"),
    (["just text"], "expected"),
])
def test_bad_words_get_clear_errors(words, match):
    with pytest.raises(ValueError, match=match):
        word_context(words, n_tokens=9, frames_per_token=2, max_phones=4, max_since=8)


def lyric_decoder(seed: int = 0):
    base = small_decoder("vocal", seed)
    model = with_config_updates(base, {"word_phones": 6}).eval()
    return base, model


def test_word_attention_starts_as_the_identity_then_reads_the_words():
    base, model = lyric_decoder(3)
    indices = torch.randint(0, K, (2, 12))
    context = model.word_context([(0, "sky"), (6, "blue")], 12)
    words = tuple(part[None].expand(2, *part.shape) for part in context)
    torch.testing.assert_close(model.generate(indices, steps=0, words=words), base.generate(indices, steps=0))
    torch.testing.assert_close(model.generate(indices, steps=0), base.generate(indices, steps=0))
    # training moves the zero-initialised output layer; then the words change the mel, and other words differ
    model.train().losses(indices, torch.randn(2, 24, 100), words=words)["loss"].backward()
    assert model.words.out.weight.grad.abs().sum() > 0
    with torch.no_grad():
        model.words.out.weight.normal_(std=0.1)
    model.eval()
    other = tuple(part[None].expand(2, *part.shape) for part in model.word_context([(0, "dark"), (6, "night")], 12))
    with_words, without, with_other = (model.generate(indices, steps=0, words=w) for w in (words, None, other))
    assert not torch.allclose(with_words, without) and not torch.allclose(with_words, with_other)


def test_word_dropout_hides_the_words_from_some_training_crops():
    _, model = lyric_decoder(5)
    model.config.word_dropout = 1.0
    indices, mel = torch.randint(0, K, (2, 10)), torch.randn(2, 20, 100)
    words = tuple(part[None].expand(2, *part.shape) for part in model.word_context([(0, "rain")], 10))
    with torch.no_grad():
        model.words.out.weight.normal_(std=0.1)
    model.train()
    dropped = model.losses(indices, mel, torch.Generator().manual_seed(0), words)["prior"]
    none = model.losses(indices, mel, torch.Generator().manual_seed(0), None)["prior"]
    torch.testing.assert_close(dropped, none)


def test_the_alignment_loss_teaches_the_head_to_name_the_sung_phone():
    base = small_decoder("vocal", 8)
    model = with_config_updates(base, {"word_phones": 6, "word_phone_loss": 0.5, "word_dropout": 0.0}).train()
    indices, mel = torch.randint(0, K, (2, 10)), torch.randn(2, 20, 100)
    words = tuple(part[None].expand(2, *part.shape) for part in model.word_context([(0, "rain"), (5, "fall")], 10))
    labels = torch.zeros(2, 20, dtype=torch.long)
    labels[:, 2:8] = 7
    out = model.losses(indices, mel, words=words, phone_labels=labels)
    assert out["word_phone"] > 0
    torch.testing.assert_close(out["loss"], out["prior"] + out["flow"] + 0.5 * out["word_phone"])
    out["loss"].backward()
    assert model.words.phone_head.weight.grad.abs().sum() > 0 and model.words.query.weight.grad.abs().sum() > 0
    # nothing sung: no alignment loss; labels of the wrong shape: a clear error
    assert model.losses(indices, mel, words=words, phone_labels=torch.zeros_like(labels))["word_phone"] == 0
    with pytest.raises(ValueError, match="phone_labels must be"):
        model.losses(indices, mel, words=words, phone_labels=labels[:, :10])
    assert base.words is None and with_config_updates(base, {"word_phones": 6}).words.phone_head is None
    with pytest.raises(ValueError, match="word_phone_loss"):
        with_config_updates(base, {"word_phone_loss": -1.0})


def test_word_context_shapes_and_word_reading_are_checked():
    base, model = lyric_decoder()
    indices = torch.randint(0, K, (1, 5))
    with pytest.raises(ValueError, match="reads no words"):
        base.generate(indices, words=model.word_context([(0, "a")], 5))
    with pytest.raises(ValueError, match="word context must be"):
        model.generate(indices, steps=0, words=model.word_context([(0, "a")], 5))  # not batched
    assert base.word_context([(0, "a")], 5) is None


def test_save_load_keeps_the_word_attention(tmp_path):
    _, model = lyric_decoder(2)
    with torch.no_grad():
        model.words.out.weight.normal_(std=0.1)
    save_decoder(model, tmp_path / "dec")
    loaded = load_decoder(tmp_path / "dec")
    assert loaded.config.word_phones == 6
    indices = torch.randint(0, K, (1, 9))
    words = tuple(part[None] for part in model.word_context([(1, "love")], 9))
    torch.testing.assert_close(loaded.generate(indices, steps=0, words=words),
                               model.generate(indices, steps=0, words=words))


def test_windowed_decoding_gives_each_window_its_slice_of_the_songs_words(monkeypatch):
    _, vocal = lyric_decoder(6)
    tok = DuoTok(DuoTokModel(small_config()), decoders={"vocal": vocal, "accomp": small_decoder("accomp", 7)},
                 vocoder=Vocoder(small_vocoder_config()).eval())
    words = [(0, "one"), (40, "two"), (95, "three"), (170, "four")]
    n = 181
    seen = []
    generate = vocal.generate

    def spy(indices, steps=None, seed=0, noise=None, temperature=1.0, words=None, context=None):
        seen.append(words)
        return generate(indices, steps=steps, seed=seed, noise=noise, temperature=temperature, words=words,
                        context=context)

    monkeypatch.setattr(vocal, "generate", spy)
    tok.decode_mel(np.arange(n) % K, "vocal", steps=0, words=words)
    phones, since, *_ = vocal.word_context(words, n)
    starts = [0, 80, 81]  # windows of 100 tokens overlapping by 20, the last aligned to the end
    for row, start in enumerate(starts):
        torch.testing.assert_close(seen[0][0][row], phones[2 * start: 2 * start + 200])
        torch.testing.assert_close(seen[0][1][row], since[2 * start: 2 * start + 200])
    assert seen[0][1][1, 0] > 1  # the second window starts inside "two" and knows how old it is
    # the accompaniment decoder reads no words: decode() gives them to the vocal track only
    vocals, _, _ = tok.decode(TrackTokens(np.arange(n) % K, np.arange(n) % K), steps=0, words=words)
    assert vocals.shape == (n * tok.config.samples_per_token,)


def test_cache_keeps_words_through_save_and_load(tmp_path):
    cache = TrackCache([np.arange(30, dtype=np.int16), np.arange(40, dtype=np.int16)],
                       [np.zeros((60, 100), np.float16), np.ones((80, 100), np.float16)], ["a", "b"],
                       [[{"start_frame": 0, "text": "sing", "phones": [{"phone": "S", "start_frame": 0},
                                                                        {"phone": "IH", "start_frame": 1}]},
                         (12, "it")], []])
    cache.save(tmp_path / "cache.npz")
    loaded = TrackCache.load(tmp_path / "cache.npz")
    assert loaded.words == [[SungWord(0, "sing", (("S", 0), ("IH", 1))), SungWord(12, "it")], []]
    assert loaded.has_words and loaded.has_phone_times
    _, model = lyric_decoder()
    loaded.use_words_of(model)
    crops = loaded.batch(3, 30, torch.Generator().manual_seed(0))
    assert crops.words[0].shape == (3, 60, 6) and crops.words[1].shape == (3, 60) and crops.phone_labels is None
    # a cache written without words still loads: every song has none
    legacy = TrackCache(cache.indices, cache.mels, cache.ids)
    assert not legacy.has_words and legacy.batch(2, 30, torch.Generator().manual_seed(0))[2] is None


def test_jittered_word_starts_stay_in_order_near_the_true_starts_and_sometimes_exact():
    words = word_starts([(0, "we"), (3, "walked"), (4, "along"), (20, "the"), (28, "river")])
    generator = torch.Generator().manual_seed(0)
    exact = moved = 0
    for _ in range(200):
        jittered = jitter_word_starts(words, 30, 3, generator)
        assert [word.text for word in jittered] == [word.text for word in words]
        starts = [word.start_frame for word in jittered]
        assert starts == sorted(starts) and starts[0] >= 0 and starts[-1] <= 29
        assert all(abs(new - old.start_frame) <= 3 for new, old in zip(starts, words, strict=True))
        exact += jittered == words
        moved += jittered != words
    assert exact > 20 and moved > 100  # a bound of 0 is drawn about one call in four
    assert jitter_word_starts(words, 30, 0, generator) == words and jitter_word_starts([], 30, 3, generator) == []
    with pytest.raises(ValueError, match="word_jitter"):
        with_config_updates(small_decoder("vocal"), {"word_phones": 4, "word_jitter": -1})


def test_only_a_jittering_cache_moves_the_words_of_its_crops():
    indices = [np.arange(40, dtype=np.int16)]
    words = [[(0, "sing"), (8, "it"), (16, "again"), (30, "now")]]
    _, model = lyric_decoder()
    exact, jittered = (TrackCache(indices, [np.zeros((80, 100), np.float16)], ["a"], words) for _ in range(2))
    exact.use_words_of(model)
    jittered.use_words_of(model, jitter=4)
    same = 0
    for seed in range(8):
        want = exact.batch(1, 40, torch.Generator().manual_seed(seed)).words
        got = jittered.batch(1, 40, torch.Generator().manual_seed(seed)).words
        assert torch.equal(want[0], model.word_context(words[0], 40)[0][None])  # whole song, exact starts
        same += torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert same < 8


def test_training_cli_learns_from_the_token_corpus_words(tmp_path):
    from tokenizer.tokenize_corpus import iter_records

    songs = two_song_token_corpus(tmp_path, 23)
    assert any(record["words"] for record in iter_records(tmp_path / "tokens"))
    args = ["--stage", "decoder", "--track", "vocal", "--data", str(songs), "--tokens", str(tmp_path / "tokens"),
            "--tokenizer", str(tmp_path / "duotok"), "--batch-size", "2", "--crop-tokens", "20", "--dim", "32",
            "--ffn-dim", "64", "--n-heads", "2", "--encoder-layers", "1", "--dit-layers", "1", "--conv-layers", "1",
            "--config-updates", '{"word_phones": 5}', "--steps", "1"]
    assert train_main([*args, "--run-dir", str(tmp_path / "run")]) == 0
    cache = TrackCache.load(tmp_path / "run" / "decoder-vocal" / "cache.npz")
    assert cache.has_words and all(len(labels) == len(mel) for labels, mel in zip(cache.phone_labels, cache.mels,
                                                                                    strict=True))
    assert np.mean(np.concatenate(cache.phone_labels) > 0) > 0.2  # the songs' sung phones, frame by frame
    trained = load_decoder(tmp_path / "run" / "decoder-vocal" / "final")
    assert trained.config.word_phones == 5 and trained.words.out.weight.abs().sum() > 0
    # a cache made without words (an older run, or tokens without the words column) is refused with the way out
    (tmp_path / "old" / "decoder-vocal").mkdir(parents=True)
    TrackCache(cache.indices, cache.mels, cache.ids).save(tmp_path / "old" / "decoder-vocal" / "cache.npz")
    with pytest.raises(SystemExit, match="holds no sung words"):
        train_main([*args, "--run-dir", str(tmp_path / "old")])
    # the alignment loss trains from the cache's phone labels, and refuses a cache without them
    aligned = [*args[:args.index("--config-updates")], "--config-updates",
               '{"word_phones": 5, "word_phone_loss": 0.1, "word_jitter": 2}', "--steps", "1", "--log-every", "1"]
    assert train_main([*aligned, "--run-dir", str(tmp_path / "aligned")]) == 0
    log = (tmp_path / "aligned" / "decoder-vocal" / "log.jsonl").read_text()
    assert '"word_phone"' in log
    (tmp_path / "nolabels" / "decoder-vocal").mkdir(parents=True)
    TrackCache(cache.indices, cache.mels, cache.ids, cache.words).save(
        tmp_path / "nolabels" / "decoder-vocal" / "cache.npz")
    with pytest.raises(SystemExit, match="holds no phone labels"):
        train_main([*aligned, "--run-dir", str(tmp_path / "nolabels")])


def test_word_attention_equals_attention_over_the_built_keys():
    """The attention is computed on the embedding tables (no per-frame key tensor); it must equal one-head
    attention over explicitly built keys: ["nothing", phone + position ...], pads masked, values = value(key)."""
    import math

    _, model = lyric_decoder(9)
    attention = model.words
    with torch.no_grad():
        for parameter in attention.parameters():
            parameter.normal_(std=0.3)
    x = torch.randn(2, 30, attention.query.in_features)
    phones, since, current, phone_since = model.word_context([(0, "hello"), (4, "organizing"), (9, "zzqx")], 15)
    phones, since = phones[None].expand(2, -1, -1), since[None].expand(2, -1)
    current, phone_since = current[None].expand(2, -1), phone_since[None].expand(2, -1)
    keys = attention.phone(phones) + attention.position.weight[: phones.shape[-1]]
    keys = torch.cat([attention.nothing.expand(2, 30, 1, -1), keys], dim=2)
    present = torch.cat([torch.ones_like(phones[..., :1], dtype=torch.bool), phones > 0], dim=2)
    query = attention.query(x) + attention.since(since)
    scores = torch.einsum("bfd,bfkd->bfk", query, keys) / math.sqrt(x.shape[-1])
    weights = scores.masked_fill(~present, float("-inf")).softmax(dim=-1)
    expected = torch.einsum("bfk,bfkd->bfd", weights, attention.value(keys))
    out, picked = attention(x, phones, since, current, phone_since)
    torch.testing.assert_close(picked, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out, x + attention.out(expected), rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------------ phone times

HOLD_ME = [{"start_frame": 2, "text": "hold", "phones": [{"phone": "HH", "start_frame": 2},
                                                          {"phone": "OW", "start_frame": 2},
                                                          {"phone": "L", "start_frame": 4},
                                                          {"phone": "D", "start_frame": 9}]},
           {"start_frame": 6, "text": "me", "phones": [{"phone": "M", "start_frame": 6},
                                                       {"phone": "IY", "start_frame": 7}]}]


def test_phone_times_name_the_phone_being_sung_and_its_age():
    phones, since, current, phone_since = word_context(HOLD_ME, n_tokens=9, frames_per_token=2, max_phones=4,
                                                       max_since=5, phone_times=True)
    assert (phones[4:12] == [PHONE_IDS[p] for p in ("HH", "OW", "L", "D")]).all()
    # HH and OW start in one token frame: HH gets mel frame 4, OW the next; L starts at token 4 = mel 8;
    # D is cued after "me" starts, so it is never the phone being sung
    assert current[:12].tolist() == [0, 0, 0, 0, 1, 2, 2, 2, 3, 3, 3, 3]
    assert phone_since[4:12].tolist() == [1, 1, 2, 3, 1, 2, 3, 4]
    assert current[12:].tolist() == [1, 1, 2, 2, 2, 2] and phone_since[14:].tolist() == [1, 2, 3, 4]
    assert since[12:].tolist() == [1, 2, 3, 4, 4, 4]
    # without phone_times the same words give the word-only context: CMUdict keys, nothing timed
    plain = word_context(HOLD_ME, 9, 2, 4, 5)
    assert (plain.phones == phones).all() and (plain.since == since).all()
    assert not plain.current.any() and not plain.phone_since.any()


def test_timed_phones_are_the_keys_even_where_cmudict_differs():
    words = [{"start_frame": 0, "text": "the", "phones": [{"phone": "DH", "start_frame": 0},
                                                         {"phone": "IY", "start_frame": 1}]}]
    timed = word_context(words, 3, 1, 4, 8, phone_times=True)
    assert timed.phones[0].tolist() == [PHONE_IDS["DH"], PHONE_IDS["IY"], 0, 0]
    assert word_context(words, 3, 1, 4, 8).phones[0, 1] == PHONE_IDS["AH"]  # CMUdict: DH AH
    assert timed.current.tolist() == [1, 2, 2]


@pytest.mark.parametrize("phones, match", [
    ([{"phone": "XX", "start_frame": 0}], "ARPAbet phone"),
    ([{"phone": "AH", "start_frame": -2}], "start frame >= 0"),
    ([("AH",)], "phone 0"),
])
def test_bad_phone_times_get_clear_errors(phones, match):
    with pytest.raises(ValueError, match=match):
        word_context([{"start_frame": 0, "text": "a", "phones": phones}], 4, 2, 4, 8, phone_times=True)


def phone_time_decoder(seed: int):
    _, words_only = lyric_decoder(seed)
    with torch.no_grad():
        words_only.words.out.weight.normal_(std=0.1)
    return words_only, with_config_updates(words_only, {"phone_times": True}).eval()


def test_phone_times_start_as_the_words_only_decoder_then_change_the_mel():
    words_only, model = phone_time_decoder(11)
    indices = torch.randint(0, K, (2, 9))
    timed = tuple(part[None].expand(2, *part.shape) for part in model.word_context(HOLD_ME, 9))
    assert timed[2].any()
    untimed = tuple(part[None].expand(2, *part.shape) for part in words_only.word_context(HOLD_ME, 9))
    torch.testing.assert_close(model.generate(indices, steps=0, words=timed),
                               words_only.generate(indices, steps=0, words=untimed))
    model.train().losses(indices, torch.randn(2, 18, 100), words=timed)["loss"].backward()
    assert model.words.current.weight.grad.abs().sum() > 0 and model.words.phone_since.weight.grad.abs().sum() > 0
    with torch.no_grad():
        model.words.current.weight.normal_(std=1.0)
    model.eval()
    shifted = [dict(word, phones=[dict(p, start_frame=word["start_frame"]) for p in word["phones"]])
               for word in HOLD_ME]  # every phone at its word's start: a different timing
    other = tuple(part[None].expand(2, *part.shape) for part in model.word_context(shifted, 9))
    assert not torch.allclose(model.generate(indices, steps=0, words=timed),
                              model.generate(indices, steps=0, words=other))


def test_phone_times_dropout_hides_the_times_from_training_crops():
    _, model = phone_time_decoder(12)
    model.config.word_dropout, model.config.phone_times_dropout = 0.0, 1.0
    with torch.no_grad():
        model.words.current.weight.normal_(std=1.0)
    indices, mel = torch.randint(0, K, (2, 9)), torch.randn(2, 18, 100)
    timed = tuple(part[None].expand(2, *part.shape) for part in model.word_context(HOLD_ME, 9))
    untimed = (*timed[:2], torch.zeros_like(timed[2]), torch.zeros_like(timed[3]))
    model.train()
    got = model.losses(indices, mel, torch.Generator().manual_seed(0), timed)["prior"]
    want = model.losses(indices, mel, torch.Generator().manual_seed(0), untimed)["prior"]
    torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match="phone_times needs"):
        with_config_updates(small_decoder("vocal"), {"phone_times": True})
    with pytest.raises(ValueError, match="phone_times_dropout"):
        with_config_updates(model, {"phone_times_dropout": 2.0})


def test_jittered_words_carry_their_phones_along():
    words = word_starts(HOLD_ME)
    generator = torch.Generator().manual_seed(1)
    for _ in range(50):
        for old, new in zip(words, jitter_word_starts(words, 9, 3, generator), strict=True):
            assert [name for name, _ in new.phones] == [name for name, _ in old.phones]
            assert all(frame >= new.start_frame for _, frame in new.phones)
            gaps = [frame - old.start_frame for _, frame in old.phones]
            assert [max(frame - new.start_frame, 0) for _, frame in new.phones] == [max(g, 0) for g in gaps]


def test_training_cli_reads_the_corpus_phone_times(tmp_path):
    from tokenizer.tokenize_corpus import iter_records

    songs = two_song_token_corpus(tmp_path, 24)
    assert any(word["phones"] for record in iter_records(tmp_path / "tokens") for word in record["words"])
    args = ["--stage", "decoder", "--track", "vocal", "--data", str(songs), "--tokens", str(tmp_path / "tokens"),
            "--tokenizer", str(tmp_path / "duotok"), "--batch-size", "2", "--crop-tokens", "20", "--dim", "32",
            "--ffn-dim", "64", "--n-heads", "2", "--encoder-layers", "1", "--dit-layers", "1", "--conv-layers", "1",
            "--config-updates", '{"word_phones": 5, "phone_times": true, "word_dropout": 0, "phone_times_dropout": 0}',
            "--steps", "3"]
    # three steps: the first runs at the warm-up's lr 0 and the second moves the zero-initialised output layer, so
    # only the third can move the (also zero-initialised) phone-time embeddings
    assert train_main([*args, "--run-dir", str(tmp_path / "run")]) == 0
    assert TrackCache.load(tmp_path / "run" / "decoder-vocal" / "cache.npz").has_phone_times
    trained = load_decoder(tmp_path / "run" / "decoder-vocal" / "final")
    assert trained.config.phone_times and trained.words.current.weight.abs().sum() > 0
    # a cache whose words lack phone times (tokens made before phones were kept) is refused with the way out
    cache = TrackCache.load(tmp_path / "run" / "decoder-vocal" / "cache.npz")
    (tmp_path / "old" / "decoder-vocal").mkdir(parents=True)
    TrackCache(cache.indices, cache.mels, cache.ids, [[(w.start_frame, w.text) for w in song] for song in cache.words],
               cache.phone_labels).save(tmp_path / "old" / "decoder-vocal" / "cache.npz")
    with pytest.raises(SystemExit, match="holds no phone times"):
        train_main([*args, "--run-dir", str(tmp_path / "old")])


def test_swapped_token_spans_are_real_stretches_from_elsewhere_in_the_crop():
    from tokenizer.decoder import swap_token_spans

    indices = torch.arange(200).repeat(4, 1)
    swapped = swap_token_spans(indices, 0.3, 3, torch.Generator().manual_seed(0))
    changed = swapped != indices
    assert 0.15 < changed.float().mean() < 0.35  # about the share asked for (overlapping spans merge)
    for row in range(4):
        offsets = ((swapped[row] - indices[row]) % 200)[changed[row]]
        assert len(set(offsets.tolist())) == 1  # one offset per row: each span a contiguous stretch
    assert torch.equal(swap_token_spans(indices, 0.0, 3, torch.Generator().manual_seed(0)), indices)


def test_token_noise_is_for_training_only():
    _, model = phone_time_decoder(13)
    model = with_config_updates(model, {"token_noise": 0.5})
    indices, mel = torch.randint(0, K, (2, 9)), torch.randn(2, 18, 100)
    clean = with_config_updates(model, {"token_noise": 0.0})
    model.eval(), clean.eval()
    torch.testing.assert_close(model.losses(indices, mel, torch.Generator().manual_seed(0))["prior"],
                               clean.losses(indices, mel, torch.Generator().manual_seed(0))["prior"])
    model.train(), clean.train()
    noisy = model.losses(indices, mel, torch.Generator().manual_seed(0))["prior"]
    assert not torch.allclose(noisy, clean.losses(indices, mel, torch.Generator().manual_seed(0))["prior"])
    with pytest.raises(ValueError, match="token_noise"):
        with_config_updates(model, {"token_noise": 1.0})
