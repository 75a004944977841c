"""App profiles: each inference.sh app's schemas (bundled snapshots), the mapping from
storyboard concepts to its input names, and its price rule. Data plus pure functions.

Adding an app is adding a folder under ``data/`` (``profile.json`` and
``versions/<version id>.json``), not code.
"""

from storyboard.apps._check import InputProblem, allowed_text, check_inputs, unchecked_keywords
from storyboard.apps._inputs import (
    FILE_CONCEPTS,
    AppInputs,
    ConceptProblem,
    app_inputs,
    concept_word,
)
from storyboard.apps._price import (
    BILLED_CHARACTERS,
    BILLED_INPUT_TOKENS,
    BILLED_OUTPUT_TOKENS,
    BILLED_SIZE,
    BILLED_TOKENS,
    PRICES_ENV,
    Quote,
    price,
    price_source,
    quote,
    rate,
    register_kind,
    text_tokens_estimate,
)
from storyboard.apps._profile import (
    APPS_ENV,
    CONCEPTS,
    AppProfile,
    AppRef,
    AppVersion,
    app_from_api,
    app_name,
    known_apps,
    parse_app_ref,
    pinned_version,
    profile,
    save_snapshot,
)

__all__ = [
    "APPS_ENV",
    "BILLED_CHARACTERS",
    "BILLED_INPUT_TOKENS",
    "BILLED_OUTPUT_TOKENS",
    "BILLED_SIZE",
    "BILLED_TOKENS",
    "CONCEPTS",
    "FILE_CONCEPTS",
    "PRICES_ENV",
    "AppInputs",
    "AppProfile",
    "AppRef",
    "AppVersion",
    "ConceptProblem",
    "InputProblem",
    "Quote",
    "allowed_text",
    "app_from_api",
    "app_inputs",
    "app_name",
    "check_inputs",
    "concept_word",
    "known_apps",
    "parse_app_ref",
    "pinned_version",
    "price",
    "price_source",
    "profile",
    "quote",
    "rate",
    "register_kind",
    "save_snapshot",
    "text_tokens_estimate",
    "unchecked_keywords",
]
