"""JSON extraction: a paragraph about an employee in, a schema-valid object out.

The schema has seven fields: strings with length bounds, three enums, a nested object and
a bounded array. tines holds decoding to it (`gen(json_schema=...)`, with jump-forward over
the forced keys); llama.cpp uses its JSON-schema grammar; transformers uses Outlines when
installed, else free generation checked afterwards.
"""

from __future__ import annotations

import random
from typing import Any

import tines
from bench.workloads.common import GREEDY, answers, parse_json, validates
from bench.workloads.synth import CITIES, SKILLS, name, sentence

NAME = "json_extraction"
TITLE = "JSON extraction (7 fields, enums, nesting; json_schema)"
MAX_TOKENS = 96
LLAMA_SETTINGS: dict[str, Any] = {"logits_all": False}

ROLES = ["engineer", "analyst", "manager", "designer", "technician"]
DEPARTMENTS = ["research", "sales", "operations", "finance", "support"]
STATUSES = ["active", "on_leave", "retired"]
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "age", "role", "department", "office", "status", "skills"],
    "properties": {
        "name": {"type": "string", "maxLength": 32},
        "age": {"type": "integer"},
        "role": {"type": "string", "enum": ROLES},
        "department": {"type": "string", "enum": DEPARTMENTS},
        "office": {
            "type": "object",
            "additionalProperties": False,
            "required": ["city", "country"],
            "properties": {"city": {"type": "string", "maxLength": 24},
                           "country": {"type": "string", "maxLength": 24}},
        },
        "status": {"type": "string", "enum": STATUSES},
        "skills": {"type": "array", "items": {"type": "string", "maxLength": 16}, "maxItems": 3},
    },
}
SYSTEM = "You extract structured records from text. Reply with one JSON object and nothing else."
INSTRUCTION = (
    "Extract the employee described in the text as JSON with these fields: name, age, role "
    f"(one of {', '.join(ROLES)}), department (one of {', '.join(DEPARTMENTS)}), office "
    f"(an object with city and country), status (one of {', '.join(STATUSES)}) and skills "
    "(at most three).\n\nText: ")
STATUS_PHRASES = {"active": "works full time at the moment", "on_leave": "on parental leave "
                  "until the spring", "retired": "retired since last year but still visits"}


def _paragraph(rng: random.Random) -> str:
    who, age = name(rng), rng.randint(23, 67)
    role, dept, status = rng.choice(ROLES), rng.choice(DEPARTMENTS), rng.choice(STATUSES)
    city, country = rng.choice(CITIES)
    skills = rng.sample(SKILLS, 2)
    parts = [f"{who}, {age}, is a {role} in the {dept} department at the {city} office "
             f"({country}).", sentence(rng), sentence(rng),
             f"According to the team, {who.split()[0]} is {STATUS_PHRASES[status]}.",
             f"Colleagues rely on {who.split()[0]} for {skills[0]} and {skills[1]}.",
             sentence(rng)]
    return " ".join(parts[:1] + rng.sample(parts[1:], len(parts) - 1))


def make_inputs(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(f"{NAME}-{seed}")
    return [{"text": _paragraph(rng)} for _ in range(n)]


def _messages(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": INSTRUCTION + text}]


@tines.program
def extract(s, text):
    s += tines.system(SYSTEM)
    s += tines.user(INSTRUCTION + text)
    s += tines.assistant(tines.gen("record", json_schema=SCHEMA, max_tokens=MAX_TOKENS))


def run_tines(backend: Any, inputs: list[dict[str, Any]]) -> list[Any]:
    states = extract.run_batch(inputs, backend=backend, progress_bar=False, **GREEDY)
    return answers(states, lambda s: parse_json(s["record"]))


def run_transformers(hf: Any, inputs: list[dict[str, Any]]) -> list[Any]:
    return [parse_json(hf.generate_json(hf.chat_text(_messages(x["text"])), SCHEMA, MAX_TOKENS))
            for x in inputs]


def run_llama_cpp(llm: Any, inputs: list[dict[str, Any]]) -> list[Any]:
    fmt = {"type": "json_object", "schema": SCHEMA}
    return [parse_json(llm.chat(_messages(x["text"]), MAX_TOKENS, response_format=fmt))
            for x in inputs]


def check(output: Any) -> bool:
    return validates(output, SCHEMA)
