"""DNABERT-2 re-implemented: BPE tokenizer, ALiBi encoder, fine-tuning and genome scanning."""

from .tokenizer import load_tokenizer

__version__ = "0.1.0"
__all__ = ["load_tokenizer"]
