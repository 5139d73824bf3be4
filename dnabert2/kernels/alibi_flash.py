"""Flash attention with an ALiBi bias, for packed variable-length batches, in Triton.

Non-causal: every token attends to every token of its own sequence, with the score
    s_ij = (q_i · k_j) / sqrt(D) − slope_h · |i − j|
The bias is computed from the head's slope inside the kernel, so no (heads × L × L) tensor is ever
built and any length works. Sequences are packed: q, k and v are (total_tokens, heads, head_dim)
and sequence b holds the rows cu_seqlens[b] .. cu_seqlens[b+1].

The softmax runs in base 2 (scores pre-multiplied by log2 e), as in the Triton fused-attention
tutorial. The forward pass keeps the log-sum-exp of each row, from which the backward pass
recomputes the probabilities block by block: one kernel accumulates dK and dV over query blocks,
another dQ over key blocks, so neither needs atomics.
"""

import math

import torch
import triton
import triton.language as tl

HEAD_DIMS = (32, 64, 128)
DTYPES = (torch.float16, torch.bfloat16, torch.float32)
LOG2E = math.log2(math.e)


@triton.jit
def _sequence(cu_seqlens, seq):
    # int64 start: row × stride overflows int32 past 2^31 elements (a million tokens of fused qkv).
    begin = tl.load(cu_seqlens + seq).to(tl.int64)
    return begin, (tl.load(cu_seqlens + seq + 1) - begin).to(tl.int32)


@triton.jit
def _load_rows(ptr, begin, rows, length, head, stride_t, stride_h, dims):
    # (len(rows), HEAD_DIM) of one head; rows past the sequence end read as zeros.
    return tl.load(ptr + (begin + rows)[:, None] * stride_t + head * stride_h + dims[None, :],
                   mask=rows[:, None] < length, other=0.0)


@triton.jit
def _store_rows(ptr, value, begin, rows, length, head, stride_t, stride_h, dims):
    tl.store(ptr + (begin + rows)[:, None] * stride_t + head * stride_h + dims[None, :],
             value.to(ptr.dtype.element_ty), mask=rows[:, None] < length)


@triton.jit
def _scores(q, k, rows, cols, length, qk_scale, slope, PRECISION: tl.constexpr):
    # (BLOCK_M, BLOCK_N) scores in log2 units; keys past the sequence end are −inf.
    s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale
    s -= slope * tl.abs(rows[:, None] - cols[None, :]).to(tl.float32)
    return tl.where(cols[None, :] < length, s, float("-inf"))


@triton.jit
def _forward(Q, K, V, O, LSE, cu_seqlens, slopes, qk_scale,
             stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_ot, stride_oh,
             stride_lse_h,
             HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
    seq, block, head = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    begin, length = _sequence(cu_seqlens, seq)
    if block * BLOCK_M >= length:
        return
    slope = tl.load(slopes + head)
    rows = block * BLOCK_M + tl.arange(0, BLOCK_M)
    dims = tl.arange(0, HEAD_DIM)
    q = _load_rows(Q, begin, rows, length, head, stride_qt, stride_qh, dims)

    m = tl.full([BLOCK_M], float("-inf"), tl.float32)  # running row maximum
    l = tl.zeros([BLOCK_M], tl.float32)  # running row sum of exp2(s − m)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    for start in range(0, length, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        k = _load_rows(K, begin, cols, length, head, stride_kt, stride_kh, dims)
        v = _load_rows(V, begin, cols, length, head, stride_vt, stride_vh, dims)
        s = _scores(q, k, rows, cols, length, qk_scale, slope, PRECISION)
        m_new = tl.maximum(m, tl.max(s, 1))
        p = tl.math.exp2(s - m_new[:, None])
        alpha = tl.math.exp2(m - m_new)
        l = l * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        m = m_new

    o = acc / l[:, None]
    _store_rows(O, o, begin, rows, length, head, stride_ot, stride_oh, dims)
    tl.store(LSE + head * stride_lse_h + begin + rows, m + tl.math.log2(l), mask=rows < length)


@triton.jit
def _backward_kv(Q, K, V, DO, DK, DV, LSE, DELTA, cu_seqlens, slopes, qk_scale, sm_scale,
                 stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_dot, stride_doh,
                 stride_dkt, stride_dkh, stride_dvt, stride_dvh, stride_lse_h,
                 HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
    # One block of keys; loops over the query blocks of its sequence.
    seq, block, head = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    begin, length = _sequence(cu_seqlens, seq)
    if block * BLOCK_N >= length:
        return
    slope = tl.load(slopes + head)
    cols = block * BLOCK_N + tl.arange(0, BLOCK_N)
    dims = tl.arange(0, HEAD_DIM)
    k = _load_rows(K, begin, cols, length, head, stride_kt, stride_kh, dims)
    v = _load_rows(V, begin, cols, length, head, stride_vt, stride_vh, dims)

    dk = tl.zeros([BLOCK_N, HEAD_DIM], tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], tl.float32)
    for start in range(0, length, BLOCK_M):
        rows = start + tl.arange(0, BLOCK_M)
        row_ok = rows < length
        q = _load_rows(Q, begin, rows, length, head, stride_qt, stride_qh, dims)
        do = _load_rows(DO, begin, rows, length, head, stride_dot, stride_doh, dims)
        lse = tl.load(LSE + head * stride_lse_h + begin + rows, mask=row_ok, other=0.0)
        delta = tl.load(DELTA + head * stride_lse_h + begin + rows, mask=row_ok, other=0.0)
        # Transposed scores (BLOCK_N, BLOCK_M): keys along rows, so the products below need no transposes
        # of p; queries past the end score −inf, so their p is 0.
        p_t = tl.math.exp2(_scores(k, q, cols, rows, length, qk_scale, slope, PRECISION) - lse[None, :])
        dv += tl.dot(p_t.to(do.dtype), do, input_precision=PRECISION)
        dp_t = tl.dot(v, tl.trans(do), input_precision=PRECISION)
        ds_t = p_t * (dp_t - delta[None, :])
        dk += tl.dot(ds_t.to(q.dtype), q, input_precision=PRECISION)

    _store_rows(DK, dk * sm_scale, begin, cols, length, head, stride_dkt, stride_dkh, dims)
    _store_rows(DV, dv, begin, cols, length, head, stride_dvt, stride_dvh, dims)


@triton.jit
def _backward_q(Q, K, V, DO, DQ, LSE, DELTA, cu_seqlens, slopes, qk_scale, sm_scale,
                stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_dot, stride_doh,
                stride_dqt, stride_dqh, stride_lse_h,
                HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
    # One block of queries; loops over the key blocks of its sequence.
    seq, block, head = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    begin, length = _sequence(cu_seqlens, seq)
    if block * BLOCK_M >= length:
        return
    slope = tl.load(slopes + head)
    rows = block * BLOCK_M + tl.arange(0, BLOCK_M)
    dims = tl.arange(0, HEAD_DIM)
    row_ok = rows < length
    q = _load_rows(Q, begin, rows, length, head, stride_qt, stride_qh, dims)
    do = _load_rows(DO, begin, rows, length, head, stride_dot, stride_doh, dims)
    lse = tl.load(LSE + head * stride_lse_h + begin + rows, mask=row_ok, other=0.0)
    delta = tl.load(DELTA + head * stride_lse_h + begin + rows, mask=row_ok, other=0.0)

    dq = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    for start in range(0, length, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        k = _load_rows(K, begin, cols, length, head, stride_kt, stride_kh, dims)
        v = _load_rows(V, begin, cols, length, head, stride_vt, stride_vh, dims)
        p = tl.math.exp2(_scores(q, k, rows, cols, length, qk_scale, slope, PRECISION) - lse[:, None])
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(k.dtype), k, input_precision=PRECISION)

    _store_rows(DQ, dq * sm_scale, begin, rows, length, head, stride_dqt, stride_dqh, dims)


def block_sizes(head_dim: int) -> tuple[int, int]:
    """(BLOCK_M, BLOCK_N) for queries and keys; smaller key blocks keep registers in check at head dim 128."""
    return (64, 32) if head_dim == 128 else (64, 64)


def _launch(q) -> dict:
    head_dim = q.shape[-1]
    block_m, block_n = block_sizes(head_dim)
    # fp32 inputs multiply exactly ("ieee"), not through TF32; half-precision inputs are unaffected.
    return dict(HEAD_DIM=head_dim, BLOCK_M=block_m, BLOCK_N=block_n,
                PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
                num_warps=8 if head_dim == 128 else 4, num_stages=2)


class AlibiFlashAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, cu_seqlens, max_seqlen, slopes):
        # q, k, v: (total, heads, head_dim); cu_seqlens: (batch + 1,) int32; slopes: (heads,) float32
        total, heads, head_dim = q.shape
        batch = cu_seqlens.numel() - 1
        o = torch.empty_like(q)
        lse = torch.empty((heads, total), device=q.device, dtype=torch.float32)
        sm_scale = head_dim ** -0.5
        slopes = slopes.float() * LOG2E  # the kernels work in log2 units
        launch = _launch(q)
        # Sequences on grid axis 0, the only one not capped at 65,535.
        grid = (batch, triton.cdiv(max_seqlen, launch["BLOCK_M"]), heads)
        _forward[grid](q, k, v, o, lse, cu_seqlens, slopes, sm_scale * LOG2E,
                       q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1),
                       o.stride(0), o.stride(1), lse.stride(0), **launch)
        ctx.save_for_backward(q, k, v, o, lse, cu_seqlens, slopes)
        ctx.max_seqlen = max_seqlen
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, o, lse, cu_seqlens, slopes = ctx.saved_tensors
        do = do.contiguous()
        total, heads, head_dim = q.shape
        batch = cu_seqlens.numel() - 1
        # delta_i = Σ_d dO_id · O_id = Σ_j P_ij dP_ij, the softmax-backward correction term; (heads, total)
        delta = (do.float() * o.float()).sum(-1).transpose(0, 1).contiguous()
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        sm_scale = head_dim ** -0.5
        launch = _launch(q)
        strides = (q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1),
                   do.stride(0), do.stride(1))
        _backward_kv[(batch, triton.cdiv(ctx.max_seqlen, launch["BLOCK_N"]), heads)](
            q, k, v, do, dk, dv, lse, delta, cu_seqlens, slopes, sm_scale * LOG2E, sm_scale, *strides,
            dk.stride(0), dk.stride(1), dv.stride(0), dv.stride(1), lse.stride(0), **launch)
        _backward_q[(batch, triton.cdiv(ctx.max_seqlen, launch["BLOCK_M"]), heads)](
            q, k, v, do, dq, lse, delta, cu_seqlens, slopes, sm_scale * LOG2E, sm_scale, *strides,
            dq.stride(0), dq.stride(1), lse.stride(0), **launch)
        return dq, dk, dv, None, None, None
