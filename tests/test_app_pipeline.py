"""SongGenerator on the shipped checkpoints: every mode end to end (lengths, mix = stems, what is kept), the
manifest round trip, determinism, threads, progress, the output folder, and InputError for every bad input.

Songs are 5–12 s with 2 decoder steps so the whole module runs in about a minute on a CPU. These tests check
the pipeline (shapes, what each mode keeps, determinism, round trips), not how good the audio sounds."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from app.manifest import MANIFEST_NAME, read_manifest, save
from app.pipeline import InputError, ProgressEvent, SongGenerator, SongResult
from app.request import MAX_SEED, SongOptions, count_syllables, plan_sections, spread_frames

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
LYRICS = "[verse]\nhold me close tonight\nunder city lights\n\n[chorus]\nsing it loud\nsing it proud\n"
STYLE = "upbeat pop, female vocal, piano"
FAST = {"decoder_steps": 2}
RATE, PER_FRAME = 24_000, 960


@pytest.fixture(scope="module")
def generator() -> SongGenerator:
    return SongGenerator(CHECKPOINTS)


@pytest.fixture(scope="module")
def song(generator) -> SongResult:
    return generator.generate(LYRICS, STYLE, duration=6, seed=11, options=FAST)


def check_audio(result: SongResult, n_frames: int) -> None:
    assert result.sample_rate == RATE
    assert len(result.tokens) == n_frames == result.manifest["audio"]["n_frames"]
    for track in (result.mix, result.vocals, result.accompaniment):
        assert track.dtype == np.float32 and track.shape == (n_frames * PER_FRAME,)
        assert np.isfinite(track).all()
    np.testing.assert_allclose(result.mix, result.vocals + result.accompaniment, atol=1e-6)
    sections = result.manifest["sections"]
    assert sum(s["n_frames"] for s in sections) == n_frames
    assert sections[-1]["end_seconds"] == pytest.approx(n_frames / 25)
    np.testing.assert_array_equal(result.tokens.vocal, result.manifest["tokens"]["vocal"])
    json.dumps(result.manifest)  # JSON-able as it is


# --- modes ----------------------------------------------------------------------------------------------------


def test_full_song(song):
    check_audio(song, 150)
    manifest = song.manifest
    assert [s["tag"] for s in manifest["sections"]] == ["verse", "chorus"]
    assert all(s["sampled"] == ["vocal", "accomp"] for s in manifest["sections"])
    # the verse has more syllables than the chorus, so it gets more time
    assert manifest["sections"][0]["n_frames"] > manifest["sections"][1]["n_frames"]
    assert manifest["inputs"]["seed"] == 11 and manifest["inputs"]["options"]["decoder_steps"] == 2
    assert manifest["decoder"] == {"steps": 2, "steps_used": {"vocal": 2, "accomp": 2}, "seed": 11}
    assert manifest["inputs"]["lyrics"] == LYRICS and "[chorus]" in manifest["lyrics_normalised"]
    assert set(manifest["checkpoints"]) >= {"duotok-tiny", "lm-tiny", "duotok-tiny/decoder-vocal"}
    assert set(manifest["timings"]) >= {"lm", "decode", "total"}
    assert np.abs(song.vocals).max() > 1e-3 and np.abs(song.accompaniment).max() > 1e-3


def test_same_seed_same_song_other_seed_other_song(generator, song):
    again = generator.generate(LYRICS, STYLE, duration=6, seed=11, options=FAST)
    np.testing.assert_array_equal(again.mix, song.mix)
    np.testing.assert_array_equal(again.tokens.accomp, song.tokens.accomp)
    other = generator.generate(LYRICS, STYLE, duration=6, seed=12, options=FAST)
    assert not np.array_equal(other.tokens.accomp, song.tokens.accomp)


def test_instrumental_without_lyrics(generator):
    result = generator.generate("", "calm piano", duration=12, seed=3, mode="instrumental", options=FAST)
    check_audio(result, 300)
    assert all(s["instrumental"] and not s["text_ids"] for s in result.manifest["sections"])
    assert [s["tag"] for s in result.manifest["sections"]] == ["inst", "outro"]  # sections of about 6 s


def test_a_cappella_is_the_full_songs_vocal_alone(generator, song):
    result = generator.generate(LYRICS, STYLE, duration=6, seed=11, mode="a_cappella", options=FAST)
    check_audio(result, 150)
    np.testing.assert_array_equal(result.accompaniment, 0)
    np.testing.assert_array_equal(result.mix, result.vocals)
    np.testing.assert_array_equal(result.vocals, song.vocals)  # same seed: the same tokens and vocal


def test_accompany_keeps_the_uploaded_vocal(generator, song):
    result = generator.generate(LYRICS, STYLE, duration=30, seed=4, mode="accompany", options=FAST,
                                audio=song.vocals, audio_rate=RATE)
    check_audio(result, 150)  # as long as the upload: the duration only caps it
    expected = generator.tokenizer.encode(vocals=song.vocals, accompaniment=np.zeros_like(song.vocals)).vocal
    np.testing.assert_array_equal(result.tokens.vocal, expected)
    assert all(s["sampled"] == ["accomp"] for s in result.manifest["sections"])
    assert result.manifest["inputs"]["upload"]["seconds"] == pytest.approx(6.0)


def test_sing_over_keeps_the_uploaded_instrumental_cut_to_the_duration(generator, song):
    pair = (RATE, (song.accompaniment * 32767).astype(np.int16))  # Gradio's numpy audio
    result = generator.generate(LYRICS, STYLE, duration=5, seed=4, mode="sing_over", options=FAST, audio=pair)
    check_audio(result, 125)
    expected = generator.tokenizer.encode(vocals=np.zeros_like(song.accompaniment),
                                          accompaniment=pair[1] / 32768).accomp[:125]
    np.testing.assert_array_equal(result.tokens.accomp, expected)
    assert any("only its first 5 s" in w for w in result.warnings)


def test_continue_a_manifest_keeps_its_tokens(generator, song):
    result = generator.generate("[bridge]\nnow we fly", "", duration=5, seed=5, mode="continue", options=FAST,
                                manifest=song.manifest)
    check_audio(result, 150 + 125)
    np.testing.assert_array_equal(result.tokens.vocal[:150], song.tokens.vocal)
    np.testing.assert_array_equal(result.tokens.accomp[:150], song.tokens.accomp)
    assert [s["tag"] for s in result.manifest["sections"]] == ["verse", "chorus", "bridge"]
    assert [s["sampled"] for s in result.manifest["sections"]][:2] == [[], []]
    assert result.manifest["based_on"]["tokens_sha1"] == song.manifest["tokens"]["sha1"]
    assert result.manifest["lm"]["prompt_start_section"] == 0  # it all fits: the LM saw the whole song
    assert result.manifest["inputs"]["style"] == STYLE  # a continuation keeps the song's style


def test_continue_leaves_the_start_of_a_long_song_out_of_the_prompt(generator, song, monkeypatch):
    # with a 600-token context the verse + chorus (about 440 tokens with their word and phone cues) and a 5 s
    # bridge (about 280) do not all fit: the verse stays in the song but not in the LM's prompt
    monkeypatch.setattr(generator, "context", 600)
    result = generator.generate("[bridge]\nnow we fly", "", duration=5, seed=5, mode="continue", options=FAST,
                                manifest=song.manifest)
    check_audio(result, 150 + 125)
    np.testing.assert_array_equal(result.tokens.vocal[:150], song.tokens.vocal)
    assert result.manifest["lm"]["prompt_start_section"] == 1
    with pytest.raises(InputError, match=r"the new part \(9 s with these lyrics\) is too long") as caught:
        generator.generate("[bridge]\nnow we fly", "", duration=9, seed=5, mode="continue", manifest=song.manifest)
    assert caught.value.field == "duration"


def test_continue_an_uploaded_song(generator, song, tmp_path):
    path = tmp_path / "upload.wav"
    sf.write(path, song.mix, RATE)
    result = generator.generate("", STYLE, duration=5, seed=6, mode="continue", options=FAST, audio=path)
    check_audio(result, 150 + 125)
    assert result.manifest["sections"][-1]["instrumental"]  # no lyrics: an instrumental continuation
    assert result.manifest["inputs"]["upload"]["source"] == "upload.wav"


def test_resample_one_section_of_one_track(generator, song):
    result = generator.generate("", "", seed=7, mode="resample", manifest=song.manifest, track="vocals", section=1,
                                options=FAST)
    check_audio(result, 150)
    first = song.manifest["sections"][1]["first_frame"]
    np.testing.assert_array_equal(result.tokens.accomp, song.tokens.accomp)
    np.testing.assert_array_equal(result.tokens.vocal[:first], song.tokens.vocal[:first])
    assert not np.array_equal(result.tokens.vocal[first:], song.tokens.vocal[first:])
    assert [s["sampled"] for s in result.manifest["sections"]] == [[], ["vocal"]]
    assert result.manifest["inputs"]["lyrics"] == LYRICS and result.manifest["inputs"]["track"] == "vocal"


def test_resample_a_whole_track(generator, song):
    result = generator.generate("", "", seed=8, mode="resample", manifest=song.manifest, track="accompaniment",
                                options=FAST)
    check_audio(result, 150)
    np.testing.assert_array_equal(result.tokens.vocal, song.tokens.vocal)
    assert not np.array_equal(result.tokens.accomp, song.tokens.accomp)


# --- manifest, output folder, progress, threads ------------------------------------------------------------------


def test_redecode_rebuilds_the_same_audio_from_a_saved_folder(generator, song, tmp_path):
    paths = save(song, tmp_path / "song", formats=("wav", "flac"))
    assert sorted(p.name for p in paths.values()) == sorted(
        [MANIFEST_NAME, "lyrics.lrc"] + [f"{stem}.{fmt}" for stem in ("mix", "vocals", "accompaniment")
                                         for fmt in ("wav", "flac")])
    assert not [p for p in (tmp_path / "song").iterdir() if p.name.startswith(".")]  # no temporary files left
    again = generator.redecode(tmp_path / "song")
    np.testing.assert_array_equal(again.mix, song.mix)
    np.testing.assert_array_equal(again.vocals, song.vocals)
    assert again.manifest["tokens"] == song.manifest["tokens"]


def test_the_vocal_decoder_is_given_the_cued_words_at_their_song_frames(generator, song, monkeypatch):
    """Generation and re-decoding hand the decoder the same words: each word cue's word at its section's first
    frame plus the cue's frame, in the lyric's order, with the phone cues after it as that word's timed phones."""
    given = []
    decode = generator.tokenizer.decode
    monkeypatch.setattr(generator.tokenizer, "decode",
                        lambda tokens, steps=None, seed=0, words=None: given.append(words) or decode(
                            tokens, steps=steps, seed=seed, words=words))
    generator.redecode(song.manifest)
    expected = []
    for section in song.manifest["sections"]:
        for frame, pieces in section["cues"]:
            phone = generator.lm.text.cued_phone(pieces)
            if phone is None:
                expected.append({"start_frame": section["first_frame"] + frame, "phones": []})
            else:
                expected[-1]["phones"].append({"phone": phone, "start_frame": section["first_frame"] + frame})
    sung = ["hold", "me", "close", "tonight", "under", "city", "lights", "sing", "it", "loud", "sing", "it", "proud"]
    for word, text in zip(expected, sung, strict=True):
        word["text"] = text
    assert given == [expected]
    assert [phone["phone"] for phone in expected[0]["phones"]] == ["HH", "OW", "L", "D"]
    broken = json.loads(json.dumps(song.manifest))
    broken["sections"][0]["cues"][0][1] = [10**6]  # a word piece the LM's text model does not have
    with pytest.raises(InputError, match="word cue's text"):
        generator.redecode(broken)


def test_each_sung_line_is_timed_at_its_first_words_cue_and_saved_as_lrc(generator, song, tmp_path):
    sections = song.manifest["sections"]
    starts = [[section["start_seconds"] + frame / 25 for frame, pieces in section["cues"]
               if not generator.lm.text.is_phone_cue(pieces)] for section in sections]  # the words' cues
    assert song.manifest["lines"] == [
        {"seconds": round(starts[0][0], 2), "text": "hold me close tonight"},
        {"seconds": round(starts[0][4], 2), "text": "under city lights"},  # the verse's fifth word
        *([{"seconds": round(sections[0]["end_seconds"], 2), "text": ""}] if starts[1][0] > sections[0]["end_seconds"]
          else []),
        {"seconds": round(starts[1][0], 2), "text": "sing it loud"},
        {"seconds": round(starts[1][3], 2), "text": "sing it proud"},
        {"seconds": round(sections[1]["end_seconds"], 2), "text": ""}]
    lrc = save(song, tmp_path / "song")["lyrics.lrc"].read_text().splitlines()
    assert lrc[0] == "[length:00:06]" and lrc[1] == "[00:00.00]hold me close tonight" and lrc[-1] == "[00:06.00]"
    # a manifest written before lines were kept gets them on re-decoding; a song without cues gets none (no file)
    older = json.loads(json.dumps(song.manifest))
    del older["lines"]
    assert generator.redecode(older).manifest["lines"] == song.manifest["lines"]
    for section in older["sections"]:
        section["cues"] = []
    uncued = generator.redecode(older)
    assert uncued.manifest["lines"] == [] and "lyrics.lrc" not in save(uncued, tmp_path / "song")
    assert not (tmp_path / "song" / "lyrics.lrc").exists()  # the earlier song's times went with it


def test_the_shipped_phone_cue_lm_cues_each_word_then_its_phones(generator, song):
    """Each word's cue is followed by its dictionary phones (the timed lines read the words alone: the test
    above); phones that would outnumber a section's frames are left out, the words still cued."""
    assert generator.lm.config.phone_cues
    cues = [pieces for section in song.manifest["sections"] for _, pieces in section["cues"]]
    hold = [[generator.lm.text.phone_piece(p)] for p in ("HH", "OW", "L", "D")]
    assert cues[:6] == [generator.lm.word_pieces("hold")[0], *hold, generator.lm.word_pieces("me")[0]]
    assert generator._cues("hold me close tonight", 30) == generator.lm.cue_pieces("hold me close tonight")
    assert generator._cues("hold me close tonight", 10) == generator.lm.word_pieces("hold me close tonight")


def test_phone_guidance_hands_the_lms_table_to_sampling_and_is_off_without_one(generator, monkeypatch):
    import app.pipeline

    assert generator.lm.phone_prior is not None  # the shipped LM carries its phone table
    seen = []
    real_full_song = app.pipeline.full_song

    def recording_full_song(model, vocab, style_ids, sections, options, progress, phone_prior):
        seen.append((options.phone_guidance, phone_prior))
        return real_full_song(model, vocab, style_ids, sections, options, progress, phone_prior)

    monkeypatch.setattr(app.pipeline, "full_song", recording_full_song)
    guided = generator.generate(LYRICS, STYLE, duration=5, seed=4, options={**FAST, "phone_guidance": 2.0})
    plain = generator.generate(LYRICS, STYLE, duration=5, seed=4, options={**FAST, "phone_guidance": 0.0})
    assert seen == [(2.0, generator.lm.phone_prior), (0.0, generator.lm.phone_prior)]
    assert guided.manifest["inputs"]["options"]["phone_guidance"] == 2.0
    assert not np.array_equal(guided.tokens.vocal, plain.tokens.vocal)  # the table moved the vocal codes
    monkeypatch.setattr(generator.lm, "phone_prior", None)
    without = generator.generate(LYRICS, STYLE, duration=5, seed=4, options={**FAST, "phone_guidance": 2.0})
    assert seen[-1] == (0.0, None) and np.array_equal(without.tokens.vocal, plain.tokens.vocal)
    assert any("no phone table" in warning for warning in without.warnings)


@pytest.mark.parametrize("level", [0.3, 0.8])  # 0.8 + 0.8 is louder than full scale: turned down as a whole
def test_saved_stems_sum_to_the_mix_exactly(song, tmp_path, level):
    n = len(song.mix)
    vocals = (level * np.sin(np.arange(n) * 2 * np.pi * 220 / RATE)).astype(np.float32)
    accompaniment = (level * np.sin(np.arange(n) * 2 * np.pi * 330 / RATE + 0.5)).astype(np.float32)
    loud = SongResult(vocals + accompaniment, vocals, accompaniment, RATE, song.manifest, song.tokens)
    save(loud, tmp_path, formats="flac")
    files = {stem: sf.read(tmp_path / f"{stem}.flac", dtype="int16") for stem in ("mix", "vocals", "accompaniment")}
    assert {rate for _, rate in files.values()} == {RATE} and {len(a) for a, _ in files.values()} == {n}
    mix, vocal_file, accompaniment_file = (files[stem][0].astype(np.int32) for stem in files)
    np.testing.assert_array_equal(mix, vocal_file + accompaniment_file)
    peak = float(np.abs(loud.mix).max())
    gain = read_manifest(tmp_path)["files"]["gain"]
    assert gain == (1.0 if peak <= 0.999 else pytest.approx(0.999 / peak))
    np.testing.assert_allclose(mix / 32767, loud.mix * gain, atol=2e-4)  # nothing clipped
    assert read_manifest(tmp_path)["tokens"] == song.manifest["tokens"]


def test_progress_events_cover_every_stage(generator):
    events: list[ProgressEvent] = []
    generator.generate(LYRICS, STYLE, duration=5, seed=1, options=FAST, progress=events.append)
    stages = [e.stage for e in events]
    assert stages[0] == "lm" and stages[-1] == "done" and "decode" in stages
    lm = [e for e in events if e.stage == "lm"]
    assert [e.done for e in lm] == list(range(1, 126)) and {e.total for e in lm} == {125}


def test_generate_events_ends_with_the_result(generator, song):
    items = list(generator.generate_events(LYRICS, STYLE, duration=6, seed=11, options=FAST))
    assert all(isinstance(i, ProgressEvent) for i in items[:-1]) and isinstance(items[-1], SongResult)
    np.testing.assert_array_equal(items[-1].mix, song.mix)


def test_generate_events_stops_when_closed(generator):
    events = generator.generate_events(LYRICS, STYLE, duration=6, seed=1, options=FAST)
    assert next(events).stage == "lm"
    events.close()  # the worker stops at its next frame and releases the models
    assert generator.generate(LYRICS, STYLE, duration=5, seed=1, options=FAST).seconds == 5


def test_two_threads_generate_their_own_songs(generator, song):
    results, errors = {}, []

    def work(seed: int) -> None:
        try:
            results[seed] = generator.generate(LYRICS, STYLE, duration=6, seed=seed, options=FAST)
        except Exception as error:  # surfaced below: an exception in a thread would otherwise vanish
            errors.append(error)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in (11, 12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors and set(results) == {11, 12}
    np.testing.assert_array_equal(results[11].mix, song.mix)  # as if it had run alone
    assert not np.array_equal(results[12].tokens.vocal, song.tokens.vocal)


# --- bad input --------------------------------------------------------------------------------------------------


def silent(seconds: float = 3.0) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.float32)


def tone(seconds: float = 3.0) -> np.ndarray:
    return (0.3 * np.sin(np.arange(int(seconds * RATE)) * 2 * np.pi * 220 / RATE)).astype(np.float32)


BAD_INPUTS = [
    ({"lyrics": ""}, "lyrics", "empty"),
    ({"lyrics": "   \n"}, "lyrics", "empty"),
    ({"lyrics": "[verse]\n" + "la " * 2000}, "lyrics", "characters long"),
    ({"lyrics": "[verse]\n[chorus]\n"}, "lyrics", "no words"),
    ({"lyrics": "[verse]\n" + "word " * 60}, "lyrics", "line 2"),
    ({"lyrics": 42}, "lyrics", "must be text"),
    ({"style": "x" * 600}, "style", "at most 500"),
    ({"style": ["pop"]}, "style", "must be text"),
    ({"duration": 2}, "duration", "out of range"),
    ({"duration": 500}, "duration", "out of range"),
    ({"duration": float("nan")}, "duration", "number of seconds"),
    ({"duration": "10"}, "duration", "number of seconds"),
    ({"duration": True}, "duration", "number of seconds"),
    ({"seed": -1}, "seed", "out of range"),
    ({"seed": MAX_SEED + 1}, "seed", "out of range"),
    ({"seed": 1.5}, "seed", "whole number"),
    ({"seed": "7"}, "seed", "whole number"),
    ({"mode": "karaoke"}, "mode", "unknown mode 'karaoke'"),
    ({"options": {"temperature": -1}}, "options.temperature", "out of range"),
    ({"options": {"top_p": 0}}, "options.top_p", "out of range"),
    ({"options": {"top_k": 0}}, "options.top_k", "out of range"),
    ({"options": {"cfg_scale": float("inf")}}, "options.cfg_scale", "must be a number"),
    ({"options": {"phone_guidance": 9.0}}, "options.phone_guidance", "out of range"),
    ({"options": {"decoder_steps": 1000}}, "options.decoder_steps", "out of range"),
    ({"options": {"temprature": 1}}, "options", "unknown setting 'temprature'"),
    ({"options": "fast"}, "options", "mapping"),
    ({"audio": tone(), "audio_rate": RATE}, "audio", "takes no upload"),
    ({"mode": "accompany"}, "audio", "needs an upload"),
    ({"mode": "sing_over"}, "audio", "needs an upload"),
    ({"mode": "resample", "track": "vocal"}, "manifest", "needs the manifest"),
    ({"mode": "continue"}, "manifest", "needs the manifest"),
    ({"manifest": {"format": "duosong-song"}}, "manifest", "takes no manifest"),
    ({"track": "vocal"}, "track", "only applies to mode 'resample'"),
    ({"section": 0}, "section", "only applies to mode 'resample'"),
    ({"mode": "resample", "manifest": {"format": "other"}, "track": "vocal"}, "manifest", "not a song manifest"),
    ({"mode": "resample", "manifest": "/no/such/manifest.json", "track": "vocal"}, "manifest", "does not exist"),
    ({"mode": "accompany", "audio": silent(), "audio_rate": RATE}, "audio", "silent"),
    ({"mode": "accompany", "audio": tone(0.5), "audio_rate": RATE}, "audio", "lasts 0.5 s"),
    ({"mode": "accompany", "audio": np.full(RATE * 3, np.nan, np.float32), "audio_rate": RATE}, "audio", "NaN"),
    ({"mode": "accompany", "audio": tone()}, "audio_rate", "give the sample rate"),
    ({"mode": "accompany", "audio": tone(), "audio_rate": 100}, "audio_rate", "not an audio rate"),
    ({"mode": "accompany", "audio": np.zeros((2, 2, 2)), "audio_rate": RATE}, "audio", "shape"),
    ({"mode": "accompany", "audio": np.array(["a"] * 3), "audio_rate": RATE}, "audio", "expected audio samples"),
]


@pytest.mark.parametrize(("kwargs", "field", "message"), BAD_INPUTS,
                         ids=[f"{field}-{i}" for i, (_, field, _) in enumerate(BAD_INPUTS)])
def test_bad_input_raises_input_error_naming_the_field(generator, kwargs, field, message):
    arguments = {"lyrics": LYRICS, "style": STYLE, "duration": 6, "seed": 0, **kwargs}
    with pytest.raises(InputError, match=message) as caught:
        generator.generate(**arguments)
    assert caught.value.field == field and str(caught.value).startswith(f"{field}:")


def test_unreadable_upload_file(generator, tmp_path):
    fake = tmp_path / "vocal.wav"
    fake.write_text("not audio")
    with pytest.raises(InputError, match="cannot read the uploaded file") as caught:
        generator.generate(LYRICS, STYLE, mode="accompany", audio=fake)
    assert caught.value.field == "audio"


def test_song_longer_than_the_lm_context_is_refused_with_the_limit(generator):
    with pytest.raises(InputError, match=r"too long for the LM's context of 2048 tokens; at most \d+ s") as caught:
        generator.generate(LYRICS, STYLE, duration=60, seed=0)
    assert caught.value.field == "duration"
    assert 30 <= int(str(caught.value).split("at most ")[1].split()[0]) < 60


def test_resample_arguments_are_checked_against_the_manifest(generator, tmp_path):
    manifest = {"format": "duosong-song", "version": 1, "inputs": {"style": "", "lyrics": ""}, "style_ids": [],
                "decoder": {"steps": None, "seed": 0}, "audio": {}, "tokens": {"vocal": [1] * 30, "accomp": [2] * 30},
                "sections": [{"tag": "verse", "instrumental": False, "text_ids": [], "first_frame": 0,
                              "n_frames": 30}]}
    with pytest.raises(InputError, match="track") as caught:
        generator.generate("", "", mode="resample", manifest=manifest, track="drums")
    assert caught.value.field == "track"
    with pytest.raises(InputError, match=r"section.*1 sections \(0 to 0\)") as caught:
        generator.generate("", "", mode="resample", manifest=manifest, track="vocal", section=1)
    assert caught.value.field == "section"
    broken = {**manifest, "sections": [{**manifest["sections"][0], "n_frames": 20}]}
    with pytest.raises(InputError, match="cover 20 frames but the tokens have 30"):
        generator.generate("", "", mode="resample", manifest=broken, track="vocal")
    size = generator.tokenizer.config.codebook_size
    with pytest.raises(InputError, match=f"codes above {size - 1}"):
        generator.redecode({**manifest, "tokens": {"vocal": [size] * 30, "accomp": [0] * 30}})
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(InputError, match="not a readable JSON file"):
        generator.redecode(tmp_path)


def test_odd_tags_become_warnings_not_errors(generator):
    request = generator.check_request("[Drop]\nfly away\n\n[Hook x2]\nsing it loud", STYLE, duration=8)
    assert [s.tag for s in request.sections] == ["verse", "chorus"]
    assert any("unknown tag [Drop]" in w for w in request.warnings)
    assert any("repeat marker" in w for w in request.warnings)


# --- the section plan -------------------------------------------------------------------------------------------


def test_spread_frames_is_exact_proportional_and_keeps_the_minimum():
    assert spread_frames([1, 1, 1], 100, 25) == [34, 33, 33]
    assert spread_frames([1, 3], 200, 25) == [50, 150]
    parts = spread_frames([0.1, 10, 10], 100, 25)
    assert parts[0] == 25 and sum(parts) == 100


def test_plan_gives_sung_sections_time_by_syllables_and_refuses_too_many_sections():
    plan, warnings = plan_sections([("intro", (), True), ("verse", ("la " * 20,), False),
                                    ("chorus", ("oh yeah",), False)], 500)
    assert sum(s.n_frames for s in plan) == 500 and not warnings
    intro, verse, chorus = (s.n_frames for s in plan)
    assert verse > intro > chorus > 0  # 20 syllables > the fixed instrumental share > the 3 s minimum
    assert count_syllables("Hold me, tonight!") == 4
    with pytest.raises(InputError, match="too short for 8 sections") as caught:
        plan_sections([("verse", ("word",), False)] * 8, 125)
    assert caught.value.field == "duration"


def test_options_accept_mappings_and_gradio_floats():
    options = SongOptions.from_any({"top_k": 40.0, "temperature": 1, "decoder_steps": None})
    assert options.top_k == 40 and isinstance(options.top_k, int) and options.temperature == 1.0
    assert SongOptions.from_any(None) == SongOptions()
