"""What listeners receive: stream deltas and the final RequestOutput, built from sequences."""

from __future__ import annotations

from ..outputs import Completion, RequestOutput, StreamDelta
from .request import Request, Sequence


def stream_delta(seq: Sequence, text: str, finish_reason: str | None = None) -> StreamDelta:
    """A stream event with the text and the tokens (and logprobs) new since the last one;
    advances the sequence's streamed counters."""
    tokens = seq.token_ids[seq.prompt_len + seq.num_streamed:]
    logprobs = None
    if seq.logprobs is not None:
        logprobs = seq.logprobs[seq.num_streamed_logprobs:]
        seq.num_streamed_logprobs = len(seq.logprobs)
    seq.num_streamed += len(tokens)
    return StreamDelta(seq.request.request_id, seq.index, text, tokens, finish_reason, logprobs)


def request_output(req: Request) -> RequestOutput:
    """The result of a finished request: its completions in index order."""
    completions = [Completion(s.index, s.output.text, s.token_ids[s.prompt_len:],
                              s.finish_reason or "abort", s.matched_stop, s.logprobs)
                   for s in sorted(req.seqs, key=lambda s: s.index)]
    return RequestOutput(req.request_id, list(req.prompt_ids), completions,
                         req.num_cached_tokens, req.prompt_logprobs, req.branch_logprobs)
