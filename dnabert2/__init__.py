"""DNABERT-2 re-implemented: BPE tokenizer, ALiBi encoder, fine-tuning and genome scanning."""

__version__ = "0.1.0"
__all__ = ["load_tokenizer", "load_model"]


# Both import on first use, so that importing any part of the package (the workflow reads its
# settings) pays for neither tokenizers nor torch.

def load_tokenizer(path):
    """A tokenizer.json, or a model folder holding one; see dnabert2.tokenizer.load_tokenizer."""
    from .tokenizer import load_tokenizer as load

    return load(path)


def load_model(path, head=None, **options):
    """A model folder (this project's or a released DNABERT-2) as a torch module; see dnabert2.model.load_model."""
    from .model import load_model as load

    return load(path, head, **options)
