"""The model's tokenizer: text <-> token ids, on the `tokenizers` library (Rust) for speed.

Loaded from a GGUF file's metadata or from a Hugging Face folder (`tokenizer.json` and friends);
both give the ids transformers gives for the same files. Special tokens written in the text (e.g.
`<|im_start|>`) are parsed as those tokens, as in transformers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, processors
from tokenizers import Tokenizer as Backend

from . import gguf_vocab as tokenizer_gguf

# Tokens that end a turn in common chat formats: generation stops on them like on EOS, when the
# vocabulary has them as special tokens (llama.cpp's end-of-generation set, in spirit).
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|endoftext|>", "<|end_of_text|>",
                      "<end_of_turn>", "<|end|>", "<|END_OF_TURN_TOKEN|>", "<｜end▁of▁sentence｜>",
                      "<end_of_utterance>", "<|return|>", "<EOT>")


# encode_continued re-encodes from a word boundary at least this many tokens from the end,
# looking at most this far back.
CONTINUE_MIN_TOKENS, CONTINUE_MAX_TOKENS = 4, 64


class Tokenizer:
    """A loaded tokenizer. Immutable after construction; safe to share between threads.

    Invariants: `encode` never returns an id >= `vocab_size`; `eos_token_ids` contains
    `eos_token_id` (when there is one); `special_token_ids` contains every id that
    `decode(..., skip_special_tokens=True)` drops."""

    def __init__(self, backend: Backend, *, kind: str, tokens: Sequence[str],
                 bos_token_id: int | None, eos_token_id: int | None,
                 pad_token_id: int | None = None, unk_token_id: int | None = None,
                 extra_eos_ids: Iterable[int] = ()):
        if kind not in ("byte_level", "sentencepiece"):
            raise ValueError(f"tokenizer kind must be 'byte_level' or 'sentencepiece', not {kind!r}")
        self.backend = backend
        self.kind = kind
        self._tokens = list(tokens)
        self.bos_token_id, self.eos_token_id = bos_token_id, eos_token_id
        self.pad_token_id, self.unk_token_id = pad_token_id, unk_token_id
        probe = backend.encode("", add_special_tokens=True).ids
        self.add_bos_token = bos_token_id is not None and probe[:1] == [bos_token_id]
        self.add_eos_token = eos_token_id is not None and probe[-1:] == [eos_token_id]
        added = backend.get_added_tokens_decoder()
        named = {bos_token_id, eos_token_id, pad_token_id, unk_token_id} - {None}
        self.special_token_ids: frozenset[int] = frozenset(
            {i for i, tok in added.items() if tok.special} | named)
        turn_ends = {i for i, tok in added.items() if tok.special and tok.content in END_OF_TURN_TOKENS}
        self.eos_token_ids: frozenset[int] = frozenset(
            ({eos_token_id} - {None}) | turn_ends | set(extra_eos_ids))
        self.vocab_size: int = max(len(self._tokens), backend.get_vocab_size(with_added_tokens=True))

    # ----------------------------------------------------------------- loading
    @classmethod
    def from_gguf_metadata(cls, metadata: dict[str, Any], reference: str = "llama.cpp") -> Tokenizer:
        """From a GGUF's metadata (`GGUFFile(path).metadata`). BOS is added by default for
        SentencePiece vocabularies and not for byte-level ones, unless the file says.
        Where transformers' GGUF loader and llama.cpp read a file differently, the default
        follows llama.cpp, which is also how the model was trained (its own tokenizer.json):
        for "smollm", digits are split one by one before GPT-2's regex. `reference=
        "transformers"` reproduces transformers' ids exactly."""
        parts = tokenizer_gguf.build_from_metadata(metadata, reference)
        ids = {k: metadata.get(f"tokenizer.ggml.{k}_token_id") for k in ("bos", "eos", "padding", "unknown")}
        default_bos = parts.kind == "sentencepiece"
        add_bos = bool(metadata.get("tokenizer.ggml.add_bos_token", default_bos))
        add_eos = bool(metadata.get("tokenizer.ggml.add_eos_token", False))
        _set_post_processor(parts.backend, parts.tokens, ids["bos"], ids["eos"], add_bos, add_eos)
        extra = [metadata[k] for k in ("tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id")
                 if metadata.get(k) is not None]
        return cls(parts.backend, kind=parts.kind, tokens=parts.tokens, bos_token_id=ids["bos"],
                   eos_token_id=ids["eos"], pad_token_id=ids["padding"],
                   unk_token_id=ids["unknown"], extra_eos_ids=extra)

    @classmethod
    def from_hf_folder(cls, path: str | Path) -> Tokenizer:
        """From a Hugging Face folder: `tokenizer.json` (required), `tokenizer_config.json`
        (special tokens, add_bos/add_eos, added_tokens_decoder), `special_tokens_map.json`, and the
        eos ids of `generation_config.json` / `config.json` when present."""
        folder = Path(path)
        spec = _read_json(folder / "tokenizer.json")
        if spec is None:
            raise ValueError(f"{folder}: no tokenizer.json (tokenizers without one are not supported)")
        backend = Backend.from_str(json.dumps(spec))
        config = _read_json(folder / "tokenizer_config.json") or {}
        special_map = _read_json(folder / "special_tokens_map.json") or {}
        _add_missing_tokens(backend, config.get("added_tokens_decoder") or {})
        names = {k: _token_text(config.get(k) or special_map.get(k))
                 for k in ("bos_token", "eos_token", "pad_token", "unk_token")}
        ids = {k: backend.token_to_id(v) if v is not None else None for k, v in names.items()}
        tokens = [""] * backend.get_vocab_size(with_added_tokens=True)
        for text, i in backend.get_vocab(with_added_tokens=True).items():
            if i >= len(tokens):
                tokens.extend([""] * (i + 1 - len(tokens)))
            tokens[i] = text
        if "add_bos_token" in config or "add_eos_token" in config or backend.post_processor is None:
            _set_post_processor(backend, tokens, ids["bos_token"], ids["eos_token"],
                                bool(config.get("add_bos_token")), bool(config.get("add_eos_token")))
        extra: list[int] = []
        for name in ("generation_config.json", "config.json"):
            value = (_read_json(folder / name) or {}).get("eos_token_id")
            extra += value if isinstance(value, list) else [value] if isinstance(value, int) else []
        return cls(backend, kind=_kind_of(spec), tokens=tokens, bos_token_id=ids["bos_token"],
                   eos_token_id=ids["eos_token"], pad_token_id=ids["pad_token"],
                   unk_token_id=ids["unk_token"], extra_eos_ids=extra)

    @classmethod
    def from_file(cls, path: str | Path, *, metadata: dict[str, Any] | None = None) -> Tokenizer:
        """From a `.gguf` file (pass `metadata` of an already-open GGUFFile to skip re-reading it)
        or a Hugging Face folder."""
        p = Path(path)
        if p.is_dir():
            return cls.from_hf_folder(p)
        if metadata is None:
            if not p.is_file():
                raise ValueError(f"tokenizer path does not exist: {p}")
            from ..models.gguf_file import GGUFFile
            metadata = GGUFFile(p).metadata
        return cls.from_gguf_metadata(metadata)

    # ----------------------------------------------------------------- text <-> ids
    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of `text`; with `add_special_tokens`, BOS/EOS as the model asks for them."""
        if not isinstance(text, str):
            raise ValueError(f"encode expects a str, got {type(text).__name__}")
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def encode_continued(self, ids: list[int], text: str, more: str) -> list[int]:
        """`encode(text + more)` given `ids == encode(text)`, encoding only the tail again.

        Byte-level BPE never merges across a space that follows a non-space character (the
        pre-tokenizer splits there, whatever comes after), so the ids before such a boundary
        a few tokens from the end stay as they are; the text from it on is encoded with `more`.
        Elsewhere (SentencePiece-style vocabularies, no boundary in reach, a tail that does not
        decode back to the text's end) everything is encoded, as `encode` would."""
        if not more:
            return list(ids)
        if self.kind == "byte_level":
            lo = max(len(ids) - CONTINUE_MAX_TOKENS, 1)
            for j in range(len(ids) - CONTINUE_MIN_TOKENS, lo - 1, -1):
                head, piece = self.decode(ids[j - 1:j]), self.decode(ids[j:j + 1])
                if piece[:1] == " " and head and not head[-1].isspace():
                    tail = self.decode(ids[j:])
                    if text.endswith(tail):
                        return ids[:j] + self.encode(tail + more, add_special_tokens=False)
                    break
        return self.encode(text + more)

    def encode_batch(self, texts: Sequence[str], add_special_tokens: bool = True) -> list[list[int]]:
        """`encode` of many texts at once, in parallel inside the tokenizers library."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ValueError("encode_batch expects a sequence of str")
        encodings = self.backend.encode_batch_fast(list(texts), add_special_tokens=add_special_tokens)
        return [e.ids for e in encodings]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """The text of `ids` (invalid UTF-8 at the edges decodes to U+FFFD)."""
        try:
            return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)
        except (OverflowError, TypeError) as e:
            raise ValueError(f"decode expects non-negative integer token ids: {e}") from None

    # ----------------------------------------------------------------- vocabulary
    def id_to_token(self, token_id: int) -> str:
        """The vocabulary string of `token_id` as stored (byte-level: in GPT-2's byte alphabet;
        SentencePiece: with `▁` and `<0xNN>`)."""
        if not 0 <= token_id < len(self._tokens):
            raise ValueError(f"token id {token_id} is outside the vocabulary (size {len(self._tokens)})")
        return self._tokens[token_id]

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.id_to_token(i) for i in ids]

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def token_strings(self) -> list[str]:
        """All vocabulary strings, indexed by id (a copy). Ids without a string map to ""."""
        return list(self._tokens)

    @property
    def bos_token(self) -> str | None:
        return None if self.bos_token_id is None else self._tokens[self.bos_token_id]

    @property
    def eos_token(self) -> str | None:
        return None if self.eos_token_id is None else self._tokens[self.eos_token_id]

    def __repr__(self) -> str:
        return (f"Tokenizer(kind={self.kind!r}, vocab_size={self.vocab_size}, bos={self.bos_token_id}, "
                f"eos={sorted(self.eos_token_ids)}, add_bos={self.add_bos_token})")


def _set_post_processor(backend: Backend, tokens: Sequence[str], bos: int | None, eos: int | None,
                        add_bos: bool, add_eos: bool) -> None:
    """Make `encode(..., add_special_tokens=True)` add BOS/EOS as the flags say (transformers'
    TemplateProcessing shape, so pairs behave like there too)."""
    add_bos, add_eos = add_bos and bos is not None, add_eos and eos is not None
    first = [f"{tokens[bos]}:0"] if add_bos else []
    last = [f"{tokens[eos]}:0"] if add_eos else []
    single = [*first, "$A:0", *last]
    pair = [*single, *(f"{tokens[bos]}:1",) * add_bos, "$B:1", *(f"{tokens[eos]}:1",) * add_eos]
    specials = [(tokens[bos], bos)] * add_bos + [(tokens[eos], eos)] * add_eos
    backend.post_processor = processors.TemplateProcessing(single=single, pair=pair,
                                                           special_tokens=specials)


def _kind_of(spec: dict[str, Any]) -> str:
    parts = json.dumps([spec.get("pre_tokenizer"), spec.get("decoder")])
    if "ByteLevel" in parts:
        return "byte_level"
    if spec.get("model", {}).get("byte_fallback") or "Metaspace" in parts or "\\u2581" in parts:
        return "sentencepiece"
    raise ValueError(f"unsupported tokenizer.json: model {spec.get('model', {}).get('type')!r} "
                     "is neither byte-level nor SentencePiece-style")


def _add_missing_tokens(backend: Backend, added_tokens_decoder: dict[str, Any]) -> None:
    known = backend.get_vocab(with_added_tokens=True)
    for entry in added_tokens_decoder.values():
        content = entry["content"] if isinstance(entry, dict) else str(entry)
        if content in known:
            continue
        opts = {k: entry[k] for k in ("single_word", "lstrip", "rstrip", "normalized")
                if isinstance(entry, dict) and k in entry}
        token = AddedToken(content, **opts, special=bool(isinstance(entry, dict) and entry.get("special")))
        (backend.add_special_tokens if token.special else backend.add_tokens)([token])


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
