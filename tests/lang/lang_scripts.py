"""Reply scripts for `tines.MockBackend` shared by the language tests."""

from __future__ import annotations

from collections.abc import Callable

from tines.runtime.sampling_params import SamplingParams


def by_suffix(table: dict[str, str],
              default: str | None = None) -> Callable[[str, SamplingParams], str]:
    """A reply script keyed on how the prompt ends (deterministic under concurrency)."""

    def reply(text: str, params: SamplingParams) -> str:
        for suffix, answer in table.items():
            if text.endswith(suffix):
                return answer
        if default is None:
            raise LookupError(f"no scripted reply for a prompt ending {text[-40:]!r}")
        return default

    return reply
