"""Request bodies of the OpenAI-compatible API, with OpenAI's field names.

Unknown fields are refused (400 naming the field), as OpenAI does, so a misspelt parameter
never silently does nothing. An explicit `null` is the field's default (clients send
`"n": null` for a parameter left unset), except where a field is required. Beside OpenAI's fields a few extensions that vLLM and SGLang
clients send are accepted (`top_k`, `min_p`, `repetition_penalty`, `min_tokens`, `ignore_eos`,
`stop_token_ids`, `skip_special_tokens`, `regex`, `choices`, `structured_outputs`,
`token_healing`, `close_on_budget`, and for chat
`add_generation_prompt` / `continue_final_message`). Values are range-checked later by
`SamplingParams`, so the limits live in one place.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {k: v for k, v in data.items() if v is not None or not _has_default(cls, k)}


def _has_default(model: type[BaseModel], key: str) -> bool:
    """Whether the field `key` (its name or alias) may be left out: a null then means unset."""
    for name, f in model.model_fields.items():
        if key in (name, f.alias):
            return not f.is_required()
    return False  # unknown: left for `extra="forbid"` to name


# --- tools ---------------------------------------------------------------------------------
class FunctionDefinition(StrictBody):
    name: str = Field(pattern=r"^[a-zA-Z0-9_.\-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None  # a JSON schema; None: no arguments
    strict: bool | None = None


class Tool(StrictBody):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class FunctionName(StrictBody):
    name: str


class NamedToolChoice(StrictBody):
    type: Literal["function"] = "function"
    function: FunctionName


class CustomGrammar(StrictBody):
    syntax: Literal["lark", "regex"]
    definition: str = Field(min_length=1)


class CustomToolFormat(StrictBody):
    """OpenAI's custom-tool input format: free text, or text held to a grammar."""

    type: Literal["text", "grammar"] = "text"
    grammar: CustomGrammar | None = None


class CustomToolDefinition(StrictBody):
    name: str = Field(pattern=r"^[a-zA-Z0-9_.\-]{1,64}$")
    description: str | None = None
    format: CustomToolFormat = Field(default_factory=CustomToolFormat)


class CustomTool(StrictBody):
    """A tool whose input is plain text (OpenAI `type: "custom"`), answered as a tool call
    of type `custom` with the text in `custom.input` (see `custom_tools.py`)."""

    type: Literal["custom"]
    custom: CustomToolDefinition


class NamedCustomToolChoice(StrictBody):
    type: Literal["custom"]
    custom: FunctionName


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice | NamedCustomToolChoice


class ToolCallFunction(BaseModel):
    name: str
    arguments: str | dict[str, Any] = "{}"  # OpenAI sends a JSON string


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str | None = None
    type: Literal["function"] = "function"
    function: ToolCallFunction


class CustomToolCallInput(BaseModel):
    name: str
    input: str = ""


class CustomToolCall(BaseModel):
    """A custom tool's call in the conversation (as the assistant's answer carried it)."""

    model_config = ConfigDict(extra="ignore")
    id: str | None = None
    type: Literal["custom"]
    custom: CustomToolCallInput


# --- messages ------------------------------------------------------------------------------
class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One message. Keys OpenAI added for other features (`refusal`, `audio`, ...) are
    ignored rather than refused, so a client can send back the messages it received."""

    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall | CustomToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None


# --- output format -------------------------------------------------------------------------
class JSONSchemaFormat(StrictBody):
    name: str = "response"
    description: str | None = None
    schema_: dict[str, Any] | bool | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(StrictBody):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class StructuredOutputs(StrictBody):
    """vLLM's `structured_outputs` extra body: one of these constraints."""

    grammar: str | None = None  # Lark, or GBNF when it defines rules with "::="
    regex: str | None = None
    choice: list[str] | None = None
    json_: dict[str, Any] | str | None = Field(default=None, alias="json")


class StreamOptions(StrictBody):
    include_usage: bool | None = False
    continuous_usage_stats: bool | None = False


# --- requests ------------------------------------------------------------------------------
class _SamplingRequest(StrictBody):
    """Fields shared by completions and chat completions."""

    model: str
    n: int = Field(default=1, ge=1, le=128)
    stop: str | list[str] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None
    # vLLM / SGLang extensions
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    min_tokens: int | None = None
    ignore_eos: bool = False
    stop_token_ids: list[int] | None = None
    skip_special_tokens: bool = True
    regex: str | None = None
    choices: list[str] | None = None
    structured_outputs: StructuredOutputs | None = None
    token_healing: bool = False
    # tines: hold a constrained output to a closing path near max_tokens (valid when cut)
    close_on_budget: bool = True


class ChatCompletionRequest(_SamplingRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    tools: list[Tool | CustomTool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool = True
    # accepted and ignored: they change nothing a local model does
    metadata: dict[str, Any] | None = None
    store: bool | None = None
    service_tier: str | None = None
    reasoning_effort: str | None = None
    modalities: list[Literal["text"]] | None = None
    # vLLM extensions: render without the assistant opening / continue the last message
    add_generation_prompt: bool = True
    continue_final_message: bool = False


class CompletionRequest(_SamplingRequest):
    prompt: str | list[int] | list[str] | list[list[int]]
    logprobs: int | None = Field(default=None, ge=0, le=20)
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None
