"""Build a `tokenizers.Tokenizer` from the tokenizer a GGUF file describes in its metadata.

A GGUF carries no `tokenizer.json`: it stores llama.cpp's view of the vocabulary (tokens, token
types, scores, merges, special ids, the pre-tokenizer's name). Two kinds are supported:

- `tokenizer.ggml.model == "gpt2"`: byte-level BPE. Tokens are spelled in GPT-2's byte alphabet;
  the text is split by a regex chosen from `tokenizer.ggml.pre` before BPE runs.
- `tokenizer.ggml.model == "llama"`: SentencePiece BPE. Spaces become `▁`, characters the vocabulary
  lacks fall back to `<0xNN>` byte tokens, merges come from the file or are derived from the scores.

The pipelines equal those Hugging Face transformers builds for the same file, so token ids agree
with `AutoTokenizer.from_pretrained(..., gguf_file=...)`; where the two differ it is noted below.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

# llama.cpp's token types (`tokenizer.ggml.token_type`).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

# Split regexes of the BPE pre-tokenizers, by `tokenizer.ggml.pre`. These are the regexes the
# models were trained with (tiktoken / llama.cpp); names not listed (e.g. "smollm", "gpt2",
# "default") use GPT-2's own regex inside the ByteLevel pre-tokenizer, as transformers does.
_LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
           r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
          r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN35 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}"
           r"| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_UPPER, _LOWER = r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]", r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"
_TEKKEN = (rf"[^\r\n\p{{L}}\p{{N}}]?{_UPPER}*{_LOWER}+|[^\r\n\p{{L}}\p{{N}}]?{_UPPER}+{_LOWER}*"
           r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_CONTRACTION = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
_GPT4O = (rf"[^\r\n\p{{L}}\p{{N}}]?{_UPPER}*{_LOWER}+{_CONTRACTION}"
          rf"|[^\r\n\p{{L}}\p{{N}}]?{_UPPER}+{_LOWER}*{_CONTRACTION}"
          r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")

PRE_TOKENIZER_SPLITS: dict[str, str] = {
    **dict.fromkeys(["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral",
                     "midm-2.0", "lfm2", "jina-v5-nano", "dbrx", "smaug-bpe"], _LLAMA3),
    **dict.fromkeys(["qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez"], _QWEN2),
    "qwen35": _QWEN35,
    "tekken": _TEKKEN,
    **dict.fromkeys(["gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"], _GPT4O),
}
# Names known to mean GPT-2's regex in transformers.
_GPT2_STYLE = {"default", "gpt2", "smollm", "gpt-2"}
# llama.cpp (and these models' own tokenizer.json) first isolate every numeric character, then
# apply GPT-2's regex; transformers' GGUF loader skips that step. Ids differ on whitespace
# before digits ("  1" -> "ĠĠ","1" vs "Ġ","Ġ","1") and on non-ASCII numerals after a space.
_DIGITS_FIRST = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"}
REFERENCES = ("transformers", "llama.cpp")


class GGUFTokenizerParts(NamedTuple):
    backend: Tokenizer
    kind: str  # "byte_level" | "sentencepiece"
    tokens: list[str]  # vocabulary strings as the backend spells them, indexed by id
    add_prefix_space: bool


def byte_alphabet() -> dict[int, str]:
    """GPT-2's byte -> printable character map: printable Latin-1 bytes map to themselves, the
    other 68 bytes to U+0100 onward in byte order."""
    kept = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table = {b: chr(b) for b in kept}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(0x100 + extra)
            extra += 1
    return table


def build_from_metadata(metadata: dict[str, Any], reference: str = "llama.cpp") -> GGUFTokenizerParts:
    """The backend tokenizer (no post-processor: the caller adds BOS/EOS) for a GGUF's metadata.
    `reference` picks whose reading to follow where transformers and llama.cpp disagree (only
    the digit split of `_DIGITS_FIRST` pre-tokenizers). Raises ValueError for missing keys or
    unsupported tokenizer models."""
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}, not {reference!r}")
    model = metadata.get("tokenizer.ggml.model")
    tokens = metadata.get("tokenizer.ggml.tokens")
    if not tokens:
        raise ValueError("GGUF metadata has no tokenizer.ggml.tokens: the file carries no tokenizer")
    types = list(metadata.get("tokenizer.ggml.token_type") or [NORMAL] * len(tokens))
    if len(types) != len(tokens):
        raise ValueError(f"tokenizer.ggml.token_type has {len(types)} entries for {len(tokens)} tokens")
    if model == "gpt2":
        parts = _byte_level(metadata, list(tokens), digits_first=reference == "llama.cpp")
    elif model == "llama":
        parts = _sentencepiece(metadata, list(tokens), types)
    else:
        raise ValueError(f"unsupported GGUF tokenizer model {model!r} (tokenizer.ggml.model); "
                         "supported: 'gpt2' (byte-level BPE) and 'llama' (SentencePiece BPE)")
    _add_special_tokens(parts.backend, list(tokens), parts.tokens, types, metadata)
    return parts


def _byte_level(metadata: dict[str, Any], tokens: list[str], digits_first: bool) -> GGUFTokenizerParts:
    alphabet = byte_alphabet()
    letters = set(alphabet.values())
    # A token written outside the byte alphabet (an added token with a real space, say) is
    # respelled byte by byte, so the BPE vocabulary stays in one alphabet.
    spelled = [t if set(t) <= letters else "".join(alphabet[b] for b in t.encode("utf-8")) for t in tokens]
    if not metadata.get("tokenizer.ggml.merges"):
        raise ValueError("a byte-level (gpt2) GGUF tokenizer needs tokenizer.ggml.merges")
    merges = [tuple(m.split(" ", 1)) for m in metadata["tokenizer.ggml.merges"]]
    bpe = models.BPE(vocab=_vocab(spelled), merges=merges, fuse_unk=False,
                     continuing_subword_prefix="", end_of_word_suffix="")
    backend = Tokenizer(bpe)
    pre = metadata.get("tokenizer.ggml.pre", "default")
    split = PRE_TOKENIZER_SPLITS.get(pre)
    if split is None and digits_first and pre in _DIGITS_FIRST:
        backend.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ])
    elif split is None:
        if pre not in _GPT2_STYLE | _DIGITS_FIRST:
            warnings.warn(f"GGUF pre-tokenizer {pre!r} is not known; using GPT-2's split regex",
                          stacklevel=3)
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        backend.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(split), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    backend.decoder = decoders.ByteLevel()
    return GGUFTokenizerParts(backend, "byte_level", spelled, False)


def _sentencepiece(metadata: dict[str, Any], tokens: list[str], types: list[int]) -> GGUFTokenizerParts:
    vocab = _vocab(tokens)
    if metadata.get("tokenizer.ggml.merges"):
        merges = [tuple(m.split(" ", 1)) for m in metadata["tokenizer.ggml.merges"]]
    else:
        scores = metadata.get("tokenizer.ggml.scores")
        if scores is None or len(scores) != len(tokens):
            raise ValueError("a SentencePiece GGUF needs tokenizer.ggml.scores (one per token) "
                             "when it has no tokenizer.ggml.merges")
        merges = merges_from_scores(tokens, scores, vocab)
    unk_ids = [i for i, t in enumerate(types) if t == UNKNOWN]
    unk_id = metadata.get("tokenizer.ggml.unknown_token_id", unk_ids[0] if unk_ids else None)
    unk = tokens[unk_id] if unk_id is not None and 0 <= unk_id < len(tokens) else None
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=unk, fuse_unk=True,
                                   byte_fallback=True))
    # transformers always prepends "▁" (scheme "first"); llama.cpp honours the flag, and so do we.
    add_prefix = bool(metadata.get("tokenizer.ggml.add_space_prefix", True))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="▁", prepend_scheme="first" if add_prefix else "never", split=False)
    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if add_prefix:
        steps.append(decoders.Strip(content=" ", left=1))
    backend.decoder = decoders.Sequence(steps)
    return GGUFTokenizerParts(backend, "sentencepiece", tokens, add_prefix)


def merges_from_scores(tokens: list[str], scores: list[float], vocab: dict[str, int]) -> list[tuple[str, str]]:
    """BPE merges implied by a SentencePiece vocabulary: every split of a token into two tokens,
    best (highest-scoring) result first; ties go to the longer left piece, then the longer right
    piece, then vocabulary order. Equals the ranking SentencePiece applies when it merges."""
    score_of = dict(zip(tokens, scores))
    ranked: list[tuple[float, int, int, int, str, str]] = []
    for order, token in enumerate(score_of):
        splits = [(vocab[token[:k]], vocab[token[k:]], token[:k], token[k:])
                  for k in range(1, len(token)) if token[:k] in vocab and token[k:] in vocab]
        for _, _, left, right in sorted(splits):
            ranked.append((-score_of[token], -len(left), -len(right), len(ranked), left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def _vocab(tokens: list[str]) -> dict[str, int]:
    # A repeated string keeps its last id, as in transformers; the other ids stay unreachable.
    return {t: i for i, t in enumerate(tokens)}


def _add_special_tokens(backend: Tokenizer, raw: list[str], spelled: list[str], types: list[int],
                        metadata: dict[str, Any]) -> None:
    """Control and unknown tokens become special added tokens (matched whole in text, skipped by
    `skip_special_tokens`); user-defined ones become plain added tokens (matched whole, kept).
    Named bos/eos/pad/unk tokens count as special unless the file marks them normal."""
    named = {metadata.get(f"tokenizer.ggml.{k}_token_id") for k in ("bos", "eos", "unknown", "padding")}
    special, plain = [], []
    for i, (tok, kind) in enumerate(zip(raw, types)):
        # A respelled token is no longer the string text contains; matching it would add an id.
        if tok != spelled[i]:
            continue
        if kind in (CONTROL, UNKNOWN) or (i in named and kind not in (NORMAL, BYTE)):
            special.append(AddedToken(tok, normalized=False, special=True))
        elif kind == USER_DEFINED:
            plain.append(AddedToken(tok, normalized=False, special=False))
    if special:
        backend.add_special_tokens(special)
    if plain:
        backend.add_tokens(plain)
