"""Narration and generated music through inference.sh (the fake server on loopback): each
`say:` line and each generated track is a node, voiced or made once before any shot is
paid, cached, priced, planned and counted in --budget; bad input stops before any call."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import srt
from click.testing import CliRunner

import storyboard
from fakeserver import FakeInference
from storyboard.cache import open_cache
from storyboard.errors import BackendError, BudgetError, SpecError, StoryboardError
from storyboard.media import probe_audio
from storyboard.runner import Pipeline
from tests.media_helpers import film_samples as _samples
from tests.media_helpers import rms as _rms
from tests.media_helpers import tone as _tone

KEY = "sk-test-voice-18"
TTS, MUSIC, VIDEO = "falai/kokoro-tts", "minimax/music-3-0", "klingai/video-v3"

BOARD = """
storyboard: 1
defaults: {mode: std, duration: 3, sound: false}
voice: {app: falai/kokoro-tts, voice: af_bella}
shots:
  - id: a
    prompt: a harbor at dawn
    say: "The harbor wakes."
  - id: b
    prompt: boats leave
    say: "Boats slip out."
  - id: c
    prompt: gulls over the water
    say: "Gulls cry."
audio:
  - app: minimax/music-3-0
    prompt: "{{ mood }} strings, slow"
    instrumental: true
    volume: 0.5
vars: {mood: calm}
"""


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeInference]:
    # minimax/music-3-0 publishes no price: one is given here so that --budget can count it
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({MUSIC: {"by": [], "rates": {"": "0.05"}, "per": "request"}}))
    monkeypatch.setenv("STORYBOARD_PRICES", str(prices))
    with FakeInference(api_key=KEY, latency=0.05) as server:
        monkeypatch.setenv("INFERENCE_API_KEY", KEY)
        monkeypatch.setenv("INFERENCE_BASE_URL", server.url)
        yield server


def _apps(fake: FakeInference) -> list[str]:
    return [t.app.partition("@")[0] for t in fake.submissions]


def _runs(fake: FakeInference) -> int:
    return len(fake.calls_to("POST", "/apps/run"))


def test_lines_and_music_are_made_once_first_and_cached(fake: FakeInference,
                                                         write_board: Callable[..., Path]) -> None:
    path = write_board(BOARD)
    result = storyboard.render(path, backend="inference", budget="10")
    assert result.film is not None
    apps = _apps(fake)
    assert sorted(apps) == sorted([TTS, TTS, TTS, MUSIC, VIDEO, VIDEO, VIDEO])
    # every line and the music were submitted before the first shot
    assert apps.index(VIDEO) == 4
    sent = [t.input for t in fake.submissions if t.app.startswith(TTS)]
    assert sorted(i["prompt"] for i in sent) == ["Boats slip out.", "Gulls cry.", "The harbor wakes."]
    assert all(i["voice"] == "af_bella" for i in sent)
    music = next(t.input for t in fake.submissions if t.app.startswith(MUSIC))
    assert music == {"prompt": "calm strings, slow", "is_instrumental": True}
    # what was paid: the shots, the lines (kokoro's CEL over the characters) and the music
    report = json.loads(result.report.read_text()) if result.report else {}
    audio = {a["id"]: a for a in report["audio"]}
    assert set(audio) == {"say:a", "say:b", "say:c", "audio[0]"} and all(a["task_id"] for a in audio.values())
    assert Decimal(audio["say:a"]["cost"]) == Decimal(len("The harbor wakes.")) * Decimal("0.00002")
    assert result.cost == result.plan.cost

    # the audio: each line (440 Hz) is heard during its cue; the music (220 Hz) ducks under it
    cues = list(srt.parse((path.parent / "out" / "film.srt").read_text()))
    assert [c.content for c in cues] == ["The harbor wakes.", "Boats slip out.", "Gulls cry."]
    pcm = _samples(result.film)
    for cue in cues:
        a, b = cue.start.total_seconds() + 0.1, cue.end.total_seconds() - 0.1
        assert _rms(pcm, a, b) > 0.01
        assert _tone(pcm, a, b, 440) > 0.01
    between = (cues[0].end.total_seconds() + 0.2, cues[1].start.total_seconds() - 0.2)
    assert _tone(pcm, *between, 220) > 2 * _tone(pcm, cues[0].start.total_seconds() + 0.1,
                                                  cues[0].end.total_seconds() - 0.1, 220)

    runs = _runs(fake)
    again = storyboard.render(path, backend="inference", budget="10")
    assert again.method == "unchanged" and _runs(fake) == runs  # a re-render makes no call

    path.write_text(path.read_text().replace("Gulls cry.", "Gulls cry out."))
    plan = storyboard.load(path).plan(backend="inference",
                                      cache=open_cache(path, create=False))
    assert [a.id for a in plan.audio if a.status == "generate"] == ["say:c"]
    edited = storyboard.render(path, backend="inference")
    assert edited.film is not None
    assert _apps(fake)[len(apps):] == [TTS]  # exactly one line re-voiced; no shot, no music
    assert "Gulls cry out." in (path.parent / "out" / "film.srt").read_text()


def test_plan_shows_the_audio_and_budget_counts_it(fake: FakeInference, write_board: Callable[..., Path]) -> None:
    from storyboard.cli import main

    path = write_board(BOARD)
    out = CliRunner().invoke(main, ["plan", str(path), "--backend", "inference"])
    assert out.exit_code == 0, out.output
    assert "narration: 3 lines (3 to voice) with falai/kokoro-tts" in out.output
    assert "music: audio[0] minimax/music-3-0, to make, $0.05" in out.output
    data = json.loads(CliRunner().invoke(main, ["plan", str(path), "--backend", "inference", "--json"]).output)
    assert [a["id"] for a in data["audio"]] == ["say:a", "say:b", "say:c", "audio[0]"]

    plan = Pipeline(storyboard.load(path), backend="inference").plan()
    shots = sum((s.cost or Decimal(0) for s in plan.shots), Decimal(0))
    assert plan.cost == shots + sum((a.cost or Decimal(0) for a in plan.audio), Decimal(0)) > shots
    with pytest.raises(BudgetError) as info:  # enough for the shots, not for the lines and the music
        storyboard.render(path, backend="inference", budget=str(shots))
    assert "narration line(s) or music track(s)" in str(info.value)
    assert _runs(fake) == 0


def test_music_is_priced_per_track_from_its_published_file(fake: FakeInference, write_board: Callable[..., Path],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORYBOARD_PRICES")  # minimax/PRICING.md: music-3.0 $0.15 per track
    path = write_board(BOARD)
    plan = storyboard.load(path).plan(backend="inference")
    music = next(a for a in plan.to_json()["audio"] if a["id"] == "audio[0]")
    assert music["price"] == "0.15" and music["price_source"] == "minimax/PRICING.md"
    with pytest.raises(BudgetError) as info:
        storyboard.render(path, backend="inference", budget="0.10")
    assert "over budget" in str(info.value)
    assert _runs(fake) == 0


@pytest.mark.parametrize(("voice", "say", "fragment"), [
    ("{app: falai/kokoro-tts, voice: af_nobody}", "Hello.", "has no voice 'af_nobody'"),
    ("{app: falai/kokoro-tts}", "{{ 'word ' * 1200 }}", "takes at most 5000"),
])
def test_bad_voice_or_long_text_fails_before_any_call(fake: FakeInference, write_board: Callable[..., Path],
                                                      voice: str, say: str, fragment: str) -> None:
    path = write_board(f"""
    storyboard: 1
    defaults: {{mode: std, duration: 3}}
    voice: {voice}
    shots:
      - id: a
        prompt: x
        say: "{say}"
    """)
    with pytest.raises(StoryboardError) as info:
        storyboard.render(path, backend="inference")
    assert f"{path}:" in str(info.value) and fragment in str(info.value)
    assert fake.calls == []


def test_a_voice_the_live_app_dropped_is_located_before_paying(fake: FakeInference,
                                                               write_board: Callable[..., Path]) -> None:
    fake.drift = {"voice": {"enum": ["af_heart"]}}  # today's app has one voice left
    path = write_board(BOARD.replace("audio:", "unused:").split("unused:")[0])
    with pytest.raises(SpecError) as info:
        storyboard.render(path, backend="inference")
    message = str(info.value)
    assert f"{path}:3:" in message and "say:a: falai/kokoro-tts (live" in message and "af_bella" in message
    assert _runs(fake) == 0


def test_a_line_longer_than_its_shot_stops_before_any_video_is_paid(fake: FakeInference,
                                                                    write_board: Callable[..., Path]) -> None:
    fake.speech_chars_per_second = 5.5  # "The harbor wakes." now takes 3.09 s; its shot has 3
    path = write_board(BOARD)
    with pytest.raises(SpecError) as info:
        storyboard.render(path, backend="inference", budget="10")
    assert "shot 'a': the line takes 3.09 s but the shot has 3.00 s" in str(info.value)
    assert "shot 'b'" not in str(info.value)
    assert VIDEO not in _apps(fake)
    voiced = len(fake.submissions)

    path.write_text(path.read_text().replace('    say: "The harbor wakes."', '    fit: extend\n'
                                                                                '    say: "The harbor wakes."'))
    result = storyboard.render(path, backend="inference", budget="10")
    assert result.film is not None and result.shots["a"].facts["hold"] > 0.09
    assert _apps(fake)[voiced:].count(TTS) == 0  # the lines paid before the error were kept


def test_a_music_app_that_returns_no_audio(fake: FakeInference, write_board: Callable[..., Path]) -> None:
    fake.no_output_apps = {MUSIC}
    path = write_board(BOARD)
    with pytest.raises(BackendError) as info:
        storyboard.render(path, backend="inference", budget="10")
    assert "audio[0] (minimax/music-3-0): the music app returned no audio" in str(info.value)
    assert VIDEO not in _apps(fake) and _apps(fake).count(TTS) == 3
    fake.no_output_apps = set()
    result = storyboard.render(path, backend="inference", budget="10")
    assert result.film is not None
    assert _apps(fake).count(TTS) == 3 and _apps(fake).count(MUSIC) == 2  # the lines were not paid again


def test_generated_music_offline_is_a_free_placeholder_bed(write_board: Callable[..., Path]) -> None:
    path = write_board("""
    storyboard: 1
    defaults: {duration: 3, sound: false}
    shots:
      - id: a
        prompt: x
      - id: b
        prompt: y
    audio:
      - app: minimax/music-3-0
        prompt: soft piano
        instrumental: true
        fade_out: 1.5
    """)
    plan = Pipeline(storyboard.load(path), backend="animatic").plan()
    assert plan.cost == 0 and [a.id for a in plan.audio] == ["audio[0]"]
    result = storyboard.render(path, backend="animatic")
    assert result.film is not None and result.cost == 0
    pcm = _samples(result.film)
    seconds = len(pcm) / 48000
    assert _rms(pcm, 0.5, 2.5) > 0.01  # louder than silence
    assert _rms(pcm, seconds - 0.2, seconds) < _rms(pcm, 0.5, 2.5) / 3  # faded out at the end
    again = storyboard.render(path, backend="animatic")
    assert again.method == "unchanged"
    bed = next((path.parent / ".storyboard" / "clips").rglob("*.wav"))
    assert probe_audio(bed).duration == pytest.approx(6.0, abs=0.05)  # as long as the planned film


@pytest.mark.parametrize(("track", "fragment"), [
    ("{app: minimax/music-3-0, prompt: calm}", "write `lyrics:` or set `instrumental: true`"),
    ("{app: minimax/music-3-0, prompt: calm, lyrics: la, instrumental: true}", "exclude each other"),
    ("{app: minimax/music-3-0, instrumental: true}", "needs a `prompt:`"),
    ("{app: falai/kokoro-tts, prompt: calm, instrumental: true}", "is not a known music app"),
    ("{app: minimax/music-3-0, file: a.wav, prompt: calm, instrumental: true}", "not both"),
    ("{volume: 0.5}", "give a `file:` or an `app:`"),
    ("{app: minimax/music-3-0, prompt: \"{{ '' }}\", instrumental: true}", "prompt: renders to nothing"),
])
def test_bad_music_tracks_are_located(write_board: Callable[..., Path], track: str, fragment: str) -> None:
    path = write_board(f"""
    storyboard: 1
    shots:
      - id: a
        prompt: x
    audio:
      - {track}
    """)
    with pytest.raises(StoryboardError) as info:
        storyboard.load(path)
    assert f"{path}:6:" in str(info.value) and fragment in str(info.value), str(info.value)


def test_voice_inputs_are_sent_checked_and_keyed(fake: FakeInference, write_board: Callable[..., Path]) -> None:
    board = """
    storyboard: 1
    defaults: {mode: std, duration: 3, sound: false}
    voice: {app: falai/kokoro-tts, voice: af_bella, inputs: INPUTS}
    shots:
      - id: a
        prompt: a harbor at dawn
        say: "The harbor wakes."
    """
    path = write_board(board.replace("INPUTS", "{speed: 1.25}"))
    assert storyboard.render(path, backend="inference").film is not None
    assert [t.input for t in fake.submissions if t.app.startswith(TTS)] == [
        {"speed": 1.25, "prompt": "The harbor wakes.", "voice": "af_bella"}]
    path.write_text(path.read_text().replace("1.25", "1.5"))
    storyboard.render(path, backend="inference")
    assert _apps(fake).count(TTS) == 2 and _apps(fake).count(VIDEO) == 1  # another speed: voiced again

    for inputs, fragment in (("{speed: 9}", "allows speed"), ("{prompt: hi}", "'prompt' is set by storyboard"),
                             ("{pitch: 2}", "has no input 'pitch'")):
        path.write_text(board.replace("INPUTS", inputs).replace("\n    ", "\n").lstrip())
        with pytest.raises(StoryboardError) as info:
            storyboard.load(path)
        assert f"{path}:3:" in str(info.value) and fragment in str(info.value), str(info.value)


def test_a_new_live_version_of_the_voice_app_voices_the_lines_again(fake: FakeInference,
                                                                   write_board: Callable[..., Path]) -> None:
    path = write_board(BOARD)
    storyboard.render(path, backend="inference", budget="10")
    assert _apps(fake).count(TTS) == 3
    fake.drift = {"language": {"default": "british-english"}}  # the apps change: a new live version
    runs = _runs(fake)
    again = storyboard.render(path, backend="inference", budget="10")
    assert again.method == "unchanged" and _runs(fake) == runs  # all cached: no network, as for shots
    path.write_text(path.read_text().replace("Gulls cry.", "Gulls cry out."))
    storyboard.render(path, backend="inference", budget="10")
    # a line to voice: the app is read live, and every line's key holds the version read
    assert _apps(fake).count(TTS) == 6 and _apps(fake).count(VIDEO) == 3
    runs = _runs(fake)
    again = storyboard.render(path, backend="inference", budget="10")
    assert again.method == "unchanged" and _runs(fake) == runs  # remembered: no call


def test_a_voiced_line_is_journalled_and_re_attached(fake: FakeInference, write_board: Callable[..., Path]) -> None:
    path = write_board("""
    storyboard: 1
    defaults: {mode: std, duration: 3, sound: false}
    shots:
      - id: a
        prompt: a harbor at dawn
        say: "The harbor wakes."
    """)
    fake.output_404 = 2  # the line's task completes, but its file cannot be fetched (twice)
    options = {"max_attempts": 2, "backoff_base": 0.01, "backoff_max": 0.02}
    with pytest.raises(BackendError) as info:
        storyboard.render(path, backend="inference", backend_options=options)
    assert "say:a (falai/kokoro-tts)" in str(info.value) and "re-attach" in str(info.value)
    assert _apps(fake) == [TTS]  # no shot was submitted
    result = storyboard.render(path, backend="inference", backend_options=options)
    assert result.film is not None
    assert _apps(fake) == [TTS, VIDEO]  # the journalled task was re-attached to, not paid again
    assert result.report is not None
    line = json.loads(result.report.read_text())["audio"][0]
    assert line["id"] == "say:a" and line["task_id"] == fake.submissions[0].id


def test_a_video_task_with_no_output_is_submitted_anew_not_reattached(
        fake: FakeInference, write_board: Callable[..., Path]) -> None:
    path = write_board("""
    storyboard: 1
    defaults: {duration: 3, sound: false}
    shots:
      - id: a
        prompt: a harbor at dawn
    """)
    fake.no_output_apps = {VIDEO}
    with pytest.raises(StoryboardError) as info:
        storyboard.render(path, backend="inference", budget="10")
    assert "completed without an output video" in str(info.value)
    fake.no_output_apps = set()
    result = storyboard.render(path, backend="inference", budget="10")
    assert result.film is not None
    assert _apps(fake).count(VIDEO) == 2  # the finished, empty task is not re-attached to
