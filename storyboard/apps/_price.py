"""Price estimates from an app profile's price rule, over the inputs actually sent.

Two kinds of rule, both data in ``profile.json``:

* ``rules``: per-second rates keyed by the inputs that set the price (for
  klingai/video-v3 today: resolution and sound), times the ``per_second_of`` input;
* ``cel``: the app's own published price expression (``PRICING.md``), evaluated with
  ``cel-python`` over ``inputs`` (a one-element list, as in inference.sh's pricing),
  ``outputs`` (estimated: the requested seconds) and ``prices`` (its variables).

Prices are estimates (Decimal USD), ``None`` when unknown — never zero for unknown.
``$STORYBOARD_PRICES`` names a JSON file ``{"app": {rule}}`` whose rules are tried first.
cel-python is the optional extra ``storyboard[cel]``: without it a CEL price is unknown
(never zero), and the tier says how to get it.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from storyboard.apps._profile import AppProfile
from storyboard.errors import AppError

PRICES_ENV = "STORYBOARD_PRICES"
NO_CEL = "the app's price expression needs the cel extra: pip install 'storyboard[cel]'"


@functools.lru_cache(maxsize=1)
def cel_available() -> bool:
    """Whether cel-python (the ``cel`` extra) is installed, to evaluate CEL price rules."""
    import importlib.util

    return importlib.util.find_spec("celpy") is not None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() and d >= 0 else None


@functools.lru_cache(maxsize=8)
def _overrides(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise AppError(f"{path}: cannot read the price file ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise AppError(f"{path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    if not isinstance(data, dict):
        raise AppError(f"{path}: the price file must be a JSON object of apps")
    return data


def _rules(profile: AppProfile) -> list[Mapping[str, Any]]:
    rules: list[Mapping[str, Any]] = []
    override = os.environ.get(PRICES_ENV)
    if override:
        extra = _overrides(override).get(profile.app)
        if isinstance(extra, Mapping):
            rules.append(extra)
    price = profile.price
    rules.extend({**r, "per_second_of": r.get("per_second_of", price.get("per_second_of"))}
                 for r in price.get("rules", []))
    if "cel" in price:
        rules.append(price)
    return rules


def _table_rate(rule: Mapping[str, Any], inputs: Mapping[str, Any]) -> tuple[Decimal | None, str] | None:
    by = list(rule.get("by", []))
    if not all(b in inputs for b in by):
        return None
    tier = "|".join(_text(inputs[b]) for b in by)
    rates = rule.get("rates", {})
    if tier not in rates:  # this rule does not price this tier: the next rule may
        return None
    return _decimal(rates[tier]), ", ".join(f"{b} {_text(inputs[b])}" for b in by)


def rate(profile: AppProfile, inputs: Mapping[str, Any]) -> tuple[Decimal | None, str]:
    """USD per second for these inputs, and the tier that set it (``resolution 4k, sound true``)."""
    for rule in _rules(profile):
        if "cel" in rule:
            if not cel_available():
                return None, NO_CEL
            seconds = inputs.get(str(rule.get("per_second_of", "duration")))
            total = _cel_price(profile.app, rule, inputs)
            sec = _decimal(seconds)
            return (None if total is None or not sec else total / sec), "app's price expression"
        found = _table_rate(rule, inputs)
        if found is not None:
            return found
    return None, "no price known"


def price(profile: AppProfile, inputs: Mapping[str, Any]) -> Decimal | None:
    """USD for one request with these inputs (an estimate), or None when unknown."""
    for rule in _rules(profile):
        if "cel" in rule:
            return _cel_price(profile.app, rule, inputs)
        found = _table_rate(rule, inputs)
        if found is not None:
            per, _tier = found
            if rule.get("per") == "request":
                return per
            seconds = _decimal(inputs.get(str(rule.get("per_second_of") or "duration")))
            if per is None or seconds is None:
                return None
            return per * seconds
    return None


def _cel_price(app: str, rule: Mapping[str, Any], inputs: Mapping[str, Any]) -> Decimal | None:
    if not cel_available():
        return None
    seconds = inputs.get(str(rule.get("per_second_of", "duration")))
    key = json.dumps([app, rule.get("cel"), rule.get("prices"), dict(inputs), seconds], sort_keys=True, default=str)
    return _cel_cached(key)


@functools.lru_cache(maxsize=4096)
def _cel_cached(key: str) -> Decimal | None:
    app, expression, prices, inputs, seconds = json.loads(key)
    program = _compile(str(expression))
    from celpy.adapter import json_to_cel  # deferred: cel-python takes ~0.5 s to import

    estimated = _decimal(seconds)  # the requested length ("5" where an app takes durations as text)
    outputs = [{"seconds": float(estimated) if estimated is not None else 0.0, "type": "video"}]
    activation = {"inputs": json_to_cel([inputs]), "outputs": json_to_cel(outputs),
                  "prices": json_to_cel(dict(prices.get("variables", {})))}
    try:
        value = program.evaluate(activation)
    except Exception as e:  # a CEL evaluation error names the expression, never crashes a plan
        raise AppError(f"{app}: its price expression failed ({e})") from None
    scale = _decimal(prices.get("per_usd", 1)) or Decimal(1)
    number = _decimal(float(value))
    return None if number is None else number / scale


@functools.lru_cache(maxsize=32)
def _compile(expression: str) -> Any:
    import celpy

    env = celpy.Environment()
    return env.program(env.compile(expression))


# ---------------------------------------------------------------- text apps (per token)

CHARS_PER_TOKEN = 4  # the estimate before a text call: about four characters a token
IMAGE_TOKENS = 1600  # an image sent to a vision model, at most (about 1.15 megapixels)


def token_price(profile: AppProfile, input_tokens: int, output_tokens: int) -> Decimal | None:
    """USD for a text app's call that read ``input_tokens`` and wrote ``output_tokens``
    (the profile's ``price.tokens``: per million input and output tokens), or None."""
    rule = profile.price.get("tokens")
    if not isinstance(rule, Mapping):
        return None
    per_in, per_out = _decimal(rule.get("input_per_million")), _decimal(rule.get("output_per_million"))
    if per_in is None or per_out is None:
        return None
    return (per_in * input_tokens + per_out * output_tokens) / Decimal(1_000_000)


def text_tokens_estimate(inputs: Mapping[str, Any]) -> tuple[int, int]:
    """(input, output) tokens a text call is estimated to use before it is made: its text,
    system prompt and tools at about four characters a token, each image at most
    ``IMAGE_TOKENS``, and every ``max_tokens`` it may write."""
    chars = sum(len(json.dumps(inputs[k])) if k == "tools" else len(str(inputs[k]))
                for k in ("text", "system_prompt", "tools") if inputs.get(k))
    images = len(inputs.get("images") or ())
    written = inputs.get("max_tokens")
    out = written if isinstance(written, int) and not isinstance(written, bool) else 0
    return -(-chars // CHARS_PER_TOKEN) + images * IMAGE_TOKENS, out
