"""Price estimates from an app profile's price rule, over the inputs actually sent.

Every price rule is data in ``profile.json`` (``price``), copied from the app's published
price file, which ``price.source`` names (``bytedance/seedance-2-0/PRICING.md``). A rule's
``per`` says what it counts; each kind is one function in ``_KINDS``:

* ``second`` (default): a rate per second of the ``of`` input (``duration``);
* ``request``: a rate per request, times the ``times`` input (klingai/image-v3's ``n``);
* ``1k_characters``: a rate per 1,000 characters of the ``of`` input (ElevenLabs);
* ``tokens``: a text app's rate per million input tokens and ``output_rate`` per million
  output tokens: the tokens its ``usage`` reports, else estimated before the call (its
  text at about four characters a token, each image at most ``IMAGE_TOKENS``, every
  ``max_tokens`` written);
* ``video_tokens``: BytePlus' token formula, ``w·h·(fps·s + extra_frames)/1024`` tokens,
  with ``w×h`` from ``sizes`` by resolution and aspect, priced per million tokens;
* ``cel``: the app's own published price expression, evaluated with ``cel-python`` over
  ``inputs`` (a one-element list), ``outputs`` (estimated: the requested seconds) and
  ``prices`` (its variables).

A rule's ``rates`` are keyed by the ``by`` facts (``720p|true``): input values, the
schema's default where the input is unset, and ``flags`` (``visual_input``: whether any
of the named file inputs is sent). ``files`` maps each file input sent to its count.

Prices are estimates (Decimal USD), ``None`` when unknown: an app whose file has no
figure has no rule, never a guess, never zero. ``$STORYBOARD_PRICES`` names a JSON file
``{"app": {rule}}`` whose rules are tried first; a rule there that does not evaluate is
an AppError naming the file, line and app. cel-python is the optional extra
``storyboard-film[cel]``: without it a CEL price is unknown, and the tier says how to get it.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from storyboard.apps._profile import AppProfile, AppVersion
from storyboard.errors import AppError

PRICES_ENV = "STORYBOARD_PRICES"
NO_CEL = "the app's price expression needs the cel extra: pip install 'storyboard-film[cel]'"
UNKNOWN = "no price known"
# Facts a finished task reports (its ``output_meta``), given to a rule beside the inputs
BILLED_TOKENS, BILLED_SIZE, BILLED_CHARACTERS = "billed:tokens", "billed:size", "billed:characters"
BILLED_INPUT_TOKENS, BILLED_OUTPUT_TOKENS = "billed:input_tokens", "billed:output_tokens"  # a text app's usage
CHARS_PER_TOKEN = 4  # the estimate before a text call: about four characters a token
IMAGE_TOKENS = 1600  # an image sent to a vision model, at most (about 1.15 megapixels)


@dataclass(frozen=True)
class Quote:
    """One request's price: USD (None when unknown), where it comes from, and how it was found."""

    usd: Decimal | None
    source: str  # "bytedance/seedance-2-0/PRICING.md", "$STORYBOARD_PRICES (prices.json)" or "none"
    detail: str = ""  # "108900 tokens at $7.0/M (resolution 720p, visual_input false)"
    rate: Decimal | None = None  # USD per second, where the price is per second of video
    tier: str = UNKNOWN  # the facts that set the rate ("resolution 720p, sound true")


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


# ------------------------------------------------------------------ $STORYBOARD_PRICES


@functools.lru_cache(maxsize=8)
def _overrides(path: str) -> tuple[dict[str, Any], str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text)
    except OSError as e:
        raise AppError(f"{path}: cannot read the price file ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise AppError(f"{path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    if not isinstance(data, dict):
        raise AppError(f"{path}: the price file must be a JSON object of apps")
    return data, text


def _where(path: str, text: str, app: str) -> str:
    """``FILE:LINE:COL`` of the app's key in the price file (its start when not found)."""
    at = text.find(json.dumps(app))
    if at < 0:
        return f"{path}:1:1"
    line = text.count("\n", 0, at) + 1
    return f"{path}:{line}:{at - (text.rfind(chr(10), 0, at) + 1) + 1}"


def _override(profile: AppProfile) -> tuple[Mapping[str, Any], str] | None:
    path = os.environ.get(PRICES_ENV)
    if not path:
        return None
    data, text = _overrides(path)
    rule = data.get(profile.app)
    if rule is None:
        return None
    where = _where(path, text, profile.app)
    if not isinstance(rule, Mapping):
        raise AppError(f"{where}: the price of {profile.app} must be a rule object, e.g. "
                       '{"by": ["resolution"], "rates": {"720p": "0.1"}} or {"cel": "…", "prices": {…}}')
    return rule, where


def _check_override(rule: Mapping[str, Any], where: str, app: str) -> None:
    """A $STORYBOARD_PRICES rule must evaluate: a known kind, numeric rates, CEL that parses."""
    kind = "cel" if "cel" in rule else str(rule.get("per", "second"))
    if kind not in _KINDS and kind != "cel":
        raise AppError(f"{where}: {app}: 'per: {kind}' is not a price kind; allowed: {', '.join(sorted(_KINDS))}, "
                       "or a 'cel' expression")
    if kind == "cel":
        if cel_available():
            try:
                _compile(str(rule["cel"]))
            except Exception as e:  # celpy raises its own parse errors
                raise AppError(f"{where}: {app}: the price expression does not compile ({_first_line(e)})") from None
        return
    rates = rule.get("rates")
    if not isinstance(rates, Mapping) or not rates:
        raise AppError(f"{where}: {app}: a price rule needs 'rates' (e.g. {{\"720p\": \"0.1\"}}, or {{\"\": \"0.1\"}} "
                       "with 'by': [])")
    for tier, value in rates.items():
        if _decimal(value) is None:
            raise AppError(f"{where}: {app}: rate '{tier}' is {value!r}, not a price in USD (a number ≥ 0)")
    by = rule.get("by", [])
    if not isinstance(by, list) or any(not isinstance(b, str) for b in by):
        raise AppError(f"{where}: {app}: 'by' must be a list of input names")


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


# ------------------------------------------------------------------ facts and kinds


def _facts(version: AppVersion | None, rule: Mapping[str, Any], inputs: Mapping[str, Any],
           files: Mapping[str, int]) -> dict[str, Any]:
    facts = dict(inputs)
    for name in [*rule.get("by", []), *([rule["times"]] if rule.get("times") else [])]:
        if name not in facts and version is not None and version.default(name) is not None:
            facts[name] = version.default(name)
    for flag, names in dict(rule.get("flags", {})).items():
        facts[flag] = any(files.get(n) for n in names)
    return facts


def _tier(rule: Mapping[str, Any], facts: Mapping[str, Any]) -> tuple[Decimal | None, str] | None:
    """The rate for these facts and the tier text, or None when this rule does not price them."""
    by = list(rule.get("by", []))
    if not all(b in facts for b in by):
        return None
    key = "|".join(_text(facts[b]) for b in by)
    rates = rule.get("rates", {})
    if key not in rates:  # this rule does not price this tier: the next rule may
        return None
    return _decimal(rates[key]), ", ".join(f"{b} {_text(facts[b])}" for b in by)


Priced = tuple[Decimal | None, str, Decimal | None]  # USD, detail, USD per second (if per second)
Kind = Callable[[Mapping[str, Any], Mapping[str, Any], Decimal, str], Priced]


def _per_second(rule: Mapping[str, Any], facts: Mapping[str, Any], rate: Decimal, tier: str) -> Priced:
    seconds = _decimal(facts.get(str(rule.get("of") or rule.get("per_second_of") or "duration")))
    if seconds is None:
        return None, f"${rate}/s; the length is unknown", rate
    return rate * seconds, f"{seconds:g} s at ${rate}/s", rate


def _per_request(rule: Mapping[str, Any], facts: Mapping[str, Any], rate: Decimal, tier: str) -> Priced:
    times = rule.get("times")
    count = _decimal(facts.get(str(times), 1)) if times else Decimal(1)
    if count is None:
        return None, f"${rate} each; how many is unknown", None
    return rate * count, f"{count:g} × ${rate}", None


def _per_1k_characters(rule: Mapping[str, Any], facts: Mapping[str, Any], rate: Decimal, tier: str) -> Priced:
    text = facts.get(str(rule.get("of", "text")))
    count = facts.get(BILLED_CHARACTERS, len(text) if isinstance(text, str) else None)
    if not isinstance(count, int):
        return None, f"${rate} per 1K characters; the text is unknown", None
    return rate * count / 1000, f"{count} characters at ${rate}/1K", None


def _video_tokens(rule: Mapping[str, Any], facts: Mapping[str, Any], rate: Decimal, tier: str) -> Priced:
    seconds = _decimal(facts.get(str(rule.get("of", "duration"))))
    billed = _decimal(facts.get(BILLED_TOKENS))  # what the task reports it used, where it does
    if billed is not None:
        usd = billed * rate / 1_000_000
        return usd, f"{billed} tokens (reported) at ${rate}/M", usd / seconds if seconds else None
    size_key = "|".join(_text(facts.get(b)) for b in rule.get("size_by", []))
    size = facts.get(BILLED_SIZE) or dict(rule.get("sizes", {})).get(size_key)
    if size is None or seconds is None or seconds <= 0:
        what = f"the frame size of {size_key.replace('|', ' ')}" if size is None else "the length"
        return None, f"${rate}/M tokens; {what} is unknown", None
    width, height = (int(x) for x in size)
    frames = Decimal(int(rule.get("fps", 24))) * seconds + Decimal(int(rule.get("extra_frames", 0)))
    tokens = (Decimal(width * height) * frames / 1024).to_integral_value(rounding="ROUND_FLOOR")
    usd = tokens * rate / 1_000_000
    return usd, f"{tokens} tokens ({width}×{height}, {frames:g} frames) at ${rate}/M", usd / seconds


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


def _per_tokens(rule: Mapping[str, Any], facts: Mapping[str, Any], rate: Decimal, tier: str) -> Priced:
    out_rate = _decimal(rule.get("output_rate"))
    if out_rate is None:
        return None, f"${rate}/M input tokens; no output rate", None
    read, wrote = facts.get(BILLED_INPUT_TOKENS), facts.get(BILLED_OUTPUT_TOKENS)
    how = "reported"
    if not isinstance(read, int) or not isinstance(wrote, int):
        (read, wrote), how = text_tokens_estimate(facts), "estimated"
    usd = (rate * read + out_rate * wrote) / 1_000_000
    return usd, f"{read} input tokens at ${rate}/M + {wrote} output tokens at ${out_rate}/M ({how})", None


_KINDS: dict[str, Kind] = {
    "second": _per_second,
    "request": _per_request,
    "1k_characters": _per_1k_characters,
    "video_tokens": _video_tokens,
    "tokens": _per_tokens,
}


def register_kind(name: str, kind: Kind) -> None:
    """Add a price kind (``per: name`` in a rule): the rate for the tier, the facts → USD."""
    _KINDS[name] = kind


# ------------------------------------------------------------------ quotes


def price_source(profile: AppProfile) -> str:
    """Where this app's price comes from: $STORYBOARD_PRICES, the published file, or "none"."""
    found = _override(profile)
    if found is not None:
        return f"${PRICES_ENV} ({found[1]})"
    return str(profile.price.get("source") or "none")


def quote(profile: AppProfile, inputs: Mapping[str, Any], files: Mapping[str, int] | None = None,
          version: AppVersion | None = None) -> Quote:
    """The price of one request with these inputs (and these file inputs sent), with its source.

    ``version``: the app version the inputs are for; an input it defaults that the inputs
    leave unset (ElevenLabs' ``model``) prices at that default."""
    sent = dict(files or {})
    found = _override(profile)
    if found is not None:
        rule, where = found
        _check_override(rule, where, profile.app)
        got = _apply(version, rule, inputs, sent, f"{where}: {profile.app}")
        if got is not None:
            return Quote(got[0], f"${PRICES_ENV} ({where})", got[1], got[2], got[3])
    published = str(profile.price.get("source") or "none")
    for rule in _published(profile):
        got = _apply(version, rule, inputs, sent, profile.app)
        if got is not None:
            return Quote(got[0], published, got[1], got[2], got[3])
    note = str(profile.price.get("note") or f"{profile.app} publishes no price")
    return Quote(None, published, note)


def _published(profile: AppProfile) -> list[Mapping[str, Any]]:
    price = profile.price
    rules: list[Mapping[str, Any]] = [
        {**r, "per_second_of": r.get("per_second_of", price.get("per_second_of"))} for r in price.get("rules", [])
    ]
    if "cel" in price:
        rules.append(price)
    return rules


def _apply(version: AppVersion | None, rule: Mapping[str, Any], inputs: Mapping[str, Any], files: Mapping[str, int],
           where: str) -> tuple[Decimal | None, str, Decimal | None, str] | None:
    """(USD, detail, USD/s, tier) by this rule; None when the rule does not price these inputs."""
    if "cel" in rule:
        if not cel_available():
            return None, NO_CEL, None, NO_CEL
        seconds = _decimal(inputs.get(str(rule.get("per_second_of", "duration"))))
        total = _cel_price(where, rule, inputs)
        per = None if total is None or not seconds else total / seconds
        return total, "the app's price expression", per, "app's price expression"
    facts = _facts(version, rule, inputs, files)
    found = _tier(rule, facts)
    if found is None:
        return None
    rate, tier = found
    if rate is None:
        return None, f"no rate for {tier}", None, tier
    usd, detail, per = _KINDS[str(rule.get("per", "second"))](rule, facts, rate, tier)
    extra = _surcharge(rule, files)
    if usd is not None and extra:
        usd, detail = usd + extra[0], f"{detail} + {extra[1]}"
    return usd, detail + (f" ({tier})" if tier else ""), per, tier


def _surcharge(rule: Mapping[str, Any], files: Mapping[str, int]) -> tuple[Decimal, str] | None:
    """Files beyond the free ones, each at a price (MiniMax h3: 5 images free, then $0.04 each)."""
    extra = rule.get("per_file_over")
    if not isinstance(extra, Mapping):
        return None
    count = sum(files.get(n, 0) for n in extra.get("of", []))
    over = max(0, count - int(extra.get("free", 0)))
    each = _decimal(extra.get("each")) or Decimal(0)
    return (each * over, f"{over} more file(s) at ${each}") if over else None


def rate(profile: AppProfile, inputs: Mapping[str, Any], files: Mapping[str, int] | None = None,
         version: AppVersion | None = None) -> tuple[Decimal | None, str]:
    """USD per second for these inputs, and the tier that set it (``resolution 4k, sound true``)."""
    q = quote(profile, inputs, files, version)
    return q.rate, q.tier


def price(profile: AppProfile, inputs: Mapping[str, Any], files: Mapping[str, int] | None = None,
          version: AppVersion | None = None) -> Decimal | None:
    """USD for one request with these inputs (an estimate), or None when unknown."""
    return quote(profile, inputs, files, version).usd


# ------------------------------------------------------------------ CEL


def _cel_price(where: str, rule: Mapping[str, Any], inputs: Mapping[str, Any]) -> Decimal | None:
    if not cel_available():
        return None
    seconds = inputs.get(str(rule.get("per_second_of", "duration")))
    key = json.dumps([where, rule.get("cel"), rule.get("prices"), dict(inputs), seconds], sort_keys=True,
                     default=str)
    return _cel_cached(key)


@functools.lru_cache(maxsize=4096)
def _cel_cached(key: str) -> Decimal | None:
    where, expression, prices, inputs, seconds = json.loads(key)
    prices = prices or {}
    program = _compile(str(expression))
    from celpy.adapter import json_to_cel  # deferred: cel-python takes ~0.5 s to import

    estimated = _decimal(seconds)  # the requested length ("5" where an app takes durations as text)
    outputs = [{"seconds": float(estimated) if estimated is not None else 0.0, "type": "video"}]
    activation = {"inputs": json_to_cel([inputs]), "outputs": json_to_cel(outputs),
                  "prices": json_to_cel(dict(prices.get("variables", {})))}
    try:
        value = program.evaluate(activation)
        number = _decimal(float(value))
    except Exception as e:  # a CEL evaluation error names the expression, never crashes a plan
        raise AppError(f"{where}: its price expression failed ({_first_line(e)})") from None
    scale = _decimal(prices.get("per_usd", 1)) or Decimal(1)
    return None if number is None else number / scale


@functools.lru_cache(maxsize=32)
def _compile(expression: str) -> Any:
    import celpy

    env = celpy.Environment()
    return env.program(env.compile(expression))
