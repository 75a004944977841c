"""``storyboard doctor``: what this machine has for rendering, one line per check, each
``ok`` or what to do. A check that stops every render (no working ffmpeg, a cache that
cannot be written, an ``s3://`` cache that does not round-trip, a Dask cluster that cannot
run the tasks) makes the exit code 1; the rest are warnings (exit 0). The API key's value
is never printed: only whether it is set, and how long it is.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import click

from storyboard.clikit import errors, redact

FREE_SPACE_MIN = 2 * 1024**3  # below this, a cache of 1080p clips soon fills the disk
CAPTION_FONT = "DejaVu Sans"  # the burned-in captions' font (media/_captions.py BURN_STYLE)
TIMEOUT = 5.0  # seconds for each outside call (the service, the bucket, the cluster)


@dataclass(frozen=True)
class Check:
    """One line of the report: ``status`` is ok, warn or fail; ``fix`` says what to do."""

    name: str
    status: str
    detail: str
    fix: str = ""


def _run(args: list[str]) -> str:
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=False).stdout


def check_ffmpeg() -> list[Check]:
    """ffmpeg (the one storyboard runs) and its libass (burned-in captions)."""
    from storyboard.media import ffmpeg_path

    try:
        exe = ffmpeg_path()
        version = _run([exe, "-hide_banner", "-version"]).split("\n", 1)[0]
        filters = _run([exe, "-hide_banner", "-filters"])
    except (OSError, subprocess.SubprocessError) as e:
        return [Check("ffmpeg", "fail", f"cannot run ffmpeg: {e}",
                      "pip install imageio-ffmpeg, or set STORYBOARD_FFMPEG to an ffmpeg binary")]
    if not version.startswith("ffmpeg"):
        return [Check("ffmpeg", "fail", f"{exe} is not a working ffmpeg",
                      "set STORYBOARD_FFMPEG to an ffmpeg binary, or unset it to use imageio-ffmpeg's")]
    out = [Check("ffmpeg", "ok", f"{' '.join(version.split()[:3])} ({exe})")]
    if " subtitles " in filters:
        out.append(Check("libass", "ok", "ffmpeg has the subtitles filter (burned-in captions)"))
    else:
        out.append(Check("libass", "warn", "this ffmpeg has no libass: captions: burn fails",
                         "use an ffmpeg built with --enable-libass (STORYBOARD_FFMPEG=/path/to/ffmpeg)"))
    return out


def check_espeak() -> Check:
    """espeak-ng speaks the animatic's narration lines offline."""
    from storyboard.media import espeak_path

    found = espeak_path()
    if found:
        return Check("espeak-ng", "ok", f"{found} (offline narration is spoken)")
    return Check("espeak-ng", "warn", "not on PATH: offline narration lines are quiet placeholders",
                 "apt-get install espeak-ng (or brew install espeak-ng)")


def check_fonts() -> list[Check]:
    """Pillow's scalable font (title cards, overlays) and the captions' font (libass)."""
    from PIL import features

    out = []
    if features.check("freetype2"):
        out.append(Check("fonts: cards", "ok", "Pillow has FreeType (title cards and overlays scale)"))
    else:
        out.append(Check("fonts: cards", "warn", "Pillow has no FreeType: title cards use a tiny bitmap font",
                         "pip install --force-reinstall pillow (its wheels include FreeType)"))
    matcher = shutil.which("fc-match")
    if matcher is None:
        out.append(Check("fonts: captions", "warn", "no fontconfig: burned captions use libass's fallback font",
                         f"apt-get install fontconfig fonts-dejavu-core ({CAPTION_FONT})"))
        return out
    match = _run([matcher, CAPTION_FONT]).strip()
    if CAPTION_FONT.split()[0] in match:
        out.append(Check("fonts: captions", "ok", f"{CAPTION_FONT}: {match}"))
    else:
        out.append(Check("fonts: captions", "warn", f"{CAPTION_FONT} not installed (fontconfig gives {match!r})",
                         "apt-get install fonts-dejavu-core"))
    return out


def check_service() -> list[Check]:
    """The API key's presence (never its value) and whether inference.sh answers."""
    import httpx

    from storyboard.backends.inference import API_KEY_ENV, BASE_URL_ENV, DEFAULT_BASE_URL

    key = os.environ.get(API_KEY_ENV) or ""
    base = os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    out = [Check("API key", "ok", f"{API_KEY_ENV} is set ({len(key)} characters)") if key else
           Check("API key", "warn", f"{API_KEY_ENV} is not set: only the offline animatic renders",
                 f"export {API_KEY_ENV}=… (from inference.sh's settings) for --backend inference")]
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        r = httpx.get(f"{base.rstrip('/')}/apps/klingai/video-v3", headers=headers, timeout=TIMEOUT)
    except httpx.HTTPError as e:
        return [*out, Check("service", "warn", redact(f"{base} does not answer: {type(e).__name__}: {e}"),
                            f"check the network, or {BASE_URL_ENV} (a test server: python -m fakeserver)")]
    if key and r.status_code in (401, 403):
        return [*out, Check("service", "warn", f"{base} answers but refuses the key (HTTP {r.status_code})",
                            f"check {API_KEY_ENV}: a key from inference.sh's settings")]
    said = "and takes the key" if key and r.is_success else f"(HTTP {r.status_code})"
    return [*out, Check("service", "ok", f"{base} answers {said}")]


def check_cache(cache_dir: str | None) -> list[Check]:
    """Where the cache is, its free space, and for a URL a write/read round trip."""
    from storyboard.cache import CACHE_ENV, DEFAULT_DIRNAME
    from storyboard.facts import is_cache_url

    where = cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_DIRNAME
    if is_cache_url(where):
        return [check_url_cache(where)]
    root = Path(where).absolute()
    made = [p for p in (root, *root.parents) if not p.exists()]  # left as they were found
    try:  # what a render does first: make the folder and write in it
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".doctor-{uuid.uuid4().hex}"
        probe.write_bytes(b"ok")
        probe.unlink()
        free = shutil.disk_usage(root).free
    except OSError as e:
        return [Check("cache", "fail", f"{root} cannot be written: {e.strerror or e}",
                      "pass --cache-dir (or set STORYBOARD_CACHE) to a folder you can write")]
    finally:
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()
    status = "ok" if free >= FREE_SPACE_MIN else "warn"
    fix = "" if status == "ok" else "free some space, or pass --cache-dir on a bigger disk"
    return [Check("cache", status, f"{root} ({free / 1024**3:.1f} GB free)", fix)]


def check_url_cache(url: str) -> Check:
    """Write, read back and delete one small object under the cache URL."""
    try:
        import fsspec
    except ImportError:
        return Check("cache", "fail", f"{url} needs fsspec", "pip install 'storyboard-film[s3]'")
    data = uuid.uuid4().hex.encode()
    try:
        fs, root = fsspec.core.url_to_fs(url)
        path = f"{root.rstrip('/')}/doctor/{data.decode()}.txt"
        fs.pipe_file(path, data)
        back = fs.cat_file(path)
        fs.rm_file(path)
    except Exception as e:  # any filesystem's error: say it, with no credentials in it
        return Check("cache", "fail", redact(f"{url}: write/read round trip failed: {type(e).__name__}: {e}"),
                     "check the bucket's name and the AWS_* settings (docs/scale.md)")
    if back != data:
        return Check("cache", "fail", f"{url}: read back other bytes than were written", "check the store")
    return Check("cache", "ok", f"{url}: write, read and delete round trip")


def _scheduler_probe() -> dict[str, Any]:
    import platform

    import storyboard.films  # what the task graph names

    return {"storyboard": storyboard.__version__, "python": platform.python_version(),
            "task": storyboard.films.render_film_task.__qualname__}


def _worker_probe() -> dict[str, Any]:
    from storyboard.backends.inference import API_KEY_ENV
    from storyboard.media import ffmpeg_path

    return {**_scheduler_probe(), "ffmpeg": bool(ffmpeg_path()), "key": bool(os.environ.get(API_KEY_ENV))}


def check_dask(address: str) -> list[Check]:
    """Whether the scheduler and every worker can load storyboard's tasks (and run them)."""
    try:
        import distributed
    except ImportError:
        return [Check("dask", "fail", "distributed is not installed here", "pip install 'storyboard-film[dask]'")]
    mine = _scheduler_probe()
    fix = "pip install 'storyboard-film[dask]' there, at this version and Python (docs/scale.md)"
    try:
        with cast(Any, distributed.Client)(address, timeout=TIMEOUT) as client:
            out = [_compare("dask scheduler", client.run_on_scheduler(_scheduler_probe), mine, fix)]
            workers: dict[str, dict[str, Any]] = client.run(_worker_probe)
    except OSError as e:
        return [Check("dask", "fail", f"cannot reach the scheduler at {address}: {e}", "start it: dask scheduler")]
    except Exception as e:  # the probe itself could not be loaded there
        return [Check("dask", "fail", f"{address}: {type(e).__name__}: {str(e)[:300]}", fix)]
    if not workers:
        return [*out, Check("dask workers", "fail", f"no worker is connected to {address}",
                            f"start one: dask worker {address}")]
    for name, info in sorted(workers.items()):
        check = _compare(f"dask worker {name}", info, mine, fix)
        if check.status == "ok" and not info.get("key"):
            check = Check(check.name, "warn", check.detail + "; INFERENCE_API_KEY not set there",
                          "export INFERENCE_API_KEY in the worker's environment for --backend inference")
        out.append(check)
    return out


def _compare(name: str, theirs: dict[str, Any], mine: dict[str, Any], fix: str) -> Check:
    if theirs.get("storyboard") != mine["storyboard"] or theirs.get("python", "")[:4] != mine["python"][:4]:
        return Check(name, "warn", f"storyboard {theirs.get('storyboard')} on Python {theirs.get('python')}; "
                                   f"here {mine['storyboard']} on {mine['python']}", fix)
    return Check(name, "ok", f"loads storyboard {theirs['storyboard']}'s tasks (Python {theirs['python']})")


def run_checks(cache_dir: str | None = None, dask: str | None = None,
               offline: bool = False) -> list[Check]:
    """Every check, in the order the report prints them."""
    steps: list[Callable[[], list[Check] | Check]] = [check_ffmpeg, check_espeak, check_fonts]
    if not offline:
        steps.append(check_service)
    steps.append(lambda: check_cache(cache_dir))
    if dask:
        steps.append(lambda: check_dask(dask))
    out: list[Check] = []
    for step in steps:
        got = step()
        out.extend(got if isinstance(got, list) else [got])
    return out


@click.command()
@click.option("--cache-dir", default=None, metavar="DIR|URL",
              help="The cache to check: a folder or a URL (s3://bucket/prefix); default $STORYBOARD_CACHE, "
                   "else .storyboard/ here.")
@click.option("--dask", default=None, metavar="ADDRESS",
              help="Also check the Dask scheduler and workers at ADDRESS (default $DASK_SCHEDULER_ADDRESS).")
@click.option("--offline", is_flag=True, help="Do not try to reach inference.sh.")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as one JSON document.")
def doctor(cache_dir: str | None, dask: str | None, offline: bool, as_json: bool) -> None:
    """Check what this machine has for rendering; each line says ok or what to do."""
    with errors():
        checks = run_checks(cache_dir, dask or os.environ.get("DASK_SCHEDULER_ADDRESS") or None, offline)
        failed = any(c.status == "fail" for c in checks)
        if as_json:
            click.echo(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]}, indent=2))
        else:
            width = max(len(c.name) for c in checks)
            for c in checks:
                fix = f" — {c.fix}" if c.fix else ""
                click.echo(f"{c.status:<4}  {c.name:<{width}}  {c.detail}{fix}")
        if failed:
            raise SystemExit(1)
