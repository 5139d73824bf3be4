"""The BPE tokenizer as the model reads it: loaded from a tokenizer.json in the released DNABERT-2
layout (special tokens [UNK] [CLS] [SEP] [PAD] [MASK] = ids 0-4, whitespace pre-tokenizer,
[CLS] ... [SEP] template), and sequences encoded into input ids. Learning one is dnabert2.vocab."""

import json
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer

from .errors import UserError
from .hub import model_name, model_path
from .outputs import atomic_output

SPECIAL_TOKENS = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
UNK, CLS, SEP, PAD, MASK = range(len(SPECIAL_TOKENS))  # load_tokenizer checks every tokenizer has these ids
FIRST_REGULAR = len(SPECIAL_TOKENS)
ALPHABET = "ACGT"
MIN_VOCAB_SIZE = len(SPECIAL_TOKENS) + len(ALPHABET)


def load_tokenizer(path) -> Tokenizer:
    """A tokenizer.json, or a model folder holding one (this project's or a released DNABERT-2, on disk or
    by Hub id)."""
    path = model_path(path)
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise UserError(f"{model_name(path)}: no tokenizer.json there")
    try:
        tokenizer = Tokenizer.from_file(str(file))
    except Exception as error:  # tokenizers raises a bare Exception for malformed JSON
        raise UserError(f"{file}: not a Hugging Face tokenizer file ({str(error)[:120]})") from None
    ids = [tokenizer.token_to_id(token) for token in SPECIAL_TOKENS]
    if ids != list(range(len(SPECIAL_TOKENS))):
        raise UserError(f"{file}: special tokens {SPECIAL_TOKENS} must have ids 0-4, found {ids}")
    if None in (tokenizer.token_to_id(base) for base in "ACGT"):
        raise UserError(f"{file}: no token for each of the bases A, C, G and T: every base of a genome would be "
                        f"[UNK] (a tokenizer of another alphabet, or of lower-case DNA?)")
    return tokenizer


def save_tokenizer(tokenizer: Tokenizer, path) -> None:
    """Write a tokenizer.json (under a temporary name, renamed) that every tokenizers release reads:
    BPE merges as "A T" strings, as the released DNABERT-2 has them. tokenizers 0.20 and later write
    pairs, which the releases before it (transformers 4.29, the original DNABERT-2's, pins 0.13) refuse;
    a merge of tokens holding a space could only be a pair."""
    data = json.loads(tokenizer.to_str())
    merges = data["model"].get("merges", [])
    if data["model"].get("type") == "BPE" and not any(" " in part for pair in merges for part in pair):
        data["model"]["merges"] = [" ".join(pair) for pair in merges]
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def token_ids(tokenizer: Tokenizer, sequences: Sequence[str]) -> list[list[int]]:
    """The token ids of each sequence, without special tokens."""
    # The fast batch call skips the character offsets, a quarter of the tokenizer's time on DNA.
    return [e.ids for e in tokenizer.encode_batch_fast(list(sequences), add_special_tokens=False)]


def frame(ids: Sequence[list[int]], max_tokens: int | None = None) -> list[list[int]]:
    """Token ids as the model's input: [CLS] … [SEP], at most `max_tokens` ids in all (a longer
    sequence loses its end), or whole."""
    if max_tokens is not None and max_tokens < 3:
        raise UserError(f"max_tokens must be 3 or more ([CLS], a token, [SEP]), not {max_tokens}")
    return [[CLS, *i[: None if max_tokens is None else max_tokens - 2], SEP] for i in ids]


def encode(tokenizer: Tokenizer, sequences: Sequence[str], max_tokens: int | None = None) -> list[list[int]]:
    """The model's input ids of each sequence (token_ids, framed)."""
    return frame(token_ids(tokenizer, sequences), max_tokens)


def token_limit(bp: int) -> int:
    """DNABERT-2's cut-off for sequences of `bp` bases: a quarter of the length in tokens (BPE makes
    about 5 bp per token, so only unusually short tokens reach it)."""
    return max(8, -(-bp // 4))


def bp_per_token(tokenizer: Tokenizer, sequences: Sequence[str]) -> float:
    """Mean base pairs per token, special tokens not counted."""
    encodings = tokenizer.encode_batch(list(sequences), add_special_tokens=False)
    tokens = sum(len(e.ids) for e in encodings)
    return sum(map(len, sequences)) / max(tokens, 1)
