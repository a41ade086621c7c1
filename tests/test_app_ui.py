"""The web UI end to end (DESIGN.md §7): the page served in-process and driven through ``gradio_client`` like any
API user, rendered by a headless Chromium, and started as ``python app.py`` the way a Hugging Face Space starts it.

One module-scoped fixture loads the checkpoints and launches the app once on a free local port; one song (6 s,
2 decoder steps) is made once and shared by the tests that inspect it or build on it. DUOSONG_CHECKPOINTS points
the tests (and ``app.py``) at another checkpoint folder; by default they use the project's shipped checkpoints.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
RATE = 24_000
SONG_SECONDS = 6
LYRICS = "[verse]\nwe were dancing in the summer light\n\n[chorus]\nsing it loud tonight\n"
STYLE = "upbeat pop, female vocal, 120 bpm, piano and synth bass"
FAST = (1.0, 50, 1.0, 1.0, 2, 1, 0.0)  # temperature, top-k, top-p, CFG, decoder steps, takes, phone guidance: quick
# Lyrics as other apps write them: numbered and alias tags, backing vocals, an emoji, a wordless solo.
PASTED_LYRICS = ("[Verse 1]\nCity lights (city lights) are calling me\n\n[Hook]\nRun away with me \u2764\ufe0f\n\n"
                 "[Guitar Solo]\n")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _checkpoints():
    from app.pipeline import DEFAULT_CHECKPOINTS

    return os.environ.get("DUOSONG_CHECKPOINTS") or DEFAULT_CHECKPOINTS


@pytest.fixture(scope="module")
def server():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        patch.setenv("HF_HUB_OFFLINE", "1")
        from app.pipeline import SongGenerator
        from app.ui import create_ui

        demo = create_ui(SongGenerator(_checkpoints()))
        demo.launch(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True)
        try:
            yield demo
        finally:
            demo.close()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server.local_url, verbose=False)


@pytest.fixture(scope="module")
def song(client) -> tuple:
    """(mix, vocals, accompaniment, picture, zip, manifest, summary) of one full song, seed 7."""
    return client.predict(LYRICS, STYLE, SONG_SECONDS, 7, "full", None, None, *FAST, api_name="/generate")


def _int16(path) -> np.ndarray:
    samples, rate = sf.read(path, dtype="int16")
    assert rate == RATE
    return samples


def _manifest(path) -> dict:
    return json.loads(Path(path).read_text())


def _tone(path: Path, seconds: float, rate: int, amplitude: float = 0.3) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, amplitude * np.sin(2 * np.pi * 220 * t), rate)
    return path


# --- generation --------------------------------------------------------------------------------------------------


def test_generate_returns_three_stems_of_the_asked_length_a_picture_a_zip_and_the_manifest(song):
    mix, vocals, accompaniment, picture, archive, manifest, summary = song
    for path in (mix, vocals, accompaniment):
        info = sf.info(path)
        assert (info.samplerate, info.frames, info.channels) == (RATE, SONG_SECONDS * RATE, 1), path
    # the files keep the pipeline's promise: the mix is exactly the sum of the stems, and it is not silence
    assert np.array_equal(_int16(mix).astype(np.int32), _int16(vocals).astype(np.int32) + _int16(accompaniment))
    assert np.abs(_int16(mix)).max() > 0

    record = _manifest(manifest)
    assert record["format"] == "duosong-song"
    assert {k: record["inputs"][k] for k in ("mode", "seed", "duration")} == {"mode": "full", "seed": 7,
                                                                             "duration": SONG_SECONDS}
    assert record["inputs"]["options"]["decoder_steps"] == 2
    assert [s["tag"] for s in record["sections"]] == ["verse", "chorus"]
    assert record["audio"]["seconds"] == SONG_SECONDS

    from PIL import Image

    with Image.open(picture) as image:
        assert image.format == "PNG" and image.width >= 800 and image.height >= 400
    with zipfile.ZipFile(archive) as bundle:
        assert sorted(bundle.namelist()) == ["accompaniment.wav", "lyrics.lrc", "manifest.json", "mix.wav",
                                             "song.png", "vocals.wav"]
        assert json.loads(bundle.read("manifest.json")) == record
        lrc = bundle.read("lyrics.lrc").decode().splitlines()  # the sung lines at their word cues' times
        assert lrc[1].endswith("we were dancing in the summer light") and "sing it loud tonight" in lrc[-2]
        assert np.array_equal(sf.read(io.BytesIO(bundle.read("mix.wav")), dtype="int16")[0], _int16(mix))
    assert f"{SONG_SECONDS:.1f} s" in summary and "seed 7" in summary
    assert re.search(r"- 0:00\.0 we were dancing in the summer light\n- 0:0\d\.\d sing it loud tonight", summary)


def test_two_concurrent_requests_both_complete_and_each_keeps_its_seed(client, song):
    """Queued side by side, the same seed remakes the shared song exactly and another seed makes another song."""
    jobs = [client.submit(LYRICS, STYLE, SONG_SECONDS, seed, "full", None, None, *FAST, api_name="/generate")
            for seed in (7, 8)]
    again, other = (job.result(timeout=600) for job in jobs)
    assert np.array_equal(_int16(again[0]), _int16(song[0]))
    assert _manifest(other[5])["inputs"]["seed"] == 8
    assert _manifest(other[5])["tokens"]["sha1"] != _manifest(song[5])["tokens"]["sha1"]


def test_resample_changes_only_the_chosen_track_of_the_chosen_section(client, song):
    from gradio_client import handle_file

    result = client.predict(handle_file(song[5]), "vocal", 1, 123, *FAST, api_name="/resample")
    before, after = _manifest(song[5]), _manifest(result[5])
    assert after["inputs"]["mode"] == "resample" and after["inputs"]["section"] == 1
    assert [s["sampled"] for s in after["sections"]] == [[], ["vocal"]]
    assert after["tokens"]["accomp"] == before["tokens"]["accomp"]
    split = before["sections"][1]["first_frame"]
    assert after["tokens"]["vocal"][:split] == before["tokens"]["vocal"][:split]
    assert after["tokens"]["vocal"][split:] != before["tokens"]["vocal"][split:]
    assert sf.info(result[0]).frames == SONG_SECONDS * RATE


def test_accompany_mode_plays_under_an_uploaded_vocal(client, tmp_path):
    from gradio_client import handle_file

    upload = _tone(tmp_path / "voice.wav", 4.0, 44_100)  # another rate than the model's: the app resamples
    result = client.predict("", "smooth jazz", 10, 3, "accompany", handle_file(str(upload)), None, *FAST,
                            api_name="/generate")
    record = _manifest(result[5])
    assert sf.info(result[0]).frames == 4 * RATE  # as long as the upload, which is shorter than the 10 s asked
    assert record["inputs"]["upload"]["sample_rate"] == 44_100
    assert all(section["sampled"] == ["accomp"] for section in record["sections"])


# --- the lyric checks --------------------------------------------------------------------------------------------


def test_check_lyrics_shows_normalised_sections_their_seconds_and_warnings(client):
    table, notes, normalised = client.predict(PASTED_LYRICS, "full", 20, api_name="/check_lyrics")
    assert table["headers"][:3] == ["#", "section", "seconds"]
    assert [row[1] for row in table["data"]] == ["verse", "chorus", "inst"]
    assert sum(row[2] for row in table["data"]) == pytest.approx(20, abs=0.2)  # each row rounded to 0.1 s
    assert "parentheses" in notes and "removed characters" in notes
    assert normalised.startswith("[verse]\nCity lights city lights are calling me\n\n[chorus]\nRun away with me\n")


@pytest.mark.parametrize(("lyrics", "mode", "expected"), [
    ("", "full", "Cannot use these lyrics"),
    ("[verse]\n\n[chorus]\n", "a_cappella", "no words to sing"),
    ("", "instrumental", "No lyrics: fine for this mode"),
])
def test_check_lyrics_reports_unusable_lyrics_in_its_notes(client, lyrics, mode, expected):
    table, notes, _ = client.predict(lyrics, mode, 20, api_name="/check_lyrics")
    assert expected in notes
    assert table["data"] == []


def test_check_sung_lyrics_gives_a_row_per_section(client, song):
    from gradio_client import handle_file

    table, summary = client.predict(handle_file(song[1]), handle_file(song[5]), api_name="/check_sung_lyrics")
    assert table["headers"][0] == "section"
    assert [row[0] for row in table["data"]] == ["1 [verse]", "2 [chorus]"]
    assert all(isinstance(row[3], int | float) and row[3] >= 0 for row in table["data"])  # WER per sung section
    assert "Word error rate" in summary


def test_check_sung_lyrics_of_a_broken_manifest_says_so_without_server_paths(client, song, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    (tmp_path / "manifest.json").write_text("{ not json")
    with pytest.raises(AppError) as caught:
        client.predict(handle_file(song[1]), handle_file(str(tmp_path / "manifest.json")),
                       api_name="/check_sung_lyrics")
    assert "manifest.json is not a readable JSON file" in str(caught.value)
    assert tempfile.gettempdir() not in str(caught.value)


# --- bad input: a clear message, never a traceback -----------------------------------------------------------------


def _generate_args(tmp_path: Path, case: str) -> list:
    """The /generate arguments of a good request, with one thing broken as ``case`` says."""
    from gradio_client import handle_file

    args = {"lyrics": LYRICS, "style": STYLE, "duration": SONG_SECONDS, "seed": 1, "mode": "full", "upload": None,
            "manifest": None}
    if case == "empty lyrics":
        args["lyrics"] = "   \n"
    elif case == "huge lyrics":
        args["lyrics"] = "[verse]\n" + "la la la la la la\n" * 600
    elif case == "huge style":
        args["style"] = "pop " * 200
    elif case == "duration too long":
        args["duration"] = 500
    elif case == "duration too short":
        args["duration"] = 1
    elif case == "negative seed":
        args["seed"] = -1
    elif case == "huge seed":
        args["seed"] = 2**40
    elif case == "unknown mode":
        args["mode"] = "karaoke"
    elif case == "upload in full mode":
        args["upload"] = handle_file(str(_tone(tmp_path / "tone.wav", 4.0, RATE)))
    elif case == "accompany without upload":
        args["mode"] = "accompany"
    elif case == "unreadable upload":
        (tmp_path / "broken.wav").write_bytes(b"this is not audio" * 100)
        args.update(mode="accompany", upload=handle_file(str(tmp_path / "broken.wav")))
    elif case == "silent upload":
        args.update(mode="accompany", upload=handle_file(str(_tone(tmp_path / "silence.wav", 4.0, RATE, 0.0))))
    elif case == "unreadable manifest":
        (tmp_path / "manifest.json").write_text("{not json")
        args.update(mode="continue", lyrics="", manifest=handle_file(str(tmp_path / "manifest.json")))
    return [*args.values(), *FAST]


@pytest.mark.parametrize(("case", "expected"), [
    ("empty lyrics", ["Lyrics", "empty"]),
    ("huge lyrics", ["Lyrics", "at most 5,000"]),
    ("huge style", ["Style", "at most 500"]),
    ("duration too long", ["Duration", "500", "choose 5 to"]),
    ("duration too short", ["Duration", "choose 5 to"]),
    ("negative seed", ["Seed", "-1", "0 to 2147483647"]),
    ("huge seed", ["Seed", "0 to 2147483647"]),
    ("unknown mode", ["Mode", "'karaoke'", "'full'"]),
    ("upload in full mode", ["Upload", "takes no upload"]),
    ("accompany without upload", ["Upload", "needs an upload"]),
    ("unreadable upload", ["Upload", "cannot read", "broken.wav"]),
    ("silent upload", ["Upload", "silent"]),
    ("unreadable manifest", ["manifest.json", "not a readable JSON file"]),
])
def test_bad_generate_input_gets_a_clear_message_and_no_traceback(client, tmp_path, case, expected):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as caught:
        client.predict(*_generate_args(tmp_path, case), api_name="/generate")
    message = str(caught.value)
    for part in expected:
        assert part in message, (case, message)
    for leak in ("Traceback", 'File "', tempfile.gettempdir(), "verbose error reporting"):
        assert leak not in message, (case, message)


@pytest.mark.parametrize(("track", "section", "expected"), [
    ("drums", "all", ["Track", "'drums'"]),
    ("vocal", 9, ["Section", "9", "2 sections"]),
    ("vocal", "the chorus", ["Section", "'the chorus'"]),
])
def test_bad_resample_input_gets_a_clear_message(client, song, track, section, expected):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as caught:
        client.predict(handle_file(song[5]), track, section, 5, *FAST, api_name="/resample")
    assert all(part in str(caught.value) for part in expected), str(caught.value)


def test_resample_without_a_song_says_to_make_one_first(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="make a song first"):
        client.predict(None, "vocal", "all", 5, *FAST, api_name="/resample")


# --- progress ------------------------------------------------------------------------------------------------------


def test_progress_bar_gets_each_stage_once_per_percent():
    from app.pipeline import ProgressEvent
    from app.ui import _progress_reporter

    calls = []
    report = _progress_reporter(lambda fraction, desc: calls.append((round(fraction, 3), desc)))
    for frame in range(1, 401):  # the LM reports every frame; 400 frames pass 0 %, 1 %, …, 100 %
        report(ProgressEvent("lm", frame, 400, f"sampling tokens: frame {frame}"))
    report(ProgressEvent("decode", 0, 1, "decoding tokens to audio"))
    report(ProgressEvent("decode", 1, 1, "decoded"))
    lm_calls = [call for call in calls if call[1].startswith("Writing the song")]
    assert len(lm_calls) == 101 and lm_calls[-1][0] == 1.0
    assert calls[-2:] == [(0.0, "Rendering audio: decoding tokens to audio"), (1.0, "Rendering audio: decoded")]


def _watch_runs(generator, monkeypatch) -> tuple[list[str], threading.Event]:
    """Record how the generator's next run ends ("stopped" by a cancel, or "finished"), and signal when it has."""
    from app.pipeline import GenerationCancelled

    outcomes, ended = [], threading.Event()
    run = generator.run

    def watched_run(request, progress=None):
        try:
            result = run(request, progress)
        except GenerationCancelled:
            outcomes.append("stopped")
            raise
        finally:
            ended.set()
        outcomes.append("finished")
        return result

    monkeypatch.setattr(generator, "run", watched_run)
    return outcomes, ended


def test_stopping_a_song_handler_stops_the_generation_at_its_next_frame(monkeypatch):
    """What the Stop button and a closed page do: Gradio stops iterating the handler and closes it."""
    import gradio as gr

    from app.pipeline import SongGenerator
    from app.ui import N_SONG_OUTPUTS, SongActions

    generator = SongGenerator(_checkpoints())
    outcomes, ended = _watch_runs(generator, monkeypatch)
    actions = SongActions(generator)
    updates = actions.generate(LYRICS, STYLE, 30, 7, "full", None, None, *FAST, progress=lambda *_, **__: None)
    assert next(updates) == tuple(gr.skip() for _ in range(N_SONG_OUTPUTS))  # progress: no output changes yet
    updates.close()
    assert ended.wait(timeout=120) and outcomes == ["stopped"]
    # left alone, the same handler yields progress and then the seven outputs
    *progress_updates, outputs = actions.generate(LYRICS, STYLE, SONG_SECONDS, 7, "full", None, None, *FAST,
                                                   progress=lambda *_, **__: None)
    assert progress_updates and len(outputs) == N_SONG_OUTPUTS and Path(outputs[5]).name == "manifest.json"


def test_cancelling_a_song_through_the_api_stops_the_generation(server, client, monkeypatch):
    """gradio_client's ``job.cancel()`` runs the page's cancel event (the Stop button's), as a closed page does."""
    from gradio_client.utils import Status

    generator = next(fn for fn in server.fns.values() if fn.name == "generate").fn.__self__.generator
    outcomes, ended = _watch_runs(generator, monkeypatch)
    job = client.submit(LYRICS, STYLE, 30, 7, "full", None, None, *FAST, api_name="/generate")
    deadline = time.monotonic() + 120
    while job.status().code != Status.PROGRESS:
        assert time.monotonic() < deadline and not job.done(), "the song never started"
        time.sleep(0.05)
    job.cancel()
    assert ended.wait(timeout=120) and outcomes == ["stopped"]


def test_the_stop_button_cancels_every_song_event(server):
    song_events = {"generate", "resample", "resample_vocal"}
    stop = next(fn for fn in server.fns.values() if fn.fn is None and fn.cancels)
    assert {server.fns[index].name for index in stop.cancels} == song_events


# --- page-only events (private: the browser calls them, gradio_client cannot) ----------------------------------------


def _page_event(server, name: str, inputs: list) -> list:
    """Run a private event handler the way the page does (preprocess, handler, postprocess); returns its outputs."""
    import asyncio

    from gradio.state_holder import SessionState

    block_fn = next(fn for fn in server.fns.values() if fn.name == name)
    return asyncio.run(server.process_api(block_fn=block_fn, inputs=inputs, state=SessionState(server)))["data"]


def _file_payload(path) -> dict:
    return {"path": str(path), "orig_name": Path(path).name, "meta": {"_type": "gradio.FileData"}}


def test_mode_switch_shows_the_upload_only_for_the_modes_that_take_one(server, song):
    help_text, upload, continue_record = _page_event(server, "show_mode", ["full", None, _file_payload(song[5])])
    assert upload["visible"] is False and upload["value"] is None  # a hidden upload must not be sent along
    assert continue_record["visible"] is False and continue_record["value"] is None
    help_text, upload, continue_record = _page_event(server, "show_mode", ["accompany", None, None])
    assert upload["visible"] is True and "vocal" in upload["label"] and "accompaniment" in help_text
    # continue starts from the song made here when nothing is uploaded
    _, upload, continue_record = _page_event(server, "show_mode", ["continue", None, _file_payload(song[5])])
    assert upload["visible"] is True and continue_record["visible"] is True
    assert Path(continue_record["value"]["path"]).name == "manifest.json"


def test_after_a_song_the_follow_up_panels_list_its_sections(server, song, tmp_path):
    sections, resample_seed, vocal_sections, table, summary, continue_record, upload, *levels = _page_event(
        server, "after_song", [_file_payload(song[5]), "full"])
    assert [value for _, value in sections["choices"]] == ["all", 0, 1] and sections["value"] == "all"
    assert [value for _, value in vocal_sections["choices"]] == [0, 1]
    assert isinstance(resample_seed, int) and table["data"] == [] and summary == ""
    assert continue_record["value"] is None and "value" not in upload
    assert levels == [0.0, False, 0.0, False]  # the mix level controls at the song's levels
    # in continue mode the next Generate continues the new, longer song: the record is set, the upload cleared
    *_, continue_record, upload, _, _, _, _ = _page_event(server, "after_song", [_file_payload(song[5]), "continue"])
    assert Path(continue_record["value"]["path"]).name == "manifest.json" and upload["value"] is None
    # a re-sampled song keeps its levels, so the controls show them; a broken record leaves them at 0 dB
    from app.ui import _level_controls

    record = _manifest(song[5])
    record["mix"] = {"vocals_db": -4.5, "accompaniment_db": None}
    (tmp_path / "manifest.json").write_text(json.dumps(record))
    assert _level_controls(str(tmp_path / "manifest.json")) == (-4.5, False, 0.0, True)
    (tmp_path / "manifest.json").write_text("{")
    assert _level_controls(str(tmp_path / "manifest.json")) == (0.0, False, 0.0, False)


def test_remix_sets_the_mix_levels_and_keeps_the_stems(client, song):
    from gradio_client import handle_file

    mix, vocals, accompaniment, _, archive, manifest, summary = client.predict(
        handle_file(song[5]), -6.0, False, 0.0, True, api_name="/remix")
    np.testing.assert_array_equal(_int16(vocals), _int16(song[1]))  # decoded again: the same stems
    np.testing.assert_array_equal(_int16(accompaniment), _int16(song[2]))
    vocal_file = _int16(vocals).astype(np.int32)
    assert np.abs(_int16(mix).astype(np.int32) - np.round(vocal_file * 10 ** (-6 / 20))).max() <= 1
    assert _manifest(manifest)["mix"] == {"vocals_db": -6.0, "accompaniment_db": None}
    assert _manifest(manifest)["tokens"] == _manifest(song[5])["tokens"]
    assert "Mix levels: vocals −6.0 dB, accompaniment muted" in summary
    assert _manifest(manifest)["timings"]["total"] > 0  # the summary's "made in" is the re-decoding's time
    with zipfile.ZipFile(archive) as bundle:
        assert json.loads(bundle.read("manifest.json"))["mix"]["accompaniment_db"] is None


def test_remix_without_a_song_or_out_of_range_says_so(client, song):
    from gradio_client import handle_file

    with pytest.raises(Exception, match="Mix levels: make a song first") as caught:
        client.predict(None, 0.0, False, 0.0, False, api_name="/remix")
    assert "Traceback" not in str(caught.value)
    with pytest.raises(Exception, match="Vocal level") as caught:  # the slider itself names its bounds
        client.predict(handle_file(song[5]), 40.0, False, 0.0, False, api_name="/remix")


def test_the_retake_button_starts_on_the_section_whisper_understood_worst():
    import pandas as pd

    from app.lyric_check import ROW_HEADERS
    from app.ui import _worst_section

    rows = [["1 [intro]", 0, 2, "-", "(instrumental)", ""], ["2 [verse]", 2, 6, 0.4, "", ""],
            ["3 [chorus]", 6, 9, 0.9, "", ""], ["4 [verse]", 9, 12, 0.2, "", ""]]
    assert _worst_section(pd.DataFrame(rows, columns=list(ROW_HEADERS))) == 2
    assert _worst_section(pd.DataFrame(rows[:1], columns=list(ROW_HEADERS))) is None


# --- the page in a browser, and app.py as a Space runs it -----------------------------------------------------------


def test_page_renders_its_main_controls_in_headless_chromium(server):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("the chromium binary is not installed (packages-test.txt lists it; scripts/setup.sh installs it)")
    with tempfile.TemporaryDirectory() as profile:
        # --virtual-time-budget lets the page's JavaScript build the interface before the DOM is dumped
        dom = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--dump-dom", server.local_url],
            capture_output=True, text=True, timeout=180, check=True).stdout
    # labels and buttons as rendered by the JavaScript app (the served HTML alone has none of these elements)
    for label in ("Mode", "Lyrics", "Style", "Duration (s)", "Seed"):
        assert re.search(rf'data-testid="block-info"[^>]*>\s*{re.escape(label)}\s*<', dom), label
    for button in ("Generate", "Stop"):
        assert re.search(rf"<button[^>]*>(?:\s|<!---->)*{button}(?:\s|<!---->)*</button>", dom), button
    for player in ("Song (mix)", "Vocals", "Accompaniment"):
        assert re.search(rf'data-testid="block-label".{{0,1500}}?{re.escape(player)}', dom, re.S), player
    assert dom.count("<textarea") >= 2  # lyrics and style boxes
    for panel in ("Mix levels", "Change one track", "Check the sung lyrics"):  # the accordions under the players
        assert re.search(rf">\s*{re.escape(panel)}\s*<", dom), panel


def test_python_app_py_serves_the_generate_endpoint():
    from gradio_client import Client

    port = _free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "DUOSONG_CHECKPOINTS": str(_checkpoints())}
    process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert process.poll() is None, f"app.py exited early:\n{process.stdout.read()}"
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "app.py did not serve the page within 240 s"
            time.sleep(1)
        endpoints = Client(url, verbose=False).view_api(return_format="dict", print_info=False)["named_endpoints"]
        assert {"/generate", "/resample", "/check_lyrics", "/check_sung_lyrics"} <= set(endpoints)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- the Hugging Face Space files ------------------------------------------------------------------------------------


def test_space_front_matter_and_requirements_match_the_project():
    import gradio
    import tomllib

    readme = (ROOT / "README.md").read_text()
    front = re.match(r"---\n(.*?)\n---\n", readme, re.S)
    assert front, "README.md must start with the Space's YAML front matter"
    fields = dict(line.split(": ", 1) for line in front.group(1).splitlines())
    assert fields["sdk"] == "gradio" and fields["sdk_version"] == gradio.__version__
    assert (ROOT / fields["app_file"]).is_file()
    assert len(fields["short_description"]) <= 60  # the Hub's limit

    # A Space installs requirements.txt before it copies the repository, so it lists the dependencies itself.
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    listed = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.lstrip().startswith("#")]
    only_declared, only_listed = sorted(set(declared) - set(listed)), sorted(set(listed) - set(declared))
    assert not only_declared and not only_listed, (f"requirements.txt lacks {only_declared}; "
                                                   f"pyproject.toml's dependencies lack {only_listed}")


def test_summary_names_the_kept_vocal_take_of_each_section():
    from app.pipeline import SongResult
    from app.ui import _summary

    silence = np.zeros(960 * 25, np.float32)
    manifest = {"inputs": {"mode": "full", "seed": 3},
                "timings": {"lm": 1.0, "takes": 2.0, "decode": 0.5, "total": 3.5},
                "sections": [{"tag": "verse"}, {"tag": "chorus"}], "lines": [],
                "takes": [{"section": 1, "words": 9, "errors": [6, 3, 4], "kept": 1}]}
    summary = _summary(SongResult(silence, silence, silence, 24_000, manifest, None))
    assert "vocal takes 2.0 s" in summary
    assert "- section 2 [chorus], 9 words: 6 · **3** · 4" in summary
