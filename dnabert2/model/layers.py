"""The DNABERT-2 encoder: BERT without position embeddings, ALiBi attention, fused Wqkv, post-LayerNorm
and a GEGLU MLP, run on packed tokens so no FLOP is spent on padding.

Module and parameter names follow the released DNABERT-2-117M state dict (bert.embeddings.…,
bert.encoder.layer.N.attention.self.Wqkv, …, mlp.gated_layers, mlp.wo), so its checkpoints load
without renaming and peft finds the same target modules.
"""

import functools
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import alibi_bias, alibi_bias_bytes, alibi_slopes, attend, check_packed, choose_backend
from ..errors import UserError
from .config import ModelConfig


class PackedBatch(NamedTuple):
    """What every layer's attention needs about the batch, resolved once per forward pass."""
    cu_seqlens: torch.Tensor  # (batch + 1,) int32
    max_seqlen: int
    slopes: torch.Tensor  # (heads,)
    backend: str  # "triton" or "torch"
    bias: torch.Tensor | None  # the PyTorch path's ALiBi + padding bias, shared by all layers


class Embeddings(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids=None):
        x = self.word_embeddings(input_ids)
        if token_type_ids is None:
            x = x + self.token_type_embeddings.weight[0]
        else:
            x = x + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(x))


class SelfAttention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.heads = config.num_attention_heads
        self.Wqkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.dropout_p = config.attention_probs_dropout_prob

    def forward(self, x, batch: PackedBatch):
        # x: (total, hidden) → qkv: (total, 3, heads, head_dim)
        qkv = self.Wqkv(x).unflatten(-1, (3, self.heads, -1))
        out = attend(qkv, batch.cu_seqlens, batch.max_seqlen, batch.slopes, batch.backend,
                     self.dropout_p if self.training else 0.0, batch.bias)
        return out.flatten(1)


class SelfOutput(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x, residual):
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.self = SelfAttention(config)
        self.output = SelfOutput(config)

    def forward(self, x, batch: PackedBatch):
        return self.output(self.self(x, batch), x)


class GatedMLP(nn.Module):
    """GEGLU: hidden → 2 × intermediate (no bias); GELU(first half) × second half → hidden; post-LayerNorm."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.gated_layers = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.act = nn.GELU()  # exact GELU whatever hidden_act says, as in the released model
        self.wo = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x):
        gated, linear = self.gated_layers(x).chunk(2, dim=-1)
        return self.layernorm(self.wo(self.dropout(self.act(gated) * linear)) + x)


class Layer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.attention = Attention(config)
        self.mlp = GatedMLP(config)

    def forward(self, x, batch: PackedBatch):
        return self.mlp(self.attention(x, batch))


@functools.lru_cache
def device_slopes(heads: int, device: torch.device) -> torch.Tensor:
    """The slopes, copied to a device once rather than every forward pass; not a buffer, which
    model.half() would round (2^-0.5, …)."""
    return alibi_slopes(heads).to(device)


class Encoder(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.layer = nn.ModuleList(Layer(config) for _ in range(config.num_hidden_layers))
        self.heads = config.num_attention_heads
        self.dropout_p = config.attention_probs_dropout_prob

    def forward(self, x, cu_seqlens, max_seqlen, backend="auto"):
        # Under autocast q, k and v come out of Wqkv in the autocast dtype, not in x's.
        dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
        like_q = x.new_empty((0, self.heads, x.shape[-1] // self.heads), dtype=dtype)
        bias_bytes = alibi_bias_bytes(cu_seqlens.numel() - 1, max_seqlen, self.heads)
        backend = choose_backend(like_q, backend, self.dropout_p if self.training else 0.0, bias_bytes)
        slopes = device_slopes(self.heads, x.device)
        bias = alibi_bias(cu_seqlens, max_seqlen, slopes, dtype) if backend == "torch" else None
        batch = PackedBatch(cu_seqlens, max_seqlen, slopes, backend, bias)
        for layer in self.layer:
            x = layer(x, batch)
        return x


class Pooler(nn.Module):
    """The released sequence summary: dense + tanh on the [CLS] hidden state."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, cls_hidden):
        return torch.tanh(self.dense(cls_hidden))


def pack(attention_mask: torch.Tensor, problems=()) -> tuple[torch.Tensor, torch.Tensor, int]:
    """From a right-padded (batch, length) mask: the flat indices of real tokens, cu_seqlens and max_seqlen.
    problems: (message, 0-dim bool tensor) pairs read with the mask; the first that holds is raised."""
    if attention_mask.dim() != 2 or attention_mask.numel() == 0:
        raise UserError(f"input_ids and attention_mask must be (batch, length) and not empty, "
                        f"not of shape {tuple(attention_mask.shape)}")
    lengths = attention_mask.sum(1, dtype=torch.int32)
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    padded = (attention_mask.bool() == (positions[None, :] < lengths[:, None])).all()
    # Which tokens are real is data the host must read to size the packed batch: one read for
    # everything (on a GPU, the forward pass's only wait; the packed entry has none).
    binary = ((attention_mask == 0) | (attention_mask == 1)).all()
    right, ones, shortest, longest, total, *found = torch.stack(
        [padded.int(), binary.int(), lengths.min(), lengths.max(), lengths.sum(),
         *(flag.int() for _, flag in problems)]).tolist()
    if not ones:
        raise UserError("attention_mask must hold ones for the tokens and zeros for the padding, nothing else")
    if not right:
        raise UserError("attention_mask must be right-padded: ones for the tokens, then zeros")
    for (message, _), holds in zip(problems, found):
        if holds:
            raise UserError(message)
    if shortest == 0:
        raise UserError("attention_mask has a sequence with no tokens")
    cu_seqlens = F.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0))
    # Right-padded: sequence b's tokens sit at b * length + 0 … its length − 1 of the flat batch.
    row = torch.repeat_interleave(torch.arange(len(lengths), device=lengths.device), lengths, output_size=total)
    indices = row * attention_mask.shape[1] + torch.arange(total, device=row.device) - cu_seqlens[row]
    return indices, cu_seqlens, longest


def unpack(packed: torch.Tensor, indices: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    """(total, ...) → (batch, length, ...) with zeros at the padding."""
    out = packed.new_zeros((batch * length, *packed.shape[1:]))
    out[indices] = packed
    return out.unflatten(0, (batch, length))


class BertModel(nn.Module):
    """Embeddings, encoder layers and (optionally) the [CLS] pooler."""

    def __init__(self, config: ModelConfig, pooler: bool = False):
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)
        self.pooler = Pooler(config) if pooler else None
        self.attention_backend = "auto"

    def forward_packed(self, input_ids, cu_seqlens, max_seqlen, token_type_ids=None):
        """input_ids (total,) of sequences packed back to back → hidden states (total, hidden)."""
        # Checked where the loader made it (the CPU): on a GPU the check would wait for the device.
        check_packed(cu_seqlens, max_seqlen, input_ids.shape[0])
        cu_seqlens = cu_seqlens.to(input_ids.device, torch.int32, non_blocking=True)
        return self.encoder(self.embeddings(input_ids, token_type_ids), cu_seqlens, max_seqlen, self.attention_backend)
