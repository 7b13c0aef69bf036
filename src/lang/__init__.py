"""tines: a structured-generation language for LLM programs.

    import tines

    @tines.program
    def qa(s, question):
        s += tines.user(question)
        s += tines.assistant(tines.gen("answer", max_tokens=64))

    state = qa.run("What is a radix tree?", temperature=0)
    print(state["answer"])

Importing tines loads neither torch nor the engine: backends load what they need on use.
The backends (`tines.LocalBackend`, `tines.RemoteBackend`, `tines.OpenAICompatible`) are
imported when first named.
"""

from typing import Any

from tines.api import (assistant, assistant_begin, assistant_end, gen, gen_int, gen_string,
                       select, system, system_begin, system_end, user, user_begin, user_end)
from tines.backend import Backend, ScoreResult
from tines.choices import (ChoicesDecision, ChoicesMethod, ChoicesSamplingMethod,
                           greedy_token_selection, token_length_normalized,
                           unconditional_likelihood_normalized)
from tines.defaults import get_default_backend, set_default_backend
from tines.errors import PendingValueError, TracingError
from tines.graph import TraceGraph, TraceNode
from tines.meta import GenMeta, SelectMeta
from tines.mock import MockBackend, MockRequest
from tines.program import Program, function, program
from tines.state import ProgramState
from tines.state_base import ProgramStateGroup

# name -> (module, attribute); RuntimeEndpoint is SGLang's name for a remote server.
_LAZY = {"LocalBackend": ("tines.local", "LocalBackend"),
         "RemoteBackend": ("tines.remote", "RemoteBackend"),
         "RuntimeEndpoint": ("tines.remote", "RemoteBackend"),
         "OpenAICompatible": ("tines.openai_compat", "OpenAICompatible")}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'tines' has no attribute {name!r}")


__all__ = [
    "Backend", "LocalBackend", "OpenAICompatible", "RemoteBackend", "RuntimeEndpoint", "ChoicesDecision", "ChoicesMethod", "ChoicesSamplingMethod", "GenMeta",
    "MockBackend", "MockRequest", "PendingValueError", "Program", "ProgramState",
    "ProgramStateGroup", "ScoreResult", "SelectMeta", "TraceGraph", "TraceNode",
    "TracingError", "assistant", "assistant_begin", "assistant_end", "function", "gen",
    "gen_int", "gen_string", "get_default_backend", "greedy_token_selection", "program",
    "select", "set_default_backend", "system", "system_begin", "system_end",
    "token_length_normalized", "unconditional_likelihood_normalized", "user", "user_begin",
    "user_end",
]
