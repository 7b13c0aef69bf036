"""The prefix router's decision on hand-made replica states: follow a real match, ignore a
shared header, send new prefixes to the emptiest cache, let load win when queues diverge."""

from __future__ import annotations

import pytest

from tines.runtime.replicas.prefix_choice import AffinityPolicy, rank_replicas

POLICY = AffinityPolicy(imbalance_threshold=8, min_match_chars=64, min_match_fraction=0.1)


def test_a_long_match_goes_to_its_replica_first():
    ranks = rank_replicas(["a", "b"], {"a": 3, "b": 0}, {"a": 100, "b": 10},
                          {"a": 4000, "b": 0}, 4400, POLICY)
    assert ranks == [["a"], ["b"]]


def test_a_shared_header_alone_is_not_followed():
    """64 of 4,400 characters (an MMLU header line) is under 10%: a new subject goes to the
    replica whose cache holds least, not to the one that saw another subject first."""
    ranks = rank_replicas(["a", "b"], {"a": 0, "b": 0}, {"a": 70, "b": 0},
                          {"a": 64, "b": 0}, 4400, POLICY)
    assert ranks == [["b"], ["a"]]


def test_a_short_prompt_matched_whole_is_followed():
    ranks = rank_replicas(["a", "b"], {"a": 0, "b": 0}, {"a": 0, "b": 5},
                          {"a": 0, "b": 40}, 40, POLICY)
    assert ranks == [["b"], ["a"]]


def test_new_prefixes_alternate_as_caches_fill():
    sizes = {"a": 0, "b": 0}
    chosen = []
    for _ in range(4):
        first = rank_replicas(["a", "b"], {"a": 0, "b": 0}, sizes, {}, 4400, POLICY)[0][0]
        chosen.append(first)
        sizes[first] += 70
    assert chosen == ["a", "b", "a", "b"]


def test_diverged_queues_rank_by_load_alone():
    ranks = rank_replicas(["a", "b"], {"a": 12, "b": 2}, {"a": 100, "b": 10},
                          {"a": 4000, "b": 0}, 4400, POLICY)
    assert ranks == [["b", "a"]]


def test_no_prompt_ranks_by_load():
    assert rank_replicas(["a", "b"], {"a": 1, "b": 0}, {"a": 0, "b": 0}, {}, 0, POLICY) == [
        ["b", "a"]]


def test_bad_policy_is_refused():
    with pytest.raises(ValueError):
        AffinityPolicy(min_match_fraction=1.5)


def test_a_short_shared_prefix_is_computed_again_on_an_idle_replica():
    """A system prompt (240 characters that many conversations share) on a busy replica: the
    new conversation goes to the idle one, which computes the system prompt again."""
    ranks = rank_replicas(["a", "b"], {"a": 1, "b": 0}, {"a": 50, "b": 0},
                          {"a": 240, "b": 0}, 320, POLICY, shared=lambda r: r == "a")
    assert ranks == [["b", "a"]]


def test_a_conversations_own_history_is_followed_to_the_busier_replica():
    ranks = rank_replicas(["a", "b"], {"a": 1, "b": 0}, {"a": 50, "b": 5},
                          {"a": 600, "b": 240}, 700, POLICY, shared=lambda r: False)
    assert ranks == [["a"], ["b"]]


def test_a_long_shared_prefix_is_followed_to_the_busier_replica():
    """A few-shot prefix of 4,000 characters: worth waiting for, shared or not."""
    ranks = rank_replicas(["a", "b"], {"a": 3, "b": 0}, {"a": 100, "b": 10},
                          {"a": 4000, "b": 0}, 4400, POLICY, shared=lambda r: True)
    assert ranks == [["a"], ["b"]]
