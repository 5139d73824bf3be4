"""Flash attention with an ALiBi bias, for packed variable-length batches, in Triton.

Non-causal: every token attends to every token of its own sequence, with the score
    s_ij = (q_i · k_j) / sqrt(D) − slope_h · |i − j|
The bias is computed from the head's slope inside the kernel, so no (heads × L × L) tensor is ever
built and any length works. Sequences are packed: q, k and v are (total_tokens, heads, head_dim)
and sequence b holds the rows cu_seqlens[b] .. cu_seqlens[b+1].

The softmax runs in base 2 (scores pre-multiplied by log2 e), as in the Triton fused-attention
tutorial. The forward pass keeps the log-sum-exp of each row, from which the backward pass
recomputes the probabilities block by block: one kernel accumulates dK and dV over query blocks,
another dQ over key blocks, so neither needs atomics; a small kernel computes the softmax-backward
term delta first.

Each program holds one block of rows i and loops over the blocks of the other side, j = start + t.
A block wholly left of the diagonal (j < i) or right of it needs neither |i − j| nor a mask:
    −slope·|i − j| = ±slope·t − slope·|i − start|,
a vector over the offsets t (the same for every block) plus one constant per row, which the forward
pass folds into the running maximum. Only the blocks that touch the diagonal or hold the end of the
sequence (EDGE) compute the full formula and mask. Offsets are added to the base pointers once per
program, so the loops' address arithmetic is 32-bit.
"""

import functools
import math
import os

import torch
import triton
import triton.language as tl

HEAD_DIMS = (32, 64, 128)
DTYPES = (torch.float16, torch.bfloat16, torch.float32)
LOG2E = math.log2(math.e)
LEFT, RIGHT, EDGE = tl.constexpr(0), tl.constexpr(1), tl.constexpr(2)  # where the looped-over blocks lie: before the diagonal, after it, on it or at the end


def _config(block_m: int, block_n: int, warps: int, stages: int) -> triton.Config:
    return triton.Config({"BLOCK_M": block_m, "BLOCK_N": block_n}, num_warps=warps, num_stages=stages)


# The tuning space of each kernel by head dim: small on purpose, and every entry compiles for sm_80
# and sm_90 in bf16 and fp16 without spilling registers (tests/test_kernel_targets.py), which rules out
# the larger blocks at head dim 128 on sm_80. The first entry is the one used untuned (in Triton's
# interpreter, on a CPU). backward_kv holds BLOCK_N keys and loops over blocks of BLOCK_M queries.
CONFIGS = {
    "forward": {
        32: [_config(64, 64, 4, 2), _config(128, 64, 8, 2), _config(128, 64, 8, 3), _config(128, 128, 8, 2)],
        64: [_config(64, 64, 4, 2), _config(64, 64, 8, 2), _config(128, 64, 8, 2), _config(128, 64, 8, 3)],
        128: [_config(64, 64, 8, 2), _config(64, 64, 8, 3), _config(64, 32, 4, 2), _config(128, 32, 8, 2)],
    },
    "backward_kv": {
        32: [_config(64, 64, 4, 2), _config(64, 64, 8, 2), _config(64, 128, 8, 2)],
        64: [_config(32, 64, 4, 2), _config(32, 64, 4, 3), _config(32, 64, 8, 2), _config(32, 128, 8, 2)],
        128: [_config(32, 64, 8, 2), _config(16, 64, 4, 2)],
    },
    "backward_q": {
        32: [_config(64, 64, 4, 2), _config(128, 64, 8, 2), _config(128, 64, 8, 3)],
        64: [_config(64, 64, 8, 2), _config(128, 64, 8, 2), _config(128, 64, 8, 3)],
        128: [_config(64, 64, 8, 2), _config(64, 32, 4, 2), _config(64, 32, 8, 2)],
    },
}
# fp32 operands ("ieee": no tensor-core path, and twice the registers a tile) in tiles of their own:
# the half-precision ones spill thousands of bytes a thread in fp32. Each entry compiles for sm_80 and
# sm_90 without spilling (registers measured by tests/test_kernel_targets.py).
FP32_CONFIGS = {
    "forward": {
        32: [_config(32, 32, 4, 2), _config(16, 32, 4, 2)],
        64: [_config(32, 32, 4, 2), _config(16, 32, 4, 2)],
        128: [_config(16, 16, 8, 2), _config(16, 16, 4, 2)],
    },
    "backward_kv": {
        32: [_config(16, 32, 4, 2), _config(32, 64, 8, 2)],
        64: [_config(16, 32, 4, 2), _config(16, 16, 4, 2)],
        128: [_config(16, 16, 8, 2), _config(16, 32, 8, 2)],
    },
    "backward_q": {
        32: [_config(32, 32, 4, 2), _config(64, 32, 8, 2)],
        64: [_config(32, 32, 4, 2), _config(64, 32, 8, 2)],
        128: [_config(16, 16, 8, 2), _config(16, 32, 8, 2)],
    },
}


def tuning(precision: str) -> dict:
    """The tuning space of the kernels at a PRECISION: fp32's ("ieee"), or half precision's."""
    return FP32_CONFIGS if precision == "ieee" else CONFIGS


@triton.jit
def _sequence(cu_seqlens, seq):
    # int64 start: row × stride overflows int32 past 2^31 elements (a million tokens of fused qkv).
    begin = tl.load(cu_seqlens + seq).to(tl.int64)
    return begin, (tl.load(cu_seqlens + seq + 1) - begin).to(tl.int32)


@triton.jit
def _at(ptr, begin, head, stride_t, stride_h):
    # The sequence's first row of one head: added to a base pointer once, so that offsets within the
    # sequence fit 32 bits.
    return ptr + begin * stride_t + head * stride_h


@triton.jit
def _regions(first, SIZE: tl.constexpr, length, STEP: tl.constexpr):
    """For this program's block [first, first + SIZE), the starts of the looped-over blocks (of STEP):
    those before `low` lie left of the diagonal, [low, high) touch it, [after, whole) lie right of
    it within the sequence, and [tail, length) is the last, partial block."""
    low = first // STEP * STEP
    after = tl.cdiv(first + SIZE, STEP) * STEP
    whole = length // STEP * STEP
    return low, tl.minimum(after, length), after, whole, tl.maximum(after, whole)


@triton.jit
def _away(slope, start, mine, offsets, REGION: tl.constexpr):
    """−slope·|i − j| between this block's indices `mine` and a block at `start` wholly on one side:
    a term per offset within that block and a term per index of this one (both ≤ 0 summed)."""
    if REGION == LEFT:  # the other block's indices are smaller
        return slope * offsets.to(tl.float32), slope * (start - mine).to(tl.float32)
    else:
        return -slope * offsets.to(tl.float32), slope * (mine - start).to(tl.float32)


@triton.jit
def _edge_scores(a, b, a_index, b_index, length, qk_scale, slope, PRECISION: tl.constexpr):
    # (len(a), len(b)) scores in log2 units by the full formula; b past the sequence end is −inf.
    s = tl.dot(a, tl.trans(b), input_precision=PRECISION) * qk_scale
    s -= slope * tl.abs(a_index[:, None] - b_index[None, :]).to(tl.float32)
    return tl.where(b_index[None, :] < length, s, float("-inf"))


@triton.jit
def _keys(k_block, v_block, k_offsets, v_offsets, cols, length, REGION: tl.constexpr):
    # A block of keys and values; only an edge block can reach past the sequence end (read as zeros).
    if REGION == EDGE:
        inside = cols[:, None] < length
        return (tl.load(k_block + k_offsets, mask=inside, other=0.0),
                tl.load(v_block + v_offsets, mask=inside, other=0.0))
    return tl.load(k_block + k_offsets), tl.load(v_block + v_offsets)


@triton.jit
def _forward_keys(acc, l, m, q, K, V, k_offsets, v_offsets, stride_kt, stride_vt, rows, keys, lo, hi, length,
                  qk_scale, slope, REGION: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
    # Offsets within a sequence are 32-bit: longest() bounds the sequence (932 k tokens of a base model's qkv).
    k_block, v_block = K + lo * stride_kt, V + lo * stride_vt
    for start in range(lo, hi, BLOCK_N):
        k, v = _keys(k_block, v_block, k_offsets, v_offsets, start + keys, length, REGION)
        if REGION == EDGE:
            s = _edge_scores(q, k, rows, start + keys, length, qk_scale, slope, PRECISION)
            m_new = tl.maximum(m, tl.max(s, 1))
            p = tl.math.exp2(s - m_new[:, None])
        else:
            column, row = _away(slope, start, rows, keys, REGION)
            s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale + column[None, :]
            m_new = tl.maximum(m, tl.max(s, 1) + row)  # the row term moves the maximum, not each score
            p = tl.math.exp2(s - (m_new - row)[:, None])
        alpha = tl.math.exp2(m - m_new)
        l = l * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        m = m_new
        k_block += BLOCK_N * stride_kt
        v_block += BLOCK_N * stride_vt
    return acc, l, m


@triton.jit
def _forward(Q, K, V, O, LSE, cu_seqlens, slopes, qk_scale, bucket,
             stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_ot, stride_oh,
             stride_lse_h,
             HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
    # bucket: the batch's longest sequence rounded up to a power of two, a key for tuning only.
    seq, block, head = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    begin, length = _sequence(cu_seqlens, seq)
    first = block * BLOCK_M
    if first >= length:
        return
    slope = tl.load(slopes + head)
    rows = first + tl.arange(0, BLOCK_M)
    keys = tl.arange(0, BLOCK_N)
    dims = tl.arange(0, HEAD_DIM)
    Q = _at(Q, begin, head, stride_qt, stride_qh)
    K = _at(K, begin, head, stride_kt, stride_kh)
    V = _at(V, begin, head, stride_vt, stride_vh)
    O = _at(O, begin, head, stride_ot, stride_oh)
    LSE += head * stride_lse_h + begin
    q = tl.load(Q + rows[:, None] * stride_qt + dims[None, :], mask=rows[:, None] < length, other=0.0)
    k_offsets = keys[:, None] * stride_kt + dims[None, :]
    v_offsets = keys[:, None] * stride_vt + dims[None, :]

    m = tl.full([BLOCK_M], float("-inf"), tl.float32)  # running row maximum
    l = tl.zeros([BLOCK_M], tl.float32)  # running row sum of exp2(s − m)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    low, high, after, whole, tail = _regions(first, BLOCK_M, length, BLOCK_N)
    acc, l, m = _forward_keys(acc, l, m, q, K, V, k_offsets, v_offsets, stride_kt, stride_vt, rows, keys, 0, low,
                              length, qk_scale, slope, LEFT, BLOCK_N, PRECISION)
    acc, l, m = _forward_keys(acc, l, m, q, K, V, k_offsets, v_offsets, stride_kt, stride_vt, rows, keys, low, high,
                              length, qk_scale, slope, EDGE, BLOCK_N, PRECISION)
    acc, l, m = _forward_keys(acc, l, m, q, K, V, k_offsets, v_offsets, stride_kt, stride_vt, rows, keys, after,
                              whole, length, qk_scale, slope, RIGHT, BLOCK_N, PRECISION)
    acc, l, m = _forward_keys(acc, l, m, q, K, V, k_offsets, v_offsets, stride_kt, stride_vt, rows, keys, tail,
                              length, length, qk_scale, slope, EDGE, BLOCK_N, PRECISION)

    o = acc / l[:, None]
    tl.store(O + rows[:, None] * stride_ot + dims[None, :], o.to(O.dtype.element_ty), mask=rows[:, None] < length)
    tl.store(LSE + rows, m + tl.math.log2(l), mask=rows < length)


@triton.jit
def _delta(O, DO, DELTA, total, stride_ot, stride_oh, stride_dot, stride_doh, stride_delta_h,
           HEAD_DIM: tl.constexpr, BLOCK: tl.constexpr):
    # delta_i = Σ_d dO_id · O_id = Σ_j P_ij dP_ij, the softmax-backward correction term; (heads, total)
    block, head = tl.program_id(0), tl.program_id(1)
    rows = (block * BLOCK + tl.arange(0, BLOCK)).to(tl.int64)
    dims = tl.arange(0, HEAD_DIM)
    inside = rows[:, None] < total
    o = tl.load(O + head * stride_oh + rows[:, None] * stride_ot + dims[None, :], mask=inside, other=0.0)
    do = tl.load(DO + head * stride_doh + rows[:, None] * stride_dot + dims[None, :], mask=inside, other=0.0)
    tl.store(DELTA + head * stride_delta_h + rows, tl.sum(o.to(tl.float32) * do.to(tl.float32), 1), mask=rows < total)


@triton.jit
def _backward_inputs(Q, K, V, DO, LSE, DELTA, begin, head, stride_qt, stride_qh, stride_kt, stride_kh, stride_vt,
                     stride_vh, stride_dot, stride_doh, stride_lse_h):
    return (_at(Q, begin, head, stride_qt, stride_qh), _at(K, begin, head, stride_kt, stride_kh),
            _at(V, begin, head, stride_vt, stride_vh), _at(DO, begin, head, stride_dot, stride_doh),
            LSE + head * stride_lse_h + begin, DELTA + head * stride_lse_h + begin)


@triton.jit
def _backward_kv_queries(dk, dv, k, v, Q, DO, LSE, DELTA, q_offsets, do_offsets, stride_qt, stride_dot, cols,
                         queries, lo, hi, length, qk_scale, slope,
                         REGION: tl.constexpr, BLOCK_M: tl.constexpr, PRECISION: tl.constexpr):
    # Transposed scores (BLOCK_N, BLOCK_M): keys along rows, so the products need no transposes of p.
    q_block, do_block = Q + lo * stride_qt, DO + lo * stride_dot
    for start in range(lo, hi, BLOCK_M):
        rows = start + queries
        if REGION == EDGE:
            inside = rows < length
            q = tl.load(q_block + q_offsets, mask=inside[:, None], other=0.0)
            do = tl.load(do_block + do_offsets, mask=inside[:, None], other=0.0)
            lse = tl.load(LSE + rows, mask=inside, other=0.0)
            delta = tl.load(DELTA + rows, mask=inside, other=0.0)
            # queries past the end score −inf, so their p is 0
            p_t = tl.math.exp2(_edge_scores(k, q, cols, rows, length, qk_scale, slope, PRECISION) - lse[None, :])
        else:
            q, do = tl.load(q_block + q_offsets), tl.load(do_block + do_offsets)
            lse, delta = tl.load(LSE + rows), tl.load(DELTA + rows)
            column, row = _away(slope, start, cols, queries, REGION)
            p_t = tl.math.exp2(tl.dot(k, tl.trans(q), input_precision=PRECISION) * qk_scale + row[:, None]
                               + (column - lse)[None, :])
        dv += tl.dot(p_t.to(do.dtype), do, input_precision=PRECISION)
        dp_t = tl.dot(v, tl.trans(do), input_precision=PRECISION)
        ds_t = p_t * (dp_t - delta[None, :])
        dk += tl.dot(ds_t.to(q.dtype), q, input_precision=PRECISION)
        q_block += BLOCK_M * stride_qt
        do_block += BLOCK_M * stride_dot
    return dk, dv


@triton.jit
def _backward_kv(Q, K, V, DO, DK, DV, LSE, DELTA, cu_seqlens, slopes, qk_scale, sm_scale, bucket,
                 stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_dot, stride_doh,
                 stride_dkt, stride_dkh, stride_dvt, stride_dvh, stride_lse_h,
                 HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
    # One block of keys; loops over the query blocks of its sequence.
    seq, block, head = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    begin, length = _sequence(cu_seqlens, seq)
    first = block * BLOCK_N
    if first >= length:
        return
    slope = tl.load(slopes + head)
    cols = first + tl.arange(0, BLOCK_N)
    queries = tl.arange(0, BLOCK_M)
    dims = tl.arange(0, HEAD_DIM)
    Q, K, V, DO, LSE, DELTA = _backward_inputs(Q, K, V, DO, LSE, DELTA, begin, head, stride_qt, stride_qh, stride_kt,
                                               stride_kh, stride_vt, stride_vh, stride_dot, stride_doh, stride_lse_h)
    DK = _at(DK, begin, head, stride_dkt, stride_dkh)
    DV = _at(DV, begin, head, stride_dvt, stride_dvh)
    inside = cols[:, None] < length
    k = tl.load(K + cols[:, None] * stride_kt + dims[None, :], mask=inside, other=0.0)
    v = tl.load(V + cols[:, None] * stride_vt + dims[None, :], mask=inside, other=0.0)
    q_offsets = queries[:, None] * stride_qt + dims[None, :]
    do_offsets = queries[:, None] * stride_dot + dims[None, :]

    dk = tl.zeros([BLOCK_N, HEAD_DIM], tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], tl.float32)
    low, high, after, whole, tail = _regions(first, BLOCK_N, length, BLOCK_M)
    dk, dv = _backward_kv_queries(dk, dv, k, v, Q, DO, LSE, DELTA, q_offsets, do_offsets, stride_qt, stride_dot,
                                  cols, queries, 0, low, length, qk_scale, slope, LEFT, BLOCK_M, PRECISION)
    dk, dv = _backward_kv_queries(dk, dv, k, v, Q, DO, LSE, DELTA, q_offsets, do_offsets, stride_qt, stride_dot,
                                  cols, queries, low, high, length, qk_scale, slope, EDGE, BLOCK_M, PRECISION)
    dk, dv = _backward_kv_queries(dk, dv, k, v, Q, DO, LSE, DELTA, q_offsets, do_offsets, stride_qt, stride_dot,
                                  cols, queries, after, whole, length, qk_scale, slope, RIGHT, BLOCK_M, PRECISION)
    dk, dv = _backward_kv_queries(dk, dv, k, v, Q, DO, LSE, DELTA, q_offsets, do_offsets, stride_qt, stride_dot,
                                  cols, queries, tail, length, length, qk_scale, slope, EDGE, BLOCK_M, PRECISION)

    tl.store(DK + cols[:, None] * stride_dkt + dims[None, :], (dk * sm_scale).to(DK.dtype.element_ty), mask=inside)
    tl.store(DV + cols[:, None] * stride_dvt + dims[None, :], dv.to(DV.dtype.element_ty), mask=inside)


@triton.jit
def _backward_q_keys(dq, q, do, lse, delta, K, V, k_offsets, v_offsets, stride_kt, stride_vt, rows, keys, lo, hi,
                     length, qk_scale, slope, REGION: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
    k_block, v_block = K + lo * stride_kt, V + lo * stride_vt
    for start in range(lo, hi, BLOCK_N):
        k, v = _keys(k_block, v_block, k_offsets, v_offsets, start + keys, length, REGION)
        if REGION == EDGE:
            p = tl.math.exp2(_edge_scores(q, k, rows, start + keys, length, qk_scale, slope, PRECISION)
                             - lse[:, None])
        else:
            column, row = _away(slope, start, rows, keys, REGION)
            p = tl.math.exp2(tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale + column[None, :]
                             + (row - lse)[:, None])
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(k.dtype), k, input_precision=PRECISION)
        k_block += BLOCK_N * stride_kt
        v_block += BLOCK_N * stride_vt
    return dq


@triton.jit
def _backward_q(Q, K, V, DO, DQ, LSE, DELTA, cu_seqlens, slopes, qk_scale, sm_scale, bucket,
                stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_dot, stride_doh,
                stride_dqt, stride_dqh, stride_lse_h,
                HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
    # One block of queries; loops over the key blocks of its sequence.
    seq, block, head = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    begin, length = _sequence(cu_seqlens, seq)
    first = block * BLOCK_M
    if first >= length:
        return
    slope = tl.load(slopes + head)
    rows = first + tl.arange(0, BLOCK_M)
    keys = tl.arange(0, BLOCK_N)
    dims = tl.arange(0, HEAD_DIM)
    Q, K, V, DO, LSE, DELTA = _backward_inputs(Q, K, V, DO, LSE, DELTA, begin, head, stride_qt, stride_qh, stride_kt,
                                               stride_kh, stride_vt, stride_vh, stride_dot, stride_doh, stride_lse_h)
    DQ = _at(DQ, begin, head, stride_dqt, stride_dqh)
    inside = rows < length
    q = tl.load(Q + rows[:, None] * stride_qt + dims[None, :], mask=inside[:, None], other=0.0)
    do = tl.load(DO + rows[:, None] * stride_dot + dims[None, :], mask=inside[:, None], other=0.0)
    lse = tl.load(LSE + rows, mask=inside, other=0.0)
    delta = tl.load(DELTA + rows, mask=inside, other=0.0)
    k_offsets = keys[:, None] * stride_kt + dims[None, :]
    v_offsets = keys[:, None] * stride_vt + dims[None, :]

    dq = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    low, high, after, whole, tail = _regions(first, BLOCK_M, length, BLOCK_N)
    dq = _backward_q_keys(dq, q, do, lse, delta, K, V, k_offsets, v_offsets, stride_kt, stride_vt, rows, keys, 0,
                          low, length, qk_scale, slope, LEFT, BLOCK_N, PRECISION)
    dq = _backward_q_keys(dq, q, do, lse, delta, K, V, k_offsets, v_offsets, stride_kt, stride_vt, rows, keys, low,
                          high, length, qk_scale, slope, EDGE, BLOCK_N, PRECISION)
    dq = _backward_q_keys(dq, q, do, lse, delta, K, V, k_offsets, v_offsets, stride_kt, stride_vt, rows, keys, after,
                          whole, length, qk_scale, slope, RIGHT, BLOCK_N, PRECISION)
    dq = _backward_q_keys(dq, q, do, lse, delta, K, V, k_offsets, v_offsets, stride_kt, stride_vt, rows, keys, tail,
                          length, length, qk_scale, slope, EDGE, BLOCK_N, PRECISION)

    tl.store(DQ + rows[:, None] * stride_dqt + dims[None, :], (dq * sm_scale).to(DQ.dtype.element_ty),
             mask=inside[:, None])


KERNELS = {"forward": _forward, "backward_kv": _backward_kv, "backward_q": _backward_q}
DELTA_BLOCK = 64


@functools.cache
def _tuned(name: str, head_dim: int, precision: str):
    """The kernel, tuned on a GPU over its configs (tuning) by head dim, dtype (Triton adds it) and
    length bucket; in Triton's interpreter, None: the kernel runs with its first config."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        return None
    return triton.autotune(tuning(precision)[name][head_dim], key=["bucket"])(KERNELS[name])


def _launch(name: str, grid_of, *args, head_dim: int, precision: str, configs=None):
    """Run kernel `name` over grid_of(BLOCK_M, BLOCK_N); `configs` (kernel name → a triton.Config)
    forces a configuration instead of tuning."""
    tuned = None if configs else _tuned(name, head_dim, precision)
    if tuned is not None:
        tuned[lambda meta: grid_of(meta["BLOCK_M"], meta["BLOCK_N"])](*args, HEAD_DIM=head_dim, PRECISION=precision)
        return
    config = configs[name] if configs else tuning(precision)[name][head_dim][0]
    blocks = config.kwargs["BLOCK_M"], config.kwargs["BLOCK_N"]
    KERNELS[name][grid_of(*blocks)](*args, HEAD_DIM=head_dim, BLOCK_M=blocks[0], BLOCK_N=blocks[1],
                                    PRECISION=precision, num_warps=config.num_warps, num_stages=config.num_stages)


@functools.cache
def longest(row_stride: int) -> int:
    """The longest sequence the kernels address when a token's row is `row_stride` elements apart: offsets
    within a sequence (row × stride, rows up to a block past its end) are 32-bit, and its blocks lie on
    grid axis 1, which CUDA caps at 65,535 (Triton's launcher does not check: a launch error)."""
    blocks = [c.kwargs[b] for table in (CONFIGS, FP32_CONFIGS) for entries in table.values()
              for configs in entries.values() for c in configs for b in ("BLOCK_M", "BLOCK_N")]
    return min((2 ** 31 - 1) // row_stride - max(blocks), 65_535 * min(blocks))


def _precision(q) -> str:
    # fp32 inputs multiply exactly ("ieee"), not through TF32; half-precision inputs are unaffected.
    return "ieee" if q.dtype == torch.float32 else "tf32"


def forward(q, k, v, cu_seqlens, max_seqlen, slopes, configs=None):
    """o (total, heads, head_dim) and the rows' log-sum-exp (heads, total), base 2. q, k, v may be
    strided views (the slices of a packed qkv); slopes in log2 units."""
    total, heads, head_dim = q.shape
    batch = cu_seqlens.numel() - 1
    o = torch.empty(q.shape, device=q.device, dtype=q.dtype)
    lse = torch.empty((heads, total), device=q.device, dtype=torch.float32)
    scale = head_dim ** -0.5 * LOG2E
    # Sequences on grid axis 0, the only one not capped at 65,535.
    _launch("forward", lambda m, n: (batch, triton.cdiv(max_seqlen, m), heads),
            q, k, v, o, lse, cu_seqlens, slopes, scale, triton.next_power_of_2(max_seqlen),
            q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), o.stride(0), o.stride(1),
            lse.stride(0), head_dim=head_dim, precision=_precision(q), configs=configs)
    return o, lse


def backward(q, k, v, o, lse, do, cu_seqlens, max_seqlen, slopes, dq, dk, dv, configs=None):
    """Write the gradients into dq, dk and dv, which may be strided views of one packed dqkv."""
    total, heads, head_dim = q.shape
    batch = cu_seqlens.numel() - 1
    delta = torch.empty_like(lse)
    _delta[(triton.cdiv(total, DELTA_BLOCK), heads)](o, do, delta, total, o.stride(0), o.stride(1), do.stride(0),
                                                     do.stride(1), delta.stride(0), HEAD_DIM=head_dim,
                                                     BLOCK=DELTA_BLOCK)
    sm_scale = head_dim ** -0.5
    common = dict(head_dim=head_dim, precision=_precision(q), configs=configs)
    inputs = (q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), do.stride(0), do.stride(1))
    bucket = triton.next_power_of_2(max_seqlen)
    _launch("backward_kv", lambda m, n: (batch, triton.cdiv(max_seqlen, n), heads),
            q, k, v, do, dk, dv, lse, delta, cu_seqlens, slopes, sm_scale * LOG2E, sm_scale, bucket, *inputs,
            dk.stride(0), dk.stride(1), dv.stride(0), dv.stride(1), lse.stride(0), **common)
    _launch("backward_q", lambda m, n: (batch, triton.cdiv(max_seqlen, m), heads),
            q, k, v, do, dq, lse, delta, cu_seqlens, slopes, sm_scale * LOG2E, sm_scale, bucket, *inputs,
            dq.stride(0), dq.stride(1), lse.stride(0), **common)


class AlibiFlashAttention(torch.autograd.Function):
    """Separate q, k, v (total, heads, head_dim); cu_seqlens (batch + 1,) int32; slopes (heads,)."""

    @staticmethod
    def forward(ctx, q, k, v, cu_seqlens, max_seqlen, slopes, configs=None):
        slopes = slopes.float() * LOG2E  # the kernels work in log2 units
        cu_seqlens = cu_seqlens.contiguous()  # read as a plain array: a strided view's offsets would be others
        o, lse = forward(q, k, v, cu_seqlens, max_seqlen, slopes, configs)
        ctx.save_for_backward(q, k, v, o, lse, cu_seqlens, slopes)
        ctx.max_seqlen, ctx.configs = max_seqlen, configs
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, o, lse, cu_seqlens, slopes = ctx.saved_tensors
        do = do if do.stride(-1) == 1 else do.contiguous()
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        backward(q, k, v, o, lse, do, cu_seqlens, ctx.max_seqlen, slopes, dq, dk, dv, ctx.configs)
        return dq, dk, dv, None, None, None, None


class PackedAlibiFlashAttention(torch.autograd.Function):
    """The model's entry: qkv (total, 3, heads, head_dim) as Wqkv writes it, read through strides; the
    backward pass writes one dqkv of the same layout, instead of three gradients autograd would add."""

    @staticmethod
    def forward(ctx, qkv, cu_seqlens, max_seqlen, slopes, configs=None):
        slopes = slopes.float() * LOG2E
        cu_seqlens = cu_seqlens.contiguous()
        o, lse = forward(*qkv.unbind(1), cu_seqlens, max_seqlen, slopes, configs)
        ctx.save_for_backward(qkv, o, lse, cu_seqlens, slopes)
        ctx.max_seqlen, ctx.configs = max_seqlen, configs
        return o

    @staticmethod
    def backward(ctx, do):
        qkv, o, lse, cu_seqlens, slopes = ctx.saved_tensors
        do = do if do.stride(-1) == 1 else do.contiguous()
        dqkv = torch.empty_like(qkv)
        backward(*qkv.unbind(1), o, lse, do, cu_seqlens, ctx.max_seqlen, slopes, *dqkv.unbind(1), ctx.configs)
        return dqkv, None, None, None, None
