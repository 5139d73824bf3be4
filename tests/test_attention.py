"""The ALiBi attention: the Triton kernel (in Triton's interpreter on a CPU, natively on a GPU) and the
PyTorch path, both against a float64 reference, forward and gradients."""

import math
import os

import pytest
import torch

from dnabert2.attention import (_choose, alibi_attention, alibi_bias, alibi_bias_bytes, alibi_slopes, attend,
                                check_packed, check_reach, choose_backend)
from dnabert2.errors import UserError
from reference import attention as reference_attention
from reference import slopes as reference_slopes

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
try:
    from dnabert2.kernels import alibi_flash
except ImportError:  # no Triton: the kernel tests skip
    alibi_flash = None
DEVICES = ["cuda"] if torch.cuda.is_available() else ["cpu"] if INTERPRETED else []
needs_triton = pytest.mark.skipif(not DEVICES, reason="no GPU and TRITON_INTERPRET is not set")
TOLERANCE = {torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}


def packed(lengths, heads, head_dim, dtype=torch.float32, device="cpu", seed=0):
    generator = torch.Generator().manual_seed(seed)
    total = sum(lengths)
    q, k, v = (torch.randn(total, heads, head_dim, generator=generator).to(device, dtype).requires_grad_()
               for _ in range(3))
    cu_seqlens = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32, device=device)
    return q, k, v, cu_seqlens


def check_against_reference(backend, lengths, heads, head_dim, dtype=torch.float32, device="cpu", seed=0):
    q, k, v, cu_seqlens = packed(lengths, heads, head_dim, dtype, device, seed)
    slopes = alibi_slopes(heads).to(device)
    out = alibi_attention(q, k, v, cu_seqlens, max(lengths), slopes, backend=backend)
    ref = reference_attention(q, k, v, cu_seqlens.cpu(), reference_slopes(heads))
    grad = torch.randn(ref.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    grads = torch.autograd.grad(out, (q, k, v), grad.to(device, dtype))
    ref_grads = torch.autograd.grad(ref, (q, k, v), grad.to(ref.device))
    assert out.dtype == dtype and out.shape == q.shape
    tolerance = TOLERANCE[dtype]
    for name, got, want in zip("o q k v".split(), (out, *grads), (ref, *ref_grads)):
        error = (got.double().cpu() - want.cpu()).abs().max().item()
        scale = want.abs().max().item()
        assert error <= tolerance * max(1.0, scale), f"{name}: max error {error:.3g} (scale {scale:.3g})"


def test_slopes_follow_the_alibi_recipe():
    assert alibi_slopes(8).tolist() == [2 ** -i for i in range(1, 9)]
    # 12 heads: the 8 power-of-two slopes, then every other slope of 16 heads.
    expected = [2 ** -i for i in range(1, 9)] + [2 ** -0.5, 2 ** -1.5, 2 ** -2.5, 2 ** -3.5]
    assert alibi_slopes(12).tolist() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("lengths", [[1], [37], [1, 2, 3], [5, 129, 64, 1, 70]])
@pytest.mark.parametrize("heads", [1, 3, 12])
def test_torch_path_matches_reference(lengths, heads):
    check_against_reference("torch", lengths, heads, 32)


@needs_triton
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("head_dim", [32, 64, 128])
@pytest.mark.parametrize("lengths", [
    [1],                              # a single token
    [200],                            # one sequence, several blocks
    [31, 32, 33, 63, 64, 65, 127, 128, 129],  # the edges of 32- and 64-token blocks
    [1, 7, 1, 90, 3, 17, 2, 45, 1, 66, 12, 30, 1, 5, 8],  # many sequences
])
def test_kernel_matches_reference(device, head_dim, lengths):
    check_against_reference("triton", lengths, heads=3, head_dim=head_dim, device=device)


@needs_triton
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("heads", [5, 12])
def test_kernel_heads_not_a_power_of_two(device, heads):
    check_against_reference("triton", [40, 3, 77], heads=heads, head_dim=64, device=device, seed=heads)


@needs_triton
@pytest.mark.parametrize("device", DEVICES)
def test_kernel_on_the_models_packed_qkv_with_empty_sequences(device):
    # The model hands the kernel its (total, 3, heads, dim) qkv; the backward pass writes one dqkv.
    lengths, heads = [0, 5, 0, 70, 1], 2
    cu_seqlens = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32, device=device)
    qkv = torch.randn(sum(lengths), 3, heads, 32, generator=torch.Generator().manual_seed(9)).to(device).requires_grad_()
    out = attend(qkv, cu_seqlens, max(lengths), alibi_slopes(heads).to(device), "triton")
    ref = reference_attention(*qkv.unbind(1), cu_seqlens.cpu(), reference_slopes(heads))
    assert (out.double() - ref).abs().max() < 2e-5
    grad = torch.randn(ref.shape, dtype=torch.float64).to(device)
    (got,) = torch.autograd.grad(out, qkv, grad.to(out.dtype))
    (want,) = torch.autograd.grad(ref, qkv, grad)
    assert (got.double() - want).abs().max() < 2e-5


@needs_triton
@pytest.mark.parametrize("device", DEVICES)
def test_cu_seqlens_of_a_strided_view_are_read_as_their_values(device):
    # A column of a table of offsets: the kernel reads cu_seqlens as a plain array, and saw [0, 10, 10]
    # here, leaving rows 10-29 unwritten (NaN), where check_packed had passed the values themselves.
    q, k, v, _ = packed([10, 20], heads=2, head_dim=32, device=device)
    table = torch.tensor([[0, 7], [10, 7], [30, 7]], dtype=torch.int32, device=device)
    strided = table[:, 0]
    assert not strided.is_contiguous()
    slopes = alibi_slopes(2).to(device)
    out = alibi_attention(q, k, v, strided, 20, slopes, backend="triton")
    ref = reference_attention(q, k, v, strided.cpu().contiguous(), reference_slopes(2))
    assert (out.double().cpu() - ref).abs().max() < 2e-5
    qkv = torch.stack([q, k, v], 1).detach()
    assert (attend(qkv, strided, 20, slopes, "triton").double().cpu() - ref).abs().max() < 2e-5


def config_sets():
    """Per head dim, one tuning config per kernel, until every kernel's block sizes have been covered, of
    half precision's tuning space and of fp32's."""
    sets = []
    for head_dim in alibi_flash.HEAD_DIMS if alibi_flash else []:
        seen = set()
        for table in (alibi_flash.CONFIGS, alibi_flash.FP32_CONFIGS):
            for i in range(max(len(configs[head_dim]) for configs in table.values())):
                chosen = {name: configs[head_dim][min(i, len(configs[head_dim]) - 1)]
                          for name, configs in table.items()}
                blocks = "-".join(f"{c.kwargs['BLOCK_M']}x{c.kwargs['BLOCK_N']}" for c in chosen.values())
                if blocks not in seen:
                    seen.add(blocks)
                    sets.append(pytest.param(head_dim, chosen, id=f"d{head_dim}-{blocks}"))
    return sets


@needs_triton
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("head_dim, configs", config_sets())
def test_every_tuning_config_matches_reference(device, head_dim, configs):
    # Lengths that put key and query blocks of 64 and 128 left of, on and right of the diagonal and
    # at a partial end; block sizes other than the first config's run only here off a GPU.
    lengths, heads = [1, 65, 129, 400], 2
    q, k, v, cu_seqlens = packed(lengths, heads, head_dim, device=device, seed=head_dim)
    slopes = alibi_slopes(heads).to(device)
    out = alibi_flash.AlibiFlashAttention.apply(q, k, v, cu_seqlens, max(lengths), slopes, configs)
    ref = reference_attention(q, k, v, cu_seqlens.cpu(), reference_slopes(heads))
    grad = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(device)
    grads = torch.autograd.grad(out, (q, k, v), grad.to(out.dtype))
    ref_grads = torch.autograd.grad(ref, (q, k, v), grad)
    for name, got, want in zip("o q k v".split(), (out, *grads), (ref, *ref_grads)):
        error = (got.double() - want).abs().max().item()
        assert error <= 2e-5 * max(1.0, want.abs().max().item()), f"{name}: max error {error:.3g}"


@needs_triton
@pytest.mark.parametrize("device", DEVICES)
def test_kernel_extrapolates_past_the_training_length(device):
    # The released model was trained on 128-token windows and precomputes its bias for 512 positions.
    check_against_reference("triton", [700], heads=2, head_dim=32, device=device)


@needs_triton
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_kernel_half_precision(device, dtype):
    if dtype == torch.bfloat16 and device == "cpu":
        pytest.skip("Triton's interpreter cannot compute in bf16 (numpy has none); bf16 is checked on a GPU")
    check_against_reference("triton", [1, 65, 130], heads=4, head_dim=64, dtype=dtype, device=device)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="4 × 8192 tokens: a GPU check (bench/gpu.sh runs it)")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_kernel_at_four_sequences_of_8192_tokens(dtype):
    # The float64 reference runs on the GPU too: (heads, 8192, 8192) per sequence.
    check_against_reference("triton", [8192] * 4, heads=2, head_dim=64, dtype=dtype, device="cuda")


def test_auto_picks_pytorch_on_a_cpu():
    q = torch.zeros(4, 2, 32)
    assert choose_backend(q) == "torch"


@pytest.mark.skipif(alibi_flash is None, reason="Triton is not installed")
def test_fp32_on_a_gpu_takes_the_kernel_once_the_pytorch_paths_bias_would_not_fit():
    # The rule itself, decided without a GPU: in fp32 nothing asks the named CUDA device anything.
    # Arguments: backend, device, dtype, head dim, dropout, interpreting, bias fits.
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert _choose("auto", cuda, torch.float32, 64, False, False, True) == "torch"
    assert _choose("auto", cuda, torch.float32, 64, False, False, False) == "triton"
    assert _choose("auto", cuda, torch.float32, 64, True, False, False) == "torch"  # dropout: the kernel has none
    assert _choose("auto", cpu, torch.float32, 64, False, False, False) == "torch"


def test_a_bias_too_large_for_the_machine_is_a_clear_error_before_it_is_built():
    heads, length = 12, 200_000  # a 1.9 TB bias
    assert alibi_bias_bytes(1, length, heads) == heads * length ** 2 * 4
    with pytest.raises(UserError, match="200000 tokens are too long for the PyTorch attention path on this machine "
                                        "\\(its bias tensor alone takes 1788.1 GiB\\); use shorter sequences or a GPU"):
        alibi_bias(torch.tensor([0, length], dtype=torch.int32), length, alibi_slopes(heads), torch.float32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="a GPU check (bench/gpu.sh runs it)")
def test_an_fp32_sequence_whose_bias_would_not_fit_the_gpu_runs_through_the_kernel():
    heads, head_dim = 2, 64
    memory = torch.cuda.get_device_properties(0).total_memory
    length = math.isqrt(memory // 4 // (heads * 4)) + 1  # the smallest whose bias is over a quarter of the GPU
    q, k, v, cu = packed([length], heads, head_dim, device="cuda")
    assert choose_backend(q, bias_bytes=alibi_bias_bytes(1, length, heads)) == "triton"
    with torch.no_grad():
        out = alibi_attention(q, k, v, cu, length, alibi_slopes(heads).cuda())
        # The first rows against float64, over all keys.
        rows = 128
        qd, kd, vd = (t.double() for t in (q[:rows], k, v))
        distance = (torch.arange(rows, device="cuda")[:, None] - torch.arange(length, device="cuda")[None, :]).abs()
        scores = torch.einsum("ihd,jhd->hij", qd, kd) / math.sqrt(head_dim)
        scores -= alibi_slopes(heads).cuda().double()[:, None, None] * distance
        want = torch.einsum("hij,jhd->ihd", scores.softmax(-1), vd)
    torch.testing.assert_close(out[:rows].double(), want, atol=TOLERANCE[torch.float32], rtol=0)


@needs_triton
def test_forced_triton_errors_say_why(monkeypatch):
    with pytest.raises(UserError, match="head dim 48 is not supported"):
        choose_backend(torch.zeros(4, 2, 48), "triton")
    with pytest.raises(UserError, match="no attention dropout"):
        choose_backend(torch.zeros(4, 2, 32), "triton", dropout_p=0.1)
    with pytest.raises(UserError, match="unknown attention backend 'cuda'"):
        choose_backend(torch.zeros(4, 2, 32), "cuda")
    if INTERPRETED:  # its numbers would be garbage (bf16 multiplied as raw bits), not an error
        with pytest.raises(UserError, match="interpreter .* cannot compute in bf16"):
            choose_backend(torch.zeros(4, 2, 32, dtype=torch.bfloat16), "triton")
    if not torch.cuda.is_available():
        monkeypatch.delenv("TRITON_INTERPRET")
        with pytest.raises(UserError, match="needs a CUDA device"):
            choose_backend(torch.zeros(4, 2, 32), "triton")


def test_packed_boundaries_are_checked():
    cu = torch.tensor([0, 3, 7], dtype=torch.int32)
    check_packed(cu, 4, 7)
    with pytest.raises(UserError, match="max_seqlen 3 is shorter than the longest sequence \\(4 tokens\\)"):
        check_packed(cu, 3, 7)
    with pytest.raises(UserError, match="rise from 0 to the 9 packed tokens, not from 0 to 7"):
        check_packed(cu, 4, 9)
    with pytest.raises(UserError, match="cu_seqlens must never decrease \\(a sequence of -2 tokens\\)"):
        check_packed(torch.tensor([0, 5, 3, 7]), 5, 7)


@needs_triton
def test_a_sequence_longer_than_the_kernel_reaches_is_a_clear_error():
    # Offsets within a sequence are 32-bit: a base model's packed qkv (3 × 12 heads × 64 dims a token)
    # reaches under a million tokens, about a quarter of E. coli's genome embedded whole.
    row = 3 * 12 * 64
    reach = alibi_flash.longest(row)
    assert 900_000 < reach < 2 ** 31 // row
    check_reach(reach, row)
    qkv = torch.empty(reach + 1, 3, 12, 64, device="meta")  # its strides, without its memory
    with pytest.raises(UserError, match=f"a sequence of {reach + 1:,} tokens is longer than the attention kernel "
                                        f"reaches at this model's width \\({reach:,}\\); run it in chunks"):
        attend(qkv, torch.tensor([0, reach + 1], dtype=torch.int32), reach + 1, alibi_slopes(12), "triton")
    # A narrow model reaches further by its offsets than its blocks fit on grid axis 1, which CUDA caps
    # at 65,535 blocks: the tiny preset's qkv (3 × 4 heads × 32 dims) stops at 65,535 of the smallest.
    smallest = min(c.kwargs[b] for table in (alibi_flash.CONFIGS, alibi_flash.FP32_CONFIGS)
                   for entries in table.values() for configs in entries.values() for c in configs
                   for b in ("BLOCK_M", "BLOCK_N"))
    # q, k and v heads-major (rows 128 apart) reach no further than the output's rows, written 32 × 128
    # apart: 524 k tokens.
    wide = alibi_flash.longest(32 * 128)
    heads_major = torch.empty(32, wide + 1, 128, device="meta").transpose(0, 1)
    assert heads_major.stride(0) == 128 and wide < alibi_flash.longest(128)
    with pytest.raises(UserError, match=f"a sequence of {wide + 1:,} tokens is longer than the attention kernel"):
        alibi_attention(heads_major, heads_major, heads_major, torch.tensor([0, wide + 1], dtype=torch.int32),
                        wide + 1, alibi_slopes(32), backend="triton")
    narrow = alibi_flash.longest(3 * 4 * 32)
    assert math.ceil(narrow / smallest) <= 65_535 < math.ceil((narrow + 1) / smallest)
    assert narrow < 2 ** 31 // (3 * 4 * 32) - 1024  # the grid, not the offsets, bounds it
    with pytest.raises(UserError, match=f"a sequence of {narrow + 1:,} tokens is longer than the attention kernel"):
        attend(torch.empty(narrow + 1, 3, 4, 32, device="meta"), torch.tensor([0, narrow + 1], dtype=torch.int32),
               narrow + 1, alibi_slopes(4), "triton")


def test_mismatched_inputs_are_refused():
    q, k, v, cu = packed([3, 4], heads=2, head_dim=32)
    with pytest.raises(ValueError, match="3 ALiBi slopes for 2 heads"):
        alibi_attention(q, k, v, cu, 4, alibi_slopes(3))
    with pytest.raises(ValueError, match="must share one"):
        alibi_attention(q, k[:5], v, cu, 4, alibi_slopes(2))
    # The kernel trusts them: a sequence longer than max_seqlen once left rows unwritten, exit 0.
    with pytest.raises(UserError, match="max_seqlen 3 is shorter than the longest sequence \\(4 tokens\\)"):
        alibi_attention(q, k, v, cu, 3, alibi_slopes(2), backend="triton")
    with pytest.raises(UserError, match="must rise from 0 to the 7 packed tokens, not from 0 to 3"):
        alibi_attention(q, k, v, cu[:2], 4, alibi_slopes(2))
    with pytest.raises(UserError, match="max_seqlen goes with cu_seqlens"):
        alibi_attention(q, k, v, cu, None, alibi_slopes(2))
