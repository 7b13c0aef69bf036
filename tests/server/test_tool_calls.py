"""Tool calling without a server: the structural tag each tool_choice builds, the parser that
splits output into content and calls (whole and streamed give the same), and multi-turn tool
conversations rendered through the default model's template (Hermes fallback); custom tools
(text or grammar input) among function tools."""

from __future__ import annotations

import json

import pytest

from tines.runtime.tokenizer.chat_template import ChatTemplate
from tines.runtime.sampling_params import SamplingParams
from tines.runtime.server.errors import APIError
from tines.runtime.server.custom_tools import CustomInput
from tines.runtime.server.protocol import (ChatCompletionRequest, CustomTool, NamedCustomToolChoice,
                                           NamedToolChoice, Tool)
from tines.runtime.server.tool_calls import messages_for_template, plan_tools
from tines.runtime.server.tool_parser import (ArgsDelta, CallStart, InputDelta, ToolCallParser,
                                              split_tool_calls)

MARKERS = ("<tool_call>", "</tool_call>")
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS = [Tool.model_validate({"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}),
         Tool.model_validate({"type": "function", "function": {"name": "get_time"}})]
NAMES = frozenset({"get_weather", "get_time"})


def call_text(name: str, args: dict) -> str:
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": args})}\n</tool_call>'


def test_required_builds_one_structure_per_tool_that_samplingparams_accepts():
    plan = plan_tools(TOOLS, "required", MARKERS)
    tag = plan.structural_tag
    assert tag["mode"] == "required" and tag["triggers"] == ["<tool_call>"]
    assert [s["begin"] for s in tag["structures"]] == [
        '<tool_call>\n{"name": "get_weather", "arguments": ',
        '<tool_call>\n{"name": "get_time", "arguments": ']
    assert tag["structures"][0]["schema"] == WEATHER
    assert tag["structures"][1]["schema"]["type"] == "object"  # no parameters: an empty object
    assert all(s["end"] == "}\n</tool_call>" for s in tag["structures"])
    # begin + arguments + end is exactly what the fallback template renders for a call
    s = tag["structures"][0]
    assert s["begin"] + '{"city": "Paris"}' + s["end"] == call_text("get_weather", {"city": "Paris"})
    SamplingParams(structural_tag=tag)  # a valid constraint
    assert plan.parse and plan.render_tools and plan.names == NAMES


def test_named_auto_and_none():
    named = plan_tools(TOOLS, NamedToolChoice.model_validate({"function": {"name": "get_time"}}), MARKERS)
    assert named.structural_tag["mode"] == "required"
    assert [s["begin"] for s in named.structural_tag["structures"]] == [
        '<tool_call>\n{"name": "get_time", "arguments": ']
    assert named.names == {"get_time"} and len(named.render_tools) == 2  # all tools stay visible
    auto = plan_tools(TOOLS, None, MARKERS)  # tools given: auto is the default
    assert auto.structural_tag["mode"] == "auto" and len(auto.structural_tag["structures"]) == 2
    none = plan_tools(TOOLS, "none", MARKERS)
    assert none.structural_tag is None and not none.parse
    assert none.render_tools == named.render_tools  # same prompt prefix as the turns that called
    assert plan_tools(None, None, MARKERS).structural_tag is None


@pytest.mark.parametrize("tools, choice, param", [
    (TOOLS, NamedToolChoice.model_validate({"function": {"name": "nope"}}), "tool_choice.function.name"),
    (None, "required", "tool_choice"),
    (TOOLS + TOOLS[:1], "auto", "tools"),
])
def test_impossible_tool_choices_are_400(tools, choice, param):
    with pytest.raises(APIError) as e:
        plan_tools(tools, choice, MARKERS)
    assert e.value.status == 400 and e.value.param == param


def test_parser_splits_content_and_several_calls():
    text = ("Let me check." + call_text("get_weather", {"city": "Paris"}) + "\n"
            + call_text("get_time", {}))
    content, calls = split_tool_calls(text, MARKERS, NAMES)
    assert content == "Let me check."
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}
    assert calls[0].id.startswith("call_") and calls[0].id != calls[1].id
    only_calls = split_tool_calls(call_text("get_time", {}) + "\n", MARKERS, NAMES)
    assert only_calls[0] is None and len(only_calls[1]) == 1
    assert split_tool_calls(text, MARKERS, NAMES, max_calls=1)[1][0].function.name == "get_weather"


@pytest.mark.parametrize("text", [
    "no calls at all, <tool but not a marker",
    "<tool_call>\n{not json}\n</tool_call> then text",
    call_text("unknown_tool", {"a": 1}),
    '<tool_call>\n{"name": "get_weather", "arguments": "not an object"}\n</tool_call>',
])
def test_what_is_not_a_call_stays_content(text):
    content, calls = split_tool_calls(text, MARKERS, NAMES)
    assert calls == [] and content == text


def test_unclosed_call_at_the_end_is_parsed_and_truncated_garbage_is_content():
    unclosed = '<tool_call>\n{"name": "get_time", "arguments": {}}'
    assert len(split_tool_calls(unclosed, MARKERS, NAMES)[1]) == 1
    for garbage in ('<tool_call>\n{"nam', '<tool_call>\n{"name": "no_such_tool", "argu'):
        assert split_tool_calls(garbage, MARKERS, NAMES) == (garbage, [])


@pytest.mark.parametrize("cut, arguments", [('{"name": "get_weather", "argu', ""),
                                            ('{"name": "get_weather",', ""),
                                            ('{"name": "get_weather", "arguments": {"ci', '{"ci')])
def test_a_call_cut_after_its_name_is_a_call_with_the_arguments_that_arrived(cut, arguments):
    content, calls = split_tool_calls("<tool_call>\n" + cut, MARKERS, NAMES)
    assert content is None and len(calls) == 1
    assert (calls[0].function.name, calls[0].function.arguments) == ("get_weather", arguments)
    parser = ToolCallParser(MARKERS, NAMES)  # streamed: the same call, announced at the end
    events = [e for piece in ("<tool_call>\n", cut) for e in parser.feed(piece)] + parser.finish()
    assert not any(isinstance(e, str) for e in events)
    assert "".join(e.text for e in events if isinstance(e, ArgsDelta)) == arguments


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_streamed_in_pieces_equals_whole(size):
    text = ("Sure. " + call_text("get_weather", {"city": "Zürich"}) + " and "
            + call_text("get_time", {}) + " done <tool")
    parser = ToolCallParser(MARKERS, NAMES)
    events = []
    for i in range(0, len(text), size):
        events += parser.feed(text[i:i + size])
        # nothing that could still become a marker is ever given out as content
        assert not any(isinstance(e, str) and "<tool_call" in e for e in events)
    events += parser.finish()
    content = "".join(e for e in events if isinstance(e, str))
    whole_content, whole_calls = split_tool_calls(text, MARKERS, NAMES)
    assert content == whole_content == "Sure. and done <tool"
    assert [c.function for c in parser.calls] == [c.function for c in whole_calls]


def test_tool_conversation_round_trips_through_the_template(tokenizer_dir):
    template = ChatTemplate.from_hf_folder(tokenizer_dir)
    assert not template.supports_tools and template.effective_tool_call_markers == MARKERS
    req = ChatCompletionRequest.model_validate({"model": "m", "messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in "}, {"type": "text", "text": "Paris?"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
    ]})
    messages = messages_for_template(req.messages)
    assert messages[0]["role"] == "system" and messages[1]["content"] == "Weather in Paris?"
    plan = plan_tools(TOOLS, "auto", MARKERS)
    text = template.render(messages, tools=plan.render_tools)
    assert call_text("get_weather", {"city": "Paris"}) in text  # the call, as the model writes it
    assert '<tool_response>\n{"temp_c": 21}\n</tool_response>' in text
    assert '"function": {"name": "get_weather"' in text  # the tools, in the system prompt
    assert text.endswith("<|im_start|>assistant\n")
    with pytest.raises(APIError):
        messages_for_template(ChatCompletionRequest.model_validate({"model": "m", "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}).messages)


# ---- custom tools among the others ---------------------------------------------------------

SQL = 'start: "SELECT " NAME " FROM " NAME\nNAME: /[a-z_]+/\n'
CUSTOM = CustomTool.model_validate({"type": "custom", "custom": {"name": "run_sql", "format": {
    "type": "grammar", "grammar": {"syntax": "lark", "definition": SQL}}}})
FREE_TEXT = CustomTool.model_validate({"type": "custom", "custom": {"name": "note"}})
CUSTOM_NAMES = frozenset({"run_sql", "note"})


def custom_call_text(name: str, text: str) -> str:
    return call_text(name, {"input": text})


def test_auto_with_custom_tools_holds_their_input_to_the_grammar_inside_the_call():
    plan = plan_tools([*TOOLS, CUSTOM, FREE_TEXT], "auto", MARKERS)
    sql, note = plan.structural_tag["structures"][2:]
    assert sql["grammar"] == {"syntax": "lark", "definition": SQL} and sql["json_string"]
    assert sql["begin"] + "SELECT a FROM b" + sql["end"] == custom_call_text("run_sql", "SELECT a FROM b")
    assert note["schema"] == {"type": "string"}  # free text: any JSON string
    assert note["begin"] + '"hi"' + note["end"] == custom_call_text("note", "hi")
    assert plan.names == NAMES and plan.custom_names == CUSTOM_NAMES and plan.input_of is None
    SamplingParams(structural_tag=plan.grammar_tag())  # a valid constraint
    # the template sees every custom tool as a function taking {"input": string}
    assert plan.render_tools[2]["function"]["parameters"]["properties"] == {"input": {"type": "string"}}


def test_naming_a_custom_tool_or_requiring_the_only_one_makes_the_whole_output_its_input():
    named = NamedCustomToolChoice.model_validate({"type": "custom", "custom": {"name": "run_sql"}})
    for tools, choice in [([*TOOLS, CUSTOM], named), ([CUSTOM], "required")]:
        plan = plan_tools(tools, choice, MARKERS)
        assert plan.structural_tag is None and not plan.parse
        assert plan.input_of == CustomInput("run_sql", ("grammar", SQL))
    mixed = plan_tools([TOOLS[0], CUSTOM], "required", MARKERS)  # several tools: calls
    assert mixed.structural_tag["mode"] == "required" and mixed.input_of is None


def test_a_grammar_format_without_a_grammar_is_a_400():
    broken = CustomTool.model_validate({"type": "custom", "custom": {"name": "x", "format": {
        "type": "grammar"}}})
    with pytest.raises(APIError) as e:
        plan_tools([*TOOLS, broken], "auto", MARKERS)
    assert e.value.status == 400 and "format.grammar" in str(e.value)


def test_parser_answers_custom_calls_with_their_decoded_input():
    text = ("Running it. " + custom_call_text("run_sql", 'SELECT "a" FROM b\n😀')
            + call_text("get_time", {}))
    content, calls = split_tool_calls(text, MARKERS, NAMES, custom_names=CUSTOM_NAMES)
    assert content == "Running it."
    assert [c.type for c in calls] == ["custom", "function"]
    assert calls[0].custom.name == "run_sql" and calls[0].custom.input == 'SELECT "a" FROM b\n😀'


@pytest.mark.parametrize("size", [1, 2, 5])
def test_streamed_custom_input_arrives_decoded_and_equals_whole(size):
    # json.dumps writes é as \\u00e9 and 😀 as a surrogate pair, which the stream cuts anywhere
    text = custom_call_text("note", 'quote " slash \\ tab \t é 😀 end')
    assert "\\ud83d\\ude00" in text
    parser = ToolCallParser(MARKERS, NAMES, custom_names=CUSTOM_NAMES)
    events = []
    for i in range(0, len(text), size):
        events += parser.feed(text[i:i + size])
    events += parser.finish()
    starts = [e for e in events if isinstance(e, CallStart)]
    pieces = [e.text for e in events if isinstance(e, InputDelta)]
    assert [(s.name, s.type) for s in starts] == [("note", "custom")]
    assert "".join(pieces) == 'quote " slash \\ tab \t é 😀 end'
    assert all(p.encode("utf-8") for p in pieces)  # no piece holds half a surrogate pair
    _, whole = split_tool_calls(text, MARKERS, NAMES, custom_names=CUSTOM_NAMES)
    assert whole[0].custom.input == "".join(pieces)


def test_a_custom_name_with_function_arguments_is_given_back_as_content():
    text = call_text("run_sql", {"query": "SELECT"})  # no "input" string
    content, calls = split_tool_calls(text, MARKERS, NAMES, custom_names=CUSTOM_NAMES)
    assert calls == [] and content == text


def test_custom_calls_in_the_conversation_render_as_calls_with_an_input(tokenizer_dir):
    template = ChatTemplate.from_hf_folder(tokenizer_dir)
    req = ChatCompletionRequest.model_validate({"model": "m", "messages": [
        {"role": "user", "content": "Names?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "custom", "custom": {"name": "run_sql", "input": "SELECT a FROM b"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "[]"}]})
    text = template.render(messages_for_template(req.messages),
                           tools=plan_tools([CUSTOM], "auto", MARKERS).render_tools)
    assert custom_call_text("run_sql", "SELECT a FROM b") in text
