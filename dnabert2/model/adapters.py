"""LoRA adapters (peft) on the encoder: what fine-tuning wraps a model in, and how a saved adapter
folder is merged back into its base model."""

from pathlib import Path

import torch

from ..errors import UserError
from ..settings import LORA_TARGETS
# Where each LoRA target sits in an encoder layer. LoRA goes into the encoder layers only; "dense"
# elsewhere is the pooler, trained whole with the head.
LAYER_MODULES = dict(zip(LORA_TARGETS, ("attention.self.Wqkv", "attention.output.dense", "mlp.gated_layers", "mlp.wo")))
HEAD_MODULES = ["classifier", "pooler", "base_head"]


def with_lora(model: torch.nn.Module, r: int, alpha: int, dropout: float, targets) -> torch.nn.Module:
    """The model wrapped for LoRA training: adapters on the `targets` of every encoder layer, the
    head (window classifier and pooler, or per-base head) trained whole."""
    from peft import LoraConfig, get_peft_model

    unknown = sorted(set(targets) - set(LAYER_MODULES))
    if unknown:
        raise UserError(f"LoRA target modules {unknown} do not exist in the model; "
                        f"choose from {', '.join(LAYER_MODULES)}")
    pattern = r"bert\.encoder\.layer\.\d+\.(" + "|".join(LAYER_MODULES[t].replace(".", r"\.") for t in targets) + ")"
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=pattern,
                        modules_to_save=HEAD_MODULES, bias="none")
    return get_peft_model(model, config)


def is_adapter(folder: Path) -> bool:
    """A LoRA fine-tuning folder: the adapter and head, and finetune.json naming the base model."""
    return (folder / "adapter_config.json").is_file() and (folder / "finetune.json").is_file()


def merge_adapter(base: torch.nn.Module, folder: Path) -> torch.nn.Module:
    """The base model with the adapter and head saved in `folder` merged into its weights."""
    from peft import PeftModel

    return PeftModel.from_pretrained(base, folder).merge_and_unload()
