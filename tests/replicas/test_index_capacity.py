"""The prefix router's index is sized from the replicas' KV pool, so it forgets prefixes about
when the engines evict them."""

from __future__ import annotations

import pytest

pytest.importorskip("ray")

from tines.runtime.engine.config import EngineConfig  # noqa: E402
from tines.runtime.replicas.prefix_index import PrefixIndex  # noqa: E402
from tines.runtime.replicas.routers import (  # noqa: E402
    CHARS_PER_TOKEN,
    DEFAULT_KV_TOKENS,
    index_capacity_blocks,
    prefix_router_options,
    replica_kv_tokens,
)


def test_capacity_is_the_pools_tokens_in_characters():
    assert index_capacity_blocks(6144, 64) == 6144 * CHARS_PER_TOKEN // 64 == 384


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError):
        index_capacity_blocks(0, 64)


def test_kv_tokens_wins_over_max_kv_tokens():
    assert replica_kv_tokens({"kv_tokens": 6144, "max_kv_tokens": 100_000}) == 6144
    assert replica_kv_tokens({"kv_tokens": None, "max_kv_tokens": 100_000}) == 100_000


def test_without_a_size_the_engines_default_cap_is_assumed():
    assert replica_kv_tokens({"model": "m"}) == DEFAULT_KV_TOKENS == EngineConfig().max_kv_tokens


def test_router_options_follow_the_pool_unless_set():
    assert prefix_router_options({"kv_tokens": 2048}) == {"capacity_blocks": 128}
    assert prefix_router_options({"kv_tokens": 2048}, {"block_chars": 32}) == {
        "block_chars": 32, "capacity_blocks": 256}
    assert prefix_router_options({"kv_tokens": 2048}, {"capacity_blocks": 7}) == {
        "capacity_blocks": 7}


def test_an_index_sized_from_a_small_pool_forgets_what_the_pool_cannot_hold():
    """A 64-token pool holds ~256 characters: after two 192-character prompts, the first
    one's tail is forgotten, the second is whole."""
    options = prefix_router_options({"kv_tokens": 64})
    index = PrefixIndex(64, options["capacity_blocks"])
    first, second = "a" * 192, "b" * 192
    index.insert("r", first)
    index.insert("r", second)
    index.check()
    assert index.match(second, ["r"]) == {"r": 192}
    assert index.match(first, ["r"]) == {"r": 64}
