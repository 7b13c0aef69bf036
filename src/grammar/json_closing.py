"""Closing the objects of a JSON schema before it becomes a grammar.

The engine does this for every `json_schema` and structural-tag schema it is given, unless
`SamplingParams.json_extra_keys` is set (`GrammarSpec.from_sampling_params`); the OpenAI
routes also close under `strict`. A grammar built with `GrammarSpec.json_schema` directly
follows the schema as written.

Default (as xgrammar-backed servers and llama.cpp do): an object schema that lists
`properties` and says nothing about extra keys (`additionalProperties`, `patternProperties`,
`unevaluatedProperties`) takes no undeclared keys, so the model cannot invent keys. An object
without `properties` (`{"type": "object"}`, json_object mode) stays open; a schema that
allows extra keys keeps them.

`strict: true` (response_format.json_schema.strict, tools' function.strict), as OpenAI
enforces it: every object is closed, `properties` or not, and every property is required.

Schemas under `allOf` (and objects combining their own keys with `allOf`) are left as they
are: closing each part would refuse the keys the other parts declare. So is an object that
needs keys it does not declare (`required` names beyond `properties`, or a `minProperties`
above their count): closed, it would admit nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

_EXTRA_KEYS = ("additionalProperties", "patternProperties", "unevaluatedProperties")
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "dependentSchemas", "patternProperties")
_SUBSCHEMAS = ("items", "additionalItems", "contains", "not", "if", "then", "else",
               "additionalProperties", "propertyNames", "unevaluatedItems")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "prefixItems")


def close_schema(schema: Any, strict: bool = False) -> Any:
    """A copy of `schema` with its objects closed (see the module docstring); the input is
    not modified. Non-dict schemas (`true`, `false`) come back as they are."""
    out = copy.deepcopy(schema)
    _close(out, strict)
    return out


def close_tag(tag: Any, strict: Sequence[bool] = ()) -> Any:
    """A copy of a structural tag with each structure's schema closed by `close_schema`,
    structure i under `strict[i]` (False past the list); anything else comes back as it is."""
    if not isinstance(tag, dict) or not isinstance(tag.get("structures"), list):
        return tag
    flags = list(strict) + [False] * len(tag["structures"])
    return {**tag, "structures": [
        {**s, "schema": close_schema(s["schema"], flags[i])}
        if isinstance(s, dict) and "schema" in s else s
        for i, s in enumerate(tag["structures"])]}


def _is_object(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    return kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in node


def _needs_undeclared(node: dict[str, Any]) -> bool:
    declared = node.get("properties")
    declared = declared if isinstance(declared, dict) else {}
    required = node.get("required")
    if isinstance(required, list) and any(name not in declared for name in required):
        return True
    least = node.get("minProperties")
    return isinstance(least, int) and least > len(declared)


def _close(node: Any, strict: bool) -> None:
    if not isinstance(node, dict):
        return
    if _is_object(node) and "allOf" not in node and not any(k in node for k in _EXTRA_KEYS) \
            and not _needs_undeclared(node):
        if strict or "properties" in node:
            node["additionalProperties"] = False
    if strict and isinstance(node.get("properties"), dict):
        extra = [r for r in node.get("required") or () if r not in node["properties"]]
        node["required"] = list(node["properties"]) + extra
    for key in _SUBSCHEMA_MAPS:
        if isinstance(node.get(key), dict):
            for sub in node[key].values():
                _close(sub, strict)
    for key in _SUBSCHEMAS:
        _close(node.get(key), strict)
    for key in _SUBSCHEMA_LISTS:
        if isinstance(node.get(key), list):
            for sub in node[key]:
                _close(sub, strict)
