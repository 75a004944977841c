"""The fake's text apps (anthropic/claude-*): answers derived from the request.

* no tools: a deterministic text made from the input (so a test can tell two apart);
* tools: a call of the first tool whose arguments satisfy its ``parameters`` (a JSON
  schema), built from the schema: required properties, enums' first values, minimums;
* a scripted sequence (``FakeInference.text_script``, consumed one per text task):
  each entry is ``{"arguments": {...}}`` (a tool call with these arguments),
  ``{"response": "..."}`` (a text answer, no tool call), or a callable of the input
  returning one of those — e.g. an invalid draft first, then a valid one.

Every answer reports ``usage`` (tokens at about four characters each, an image 1,600)
and ``output_meta`` like the real apps.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Script", "instance", "is_text_app", "text_output"]

Script = list[Mapping[str, Any] | Callable[[Mapping[str, Any]], Mapping[str, Any]]]
_IMAGE_TOKENS = 1600


def is_text_app(output_schema: Mapping[str, Any]) -> bool:
    """Whether an app answers text (its output schema has ``response``)."""
    return "response" in (output_schema.get("properties") or {})


def _tokens(text: str) -> int:
    return max(1, -(-len(text) // 4))


def instance(schema: Any, root: Mapping[str, Any] | None = None, depth: int = 0) -> Any:
    """A small value that satisfies ``schema`` (``$ref``s to ``$defs`` resolved)."""
    root = root if root is not None else schema
    if not isinstance(schema, Mapping) or depth > 12:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, Mapping) else {}
        return instance({**node, **{k: v for k, v in schema.items() if k != "$ref"}}, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        options = [o for o in schema.get(key, []) if not (isinstance(o, Mapping) and o.get("type") == "null")]
        if options:
            return instance(options[0], root, depth + 1)
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    kind = schema.get("type")
    kind = next((k for k in kind if k != "null"), None) if isinstance(kind, list) else kind
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {name: instance(props.get(name, {}), root, depth + 1) for name in schema.get("required", [])}
    if kind == "array":
        return [instance(schema.get("items", {}), root, depth + 1) for _ in range(int(schema.get("minItems", 1)))]
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0) + (1 if kind == "integer" else 0.5))
        return int(low) if kind == "integer" else float(low)
    if kind == "boolean":
        return False
    if schema.get("examples"):
        return schema["examples"][0]
    return "x" * max(1, int(schema.get("minLength", 4)))


def _derived(inputs: Mapping[str, Any]) -> dict[str, Any]:
    tools = inputs.get("tools") or []
    function = tools[0].get("function", tools[0]) if tools and isinstance(tools[0], Mapping) else None
    if isinstance(function, Mapping):
        return {"arguments": instance(function.get("parameters") or {"type": "object"})}
    text = str(inputs.get("text") or "").strip()
    tag = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:8]
    words = " ".join(text.split()[-8:])
    limit = int(inputs.get("max_tokens") or 64000) * 4
    return {"response": f"{words} ({tag})"[:limit]}


def text_output(inputs: Mapping[str, Any], script: Script) -> dict[str, Any]:
    """A text app's output for ``inputs``: the next scripted answer, else one derived."""
    entry = script.pop(0) if script else None
    answer = dict(entry(inputs) if callable(entry) else entry) if entry is not None else _derived(inputs)
    tools = inputs.get("tools") or []
    name = (tools[0].get("function", tools[0]).get("name", "tool")
            if tools and isinstance(tools[0], Mapping) else "tool")
    response = str(answer.get("response", ""))
    calls: list[dict[str, Any]] = []
    if "arguments" in answer:
        args = answer["arguments"]
        text_args = args if isinstance(args, str) else json.dumps(args)
        calls.append({"id": f"call_{hashlib.sha256(text_args.encode()).hexdigest()[:12]}", "type": "function",
                      "function": {"name": answer.get("name", name), "arguments": text_args}})
    read = sum(_tokens(json.dumps(inputs[k]) if k == "tools" else str(inputs[k]))
               for k in ("text", "system_prompt", "tools") if inputs.get(k))
    read += _IMAGE_TOKENS * len(inputs.get("images") or ())
    wrote = _tokens(response + "".join(c["function"]["arguments"] for c in calls))
    return {
        "response": response,
        "tool_calls": calls or None,
        "usage": {"prompt_tokens": read, "completion_tokens": wrote, "total_tokens": read + wrote,
                  "stop_reason": "tool_use" if calls else "end_turn"},
        "output_meta": {"inputs": [{"type": "text", "tokens": read}], "outputs": [{"type": "text", "tokens": wrote}]},
    }
