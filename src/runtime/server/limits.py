"""What one HTTP request may ask of the server, checked before anything reaches the engine.

Every limit answers a 400 (413 for the body size) that names the limit and the flag that sets
it, so a client knows what to change and an operator knows what to raise. Request ids a client
chooses are checked here too: they go into response headers and logs, so only short ids of
safe characters pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import APIError

# Ids a client may choose. The server derives batch members' ids as `<id>~<index>`: `~` is
# not allowed here, so a derived id never equals an id a client may send.
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:\-]{1,256}")
DERIVED_ID_SEPARATOR = "~"


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-request bounds. `max_batch` bounds the completions one HTTP request starts
    (prompts x n), `max_n` the completions per prompt (`n`, `best_of`), `max_body` the request
    body in bytes, `max_json_depth` how deeply a body's JSON may nest (a schema nested
    deeper would exhaust the grammar compiler's recursion)."""

    max_body: int = 8 * 1024 * 1024
    max_n: int = 64
    max_batch: int = 256
    max_json_depth: int = 64

    def __post_init__(self) -> None:
        for name in ("max_body", "max_n", "max_batch", "max_json_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(self, name)}")

    def check_n(self, n: int, param: str = "n") -> None:
        if n > self.max_n:
            raise APIError(400, f"{param}: {n} is over this server's limit of {self.max_n} "
                           "completions per prompt (--max-n)", param, "limit_exceeded")

    def check_batch(self, num_prompts: int, n: int, param: str) -> None:
        """400 when `num_prompts` prompts x `n` completions each exceed `max_batch`."""
        if num_prompts * n > self.max_batch:
            raise APIError(400, f"{param}: {num_prompts} prompt(s) x n={n} is {num_prompts * n} "
                           f"completions, over this server's limit of {self.max_batch} per "
                           "request (--max-batch)", param, "limit_exceeded")


def check_client_id(request_id: str, param: str = "rid") -> str:
    """The id unchanged, or 400 unless it is 1-256 characters of [A-Za-z0-9._:-]. The id in
    the error message is never echoed (it may be what broke the check)."""
    if not _CLIENT_ID.fullmatch(request_id):
        raise APIError(400, f"{param}: must be 1 to 256 characters among letters, digits and "
                       f"'._:-' (got {len(request_id)} characters)", param)
    return request_id


def derived_id(group: str, index: int) -> str:
    """The engine request id of a group's `index`-th member (never a valid client id)."""
    return f"{group}{DERIVED_ID_SEPARATOR}{index}"
