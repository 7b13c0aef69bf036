"""Radix sharing is real: the engine's own counters show a fork's trunk and a batch's shared
few-shot prefix computed once, whether the program runs in-process or over HTTP (the test
server serves the same engine, so its counters are the ones read here).

`prefill_tokens_computed` counts prompt tokens run through the model; `cache_hit_tokens`
counts prompt tokens a request found in the radix cache when it was admitted. Each test
starts from text the cache has never seen (a fresh nonce); the trunk test also flushes the
cache first, since a nonce can still share its first tokens with an earlier test's. The
counters are the engine's, shared by the session: a measurement during which requests other
than the program's ran (a late request of an earlier test) is taken again.
"""

from __future__ import annotations

import itertools
import uuid

import pytest

import tines

pytestmark = pytest.mark.model

SENTENCES = [
    "The river runs through the old town and past the mill.",
    "Every morning the baker opens the shop before sunrise.",
    "Children play football in the square after school.",
    "The library keeps maps of the valley from three centuries ago.",
    "In winter the lake freezes and people skate on it.",
]


def counters(engine) -> dict[str, int]:
    s = engine.stats()
    return {"computed": s["prefill_tokens_computed"], "hits": s["cache_hit_tokens"],
            "requests": s["num_requests"]}


def measured_alone(engine, run, num_requests: int, attempts: int = 3):
    """(run()'s result, counter deltas) from an attempt during which the engine admitted
    exactly the program's `num_requests` requests."""
    for _ in range(attempts):
        before = counters(engine)
        result = run()
        used = {k: v - before[k] for k, v in counters(engine).items()}
        if used["requests"] == num_requests:
            return result, used
    raise AssertionError(f"other requests ran during each of {attempts} attempts: {used}")


def trunk_of(num_tokens: int, tokenizer) -> str:
    """A story of about `num_tokens` tokens that no earlier request has seen."""
    text = f"Story {uuid.uuid4().hex}.\n"
    for sentence in itertools.cycle(SENTENCES):
        if len(tokenizer.encode(text)) >= num_tokens:
            return text
        text += sentence + "\n"
    raise AssertionError("unreachable")


@tines.program
def four_branches(s, trunk):
    s += trunk
    forks = s.fork(4)
    forks += lambda i: "Branch " + str(i) + ":" + tines.gen("word", max_tokens=2)
    forks.join()


def test_fork_of_four_computes_a_500_token_trunk_once(backend, default_engine):
    tokenizer = default_engine.tokenizer

    def run():
        trunk = trunk_of(500, tokenizer)
        assert default_engine.flush_cache()
        return trunk, four_branches.run(trunk, backend=backend, temperature=0)

    (trunk, state), used = measured_alone(default_engine, run, num_requests=1 + 4)
    trunk_tokens = len(tokenizer.encode(trunk))
    assert 500 <= trunk_tokens < 530
    assert len(state["word"]) == 4
    # The trunk once, plus each branch's own handful of tokens: not 4 x 500.
    assert trunk_tokens <= used["computed"] <= trunk_tokens + 4 * 8, used
    # Every branch found the whole trunk cached.
    assert used["hits"] >= 4 * (trunk_tokens - 1)
    assert all(m.cached_tokens >= trunk_tokens - 1 for m in state.get_meta_info("word"))


GOOD = ["wonderful", "excellent", "delightful", "fantastic"]
BAD = ["terrible", "awful", "disappointing", "horrible"]
THINGS = ["hotel", "pizza", "movie", "phone"]


def few_shot_prefix(tokenizer) -> str:
    prefix = f"Task {uuid.uuid4().hex}: classify the sentiment of each review as positive " \
             f"or negative.\n\n"
    for i, sentence in enumerate(SENTENCES * 2):
        label = "positive" if i % 2 == 0 else "negative"
        tone = "I loved it." if label == "positive" else "I hated it."
        prefix += f"Review: {sentence} {tone}\nSentiment: {label}\n\n"
    return prefix


@tines.program
def classify(s, review, prefix):
    s += prefix + "Review: " + review + "\nSentiment: "
    s += tines.select("label", ["positive", "negative"])


def test_run_batch_of_32_prefills_the_shared_prefix_once(backend, default_engine):
    tokenizer = default_engine.tokenizer
    items = [(f"The {thing} was {adj}.", label) for adjs, label in ((GOOD, "positive"),
                                                                    (BAD, "negative"))
             for adj in adjs for thing in THINGS]
    assert len(items) == 32

    def run():
        prefix = few_shot_prefix(tokenizer)
        return prefix, classify.bind(prefix=prefix).run_batch(
            [{"review": r} for r, _ in items], backend=backend, progress_bar=False)

    # the prefix warmed from the trace, then one select per item
    (prefix, states), used = measured_alone(default_engine, run, num_requests=1 + 32)
    shared = prefix + "Review: "  # the static text every item starts with
    shared_tokens = len(tokenizer.encode(shared))
    own = sum(len(tokenizer.encode(shared + review + "\nSentiment: positive")) - shared_tokens
              for review, _ in items)
    assert all(s.error() is None for s in states)
    correct = sum(s["label"] == label for s, (_, label) in zip(states, items))
    assert correct >= 28, [s["label"] for s in states]
    # The prefix once (warmed from the trace), then each item's own tokens for its two
    # choices: nowhere near 32 x the prefix.
    assert shared_tokens > 250
    assert used["computed"] <= shared_tokens + 2 * own + 32 * 2
    assert used["hits"] >= 32 * (shared_tokens - 1)  # every item's select (one request) hit it
