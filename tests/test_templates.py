"""The prompt template library (templates/*.j2): every macro renders with its
parameters, refuses unknown values clearly, and is used by at least one example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from storyboard.prompts import PromptError, PromptRenderer, library_dir

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "templates"
PRIVATE = {"_check.j2"}

# (file, call, substrings the output must contain)
CASES: list[tuple[str, str, list[str]]] = [
    # shots.j2
    ("shots.j2", "extreme_wide('a lone boat', setting='the open sea')", ["Extreme wide shot of a lone boat", "small against the open sea"]),
    ("shots.j2", "extreme_wide(setting='a desert')", ["Extreme wide shot of a desert", "vast sense of scale"]),
    ("shots.j2", "wide('a market', setting='a square')", ["Wide shot of a market in a square"]),
    ("shots.j2", "full('a dancer')", ["Full shot of a dancer", "head to toe"]),
    ("shots.j2", "medium('a chef')", ["Medium shot of a chef", "waist up"]),
    ("shots.j2", "medium_close_up('a chef')", ["Medium close-up of a chef", "chest up"]),
    ("shots.j2", "close_up('a hand', detail='trembling')", ["Close-up of a hand, trembling", "filling the frame"]),
    ("shots.j2", "extreme_close_up('an eye')", ["Extreme close-up of an eye"]),
    ("shots.j2", "over_the_shoulder('a detective', toward='a suspect')", ["Over-the-shoulder shot from behind a detective", "toward a suspect"]),
    ("shots.j2", "two_shot('a girl', 'her grandmother')", ["Two-shot of a girl and her grandmother"]),
    ("shots.j2", "pov('a cat')", ["Point-of-view shot through the eyes of a cat"]),
    ("shots.j2", "size('MCU', 'a pilot')", ["Medium close-up of a pilot"]),
    ("shots.j2", "size('extreme wide', setting='a glacier')", ["Extreme wide shot of a glacier"]),
    # camera.j2
    ("camera.j2", "static('the door')", ["Static locked-off camera", "framing the door", "no camera movement"]),
    ("camera.j2", "dolly_in(speed='slow')", ["Slow dolly in", "glides forward"]),
    ("camera.j2", "dolly_in(speed='fast', toward='the door')", ["Fast dolly in toward the door"]),
    ("camera.j2", "dolly_out(speed='medium', reveal='the crowd')", ["Steady dolly out, revealing the crowd"]),
    ("camera.j2", "orbit(around='the statue', direction='counterclockwise', speed='very_slow')", ["Very slow orbit around the statue", "circling counterclockwise"]),
    ("camera.j2", "crane_up(reveal='the city')", ["Slow crane up, rising to reveal the city"]),
    ("camera.j2", "crane_up()", ["Slow crane up, the camera rising"]),
    ("camera.j2", "crane_down(speed='fast', to='street level')", ["Fast crane down, descending to street level"]),
    ("camera.j2", "handheld(intensity='frantic')", ["Frantic handheld camera"]),
    ("camera.j2", "handheld()", ["Handheld camera with a subtle natural sway"]),
    ("camera.j2", "tracking('a runner', side='behind', speed='fast')", ["Fast tracking shot following a runner", "moving behind"]),
    ("camera.j2", "pan(direction='left', to='the window')", ["Slow pan left to the window"]),
    ("camera.j2", "tilt(direction='down', speed='fast')", ["Fast tilt down"]),
    ("camera.j2", "move('push-in', speed='fast')", ["Fast dolly in"]),
    ("camera.j2", "move('tilt_down')", ["Slow tilt down"]),
    ("camera.j2", "move('static')", ["Static locked-off camera"]),
    # look.j2
    ("look.j2", "lens(24)", ["24mm wide-angle lens"]),
    ("look.j2", "lens('85mm')", ["85mm portrait lens"]),
    ("look.j2", "lens(35)", ["35mm lens, natural perspective"]),
    ("look.j2", "lens(50)", ["50mm lens"]),
    ("look.j2", "anamorphic()", ["Anamorphic lens", "lens flares"]),
    ("look.j2", "anamorphic(flares=false)", ["Anamorphic lens, 2.39:1 widescreen feel, oval bokeh"]),
    ("look.j2", "film_stock('kodak_portra_400')", ["Kodak Portra 400"]),
    ("look.j2", "film_stock(stock='CineStill 800T')", ["CineStill 800T", "halation"]),
    ("look.j2", "grade('bleach bypass')", ["Bleach bypass grade"]),
    ("look.j2", "grade(name='teal_orange')", ["Teal and orange colour grade"]),
    ("look.j2", "depth_of_field('deep')", ["Deep focus"]),
    ("look.j2", "look(mm=85, stock='fuji_eterna', grade_name='cool')", ["85mm portrait lens", ". Shot on Fuji Eterna film", ". Cool colour grade"]),
    ("look.j2", "look(anamorphic_lens=true)", ["Anamorphic lens"]),
    # lighting.j2
    ("lighting.j2", "golden_hour()", ["Golden hour", "rim light"]),
    ("lighting.j2", "golden_hour(direction='side')", ["long shadows"]),
    ("lighting.j2", "blue_hour()", ["Blue hour"]),
    ("lighting.j2", "low_key(source='a candle')", ["Low-key lighting", "lit only by a candle"]),
    ("lighting.j2", "high_key()", ["High-key lighting"]),
    ("lighting.j2", "neon(colors='red and green')", ["Neon lighting, red and green signs"]),
    ("lighting.j2", "overcast()", ["Overcast daylight"]),
    ("lighting.j2", "practical(sources='candles')", ["Practical lighting from candles"]),
    ("lighting.j2", "light('neon')", ["Neon lighting, magenta and cyan"]),
    ("lighting.j2", "light('Golden Hour')", ["Golden hour"]),
    # transitions.j2
    ("transitions.j2", "continuous()", ["Continuing seamlessly from the previous shot"]),
    ("transitions.j2", "match_cut('the full moon', into='a dinner plate')", ["Match cut: the full moon", "now a dinner plate"]),
    ("transitions.j2", "smash_cut(to='a roaring engine')", ["Smash cut to a roaring engine"]),
    ("transitions.j2", "whip_pan(direction='left')", ["Whip pan left", "motion blur"]),
    ("transitions.j2", "time_cut(to='winter')", ["Time cut to winter"]),
    ("transitions.j2", "ends_on('a closed door')", ["The shot ends on a closed door"]),
    ("transitions.j2", "fade_from_black()", ["emerging from black"]),
    # cinematic.j2
    ("cinematic.j2", "cinematic('a keeper', action='looking up', framing='close_up', camera='dolly_in', mm=85, lighting='low_key', stock='kodak_vision3_500t', grade='noir')",
     ["Close-up of a keeper looking up", "Slow dolly in", "85mm portrait lens", "Kodak Vision3 500T", "noir grade", "Low-key lighting"]),
    ("cinematic.j2", "cinematic('a fox')", ["Medium shot of a fox", "Static locked-off camera", "35mm lens", "Golden hour"]),
    ("cinematic.j2", "establishing('a mountain village', lighting='blue_hour', stock='super_16')", ["Extreme wide establishing shot of a mountain village", "Slow crane down", "Blue hour", "Super 16mm"]),
]

# (file, call, words the error must contain)
BAD: list[tuple[str, str, list[str]]] = [
    ("camera.j2", "dolly_in(speed='warp')", ["dolly_in(speed=warp)", "unknown speed", "slow", "fast"]),
    ("camera.j2", "orbit(direction='sideways')", ["orbit(direction=sideways)", "clockwise"]),
    ("camera.j2", "handheld(intensity='wild')", ["handheld(intensity=wild)", "documentary"]),
    ("camera.j2", "pan(direction='up')", ["pan(direction=up)", "left, right"]),
    ("camera.j2", "move('zoom')", ["move(name=zoom)", "dolly_in"]),
    ("shots.j2", "size('huge', 'x')", ["size(name=huge)", "extreme_wide"]),
    ("shots.j2", "size('close_up')", ["needs a subject"]),
    ("look.j2", "lens(36)", ["lens(mm=36)", "35", "85"]),
    ("look.j2", "film_stock('velvia')", ["film_stock(stock=velvia)", "kodak_portra_400"]),
    ("look.j2", "grade('sepia')", ["grade(name=sepia)", "teal_orange"]),
    ("lighting.j2", "light('disco')", ["light(name=disco)", "golden_hour"]),
    ("lighting.j2", "golden_hour(direction='under')", ["golden_hour(direction=under)", "backlit"]),
    ("transitions.j2", "whip_pan(direction='up')", ["whip_pan(direction=up)"]),
    ("cinematic.j2", "cinematic('x', camera='zoom')", ["move(name=zoom)"]),
]


def macro_names(path: Path) -> list[str]:
    return re.findall(r"{%-?\s*macro\s+(\w+)\s*\(", path.read_text(encoding="utf-8"))


def public_macros() -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(LIBRARY.glob("*.j2")):
        if path.name in PRIVATE:
            continue
        for name in macro_names(path):
            out[name] = path.name
    return out


def render(file: str, call: str) -> str:
    name = call.split("(", 1)[0]
    return PromptRenderer().render(inline=f"{{% from '{file}' import {name} %}}{{{{ {call} }}}}", context={})


def test_the_package_ships_the_library() -> None:
    shipped = {p.name for p in library_dir().glob("*.j2")}
    assert shipped >= {p.name for p in LIBRARY.glob("*.j2")}
    assert (library_dir() / "README.md").is_file()


@pytest.mark.parametrize(("file", "call", "want"), CASES, ids=[c[1].split("(")[0] + f"[{i}]" for i, c in enumerate(CASES)])
def test_macro_renders(file: str, call: str, want: list[str]) -> None:
    text = render(file, call)
    for piece in want:
        assert piece in text, f"{call} -> {text!r}"
    assert "\n" not in text and "  " not in text, f"stray whitespace in {text!r}"
    assert text == text.strip() and not text.endswith(",")


@pytest.mark.parametrize(("file", "call", "want"), BAD, ids=[c[1] for c in BAD])
def test_unknown_values_are_clear_errors(file: str, call: str, want: list[str]) -> None:
    with pytest.raises(PromptError) as info:
        render(file, call)
    message = info.value.message
    assert "template library" in message
    for piece in want:
        assert piece in message, message


def test_every_macro_is_tested() -> None:
    tested = {c[1].split("(")[0] for c in CASES}
    missing = set(public_macros()) - tested
    assert not missing, f"macros without a test case: {sorted(missing)}"


def test_every_macro_is_used_by_an_example() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in [
        *(ROOT / "examples").glob("*.yaml"), *(ROOT / "examples" / "templates").glob("*.j2")])
    unused = [name for name in public_macros() if not re.search(rf"\b{name}\(", text)]
    assert not unused, f"macros no example uses: {unused}"


def test_every_macro_is_documented() -> None:
    readme = (LIBRARY / "README.md").read_text(encoding="utf-8")
    undocumented = [name for name in public_macros() if f"`{name}(" not in readme]
    assert not undocumented, f"macros missing from templates/README.md: {undocumented}"


def test_macro_names_are_unique_across_files() -> None:
    seen: dict[str, str] = {}
    for path in sorted(LIBRARY.glob("*.j2")):
        if path.name in PRIVATE:
            continue
        for name in macro_names(path):
            assert name not in seen, f"{name} is defined in both {seen[name]} and {path.name}"
            seen[name] = path.name


def test_an_error_in_a_storyboard_points_at_the_library(write_board: object) -> None:
    import storyboard
    from storyboard.errors import TemplateError

    path = write_board(  # type: ignore[operator]
        """
        storyboard: 1
        shots:
          - id: a
            prompt: "{% from 'camera.j2' import dolly_in %}{{ dolly_in(speed='warp') }}"
        """
    )
    with pytest.raises(TemplateError) as info:
        storyboard.load(path)
    assert "dolly_in(speed=warp)" in str(info.value)
    assert "shot 'a'" in str(info.value)
