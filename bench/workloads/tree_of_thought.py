"""Tree of thought: the problem forks 3 ways (one approach each), every approach forks 3 ways
again (one check each), and every leaf gives a final answer: 3 + 9 + 9 = 21 generations
per program, each prompt extending its parent's. Greedy decoding, so the branches differ by
their cue text, not by sampling.

tines runs a tree's branches concurrently and shares every trunk through the radix cache;
the peers walk the tree depth-first, one call at a time, each call with its whole prompt.
"""

from __future__ import annotations

import random
from typing import Any

import tines
from bench.workloads.common import GREEDY, answers
from bench.workloads.synth import NOUNS, name

NAME = "tree_of_thought"
TITLE = "tree of thought (fork 3 x 3, an answer per leaf)"
WIDTH = 3
THOUGHT_TOKENS = 16
ANSWER_TOKENS = 8
LLAMA_SETTINGS: dict[str, Any] = {"logits_all": False}
PROMPT = ("Solve the problem. Try several approaches, develop each with a short check, and end "
          "every line of work with a final answer as a number.\n\n")
APPROACHES = ["work backwards from the question", "write it as one equation",
              "count week by week"]
CHECKS = ["Check with a smaller example:", "Check the arithmetic again:",
          "Check that every quantity was used:"]


def make_inputs(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(f"{NAME}-{seed}")
    items = []
    for _ in range(n):
        who, noun = name(rng), rng.choice(NOUNS)
        a, b, c, d = rng.randint(3, 40), rng.randint(2, 9), rng.randint(2, 6), rng.randint(1, 20)
        items.append({"problem": f"{who} has {a} {noun} tokens and earns {b} more every week "
                                 f"for {c} weeks, then gives {d} away. How many {noun} tokens "
                                 f"does {who.split()[0]} have at the end?"})
    return items


def _approach(i: int) -> str:
    return f"Approach {i + 1} ({APPROACHES[i]}):"


@tines.program
def tree(s, problem):
    s += PROMPT
    s += "Problem: " + problem + "\n"
    approaches = s.fork(WIDTH)
    approaches += lambda i: _approach(i) + tines.gen(
        "thought", max_tokens=THOUGHT_TOKENS, stop="\n") + "\n"
    for branch in approaches:
        leaves = branch.fork(WIDTH)
        leaves += lambda j: CHECKS[j] + tines.gen(
            "check", max_tokens=THOUGHT_TOKENS, stop="\n") + "\nFinal answer:" + tines.gen(
            "answer", max_tokens=ANSWER_TOKENS, stop="\n")
        leaves.join()
    approaches.join()


def run_tines(backend: Any, inputs: list[dict[str, Any]]) -> list[Any]:
    states = tree.run_batch(inputs, backend=backend, progress_bar=False, **GREEDY)
    return answers(states, lambda s: {"thoughts": s["thought"], "checks": s["check"],
                                      "answers": s["answer"]})


def _run_peer(gen: Any, inputs: list[dict[str, Any]]) -> list[Any]:
    """Depth-first over the same tree; `gen(prompt, max_tokens)` stops at a newline."""
    out = []
    for x in inputs:
        trunk = PROMPT + "Problem: " + x["problem"] + "\n"
        result: dict[str, list] = {"thoughts": [], "checks": [], "answers": []}
        for i in range(WIDTH):
            prompt = trunk + _approach(i)
            thought = gen(prompt, THOUGHT_TOKENS)
            branch = prompt + thought + "\n"
            checks, finals = [], []
            for j in range(WIDTH):
                prompt = branch + CHECKS[j]
                check_text = gen(prompt, THOUGHT_TOKENS)
                checks.append(check_text)
                finals.append(gen(prompt + check_text + "\nFinal answer:", ANSWER_TOKENS))
            result["thoughts"].append(thought)
            result["checks"].append(checks)
            result["answers"].append(finals)
        out.append(result)
    return out


def run_transformers(hf: Any, inputs: list[dict[str, Any]]) -> list[Any]:
    return _run_peer(lambda prompt, k: hf.generate(prompt, k, stop=["\n"]), inputs)


def run_llama_cpp(llm: Any, inputs: list[dict[str, Any]]) -> list[Any]:
    return _run_peer(lambda prompt, k: llm.complete(prompt, k, stop=["\n"]), inputs)


def check(output: Any) -> bool:
    """Every fork completed: 3 thoughts, and 3 x 3 checks and answers, all text."""
    if not isinstance(output, dict):
        return False
    thoughts, checks, finals = output.get("thoughts"), output.get("checks"), output.get("answers")
    if not (isinstance(thoughts, list) and len(thoughts) == WIDTH
            and all(isinstance(t, str) for t in thoughts)):
        return False
    return all(isinstance(rows, list) and len(rows) == WIDTH
               and all(isinstance(row, list) and len(row) == WIDTH
                       and all(isinstance(v, str) for v in row) for row in rows)
               for rows in (checks, finals))
