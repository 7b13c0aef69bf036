"""PrefixIndex: the router's estimate of which replica caches which prompt prefix."""

from tines.runtime.replicas.prefix_index import PrefixIndex, prefix_keys
from tines.runtime.replicas.routed_request import prompt_text_of

SYSTEM = "You are a careful assistant who answers in one sentence. " * 4  # 228 chars


def test_keys_are_equal_exactly_for_equal_prefixes():
    a = prefix_keys(SYSTEM + "What is 2+2?", 16)
    b = prefix_keys(SYSTEM + "Name a prime.", 16)
    shared = len(SYSTEM) // 16
    assert a[:shared] == b[:shared]
    assert a[shared] != b[shared]  # the block where the prompts part


def test_match_counts_leading_blocks_per_replica():
    index = PrefixIndex(block_chars=16, capacity_blocks=1000)
    index.insert("r1", SYSTEM + "What is 2+2?")
    index.insert("r2", "A different system prompt entirely, long enough to fill blocks.")
    matched = index.match(SYSTEM + "Name a prime.", ["r1", "r2", "r3"])
    assert matched == {"r1": len(SYSTEM) // 16 * 16, "r2": 0, "r3": 0}


def test_text_shorter_than_a_block_matches_nothing():
    index = PrefixIndex(block_chars=64)
    index.insert("r1", "short")
    assert index.match("short", ["r1"]) == {"r1": 0}


def test_capacity_evicts_the_least_recently_used_tails_first():
    index = PrefixIndex(block_chars=4, capacity_blocks=6)
    old, new = "aaaabbbbccccdddd", "eeeeffffgggghhhh"
    index.insert("r", old)
    index.insert("r", new)
    index.check()
    assert index.size("r") == 6
    assert index.match(new, ["r"]) == {"r": 16}  # the newest prompt is whole
    assert index.match(old, ["r"]) == {"r": 8}  # the old one lost its tail, kept its head


def test_keep_only_forgets_removed_replicas_and_adds_new_ones():
    index = PrefixIndex(block_chars=4)
    index.insert("gone", "aaaabbbb")
    index.keep_only(["new"])
    assert index.replicas == ["new"]
    assert index.match("aaaabbbb", ["gone", "new"]) == {"gone": 0, "new": 0}


def test_prompt_text_of_native_openai_and_chat_bodies():
    assert prompt_text_of(b'{"text": "hello", "sampling_params": {}}') == "hello"
    assert prompt_text_of(b'{"text": ["first", "second"]}') == "first"
    assert prompt_text_of(b'{"model": "m", "prompt": "once upon"}') == "once upon"
    chat = b'{"messages": [{"role": "system", "content": "be brief"}, ' \
           b'{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}'
    assert prompt_text_of(chat) == "system\nbe brief\nuser\nhi\n"
    assert prompt_text_of(b"not json") == ""
    assert prompt_text_of(b"[1, 2]") == ""


def test_a_prefix_several_prompts_go_on_from_is_a_branch_point():
    index = PrefixIndex(block_chars=16, capacity_blocks=1000)
    index.insert("r1", SYSTEM + "What is 2+2? Please answer it.")
    shared = len(SYSTEM) // 16 * 16
    assert not index.branches_after("r1", SYSTEM, shared)  # one prompt so far: its own text
    index.insert("r1", SYSTEM + "Name a prime, any prime at all.")
    assert index.branches_after("r1", SYSTEM + "Name a prime.", shared)
    assert not index.branches_after("r2", SYSTEM, shared)  # another replica saw none


def test_one_conversations_growing_history_is_not_a_branch_point():
    index = PrefixIndex(block_chars=16, capacity_blocks=1000)
    turn1 = SYSTEM + "User: hello there, how are you?\nAssistant: fine, thanks.\n"
    turn2 = turn1 + "User: and the weather today?\nAssistant: sunny.\n"
    index.insert("r1", turn1)
    index.insert("r1", turn2)
    index.insert("r1", turn2 + "User: thanks!\n")
    assert not index.branches_after("r1", turn2, len(turn2) // 16 * 16)
