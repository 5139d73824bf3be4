"""ALiBi attention over packed variable-length batches: the Triton kernel where it can run, an exact
PyTorch path (SDPA with an explicit bias) everywhere else.

    o = alibi_attention(q, k, v, cu_seqlens, max_seqlen, slopes, backend="auto")

q, k, v are (total_tokens, heads, head_dim) with the sequences packed one after another;
cu_seqlens (batch + 1,) int32 holds their boundaries and max_seqlen the longest length.
"""

import functools
import logging
import math
import os

import torch
import torch.nn.functional as F

from .errors import UserError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "triton", "torch")
_MEMORY = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def alibi_slopes(heads: int) -> torch.Tensor:
    """Per-head ALiBi slopes (Press et al.): the geometric series 2^(−8/n), 2^(−16/n), … for n a power
    of two; otherwise the slopes of the nearest lower power of two followed by every other slope of
    the next power of two."""
    def power_of_two(n):
        return [2 ** (-8 * (i + 1) / n) for i in range(n)]

    lower = 2 ** math.floor(math.log2(heads))
    slopes = power_of_two(lower)
    if lower < heads:
        slopes += power_of_two(2 * lower)[0::2][: heads - lower]
    return torch.tensor(slopes, dtype=torch.float32)


def _triton_problem(device: torch.device, dtype: torch.dtype, head_dim: int, dropout: bool,
                    interpreting: bool) -> str | None:
    """Why the Triton kernel cannot take this call, or None when it can."""
    try:
        from .kernels import alibi_flash
    except ImportError as error:
        return f"Triton is not installed ({error})"
    if device.type != "cuda" and not interpreting:
        return f"the Triton kernel needs a CUDA device, and the tensors are on {device.type}"
    if head_dim not in alibi_flash.HEAD_DIMS:
        return f"head dim {head_dim} is not supported by the Triton kernel (supported: {alibi_flash.HEAD_DIMS})"
    if dtype not in alibi_flash.DTYPES:
        return f"dtype {dtype} is not supported by the Triton kernel"
    if dtype == torch.bfloat16 and interpreting:  # numpy has no bf16: the interpreter multiplies raw bits
        return "Triton's interpreter (TRITON_INTERPRET=1) cannot compute in bf16; use fp16 or fp32"
    if dtype == torch.bfloat16 and device.type == "cuda" and torch.cuda.get_device_capability(device) < (8, 0):
        return "bf16 needs a GPU of compute capability 8.0 or newer (Ampere, Hopper)"
    if dropout:
        return "the Triton kernel has no attention dropout"
    return None


def choose_backend(q: torch.Tensor, backend: str = "auto", dropout_p: float = 0.0, bias_bytes: int = 0) -> str:
    """Resolve "auto" to "triton" on CUDA tensors the kernel supports and to "torch" otherwise; a forced
    "triton" that cannot run is an error saying why. bias_bytes: what the PyTorch path's bias would take
    (alibi_bias_bytes); in fp32 on a GPU, auto takes the kernel once that is over a quarter of the GPU's
    memory. Decided once per device, dtype, head dim, dropout and bias fit, then remembered."""
    if backend not in BACKENDS:
        raise UserError(f"unknown attention backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "torch":
        return "torch"
    fits = q.device.type != "cuda" or q.dtype != torch.float32 or bias_bytes <= device_memory(q.device) // 4
    return _choose(backend, q.device, q.dtype, q.shape[-1], dropout_p > 0, os.environ.get("TRITON_INTERPRET") == "1",
                   fits)


def device_memory(device: torch.device) -> int:
    """Bytes of memory on the device: the GPU's own, or the machine's."""
    return torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else _MEMORY


def alibi_bias_bytes(batch: int, max_seqlen: int, heads: int) -> int:
    """At most what alibi_bias builds for `batch` sequences (fp32 before its cast): one (heads, L, L)
    plane per sequence when they are padded."""
    return batch * heads * max_seqlen ** 2 * 4


@functools.lru_cache
def _choose(backend: str, device, dtype, head_dim: int, dropout: bool, interpreting: bool, bias_fits: bool) -> str:
    problem = _triton_problem(device, dtype, head_dim, dropout, interpreting)
    if backend == "triton" and problem:
        raise UserError(f"attention backend 'triton' cannot run: {problem}")
    if device.type != "cuda" or (dtype == torch.float32 and bias_fits):
        # Interpreted Triton runs but is far slower than the PyTorch path, so auto never picks it on a CPU;
        # fp32 the kernel multiplies exactly, without tensor cores, where SDPA is faster while its bias
        # fits (an fp32 embed of a 40k-token sequence would need a 77 GB bias, the kernel none).
        return "triton" if backend == "triton" else "torch"
    if problem:
        log.warning("attention falls back to the slower PyTorch path on the GPU: %s", problem)
        return "torch"
    return "triton"


def pad_packed(x: torch.Tensor, cu_seqlens: torch.Tensor, max_seqlen: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(total, ...) packed rows → (batch, max_seqlen, ...) zero-padded, and the (batch, max_seqlen) mask of real rows."""
    lengths = cu_seqlens.diff()
    mask = torch.arange(max_seqlen, device=x.device)[None, :] < lengths[:, None]
    padded = x.new_zeros((lengths.numel(), max_seqlen, *x.shape[1:]))
    padded[mask] = x
    return padded, mask


class TooLong(UserError):
    """Sequences too long for the PyTorch path's bias: a command can add how its own options cut them."""


def alibi_bias(cu_seqlens, max_seqlen, slopes, dtype) -> torch.Tensor:
    """The PyTorch path's additive bias, −slope·|i−j| with −inf at padded keys: (batch, heads, L, L), or
    (1, heads, L, L) when no sequence is padded. A model builds it once per batch and shares it by layer."""
    lengths = cu_seqlens.diff()
    padded = bool((lengths < max_seqlen).any())
    size = alibi_bias_bytes(lengths.numel() if padded else 1, max_seqlen, slopes.numel())
    device = cu_seqlens.device
    # A GPU is refused only a bias that cannot fit at all (auto took the kernel long before); the CPU
    # path's bias shares the machine with everything else.
    if size > device_memory(device) // (1 if device.type == "cuda" else 4):
        raise TooLong(f"sequences of {max_seqlen} tokens are too long for the PyTorch attention path on this "
                        f"{'GPU' if device.type == 'cuda' else 'machine'} (its bias tensor alone takes "
                        f"{size / 2**30:.1f} GiB); use shorter sequences{' or a GPU' if device.type != 'cuda' else ''}")
    positions = torch.arange(max_seqlen, device=cu_seqlens.device)
    distance = (positions[None, :] - positions[:, None]).abs().to(torch.float32)
    bias = (-slopes.to(cu_seqlens.device, torch.float32)[:, None, None] * distance)[None]
    if padded:
        padded = positions[None, :] >= lengths[:, None]  # (batch, L) keys past each sequence's end
        bias = bias.masked_fill(padded[:, None, None, :], float("-inf"))
    return bias.to(dtype)


def torch_alibi_attention(q, k, v, cu_seqlens, max_seqlen, slopes, dropout_p=0.0, bias=None):
    """The exact path: pad, run SDPA with the ALiBi bias (and key-padding mask) as one tensor, unpack."""
    (q, k, v), mask = zip(*(pad_packed(t, cu_seqlens, max_seqlen) for t in (q, k, v)))
    if bias is None:
        bias = alibi_bias(cu_seqlens, max_seqlen, slopes, q.dtype)
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                         attn_mask=bias, dropout_p=dropout_p)
    return out.transpose(1, 2)[mask[0]]


def check_packed(cu_seqlens: torch.Tensor, max_seqlen: int, total: int) -> None:
    """cu_seqlens must start at 0, never decrease and end at `total`, and no sequence may be longer than
    max_seqlen: the kernel trusts them (and would leave rows unwritten otherwise)."""
    if cu_seqlens.dim() != 1 or cu_seqlens.numel() < 2:
        raise UserError(f"cu_seqlens must be a (batch + 1,) vector, not of shape {tuple(cu_seqlens.shape)}")
    if max_seqlen is None:
        raise UserError("max_seqlen goes with cu_seqlens: the longest packed sequence's tokens")
    lengths = cu_seqlens.diff()
    first, last, shortest, longest = torch.stack([cu_seqlens[0], cu_seqlens[-1], lengths.min(), lengths.max()]).tolist()
    if first != 0 or last != total:
        raise UserError(f"cu_seqlens must rise from 0 to the {total} packed tokens, not from {first} to {last}")
    if shortest < 0:
        raise UserError(f"cu_seqlens must never decrease (a sequence of {shortest} tokens)")
    if longest > max_seqlen:
        raise UserError(f"max_seqlen {max_seqlen} is shorter than the longest sequence ({longest} tokens)")


def check_reach(max_seqlen: int, row_stride: int) -> None:
    """The kernel's offsets within a sequence are 32-bit: a longer sequence would read past them (on a
    GPU, an illegal address or a wrong answer)."""
    from .kernels.alibi_flash import longest

    if int(max_seqlen) > longest(row_stride):
        raise UserError(f"a sequence of {max_seqlen:,} tokens is longer than the attention kernel reaches at "
                        f"this model's width ({longest(row_stride):,}); run it in chunks (embed: --chunk-tokens)")


def alibi_attention(q, k, v, cu_seqlens, max_seqlen, slopes, backend="auto", dropout_p=0.0, bias=None):
    """Non-causal ALiBi attention of packed sequences; returns (total_tokens, heads, head_dim) like q.
    cu_seqlens and max_seqlen are checked (check_packed: the kernel would leave the rows of a sequence
    longer than max_seqlen unwritten), at the cost of a wait for the device where they lie on it; the
    model checks them once per batch and calls `attend`.
    bias: alibi_bias(...) built once per batch, used by the PyTorch path only (the kernel needs none)."""
    if q.dim() != 3 or q.shape != k.shape or q.shape != v.shape:
        raise ValueError(f"q, k and v must share one (total_tokens, heads, head_dim) shape, "
                         f"not {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    check_packed(cu_seqlens, max_seqlen, q.shape[0])
    if slopes.numel() != q.shape[1]:
        raise ValueError(f"{slopes.numel()} ALiBi slopes for {q.shape[1]} heads")
    cu_seqlens = cu_seqlens.to(q.device, torch.int32)
    bias_bytes = alibi_bias_bytes(cu_seqlens.numel() - 1, max_seqlen, q.shape[1])
    if choose_backend(q, backend, dropout_p, bias_bytes) == "torch":
        return torch_alibi_attention(q, k, v, cu_seqlens, max_seqlen, slopes, dropout_p, bias)
    from .kernels.alibi_flash import AlibiFlashAttention

    # The kernel offsets a head by head × its stride in 32 bits: a heads-major layout, whose head stride
    # is the whole batch's rows, is copied token-major where that would overflow.
    q, k, v = (t if t.stride(-1) == 1 and t.stride(1) * (t.shape[1] - 1) < 2 ** 31 else t.contiguous()
               for t in (q, k, v))
    # The output's rows too: written heads × head_dim apart, whatever q's layout.
    check_reach(max_seqlen, max(*(t.stride(0) for t in (q, k, v)), q.shape[1] * q.shape[2]))
    return AlibiFlashAttention.apply(q, k, v, cu_seqlens, int(max_seqlen), slopes.to(q.device))


def attend(qkv, cu_seqlens, max_seqlen, slopes, backend: str, dropout_p=0.0, bias=None):
    """ALiBi attention of the packed qkv (total, 3, heads, head_dim) that the model's Wqkv writes, on a
    backend choose_backend has resolved ("triton" or "torch"): chosen once per forward pass, not per
    layer. cu_seqlens: int32, and slopes, on qkv's device. The kernel reads q, k and v through strides
    and its backward pass writes one dqkv."""
    if backend == "torch":
        return torch_alibi_attention(*qkv.unbind(1), cu_seqlens, max_seqlen, slopes, dropout_p, bias)
    from .kernels.alibi_flash import PackedAlibiFlashAttention

    qkv = qkv if qkv.stride(-1) == 1 else qkv.contiguous()
    check_reach(max_seqlen, qkv.stride(0))
    return PackedAlibiFlashAttention.apply(qkv, cu_seqlens, int(max_seqlen), slopes)
