"""A ReAct-style agent: thought -> tool call (JSON held to a schema) -> observation text,
three steps per question, after a ~450-token few-shot prompt shared by every question.

Tools are deterministic functions of the call (a fixed synthetic knowledge base and a
calculator), so a system that writes the same calls reads the same observations.
"""

from __future__ import annotations

import json
import random
import re
import zlib
from typing import Any

import tines
from bench.workloads.common import GREEDY, answers, parse_json, validates
from bench.workloads.synth import CITIES, NOUNS, name, sentence

NAME = "react_agent"
TITLE = "ReAct agent (3 x thought, JSON tool call, observation)"
STEPS = 3
THOUGHT_TOKENS = 24
ACTION_TOKENS = 40
LLAMA_SETTINGS: dict[str, Any] = {"logits_all": False}
TOOLS = ["search", "lookup", "calculate", "finish"]
ACTION: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["tool", "input"],
    "properties": {"tool": {"type": "string", "enum": TOOLS},
                   "input": {"type": "string", "maxLength": 40}},
}
KNOWLEDGE = [sentence(random.Random(f"kb-{i}")) for i in range(32)]


def observe(action: Any) -> str:
    """What the tool returns for `action` (a parsed call, or None for an invalid one)."""
    if not isinstance(action, dict) or action.get("tool") not in TOOLS:
        return "error: the action is not a valid tool call"
    tool, arg = action["tool"], str(action.get("input", ""))
    if tool == "finish":
        return "done"
    if tool == "calculate":
        m = re.fullmatch(r"\s*(-?\d+)\s*([-+*])\s*(-?\d+)\s*", arg)
        if not m:
            return "error: expected an expression like 12 * 7"
        a, op, b = int(m[1]), m[2], int(m[3])
        return str({"+": a + b, "-": a - b, "*": a * b}[op])
    return KNOWLEDGE[zlib.crc32(f"{tool}:{arg.lower()}".encode()) % len(KNOWLEDGE)]


def _call(tool: str, arg: str) -> str:
    return json.dumps({"tool": tool, "input": arg}, separators=(",", ":"))


def _example(q: str, steps: list[tuple[str, str, str]]) -> str:
    lines = [f"Question: {q}"]
    for thought, tool, arg in steps:
        lines += [f"Thought: {thought}", f"Action: {_call(tool, arg)}",
                  f"Observation: {observe({'tool': tool, 'input': arg})}"]
    return "\n".join(lines) + "\n\n"


PROMPT = (
    "You answer questions by thinking step by step and calling tools. Each step is one "
    "Thought line, one Action line holding a JSON tool call, and one Observation line with "
    "the tool's result. Tools: search (finds a sentence about a topic), lookup (finds a fact "
    "about a named thing), calculate (evaluates an expression like 12 * 7), finish (gives the "
    "final answer).\n\n"
    + _example("Who restored the old library near Lyon, and how many years ago was 1902?", [
        ("I should look for the library near Lyon first.", "search", "library near Lyon"),
        ("Now I need the number of years since 1902.", "calculate", "2024 - 1902"),
        ("I have what I need.", "finish", "122 years")])
    + _example("What is the harbor of Bergen known for?", [
        ("I will look up the harbor of Bergen.", "lookup", "harbor of Bergen"),
        ("The observation describes it; let me search for more.", "search", "Bergen harbor"),
        ("That is enough to answer.", "finish", "its old wooden piers")]))


def make_inputs(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(f"{NAME}-{seed}")
    items = []
    for _ in range(n):
        noun, (city, _) = rng.choice(NOUNS), rng.choice(CITIES)
        items.append({"question": f"Who visited the {noun} in {city}, and what is "
                                  f"{rng.randint(12, 99)} times {rng.randint(2, 9)}? Ask "
                                  f"{name(rng)} if needed."})
    return items


@tines.program
def agent(s, question):
    s += PROMPT
    s += "Question: " + question + "\n"
    for i in range(STEPS):
        s += "Thought:" + tines.gen(f"thought{i}", max_tokens=THOUGHT_TOKENS, stop="\n")
        s += "\nAction: " + tines.gen(f"action{i}", json_schema=ACTION, max_tokens=ACTION_TOKENS)
        s += "\nObservation: " + observe(parse_json(s[f"action{i}"])) + "\n"


def _steps(state: tines.ProgramState) -> list[dict[str, Any]]:
    return [{"thought": state[f"thought{i}"], "action": parse_json(state[f"action{i}"])}
            for i in range(STEPS)]


def run_tines(backend: Any, inputs: list[dict[str, Any]]) -> list[Any]:
    states = agent.run_batch(inputs, backend=backend, progress_bar=False, **GREEDY)
    return answers(states, _steps)


def _run_peer(thought: Any, action: Any, inputs: list[dict[str, Any]]) -> list[Any]:
    """The agent loop in plain Python: one completion call per thought and per action."""
    out = []
    for x in inputs:
        text, steps = PROMPT + "Question: " + x["question"] + "\n", []
        for _ in range(STEPS):
            text += "Thought:"
            t = thought(text)
            text += t + "\nAction: "
            a = action(text)
            call = parse_json(a)
            text += a + "\nObservation: " + observe(call) + "\n"
            steps.append({"thought": t, "action": call})
        out.append(steps)
    return out


def run_transformers(hf: Any, inputs: list[dict[str, Any]]) -> list[Any]:
    return _run_peer(lambda text: hf.generate(text, THOUGHT_TOKENS, stop=["\n"]),
                     lambda text: hf.generate_json(text, ACTION, ACTION_TOKENS, stop=["\n"]),
                     inputs)


def run_llama_cpp(llm: Any, inputs: list[dict[str, Any]]) -> list[Any]:
    from llama_cpp import LlamaGrammar

    grammar = LlamaGrammar.from_json_schema(json.dumps(ACTION), verbose=False)
    return _run_peer(lambda text: llm.complete(text, THOUGHT_TOKENS, stop=["\n"]),
                     lambda text: llm.complete(text, ACTION_TOKENS, grammar=grammar), inputs)


def check(output: Any) -> bool:
    return (isinstance(output, list) and len(output) == STEPS
            and all(isinstance(step.get("thought"), str) and validates(step.get("action"), ACTION)
                    for step in output))
