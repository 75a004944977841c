"""Per-second prices of remote video apps, from ``storyboard/data/prices.json``.

Pure apart from reading the table once. Prices are :class:`~decimal.Decimal` (USD);
anything the table does not know is ``None`` — never zero — so a budget check can
tell "free" from "unknown".

The packaged table can be extended or corrected without a release: a JSON file of
the same shape, named by ``PriceTable.load(path)`` or the ``STORYBOARD_PRICES``
environment variable, is merged over it (per app, per mode).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from storyboard.errors import StoryboardError

__all__ = ["PRICES_ENV", "PriceTable", "PricedRequest"]

PRICES_ENV = "STORYBOARD_PRICES"

# mode -> {"sound": USD/s, "silent": USD/s}
_ModePrices = dict[str, dict[str, Decimal]]


class PricedRequest(Protocol):
    """The fields of a request a price depends on (``ShotRequest`` has them)."""

    @property
    def app(self) -> str: ...
    @property
    def mode(self) -> str | None: ...
    @property
    def sound(self) -> bool: ...
    @property
    def duration(self) -> int: ...


def _app_key(app: str) -> str:
    """``klingai/video-v3@abc1`` and ``klingai/video-v3`` share one price."""
    return app.split("@", 1)[0].strip().lower()


def _to_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() and number >= 0 else None


def _parse(raw: Mapping[str, Any], origin: str) -> dict[str, _ModePrices]:
    table: dict[str, _ModePrices] = {}
    for app, modes in raw.items():
        if app.startswith("_"):  # _source, _unit: documentation
            continue
        if not isinstance(modes, Mapping):
            raise StoryboardError(f"{origin}: prices for '{app}' must be an object of modes")
        parsed: _ModePrices = {}
        for mode, by_sound in modes.items():
            if not isinstance(by_sound, Mapping):
                raise StoryboardError(
                    f"{origin}: '{app}'.'{mode}' must be {{\"sound\": USD/s, \"silent\": USD/s}}"
                )
            prices: dict[str, Decimal] = {}
            for kind in ("sound", "silent"):
                if kind in by_sound:
                    price = _to_decimal(by_sound[kind])
                    if price is None:
                        raise StoryboardError(
                            f"{origin}: '{app}'.'{mode}'.'{kind}' must be a non-negative number"
                        )
                    prices[kind] = price
            parsed[str(mode)] = prices
        table[_app_key(app)] = parsed
    return table


def _read_json(path: Path) -> Mapping[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    except OSError as exc:
        raise StoryboardError(f"{path}: cannot read the price table ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise StoryboardError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc
    if not isinstance(data, Mapping):
        raise StoryboardError(f"{path}: the price table must be a JSON object")
    return data


class PriceTable:
    """USD per second by app, mode and sound."""

    def __init__(self, table: Mapping[str, Any] | None = None, *, source: str = "") -> None:
        self._table: dict[str, _ModePrices] = _parse(table or {}, source or "<prices>")
        self.source = source

    @classmethod
    def load(cls, path: str | Path | None = None) -> PriceTable:
        """The packaged table, with ``path`` (or ``$STORYBOARD_PRICES``) merged over it."""
        packaged = resources.files("storyboard").joinpath("data/prices.json")
        raw = json.loads(packaged.read_text(encoding="utf-8"), parse_float=Decimal)
        table = cls(raw, source=str(raw.get("_source", "storyboard/data/prices.json")))
        override = path if path is not None else os.environ.get(PRICES_ENV) or None
        if override is not None:
            override_path = Path(override)
            for app, modes in _parse(_read_json(override_path), str(override_path)).items():
                merged = table._table.setdefault(app, {})
                for mode, prices in modes.items():
                    merged.setdefault(mode, {}).update(prices)
        return table

    def per_second(self, app: str, mode: str, sound: bool) -> Decimal | None:
        """USD per second of output, or None when the table does not know."""
        modes = self._table.get(_app_key(app))
        if modes is None:
            return None
        prices = modes.get(mode)
        if prices is None:
            return None
        return prices.get("sound" if sound else "silent")

    def price(self, request: PricedRequest) -> Decimal | None:
        """USD for the whole request (per-second price × duration), or None."""
        rate = self.per_second(request.app, request.mode or "", request.sound)
        if rate is None:
            return None
        return rate * Decimal(int(request.duration))
