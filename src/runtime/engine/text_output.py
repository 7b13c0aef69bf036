"""The text of one generated sequence: incremental detokenization plus stop strings.

Stop strings are matched on the text, so they are found across token boundaries; the text is
cut where the first stop string begins (the stop string is not part of the output). While a
sequence runs, text that could still turn out to be the start of a stop string is held back
from streams.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..tokenizer.detokenizer import IncrementalDetokenizer
from ..tokenizer.tokenizer import Tokenizer


class TextOutput:
    def __init__(self, tokenizer: Tokenizer, stop: Sequence[str] = (), prompt_ids: Sequence[int] = (),
                 skip_special_tokens: bool = True):
        self._tokenizer, self._skip = tokenizer, skip_special_tokens
        self._detok = IncrementalDetokenizer(tokenizer, prompt_ids, skip_special_tokens)
        self._stops = list(stop)
        self._max_stop = max((len(s) for s in self._stops), default=0)
        self.text = ""
        self.stopped_by: str | None = None
        self._emitted = 0

    def push(self, token_ids: Sequence[int]) -> str | None:
        """Add tokens; returns the stop string when one now appears in the text."""
        if self.stopped_by is not None:
            return self.stopped_by
        piece = self._detok.push(token_ids)
        return self._append(piece)

    def replace_tail(self, context: Sequence[int], removed: Sequence[int],
                     added: Sequence[int]) -> str | None:
        """The last tokens `removed` (preceded by `context`) were re-tokenized as `added`,
        spelling the same text and more (jump-forward). Appends the extra text; returns the
        stop string when one now appears."""
        if self.stopped_by is not None:
            return self.stopped_by
        if not removed:
            return self.push(added)
        decode = lambda ids: self._tokenizer.decode(list(ids), skip_special_tokens=self._skip)
        old, new = decode([*context, *removed]), decode([*context, *added])
        if not new.startswith(old):
            raise ValueError("re-tokenized tail does not extend the old text")
        # Future pushes decode in the new tokens' context.
        self._detok = IncrementalDetokenizer(self._tokenizer, [*context, *added], self._skip)
        return self._append(new[len(old):])

    def finish(self) -> None:
        """The sequence ended: release any held-back partial character."""
        if self.stopped_by is None:
            self._append(self._detok.flush())

    def _append(self, piece: str) -> str | None:
        if not piece:
            return None
        start = max(0, len(self.text) - self._max_stop + 1)
        self.text += piece
        if not self._stops:
            return None
        hits = [(i, s) for s in self._stops if (i := self.text.find(s, start)) >= 0]
        if hits:
            cut, stop = min(hits)
            self.text = self.text[:cut]
            self.stopped_by = stop
        return self.stopped_by

    def take_delta(self, final: bool) -> str:
        """Text not yet handed out. Unless `final`, a tail that is a prefix of a stop string
        stays back (it may become the stop string, which is never emitted)."""
        end = len(self.text)
        if not final and self._stops and self.stopped_by is None:
            end -= self._stop_prefix_len()
        if end <= self._emitted:
            return ""
        delta = self.text[self._emitted:end]
        self._emitted = end
        return delta

    def _stop_prefix_len(self) -> int:
        """Length of the longest tail of the text that is a proper prefix of a stop string."""
        best = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(self.text)), best, -1):
                if self.text.endswith(stop[:n]):
                    best = n
                    break
        return best
