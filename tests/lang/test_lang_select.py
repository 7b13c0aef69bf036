from __future__ import annotations

import math

import pytest

import tines
from tines.backend import ScoreResult

# ---- the three methods on hand-made logprobs ---------------------------------------------


def test_token_length_normalized_picks_the_best_mean():
    # means: -1.0, -0.5, -0.75
    decision = tines.token_length_normalized([[-1.0], [-0.2, -0.8], [-0.5, -1.0]])
    assert decision.index == 1
    assert decision.scores == pytest.approx([-1.0, -0.5, -0.75])


def test_token_length_normalized_ignores_length_unlike_a_sum():
    # sums favour the short choice (-0.9 > -1.2); means favour the long one (-0.9 < -0.4)
    decision = tines.token_length_normalized([[-0.9], [-0.4, -0.4, -0.4]])
    assert decision.index == 1


def test_ties_go_to_the_earliest_choice():
    assert tines.token_length_normalized([[-1.0], [-1.0]]).index == 0
    assert tines.greedy_token_selection([[-1.0], [-1.0]]).index == 0


def test_greedy_decides_on_the_first_token_that_differs():
    # equal first token; at the second, choice 2 leads even though its mean is the worst
    logprobs = [[-0.1, -0.9, -0.1], [-0.1, -0.8, -5.0], [-0.1, -0.9, -0.2]]
    decision = tines.greedy_token_selection(logprobs)
    assert decision.index == 1
    assert tines.token_length_normalized(logprobs).index == 0


def test_greedy_pads_a_shorter_choice_with_its_mean():
    # choice 0 has one token (-0.5); past its end it counts as -0.5, beating -0.7
    decision = tines.greedy_token_selection([[-0.5], [-0.5, -0.7]])
    assert decision.index == 0
    assert decision.detail["greedy_logprob_matrix"] == [[-0.5, -0.5], [-0.5, -0.7]]


def test_unconditional_normalization_rewards_the_lift_from_the_prompt():
    cond = [[-1.0, -1.0], [-2.0]]  # choice 0 is likelier given the prompt...
    uncond = [[-0.5, -0.5], [-4.0]]  # ...but is common anyway; choice 1 gained 2 nats
    decision = tines.unconditional_likelihood_normalized(cond, uncond)
    assert decision.index == 1
    assert decision.scores == pytest.approx([-0.5, 2.0])


def test_unconditional_normalization_needs_the_unconditional_logprobs():
    with pytest.raises(ValueError, match="unconditional"):
        tines.unconditional_likelihood_normalized([[-1.0]], None)


def test_unconditional_normalization_checks_token_counts():
    with pytest.raises(ValueError, match="choice 0"):
        tines.unconditional_likelihood_normalized([[-1.0, -1.0]], [[-1.0]])


def test_a_choice_without_tokens_never_wins():
    decision = tines.token_length_normalized([[], [-3.0]])
    assert decision.index == 1 and decision.scores[0] == -math.inf


# ---- select in a program -----------------------------------------------------------------


@tines.program
def classify(s, text, method=tines.token_length_normalized):
    s += "Text: " + text + "\nSentiment: "
    s += tines.select("label", choices=["positive", "negative", "neutral"],
                      choices_method=method)
    s += "."


def test_select_appends_the_choice_and_sets_the_variable():
    mock = tines.MockBackend(scores=[{"positive": [-0.3, -0.2], "negative": [-2.0],
                                      "neutral": [-1.0, -1.0]}])
    state = classify.run("great!", backend=mock)
    assert state["label"] == "positive"
    assert state.text() == "Text: great!\nSentiment: positive."


def test_select_scores_all_choices_in_one_request_on_the_prefix():
    mock = tines.MockBackend(scores=[{"positive": [-1.0], "negative": [-0.1],
                                      "neutral": [-1.0]}])
    classify.run("awful", backend=mock)
    (request,) = mock.requests
    assert request.kind == "score"
    assert request.text == "Text: awful\nSentiment: "
    assert request.choices == ("positive", "negative", "neutral")
    assert request.unconditional is False


def test_select_meta_gives_every_choice_score():
    mock = tines.MockBackend(scores=[{"positive": [-1.0, -3.0], "negative": [-0.1],
                                      "neutral": [-1.0]}])
    meta = classify.run("awful", backend=mock).get_meta_info("label")
    assert meta.scores == pytest.approx([-2.0, -0.1, -1.0])
    assert (meta.method, meta.index, meta.decision) == \
        ("token_length_normalized", 1, "negative")
    assert [[t.logprob for t in row] for row in meta.logprobs] == [[-1.0, -3.0], [-0.1], [-1.0]]


def test_select_with_unconditional_method_asks_for_unconditional_logprobs():
    cond = {"positive": [-1.0], "negative": [-1.5], "neutral": [-1.2]}
    uncond = {"positive": [-0.5], "negative": [-4.0], "neutral": [-1.0]}
    mock = tines.MockBackend(scores=[(cond, uncond)])
    state = classify.run("meh", tines.unconditional_likelihood_normalized, backend=mock)
    assert mock.requests[0].unconditional is True
    assert state["label"] == "negative"
    assert state.get_meta_info("label").scores == pytest.approx([-0.5, 2.5, -0.2])


def test_select_with_greedy_method():
    mock = tines.MockBackend(scores=[{"positive": [-0.1, -3.0], "negative": [-0.2],
                                      "neutral": [-0.1, -0.2]}])
    state = classify.run("ok", tines.greedy_token_selection, backend=mock)
    assert state["label"] == "neutral"


def test_select_accepts_a_score_result_from_the_backend():
    from tines.runtime.outputs import TokenLogprob
    result = ScoreResult([[TokenLogprob(1, "a", -2.0)], [TokenLogprob(2, "b", -1.0)]],
                         num_prompt_tokens=9, num_cached_tokens=4)

    @tines.program
    def prog(s):
        s += tines.select("x", choices=["a", "b"])

    state = prog.run(backend=tines.MockBackend(scores=[result]))
    meta = state.get_meta_info("x")
    assert state["x"] == "b" and (meta.prompt_tokens, meta.cached_tokens) == (9, 4)


@pytest.mark.parametrize("choices, message", [
    ([], "non-empty"), (["a", "a"], "distinct"), (["a", ""], "non-empty string"), (None, "list"),
])
def test_bad_choices_raise(choices, message):
    with pytest.raises(ValueError, match=message):
        tines.select("x", choices=choices)


def test_select_rejects_a_method_that_is_not_one():
    with pytest.raises(TypeError, match="choices_method"):
        tines.select("x", choices=["a"], choices_method="greedy")


def test_select_with_temperature_samples_by_score():
    @tines.program
    def prog(s):
        s += tines.select("x", choices=["likely", "unlikely"], temperature=1.0)

    scores = [{"likely": [0.0], "unlikely": [-60.0]}] * 20  # exp(-60): never drawn
    mock = tines.MockBackend(scores=scores)
    picks = {prog.run(backend=mock)["x"] for _ in range(20)}
    assert picks == {"likely"}
