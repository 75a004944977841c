"""klingai/video-v3 as it is today, against the fake playing the real (permissive) service:
only known inputs are sent, the live schema is checked before paying, versions are pinned
and recorded, and prices follow resolution and sound."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fakeserver import FakeInference
from storyboard.cli import main
from storyboard.media import probe

KEY = "sk-test-live-4e2a"

CHAIN = """
storyboard: 1
defaults: {{resolution: 720p, duration: {duration}{extra}}}
shots:
  - id: harbor
    prompt: a harbor at dusk
    image: start.png
  - id: keeper
    prompt: the keeper looks up
  - id: storm
    prompt: the storm arrives
"""


@pytest.fixture
def fake() -> Iterator[FakeInference]:
    with FakeInference(api_key=KEY, latency=0.1) as server:
        yield server


@pytest.fixture
def chain(write_board: Callable[..., Path], make_image: Callable[..., Path]) -> Callable[..., Path]:
    make_image("start.png")

    def make(duration: int = 3, extra: str = "") -> Path:
        return write_board(CHAIN.format(duration=duration, extra=extra))

    return make


def render(fake: FakeInference, path: Path, *args: str) -> Result:
    env = {"INFERENCE_API_KEY": KEY, "INFERENCE_BASE_URL": fake.url}
    return CliRunner().invoke(main, ["render", str(path), "--backend", "inference", *args], env=env)


def runs(fake: FakeInference) -> list[dict[str, object]]:
    return [c.json for c in fake.calls_to("POST", "/apps/run")]


def test_chained_render_sends_only_known_inputs_multi_shot_false_and_resolution(
        fake: FakeInference, chain: Callable[..., Path]) -> None:
    path = chain()
    result = render(fake, path, "--budget", "5")
    assert result.exit_code == 0, result.output
    assert "klingai/video-v3: inference.sh serves version snapshot-2026-08-07 (unpinned" in result.output
    assert len(fake.calls_to("GET", "/apps/")) == 1  # one read per app per render
    latest = fake.catalog.find("klingai/video-v3")
    assert latest is not None
    known = latest.known
    sent = [r["input"] for r in runs(fake)]
    assert len(sent) == 3
    for inputs in sent:
        assert isinstance(inputs, dict)
        assert set(inputs) <= known, set(inputs) - known
        assert inputs["multi_shot"] is False and inputs["resolution"] == "720p"
        assert "mode" not in inputs and "negative_prompt" not in inputs
    film = path.parent / "out" / "film.mp4"
    assert probe(film).duration > 8
    report = json.loads((path.parent / "out" / "film.mp4.render.json").read_text())
    assert report["apps"] == {"klingai/video-v3": "snapshot-2026-08-07"}
    shot = report["shots"][0]
    assert shot["version"] == "snapshot-2026-08-07" and shot["tier"] == "resolution 720p, sound true"
    assert shot["facts"]["billed_cost"] == "0.378"  # 3 s at 720p with sound, from output_meta
    # re-rendering needs no network: the keys hold the version read last time
    fake.calls.clear()
    again = render(fake, path)
    assert again.exit_code == 0, again.output
    assert fake.calls == []


def test_valid_offline_but_not_live_is_refused_with_nothing_paid(chain: Callable[..., Path]) -> None:
    path = chain(duration=12)
    assert CliRunner().invoke(main, ["validate", str(path)]).exit_code == 0  # the bundled snapshot allows 12
    with FakeInference(api_key=KEY, latency=0.1, drift={"duration": {"maximum": 10}}) as drifted:
        result = render(drifted, path, "--budget", "20")
        assert result.exit_code == 1, result.output
        assert runs(drifted) == [] and drifted.calls_to("POST", "/files") == []
    lines = [ln for ln in result.output.splitlines() if ln.startswith(str(path))]
    assert len(lines) == 1, result.output
    assert ("klingai/video-v3 (version snapshot-live-drift, read live from inference.sh) allows duration 3..10; "
            "shots harbor, keeper, storm ask for 12. Nothing was paid") in lines[0]
    assert f"{path}:2:" in lines[0]  # the defaults line that sets the duration


def test_a_pinned_version_is_sent_recorded_and_keyed(fake: FakeInference, chain: Callable[..., Path]) -> None:
    pinned = chain(extra=", app: klingai/video-v3@snapshot-2025-original, mode: std")
    pinned.write_text(pinned.read_text().replace("resolution: 720p, ", ""))
    result = render(fake, pinned)
    assert result.exit_code == 0, result.output
    assert {r["app"] for r in runs(fake)} == {"klingai/video-v3@snapshot-2025-original"}
    assert all(r["input"]["mode"] == "std" and "resolution" not in r["input"] for r in runs(fake))  # type: ignore[index,operator]
    report = json.loads((pinned.parent / "out" / "film.mp4.render.json").read_text())
    assert report["apps"] == {"klingai/video-v3@snapshot-2025-original": "snapshot-2025-original"}
    keys = {s["id"]: s["key"] for s in report["shots"]}
    unpinned = chain()
    plan = json.loads(CliRunner().invoke(main, ["plan", str(unpinned), "--backend", "inference", "--json"]).output)
    assert plan["shots"][0]["key"] != keys["harbor"]  # another version makes another clip


def test_a_deploy_right_after_the_live_check_changes_no_paid_call(fake: FakeInference,
                                                                   chain: Callable[..., Path]) -> None:
    path = chain(duration=5)
    latest = fake.catalog.find("klingai/video-v3")
    assert latest is not None
    checked = latest.version_id

    def deploy() -> None:  # a new version, refusing 5 s, goes live the moment the app was read
        fake.drift = {"duration": {"maximum": 4}}

    fake.after_app_read = deploy
    result = render(fake, path, "--budget", "5")
    assert result.exit_code == 0, result.output
    assert len(fake.calls_to("GET", "/apps/")) == 1
    assert [r["app"] for r in runs(fake)] == [f"klingai/video-v3@{checked}"] * 3
    assert {t.version_id for t in fake.submissions} == {checked}


@pytest.mark.parametrize("written", ["klingai/video-v3@latest", "app/klingai/video-v3@latest"])
def test_latest_reads_live_then_pins_for_the_render(fake: FakeInference, write_board: Callable[..., Path],
                                                    written: str) -> None:
    fake.live_version = "snapshot-2025-original"
    path = write_board(f"storyboard: 1\ndefaults: {{duration: 3, mode: std, app: {written!r}}}\n"
                       "shots:\n  - id: harbor\n    prompt: a harbor at dusk\n")
    result = render(fake, path, "--budget", "5")
    assert result.exit_code == 0, result.output
    assert [r["app"] for r in runs(fake)] == ["klingai/video-v3@snapshot-2025-original"]


def test_a_pin_in_the_lock_file_is_read_and_sent(fake: FakeInference, write_board: Callable[..., Path]) -> None:
    path = write_board("storyboard: 1\ndefaults: {duration: 3, mode: std}\n"
                       "shots:\n  - id: harbor\n    prompt: a harbor at dusk\n")
    path.with_name("film.takes.yaml").write_text("picks: {}\napps:\n  klingai/video-v3: snapshot-2025-original\n")
    result = render(fake, path, "--budget", "5")
    assert result.exit_code == 0, result.output
    assert [c.path for c in fake.calls_to("GET", "/apps/")][-1].endswith("/versions/snapshot-2025-original")
    assert [r["app"] for r in runs(fake)] == ["klingai/video-v3@snapshot-2025-original"]


def test_latest_with_a_pin_in_the_lock_file_is_one_located_line(fake: FakeInference,
                                                                  write_board: Callable[..., Path]) -> None:
    path = write_board("storyboard: 1\nshots:\n  - id: harbor\n    prompt: a harbor at dusk\n"
                       "    app: klingai/video-v3@latest\n")
    path.with_name("film.takes.yaml").write_text("picks: {}\napps:\n  klingai/video-v3: snapshot-2025-original\n")
    result = render(fake, path, "--budget", "5")
    assert result.exit_code != 0 and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if "@latest" in line]
    assert len(lines) == 1 and f"{path}:5:" in lines[0] and "film.takes.yaml:3:3 pins" in lines[0]
    assert fake.calls == []  # before anything is asked, let alone paid


def test_an_app_reference_that_does_not_parse_is_one_located_line(fake: FakeInference,
                                                                  write_board: Callable[..., Path]) -> None:
    path = write_board("storyboard: 1\nshots:\n  - id: harbor\n    prompt: a harbor at dusk\n"
                       "    app: agent/acme/helper\n")
    result = render(fake, path, "--budget", "5")
    assert result.exit_code != 0 and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if "agent/acme/helper" in line]
    assert len(lines) == 1 and f"{path}:5:" in lines[0] and "[app/]namespace/name[@version][:function]" in lines[0]
    assert fake.calls == []


def test_an_o3_r2v_shot_with_start_and_end_frames_renders(fake: FakeInference, write_board: Callable[..., Path],
                                                           make_image: Callable[..., Path]) -> None:
    make_image("start.png")
    make_image("end.png")
    path = write_board("storyboard: 1\nshots:\n  - id: harbor\n    prompt: a harbor at dusk\n"
                       "    app: falai/kling-video-o3-r2v\n    duration: 3\n    image: start.png\n"
                       "    end_image: end.png\n")
    result = render(fake, path, "--budget", "5")
    assert result.exit_code == 0, result.output
    sent = runs(fake)[0]["input"]
    assert isinstance(sent, dict) and sent["start_image"] and sent["end_image"]
    meta = fake.snapshot(fake.submissions[0])["output"]["output_meta"]
    assert meta["outputs"][0]["seconds"] == 3.0 and [i["type"] for i in meta["inputs"]] == ["text", "image", "image"]


def test_plan_shows_the_4k_rate(chain: Callable[..., Path]) -> None:
    path = chain()
    path.write_text(path.read_text().replace("resolution: 720p", "resolution: 4k"))
    out = CliRunner().invoke(main, ["plan", str(path), "--backend", "inference"]).output
    assert "$0.42/s (resolution 4k, sound true)" in out
    data = json.loads(CliRunner().invoke(main, ["plan", str(path), "--backend", "inference", "--json"]).output)
    assert data["totals"]["cost"] == "3.78"


def test_a_storyboard_wide_input_the_app_lacks_is_noted_not_sent(fake: FakeInference,
                                                                  chain: Callable[..., Path]) -> None:
    # defaults follow the app (issue 24): only a value written on the shot is an error
    path = chain(extra=", negative_prompt: blur")
    plan = CliRunner().invoke(main, ["plan", str(path), "--backend", "inference"])
    assert plan.exit_code == 0, plan.output
    assert ("note: klingai/video-v3 has no input for negative_prompt: the storyboard-wide value is not sent for "
            "shots harbor, keeper, storm") in plan.output
    assert render(fake, path).exit_code == 0
    assert runs(fake) and all("negative_prompt" not in r["input"] for r in runs(fake))  # type: ignore[operator]
    path.write_text(path.read_text().replace("    prompt: the storm arrives", "    prompt: the storm arrives\n"
                                             "    negative_prompt: rain"))
    written = render(fake, path)
    assert written.exit_code == 1 and f"{path}:11:22: shot 'storm': klingai/video-v3" in written.output, \
        written.output


@pytest.mark.parametrize(("extra", "fragment"), [
    (", inputs: {watermark: true}", "klingai/video-v3 has no input 'watermark'"),
    (", aspect_ratio: '4:3'", "klingai/video-v3 allows aspect_ratio 16:9, 9:16, 1:1; got '4:3'"),
    (", mode: pro", "mode pro and resolution 720p disagree"),
    (", app: nobody/nothing", "unknown app 'nobody/nothing'"),
    (", app: 'klingai/video-v3@'", "is not a version id"),
])
def test_bad_inputs_are_refused_before_any_request(fake: FakeInference, chain: Callable[..., Path],
                                                   extra: str, fragment: str) -> None:
    path = chain(extra=extra)
    result = render(fake, path)
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert any(fragment in ln and ln.startswith(f"{path}:2:") for ln in lines), result.output
    assert fake.calls == []


def test_reading_the_app_is_retried_then_refused_clearly(fake: FakeInference, chain: Callable[..., Path]) -> None:
    fake.app_failures = 2
    path = chain()
    assert render(fake, path).exit_code == 0  # two 503s, then the app: retried
    fake.calls.clear()
    fake.app_failures = 50
    other = chain(duration=4)
    result = render(fake, other)
    assert result.exit_code == 1, result.output
    assert "could not check klingai/video-v3 against inference.sh before paying" in result.output
    assert "nothing was paid" in result.output and "Traceback" not in result.output
    assert runs(fake) == []


def test_apps_show_live_and_pull(fake: FakeInference, tmp_path: Path) -> None:
    env = {"INFERENCE_API_KEY": KEY, "INFERENCE_BASE_URL": fake.url, "STORYBOARD_APPS": str(tmp_path / "apps")}
    fake.drift = {"duration": {"maximum": 10}}
    shown = CliRunner().invoke(main, ["apps", "show", "klingai/video-v3", "--live"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "version snapshot-live-drift (live)" in shown.output and "duration      3..10" in shown.output
    pulled = CliRunner().invoke(main, ["apps", "pull", "klingai/video-v3"], env=env)
    assert pulled.exit_code == 0, pulled.output
    assert (tmp_path / "apps" / "klingai" / "video-v3" / "versions" / "snapshot-live-drift.json").is_file()
    offline = CliRunner().invoke(main, ["apps", "show", "klingai/video-v3"], env={"STORYBOARD_APPS": str(tmp_path / "apps")})
    assert "version snapshot-live-drift" in offline.output  # offline validation now uses the pulled schema
    nokey = CliRunner().invoke(main, ["apps", "show", "klingai/video-v3", "--live"],
                               env={"INFERENCE_API_KEY": "", "INFERENCE_BASE_URL": fake.url})
    assert nokey.exit_code == 1 and "INFERENCE_API_KEY" in nokey.output and "Traceback" not in nokey.output


@pytest.mark.parametrize("written", ["app/klingai/video-v3", "klingai/video-v3@latest"])
def test_every_form_of_a_reference_prices_and_keys_as_the_app(write_board: Callable[..., Path], written: str) -> None:
    import storyboard

    def plan_of(app: str, name: str) -> object:
        path = write_board(f"storyboard: 1\nshots:\n  - id: harbor\n    prompt: a harbor\n    app: {app}\n"
                           "    duration: 4\nvoice: {app: 'falai/kokoro-tts" + ("@latest" if "@" in app else "")
                           + "'}\n", name)
        return storyboard.load(path).plan(backend="inference")

    plain, other = plan_of("klingai/video-v3", "plain.yaml"), plan_of(written, "other.yaml")
    assert [s.cost for s in other.shots] == [s.cost for s in plain.shots] != [None]  # type: ignore[attr-defined]
    assert [s.key for s in other.shots] == [s.key for s in plain.shots]  # type: ignore[attr-defined]
