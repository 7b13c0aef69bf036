"""ChatTemplate against transformers' apply_chat_template(..., tokenize=False)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tines.runtime.tokenizer.chat_template import CHATML_TEMPLATE, ChatTemplate

SMOL_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

CONVERSATIONS: list[list[dict[str, Any]]] = [
    [{"role": "user", "content": "Hi!"}],
    [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "2+2?"}],
    [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "2+2?"},
     {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"}],
    [{"role": "user", "content": "日本語で 👨‍👩‍👧 \n\n  spaced  "}, {"role": "assistant", "content": "はい。"},
     {"role": "user", "content": "<|im_start|> inside text"}],
    [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "tool_calls": None}],
]

# Modelled on the structure of Qwen2.5's template: tools in the system turn, tool calls as
# <tool_call> JSON blocks, consecutive tool results merged into one user turn.
QWEN_STYLE = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}{%- else %}{{- 'You are Qwen.' }}{%- endif %}
    {{- "\\n\\n# Tools\\n\\n<tools>" }}
    {%- for tool in tools %}{{- "\\n" }}{{- tool | tojson }}{%- endfor %}
    {{- "\\n</tools>\\n\\nCall tools inside <tool_call></tool_call> tags.<|im_end|>\\n" }}
{%- elif messages[0]['role'] == 'system' %}
    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
{%- else %}
    {{- '<|im_start|>system\\nYou are Qwen.<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == "user" or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}{{- '\\n' + message.content }}{%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' }}{{- tool_call.name }}{{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}{{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.index0 == 0 or messages[loop.index0 - 1].role != "tool" %}{{- '<|im_start|>user' }}{%- endif %}
        {{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}
        {%- if loop.last or messages[loop.index0 + 1].role != "tool" %}{{- '<|im_end|>\\n' }}{%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"""

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Météo d'une ville",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TOOL_CHAT = [
    {"role": "user", "content": "Weather in Paris and Tōkyō?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "東京"}}}]},
    {"role": "tool", "content": "sunny, 21°C"},
    {"role": "tool", "content": "rain, 15°C"},
]


@pytest.fixture(scope="module")
def smol(default_metadata: dict[str, Any]) -> ChatTemplate:
    return ChatTemplate.from_gguf_metadata(default_metadata)


@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_default_template_matches_transformers(smol: ChatTemplate, hf_default_tokenizer: Any,
                                               add_generation_prompt: bool) -> None:
    for messages in CONVERSATIONS:
        expected = hf_default_tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt)
        assert smol.render(messages, add_generation_prompt=add_generation_prompt) == expected


def test_default_template_structure(smol: ChatTemplate) -> None:
    assert smol.role_markers("system") == ("<|im_start|>system\n", "<|im_end|>\n")
    assert smol.role_markers("user") == ("<|im_start|>user\n", "<|im_end|>\n")
    assert smol.role_markers("assistant") == ("<|im_start|>assistant\n", "<|im_end|>\n")
    assert smol.default_system_prompt == SMOL_SYSTEM
    assert smol.generation_prompt == "<|im_start|>assistant\n"
    assert smol.tool_call_markers is None and not smol.supports_tools
    assert smol.effective_tool_call_markers == ("<tool_call>", "</tool_call>")


@pytest.mark.parametrize("messages", CONVERSATIONS[:4])
def test_render_is_concatenation_of_role_markers(smol: ChatTemplate, messages: list[dict[str, Any]]) -> None:
    # What the frontend relies on to render roles incrementally.
    pieces = []
    if messages[0]["role"] != "system":
        pieces.append("".join(smol.role_markers("system")).replace("<|im_end|>", SMOL_SYSTEM + "<|im_end|>"))
    for m in messages:
        before, after = smol.role_markers(m["role"])
        pieces.append(before + m["content"] + after)
    assert smol.render(messages, add_generation_prompt=False) == "".join(pieces)
    assert smol.render(messages) == "".join(pieces) + smol.generation_prompt


@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_qwen_style_tools_match_transformers(hf_default_tokenizer: Any, add_generation_prompt: bool) -> None:
    ct = ChatTemplate(QWEN_STYLE, bos_token="<|im_start|>", eos_token="<|im_end|>")
    assert ct.supports_tools and ct.tool_call_markers == ("<tool_call>", "</tool_call>")
    for messages, tools in [(TOOL_CHAT, [WEATHER_TOOL]), (TOOL_CHAT, None),
                            ([{"role": "system", "content": "Sys"}, *TOOL_CHAT], [WEATHER_TOOL]),
                            (CONVERSATIONS[2], None)]:
        expected = hf_default_tokenizer.apply_chat_template(
            messages, tools=tools, chat_template=QWEN_STYLE, tokenize=False,
            add_generation_prompt=add_generation_prompt)
        assert ct.render(messages, tools=tools, add_generation_prompt=add_generation_prompt) == expected
    assert ct.role_markers("user") == ("<|im_start|>user\n", "<|im_end|>\n")
    assert ct.default_system_prompt == "You are Qwen."


def test_fallback_tools_on_template_without_tools(smol: ChatTemplate) -> None:
    chat = [*TOOL_CHAT[:2], {**TOOL_CHAT[1], "tool_calls": [
        {"function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}], "content": "One more."},
        *TOOL_CHAT[2:]]
    text = smol.render(chat, tools=[WEATHER_TOOL])
    assert text.startswith("<|im_start|>system\n" + SMOL_SYSTEM + "\n\n# Tools\n\n")
    assert json.dumps(WEATHER_TOOL, ensure_ascii=False) in text
    assert ('<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}'
            '\n</tool_call>\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "東京"}}'
            '\n</tool_call><|im_end|>\n') in text
    assert ('<|im_start|>assistant\nOne more.\n<tool_call>\n{"name": "get_weather", "arguments": '
            '{"city": "Oslo"}}\n</tool_call><|im_end|>\n') in text
    assert text.endswith("<|im_start|>user\n<tool_response>\nsunny, 21°C\n</tool_response>\n"
                         "<tool_response>\nrain, 15°C\n</tool_response><|im_end|>\n<|im_start|>assistant\n")
    # With a system message of its own, the tools section is appended to it.
    with_sys = smol.render([{"role": "system", "content": "Sys"}, *TOOL_CHAT[:1]], tools=[WEATHER_TOOL])
    assert with_sys.startswith("<|im_start|>system\nSys\n\n# Tools\n\n")
    with pytest.raises(ValueError, match="JSON"):
        smol.render([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{"}}]}])


def test_environment_features_match_transformers(hf_default_tokenizer: Any) -> None:
    source = ("{% set ns = namespace(n=0) %}{% for m in messages %}{% if m.role == 'skip' %}{% continue %}"
              "{% endif %}{% set ns.n = ns.n + 1 %}{{ m | tojson }}|{{ m | tojson(indent=2, sort_keys=True) }}"
              "{% if loop.index > 2 %}{% break %}{% endif %}{% endfor %}{{ ns.n }}{{ bos_token }}{{ unk_token }}"
              "{{ strftime_now('%Y') }}{{ dict(a=1) | tojson }}{% generation %}gen{% endgeneration %}")
    messages = [{"role": "user", "content": "é \"q\" <b>"}, {"role": "skip", "content": "x"},
                {"role": "assistant", "content": "ok", "reasoning_content": "hmm"}, {"role": "user", "content": "z"},
                {"role": "user", "content": "never"}]
    expected = hf_default_tokenizer.apply_chat_template(messages, chat_template=source, tokenize=False)
    ours = ChatTemplate(source, bos_token="<|im_start|>", default_kwargs={"unk_token": "<|endoftext|>"})
    assert ours.render(messages, add_generation_prompt=False) == expected


def test_errors_raise_value_error() -> None:
    with pytest.raises(ValueError, match="syntax"):
        ChatTemplate("{% for %}")
    strict = ChatTemplate("{% if messages[0].role != 'user' %}{{ raise_exception('user first') }}{% endif %}")
    with pytest.raises(ValueError, match="user first"):
        strict.render([{"role": "assistant", "content": "x"}])
    with pytest.raises(ValueError, match="role"):
        strict.render([{"content": "no role"}])
    with pytest.raises(ValueError, match="may not start with '_'"):
        ChatTemplate("{% set ns = namespace(a=1) %}{% set ns.__class__ = 2 %}").render([])


def test_chatml_fallback_when_no_template() -> None:
    ct = ChatTemplate.from_gguf_metadata({"tokenizer.ggml.tokens": ["a"]})
    assert ct.is_fallback and ct.source == CHATML_TEMPLATE
    parts = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image"}, {"type": "text", "text": "b"}]}]
    assert ct.render(parts) == "<|im_start|>user\nab<|im_end|>\n<|im_start|>assistant\n"
    assert ct.default_system_prompt is None
    assert ct.role_markers("system") == ("<|im_start|>system\n", "<|im_end|>\n")


def test_from_hf_folder(hf_default_tokenizer: Any, tmp_path: Path) -> None:
    hf_default_tokenizer.save_pretrained(tmp_path / "saved")
    saved = ChatTemplate.from_hf_folder(tmp_path / "saved")
    for messages in CONVERSATIONS:
        assert saved.render(messages) == hf_default_tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True)
    # Older layout: a list of named templates inside tokenizer_config.json.
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": {"content": "<s>"}, "eos_token": "</s>",
        "chat_template": [{"name": "default", "template": "{{ bos_token }}{{ messages[0].content }}"},
                          {"name": "tool_use", "template": "{{ tools | length }} tools"}]}))
    ct = ChatTemplate.from_hf_folder(legacy)
    assert ct.render([{"role": "user", "content": "hi"}]) == "<s>hi"
    assert ct.supports_tools and ct.render([{"role": "user", "content": "hi"}], tools=[WEATHER_TOOL]) == "1 tools"
