"""The base-resolution baseline: a dilated residual CNN on one-hot sequence in the SpliceAI design
(Jaganathan et al. 2019): residual blocks of batch norm, ReLU and dilated convolution, their outputs
summed through 1×1 skip convolutions, a 1×1 convolution to per-base logits. The default layout is
SpliceAI-400nt's, 4 blocks of width 11 at dilation 1 and 4 at dilation 4: each base sees 200 bases
on either side. It is saved as a model folder of its own (config.json, model.safetensors)."""

import json
from pathlib import Path

import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from ..model import ModelOutput
from ..model.checkpoint import UNREADABLE, unreadable
from ..outputs import atomic_output

ARCHITECTURE = "SpliceCNN"


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, width: int, dilation: int):
        super().__init__()
        padding = (width - 1) // 2 * dilation
        self.layers = nn.Sequential(
            nn.BatchNorm1d(channels), nn.ReLU(), nn.Conv1d(channels, channels, width, dilation=dilation, padding=padding),
            nn.BatchNorm1d(channels), nn.ReLU(), nn.Conv1d(channels, channels, width, dilation=dilation, padding=padding))

    def forward(self, x, keep=None):
        """keep (B, 1, L): 0 past each sequence of a padded batch, where a convolution must read the
        zeros it reads past a tensor's end, so a sequence scores alike alone and in any batch."""
        if keep is None:
            return x + self.layers(x)
        h = x
        for norm, relu, conv in (self.layers[:3], self.layers[3:]):
            h = conv(relu(norm(h)) * keep)
        return x + h


class SpliceCNN(nn.Module):
    """Per-base logits (B, L, K) from bases (B, L) coded 0-3 for ACGT, 4 for anything else, and
    base_mask (B, L), 1 on a padded batch's real bases. Takes the keyword arguments of
    DNABertForBaseClassification, so one training loop serves both (tokens unused)."""

    def __init__(self, num_labels: int, channels: int = 32, width: int = 11, dilations=(1, 1, 1, 1, 4, 4, 4, 4)):
        super().__init__()
        self.config = {"architectures": [ARCHITECTURE], "num_labels": num_labels, "channels": channels,
                       "width": width, "dilations": list(dilations)}
        self.embed = nn.Conv1d(4, channels, 1)
        self.skip = nn.Conv1d(channels, channels, 1)
        self.blocks = nn.ModuleList(ResidualBlock(channels, width, d) for d in dilations)
        # A skip connection after every fourth block, as SpliceAI sums them.
        self.skips = nn.ModuleList(nn.Conv1d(channels, channels, 1) for _ in range(0, len(dilations), 4))
        self.out = nn.Conv1d(channels, num_labels, 1)

    @property
    def context(self) -> int:
        """Bases each side that reach a base's logits."""
        return sum((self.config["width"] - 1) * d for d in self.config["dilations"])

    def forward(self, bases, labels=None, class_weights=None, base_mask=None, **_tokens):
        x = F.one_hot(bases, 5)[..., :4].float().transpose(1, 2)  # (B, 4, L)
        x = self.embed(x)
        skip = self.skip(x)
        keep = None if base_mask is None else base_mask[:, None, :].to(x.dtype)  # (B, 1, L)
        for i, block in enumerate(self.blocks):
            x = block(x, keep)
            if i % 4 == 3 or i == len(self.blocks) - 1:
                skip = skip + self.skips[i // 4](x)
        logits = self.out(skip).transpose(1, 2)  # (B, L, K)
        if labels is None:
            return ModelOutput(logits=logits)
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), weight=class_weights, ignore_index=-100)
        return ModelOutput(logits=logits, loss=loss)


def is_cnn(folder: Path) -> bool:
    try:
        return ARCHITECTURE in json.loads((Path(folder) / "config.json").read_text()).get("architectures", [])
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def save_cnn(model: SpliceCNN, folder: Path) -> None:
    with atomic_output(folder / "model.safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, tmp)
    with atomic_output(folder / "config.json") as tmp:
        Path(tmp).write_text(json.dumps(model.config, indent=2) + "\n")


def load_cnn(folder, device="cpu") -> SpliceCNN:
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    model = SpliceCNN(config["num_labels"], config["channels"], config["width"], tuple(config["dilations"]))
    try:
        model.load_state_dict(load_file(folder / "model.safetensors"))
    except UNREADABLE as error:
        raise unreadable(f"{folder}: not a SpliceCNN model folder", error) from None
    return model.to(device).eval()
