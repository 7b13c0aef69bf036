"""tines.runtime.tokenizer: text <-> token ids. `Tokenizer` (from GGUF metadata or a
tokenizer.json), incremental detokenization for streams, and chat templates (jinja2, tools)."""

from .tokenizer import Tokenizer

__all__ = ["Tokenizer"]
