from __future__ import annotations

import pytest

import tines
from tines.trace import static_prefix


@tines.program
def qa(s, question):
    s += "You answer questions.\n"
    s += "Q: " + question + "\nA: " + tines.gen("answer", max_tokens=16, stop="\n")
    s += "\nSure? " + tines.select("sure", choices=["yes", "no"])


@tines.program
def tips(s, topic):
    s += "Topic: " + topic + "\n"
    forks = s.fork(2)
    forks += lambda i: f"Tip {i}: " + tines.gen("tip")
    forks.join()
    s += "Best: " + tines.gen("best")


def test_trace_records_text_arg_gen_select_in_order():
    graph = qa.trace()
    assert graph.kinds() == ["text", "arg", "text", "gen", "text", "select"]
    assert graph.nodes[0].text == "You answer questions.\nQ: "
    gen = graph.find("gen")[0]
    assert gen.data["name"] == "answer"
    assert gen.data["params"] == {"max_new_tokens": 16, "stop": ["\n"]}
    assert graph.find("select")[0].data["choices"] == ("yes", "no")
    assert graph.edges == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]


def test_trace_makes_no_request():
    mock = tines.MockBackend()
    qa.trace(backend=mock)
    assert mock.requests == []


def test_trace_of_a_fork_has_one_chain_per_branch_into_the_join():
    graph = tips.trace()
    (fork,), (join,) = graph.find("fork"), graph.find("join")
    branch_starts = graph.successors(fork.id)
    assert len(branch_starts) == 2
    assert [graph.nodes[i].text for i in branch_starts] == ["Tip 0: ", "Tip 1: "]
    into_join = graph.predecessors(join.id)
    assert [graph.nodes[i].kind for i in into_join] == ["gen", "gen"]
    assert join.data["mode"] == "gather_variable"
    assert [graph.nodes[i].kind for i in graph.successors(join.id)] == ["text"]


def test_given_arguments_are_traced_as_text():
    graph = qa.trace("2+2?")
    assert graph.kinds() == ["text", "gen", "text", "select"]
    assert graph.nodes[0].text == "You answer questions.\nQ: 2+2?\nA: "


def test_an_f_string_over_a_traced_argument_raises_a_clear_error():
    @tines.program
    def fstring(s, question):
        s += f"Q: {question}\n"

    with pytest.raises(tines.TracingError, match=r"argument 'question'.*f-string.*\+"):
        fstring.trace()


@pytest.mark.parametrize("body", [
    lambda s, q: s.__iadd__(str(q)),
    lambda s, q: s.__iadd__("%s" % q),
    lambda s, q: s.__iadd__(q.upper()),
    lambda s, q: s.__iadd__("long" if len(q) > 3 else "short"),
])
def test_looking_at_a_traced_argument_raises(body):
    with pytest.raises(tines.TracingError, match="argument 'q'"):
        tines.program(body).trace()


def test_branching_on_a_generated_value_cannot_be_traced():
    @tines.program
    def route(s):
        s += tines.gen("kind")
        if s["kind"] == "math":
            s += "!"

    with pytest.raises(tines.TracingError, match="variable 'kind'.*control flow"):
        route.trace()


def test_looking_a_generated_value_up_in_a_dict_cannot_be_traced():
    tools = {"add": "+"}

    @tines.program
    def agent(s):
        s += tines.gen("action")
        s += tools[s["action"]]

    with pytest.raises(tines.TracingError, match="variable 'action'.*dict key"):
        agent.trace()


def test_appending_a_variable_is_a_var_node():
    @tines.program
    def echo(s):
        s += tines.gen("x") + " again: "
        s += s["x"]

    assert echo.trace().kinds() == ["gen", "text", "var"]


def test_roles_without_a_backend_are_role_nodes_and_with_one_render_as_text():
    @tines.program
    def chat(s, q):
        s += tines.system("Be brief.") + tines.user(q) + tines.assistant(tines.gen("a"))

    assert chat.trace().kinds() == ["role", "text", "role", "role", "arg", "role", "role",
                                    "gen", "role"]
    rendered = chat.trace(backend=tines.MockBackend())
    assert rendered.kinds() == ["text", "arg", "text", "gen", "text"]
    assert rendered.nodes[0].text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n"


def test_static_prefix_is_the_text_before_the_first_dynamic_node():
    assert static_prefix(qa, tines.MockBackend()) == "You answer questions.\nQ: "


def test_static_prefix_includes_the_default_system_prompt():
    @tines.program
    def chat(s, q):
        s += tines.user("Context.\n" + q)

    backend = tines.MockBackend(default_system_prompt="Sys.")
    assert static_prefix(chat, backend) == \
        "<|im_start|>system\nSys.<|im_end|>\n<|im_start|>user\nContext.\n"


def test_static_prefix_treats_bound_arguments_as_static():
    @tines.program
    def prog(s, shots, question):
        s += shots + "Q: " + question

    assert static_prefix(prog.bind(shots="EXAMPLES\n"), tines.MockBackend()) == "EXAMPLES\nQ: "


def test_static_prefix_survives_code_a_trace_cannot_follow():
    @tines.program
    def prog(s, question):
        s += "Header\n"
        s += f"{question}"  # fails while tracing; the prefix so far stands

    assert static_prefix(prog, tines.MockBackend()) == "Header\n"


def test_to_dot_draws_every_node_and_edge():
    dot = tips.trace().to_dot()
    assert dot.startswith("digraph program {")
    assert 'shape=trapezium' in dot and 'label="join: gather_variable"' in dot
    assert dot.count("->") == len(tips.trace().edges)


def test_to_mermaid_draws_every_node_and_edge_with_escaped_labels():
    @tines.program
    def quoted(s):
        s += 'Say "hi" <b>\n' + tines.gen("x")

    mermaid = quoted.trace().to_mermaid()
    assert mermaid.splitlines()[0] == "flowchart TD"
    assert 'text: Say #34;hi#34; #60;b#62;⏎' in mermaid
    assert "n0 --> n1" in mermaid


def test_trace_of_a_nested_program_inlines_it():
    @tines.program
    def inner(s, x):
        s += "inner " + x

    @tines.program
    def outer(s):
        s += "outer "
        inner(s, "y")
        s += tines.gen("z")

    graph = outer.trace()
    assert graph.kinds() == ["text", "gen"] and graph.nodes[0].text == "outer inner y"


def test_trace_of_an_async_program():
    @tines.program
    async def prog(s, q):
        s += "Q: " + q + tines.gen("a")
        await s.aget_var("a")
        s += tines.gen("b")

    assert prog.trace().kinds() == ["text", "arg", "gen", "gen"]
