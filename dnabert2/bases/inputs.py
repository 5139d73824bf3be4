"""What a per-base model reads: each sequence's token ids ([CLS] … [SEP], never cut: every base must
reach a token), which token spans each base, and the bases themselves; batched packed, as the encoder
takes them."""

import numpy as np
import torch

from ..devices import upload
from ..tokenizer import CLS, SEP

BASE_CODES = np.full(256, 4, dtype=np.int64)  # 0-3 for ACGT, 4 for N and anything else
for _code, _base in enumerate("ACGT"):
    BASE_CODES[ord(_base)] = _code


def base_codes(sequence: str) -> np.ndarray:
    return BASE_CODES[np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)]


def encode_bases(tokenizer, sequences: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per sequence: its ids with [CLS] and [SEP], and for each base the index of its token among them."""
    encoded = tokenizer.encode_batch(list(sequences), add_special_tokens=False)
    out = []
    for sequence, e in zip(sequences, encoded):
        spans = np.array([end - start for start, end in e.offsets], dtype=np.int64)
        token_of_base = np.repeat(np.arange(1, len(spans) + 1), spans)
        if len(token_of_base) != len(sequence):  # offsets cover every base of a DNA string, one token each
            raise ValueError(f"the tokenizer's offsets cover {len(token_of_base)} of {len(sequence)} bases")
        out.append((np.array([CLS, *e.ids, SEP], dtype=np.int64), token_of_base))
    return out


def dense_batch(encoded: list[tuple[np.ndarray, np.ndarray]] | None, sequences: list[str], device,
                labels: np.ndarray | None = None, length: int = 0) -> dict:
    """The keyword arguments of a per-base model's forward for these sequences (shorter ones padded
    with N bases that point at [CLS] and are not scored, up to the longest or `length`); encoded None:
    bases only, for a model that reads no tokens."""
    longest = max(length, *map(len, sequences))
    bases = np.full((len(sequences), longest), 4, dtype=np.int64)
    for i, sequence in enumerate(sequences):
        bases[i, :len(sequence)] = base_codes(sequence)
    batch = {"bases": upload(bases, device)}
    if min(map(len, sequences)) < longest:  # convolutions read zeros past a shorter sequence's end
        batch["base_mask"] = upload(np.arange(longest) < np.array([[len(q)] for q in sequences]), device)
    if encoded is not None:
        token_of_base = np.zeros((len(sequences), longest), dtype=np.int64)
        for i, (_, tokens) in enumerate(encoded):
            token_of_base[i, :len(tokens)] = tokens
        lengths = [len(ids) for ids, _ in encoded]
        # cu_seqlens stays on the CPU: the model checks it there and copies it, without a sync.
        batch |= {"input_ids": upload(np.concatenate([ids for ids, _ in encoded]), device),
                  "cu_seqlens": torch.tensor([0, *np.cumsum(lengths)], dtype=torch.int32),
                  "max_seqlen": max(lengths), "token_of_base": upload(token_of_base, device)}
    if labels is not None:
        batch["labels"] = upload(labels, device)
    return batch
