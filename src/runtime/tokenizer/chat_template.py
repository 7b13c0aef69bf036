"""Chat templates: a model's Jinja template turning messages into prompt text.

Rendering matches transformers' `apply_chat_template(..., tokenize=False)`: the same sandboxed
Jinja environment (see `chat_jinja`), the same variables
(`messages`, `tools`, `documents`, `add_generation_prompt`, the named special tokens, extra
kwargs), and the same message clean-up (keys whose value is None dropped, reasoning aliases).

A model without a template gets `CHATML_TEMPLATE`, plain ChatML without a system prompt (the
template transformers used as its default); a GGUF whose vocabulary has Gemma's turn markers
(and no ChatML ones) gets `GEMMA_TEMPLATE` instead, Gemma's own turn format (Gemma 3 270M's
GGUF carries no template). A template that does not render `tools` gets the
Hermes-style fallback of `chat_tools` (tools in the system prompt, `<tool_call>` blocks).
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import jinja2

from . import chat_tools
from .chat_jinja import compile_template, template_variables

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Gemma's format: a system message is prepended to the first user turn; assistant -> "model".
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages and messages[0]['role'] == 'system' %}"
    "{% set prefix = messages[0]['content'] + '\n\n' %}{% set turns = messages[1:] %}"
    "{% else %}{% set prefix = '' %}{% set turns = messages %}{% endif %}"
    "{% for message in turns %}"
    "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\n' }}"
    "{% if loop.first %}{{ prefix }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] | trim }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'text' %}"
    "{{ part['text'] | trim }}{% endif %}{% endfor %}{% endif %}"
    "{{ '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)

_SENTINEL = "TinesSentinel{}"
_REASONING_KEYS = ("reasoning_content", "thinking", "reasoning")


class ChatTemplate:
    """One model's chat template. Rendering is pure: no state changes between calls.

    `bos_token`/`eos_token` (and any `default_kwargs`, e.g. `unk_token`, `pad_token`) are visible
    to the template like transformers' special-token attributes; `render` kwargs override them.
    `tool_source` is an optional separate template used when tools are given (HF "tool_use")."""

    def __init__(self, source: str | None, bos_token: str = "", eos_token: str = "",
                 default_kwargs: dict[str, Any] | None = None, tool_source: str | None = None):
        self.is_fallback = not source
        self.source = source or CHATML_TEMPLATE
        self.tool_source = tool_source
        self.default_kwargs = {"bos_token": bos_token, "eos_token": eos_token, **(default_kwargs or {})}
        self._template = compile_template(self.source)
        self._marker_cache: dict[str, tuple[str, str]] = {}
        self.supports_tools = "tools" in template_variables(self.source) or (
            tool_source is not None and "tools" in template_variables(tool_source))

    # ----------------------------------------------------------------- loading
    @classmethod
    def from_gguf_metadata(cls, metadata: dict[str, Any], tokenizer: Any = None) -> ChatTemplate:
        """From `tokenizer.chat_template` (and `tokenizer.chat_template.tool_use` when present);
        special-token strings come from the GGUF vocabulary (`tokenizer` is accepted for symmetry
        and used only when the metadata has no token list)."""
        tokens = metadata.get("tokenizer.ggml.tokens")
        strings: dict[str, Any] = {}
        for name, key in (("bos_token", "bos"), ("eos_token", "eos"), ("unk_token", "unknown"),
                          ("pad_token", "padding")):
            i = metadata.get(f"tokenizer.ggml.{key}_token_id")
            if i is not None and tokens is not None and 0 <= i < len(tokens):
                strings[name] = tokens[i]
            elif i is not None and tokenizer is not None:
                strings[name] = tokenizer.id_to_token(i)
        source = metadata.get("tokenizer.chat_template")
        if not source and tokens is not None and _has_gemma_turns(tokens):
            source = GEMMA_TEMPLATE
        return cls(source, strings.pop("bos_token", ""),
                   strings.pop("eos_token", ""), strings,
                   tool_source=metadata.get("tokenizer.chat_template.tool_use"))

    @classmethod
    def from_hf_folder(cls, path: str | Path) -> ChatTemplate:
        """From `chat_template.jinja`, else `tokenizer_config.json`'s `chat_template` (a string, or
        a list of {"name", "template"} where "default" is used and "tool_use" serves tools)."""
        folder = Path(path)
        config = _read_json(folder / "tokenizer_config.json") or {}
        special = _read_json(folder / "special_tokens_map.json") or {}
        named: dict[str, str] = {}
        jinja_file = folder / "chat_template.jinja"
        raw = jinja_file.read_text(encoding="utf-8") if jinja_file.is_file() else config.get("chat_template")
        if isinstance(raw, list):
            named = {t["name"]: t["template"] for t in raw if isinstance(t, dict) and "name" in t}
            if not named:
                raise ValueError(f"{folder}: chat_template list has no named templates")
            raw = named.get("default", next(iter(named.values())) if len(named) == 1 else None)
            if raw is None:
                raise ValueError(f"{folder}: several chat templates and none named 'default': {sorted(named)}")
        extra_dir = folder / "additional_chat_templates"
        if extra_dir.is_dir() and (extra_dir / "tool_use.jinja").is_file():
            named["tool_use"] = (extra_dir / "tool_use.jinja").read_text(encoding="utf-8")
        tokens = {k: _token_text(config.get(k) or special.get(k))
                  for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
        kwargs = {k: v for k, v in tokens.items() if v is not None and k in ("unk_token", "pad_token")}
        return cls(raw, tokens["bos_token"] or "", tokens["eos_token"] or "", kwargs,
                   tool_source=named.get("tool_use"))

    # ----------------------------------------------------------------- rendering
    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
               add_generation_prompt: bool = True, **kwargs: Any) -> str:
        """The prompt text for `messages` (OpenAI-style dicts with "role" and usually "content").
        Tool calls/results and `tools` go through the template when it supports tools, else
        through the Hermes fallback. Template errors (e.g. `raise_exception`) raise ValueError."""
        if not isinstance(messages, list) or not all(isinstance(m, dict) and isinstance(m.get("role"), str)
                                                     for m in messages):
            raise ValueError("messages must be a list of dicts, each with a string 'role'")
        template = self._template
        if self.supports_tools:
            if tools is not None and self.tool_source is not None:
                template = compile_template(self.tool_source)
        elif tools or any(m.get("tool_calls") or m["role"] == "tool" for m in messages):
            messages = chat_tools.apply_fallback(messages, tools, self.default_system_prompt)
            tools = None
        context = {**self.default_kwargs, **kwargs}
        try:
            return template.render(messages=[_clean_message(m) for m in messages],
                                   tools=_plain(tools), documents=context.pop("documents", None),
                                   add_generation_prompt=add_generation_prompt, **_plain(context))
        except jinja2.TemplateError as e:
            raise ValueError(f"chat template failed: {e}") from None

    # ----------------------------------------------------------------- structure
    def role_markers(self, role: str) -> tuple[str, str]:
        """(before, after): the text the template puts around the content of a `role` message in
        the middle of a conversation. For ChatML-like templates, a rendered conversation is the
        concatenation of `before + content + after` per message (plus `generation_prompt`); the
        system marker excludes a leading `bos_token`. Raises ValueError when the template does
        not render messages independently of each other."""
        if role not in self._marker_cache:
            self._marker_cache[role] = self._markers(role)
        return self._marker_cache[role]

    @cached_property
    def generation_prompt(self) -> str:
        """The assistant opening that `add_generation_prompt=True` appends."""
        msgs = [{"role": "system", "content": "a"}, {"role": "user", "content": "b"}]
        without, with_ = self.render(msgs, add_generation_prompt=False), self.render(msgs)
        if not with_.startswith(without):
            raise ValueError("add_generation_prompt changes the rendered text, not only extends it")
        return with_[len(without):]

    @cached_property
    def default_system_prompt(self) -> str | None:
        """The system text the template inserts when the conversation has no system message
        (None when it inserts none, or when its system turn cannot be located)."""
        try:
            before, after = self.role_markers("system")
            text = self._strip_bos([{"role": "user", "content": "x"}])
        except ValueError:
            return None
        if not before or not text.startswith(before):
            return None
        end = text.find(after, len(before)) if after else -1
        return text[len(before):end] if end >= 0 else None

    @cached_property
    def tool_call_markers(self) -> tuple[str, str] | None:
        """(opening, closing) the template writes around a tool call, e.g. `<tool_call>` and
        `</tool_call>`; None when its source has no known pair. When `supports_tools` is False,
        tools use the fallback whose markers are `chat_tools.FALLBACK_TOOL_CALL_MARKERS`."""
        return chat_tools.find_tool_call_markers(self.source + (self.tool_source or ""))

    @property
    def effective_tool_call_markers(self) -> tuple[str, str] | None:
        """The markers generated tool calls will carry: the template's, or the fallback's."""
        if not self.supports_tools:
            return chat_tools.FALLBACK_TOOL_CALL_MARKERS
        return self.tool_call_markers

    def _markers(self, role: str) -> tuple[str, str]:
        s0, s1, s2 = (_SENTINEL.format(i) for i in range(3))
        if role == "system":
            full = self._strip_bos([{"role": "system", "content": s0}, {"role": "user", "content": s1}])
            user_before, _ = self.role_markers("user")
            i, j = full.find(s0), full.find(user_before + s1)
            if i < 0 or j < 0:
                raise ValueError("cannot locate the system message in the rendered template")
            return full[:i], full[i + len(s0):j]
        head = [{"role": "system", "content": s1}, {"role": "user", "content": s2}]
        if role != "assistant":
            head.append({"role": "assistant", "content": s2})
        base = self.render(head, add_generation_prompt=False)
        full = self.render(head + [{"role": role, "content": s0}], add_generation_prompt=False)
        if not full.startswith(base) or s0 not in full[len(base):]:
            raise ValueError(f"the template does not render a {role!r} message independently "
                             "of the ones around it; role markers are undefined")
        tail = full[len(base):]
        i = tail.index(s0)
        return tail[:i], tail[i + len(s0):]

    def _strip_bos(self, messages: list[dict[str, Any]]) -> str:
        """`messages` rendered, without the `bos_token` the template writes first (if it does:
        a stand-in BOS tells a template's own BOS apart from text that merely equals it)."""
        text = self.render(messages, add_generation_prompt=False)
        probe = self.render(messages, add_generation_prompt=False, bos_token=_SENTINEL.format("Bos"))
        bos = self.default_kwargs.get("bos_token") or ""
        return text[len(bos):] if probe.startswith(_SENTINEL.format("Bos")) else text


def _clean_message(message: dict[str, Any]) -> dict[str, Any]:
    """As transformers: None values dropped; reasoning under any alias is also given as
    `reasoning_content` and `thinking`."""
    msg = {k: _plain(v) for k, v in message.items() if v is not None}
    reasoning = next((msg[k] for k in _REASONING_KEYS if msg.get(k) is not None), None)
    if reasoning is not None:
        msg = {"thinking": reasoning, **msg, "reasoning_content": reasoning}
    return msg


def _plain(value: Any) -> Any:
    """A copy built from plain dicts/lists/scalars, so the template cannot mutate or reach into
    caller objects (pydantic models are dumped)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if callable(getattr(value, "model_dump", None)):
        return _plain(value.model_dump())
    return value


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def _has_gemma_turns(tokens: list[str]) -> bool:
    # Only the first few hundred ids hold the special tokens in Gemma's vocabulary.
    head = set(tokens[:1024])
    return "<start_of_turn>" in head and "<end_of_turn>" in head and "<|im_start|>" not in head
