"""The primitives a program appends: `gen`, `gen_int`, `gen_string`, `select`, and roles.

Names and arguments follow SGLang's frontend so its programs port by changing the import.
Sampling arguments are SGLang's spellings (max_tokens, min_tokens, return_logprob,
top_logprobs_num) or any `SamplingParams` field (seed, repetition_penalty, ...).
"""

from __future__ import annotations

import re
from typing import Any

from tines.choices import ChoicesMethod, token_length_normalized
from tines.grammars import any_of, grammar_text
from tines.ir import Gen, RoleBegin, RoleEnd, Select, Seq
from tines.params import dtype_spec, normalize, schema_spec
from tines.runtime.sampling_params import SamplingParams


def gen(name: str | None = None, *, dtype: type | str | None = None, regex: str | None = None,
        json_schema: Any = None, grammar: Any = None, choices: list[str] | None = None,
        choices_method: ChoicesMethod | None = None, **sampling: Any) -> Gen | Select:
    """Decode from the model into variable `name` (and the text).

    `sampling`: max_tokens, min_tokens, stop, stop_token_ids, temperature, top_p, top_k,
    min_p, frequency_penalty, presence_penalty, ignore_eos, n, return_logprob,
    top_logprobs_num, seed, ... (unset ones come from the run's defaults).
    At most one constraint: `regex`; `json_schema` (a dict, a JSON string, or a pydantic
    class — then the variable is a validated instance); `dtype` (int, float, bool, str — the
    variable is the converted value); `grammar`: Lark or GBNF text, or a grammar composed
    in Python (`tines.grammars`: select / regex / gen fragments and `@rule` functions).
    Token healing is on unless `token_healing=False`: the text before `gen` is backed up
    over its last token so the model can choose its own tokenization of the boundary. With `n > 1` the variable is a list of n values and the
    text gets the first. `choices=` makes this a `select` (as in SGLang).
    """
    _check_name("gen", name)
    if choices is not None:
        extra = sorted(set(sampling) - {"temperature"})
        if extra or dtype is not None or regex is not None or json_schema is not None \
                or grammar is not None:
            raise ValueError(f"gen(choices=...) is a select: it takes only temperature and "
                             f"choices_method, got {', '.join(extra) or 'a constraint'}")
        return select(name, choices, temperature=sampling.get("temperature") or 0.0,
                      choices_method=choices_method or token_length_normalized)
    given = [k for k, v in (("dtype", dtype), ("regex", regex), ("json_schema", json_schema),
                            ("grammar", grammar)) if v is not None]
    if len(given) > 1:
        raise ValueError(f"gen {name!r}: only one of dtype, regex, json_schema, grammar may be "
                         f"set, got {', '.join(given)}")
    params = normalize(sampling, f"gen {name!r}")
    for key in ("regex", "json_schema", "choices", "grammar", "ebnf"):
        if key in params:
            raise TypeError(f"gen {name!r}: pass {key} as its own argument")
    py_type, model = None, None
    if dtype is not None:
        py_type, params["regex"] = dtype_spec(dtype)
    if regex is not None:
        try:
            re.compile(regex)
        except re.error as e:
            raise ValueError(f"gen {name!r}: regex {regex!r} does not compile ({e})") from None
        params["regex"] = regex
    if json_schema is not None:
        params["json_schema"], model = schema_spec(json_schema)
    if grammar is not None:
        params["grammar"] = grammar_text(grammar)  # checked by _validate (SamplingParams)
    if isinstance(params.get("stop"), str):
        params["stop"] = [params["stop"]]
    elif isinstance(params.get("stop"), (list, tuple)):
        params["stop"] = list(params["stop"])
    _validate(name, params)
    return Gen(name, tuple(sorted(params.items())), py_type, model)


def gen_int(name: str | None = None, **sampling: Any) -> Gen:
    """`gen` of an integer: the variable is an int."""
    return gen(name, dtype=int, **sampling)  # type: ignore[return-value]


def gen_string(name: str | None = None, **sampling: Any) -> Gen:
    """`gen` of a double-quoted string: the variable is its content."""
    return gen(name, dtype=str, **sampling)  # type: ignore[return-value]


def select(name: str | list | None = None, choices: list | None = None, temperature: float = 0.0,
           choices_method: ChoicesMethod = token_length_normalized) -> Select:
    """Append the choice the model scores highest (by `choices_method`) and store it in
    `name`. The meta (`s.get_meta_info(name)`) has every choice's score.
    Without a name and with grammar fragments among the choices it is a grammar
    alternative (`tines.grammars.any_of`), for composing `gen(grammar=...)`.
    `select([...])` (the choices first, as guidance writes it) is `select(None, [...])`."""
    if choices is None and isinstance(name, (list, tuple)):
        name, choices = None, name
    _check_name("select", name)
    if name is None and isinstance(choices, (list, tuple)) and \
            any(not isinstance(c, str) for c in choices):
        return any_of(list(choices))  # type: ignore[return-value]
    if not isinstance(choices, (list, tuple)) or not choices:
        raise ValueError(f"select {name!r}: choices must be a non-empty list of strings")
    if not all(isinstance(c, str) and c for c in choices):
        raise ValueError(f"select {name!r}: every choice must be a non-empty string")
    if len(set(choices)) != len(choices):
        raise ValueError(f"select {name!r}: choices must be distinct")
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"select {name!r}: temperature must be >= 0, got {temperature!r}")
    if not callable(choices_method) or not hasattr(choices_method, "requires_unconditional"):
        raise TypeError(f"select {name!r}: choices_method must be a ChoicesMethod such as "
                        f"tines.token_length_normalized")
    return Select(name, tuple(choices), choices_method, float(temperature))


def _check_name(what: str, name: object) -> None:
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError(f"{what}: name must be a non-empty string or None, got {name!r}")


def _validate(name: str | None, params: dict[str, Any]) -> None:
    """Catch out-of-range values at the call site (the run's defaults may still change
    max_new_tokens, so min_new_tokens is checked against itself only)."""
    check = dict(params)
    try:
        check.setdefault("max_new_tokens", max(1, int(check.get("min_new_tokens") or 0)))
        SamplingParams(**check)
    except (TypeError, ValueError) as e:
        raise ValueError(f"gen {name!r}: {e}") from None


def _role(role: str, expr: object = None) -> Seq:
    return Seq.of(RoleBegin(role), RoleEnd(role)) if expr is None else \
        Seq.of(RoleBegin(role), expr, RoleEnd(role))


def system(expr: object = None) -> Seq:
    return _role("system", expr)


def user(expr: object = None) -> Seq:
    return _role("user", expr)


def assistant(expr: object = None) -> Seq:
    return _role("assistant", expr)


def system_begin() -> RoleBegin:
    return RoleBegin("system")


def system_end() -> RoleEnd:
    return RoleEnd("system")


def user_begin() -> RoleBegin:
    return RoleBegin("user")


def user_end() -> RoleEnd:
    return RoleEnd("user")


def assistant_begin() -> RoleBegin:
    return RoleBegin("assistant")


def assistant_end() -> RoleEnd:
    return RoleEnd("assistant")
