"""The studio: ``storyboard studio FILE``, a local page to watch a render, compare takes,
pick with a click and see an edit in seconds (docs/studio.md).

A face, like the CLI and the report: it renders through :class:`storyboard.runner.Pipeline`
(the same cache, journal, claims and budget as ``storyboard render``), picks through
``storyboard.takes`` and edits the YAML round-trip (ruamel.yaml). Needs the ``studio``
extra (starlette, uvicorn, ruamel.yaml); importing this package imports none of them.
"""

from __future__ import annotations

__all__ = ["command"]
