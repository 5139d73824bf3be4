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
    """A model folder (this project's or a released DNABERT-2) as a torch module; see dnabert2.model.load_model.
    The CNN baseline's folder gives its SpliceCNN (head None or "dense"; device and trained the only options)."""
    from .bases.cnn import is_cnn, load_cnn
    from .errors import UserError
    from .model import load_model as load

    if is_cnn(path):
        if head not in (None, "dense") or set(options) - {"device", "trained"}:
            raise UserError(f"{path}: the CNN baseline, a per-base model of its own, takes no head but 'dense' "
                            "and no option but device and trained")
        from .devices import resolve_device

        return load_cnn(path, resolve_device(options.get("device", "cpu")))
    return load(path, head, **options)
