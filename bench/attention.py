"""ALiBi attention benchmark (GPU): TFLOP/s forward and forward+backward of this project's Triton
kernel beside SDPA with an explicit ALiBi bias tensor, FlexAttention with an ALiBi score_mod, and
SDPA without any bias (no ALiBi: the ceiling), and, where flash-attn is installed, its
flash_attn_varlen_func with alibi_slopes (the same computation on the same packed layout), all in
one run.

    python bench/attention.py [--dtype bf16] [--tokenizer tokenizer.json] [--genome FASTA]

Shapes: 12 heads × 64, batch × tokens 256×128, 64×512, 16×2048, 4×8192, then a packed batch of
real BPE lengths (windows of the genome, 64–4,096 bp, log-uniform). FLOPs are 4·B·H·N²·D forward,
the backward counted 2.5×; on the packed batch only real tokens count (Σ 4·H·Lᵢ²·D), so the
padded peers are charged for their padding. --check first compares every method's output with the
PyTorch path. Prints a table; record it in BENCHMARKS.md with the device and date.
"""

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import EXAMPLE, genome_windows, timed, tokenizer_for  # noqa: E402

from dnabert2.attention import alibi_attention, alibi_bias, alibi_slopes, pad_packed, torch_alibi_attention  # noqa: E402

SHAPES = [(256, 128), (64, 512), (16, 2048), (4, 8192)]


def padded_peers(q, k, v, cu_seqlens, max_seqlen, slopes):
    """The peers run on (batch, heads, L, dim) padded tensors; each entry builds its inputs once and
    returns a closure that runs one forward pass."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    (qp, kp, vp), mask = zip(*(pad_packed(t, cu_seqlens, max_seqlen) for t in (q, k, v)))
    mask = mask[0]
    qp, kp, vp = (t.transpose(1, 2).detach().requires_grad_() for t in (qp, kp, vp))
    bias = alibi_bias(cu_seqlens, max_seqlen, slopes, q.dtype)
    full = bool(mask.all())
    lengths = cu_seqlens.diff()

    def score_mod(score, b, h, q_idx, kv_idx):
        return score - slopes[h] * (q_idx - kv_idx).abs()

    block_mask = None if full else create_block_mask(
        lambda b, h, q_idx, kv_idx: kv_idx < lengths[b], lengths.numel(), None, max_seqlen, max_seqlen,
        device=q.device)
    flex = torch.compile(flex_attention)
    peers = {
        "SDPA + ALiBi bias tensor": lambda: F.scaled_dot_product_attention(qp, kp, vp, attn_mask=bias),
        "FlexAttention + ALiBi score_mod": lambda: flex(qp, kp, vp, score_mod=score_mod, block_mask=block_mask),
        "SDPA, no bias (ceiling)": lambda: F.scaled_dot_product_attention(qp, kp, vp),
    }
    if q.device.type != "cuda":  # FlexAttention has no backward on a CPU
        del peers["FlexAttention + ALiBi score_mod"]
    return (qp, kp, vp), peers


def flash_attn_peer(q, k, v, cu_seqlens, max_seqlen, slopes):
    """flash-attn 2's varlen kernel with its own ALiBi (bias −slope·|i − j| when not causal), on the same
    packed tensors: a closure running one forward pass, or None where flash-attn is not installed
    (or the tensors are not on a GPU)."""
    try:
        from flash_attn import flash_attn_varlen_func
    except ImportError:
        return None
    if q.device.type != "cuda":
        return None
    return lambda: flash_attn_varlen_func(q, k, v, cu_seqlens, cu_seqlens, max_seqlen, max_seqlen,
                                          alibi_slopes=slopes.float())


def measure(name, forward, inputs, flops, device, results):
    out = forward()
    grad = torch.randn_like(out)
    fwd = timed(forward, device)
    both = timed(lambda: torch.autograd.grad(forward(), inputs, grad), device)
    results.append((name, flops / fwd / 1e12, 3.5 * flops / both / 1e12))


def run_case(label, lengths, heads, head_dim, dtype, device, check):
    generator = torch.Generator(device=device).manual_seed(0)
    total = sum(lengths)
    q, k, v = (torch.randn(total, heads, head_dim, device=device, dtype=dtype, generator=generator).requires_grad_()
               for _ in range(3))
    cu_seqlens = F.pad(torch.tensor(lengths, device=device).cumsum(0), (1, 0)).to(torch.int32)
    max_seqlen = max(lengths)
    slopes = alibi_slopes(heads).to(device)
    flops = sum(4 * heads * n * n * head_dim for n in lengths)
    ours = lambda: alibi_attention(q, k, v, cu_seqlens, max_seqlen, slopes, backend="triton")  # noqa: E731
    padded_inputs, peers = padded_peers(q, k, v, cu_seqlens, max_seqlen, slopes)
    flash = flash_attn_peer(q, k, v, cu_seqlens, max_seqlen, slopes)
    if check:
        want = torch_alibi_attention(q.float(), k.float(), v.float(), cu_seqlens, max_seqlen, slopes)
        error = (ours().float() - want).abs().max().item()
        print(f"check {label}: Triton kernel max |error| vs PyTorch fp32 path {error:.2e}")
    if check and flash:
        error = (flash().float() - want).abs().max().item()
        print(f"check {label}: flash-attn varlen max |error| vs PyTorch fp32 path {error:.2e}")
    results = []
    measure("dnabert2 Triton kernel (packed)", ours, (q, k, v), flops, device, results)
    if flash:
        measure("flash-attn varlen + alibi_slopes (packed)", flash, (q, k, v), flops, device, results)
    for name, forward in peers.items():
        measure(name, forward, padded_inputs, flops, device, results)
    for name, fwd, both in results:
        print(f"| {label} | {name} | {fwd:.0f} | {both:.0f} |")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", choices=["bf16", "fp16"], default="bf16")
    parser.add_argument("--genome", default=str(EXAMPLE))
    parser.add_argument("--tokenizer", help="tokenizer.json (default: learn one on the genome)")
    parser.add_argument("--packed-tokens", type=int, default=65536, help="tokens in the packed batch")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--shapes", default=",".join(f"{b}x{n}" for b, n in SHAPES),
                        help="batch x tokens, comma-separated")
    parser.add_argument("--smoke", action="store_true",
                        help="run the code paths on a CPU (TRITON_INTERPRET=1, fp32, small shapes); no timings worth keeping")
    args = parser.parse_args()
    if args.smoke:
        device, dtype, name = torch.device("cpu"), torch.float32, "CPU smoke run"
    elif torch.cuda.is_available():
        device, dtype = torch.device("cuda"), {"bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
        name = torch.cuda.get_device_name()
    else:
        sys.exit("bench/attention.py needs a CUDA GPU (or --smoke with TRITON_INTERPRET=1)")
    print(f"device: {name}, torch {torch.__version__}, dtype {dtype}, 12 heads × 64")
    print("| batch × tokens | method | TFLOP/s fwd | TFLOP/s fwd+bwd |\n|---|---|---|---|")
    for batch, tokens in (map(int, shape.split("x")) for shape in args.shapes.split(",")):
        run_case(f"{batch} × {tokens}", [tokens] * batch, 12, 64, dtype, device, args.check)
    ids = genome_windows(Path(args.genome), tokenizer_for(Path(args.genome), args.tokenizer), 1024, 64, 4096)
    lengths, total = [], 0
    for sequence in ids:
        if total + len(sequence) > args.packed_tokens:
            break
        lengths.append(len(sequence))
        total += len(sequence)
    label = f"packed: {len(lengths)} windows, {total} tokens, max {max(lengths)}"
    run_case(label, lengths, 12, 64, dtype, device, args.check)


if __name__ == "__main__":
    main()
