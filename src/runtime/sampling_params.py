"""The one definition of sampling parameters, shared by the frontend, engine and server.

Torch-free on purpose: the frontend (`tines`) imports this module and must not pull in torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

CONSTRAINTS = ("regex", "json_schema", "choices", "structural_tag", "grammar", "ebnf")
INT64_LIMIT = 1 << 63  # integers reach tensors and hashes as int64
MAX_TEMPERATURE = 1e4  # beyond it sampling is uniform anyway
# Past these bounds a penalty turns every seen logit into +-inf or 0.
REPETITION_PENALTY_RANGE = (1e-2, 1e2)
MAX_SCHEMA_DEPTH = 64  # nesting of a JSON schema (deeper ones overflow the recursive compiler)


@dataclass(slots=True)
class SamplingParams:
    """How to decode one request.

    At most one constraint (`regex`, `json_schema`, `choices`, `structural_tag`, `grammar`,
    `ebnf`) may be set.
    `json_schema` is a dict or a JSON string (the frontend turns a pydantic class into its
    schema dict). `structural_tag` holds tagged JSON segments inside free text, the shape of
    tool calls:

        {"triggers": ["<tool_call>"],
         "structures": [{"begin": "<tool_call>{\"name\": \"f\", \"arguments\": ",
                         "schema": {...}, "end": "}</tool_call>"}],
         "mode": "auto"}

    In "auto" mode decoding is free until a trigger appears; from there the text must be one
    of the structures (begin, a JSON value valid for its schema, end), then it is free again.
    In "required" mode the output is one or more structures and nothing else.
    `temperature == 0` means greedy. `stop` strings are matched across token boundaries and
    excluded from the output text.
    """

    max_new_tokens: int = 128
    min_new_tokens: int = 0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1  # -1: all tokens
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = False
    seed: int | None = None
    n: int = 1
    logprobs: bool = False
    top_logprobs: int = 0
    prompt_logprobs: bool = False
    skip_special_tokens: bool = True
    regex: str | None = None
    json_schema: dict | str | None = None
    choices: list[str] | None = None
    structural_tag: dict | None = None
    # Whitespace allowed between JSON tokens: None is compact JSON; otherwise a regex such as
    # r"[ \n]{0,2}" that the grammar places where JSON allows whitespace.
    json_whitespace: str | None = None
    # False (as xgrammar-backed servers, llama.cpp and OpenAI do): a schema's object that
    # lists `properties` and says nothing of other keys takes no undeclared keys
    # (grammar/json_closing.py). True: JSON Schema's own default, undeclared keys allowed.
    json_extra_keys: bool = False
    # A context-free grammar: `grammar` is Lark text (GBNF when it defines rules with "::=",
    # as llama.cpp's server takes it), `ebnf` is GBNF text (SGLang's name).
    grammar: str | None = None
    ebnf: str | None = None
    # Back the prompt up over its last token(s) and let the first generated tokens re-spell
    # them (see engine/healing.py); the output never repeats the removed text.
    token_healing: bool = False
    # A LoRA adapter the engine has loaded, by name (None: the base model).
    lora: str | None = None
    # Budget-aware closing: near max_new_tokens a constrained sequence is held to the
    # shortest way to complete its grammar, so an output cut by the budget still parses
    # (finish_reason stays "length"). False lets the budget cut it anywhere.
    close_on_budget: bool = True
    # token id -> a number in [-100, 100] added to that token's logit before sampling
    # (OpenAI's logit_bias: -100 all but bans a token, 100 all but forces it)
    logit_bias: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        if self.stop is None or isinstance(self.stop, (list, tuple)):  # else: validate names it
            self.stop = list(self.stop or [])
        if self.stop_token_ids is None or isinstance(self.stop_token_ids, (list, tuple)):
            self.stop_token_ids = list(self.stop_token_ids or [])
        if isinstance(self.logit_bias, dict):  # JSON keys are strings: "42" is token 42
            self.logit_bias = {int(k) if isinstance(k, str) and k.isdigit() else k: v
                               for k, v in self.logit_bias.items()}
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first field that is out of range. Everything the engine
        does with a value is safe once this passes, apart from checks that need the model
        (token ids against its vocabulary: `check_for_model`)."""
        _check_int(self.max_new_tokens, "max_new_tokens", 1)
        _check_int(self.min_new_tokens, "min_new_tokens", 0)
        _check(self.min_new_tokens <= self.max_new_tokens, "min_new_tokens",
               f"must be in [0, max_new_tokens], got {self.min_new_tokens!r}")
        _check_float(self.temperature, "temperature", 0.0, MAX_TEMPERATURE)
        _check_float(self.top_p, "top_p", 0.0, 1.0)
        _check(self.top_p > 0, "top_p", f"must be in (0, 1], got {self.top_p!r}")
        _check_int(self.top_k, "top_k", -1)
        _check(self.top_k != 0, "top_k", "must be -1 (off) or >= 1, got 0")
        _check_float(self.min_p, "min_p", 0.0, 1.0)
        _check_float(self.repetition_penalty, "repetition_penalty", *REPETITION_PENALTY_RANGE)
        _check_float(self.frequency_penalty, "frequency_penalty", -2.0, 2.0)
        _check_float(self.presence_penalty, "presence_penalty", -2.0, 2.0)
        if self.seed is not None:
            _check_int(self.seed, "seed", -INT64_LIMIT)
        _check_int(self.n, "n", 1)
        _check_int(self.top_logprobs, "top_logprobs", 0, 20)
        for name in ("ignore_eos", "logprobs", "prompt_logprobs", "skip_special_tokens",
                     "token_healing", "close_on_budget"):
            _check(isinstance(getattr(self, name), bool), name,
                   f"must be a boolean, got {getattr(self, name)!r}")
        _check(isinstance(self.stop, list) and all(isinstance(s, str) and s for s in self.stop),
               "stop", f"must be a string or a list of non-empty strings, got {self.stop!r:.80}")
        _check(isinstance(self.stop_token_ids, list) and all(
            type(t) is int and 0 <= t < INT64_LIMIT for t in self.stop_token_ids),
            "stop_token_ids", "must be a list of non-negative 64-bit integers")
        _check(isinstance(self.logit_bias, dict) and all(
            type(t) is int and 0 <= t < INT64_LIMIT for t in self.logit_bias), "logit_bias",
            "must map non-negative token ids to numbers")
        for t, bias in self.logit_bias.items():
            _check_float(bias, "logit_bias", -100.0, 100.0)
        constraints = [name for name in CONSTRAINTS if getattr(self, name) is not None]
        _check(len(constraints) <= 1, constraints[-1] if constraints else "regex",
               f"only one constraint may be set, got {constraints}")
        if self.regex is not None:
            _check(isinstance(self.regex, str), "regex", "must be a string")
        if self.choices is not None:
            _check(isinstance(self.choices, list) and len(self.choices) > 0 and
                   all(isinstance(c, str) and c for c in self.choices),
                   "choices", "must be a non-empty list of non-empty strings")
        if self.structural_tag is not None:
            _check_structural_tag(self.structural_tag)
        if self.json_whitespace is not None:
            _check(isinstance(self.json_whitespace, str), "json_whitespace", "must be a string")
        if self.lora is not None:
            _check(isinstance(self.lora, str) and self.lora != "", "lora",
                   "must be the name of a loaded LoRA adapter")
        for name in ("grammar", "ebnf"):
            value = getattr(self, name)
            if value is not None:
                _check(isinstance(value, str) and value.strip() != "", name,
                       "must be a non-empty grammar text")
                _check_grammar_text(name, value)
        if self.json_schema is not None:
            _check(isinstance(self.json_schema, (dict, str, bool)), "json_schema",
                   "must be an object, a boolean or a JSON string")
            schema = self.json_schema
            if isinstance(schema, str):
                try:
                    schema = json.loads(schema)
                except (json.JSONDecodeError, RecursionError) as e:
                    raise ValueError(f"json_schema: not valid JSON ({e})") from None
            _check(_depth(schema) <= MAX_SCHEMA_DEPTH, "json_schema",
                   f"nested more than {MAX_SCHEMA_DEPTH} levels deep")
        for name in ("stop", "regex", "json_schema", "choices", "structural_tag", "json_whitespace",
                     "grammar", "ebnf"):
            _check(not _has_lone_surrogate(getattr(self, name)), name,
                   "contains a lone surrogate (not encodable as UTF-8)")

    def check_for_model(self, vocab_size: int) -> None:
        """The checks that need the model: every token id must be in its vocabulary."""
        bad = [t for t in self.stop_token_ids if t >= vocab_size]
        _check(not bad, "stop_token_ids",
               f"token id {bad[0] if bad else 0} is outside the vocabulary [0, {vocab_size})")
        bad = [t for t in self.logit_bias if t >= vocab_size]
        _check(not bad, "logit_bias",
               f"token id {bad[0] if bad else 0} is outside the vocabulary [0, {vocab_size})")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def constraint(self) -> tuple[str, Any] | None:
        """(one of CONSTRAINTS, value), or None when decoding is free."""
        for name in CONSTRAINTS:
            value = getattr(self, name)
            if value is not None:
                return name, value
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamplingParams:
        """Build from a JSON-like dict; unknown keys raise ValueError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown sampling parameter(s): {', '.join(unknown)}")
        return cls(**data)


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ValueError(f"{name}: {message}")


def _check_int(value: Any, name: str, low: int, high: int = INT64_LIMIT - 1) -> None:
    _check(type(value) is int and low <= value <= high, name,
           f"must be an integer in [{low}, {high}], got {value!r}")


def _check_float(value: Any, name: str, low: float, high: float) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value) and low <= value <= high
    _check(ok, name, f"must be a finite number in [{low}, {high}], got {value!r}")


def _depth(value: Any) -> int:
    """Nesting depth of a JSON-like value, without recursion."""
    best, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            best = max(best, depth)
            stack.extend((v, depth + 1) for v in item)
    return best


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


def _check_grammar_text(name: str, text: str, kind: str | None = None) -> None:
    """Parse the grammar and check its rule names (no vocabulary needed), so a bad rule is a
    ValueError naming it wherever the parameters are built. Loaded on use: `import tines`
    stays free of the grammar engine."""
    from ..grammar.cfg import CfgError, parse_grammar
    from ..grammar.cfg.analysis import check_names
    from ..grammar.compiler import CFG_SYNTAX, GrammarSpec

    try:
        kind = kind or ("ebnf" if name == "ebnf" else GrammarSpec.cfg(text, "auto").kind)
        check_names(parse_grammar(text, CFG_SYNTAX[kind]))
    except (CfgError, RecursionError) as e:
        raise ValueError(f"{name}: {e}") from None


def _check_tag_grammar(where: str, grammar: Any) -> None:
    """A structure's grammar body: `{"syntax": "lark" | "gbnf" | "ebnf" | "regex",
    "definition": text}` (see `grammar/structural_tag.py`)."""
    from ..grammar.structural_tag import GRAMMAR_SYNTAXES

    _check(isinstance(grammar, dict) and grammar.get("syntax") in GRAMMAR_SYNTAXES, where,
           f"must be an object with 'syntax' one of {', '.join(GRAMMAR_SYNTAXES)}")
    text = grammar.get("definition")
    _check(isinstance(text, str) and bool(text), f"{where}.definition", "must be a non-empty string")
    if grammar["syntax"] != "regex":
        _check_grammar_text(f"{where}.definition", text,
                            "grammar" if grammar["syntax"] == "lark" else "ebnf")


def _check_structural_tag(tag: Any) -> None:
    _check(isinstance(tag, dict), "structural_tag", "must be an object")
    triggers, structures = tag.get("triggers"), tag.get("structures")
    _check(isinstance(triggers, list) and triggers and all(isinstance(t, str) and t for t in triggers),
           "structural_tag.triggers", "must be a non-empty list of non-empty strings")
    _check(isinstance(structures, list) and bool(structures), "structural_tag.structures",
           "must be a non-empty list")
    for i, st in enumerate(structures):
        where = f"structural_tag.structures[{i}]"
        ok = isinstance(st, dict) and isinstance(st.get("begin"), str) and \
            isinstance(st.get("end"), str) and ("schema" in st) != ("grammar" in st)
        _check(ok, where, "needs string begin/end and one of a schema object or a grammar")
        if "schema" in st:
            _check(isinstance(st["schema"], (dict, bool)), f"{where}.schema", "must be an object")
        else:
            _check_tag_grammar(f"{where}.grammar", st["grammar"])
        _check(any(st["begin"].startswith(t) for t in triggers), f"structural_tag.structures[{i}].begin",
               "must start with one of the triggers")
    _check(tag.get("mode", "auto") in ("auto", "required"), "structural_tag.mode",
           "must be 'auto' or 'required'")
