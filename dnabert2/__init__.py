"""DNABERT-2 re-implemented: BPE tokenizer, ALiBi encoder, fine-tuning and genome scanning."""

from .tokenizer import load_tokenizer

__version__ = "0.1.0"
__all__ = ["load_tokenizer", "load_model"]


def load_model(path, head=None, **options):
    """A model folder (this project's or a released DNABERT-2) as a torch module; see dnabert2.model.load_model.
    Imported on first use so that the tokenizer and the command line do not pay for importing torch."""
    from .model import load_model as load

    return load(path, head, **options)
