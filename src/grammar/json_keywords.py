"""Read one schema object's own assertion keywords into a `Flat` (combinators and `$ref`
are handled by the compiler), and refuse the keywords that cannot be enforced exactly."""

from __future__ import annotations

from .errors import GrammarError, UnsupportedSchemaError
from .json_flat import (ArrayClause, Ctx, Flat, ObjectClause, Sub, _min, count, number,
                        parse_types)


KNOWN_METASCHEMAS = {
    f"{scheme}://json-schema.org/{path}{tail}"
    for scheme in ("http", "https")
    for path in ("draft/2020-12/schema", "draft/2019-09/schema", "draft-07/schema",
                 "draft-06/schema", "draft-04/schema")
    for tail in ("", "#")
}


def own_flat(schema: dict, ctx: Ctx) -> Flat:
    _refuse(schema, ctx)
    f = Flat(ctx)
    if "type" in schema:
        f.types = parse_types(schema["type"], ctx)
    if "enum" in schema:
        if not isinstance(schema["enum"], list):
            raise GrammarError(f"'enum' at {ctx.pointer or '#'} must be an array")
        f.enums.append(list(schema["enum"]))
    if "const" in schema:
        f.enums.append([schema["const"]])
    _numbers(schema, ctx, f)
    if "minLength" in schema:
        f.min_length = count(schema["minLength"], "minLength", ctx)
    if "maxLength" in schema:
        f.max_length = count(schema["maxLength"], "maxLength", ctx)
    if "pattern" in schema:
        f.patterns.append((schema["pattern"], ctx))
    if isinstance(schema.get("format"), str):
        f.formats.append((schema["format"], ctx.at("format")))
    _arrays(schema, ctx, f)
    _objects(schema, ctx, f)
    if "not" in schema:
        f.nots.append((Sub(schema["not"], ctx.at("not")), "not"))
    return f


def _refuse(schema: dict, ctx: Ctx) -> None:
    def bad(keyword: str, detail: str = "") -> None:
        raise UnsupportedSchemaError(keyword, ctx.pointer, detail)

    if "$schema" in schema and schema["$schema"] not in KNOWN_METASCHEMAS:
        bad("$schema", f"unknown metaschema {schema['$schema']!r} (its vocabularies may change "
                       "what keywords mean)")
    for kw in ("unevaluatedProperties", "unevaluatedItems"):
        if kw in schema and schema[kw] is not True and schema[kw] != {}:
            bad(kw)
    for kw in ("$dynamicRef", "$recursiveRef"):
        if kw in schema:
            bad(kw)


def _numbers(schema: dict, ctx: Ctx, f: Flat) -> None:
    if "minimum" in schema:
        f.minimum = (number(schema["minimum"], "minimum", ctx), False)
    if "maximum" in schema:
        f.maximum = (number(schema["maximum"], "maximum", ctx), False)
    for kw, attr, lower in (("exclusiveMinimum", "minimum", True),
                            ("exclusiveMaximum", "maximum", False)):
        if kw not in schema:
            continue
        v = schema[kw]
        if isinstance(v, bool):  # draft 4: a flag on minimum/maximum
            if v and getattr(f, attr) is not None:
                setattr(f, attr, (getattr(f, attr)[0], True))
        else:
            setattr(f, attr, _min(getattr(f, attr), (number(v, kw, ctx), True), lower))
    if "multipleOf" in schema:
        m = number(schema["multipleOf"], "multipleOf", ctx)
        if m <= 0:
            raise GrammarError(f"'multipleOf' at {ctx.pointer or '#'} must be > 0")
        f.multiple_of.append(m)


def _arrays(schema: dict, ctx: Ctx, f: Flat) -> None:
    prefix, items = [], None
    has = False
    if isinstance(schema.get("prefixItems"), list):
        prefix = [Sub(s, ctx.at("prefixItems", i)) for i, s in enumerate(schema["prefixItems"])]
        has = True
    if "items" in schema:
        has = True
        if isinstance(schema["items"], list):  # draft 7 tuple form
            prefix = [Sub(s, ctx.at("items", i)) for i, s in enumerate(schema["items"])]
            if "additionalItems" in schema:
                items = Sub(schema["additionalItems"], ctx.at("additionalItems"))
        else:
            items = Sub(schema["items"], ctx.at("items"))
    if has:
        f.arrays.append(ArrayClause(prefix, items))
    if "minItems" in schema:
        f.min_items = count(schema["minItems"], "minItems", ctx)
    if "maxItems" in schema:
        f.max_items = count(schema["maxItems"], "maxItems", ctx)
    if schema.get("uniqueItems") is True:
        f.unique_items = True
    if "contains" in schema:
        lo = count(schema.get("minContains", 1), "minContains", ctx)
        hi = schema.get("maxContains")
        f.contains.append((Sub(schema["contains"], ctx.at("contains")), lo,
                           None if hi is None else count(hi, "maxContains", ctx)))


def _objects(schema: dict, ctx: Ctx, f: Flat) -> None:
    props = schema.get("properties", {})
    pats = schema.get("patternProperties", {})
    if not isinstance(props, dict) or not isinstance(pats, dict):
        raise GrammarError(f"properties/patternProperties at {ctx.pointer or '#'} must be objects")
    if props or pats or "additionalProperties" in schema:
        add = schema.get("additionalProperties")
        f.objects.append(ObjectClause(
            {k: Sub(v, ctx.at("properties", k)) for k, v in props.items()},
            [(k, Sub(v, ctx.at("patternProperties", k))) for k, v in pats.items()],
            None if "additionalProperties" not in schema else
            Sub(add, ctx.at("additionalProperties"))))
    req = schema.get("required", [])
    if not isinstance(req, list) or not all(isinstance(r, str) for r in req):
        raise GrammarError(f"'required' at {ctx.pointer or '#'} must be an array of strings")
    f.required = list(dict.fromkeys(req))
    if "minProperties" in schema:
        f.min_props = count(schema["minProperties"], "minProperties", ctx)
    if "maxProperties" in schema:
        f.max_props = count(schema["maxProperties"], "maxProperties", ctx)
    deps = schema.get("dependentRequired", {})
    if not isinstance(deps, dict) or not all(isinstance(v, list) for v in deps.values()):
        raise GrammarError(f"'dependentRequired' at {ctx.pointer or '#'} must map names to "
                           "arrays")
    f.dep_required = {k: list(v) for k, v in deps.items()}
    for k, v in legacy_dependencies(schema, ctx)[0].items():
        f.dep_required[k] = list(dict.fromkeys(f.dep_required.get(k, []) + v))
    if "propertyNames" in schema:
        f.prop_names.append(Sub(schema["propertyNames"], ctx.at("propertyNames")))


def legacy_dependencies(schema: dict, ctx: Ctx) -> tuple[dict[str, list[str]], dict]:
    """Draft 4–7 `dependencies` split into (dependentRequired, dependentSchemas): an array
    value lists required names, a schema value (object or boolean) is a dependent schema."""
    deps = schema.get("dependencies")
    if deps is None:
        return {}, {}
    if not isinstance(deps, dict):
        raise GrammarError(f"'dependencies' at {ctx.pointer or '#'} must be an object")
    required, schemas = {}, {}
    for name, v in deps.items():
        if isinstance(v, list):
            if not all(isinstance(x, str) for x in v):
                raise GrammarError(f"'dependencies/{name}' at {ctx.pointer or '#'} must list "
                                   "property names")
            required[name] = list(v)
        elif isinstance(v, (dict, bool)):
            schemas[name] = v
        else:
            raise GrammarError(f"'dependencies/{name}' at {ctx.pointer or '#'} must be an "
                               "array or a schema")
    return required, schemas


def json_equal(a, b) -> bool:
    """JSON Schema equality: numbers by value, booleans distinct from numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b
