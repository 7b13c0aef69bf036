"""RoutedRequest: one HTTP request as the ingress hands it to an engine replica."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class RoutedRequest:
    method: str
    path: str
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    prompt_text: str  # what the router matches against replicas' caches ("" if none)

    @classmethod
    def of(cls, method: str, path: str, query: bytes, headers: list[tuple[bytes, bytes]],
           body: bytes) -> RoutedRequest:
        return cls(method, path, query, headers, body, prompt_text_of(body))


def prompt_text_of(body: bytes) -> str:
    """The prompt of a native or OpenAI request body, as one string: `text` or `prompt`
    (the first, for a batch), or the messages' contents in order. "" when there is none or
    the body is not JSON (the replica answers those with its own 400)."""
    try:
        data = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(data, dict):
        return ""
    for key in ("text", "prompt", "input"):
        value = data.get(key)
        if isinstance(value, list) and value:
            value = value[0]
        if isinstance(value, str):
            return value
    messages = data.get("messages")
    if isinstance(messages, list):
        return "".join(f"{m.get('role')}\n{_content_text(m.get('content'))}\n"
                       for m in messages if isinstance(m, dict))
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content
                       if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""
