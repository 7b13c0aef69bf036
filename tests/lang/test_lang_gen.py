from __future__ import annotations

import asyncio

import pydantic
import pytest

import tines
from tines.runtime.outputs import Completion, RequestOutput


@tines.program
def one_gen(s, opts=None):
    """One gen; `opts` are its arguments (run keywords are run-wide sampling defaults)."""
    s += "Q: 2+2?\nA: " + tines.gen("a", **(opts or {}))


def test_gen_appends_the_reply_and_sets_the_variable():
    mock = tines.MockBackend(["4"])
    state = one_gen.run(backend=mock)
    assert state.text() == "Q: 2+2?\nA: 4"
    assert state["a"] == "4"
    assert mock.requests[0].text == "Q: 2+2?\nA: "


def test_sglang_spellings_map_onto_sampling_params():
    mock = tines.MockBackend(["4"])
    one_gen.run(backend=mock, max_tokens=7, min_tokens=2, stop="\n", stop_token_ids=[5],
                temperature=0.3, top_p=0.9, top_k=20, min_p=0.05, frequency_penalty=0.1,
                presence_penalty=0.2, ignore_eos=True, return_logprob=True, top_logprobs_num=3,
                seed=11)
    p = mock.requests[0].params
    assert (p.max_new_tokens, p.min_new_tokens, p.stop, p.stop_token_ids) == (7, 2, ["\n"], [5])
    assert (p.temperature, p.top_p, p.top_k, p.min_p) == (0.3, 0.9, 20, 0.05)
    assert (p.frequency_penalty, p.presence_penalty, p.ignore_eos) == (0.1, 0.2, True)
    assert (p.logprobs, p.top_logprobs, p.seed) == (True, 3, 11)


def test_gen_arguments_override_run_defaults():
    @tines.program
    def prog(s):
        s += tines.gen("a", max_tokens=5) + tines.gen("b")

    mock = tines.MockBackend(["x", "y"])
    prog.run(backend=mock, max_new_tokens=50, temperature=0)
    first, second = (r.params for r in mock.requests)
    assert (first.max_new_tokens, first.temperature) == (5, 0)
    assert (second.max_new_tokens, second.temperature) == (50, 0)


def test_stop_string_ends_the_variable():
    state = one_gen.run(backend=tines.MockBackend(["4\nQ: next"]), stop="\n")
    assert state["a"] == "4"
    assert state.get_meta_info("a").matched_stop == "\n"


def test_max_tokens_cut_reports_length():
    state = one_gen.run(backend=tines.MockBackend(["abcdef"]), max_tokens=3)
    meta = state.get_meta_info("a")
    assert state["a"] == "abc"
    assert (meta.finish_reason, meta.completion_tokens) == ("length", 3)


def test_meta_counts_prompt_and_cached_tokens():
    @tines.program
    def prog(s):
        s += "abc" + tines.gen("x") + "d" + tines.gen("y")

    state = prog.run(backend=tines.MockBackend(["1", "2"]))
    first, second = state.get_meta_info("x"), state.get_meta_info("y")
    assert (first.prompt_tokens, first.cached_tokens) == (3, 0)
    assert (second.prompt_tokens, second.cached_tokens) == (5, 4)  # "abc1" seen before
    assert second["prompt_tokens"] == 5


def test_return_logprob_fills_meta_logprobs():
    mock = tines.MockBackend(["ok"], token_logprob=-0.25)
    state = one_gen.run(backend=mock, return_logprob=True, top_logprobs_num=1)
    logprobs = state.get_meta_info("a").logprobs
    assert [(t.token, t.logprob) for t in logprobs] == [("o", -0.25), ("k", -0.25)]
    assert len(logprobs[0].top) == 1


def test_min_tokens_is_sent():
    mock = tines.MockBackend(["4444"])
    one_gen.run(backend=mock, min_tokens=4, max_tokens=8)
    assert mock.requests[0].params.min_new_tokens == 4


@pytest.mark.parametrize("dtype, reply, value", [
    (int, "-12", -12), (float, "2.5", 2.5), (bool, "True", True), (bool, "False", False),
    (str, '"hi there"', "hi there"), ("int", "7", 7),
])
def test_dtype_constrains_and_converts(dtype, reply, value):
    mock = tines.MockBackend([reply])
    state = one_gen.run(backend=mock, opts={"dtype": dtype})
    assert state["a"] == value and type(state["a"]) is type(value)
    assert state.text().endswith(reply)
    assert mock.requests[0].params.regex is not None


def test_gen_int_and_gen_string():
    @tines.program
    def prog(s):
        s += tines.gen_int("n") + " " + tines.gen_string("w")

    state = prog.run(backend=tines.MockBackend(["42", '"cat"']))
    assert (state["n"], state["w"]) == (42, "cat")


def test_dtype_value_that_does_not_parse_names_the_variable():
    bad = RequestOutput("r", [1], [Completion(0, "x1", [1], "stop")])
    with pytest.raises(ValueError, match=r"gen 'a'.*'x1'.*int"):
        one_gen.run(backend=tines.MockBackend([bad]), opts={"dtype": int})


def test_regex_is_sent_and_the_text_kept():
    mock = tines.MockBackend(["2024-01-31"])
    state = one_gen.run(backend=mock, opts={"regex": r"\d{4}-\d{2}-\d{2}"})
    assert mock.requests[0].params.regex == r"\d{4}-\d{2}-\d{2}"
    assert state["a"] == "2024-01-31"


class Person(pydantic.BaseModel):
    name: str
    age: int


def test_json_schema_pydantic_class_gives_a_validated_instance():
    mock = tines.MockBackend(['{"name": "Ada", "age": 36}'])
    state = one_gen.run(backend=mock, opts={"json_schema": Person})
    assert state["a"] == Person(name="Ada", age=36)
    assert mock.requests[0].params.json_schema == Person.model_json_schema()


def test_json_schema_dict_is_sent_and_the_text_kept():
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    mock = tines.MockBackend(['{"x": 1}'])
    state = one_gen.run(backend=mock, opts={"json_schema": schema})
    assert mock.requests[0].params.json_schema == schema
    assert state["a"] == '{"x": 1}'


def test_json_that_fails_validation_names_the_model():
    bad = RequestOutput("r", [1], [Completion(0, '{"name": "Ada"}', [1], "stop")])
    with pytest.raises(ValueError, match="Person"):
        one_gen.run(backend=tines.MockBackend([bad]), opts={"json_schema": Person})


def test_n_completions_give_a_list_and_the_text_gets_the_first():
    mock = tines.MockBackend([["a", "b", "c"]])
    state = one_gen.run(backend=mock, opts={"n": 3})
    assert state["a"] == ["a", "b", "c"]
    assert state.text().endswith("A: a")
    assert mock.requests[0].params.n == 3
    assert len(state.get_meta_info("a").completions) == 3


def test_n_completions_convert_each_value():
    state = one_gen.run(backend=tines.MockBackend([["1", "2", "3"]]), opts={"n": 3, "dtype": int})
    assert state["a"] == [1, 2, 3]


def test_gen_with_choices_is_a_select():
    mock = tines.MockBackend(scores=[{"yes": [-2.0], "no": [-0.5]}])
    state = one_gen.run(backend=mock, opts={"choices": ["yes", "no"]})
    assert state["a"] == "no"
    assert [r.kind for r in mock.requests] == ["score"]


@pytest.mark.parametrize("kwargs, error, message", [
    ({"temperature": -1}, ValueError, "temperature"),
    ({"regex": "("}, ValueError, "does not compile"),
    ({"dtype": list}, TypeError, "dtype"),
    ({"dtype": int, "regex": "a"}, ValueError, "only one of"),
    ({"bogus": 1}, TypeError, "bogus"),
    ({"max_tokens": 3, "max_new_tokens": 4}, ValueError, "given twice"),
    ({"json_schema": 3}, TypeError, "json_schema"),
])
def test_bad_gen_arguments_raise_at_the_call(kwargs, error, message):
    with pytest.raises(error, match=message):
        tines.gen("x", **kwargs)


def test_gen_name_must_be_a_string():
    with pytest.raises(TypeError, match="name"):
        tines.gen(3)


@pytest.mark.parametrize("value", [5, None, 2.0])
def test_appending_a_non_text_value_is_a_type_error(value):
    @tines.program
    def prog(s):
        s += value

    with pytest.raises(TypeError, match="cannot append"):
        prog.run(backend=tines.MockBackend())


class RefusingBackend(tines.MockBackend):
    """A backend that refuses every request's constraint, as an engine or server does."""

    def generate(self, text, params):
        raise ValueError("unknown type 'objekt' at #")

    async def agenerate(self, text, params):
        return self.generate(text, params)


def test_a_refused_request_names_the_gen_that_asked_for_it():
    with pytest.raises(ValueError, match=r"^gen 'a': unknown type 'objekt' at #$"):
        one_gen.run(backend=RefusingBackend())
    with pytest.raises(ValueError, match=r"^gen 'a': unknown type"):
        asyncio.run(one_gen.arun(backend=RefusingBackend()))


def test_a_stop_that_is_neither_a_string_nor_a_list_is_named():
    with pytest.raises(ValueError, match="gen 'a': stop: must be a string or a list"):
        tines.gen("a", stop=5)
