from __future__ import annotations

import pytest

import tines

IM = "<|im_start|>"
END = "<|im_end|>\n"


@tines.program
def chat(s, question):
    s += tines.system("Be brief.")
    s += tines.user(question)
    s += tines.assistant(tines.gen("answer"))


def test_roles_render_through_the_backends_markers():
    state = chat.run("Hi?", backend=tines.MockBackend(["Hello."]))
    assert state.text() == (f"{IM}system\nBe brief.{END}{IM}user\nHi?{END}"
                            f"{IM}assistant\nHello.{END}")


def test_the_gen_inside_assistant_sees_the_open_assistant_marker():
    mock = tines.MockBackend(["Hello."])
    chat.run("Hi?", backend=mock)
    assert mock.requests[0].text.endswith(f"{IM}assistant\n")


def test_messages_lists_each_closed_role():
    state = chat.run("Hi?", backend=tines.MockBackend(["Hello."]))
    assert state.messages() == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Hi?"},
                                {"role": "assistant", "content": "Hello."}]


def test_multi_turn_chat_keeps_history():
    @tines.program
    def two_turns(s):
        s += tines.user("What is 2+2?")
        s += tines.assistant(tines.gen("a1"))
        s += tines.user("And times 3?")
        s += tines.assistant(tines.gen("a2"))

    mock = tines.MockBackend(["4", "12"])
    state = two_turns.run(backend=mock)
    assert [m["content"] for m in state.messages()] == ["What is 2+2?", "4", "And times 3?", "12"]
    assert f"{IM}assistant\n4{END}{IM}user\nAnd times 3?" in mock.requests[1].text


def test_default_system_prompt_precedes_the_first_non_system_role():
    mock = tines.MockBackend(["Hello."], default_system_prompt="You are helpful.")

    @tines.program
    def no_system(s):
        s += tines.user("Hi?") + tines.assistant(tines.gen("a"))

    state = no_system.run(backend=mock)
    assert state.text().startswith(f"{IM}system\nYou are helpful.{END}{IM}user\nHi?")
    assert state.messages()[0] == {"role": "system", "content": "You are helpful."}


def test_no_default_system_prompt_when_the_program_gives_one():
    mock = tines.MockBackend(["Hello."], default_system_prompt="You are helpful.")
    state = chat.run("Hi?", backend=mock)
    assert "You are helpful." not in state.text()


def test_nested_roles_are_an_error():
    @tines.program
    def nested(s):
        with s.user():
            s += tines.assistant("no")

    with pytest.raises(ValueError, match="nested roles"):
        nested.run(backend=tines.MockBackend())


def test_ending_a_role_that_is_not_open_is_an_error():
    @tines.program
    def unbalanced(s):
        s += tines.user_begin() + "hi" + tines.assistant_end()

    with pytest.raises(ValueError, match="assistant_end without a matching"):
        unbalanced.run(backend=tines.MockBackend())


def test_with_blocks_and_begin_end_forms_render_alike():
    @tines.program
    def blocks(s):
        with s.user():
            s += "Hi?"
        with s.assistant():
            s += tines.gen("a")

    @tines.program
    def begin_end(s):
        s += tines.user_begin() + "Hi?" + tines.user_end()
        s += tines.assistant_begin() + tines.gen("a") + tines.assistant_end()

    a = blocks.run(backend=tines.MockBackend(["Yo"])).text()
    b = begin_end.run(backend=tines.MockBackend(["Yo"])).text()
    assert a == b == f"{IM}user\nHi?{END}{IM}assistant\nYo{END}"


def test_state_role_methods_append_directly():
    @tines.program
    def direct(s):
        s.user("Hi?")
        s.assistant(tines.gen("a"))

    state = direct.run(backend=tines.MockBackend(["Yo"]))
    assert state.messages()[1] == {"role": "assistant", "content": "Yo"}


def test_var_scope_captures_the_text_appended_inside():
    @tines.program
    def scoped(s):
        s += "Intro. "
        with s.var_scope("body"):
            s += "Answer: " + tines.gen("a")
        s += " Bye."

    state = scoped.run(backend=tines.MockBackend(["42"]))
    assert state["body"] == "Answer: 42"
