"""Smaller tool schemas: the same constraints in fewer tokens of every assistant's context."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def compact(schema: Any, *, omit_nulls: bool = False) -> Any:
    """An equivalent JSON schema without titles and null defaults, with `anyOf: [X, null]`
    folded into `type: [X, "null"]` where X is a plain type. With `omit_nulls` (for results,
    which leave None fields out), an optional property's null option is dropped."""
    if isinstance(schema, list):
        return [compact(item, omit_nulls=omit_nulls) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "default" and value is None:
            continue
        if key in ("properties", "$defs"):
            # These map names to schemas; a property called "title" must survive.
            required = set(schema.get("required", ())) if key == "properties" else set()
            out[key] = {
                name: compact(
                    _without_null(sub) if omit_nulls and name not in required else sub,
                    omit_nulls=omit_nulls,
                )
                for name, sub in value.items()
            }
        else:
            out[key] = compact(value, omit_nulls=omit_nulls)
    options = out.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        other = next(o for o in options if o != {"type": "null"})
        plain = isinstance(other.get("type"), str) and set(other) <= {"type", "items", "enum"}
        if plain:
            del out["anyOf"]
            out.update(other)
            out["type"] = [other["type"], "null"]
            if "enum" in other:
                out["enum"] = [*other["enum"], None]
    return out


def _without_null(schema: Any) -> Any:
    options = schema.get("anyOf") if isinstance(schema, dict) else None
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [o for o in options if o != {"type": "null"}]
        stripped = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
        return {**stripped, **rest[0]} if len(rest) == 1 else {**stripped, "anyOf": rest}
    return schema


def output_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A result model's schema as declared to clients: its top-level fields (None ones are
    left out of results, so optional means absent, not null), compacted. Nested records
    (messages, members, rooms) are declared as objects only: their fields are in the README,
    and spelling them out in every tool cost a fifth of the whole tool list."""
    schema = model.model_json_schema(mode="validation")
    schema.pop("$defs", None)
    shallow: dict[str, Any] = compact(_objects_for_refs(schema), omit_nulls=True)
    return shallow


def _objects_for_refs(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_objects_for_refs(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return {"type": "object"}
    return {key: _objects_for_refs(value) for key, value in schema.items()}
