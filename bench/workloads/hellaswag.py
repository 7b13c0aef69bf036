"""Sentence completion, HellaSwag-shaped: a short context that stops mid-sentence and four
long endings (~30 tokens each) scored by `select`. The choices share the context: tines
computes it once and each ending extends it; a system without prefix reuse computes it four
times."""

from __future__ import annotations

import random
from typing import Any

import tines
from bench.workloads.common import GREEDY, answers, pick
from bench.workloads.synth import ADJECTIVES, NOUNS, VERBS, name, sentence

NAME = "hellaswag"
TITLE = "sentence completion (select over 4 long endings)"
LLAMA_SETTINGS: dict[str, Any] = {"logits_all": True}  # multi-token choices: every row's logits

ACTIVITIES = ["Making a sandwich", "Tuning a guitar", "Washing a car", "Planting a tree",
              "Fixing a bicycle tire", "Painting a fence", "Baking bread", "Ice fishing",
              "Shoveling snow", "Folding a paper crane", "Grooming a dog", "Packing a suitcase"]
STARTS = ["then picks up the", "carefully places the", "turns toward the", "slowly lifts the",
          "points the camera at the", "walks back to the"]


def _ending(rng: random.Random) -> str:
    """One ending: the rest of the sentence and one more (~30 tokens)."""
    return (f" {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} and {rng.choice(VERBS)} it "
            f"while {name(rng)} watches from the side. {sentence(rng)}")


def make_inputs(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(f"{NAME}-{seed}")
    items = []
    for _ in range(n):
        context = (f"{rng.choice(ACTIVITIES)}: {sentence(rng)} {sentence(rng)} "
                   f"A person {rng.choice(STARTS)}")
        items.append({"context": context, "endings": [_ending(rng) for _ in range(4)]})
    return items


@tines.program
def complete(s, context, endings):
    s += context
    s += tines.select("ending", endings)


def run_tines(backend: Any, inputs: list[dict[str, Any]]) -> list[Any]:
    states = complete.run_batch(inputs, backend=backend, progress_bar=False, **GREEDY)
    return answers(states, lambda s: s.get_meta_info("ending").index)


def run_transformers(hf: Any, inputs: list[dict[str, Any]]) -> list[Any]:
    return [pick(hf.score(x["context"], x["endings"])) for x in inputs]


def run_llama_cpp(llm: Any, inputs: list[dict[str, Any]]) -> list[Any]:
    return [pick(llm.score(x["context"], x["endings"])) for x in inputs]


def check(output: Any) -> bool:
    return output in (0, 1, 2, 3)
