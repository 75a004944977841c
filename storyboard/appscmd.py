"""``storyboard apps``: what an app takes, offline from its snapshot or live from inference.sh."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import click

from storyboard.clikit import errors
from storyboard.errors import AppError, AuthError, UsageError

if TYPE_CHECKING:
    from storyboard import apps


def _profile(name: str) -> tuple[apps.AppRef, apps.AppProfile]:
    from storyboard import apps

    ref = apps.parse_app_ref(name)
    profile = apps.profile(ref.name)
    if profile is None:
        raise AppError(f"unknown app '{ref.name}'; storyboard knows: {', '.join(apps.known_apps())}")
    return ref, profile


def read_live(ref: apps.AppRef, without_key: str = "") -> apps.AppVersion:
    """The app version inference.sh serves now (pinned: that version). Needs INFERENCE_API_KEY;
    ``without_key`` ends the message when it is not set (what else the user can do)."""
    import asyncio

    from storyboard import apps
    from storyboard.backends.inference import API_KEY_ENV, InferenceBackend

    if not os.environ.get(API_KEY_ENV):
        raise AuthError(f"reading {ref.text} from inference.sh needs {API_KEY_ENV}; set it{without_key}")

    async def go() -> dict[str, Any]:
        backend = InferenceBackend()
        backend.check_ready()
        try:
            app: dict[str, Any] = await backend.get_app(ref.text)
            return app
        finally:
            await backend.aclose()

    return apps.app_from_api(asyncio.run(go()), ref.name)


def describe(profile: apps.AppProfile, version: apps.AppVersion) -> dict[str, Any]:
    """An app's inputs, defaults and storyboard's mapping, as data."""
    from storyboard import apps

    by_input = {name: concept for concept, name in profile.concepts.items()}
    inputs = []
    for name, prop in version.properties.items():
        inputs.append({"input": name, "allowed": apps.allowed_text(prop), "default": prop.get("default"),
                       "required": name in version.required, "concept": by_input.get(name)})
    missing = [c for c, n in profile.concepts.items() if n not in version.properties]
    return {"app": profile.app, "version": version.version_id, "source": version.source or "bundled snapshot",
            "kind": profile.kind, "inputs": inputs, "concepts_not_in_this_version": missing,
            "storyboard_sends": dict(profile.storyboard_defaults), "mode_tiers": dict(profile.mode_tiers),
            "price": {**profile.price, "rules": price_rules(profile, version)}, "price_source": apps.price_source(profile),
            "versions": sorted(profile.versions)}


def price_rules(profile: apps.AppProfile, version: apps.AppVersion) -> list[dict[str, Any]]:
    """The profile's price rules that apply to this version: a rule priced by a concept the
    version does not take (``mode`` on an app that has no ``mode``) is another version's; a
    rule's ``flags`` (``visual_input``) are facts of the request, not inputs."""
    def takes(name: str) -> bool:
        return name in version.properties or profile.input_name(name, version) is not None

    return [r for r in profile.price.get("rules", [])
            if all(b in r.get("flags", {}) or takes(b) for b in r.get("by", []))]


@click.group("apps")
def apps_group() -> None:
    """What the apps storyboard knows take: their inputs, defaults and storyboard's mapping."""


@apps_group.command("list")
def list_apps() -> None:
    """List the apps with a profile, and their known versions."""
    from storyboard import apps

    for name in apps.known_apps():
        p = apps.profile(name)
        if p is not None:
            click.echo(f"{name}  ({p.kind}; current {p.current}; known: {', '.join(sorted(p.versions))})")


@apps_group.command("show")
@click.argument("app")
@click.option("--live", is_flag=True, help="Read the app from inference.sh (needs INFERENCE_API_KEY).")
@click.option("--json", "as_json", is_flag=True, help="Print as one JSON document.")
def show(app: str, live: bool, as_json: bool) -> None:
    """Print APP's inputs, defaults and storyboard's concept mapping."""

    with errors():
        ref, profile = _profile(app)
        version = (read_live(ref, ", or leave out --live to read the bundled snapshot") if live
                   else profile.version(ref.version))
        if version is None:
            raise UsageError(f"{ref.name} has no bundled version '{ref.version}'; known: "
                             f"{', '.join(sorted(profile.versions))} (or use --live)")
        info = describe(profile, version)
        if as_json:
            click.echo(json.dumps(info, indent=2, default=str))
            return
        click.echo(f"{info['app']} — version {info['version']} ({info['source']})")
        width = max(len(i["input"]) for i in info["inputs"])
        for i in info["inputs"]:
            concept = f"  ← {i['concept']}" if i["concept"] else "  (raw: set it under inputs:)"
            default = "" if i["default"] is None else f"; default {json.dumps(i['default'])}"
            req = "; required" if i["required"] else ""
            click.echo(f"  {i['input']:<{width}}  {i['allowed']}{default}{req}{concept}")
        if info["storyboard_sends"]:
            sends = ", ".join(f"{k}: {json.dumps(v)}" for k, v in info["storyboard_sends"].items())
            click.echo(f"storyboard sends unless a shot says otherwise: {sends}")
        if info["concepts_not_in_this_version"]:
            click.echo("not in this version: " + ", ".join(info["concepts_not_in_this_version"]))
        unit = {"second": "/s", "request": " each", "1k_characters": "/1K characters",
                "video_tokens": "/M tokens", "tokens": "/M input tokens"}
        for rule in price_rules(profile, version):
            per = unit.get(str(rule.get("per", "second")), f" per {rule.get('per')}")
            if "output_rate" in rule:  # a text app: input and output tokens
                per += f", ${rule['output_rate']}/M output tokens"
            rates = ", ".join(f"{k.replace('|', '/') or 'all'} ${v}{per}" for k, v in rule.get("rates", {}).items())
            click.echo(f"price by {'/'.join(rule.get('by', [])) or 'request'}: {rates} (estimates)")
        note = f"; {profile.price['note']}" if profile.price.get("note") else ""
        click.echo(f"price source: {info['price_source']}{note}")


@apps_group.command("pull")
@click.argument("app")
def pull(app: str) -> None:
    """Save APP's live schema as the snapshot offline validation uses ($STORYBOARD_APPS)."""
    from storyboard import apps

    with errors():
        ref = _profile(app)[0]
        version = read_live(ref)
        path = apps.save_snapshot(version)
        click.echo(f"{ref.name}: saved version {version.version_id} to {path}; offline validation now uses it")
