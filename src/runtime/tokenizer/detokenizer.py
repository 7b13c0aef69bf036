"""Incremental detokenization: turn a stream of token ids into text deltas.

Decoding token by token is wrong twice over: one character can span several byte tokens, and
the text of a token can depend on its neighbours (SentencePiece's leading space). So each step
decodes a short window of recent tokens and emits only what that window adds to the text already
emitted (the vLLM / SGLang scheme). The window is `ids[prefix_offset:]`, and
`ids[prefix_offset:read_offset]` decodes to `prefix_text`, text already emitted:

    ids:  ... | prefix_offset ........ read_offset ........ len(ids)
                |<- decoded, emitted ->|<- new, pending ->|

Text is emitted up to the last token boundary whose text does not end in U+FFFD, so never half a
UTF-8 character; both offsets then move to that boundary. Tokens after it stay pending. Work per
token is a few decodes of a window of a handful of tokens, independent of the text's length.
"""

from __future__ import annotations

from collections.abc import Sequence

from .tokenizer import Tokenizer

# Tokens of the prompt kept as left context: enough for any merge-dependent spacing to settle.
PROMPT_CONTEXT_TOKENS = 5
# A character is at most 4 bytes, so a boundary is at most 4 tokens back when the text is valid.
_MAX_CHAR_TOKENS = 4
# More pending tokens than this means the model produced invalid UTF-8: release it as U+FFFD so
# the window stays bounded.
MAX_PENDING_TOKENS = 16
_REPLACEMENT = "\ufffd"


class IncrementalDetokenizer:
    """Streams the text of generated tokens.

    Invariants: `text` is the concatenation of everything `push` and `flush` returned; after
    `flush()`, `text == tokenizer.decode(generated ids)` when no prompt context was given (with
    context, `text` is the continuation of the prompt's text, e.g. keeping a leading space).
    A returned piece never ends inside a UTF-8 character unless the model produced invalid UTF-8
    (released after `MAX_PENDING_TOKENS` tokens, or by `flush`)."""

    def __init__(self, tokenizer: Tokenizer, prompt_ids_tail: Sequence[int] = (),
                 skip_special_tokens: bool = True):
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self._ids: list[int] = list(prompt_ids_tail[-PROMPT_CONTEXT_TOKENS:])
        self._prefix_offset = 0
        self._read_offset = len(self._ids)
        self._prefix_text = self._decode(self._ids)
        self.text = ""
        self.num_tokens = 0

    def push(self, token_ids: Sequence[int]) -> str:
        """Add generated tokens; return the text they complete (possibly "")."""
        if not token_ids:
            return ""
        self._ids.extend(token_ids)
        self.num_tokens += len(token_ids)
        end = len(self._ids)
        window = self._decode(self._ids[self._prefix_offset:end])
        # Walk back from the end to the last boundary where no character is cut.
        lowest = max(self._read_offset + 1, end - _MAX_CHAR_TOKENS)
        while window.endswith(_REPLACEMENT) and end > lowest:
            end -= 1
            window = self._decode(self._ids[self._prefix_offset:end])
        if window.endswith(_REPLACEMENT):
            if len(self._ids) - self._read_offset <= MAX_PENDING_TOKENS:
                return ""  # a character is still incomplete
            end = len(self._ids)
            window = self._decode(self._ids[self._prefix_offset:end])
        return self._emit(window, end)

    def flush(self) -> str:
        """Release whatever is held back (an incomplete character decodes to U+FFFD)."""
        return self._emit(self._decode(self._ids[self._prefix_offset:]), len(self._ids))

    def _emit(self, window: str, end: int) -> str:
        # `window` (the text of ids[prefix_offset:end]) starts with `prefix_text`: decoding is
        # stable on complete characters, and prefix_offset sits at a character boundary.
        if len(window) <= len(self._prefix_text):
            return ""  # nothing visible yet (e.g. skipped special tokens); keep waiting
        delta = window[len(self._prefix_text):]
        self._prefix_offset, self._read_offset = self._read_offset, end
        self._prefix_text = self._decode(self._ids[self._prefix_offset:self._read_offset])
        # Drop ids left of the window so memory stays bounded on long generations.
        if self._prefix_offset > 64:
            del self._ids[:self._prefix_offset]
            self._read_offset -= self._prefix_offset
            self._prefix_offset = 0
        self.text += delta
        return delta

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=self.skip_special_tokens) if ids else ""
