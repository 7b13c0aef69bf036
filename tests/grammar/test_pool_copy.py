"""Grammars start from a copy of a prepared pool (`compiler.base_pool`): the copy grows on
its own and compiles to the same language as a fresh pool."""

from __future__ import annotations

from tines.grammar import CompiledGrammar, GrammarSpec
from tines.grammar.compiler import base_pool
from tines.grammar.expr import ExprPool
from tines.grammar.json_strings import json_chars


def test_a_copy_grows_without_touching_the_original():
    base = ExprPool()
    a = base.literal(b"ab")
    num_nodes, memo_keys = len(base), set(base.memo)
    copy = base.copy()
    assert copy.literal(b"ab") == a  # same ids for what was there
    copy.literal(b"xyz")
    json_chars(copy, ((0x41, 0x5A),))
    copy.deriv(a, ord("a"))
    assert len(base) == num_nodes and set(base.memo) == memo_keys
    assert len(copy) > num_nodes


def test_grammars_from_the_base_pool_accept_what_fresh_pools_accept(full_byte_vocab):
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 3},
              "n": {"type": "number"}}, "required": ["name"]}
    num_nodes = len(base_pool(full_byte_vocab))
    g1 = CompiledGrammar(GrammarSpec.json_schema(schema), full_byte_vocab)
    g2 = CompiledGrammar(GrammarSpec.json_schema(schema), full_byte_vocab)
    assert len(base_pool(full_byte_vocab)) == num_nodes  # grammars copy it, never grow it
    for text, ok in [('{"name":"abc"}', True), ('{"name":"abcd"}', False),
                     ('{"name":"a","n":-1.5e3}', True), ('{"n":1}', False)]:
        assert g1.accepts_text(text) is ok and g2.accepts_text(text) is ok, text
