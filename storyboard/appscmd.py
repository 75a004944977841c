"""``storyboard apps``: what an app takes, offline from its snapshot or live from inference.sh."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from storyboard import apps
from storyboard.errors import AppError, UsageError


def _profile(name: str) -> tuple[apps.AppRef, apps.AppProfile]:
    ref = apps.parse_app_ref(name)
    profile = apps.profile(ref.name)
    if profile is None:
        raise AppError(f"unknown app '{ref.name}'; storyboard knows: {', '.join(apps.known_apps())}")
    return ref, profile


def read_live(ref: apps.AppRef) -> apps.AppVersion:
    """The app version inference.sh serves now (pinned: that version). Needs INFERENCE_API_KEY."""
    from storyboard.backends.inference import InferenceBackend

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
    by_input = {name: concept for concept, name in profile.concepts.items()}
    inputs = []
    for name, prop in version.properties.items():
        inputs.append({"input": name, "allowed": apps.allowed_text(prop), "default": prop.get("default"),
                       "required": name in version.required, "concept": by_input.get(name)})
    missing = [c for c, n in profile.concepts.items() if n not in version.properties]
    return {"app": profile.app, "version": version.version_id, "source": version.source or "bundled snapshot",
            "kind": profile.kind, "inputs": inputs, "concepts_not_in_this_version": missing,
            "storyboard_sends": dict(profile.storyboard_defaults), "mode_tiers": dict(profile.mode_tiers),
            "price": dict(profile.price), "versions": sorted(profile.versions)}


@click.group("apps")
def apps_group() -> None:
    """What the apps storyboard knows take: their inputs, defaults and storyboard's mapping."""


@apps_group.command("list")
def list_apps() -> None:
    """List the apps with a profile, and their known versions."""
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
    from storyboard.cli import _errors

    with _errors():
        ref, profile = _profile(app)
        version = read_live(ref) if live else profile.version(ref.version)
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
        for rule in profile.price.get("rules", []):
            rates = ", ".join(f"{k.replace('|', '/')} ${v}/s" for k, v in rule.get("rates", {}).items())
            click.echo(f"price by {'/'.join(rule.get('by', []))}: {rates} (estimates)")
        tokens = profile.price.get("tokens")
        if isinstance(tokens, dict):  # a text app (storyboard.apps._price.token_price)
            click.echo(f"price: ${tokens.get('input_per_million')}/M input tokens, "
                       f"${tokens.get('output_per_million')}/M output tokens ({profile.price.get('price_source')})")


@apps_group.command("pull")
@click.argument("app")
def pull(app: str) -> None:
    """Save APP's live schema as the snapshot offline validation uses ($STORYBOARD_APPS)."""
    from storyboard.cli import _errors

    with _errors():
        ref = _profile(app)[0]
        version = read_live(ref)
        path = apps.save_snapshot(version)
        click.echo(f"{ref.name}: saved version {version.version_id} to {path}; offline validation now uses it")
