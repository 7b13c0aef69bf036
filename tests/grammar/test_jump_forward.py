"""Jump-forward: forced text appended as the tokenizer would tokenize it."""

from __future__ import annotations


from tines.grammar import GrammarCompiler, GrammarSpec, TokenVocabulary
from tines.grammar.jump_forward import apply_jump_forward, jump_forward

PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                           "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}


def _decode(vocab, ids) -> str:
    return b"".join(vocab.token_bytes[t] for t in ids).decode()


def test_retokenizes_across_the_boundary(real_compiler, encode):
    g = real_compiler.compile(GrammarSpec.json_schema(PERSON))
    m = g.matcher()
    seq = encode("{")
    assert m.accept_tokens(seq)
    jf = jump_forward(m, seq, encode)
    assert jf.num_retract == 1  # "{" is re-spelled as part of '{"'
    assert jf.append_ids == encode('{"name":"')
    assert jf.num_saved == 2
    apply_jump_forward(m, jf)
    seq = seq[:-jf.num_retract] + jf.append_ids
    assert _decode(g.vocab, seq) == '{"name":"'
    assert m.num_tokens == 3 and m.accept_tokens(encode('Ann",'))


def test_from_the_start_nothing_is_retracted(real_compiler, encode):
    m = real_compiler.compile(GrammarSpec.json_schema(PERSON)).matcher()
    jf = jump_forward(m, [], encode)
    assert jf.num_retract == 0 and jf.append_ids == encode('{"name":"')


def test_forced_separator_and_next_key(real_compiler, encode):
    g = real_compiler.compile(GrammarSpec.json_schema(PERSON))
    m = g.matcher()
    seq = encode('{"name":"Ann"')
    assert m.accept_tokens(seq)
    jf = jump_forward(m, seq, encode)
    apply_jump_forward(m, jf)
    seq = seq[:len(seq) - jf.num_retract] + jf.append_ids
    assert _decode(g.vocab, seq) == '{"name":"Ann","age":'
    assert seq == encode('{"name":"Ann","age":')  # the tokenizer's own split


def test_leaves_a_token_that_could_merge_with_what_follows(real_compiler, encode):
    # With ", " / ": " the forced text ends in ' "'; tokens like ' "$' also start with it,
    # so the model, not jump-forward, decides how that quote is tokenized.
    g = real_compiler.compile(GrammarSpec.json_schema(PERSON, separators=(", ", ": ")))
    m = g.matcher()
    jf = jump_forward(m, [], encode)
    assert _decode(g.vocab, jf.append_ids) == '{"name":'
    apply_jump_forward(m, jf)
    assert m.forced_text() == ' "'


def test_nothing_forced_gives_none(real_compiler, encode):
    m = real_compiler.compile(GrammarSpec.regex(r"[a-z]+")).matcher()
    assert jump_forward(m, [], encode) is None


def test_choices_share_a_forced_prefix(real_compiler, encode):
    g = real_compiler.compile(GrammarSpec.choices(["Answer: yes", "Answer: no"]))
    jf = jump_forward(g.matcher(), [], encode)
    assert _decode(g.vocab, jf.append_ids) in ("Answer:", "Answer: ")


def test_hand_made_vocabulary_exact_plan():
    #         0     1     2      3     4       5      6     7     8
    vocab = TokenVocabulary([b"{", b'"', b'{"', b"ab", b'ab":', b":", b"c", b"a", b"b", None],
                            [9])
    table = {'{"ab":': [2, 4], "{": [0], '{"ab": c': [2, 4]}

    def enc(text):
        return table[text]

    g = GrammarCompiler(vocab).compile(GrammarSpec.regex(r'\{"ab":c*'))
    m = g.matcher()
    m.accept_token(0)
    jf = jump_forward(m, [0], enc)
    assert jf == (1, [2, 4], '{"ab":')


def test_unicode_forced_text_stops_on_a_character(real_compiler, encode):
    g = real_compiler.compile(GrammarSpec.regex("naïve [ab]"))
    jf = jump_forward(g.matcher(), [], encode)
    assert _decode(g.vocab, jf.append_ids) in ("naïve", "naïve ")
