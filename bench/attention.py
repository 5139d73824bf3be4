"""ALiBi attention benchmark (GPU): TFLOP/s forward and forward+backward of this project's Triton
kernel beside SDPA with an explicit ALiBi bias tensor, FlexAttention with an ALiBi score_mod, and
SDPA without any bias (no ALiBi: the ceiling), and, where flash-attn is installed, its
flash_attn_varlen_func with alibi_slopes (the same computation on the same packed layout), all in
one run.

    python bench/attention.py [--dtype bf16] [--tokenizer tokenizer.json] [--genome FASTA]

Shapes: 12 heads × 64, first a packed batch of real BPE lengths (windows of the genome, 64–4,096 bp,
log-uniform), then batch × tokens 256×128, 64×512, 16×2048, 4×8192. FLOPs are 4·B·H·N²·D forward,
the backward counted 2.5×; on the packed batch only real tokens count (Σ 4·H·Lᵢ²·D), so the
padded peers are charged for their padding. --check first compares the output of every method that
computes ALiBi attention with a float64 reference, and exits non-zero when one is off by more than
its dtype allows. Prints a table; record it in BENCHMARKS.md with the device and date.
"""

import argparse
import itertools
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import EXAMPLE, genome_windows, timed, tokenizer_for  # noqa: E402

from dnabert2.attention import alibi_bias, alibi_slopes, check_packed, pad_packed  # noqa: E402
from dnabert2.kernels.alibi_flash import AlibiFlashAttention  # noqa: E402

SHAPES = [(256, 128), (64, 512), (16, 2048), (4, 8192)]
CEILING = "SDPA, no bias (ceiling)"
# --check's bound on max |error| against float64, as a share of max |reference|: above what rounding
# costs a correct method, below what a bug costs (a wrong slope, distance or mask is off by a good share
# of the output). A method rounds the scores, the softmax weights (to the input dtype, before P·V) and
# the output, each by up to a unit in the last place: 2⁻⁸ ≈ 3.9e-3 in bf16, 2⁻¹¹ ≈ 4.9e-4 in fp16. The
# bounds allow about 8 such units in bf16 (as tests/test_attention.py does), 10 in fp16 (the tests' 4e-3
# is for far shorter sequences than 8,192 tokens), and fp32 (--smoke; about 1e-6 measured) a wide margin.
TOLERANCE = {torch.bfloat16: 3e-2, torch.float16: 5e-3, torch.float32: 1e-4}


def padded_peers(q, k, v, cu_seqlens, max_seqlen, slopes):
    """The peers run on (batch, heads, L, dim) padded tensors; each entry builds its inputs once and
    returns a closure that runs one forward pass. Also returns the (batch, L) mask of real rows."""
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
        CEILING: lambda: F.scaled_dot_product_attention(qp, kp, vp),
    }
    if q.device.type != "cuda":  # FlexAttention has no backward on a CPU
        del peers["FlexAttention + ALiBi score_mod"]
    return (qp, kp, vp), mask, peers


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


def reference(q, k, v, cu_seqlens, slopes):
    """ALiBi attention in float64 by its formula, one sequence at a time (a (heads, L, L) score matrix
    at most), apart from every method it checks."""
    bounds = cu_seqlens.tolist()
    out = []
    for start, end in itertools.pairwise(bounds):
        qs, ks, vs = (t[start:end].detach().double().transpose(0, 1) for t in (q, k, v))
        positions = torch.arange(end - start, device=q.device)
        distance = (positions[None, :] - positions[:, None]).abs()
        scores = qs @ ks.transpose(1, 2) / q.shape[-1] ** 0.5 - slopes.double()[:, None, None] * distance
        out.append((scores.softmax(-1) @ vs).transpose(0, 1))
    return torch.cat(out)


def check(label, methods, want, dtype):
    """Each method's packed output against the float64 reference; exits at the first one past TOLERANCE."""
    scale = want.abs().max().item()
    for name, forward in methods.items():
        error = (forward().double() - want).abs().max().item()  # with grad: no_grad would recompile Flex
        print(f"check {label}: {name} max |error| vs float64 {error:.2e} ({error / scale:.1e} of max |reference|)",
              flush=True)
        if error > TOLERANCE[dtype] * scale:
            sys.exit(f"check failed: {name} on {label}: max |error| {error:.2e} is {error / scale:.1e} of max "
                     f"|reference| {scale:.2f}, over the {dtype} tolerance {TOLERANCE[dtype]:.0e}")


def measure(name, forward, inputs, flops, device, results):
    out = forward()
    grad = torch.randn_like(out)
    # The interpreter (--smoke) runs a kernel in seconds: once, untimed in earnest.
    repeats, warmup = (20, 3) if device.type == "cuda" else (1, 0)
    fwd = timed(forward, device, repeats, warmup)
    both = timed(lambda: torch.autograd.grad(forward(), inputs, grad), device, repeats, warmup)
    results.append((name, flops / fwd / 1e12, 3.5 * flops / both / 1e12))


def run_case(label, lengths, heads, head_dim, dtype, device, checking):
    generator = torch.Generator(device=device).manual_seed(0)
    total = sum(lengths)
    q, k, v = (torch.randn(total, heads, head_dim, device=device, dtype=dtype, generator=generator).requires_grad_()
               for _ in range(3))
    cu_seqlens = F.pad(torch.tensor(lengths, device=device).cumsum(0), (1, 0)).to(torch.int32)
    max_seqlen = max(lengths)
    slopes = alibi_slopes(heads).to(device)
    flops = sum(4 * heads * n * n * head_dim for n in lengths)
    # Checked once, as the model checks a batch once (alibi_attention would check, and wait for the GPU,
    # at every call): the kernel alone is timed, as flash-attn's is.
    check_packed(cu_seqlens, max_seqlen, total)
    ours = lambda: AlibiFlashAttention.apply(q, k, v, cu_seqlens, max_seqlen, slopes)  # noqa: E731
    padded_inputs, mask, peers = padded_peers(q, k, v, cu_seqlens, max_seqlen, slopes)
    flash = flash_attn_peer(q, k, v, cu_seqlens, max_seqlen, slopes)
    if checking:
        methods = {"dnabert2 Triton kernel (packed)": ours}
        if flash:
            methods["flash-attn varlen + alibi_slopes (packed)"] = flash
        # The padded peers' real rows, packed; the ceiling computes no ALiBi, so it has nothing to match.
        methods.update({name: lambda forward=forward: forward().transpose(1, 2)[mask]
                        for name, forward in peers.items() if name != CEILING})
        check(label, methods, reference(q, k, v, cu_seqlens, slopes), dtype)
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
    parser.add_argument("--packed-tokens", type=int, help="tokens in the packed batch (default 65536; 512 with --smoke)")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--shapes", help="batch x tokens, comma-separated (default "
                        f"{','.join(f'{b}x{n}' for b, n in SHAPES)}; 2x64 with --smoke)")
    parser.add_argument("--smoke", action="store_true",
                        help="run the code paths on a CPU (TRITON_INTERPRET=1, fp32, small shapes); no timings worth keeping")
    args = parser.parse_args()
    if args.packed_tokens is None:
        args.packed_tokens = 512 if args.smoke else 65536
    if args.shapes is None:
        args.shapes = "2x64" if args.smoke else ",".join(f"{b}x{n}" for b, n in SHAPES)
    if args.smoke:
        device, dtype, name = torch.device("cpu"), torch.float32, "CPU smoke run"
    elif torch.cuda.is_available():
        device, dtype = torch.device("cuda"), {"bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
        name = torch.cuda.get_device_name()
    else:
        sys.exit("bench/attention.py needs a CUDA GPU (or --smoke with TRITON_INTERPRET=1)")
    print(f"device: {name}, torch {torch.__version__}, dtype {dtype}, 12 heads × 64")
    print("| batch × tokens | method | TFLOP/s fwd | TFLOP/s fwd+bwd |\n|---|---|---|---|")
    # The packed batch first: on a GPU each shape costs FlexAttention a 20–40 s compile, and
    # bench/gpu.sh gives this script a fixed time.
    ids = genome_windows(Path(args.genome), tokenizer_for(Path(args.genome), args.tokenizer), 1024, 64, 4096)
    lengths, total = [], 0
    for sequence in ids:  # the windows in their drawn order up to the first that does not fit (past any too long alone)
        if total + len(sequence) > args.packed_tokens:
            if lengths:
                break
            continue
        lengths.append(len(sequence))
        total += len(sequence)
    if not lengths:
        sys.exit(f"--packed-tokens {args.packed_tokens}: shorter than every window drawn ({min(map(len, ids))} "
                 "tokens or more)")
    label = f"packed: {len(lengths)} windows, {total} tokens, max {max(lengths)}"
    run_case(label, lengths, 12, 64, dtype, device, args.check)
    for batch, tokens in (map(int, shape.split("x")) for shape in args.shapes.split(",")):
        run_case(f"{batch} × {tokens}", [tokens] * batch, 12, 64, dtype, device, args.check)


if __name__ == "__main__":
    main()
