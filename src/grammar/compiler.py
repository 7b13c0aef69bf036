"""Constraint specs, compiled grammars and the compiled-grammar cache.

`GrammarSpec` is the hashable description of a constraint; `GrammarCompiler.compile(spec)`
turns it into a `CompiledGrammar` for one vocabulary, caching results (and errors) in an
LRU keyed by (spec, vocabulary fingerprint). `compile_async` runs the same on a worker
thread and returns a Future, so an engine step loop can poll instead of blocking on a slow
schema. Concurrent requests for the same spec share one compilation.

Compiling builds only an expression and the start state's mask; every other state (and its
mask) is built on first use by whichever thread uses it, under the grammar's lock.
"""

from __future__ import annotations

import json
import re
import threading
import time
import weakref
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .automaton import Automaton
from .automaton_grammar import AutomatonGrammar
from .choices import choices_expr
from .closing import ClosingIndex
from .errors import GrammarError
from .expr import ExprPool
from .json_closing import close_schema, close_tag
from .json_options import JsonOptions
from .json_schema import json_schema_expr
from .json_values import JsonSyntax, whitespace_expr
from .regex import regex_expr
from .structural_tag import needs_cfg, structural_tag_expr
from .token_index import TokenIndex
from .vocabulary import TokenVocabulary


KINDS = ("regex", "json_schema", "choices", "structural_tag", "grammar", "ebnf")
# A line defining a rule the GBNF way ("name ::= ..."), which Lark never writes.
_GBNF_RULE = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_-]*\s*::=", re.MULTILINE)
# Context-free kinds and the syntax each is written in (compiled by `cfg.compile_cfg`).
CFG_SYNTAX = {"grammar": "lark", "ebnf": "gbnf"}


@dataclass(frozen=True, slots=True)
class GrammarSpec:
    """One constraint. `value` is normalized: a regex string, a schema as JSON text (key
    order kept: it is the property order), or a tuple of choices."""

    kind: str  # "regex" | "json_schema" | "choices" | "structural_tag" | "grammar" | "ebnf"
    value: str | tuple[str, ...]
    json: JsonOptions = field(default_factory=JsonOptions)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown constraint kind {self.kind!r}")

    @classmethod
    def regex(cls, pattern: str) -> GrammarSpec:
        if not isinstance(pattern, str):
            raise GrammarError("regex must be a string")
        return cls("regex", pattern)

    @classmethod
    def json_schema(cls, schema, **options) -> GrammarSpec:
        """`schema`: a dict, JSON text, or a pydantic model class. `options` are
        `JsonOptions` fields (whitespace, separators, strict, max_recursion, any_depth,
        assert_formats, refuse_unknown_formats, max_subschemas). A pydantic class defaults
        to `strict=True`."""
        if isinstance(schema, type) and hasattr(schema, "model_json_schema"):
            # pydantic ignores unknown fields, so generating them is wasted: close objects
            options.setdefault("strict", True)
            schema = schema.model_json_schema()
        schema = _parse_json(schema, "json_schema")
        if not isinstance(schema, (dict, bool)):
            raise GrammarError("json_schema must be an object, a boolean, JSON text or a "
                               "pydantic model class")
        text = json.dumps(schema, ensure_ascii=False, separators=(",", ":"))
        if options.get("separators") is not None:
            options["separators"] = tuple(options["separators"])
        try:
            opts = JsonOptions(**options)
        except TypeError as e:
            raise ValueError(f"unknown JSON option: {e}") from None
        return cls("json_schema", text, opts)

    @classmethod
    def cfg(cls, text: str, syntax: str = "lark") -> GrammarSpec:
        """A context-free grammar: `syntax` "lark" (kind "grammar") or "gbnf"/"ebnf" (kind
        "ebnf"), or "auto": GBNF when the text defines a rule with "::=", else Lark."""
        if not isinstance(text, str) or not text.strip():
            raise GrammarError("a grammar must be a non-empty string")
        if syntax == "auto":
            syntax = "gbnf" if _GBNF_RULE.search(text) else "lark"
        if syntax not in ("lark", "gbnf", "ebnf"):
            raise GrammarError(f"unknown grammar syntax {syntax!r} (lark | gbnf)")
        return cls("grammar" if syntax == "lark" else "ebnf", text)

    @classmethod
    def choices(cls, choices) -> GrammarSpec:
        return cls("choices", tuple(choices))

    @classmethod
    def structural_tag(cls, tag, **options) -> GrammarSpec:
        """Tagged JSON segments in free text (see `structural_tag.py`); `options` are
        `JsonOptions` fields for the JSON inside."""
        tag = _parse_json(tag, "structural_tag")
        if not isinstance(tag, dict):
            raise GrammarError("structural_tag must be an object")
        text = json.dumps(tag, ensure_ascii=False, separators=(",", ":"))
        return cls("structural_tag", text, JsonOptions(**options))

    @classmethod
    def from_sampling_params(cls, params) -> GrammarSpec | None:
        """The spec for a `SamplingParams`-like object (regex / json_schema / choices /
        structural_tag / grammar / ebnf, plus json_whitespace and json_extra_keys), or None
        when it is unconstrained. JSON is what the model writes, so its objects are closed
        (`json_closing.py`) unless json_extra_keys, and its numbers canonical."""
        ws = getattr(params, "json_whitespace", None)
        close = not getattr(params, "json_extra_keys", False)
        if getattr(params, "regex", None) is not None:
            return cls.regex(params.regex)
        if getattr(params, "json_schema", None) is not None:
            schema = _parse_json(params.json_schema, "json_schema")
            return cls.json_schema(close_schema(schema) if close else schema, whitespace=ws,
                                   canonical_numbers=True)
        if getattr(params, "choices", None) is not None:
            return cls.choices(params.choices)
        if getattr(params, "structural_tag", None) is not None:
            tag = _parse_json(params.structural_tag, "structural_tag")
            return cls.structural_tag(close_tag(tag) if close else tag, whitespace=ws,
                                      canonical_numbers=True)
        if getattr(params, "grammar", None) is not None:
            return cls.cfg(params.grammar, "auto")
        if getattr(params, "ebnf", None) is not None:
            return cls.cfg(params.ebnf, "gbnf")
        return None


def _parse_json(value, what: str):
    """`value` itself, or the value its JSON text spells (GrammarError naming `what`)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as e:
        raise GrammarError(f"{what} is not valid JSON: {e}") from None


def build_expr(pool: ExprPool, spec: GrammarSpec, warnings: list[str] | None = None) -> int:
    if spec.kind == "regex":
        return regex_expr(pool, spec.value)
    if spec.kind == "choices":
        return choices_expr(pool, spec.value)
    if spec.kind == "structural_tag":
        return structural_tag_expr(pool, json.loads(spec.value), spec.json)
    return json_schema_expr(pool, json.loads(spec.value), spec.json, warnings)


_BASE_POOLS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def base_pool(vocab: TokenVocabulary) -> ExprPool:
    """A pool (not to be modified: `copy()` it) holding what every JSON grammar builds
    first (any string character, numbers, literals), for this vocabulary's bytes."""
    pool = _BASE_POOLS.get(vocab)
    if pool is None:
        pool = ExprPool(vocab.single_byte_mask)
        JsonSyntax(pool, whitespace_expr(pool, None), JsonOptions().any_depth)
        _BASE_POOLS[vocab] = pool
    return pool


class CompiledGrammar(AutomatonGrammar):
    """A constraint compiled for one vocabulary. Shared by all sequences using it."""

    def __init__(self, spec: GrammarSpec, vocab: TokenVocabulary):
        t0 = time.perf_counter()
        self.spec = spec
        self.vocab = vocab
        self.pool = base_pool(vocab).copy()
        self.warnings: list[str] = []  # parts compiled looser than written (unknown formats)
        self.automaton = Automaton(self.pool, build_expr(self.pool, spec, self.warnings))
        self.index = TokenIndex(self.automaton, vocab)
        self.closing = ClosingIndex(self.automaton, self.index)
        self._ready(t0)


def compile_spec(spec: GrammarSpec, vocab: TokenVocabulary):
    """A `CompiledGrammar`, or for the context-free kinds and structural tags with a
    context-free body a `CfgGrammar` (same matcher surface, with `spec` and `warnings` set
    here). Raises GrammarError/ValueError."""
    tag = json.loads(spec.value) if spec.kind == "structural_tag" else None
    if spec.kind not in CFG_SYNTAX and not (tag is not None and needs_cfg(tag)):
        return CompiledGrammar(spec, vocab)
    from .cfg import CfgGrammar, compile_cfg  # the CFG front end loads only when used

    if tag is not None:
        grammar = CfgGrammar(vocab, lambda pool: structural_tag_expr(pool, tag, spec.json))
    else:
        grammar = compile_cfg(spec.value, vocab, CFG_SYNTAX[spec.kind])
    grammar.spec, grammar.warnings = spec, []
    return grammar


class GrammarCompiler:
    """Compiles specs for one vocabulary, with an LRU of `max_cached` grammars."""

    def __init__(self, vocab: TokenVocabulary, max_cached: int = 128, max_workers: int = 1):
        vocab.prepare()  # the mask layouts, here at start-up rather than in a first request
        self.vocab = vocab
        self.max_cached = max_cached
        self._cache: OrderedDict[tuple, Future] = OrderedDict()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="tines-grammar")
        self.num_hits = 0
        self.num_misses = 0

    def compile(self, spec: GrammarSpec) -> CompiledGrammar:
        """Compile (or fetch) in the calling thread. Raises GrammarError/ValueError."""
        fut, owner = self._lookup(spec)
        if owner:
            self._run(spec, fut)
        return fut.result()

    def compile_async(self, spec: GrammarSpec) -> Future:
        """A Future of the CompiledGrammar; compiled on the worker pool if not cached."""
        fut, owner = self._lookup(spec)
        if owner:
            self._executor.submit(self._run, spec, fut)
        return fut

    def _lookup(self, spec: GrammarSpec) -> tuple[Future, bool]:
        key = (spec, self.vocab.fingerprint)
        with self._lock:
            fut = self._cache.get(key)
            if fut is not None:
                self._cache.move_to_end(key)
                self.num_hits += 1
                return fut, False
            self.num_misses += 1
            fut = Future()
            fut.set_running_or_notify_cancel()
            self._cache[key] = fut
            while len(self._cache) > self.max_cached:
                self._cache.popitem(last=False)
            return fut, True

    def _run(self, spec: GrammarSpec, fut: Future) -> None:
        try:
            fut.set_result(compile_spec(spec, self.vocab))
        except Exception as e:  # noqa: BLE001 - delivered to every waiter
            fut.set_exception(e)
            if not isinstance(e, ValueError):  # keep only user errors cached
                with self._lock:
                    self._cache.pop((spec, self.vocab.fingerprint), None)

    def stats(self) -> dict:
        return {"cached": len(self._cache), "hits": self.num_hits, "misses": self.num_misses}

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def allowed_token_ids(grammar: CompiledGrammar, token_ids=()) -> np.ndarray:
    """Plain helper for tests: the tokens allowed after feeding `token_ids`."""
    m = grammar.matcher()
    if not m.accept_tokens(token_ids):
        raise ValueError("the prefix is not allowed by the grammar")
    return m.allowed_token_ids()
