"""Masked-LM pretraining: random genome windows, packed batches, exact resume, DDP."""

from .train import pretrain

__all__ = ["pretrain"]
