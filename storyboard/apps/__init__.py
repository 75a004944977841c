"""App profiles: each inference.sh app's schemas (bundled snapshots), the mapping from
storyboard concepts to its input names, and its price rule. Data plus pure functions.

Adding an app is adding a folder under ``data/`` (``profile.json`` and
``versions/<version id>.json``), not code.
"""

from storyboard.apps._check import InputProblem, allowed_text, check_inputs
from storyboard.apps._inputs import (
    FILE_CONCEPTS,
    AppInputs,
    ConceptProblem,
    app_inputs,
    concept_word,
)
from storyboard.apps._price import PRICES_ENV, price, rate, text_tokens_estimate, token_price
from storyboard.apps._profile import (
    APPS_ENV,
    CONCEPTS,
    AppProfile,
    AppRef,
    AppVersion,
    app_from_api,
    known_apps,
    parse_app_ref,
    profile,
    save_snapshot,
)

__all__ = [
    "APPS_ENV",
    "CONCEPTS",
    "FILE_CONCEPTS",
    "PRICES_ENV",
    "AppInputs",
    "AppProfile",
    "AppRef",
    "AppVersion",
    "ConceptProblem",
    "InputProblem",
    "allowed_text",
    "app_from_api",
    "app_inputs",
    "check_inputs",
    "concept_word",
    "known_apps",
    "parse_app_ref",
    "price",
    "profile",
    "rate",
    "save_snapshot",
    "text_tokens_estimate",
    "token_price",
]
