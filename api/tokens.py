"""Counting a text's tokens in the API with the model's own tokenizer (the Rust `tokenizers` package: no torch),
so the token limit is exact. Tokenizers are loaded once per encoder folder and are read-only afterwards."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from tokenizers import Tokenizer

from shared.errors import ModelConfigError
from shared.modelspec import ModelSpec

log = logging.getLogger(__name__)

# Architectures whose folder holds a Hugging Face tokenizer (others, like the no-op model, have none).
TOKENIZED = frozenset({"encoder-linear-head", "hf-sequence-classification"})


def count_tokens(spec: ModelSpec, text: str) -> int | None:
    """Tokens the model's tokenizer makes of `text` (special tokens included), or None if it has no
    tokenizer.json (then only the character limit applies)."""
    if spec.architecture not in TOKENIZED:
        return None
    try:
        folder = spec.encoder_path()
    except ModelConfigError:
        return None
    tokenizer = _load(folder / "tokenizer.json")
    return None if tokenizer is None else len(tokenizer.encode(text).ids)


@functools.lru_cache(maxsize=32)
def _load(path: Path) -> Tokenizer | None:
    if not path.is_file():
        log.warning("no tokenizer at %s: texts are limited by characters only", path)
        return None
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()  # count everything; the model's own truncation happens in the worker
    tokenizer.no_padding()  # tokenizer.json may pad to a fixed length, which is not the text's length
    return tokenizer
