"""Multi-turn chat: four user turns, each answered by the assistant; every turn's prompt is
the whole history so far (system prompt, earlier turns and replies), as a chat client sends
it. tines finds each turn's history in the radix cache; llama.cpp keeps the last prompt's KV
and its prompt cache; transformers recomputes the history every turn."""

from __future__ import annotations

import random
from typing import Any

import tines
from bench.workloads.common import GREEDY, answers
from bench.workloads.synth import CITIES, NOUNS, name, sentence

NAME = "multi_turn_chat"
TITLE = "multi-turn chat (4 turns, whole history each turn)"
TURNS = 4
MAX_TOKENS = 32
LLAMA_SETTINGS: dict[str, Any] = {"logits_all": False}
SYSTEM = ("You are a concise travel assistant for a small agency. Answer in one or two short "
          "sentences, stay friendly, and never invent prices or opening hours. If you are "
          "unsure, say so and suggest asking a local guide. Keep track of what the traveller "
          "told you earlier in the conversation.")


def _turns(rng: random.Random) -> list[str]:
    (city, country), (city2, _) = rng.choice(CITIES), rng.choice(CITIES)
    noun, traveller = rng.choice(NOUNS), name(rng)
    return [
        f"Hi, I am {traveller} and I will spend three days in {city}, {country}, next month. "
        f"What should I see first?",
        f"I read this: {sentence(rng)} Is the {noun} worth a visit?",
        f"Could I also take a day trip from {city} to {city2}? I would travel by train.",
        "Thanks. Please sum up my plan in one sentence.",
    ]


def make_inputs(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(f"{NAME}-{seed}")
    return [{"turns": _turns(rng)} for _ in range(n)]


@tines.program
def conversation(s, turns):
    s += tines.system(SYSTEM)
    for i, turn in enumerate(turns):
        s += tines.user(turn)
        s += tines.assistant(tines.gen(f"reply{i}", max_tokens=MAX_TOKENS))


def run_tines(backend: Any, inputs: list[dict[str, Any]]) -> list[Any]:
    states = conversation.run_batch(inputs, backend=backend, progress_bar=False, **GREEDY)
    return answers(states, lambda s: [s[f"reply{i}"] for i in range(TURNS)])


def _run_peer(reply: Any, inputs: list[dict[str, Any]]) -> list[Any]:
    """The client loop every chat API user writes: append the reply, send the history."""
    out = []
    for x in inputs:
        messages = [{"role": "system", "content": SYSTEM}]
        for turn in x["turns"]:
            messages.append({"role": "user", "content": turn})
            messages.append({"role": "assistant", "content": reply(messages)})
        out.append([m["content"] for m in messages if m["role"] == "assistant"])
    return out


def run_transformers(hf: Any, inputs: list[dict[str, Any]]) -> list[Any]:
    return _run_peer(lambda messages: hf.generate(hf.chat_text(messages), MAX_TOKENS), inputs)


def run_llama_cpp(llm: Any, inputs: list[dict[str, Any]]) -> list[Any]:
    return _run_peer(lambda messages: llm.chat(messages, MAX_TOKENS), inputs)


def check(output: Any) -> bool:
    return (isinstance(output, list) and len(output) == TURNS
            and all(isinstance(r, str) for r in output))
