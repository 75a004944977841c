"""Narration: `say:` lines voiced offline, placed on the cut, mixed with ducking, and
captioned (.srt/.vtt) to the final cut. Real ffmpeg, tiny animatic clips."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import srt

import storyboard
from storyboard.errors import SpecError, StoryboardError
from storyboard.events import Event, Warning_
from storyboard.media import espeak_path, ffmpeg_path, probe
from storyboard.narration import CUE_CHARS, CUE_SECONDS, PlacedLine, line_key, split_cues
from tests.media_helpers import film_samples as _samples
from tests.media_helpers import rms as _rms
from tests.media_helpers import tone

FPS = 8  # conftest's animatic rate

BOARD = """
storyboard: 1
defaults: {duration: 3}
vars: {place: harbor}
voice: {duck_music: -18}
shots:
  - id: a
    prompt: a harbor at dawn
    say: "The {{ place }} wakes."
  - id: b
    prompt: boats leave
    say: "Boats slip out."
    transition: {type: dissolve, duration: 0.5}
  - id: c
    prompt: gulls
    say: "Gulls cry."
audio:
  - file: music.wav
    volume: 0.5
"""


# The music is a 12 kHz tone: above anything espeak-ng says (it speaks at 22.05 kHz), so
# its level can be read under the voice.
TONE = 12000


def _music(folder: Path, seconds: float = 20, freq: int = TONE) -> None:
    subprocess.run([ffmpeg_path(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency={freq}:duration={seconds}", str(folder / "music.wav")], check=True)


def _tone(pcm: np.ndarray, a: float, b: float, freq: float = TONE) -> float:
    """Amplitude of ``freq`` Hz (the offline voice's tone by default) in film seconds [a, b)."""
    return tone(pcm, a, b, freq)


def _voiced(cache: Path) -> dict[str, int]:
    """The voiced lines kept in the cache (each indexed like a clip, kept as its audio)."""
    return {p.name: p.stat().st_mtime_ns for p in (cache / "clips").rglob("*.wav")}


def test_cues_are_readable() -> None:
    text = " ".join(["narration"] * 40)
    line = PlacedLine("a", text, 1.0, 20.0)
    cues = split_cues(line)
    assert len(cues) > 1
    assert cues[0].start == 1.0 and cues[-1].end <= 21.0
    for cue in cues:
        rows = cue.text.split("\n")
        assert len(rows) <= 2 and all(len(r) <= CUE_CHARS for r in rows)
        assert 0 < cue.end - cue.start <= CUE_SECONDS + 1e-6
    assert " ".join(c.text.replace("\n", " ") for c in cues) == text


def test_line_key_is_app_version_voice_text() -> None:
    base = line_key("falai/kokoro-tts", "v1", "af_bella", "Hello.")
    assert base == line_key("falai/kokoro-tts", "v1", "af_bella", "Hello.")
    others = {line_key("elevenlabs/tts", "v1", "af_bella", "Hello."), line_key("falai/kokoro-tts", "v2", "af_bella",
              "Hello."), line_key("falai/kokoro-tts", "v1", "am_adam", "Hello."),
              line_key("falai/kokoro-tts", "v1", "af_bella", "Hello!")}
    assert base not in others and len(others) == 4


def test_srt_and_vtt_show_the_same_stamps(tmp_path: Path) -> None:
    from storyboard.media import write_captions

    cues = [(1.0005, 2.3344999, "One & <two>"), (2.9996, 5.5555, "Three"), (3599.9999, 3601.0015, "Four")]
    srt_file, vtt_file = write_captions(cues, tmp_path / "film.mp4")
    from_srt = [(c.start, c.end) for c in srt.parse(srt_file.read_text())]
    vtt = vtt_file.read_text()
    stamps = re.findall(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})$", vtt, re.M)

    def delta(h: str, m: str, s: str, ms: str) -> dt.timedelta:
        return dt.timedelta(hours=int(h), minutes=int(m), seconds=int(s), milliseconds=int(ms))

    from_vtt = [(delta(*x[:4]), delta(*x[4:])) for x in stamps]
    assert from_vtt == from_srt
    assert [round(t.total_seconds() * 1000) for pair in from_srt for t in pair] == [
        round(t * 1000) for a, b, _ in cues for t in (a, b)]
    assert vtt.startswith("WEBVTT\n\n") and "One &amp; &lt;two&gt;" in vtt


def test_narration_renders_captions_mix_and_cache(write_board: Callable[..., Path], tmp_path: Path) -> None:
    path = write_board(BOARD)
    _music(tmp_path)
    events: list[Event] = []
    result = storyboard.render(path, backend="animatic", on_event=events.append)
    assert result.film is not None
    srt_file, vtt_file = path.parent / "out" / "film.srt", path.parent / "out" / "film.vtt"
    assert srt_file.is_file() and vtt_file.is_file()
    assert vtt_file.read_text().startswith("WEBVTT")
    cues = list(srt.parse(srt_file.read_text()))
    assert [c.content for c in cues] == ["The harbor wakes.", "Boats slip out.", "Gulls cry."]
    # the cut: a at 0; b dissolves in 0.5 s before a ends; c is chained to b (seam frame trimmed)
    expected = [0.0, 2.5, 5.5]
    for cue, start in zip(cues, expected, strict=True):
        assert abs(cue.start.total_seconds() - start) <= 1 / FPS
    if espeak_path() is None:
        assert sum("placeholder" in e.message for e in events if isinstance(e, Warning_)) == 1
    pcm = _samples(result.film)
    music_alone = _tone(pcm, cues[0].end.total_seconds() + 0.1, 2.4)
    for cue in cues:
        a, b = cue.start.total_seconds() + 0.1, cue.end.total_seconds() - 0.1
        assert _rms(pcm, a, b) > 0.01  # louder than silence
        assert _tone(pcm, a, b) < music_alone * 0.5  # the music is ducked under the line
    cache = path.parent / ".storyboard"
    first = _voiced(cache)
    assert len(first) == 3

    again = storyboard.render(path, backend="animatic")
    assert again.method == "unchanged" and _voiced(cache) == first

    path.write_text(path.read_text().replace("Gulls cry.", "Gulls cry out."))
    storyboard.render(path, backend="animatic")
    after = _voiced(cache)
    assert len(after) == 4 and all(after[name] == mtime for name, mtime in first.items())
    assert "Gulls cry out." in srt_file.read_text()


def test_empty_say_is_a_located_error(write_board: Callable[..., Path]) -> None:
    path = write_board("""
    storyboard: 1
    shots:
      - id: a
        prompt: x
        say: "{{ '' }}"
    """)
    with pytest.raises(StoryboardError) as info:
        storyboard.load(path)
    assert f"{path}:5:" in str(info.value) and "say: renders to nothing" in str(info.value)


def test_line_longer_than_its_shot_names_both_lengths(write_board: Callable[..., Path]) -> None:
    words = " ".join(["word"] * 12)
    path = write_board(f"""
    storyboard: 1
    defaults: {{duration: 3}}
    shots:
      - id: a
        prompt: x
        say: "{words}"
      - id: b
        prompt: y
    """)
    with pytest.raises(SpecError) as info:
        storyboard.render(path, backend="animatic")
    message = str(info.value)
    assert f"{path}:6:" in message and "shot 'a'" in message and "3.00 s" in message and "fit: overlap" in message
    assert not (path.parent / "out" / "film.mp4").exists()

    path.write_text(path.read_text().replace("    say:", "    fit: overlap\n    say:"))
    result = storyboard.render(path, backend="animatic")
    assert result.film is not None and len(result.narration) == 1
    overlap = probe(result.film).duration

    path.write_text(path.read_text().replace("fit: overlap", "fit: extend"))
    result = storyboard.render(path, backend="animatic")
    assert result.film is not None
    line = result.narration[0]
    # shot a is held until its line ends: b starts after the line, the film is longer by the hold
    cues = list(srt.parse((path.parent / "out" / "film.srt").read_text()))
    assert cues[-1].end.total_seconds() == pytest.approx(line.end, abs=1 / FPS)
    held = probe(result.film).duration - overlap
    assert held == pytest.approx(line.seconds - 3.0 + 0.1, abs=2 / FPS)


def test_burn_without_narration_warns(write_board: Callable[..., Path]) -> None:
    path = write_board("""
    storyboard: 1
    captions: burn
    defaults: {duration: 3}
    shots:
      - id: a
        prompt: x
    """)
    events: list[Event] = []
    result = storyboard.render(path, backend="animatic", on_event=events.append)
    assert result.film is not None and not result.captions
    assert any(isinstance(e, Warning_) and "nothing to burn" in e.message for e in events)
    assert not (path.parent / "out" / "film.srt").exists()


def test_report_track_and_otio_markers(write_board: Callable[..., Path], tmp_path: Path) -> None:
    import opentimelineio as otio

    from storyboard.report import write_report_html

    path = write_board(BOARD)
    _music(tmp_path)
    result = storyboard.render(path, backend="animatic", otio=tmp_path / "cut.otio")
    assert result.report is not None and result.otio is not None
    page = write_report_html(storyboard.load(path), result.report)
    html = Path(page).read_text()
    assert '<track kind="captions"' in html and 'src="data:text/vtt;' in html
    markers = otio.adapters.read_from_file(str(result.otio)).tracks[0].markers
    assert [m.name for m in markers] == ["The harbor wakes.", "Boats slip out.", "Gulls cry."]
    assert abs(markers[1].marked_range.start_time.to_seconds() - 2.5) <= 1 / FPS


def _frame(film: Path, at: float) -> np.ndarray:
    from PIL import Image

    png = film.with_name(f"frame-{at}.png")
    subprocess.run([ffmpeg_path(), "-v", "error", "-y", "-ss", str(at), "-i", str(film), "-frames:v", "1", str(png)],
                   check=True)
    return np.asarray(Image.open(png).convert("L"), dtype=np.float64)


def test_overlay_is_drawn_for_its_range_only(write_board: Callable[..., Path]) -> None:
    path = write_board("""
    storyboard: 1
    defaults: {duration: 3}
    shots:
      - id: a
        prompt: x
      - id: b
        prompt: y
        overlay: {text: "HARBOR 6:04", start: 0.5, end: 1.5, position: centre, size: 0.2}
    """)
    result = storyboard.render(path, backend="animatic")
    assert result.film is not None
    # b starts at 3.0 s (chained cut, seam frame trimmed): drawn 3.5..4.5, not at 4.0 + 1.5
    during, after = _frame(result.film, 4.0), _frame(result.film, 5.5)
    h = during.shape[0]
    band = slice(int(h * 0.4), int(h * 0.6))
    assert np.abs(during[band] - after[band]).mean() > 10
    before = _frame(result.film, 1.0)
    assert np.abs(during[band] - before[band]).mean() > 10


@pytest.mark.parametrize(("overlay", "field", "fragment"), [
    ('{text: "Hi", start: 1, end: 9}', "end", "1..9 s is outside the shot (0..3 s)"),
    ('{text: "Hi", start: 3}', "start", "3..3 s is outside the shot"),
    ('{text: "{{ \'\' }}"}', "text", "the text renders to nothing"),
    ('{text: "Hi", font: missing.ttf}', "font", "font file 'missing.ttf' not found"),
])
def test_bad_overlay_is_located(write_board: Callable[..., Path], overlay: str, field: str, fragment: str) -> None:
    path = write_board(f"""
    storyboard: 1
    defaults: {{duration: 3}}
    shots:
      - id: a
        prompt: x
        overlay: {overlay}
    """)
    with pytest.raises(StoryboardError) as info:
        storyboard.load(path)
    message = str(info.value)
    assert f"{path}:6:" in message and "shot 'a': overlay" in message and fragment in message, message


def test_every_overlay_problem_is_reported_at_once(write_board: Callable[..., Path]) -> None:
    path = write_board("""
    storyboard: 1
    defaults: {duration: 3}
    shots:
      - id: a
        prompt: x
        overlay: {text: "A", start: 2, end: 5, font: nope.ttf}
      - id: b
        prompt: y
        overlay: {text: "{{ missing }}", start: 9}
    """)
    with pytest.raises(StoryboardError) as info:
        storyboard.load(path)
    lines = str(info.value).splitlines()
    for fragment in ("shot 'a': overlay: 2..5 s is outside", "shot 'a': overlay: font file 'nope.ttf' not found",
                     "shot 'b': overlay: text: 'missing' is undefined", "shot 'b': overlay: 9..3 s is outside"):
        assert sum(fragment in line for line in lines) == 1, (fragment, lines)


@pytest.mark.parametrize(("voice", "line", "fragment"), [
    ("{app: falai/kokoro-tts, voice: af_hart}", 6, "falai/kokoro-tts has no voice 'af_hart'; did you mean 'af_heart'?"),
    ("{app: klingai/video-v3}", 6, "'klingai/video-v3' is not a known TTS app"),
])
def test_bad_voice_is_located(write_board: Callable[..., Path], voice: str, line: int, fragment: str) -> None:
    path = write_board(f"""
    storyboard: 1
    shots:
      - id: a
        prompt: x
        say: Hello there.
    voice: {voice}
    """)
    with pytest.raises(StoryboardError) as info:
        storyboard.load(path)
    assert f"{path}:{line}:" in str(info.value) and fragment in str(info.value), str(info.value)


def test_line_over_the_apps_text_limit(write_board: Callable[..., Path]) -> None:
    path = write_board("""
    storyboard: 1
    voice: {app: elevenlabs/tts, voice: george}
    shots:
      - id: a
        prompt: x
        say: "{{ 'word ' * 1200 }}"
    """)
    with pytest.raises(StoryboardError) as info:
        storyboard.load(path)
    assert f"{path}:6:" in str(info.value) and "takes at most 5000" in str(info.value)


def test_elevenlabs_text_limit_follows_the_model(write_board: Callable[..., Path]) -> None:
    board = """
    storyboard: 1
    voice: {app: elevenlabs/tts, voice: george%s}
    shots:
      - id: a
        prompt: x
        say: "{{ 'word ' * 1200 }}"
    """
    storyboard.load(write_board(board % ", inputs: {model: eleven_multilingual_v2}"))  # 40,000 there
    with pytest.raises(StoryboardError, match="takes at most 5000"):
        storyboard.load(write_board(board % ", inputs: {model: eleven_v3}", "v3.yaml"))


TITLED = """
storyboard: 1
defaults: {mode: std, duration: 3}
shots:
  - id: card
    kind: title
    prompt: "{{ 'Harbor' }} Morning"
  - id: harbor
    prompt: a harbor at dusk
    say: The harbor wakes.
"""


def test_title_card_is_local_free_and_starts_a_chain(write_board: Callable[..., Path]) -> None:
    from fakeserver import FakeInference

    key = "sk-test-title-51"
    path = write_board(TITLED)
    board = storyboard.load(path)
    plan = board.plan(backend="inference")
    card = next(s for s in plan.shots if s.id == "card")
    harbor = next(s for s in plan.shots if s.id == "harbor")
    assert card.cost == 0 and card.reference_price == 0 and harbor.cost and harbor.cost > 0
    assert harbor.request.image_source == "@card:last"  # the chain starts on the card
    with FakeInference(api_key=key, latency=0.05) as fake, pytest.MonkeyPatch.context() as mp:
        mp.setenv("INFERENCE_API_KEY", key)
        mp.setenv("INFERENCE_BASE_URL", fake.url)
        result = storyboard.render(path, backend="inference", budget="5")
        assert result.film is not None
        # the line is voiced by the TTS app first, then the video shot; the card is made here
        # each sent pinned to the version the live check read
        assert [t.app for t in fake.submissions] == [f"falai/kokoro-tts@{t.version_id}" if n == 0 else
                                                     f"klingai/video-v3@{t.version_id}"
                                                     for n, t in enumerate(fake.submissions)]
        assert result.shots["card"].status == "generated" and result.shots["card"].cost in (None, 0)
        again = storyboard.render(path, backend="inference")
        assert again.method == "unchanged" and len(fake.submissions) == 2
    assert [c.content for c in srt.parse((path.parent / "out" / "film.srt").read_text())] == ["The harbor wakes."]


def test_captions_burn_draws_the_cue_into_the_picture(write_board: Callable[..., Path]) -> None:
    text = """
    storyboard: 1
    defaults: {duration: 3}
    captions: CAPTIONS
    shots:
      - id: a
        prompt: x
        say: Hello there, harbor.
    """
    films, clips = {}, {}
    for mode in ("file", "burn"):
        path = write_board(text.replace("CAPTIONS", mode), name=f"{mode}/film.yaml")
        result = storyboard.render(path, backend="animatic")
        assert result.film is not None and len(result.captions) == 2
        clip = result.shots["a"].clip
        assert clip is not None
        films[mode], clips[mode] = _frame(result.film, 1.0), _frame(clip, 1.0)
    h = films["file"].shape[0]
    bottom = slice(int(h * 0.7), h)
    # against the shot's own clip (its preview band sits clear of the captions, at the top)
    assert np.abs(films["burn"][bottom] - clips["burn"][bottom]).max() > 80  # white text on the box
    assert np.abs(films["file"][bottom] - clips["file"][bottom]).mean() < 2  # captions: file draws nothing
    top = slice(0, int(h * 0.3))
    assert np.abs(films["burn"][top] - clips["burn"][top]).mean() < 2
