"""`$ref` resolution inside one schema document (draft 2020-12 rules, no network).

The document is walked once through schema positions only (so an `$id` inside an `enum`
value is not mistaken for an identifier). Every `$id` (resolved against its parent's base
URI) becomes a resource, every `$anchor` a named location. A reference resolves against the
base URI of the schema that holds it, then by resource URI plus a JSON pointer or an anchor
fragment. A reference to anything outside the document raises
`UnsupportedSchemaError("$ref", ...)`: remote schemas are not fetched.
"""

from __future__ import annotations

from urllib.parse import unquote, urldefrag, urljoin

from .errors import GrammarError, UnsupportedSchemaError

ROOT_URI = "https://tines.invalid/root.json"  # base of a document without $id

_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_ONE = ("items", "additionalProperties", "additionalItems", "not", "contains",
               "propertyNames", "if", "then", "else", "unevaluatedProperties",
               "unevaluatedItems", "contentSchema")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems", "items")


def join(base: str, ref: str) -> str:
    """Resolve `ref` against `base` (RFC 3986; fragment-only references keep any base,
    including URNs, which `urljoin` does not resolve)."""
    if ref.startswith("#"):
        return urldefrag(base)[0] + ref
    return urljoin(base, ref)


def subschemas(schema: dict, pointer: str):
    """(child schema, child pointer) for every schema-valued keyword of `schema`."""
    for key in _SCHEMA_MAPS:
        value = schema.get(key)
        if isinstance(value, dict):
            for name, sub in value.items():
                yield sub, f"{pointer}/{key}/{_escape(name)}"
    for key in _SCHEMA_ONE:
        if key in schema and isinstance(schema[key], (dict, bool)):
            yield schema[key], f"{pointer}/{key}"
    for key in _SCHEMA_LISTS:
        value = schema.get(key)
        if isinstance(value, list):
            for i, sub in enumerate(value):
                yield sub, f"{pointer}/{key}/{i}"


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


class SchemaIndex:
    """Resources (`$id`) and anchors of one document."""

    def __init__(self, root):
        self.resources: dict[str, object] = {}
        self.anchors: dict[tuple[str, str], tuple[object, str]] = {}
        self.bases: dict[int, str] = {}  # id(schema dict) -> base URI of that schema
        self._direct: dict[tuple[int, str], frozenset[str]] = {}
        self._reach: dict[tuple[int, str], frozenset[str]] = {}
        self._targets: dict[str, tuple[object, str]] = {}  # ref key -> (target, its base)
        self._walk(root, ROOT_URI, "")
        self.resources.setdefault(ROOT_URI, root)

    def _walk(self, schema, base: str, pointer: str) -> None:
        if not isinstance(schema, dict):
            return
        sid = schema.get("$id")
        if isinstance(sid, str):
            base = urldefrag(join(base, sid))[0]
            self.resources[base] = schema
        elif pointer == "":
            self.resources[base] = schema
        self.bases[id(schema)] = base
        anchor = schema.get("$anchor")
        if isinstance(anchor, str):
            self.anchors[(base, anchor)] = (schema, base)
        for sub, ptr in subschemas(schema, pointer):
            self._walk(sub, base, ptr)

    def base_of(self, schema, default: str) -> str:
        return self.bases.get(id(schema), default) if isinstance(schema, dict) else default

    def resolve(self, ref: str, base: str, pointer: str) -> tuple[object, str, str]:
        """(target schema, its base URI, a stable key for recursion counting)."""
        uri = join(base, ref)
        doc, frag = urldefrag(uri)
        resource = self.resources.get(doc)
        if resource is None:
            raise UnsupportedSchemaError("$ref", pointer, f"cannot resolve {ref!r} (remote or "
                                         "unknown references are not fetched)")
        if not frag:
            return resource, doc, doc + "#"
        if frag.startswith("/"):
            target = resource
            for part in frag[1:].split("/"):
                part = unquote(part).replace("~1", "/").replace("~0", "~")
                if isinstance(target, list):
                    try:
                        target = target[int(part)]
                    except (ValueError, IndexError):
                        raise GrammarError(f"$ref {ref!r} at {pointer or '#'}: no such "
                                           "location") from None
                elif isinstance(target, dict) and part in target:
                    target = target[part]
                else:
                    raise GrammarError(f"$ref {ref!r} at {pointer or '#'}: no such location")
            return target, self.base_of(target, doc), f"{doc}#{frag}"
        found = self.anchors.get((doc, frag))
        if found is None:
            raise UnsupportedSchemaError("$ref", pointer, f"unknown anchor in {ref!r}")
        return found[0], found[1], f"{doc}#{frag}"

    def reachable_refs(self, schema, base: str) -> frozenset[str]:
        """Keys of every `$ref` that compiling `schema` can enter, references followed
        transitively. A compiled value depends on the `$ref` chain that led to it only through
        these keys (they alone can be cut for recursion depth). Over-approximated: every
        `$ref` string anywhere inside is counted, schema position or not."""
        key = (id(schema), base)
        out = self._reach.get(key)
        if out is None:
            seen: set[str] = set()
            todo = list(self._direct_refs(schema, base))
            while todo:
                k = todo.pop()
                if k not in seen:
                    seen.add(k)
                    if k in self._targets:
                        todo.extend(self._direct_refs(*self._targets[k]) - seen)
            out = self._reach[key] = frozenset(seen)
        return out

    def _direct_refs(self, node, base: str) -> frozenset[str]:
        """Keys of the `$ref`s written inside `node` (references not followed)."""
        key = (id(node), base)
        out = self._direct.get(key)
        if out is not None:
            return out
        found: set[str] = set()
        if isinstance(node, dict):
            base = self.base_of(node, base)
            ref = node.get("$ref")
            if isinstance(ref, str):
                try:
                    target, tbase, rkey = self.resolve(ref, base, "")
                except GrammarError:  # compiling it raises the error; here it adds nothing
                    pass
                else:
                    found.add(rkey)
                    self._targets[rkey] = (target, tbase)
            children = node.values()
        else:
            children = node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                found |= self._direct_refs(child, base)
        out = self._direct[key] = frozenset(found)
        return out
