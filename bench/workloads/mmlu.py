"""Few-shot multiple choice, MMLU-shaped: a 5-shot prefix of ~1,000 tokens shared by every
question; the answer is a `select` over " A" .. " D" after "Answer:".

The prefix is the same for every question (one subject, as an MMLU subject's dev set is),
so tines prefills it once for the whole batch; each question adds ~200 tokens.
"""

from __future__ import annotations

import random
from typing import Any

import tines
from bench.workloads.common import GREEDY, answers, pick
from bench.workloads.synth import CITIES, NOUNS, SUBJECTS, paragraph, sentence

NAME = "mmlu"
TITLE = "5-shot multiple choice (~1k-token shared prefix, select A-D)"
LETTERS = ("A", "B", "C", "D")
CHOICES = [" A", " B", " C", " D"]
LLAMA_SETTINGS: dict[str, Any] = {"logits_all": False}  # single-token choices: last logits


def _question(rng: random.Random) -> tuple[str, str]:
    """(question block ending in the options, the right letter)."""
    noun, (city, _) = rng.choice(NOUNS), rng.choice(CITIES)
    stem = (f"{paragraph(rng, 5)} Which of the following statements about the {noun} "
            f"near {city} is best supported by the passage above?")
    options = "\n".join(f"{letter}. {sentence(rng)}" for letter in LETTERS)
    return f"{stem}\n{options}\n", rng.choice(LETTERS)


def _few_shot(seed: int = 1234) -> str:
    rng = random.Random(seed)
    subject = rng.choice(SUBJECTS)
    shots = [f"The following are multiple choice questions (with answers) about {subject}.\n\n"]
    for _ in range(5):
        block, letter = _question(rng)
        shots.append(f"{block}Answer: {letter}\n\n")
    return "".join(shots)


FEW_SHOT = _few_shot()


def make_inputs(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(f"{NAME}-{seed}")
    return [{"question": _question(rng)[0]} for _ in range(n)]


@tines.program
def multiple_choice(s, question):
    s += FEW_SHOT
    s += question + "Answer:"
    s += tines.select("answer", CHOICES)


def run_tines(backend: Any, inputs: list[dict[str, Any]]) -> list[Any]:
    states = multiple_choice.run_batch(inputs, backend=backend, progress_bar=False, **GREEDY)
    return answers(states, lambda s: s["answer"].strip())


def run_transformers(hf: Any, inputs: list[dict[str, Any]]) -> list[Any]:
    return [LETTERS[pick(hf.score(FEW_SHOT + x["question"] + "Answer:", CHOICES))]
            for x in inputs]


def run_llama_cpp(llm: Any, inputs: list[dict[str, Any]]) -> list[Any]:
    return [LETTERS[pick(llm.score(FEW_SHOT + x["question"] + "Answer:", CHOICES))]
            for x in inputs]


def check(output: Any) -> bool:
    return output in LETTERS
