from __future__ import annotations

import pytest

import tines
from tests.lang.lang_scripts import by_suffix


def test_program_and_function_make_programs():
    @tines.function
    def f(s):
        s += "x"

    @tines.program()
    def g(s):
        s += "y"

    assert isinstance(f, tines.Program) and isinstance(g, tines.Program)
    assert f.run(backend=tines.MockBackend()).text() == "x"


def test_a_program_needs_a_state_parameter():
    with pytest.raises(TypeError, match="first parameter must be the state"):
        tines.program(lambda: None)


def test_run_returns_the_state_with_the_bodys_return_value():
    @tines.program
    def prog(s, x):
        s += x
        return x * 2

    state = prog.run("ab", backend=tines.MockBackend())
    assert state.ret_value == "abab"


def test_calling_a_program_without_a_state_runs_it():
    @tines.program
    def prog(s, x):
        s += x

    assert prog("hi", backend=tines.MockBackend()).text() == "hi"


def test_nested_program_appends_to_the_same_state():
    @tines.program
    def ask(s, question):
        s += "Q: " + question + "\nA: " + tines.gen("answer", stop="\n") + "\n"

    @tines.program
    def quiz(s):
        ask(s, "1+1?")
        s += "Again. "
        ask(s, question="2+2?")

    state = quiz.run(backend=tines.MockBackend(["2", "4"]))
    assert state.text() == "Q: 1+1?\nA: 2\nAgain. Q: 2+2?\nA: 4\n"
    assert state["answer"] == "4"


def test_bind_fixes_arguments():
    @tines.program
    def greet(s, greeting, name):
        s += greeting + ", " + name

    hello = greet.bind(greeting="Hello")
    assert hello.run(name="Ada", backend=tines.MockBackend()).text() == "Hello, Ada"
    assert greet.run("Hi", "Bo", backend=tines.MockBackend()).text() == "Hi, Bo"


def test_bind_rejects_unknown_arguments():
    @tines.program
    def greet(s, name):
        s += name

    with pytest.raises(TypeError, match="unknown argument"):
        greet.bind(nmae="x")


def test_run_rejects_an_argument_that_is_neither_parameter_nor_sampling():
    @tines.program
    def prog(s, x):
        s += x

    with pytest.raises(TypeError, match="unexpected argument 'y'"):
        prog.run("a", y=1, backend=tines.MockBackend())


def test_run_reports_missing_arguments_before_running():
    @tines.program
    def prog(s, x):
        s += x

    mock = tines.MockBackend()
    with pytest.raises(TypeError, match=r"prog\(\).*missing"):
        prog.run(backend=mock)
    assert mock.requests == []


def test_run_rejects_constraints_as_run_defaults():
    @tines.program
    def prog(s):
        s += tines.gen("x")

    with pytest.raises(ValueError, match="regex constrains one gen"):
        prog.run(backend=tines.MockBackend(), regex="a")


def test_run_validates_sampling_defaults_before_running():
    @tines.program
    def prog(s):
        s += tines.gen("x")

    with pytest.raises(ValueError, match="top_p"):
        prog.run(backend=tines.MockBackend(), top_p=0)


def test_a_program_parameter_named_like_a_sampling_field_is_the_programs():
    @tines.program
    def prog(s, temperature):
        s += "t=" + str(temperature) + tines.gen("x")

    mock = tines.MockBackend(["!"])
    prog.run(temperature=0.5, backend=mock)
    assert mock.requests[0].params.temperature == 1.0


def test_set_default_backend_is_used_when_run_names_none():
    mock = tines.MockBackend(["hi"])
    tines.set_default_backend(mock)

    @tines.program
    def prog(s):
        s += tines.gen("x")

    assert prog.run()["x"] == "hi"
    assert tines.get_default_backend() is mock


def test_set_default_backend_rejects_non_backends():
    with pytest.raises(TypeError, match="Backend protocol"):
        tines.set_default_backend(object())


def test_errors_in_the_body_raise_from_run():
    @tines.program
    def prog(s):
        s += "x"
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        prog.run(backend=tines.MockBackend())


def test_reading_a_missing_variable_lists_the_known_ones():
    @tines.program
    def prog(s):
        s += tines.gen("x")

    state = prog.run(backend=tines.MockBackend(["1"]))
    with pytest.raises(KeyError, match=r"no variable 'y' \(variables: x\)"):
        state["y"]


def test_state_can_continue_after_run():
    @tines.program
    def prog(s):
        s += "a=" + tines.gen("a")

    state = prog.run(backend=tines.MockBackend(["1", "2"]))
    state += " b=" + tines.gen("b")
    assert state.text() == "a=1 b=2"


# ---- the kinds of programs the real-model tests run, here on the mock ------------------


def test_routing_to_an_expert_by_a_first_gen():
    @tines.program
    def route(s, question):
        s += "Question: " + question + "\nExpert (math or history): "
        s += tines.gen("expert", stop="\n")
        if s["expert"] == "math":
            s += "\nAs a mathematician: " + tines.gen("answer")
        else:
            s += "\nAs a historian: " + tines.gen("answer")

    mock = tines.MockBackend(by_suffix({"history): ": "math", "mathematician: ": "4",
                                        "historian: ": "1066"}))
    state = route.run("2+2?", backend=mock)
    assert (state["expert"], state["answer"]) == ("math", "4")


def test_a_tool_use_loop_computes_an_answer():
    @tines.program
    def calculator_agent(s, question):
        s += "Question: " + question + "\n"
        for _ in range(3):
            s += "Action: " + tines.select("action", choices=["calculate", "answer"]) + "\n"
            if s["action"] == "answer":
                s += "Answer: " + tines.gen_int("answer")
                return s["answer"]
            s += "Expression: " + tines.gen("expr", regex=r"[0-9+*\- ]+", stop="\n") + "\n"
            s += "Result: " + str(eval(s["expr"])) + "\n"  # the "tool"
        return None

    scores = [{"calculate": [-0.1], "answer": [-2.0]}, {"calculate": [-2.0], "answer": [-0.1]}]
    mock = tines.MockBackend(["12 * 7", "84"], scores=scores)
    state = calculator_agent.run("What is 12 times 7?", backend=mock)
    assert state.ret_value == 84
    assert "Result: 84\nAction: answer\nAnswer: 84" in state.text()
