"""Float64 references written independently of dnabert2.model, the way the released DNABERT-2 code
computes on its PyTorch path: padded batches, a dense ALiBi matrix plus a −10000 padding mask added
to the scores, post-LayerNorm layers with a GEGLU MLP. They read a state dict by its released key
names, so a mismatch in key mapping or layer order shows up as a numeric difference."""

import math

import torch
import torch.nn.functional as F


def slopes(heads: int) -> list[float]:
    """ALiBi slopes written out from the recipe: powers of 2^(−8/n); for n not a power of two, the
    nearest lower power's slopes, then every other slope of twice that power."""
    if math.log2(heads).is_integer():
        return [2 ** (-8 / heads * (i + 1)) for i in range(heads)]
    low = 2 ** int(math.log2(heads))
    return slopes(low) + slopes(2 * low)[0::2][: heads - low]


def attention(q, k, v, cu_seqlens, heads_slopes):
    """Packed (total, heads, dim) attention, one sequence at a time, in float64 on q's device."""
    out = []
    bounds = cu_seqlens.tolist()
    for begin, end in zip(bounds, bounds[1:]):
        qs, ks, vs = (t[begin:end].double().transpose(0, 1) for t in (q, k, v))  # (heads, L, dim)
        pos = torch.arange(end - begin, dtype=torch.float64, device=q.device)
        slopes = torch.tensor(heads_slopes, dtype=torch.float64, device=q.device)
        bias = -slopes[:, None, None] * (pos[None, :] - pos[:, None]).abs()
        scores = qs @ ks.transpose(1, 2) / math.sqrt(q.shape[-1]) + bias
        out.append((scores.softmax(-1) @ vs).transpose(0, 1))
    return torch.cat(out)


def _ln(x, state, prefix, eps):
    return F.layer_norm(x, x.shape[-1:], state[f"{prefix}.weight"], state[f"{prefix}.bias"], eps)


def _linear(x, state, prefix):
    bias = state.get(f"{prefix}.bias")
    return x @ state[f"{prefix}.weight"].T + (0 if bias is None else bias)


def released_forward(state: dict, config: dict, input_ids, attention_mask):
    """Hidden states (batch, length, hidden) with zeros at padding, plus MLM and classifier logits
    where the state dict holds those heads."""
    state = {k: v.double() for k, v in state.items()}
    eps, heads = config["layer_norm_eps"], config["num_attention_heads"]
    inner = config["intermediate_size"]
    batch, length = input_ids.shape
    x = state["bert.embeddings.word_embeddings.weight"][input_ids] + state["bert.embeddings.token_type_embeddings.weight"][0]
    x = _ln(x, state, "bert.embeddings.LayerNorm", eps)
    pos = torch.arange(length, dtype=torch.float64)
    alibi = -torch.tensor(slopes(heads), dtype=torch.float64)[:, None, None] * (pos[None, :] - pos[:, None]).abs()
    bias = alibi[None] + (1.0 - attention_mask.double())[:, None, None, :] * -10000.0
    for i in range(config["num_hidden_layers"]):
        p = f"bert.encoder.layer.{i}"
        qkv = _linear(x, state, f"{p}.attention.self.Wqkv").view(batch, length, 3, heads, -1)
        q, k, v = (qkv[:, :, j].transpose(1, 2) for j in range(3))  # (batch, heads, L, dim)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + bias
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, -1)
        x = _ln(_linear(context, state, f"{p}.attention.output.dense") + x, state, f"{p}.attention.output.LayerNorm", eps)
        gated = x @ state[f"{p}.mlp.gated_layers.weight"].T
        h = F.gelu(gated[..., :inner]) * gated[..., inner:]
        x = _ln(_linear(h, state, f"{p}.mlp.wo") + x, state, f"{p}.mlp.layernorm", eps)
    x = x * attention_mask[..., None].double()
    out = {"hidden": x}
    if "cls.predictions.transform.dense.weight" in state:
        t = _ln(F.gelu(_linear(x, state, "cls.predictions.transform.dense")), state,
                "cls.predictions.transform.LayerNorm", eps)
        out["mlm"] = t @ state["bert.embeddings.word_embeddings.weight"].T + state["cls.predictions.decoder.bias"]
    if "classifier.weight" in state:
        pooled = torch.tanh(_linear(x[:, 0], state, "bert.pooler.dense"))
        out["classifier"] = _linear(pooled, state, "classifier")
    return out
