// Fused scaled dot-product attention, softmax(q k^T * scale) v (Vaswani et al. 2017).
// Head sizes in these models are small (8-64): BLAS GEMMs with such an inner size run far
// below peak, so each (batch, head) pair is done here. Queries go in blocks of QB rows and
// keys in vectors of KB, so each load of a key (or value) vector feeds QB multiply-adds
// held in registers.
#include <stdlib.h>
#include <string.h>

#include "CKernels.h"
#include "bf16_tiles.h"
#include "dispatch.h"
#include "fastmath.h"
#include "transpose16.h"

#define QB 8
#define KB 16

// 16-float vectors (clang/gcc vector extensions): one AVX-512 register, or two AVX ones.
typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));
DUO_INLINE v16 load16(const float *p) { return *(const v16u *)p; }
DUO_INLINE void store16(float *p, v16 x) { *(v16u *)p = x; }

typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));
typedef float v4 __attribute__((vector_size(16)));
DUO_INLINE v8 load8(const float *p) { return *(const v8u *)p; }
DUO_INLINE void store8(float *p, v8 x) { *(v8u *)p = x; }

// Horizontal sum by halving: 4 shuffle-adds instead of 15 dependent adds.
DUO_INLINE float sum16(v16 x) {
    v8 a = __builtin_shufflevector(x, x, 0, 1, 2, 3, 4, 5, 6, 7) +
           __builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15);
    v4 b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
    return (b[0] + b[2]) + (b[1] + b[3]);
}

// out[r][j] = scale * sum_c rows[r][c] * m[c][j] for j < n   (S = Q K^T, dP = dO V^T)
// With AVX-512 a block's QB accumulators of 16 floats are QB registers; with AVX2 they would
// be 2·QB of its 16 registers before the operands and spill, so there the columns go 8 at a
// time. Each output is the same sum in the same order either way.
DUO_INLINE void rows_times(const float *const rows[QB], const float *m, size_t ld, size_t d,
                       size_t n, float scale, float *const out[QB]) {
    size_t j0 = 0;
    if (__builtin_cpu_supports("avx512f")) {
        for (; j0 + KB <= n; j0 += KB) {
            v16 acc[QB] = {0};
            for (size_t c = 0; c < d; c++) {
                v16 mc = load16(m + c * ld + j0);
                for (int r = 0; r < QB; r++) acc[r] += rows[r][c] * mc;
            }
            for (int r = 0; r < QB; r++) store16(out[r] + j0, scale * acc[r]);
        }
    }
    // Without AVX-512: four rows by sixteen columns (8 accumulators), so each key load
    // feeds four multiply-adds and each broadcast two.
    size_t j16 = j0;
    for (int h = 0; h < QB; h += 4) {
        size_t j = j16;
        for (; j + 16 <= n; j += 16) {
            v8 a0[4] = {0}, a1[4] = {0};
            for (size_t c = 0; c < d; c++) {
                v8 m0 = load8(m + c * ld + j), m1 = load8(m + c * ld + j + 8);
                for (int r = 0; r < 4; r++) {
                    float x = rows[h + r][c];
                    a0[r] += x * m0;
                    a1[r] += x * m1;
                }
            }
            for (int r = 0; r < 4; r++) {
                store8(out[h + r] + j, scale * a0[r]);
                store8(out[h + r] + j + 8, scale * a1[r]);
            }
        }
        j0 = j;
    }
    for (; j0 + 8 <= n; j0 += 8) {
        v8 acc[QB] = {0};
        for (size_t c = 0; c < d; c++) {
            v8 mc = load8(m + c * ld + j0);
            for (int r = 0; r < QB; r++) acc[r] += rows[r][c] * mc;
        }
        for (int r = 0; r < QB; r++) store8(out[r] + j0, scale * acc[r]);
    }
    for (; j0 < n; j0++)
        for (int r = 0; r < QB; r++) {
            float a = 0;
            for (size_t c = 0; c < d; c++) a += rows[r][c] * m[c * ld + j0];
            out[r][j0] = scale * a;
        }
}

// out[r][c] = sum_{j<n} x[r][j] * m[c][j]   (O = P V, dQ = dS K)
DUO_INLINE void rows_dot(const float *const x[QB], const float *m, size_t ld, size_t d, size_t n,
                     float *const out[QB]) {
    for (size_t c = 0; c < d; c++) {
        const float *mc = m + c * ld;
        v16 acc[QB] = {0};
        size_t j0 = 0;
        for (; j0 + KB <= n; j0 += KB) {
            v16 mv = load16(mc + j0);
            for (int r = 0; r < QB; r++) acc[r] += load16(x[r] + j0) * mv;
        }
        for (int r = 0; r < QB; r++) {
            float s = sum16(acc[r]);
            for (size_t j = j0; j < n; j++) s += x[r][j] * mc[j];
            out[r][c] = s;
        }
    }
}

// The same as rows_dot with m in the keys' own layout, rows of d floats at stride ld:
// out[r][c] = sum_{j<n} x[r][j] * m[j][c]. With few keys (cross-attention on a short
// text) this wins: it needs no horizontal sums.
DUO_INLINE void rows_mix(const float *const x[QB], const float *m, size_t ld, size_t d, size_t n,
                     float *const out[QB]) {
    size_t c0 = 0;
    // Four rows by sixteen columns (8 accumulators): each value load feeds four
    // multiply-adds and each weight's broadcast two.
    for (; c0 + 16 <= d; c0 += 16)
        for (int h = 0; h < QB; h += 4) {
            v8 a0[4] = {0}, a1[4] = {0};
            for (size_t j = 0; j < n; j++) {
                v8 m0 = *(const v8u *)(m + j * ld + c0), m1 = *(const v8u *)(m + j * ld + c0 + 8);
                for (int r = 0; r < 4; r++) {
                    float w = x[h + r][j];
                    a0[r] += w * m0;
                    a1[r] += w * m1;
                }
            }
            for (int r = 0; r < 4; r++) {
                *(v8u *)(out[h + r] + c0) = a0[r];
                *(v8u *)(out[h + r] + c0 + 8) = a1[r];
            }
        }
    for (; c0 + 8 <= d; c0 += 8) {
        v8 acc[QB] = {0};
        for (size_t j = 0; j < n; j++) {
            v8 mj = *(const v8u *)(m + j * ld + c0);
            for (int r = 0; r < QB; r++) acc[r] += x[r][j] * mj;
        }
        for (int r = 0; r < QB; r++) *(v8u *)(out[r] + c0) = acc[r];
    }
    for (; c0 < d; c0++)
        for (int r = 0; r < QB; r++) {
            float a = 0;
            for (size_t j = 0; j < n; j++) a += x[r][j] * m[j * ld + c0];
            out[r][c0] = a;
        }
}

// Below this many keys rows_mix beats rows_dot (for d = 8: 9n vs 4.5n + 192 operations).
// Without AVX-512 it wins at every key count: rows_dot's QB 16-float accumulators and
// their operands outnumber AVX2's 16 registers, and it loads a row of x per multiply-add.
#define FEW_KEYS 48
DUO_INLINE int mix_keys(size_t n) { return n < FEW_KEYS || !__builtin_cpu_supports("avx512f"); }

// m[c][j] += sum_r rows[r][c] * x[r][j] for j < n   (dK^T += Q^T dS, dV^T += dO^T P)
DUO_INLINE void rank_update(float *m, size_t ld, size_t d, size_t n, const float *const rows[QB],
                        const float *const x[QB]) {
    size_t c = 0;
    if (!__builtin_cpu_supports("avx512f"))
        // Without AVX-512: four rows of m by sixteen columns in 8 accumulators, so that each
        // load of x feeds four multiply-adds and m is loaded and stored once per block, not
        // once per query. The same sums in the same order as below.
        for (; c + 4 <= d; c += 4) {
            float *m0 = m + c * ld;
            size_t j0 = 0;
            for (; j0 + 16 <= n; j0 += 16) {
                v8 a0[4], a1[4];
                for (int i = 0; i < 4; i++) {
                    a0[i] = load8(m0 + i * ld + j0);
                    a1[i] = load8(m0 + i * ld + j0 + 8);
                }
                for (int r = 0; r < QB; r++) {
                    v8 x0 = load8(x[r] + j0), x1 = load8(x[r] + j0 + 8);
                    for (int i = 0; i < 4; i++) {
                        float w = rows[r][c + i];
                        a0[i] += w * x0;
                        a1[i] += w * x1;
                    }
                }
                for (int i = 0; i < 4; i++) {
                    store8(m0 + i * ld + j0, a0[i]);
                    store8(m0 + i * ld + j0 + 8, a1[i]);
                }
            }
            for (; j0 + 8 <= n; j0 += 8) {
                v8 a[4];
                for (int i = 0; i < 4; i++) a[i] = load8(m0 + i * ld + j0);
                for (int r = 0; r < QB; r++) {
                    v8 xr = load8(x[r] + j0);
                    for (int i = 0; i < 4; i++) a[i] += rows[r][c + i] * xr;
                }
                for (int i = 0; i < 4; i++) store8(m0 + i * ld + j0, a[i]);
            }
            for (int i = 0; i < 4; i++)
                for (size_t j = j0; j < n; j++)
                    for (int r = 0; r < QB; r++) m0[i * ld + j] += rows[r][c + i] * x[r][j];
        }
    for (; c < d; c++) {
        float *mc = m + c * ld;
        float w[QB];
        for (int r = 0; r < QB; r++) w[r] = rows[r][c];
        size_t j0 = 0;
        for (; j0 + KB <= n; j0 += KB) {
            v16 a = load16(mc + j0);
            for (int r = 0; r < QB; r++) a += w[r] * load16(x[r] + j0);
            store16(mc + j0, a);
        }
        for (; j0 < n; j0++)
            for (int r = 0; r < QB; r++) mc[j0] += w[r] * x[r][j0];
    }
}

// Copies head h of rows [T, ld] into a [d, T] matrix, so loops over keys are contiguous.
DUO_INLINE void gather_transposed(const float *src, size_t ld, size_t T, size_t d, float *dst) {
    for (size_t t = 0; t < T; t++)
        for (size_t c = 0; c < d; c++) dst[c * T + t] = src[t * ld + c];
}

DUO_INLINE void scatter_transposed(const float *src, size_t T, size_t d, float *dst, size_t ld) {
    for (size_t t = 0; t < T; t++)
        for (size_t c = 0; c < d; c++) dst[t * ld + c] = src[c * T + t];
}

// Number of keys query i may see: all, or under the causal mask those at j <= i
// (aligned at the end when Tk > Tq, as in a decoder with a cache).
DUO_INLINE size_t visible_keys(const duo_attention_shape *s, size_t i) {
    if (!s->causal) return s->Tk;
    size_t last = i + (s->Tk - s->Tq);
    return last + 1 < s->Tk ? last + 1 : s->Tk;
}

DUO_INLINE float max16(v16 x) {
    v8 a = __builtin_elementwise_max(__builtin_shufflevector(x, x, 0, 1, 2, 3, 4, 5, 6, 7),
                                     __builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15));
    v4 b = __builtin_elementwise_max(__builtin_shufflevector(a, a, 0, 1, 2, 3),
                                     __builtin_shufflevector(a, a, 4, 5, 6, 7));
    float m01 = b[0] > b[1] ? b[0] : b[1], m23 = b[2] > b[3] ? b[2] : b[3];
    return m01 > m23 ? m01 : m23;
}

// e^x on 16 lanes for x <= 0 (every softmax's x - max), so that short rows (16 keys in
// cross-attention) vectorize too, in fewer operations than duo_expf's full range: the
// exponentials are a large part of attention's time at small head sizes. n = round(x log2 e)
// by adding 1.5 * 2^23 (the sum's low bits are n), a degree-5 polynomial for e^r on
// |r| <= ln2 / 2 (fitted to relative error, within 3e-7 of e^x in float32), and 2^n added to
// the result's exponent bits. Inputs below -86.5 are clamped there, so the result stays a
// normal float.
DUO_INLINE v16 exp16_nonpositive(v16 x) {
    typedef int32_t v16i __attribute__((vector_size(64)));
    const float round_bias = 12582912.0f;  // 1.5 * 2^23
    x = __builtin_elementwise_max(x, (v16){0} - 86.5f);
    v16 t = x * 1.44269504088896341f + round_bias;
    v16 n = t - round_bias;
    v16 r = x - n * 0.693359375f + n * 2.12194440e-4f;  // x - n ln2, in two parts
    v16 p = r * 8.297654800e-03f + 4.191538319e-02f;
    p = p * r + 1.666757464e-01f;
    p = p * r + 4.999889433e-01f;
    p = p * r + 9.999997020e-01f;
    p = p * r + 1.000000119e+00f;
    return (v16)((v16i)p + ((v16i)t << 23));
}

// p[0..n) *= inv, on vectors.
DUO_INLINE void normalize_row(float *p, size_t n, float inv) {
    size_t j0 = 0;
    for (; j0 + KB <= n; j0 += KB) store16(p + j0, load16(p + j0) * inv);
    for (; j0 < n; j0++) p[j0] *= inv;
}

// Softmax of p[0..n) in place; p[n..Tk) set to 0. The max and the sum are reductions:
// written on vectors so they run in lanes instead of one long dependency chain. Returns
// 1 / the sum of the exponentials; with `normalize` 0 the row is left unnormalized (the
// exponentials only), for a caller that scales the d outputs instead of the n weights.
DUO_INLINE float softmax_row(float *p, size_t n, size_t Tk, int normalize) {
    size_t full = n / KB * KB;
    float m = p[0];
    if (full) {
        v16 vmax = load16(p);
        for (size_t j0 = KB; j0 < full; j0 += KB) vmax = __builtin_elementwise_max(vmax, load16(p + j0));
        m = max16(vmax);
    }
    for (size_t j = full; j < n; j++) m = p[j] > m ? p[j] : m;
    v16 vsum = {0};
    for (size_t j0 = 0; j0 < full; j0 += KB) {
        v16 e = exp16_nonpositive(load16(p + j0) - m);  // x - max <= 0
        store16(p + j0, e);
        vsum += e;
    }
    float sum = sum16(vsum);
    for (size_t j = full; j < n; j++) {
        p[j] = duo_expf(p[j] - m);
        sum += p[j];
    }
    float inv = 1.0f / sum;
    if (normalize) normalize_row(p, n, inv);
    for (size_t j = n; j < Tk; j++) p[j] = 0.0f;
    return inv;
}

// dS = scale * P * (dP - row) in place over dP, on vectors (short rows included).
DUO_INLINE void scale_softmax_gradient(float *ds, const float *p, float row, float scale, size_t n) {
    size_t j0 = 0;
    for (; j0 + KB <= n; j0 += KB) store16(ds + j0, scale * load16(p + j0) * (load16(ds + j0) - row));
    for (; j0 < n; j0++) ds[j0] = scale * p[j0] * (ds[j0] - row);
}

// Scratch of one thread: transposed keys and values (and their gradients), the rows that
// stand in for missing queries in a last, partial block, and a block of probabilities
// recomputed in the backward pass.
typedef struct {
    float *kT, *vT, *dkT, *dvT, *zeros, *dummy, *ds, *p;
} scratch;

DUO_INLINE scratch scratch_alloc(const duo_attention_shape *s) {
    size_t d = s->d, Tk = s->Tk;
    float *base = calloc(4 * d * Tk + 2 * d + 3 * QB * Tk + Tk, sizeof(float));
    scratch w = {base, base + d * Tk, base + 2 * d * Tk, base + 3 * d * Tk, base + 4 * d * Tk,
                 base + 4 * d * Tk + d, base + 4 * d * Tk + 2 * d,
                 base + 4 * d * Tk + 2 * d + 2 * QB * Tk};
    (void)w.dummy;
    return w;
}

DUO_KERNEL void duo_attention_forward(const duo_attention_shape *s, const float *q, const float *k,
                           const float *v, float *out, float *probs, size_t bh_begin,
                           size_t bh_end) {
    size_t Tq = s->Tq, Tk = s->Tk, d = s->d;
    scratch w = scratch_alloc(s);
    float *spare_p = w.ds;  // [QB][Tk] for padded rows, and for every row without probs
    for (size_t bh = bh_begin; bh < bh_end; bh++) {
        size_t b = bh / s->H, h = bh % s->H;
        gather_transposed(k + b * Tk * s->ldk + h * d, s->ldk, Tk, d, w.kT);
        // rows_mix reads the values in their own layout; only rows_dot needs them
        // transposed (mix_keys of fewer keys holds when it holds for all of them).
        if (!mix_keys(Tk)) gather_transposed(v + b * Tk * s->ldv + h * d, s->ldv, Tk, d, w.vT);
        for (size_t i0 = 0; i0 < Tq; i0 += QB) {
            const float *qr[QB];
            float *pr[QB], *outr[QB];
            size_t n[QB], n_max = 0;
            for (int r = 0; r < QB; r++) {
                size_t i = i0 + r;
                int real = i < Tq;
                qr[r] = real ? q + (b * Tq + i) * s->ldq + h * d : w.zeros;
                pr[r] = real && probs ? probs + (bh * Tq + i) * Tk : spare_p + r * Tk;
                outr[r] = real ? out + (b * Tq + i) * s->ldo + h * d : w.dummy;
                n[r] = real ? visible_keys(s, i) : 1;
                n_max = n[r] > n_max ? n[r] : n_max;
            }
            rows_times(qr, w.kT, Tk, d, n_max, s->scale, pr);
            // Each row's 1/sum scales its d outputs rather than its n weights, on every
            // path (so that a pass with gradients and one without give the same bits); kept
            // probabilities are normalized afterwards, as the backward pass computes them.
            float inv[QB];
            for (int r = 0; r < QB; r++) inv[r] = softmax_row(pr[r], n[r], Tk, 0);
            if (mix_keys(n_max))
                rows_mix((const float *const *)pr, v + b * Tk * s->ldv + h * d, s->ldv, d, n_max, outr);
            else
                rows_dot((const float *const *)pr, w.vT, Tk, d, n_max, outr);
            for (int r = 0; r < QB; r++) {
                for (size_t c = 0; c < d; c++) outr[r][c] *= inv[r];
                if (probs) normalize_row(pr[r], n[r], inv[r]);
            }
        }
    }
    free(w.kT);
}

DUO_INLINE void *words_alloc(size_t words) {
    return aligned_alloc(64, (words * sizeof(uint32_t) + 63) / 64 * 64);
}

// Queries per block of the bf16 forward pass: one 32-column strip of the bf16 tile.
#define QN 32


// The (even, odd) bf16 pair words of two float vectors, rounded as bf16_round rounds
// (finite values only: these are exponentials).
DUO_INLINE v16w pair_words(v16 even, v16 odd) {
    v16w e = (v16w)even, o = (v16w)odd;
    e = (e + 0x7fffu + ((e >> 16) & 1u)) >> 16;
    o = (o + 0x7fffu + ((o >> 16) & 1u)) & 0xffff0000u;
    return e | o;
}

// The softmax of each column of S^T [Tk, QN] (one query per column) without its division:
// e = exp(s - column max) goes out as the bf16 pair words of P^T [Tk, QN] packed as the
// tile's B operand, and each column's sum of e into sums[QN]. Columns run in vector lanes,
// so the max and the sum need no horizontal reductions.
DUO_INLINE void column_exponentials(const float *st, size_t Tk, uint32_t *pw, float *sums) {
    v16 m0 = load16(st), m1 = load16(st + 16);
    for (size_t j = 1; j < Tk; j++) {
        m0 = __builtin_elementwise_max(m0, load16(st + j * QN));
        m1 = __builtin_elementwise_max(m1, load16(st + j * QN + 16));
    }
    v16 s0 = {0}, s1 = {0};
    for (size_t p = 0; 2 * p < Tk; p++) {
        const float *even = st + 2 * p * QN, *odd = even + QN;
        v16 e0 = exp16_nonpositive(load16(even) - m0), e1 = exp16_nonpositive(load16(even + 16) - m1);
        v16 o0 = {0}, o1 = {0};
        if (2 * p + 1 < Tk)
            o0 = exp16_nonpositive(load16(odd) - m0), o1 = exp16_nonpositive(load16(odd + 16) - m1);
        s0 += e0 + o0;
        s1 += e1 + o1;
        *(v16w *)(pw + p * QN) = pair_words(e0, o0);
        *(v16w *)(pw + p * QN + 16) = pair_words(e1, o1);
    }
    store16(sums, s0);
    store16(sums + 16, s1);
}

// The forward pass in bf16 mixed precision: scores and P V as bf16 GEMMs with float32 sums
// (gemm_bf16.c), the softmax in float32 between them, as PyTorch's bf16 autocast attends.
// It runs transposed, per block of QN queries: S^T = scale K Q^T [Tk, QN], then
// O^T = V^T P^T [d, QN]. So the softmax runs down columns, in lanes, and its exponentials
// are packed straight into the second product's operand; the small head size is P V's row
// count, which pads to the 12-row tile far less than to 32-column strips.
// Each head's K and V^T are packed once. P is left unnormalized until O^T, whose columns
// are divided by the sums (the division commutes with the product; rounding e instead of
// e / sum to bf16 is as exact). No causal mask and no kept probabilities: the inference
// path (the caller keeps the float32 kernel for the rest).
DUO_KERNEL void duo_attention_forward_bf16(const duo_attention_shape *s, const float *q,
                                           const float *k, const float *v, float *out,
                                           size_t bh_begin, size_t bh_end) {
    size_t Tq = s->Tq, Tk = s->Tk, d = s->d;
    uint32_t *kp = words_alloc(duo_bf16_packed_words(d, Tk, 0));   // K: [Tk, d]
    uint32_t *vt = words_alloc(duo_bf16_packed_words(Tk, d, 0));   // V^T: [d, Tk]
    uint32_t *qt = words_alloc(duo_bf16_packed_words(d, QN, 1));   // a block's Q^T: [d, QN]
    uint32_t *pt = words_alloc(duo_bf16_packed_words(Tk, QN, 1));  // its P^T: [Tk, QN]
    float *st = malloc(Tk * QN * sizeof(float)), *ot = malloc(d * QN * sizeof(float));
    float sums[QN];
    for (size_t bh = bh_begin; bh < bh_end; bh++) {
        size_t b = bh / s->H, h = bh % s->H;
        const float *kh = k + b * Tk * s->ldk + h * d, *vh = v + b * Tk * s->ldv + h * d;
        duo_bf16_pack(kh, 1, (ptrdiff_t)s->ldk, (long)d, (long)Tk, 0, kp);
        duo_bf16_pack(vh, (ptrdiff_t)s->ldv, 1, (long)Tk, (long)d, 0, vt);
        for (size_t i0 = 0; i0 < Tq; i0 += QN) {
            size_t rows = Tq - i0 < QN ? Tq - i0 : QN;
            const float *qb = q + (b * Tq + i0) * s->ldq + h * d;
            // Columns past `rows` pack as zeros: their scores are 0, finite, and unused.
            duo_bf16_pack(qb, 1, (ptrdiff_t)s->ldq, (long)d, (long)rows, 1, qt);
            duo_bf16_multiply_packed((long)Tk, QN, (long)d, s->scale, kp, qt, 0, st, QN);
            column_exponentials(st, Tk, pt, sums);
            duo_bf16_multiply_packed((long)d, QN, (long)Tk, 1, vt, pt, 0, ot, QN);
            for (size_t i = 0; i < rows; i++) {
                float *o = out + (b * Tq + i0 + i) * s->ldo + h * d, inv = 1.0f / sums[i];
                for (size_t c = 0; c < d; c++) o[c] = ot[c * QN + i] * inv;
            }
        }
    }
    free(ot);
    free(st);
    free(pt);
    free(qt);
    free(vt);
    free(kp);
}

// The bf16 halves of 16 floats, rounded as bf16_round rounds finite values, in the low half
// of each word.
DUO_INLINE v16w rounded_halves(v16 x) {
    v16w u = (v16w)x;
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

// One row of 32 floats as 16 pair words: word p holds elements 2p and 2p + 1.
DUO_INLINE v16w row_words(const float *x) {
    v16w a = rounded_halves(load16(x)), b = rounded_halves(load16(x + 16));
    v16w even = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    v16w odd = __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    return even | (odd << 16);
}

// x [n, QN] (a row per key, a column per query) packed as the tile's B operand of the
// transposed matrix [QN, n]: for each strip of 32 keys, word (p, key) pairs queries 2p and
// 2p + 1, for the first `pairs` pairs. Each key's row is already its pairs in order, so a
// strip is two 16 x 16 transposes of words.
DUO_INLINE void pack_keys_as_columns(const float *x, size_t n, long pairs, uint32_t *dst) {
    for (size_t j0 = 0; j0 < n; j0 += QN) {
        uint32_t *strip = dst + j0 * (size_t)pairs;
        for (size_t half = 0; half < QN; half += 16) {
            v16w r[16];
            for (size_t t = 0; t < 16; t++)
                r[t] = j0 + half + t < n ? row_words(x + (j0 + half + t) * QN) : (v16w){0};
            transpose16(r);
            for (long p = 0; p < pairs; p++) *(v16w *)(strip + p * QN + half) = r[p];
        }
    }
}

// x [n, QN] packed as the tile's B operand [n, QN] itself: word (p, query) pairs keys 2p and
// 2p + 1 (the forward pass's exponentials go the same way).
DUO_INLINE void pack_keys_as_rows(const float *x, size_t n, uint32_t *dst) {
    for (size_t p = 0; 2 * p < n; p++) {
        const float *even = x + 2 * p * QN, *odd = even + QN;
        int has_odd = 2 * p + 1 < n;
        for (size_t half = 0; half < QN; half += 16)
            *(v16w *)(dst + p * QN + half) =
                pair_words(load16(even + half), has_odd ? load16(odd + half) : (v16){0});
    }
}

// P^T = softmax down each column of S^T [Tk, QN] in place; columns from `rows` on (missing
// queries) set to 0.
DUO_INLINE void column_softmax(float *st, size_t Tk, size_t rows) {
    v16 m0 = load16(st), m1 = load16(st + 16);
    for (size_t j = 1; j < Tk; j++) {
        m0 = __builtin_elementwise_max(m0, load16(st + j * QN));
        m1 = __builtin_elementwise_max(m1, load16(st + j * QN + 16));
    }
    v16 s0 = {0}, s1 = {0};
    for (size_t j = 0; j < Tk; j++) {
        v16 e0 = exp16_nonpositive(load16(st + j * QN) - m0);
        v16 e1 = exp16_nonpositive(load16(st + j * QN + 16) - m1);
        store16(st + j * QN, e0);
        store16(st + j * QN + 16, e1);
        s0 += e0;
        s1 += e1;
    }
    float inv[QN];
    store16(inv, 1.0f / s0);
    store16(inv + 16, 1.0f / s1);
    for (size_t i = rows; i < QN; i++) inv[i] = 0;
    v16 i0 = load16(inv), i1 = load16(inv + 16);
    for (size_t j = 0; j < Tk; j++) {
        store16(st + j * QN, load16(st + j * QN) * i0);
        store16(st + j * QN + 16, load16(st + j * QN + 16) * i1);
    }
}

// dS^T = scale P^T (dP^T - row) in place over dP^T [Tk, QN], row[QN] one per query column.
DUO_INLINE void column_softmax_gradient(float *dpt, const float *pt, const float *row,
                                        float scale, size_t Tk) {
    v16 r0 = load16(row), r1 = load16(row + 16);
    for (size_t j = 0; j < Tk; j++) {
        float *x = dpt + j * QN;
        const float *pj = pt + j * QN;
        store16(x, scale * load16(pj) * (load16(x) - r0));
        store16(x + 16, scale * load16(pj + 16) * (load16(x + 16) - r1));
    }
}

// x [Tk / QN][d][QN] (a gradient's transpose in blocks of QN keys) written out as rows
// [Tk, d] at stride ld.
DUO_INLINE void unblock_keys(const float *x, size_t Tk, size_t d, float *dst, size_t ld) {
    for (size_t j = 0; j < Tk; j++) {
        const float *block = x + j / QN * QN * d + j % QN;
        for (size_t c = 0; c < d; c++) dst[j * ld + c] = block[c * QN];
    }
}

// The backward pass in bf16 mixed precision, the float32 kernel's formulas (below) as bf16
// GEMMs with float32 sums, run transposed as the forward pass runs, per block of QN
// queries: S^T = scale K Q^T and P^T down columns again, dP^T = V dO^T,
// dS^T = scale P^T (dP^T - rowsum(dO O)), dQ^T = K^T dS^T, and dK^T += Q^T dS,
// dV^T += dO^T P summed over the blocks in float32 [d, Tk] and transposed out at the end.
// The head size is the row count of the three products that have it. Each head's K, V and
// K^T are packed once. No causal mask.
DUO_KERNEL void duo_attention_backward_bf16(const duo_attention_shape *s, const float *q,
                                            const float *k, const float *v, const float *out,
                                            const float *dout, float *dq, float *dk, float *dv,
                                            size_t bh_begin, size_t bh_end) {
    size_t Tq = s->Tq, Tk = s->Tk, d = s->d;
    uint32_t *kp = words_alloc(duo_bf16_packed_words(d, Tk, 0));   // K [Tk, d], for S^T
    uint32_t *vp = words_alloc(duo_bf16_packed_words(d, Tk, 0));   // V [Tk, d], for dP^T
    uint32_t *kt = words_alloc(duo_bf16_packed_words(Tk, d, 0));   // K^T [d, Tk], for dQ^T
    uint32_t *qt = words_alloc(duo_bf16_packed_words(d, QN, 1));   // Q^T block [d, QN]
    uint32_t *dot = words_alloc(duo_bf16_packed_words(d, QN, 1));  // dO^T block [d, QN]
    uint32_t *qa = words_alloc(duo_bf16_packed_words(QN, d, 0));   // Q^T block [d, rows], for dK^T
    uint32_t *da = words_alloc(duo_bf16_packed_words(QN, d, 0));   // dO^T block, for dV^T
    uint32_t *pb = words_alloc(duo_bf16_packed_words(QN, Tk, 1));  // P [rows, Tk], for dV^T
    uint32_t *sb = words_alloc(duo_bf16_packed_words(QN, Tk, 1));  // dS [rows, Tk], for dK^T
    uint32_t *sc = words_alloc(duo_bf16_packed_words(Tk, QN, 1));  // dS^T [Tk, QN], for dQ^T
    float *pt = malloc(Tk * QN * sizeof(float));   // P^T [Tk, QN]
    float *dpt = malloc(Tk * QN * sizeof(float));  // dP^T, then dS^T in its place
    size_t blocked = (Tk + QN - 1) / QN * QN * d;  // dK^T, dV^T in blocks of QN keys
    float *dkt = malloc(blocked * sizeof(float)), *dvt = malloc(blocked * sizeof(float));
    float *dqt = malloc(d * QN * sizeof(float));
    for (size_t bh = bh_begin; bh < bh_end; bh++) {
        size_t b = bh / s->H, h = bh % s->H;
        const float *kh = k + b * Tk * s->ldk + h * d, *vh = v + b * Tk * s->ldv + h * d;
        duo_bf16_pack(kh, 1, (ptrdiff_t)s->ldk, (long)d, (long)Tk, 0, kp);
        duo_bf16_pack(vh, 1, (ptrdiff_t)s->ldv, (long)d, (long)Tk, 0, vp);
        duo_bf16_pack(kh, (ptrdiff_t)s->ldk, 1, (long)Tk, (long)d, 0, kt);
        for (size_t i0 = 0; i0 < Tq; i0 += QN) {
            size_t rows = Tq - i0 < QN ? Tq - i0 : QN;
            long pairs = (long)(rows + 1) / 2;
            const float *qi = q + (b * Tq + i0) * s->ldq + h * d;
            const float *doi = dout + (b * Tq + i0) * s->ldo + h * d;
            const float *oi = out + (b * Tq + i0) * s->ldo + h * d;
            duo_bf16_pack(qi, 1, (ptrdiff_t)s->ldq, (long)d, (long)rows, 1, qt);
            duo_bf16_pack(doi, 1, (ptrdiff_t)s->ldo, (long)d, (long)rows, 1, dot);
            duo_bf16_multiply_packed((long)Tk, QN, (long)d, s->scale, kp, qt, 0, pt, QN);
            column_softmax(pt, Tk, rows);
            duo_bf16_multiply_packed((long)Tk, QN, (long)d, 1, vp, dot, 0, dpt, QN);
            float row[QN] = {0};
            for (size_t i = 0; i < rows; i++)
                for (size_t c = 0; c < d; c++) row[i] += doi[i * s->ldo + c] * oi[i * s->ldo + c];
            column_softmax_gradient(dpt, pt, row, s->scale, Tk);
            pack_keys_as_rows(dpt, Tk, sc);
            duo_bf16_multiply_packed((long)d, QN, (long)Tk, 1, kt, sc, 0, dqt, QN);
            for (size_t i = 0; i < rows; i++) {
                float *dqi = dq + (b * Tq + i0 + i) * s->ldq + h * d;
                for (size_t c = 0; c < d; c++) dqi[c] = dqt[c * QN + i];
            }
            duo_bf16_pack(qi, (ptrdiff_t)s->ldq, 1, (long)rows, (long)d, 0, qa);
            duo_bf16_pack(doi, (ptrdiff_t)s->ldo, 1, (long)rows, (long)d, 0, da);
            pack_keys_as_columns(pt, Tk, pairs, pb);
            pack_keys_as_columns(dpt, Tk, pairs, sb);
            // dK^T and dV^T are kept in blocks of QN keys, [Tk / QN][d][QN], so that each
            // tile of them the products read and write is one contiguous run.
            float first = i0 == 0 ? 0 : 1;  // the first block writes them
            for (size_t j0 = 0; j0 < Tk; j0 += QN) {
                long keys = (long)(Tk - j0 < QN ? Tk - j0 : QN);
                size_t strip = j0 * (size_t)pairs;
                duo_bf16_multiply_packed((long)d, keys, (long)rows, 1, qa, sb + strip, first,
                                         dkt + j0 * d, QN);
                duo_bf16_multiply_packed((long)d, keys, (long)rows, 1, da, pb + strip, first,
                                         dvt + j0 * d, QN);
            }
        }
        unblock_keys(dkt, Tk, d, dk + b * Tk * s->ldk + h * d, s->ldk);
        unblock_keys(dvt, Tk, d, dv + b * Tk * s->ldv + h * d, s->ldv);
    }
    free(dqt);
    free(dvt);
    free(dkt);
    free(dpt);
    free(pt);
    free(sc);
    free(sb);
    free(pb);
    free(da);
    free(qa);
    free(dot);
    free(qt);
    free(kt);
    free(vp);
    free(kp);
}

// With P = softmax(S), O = P V, and dO given:
//   dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dO * O)),  dQ = scale dS K,
//   dK = scale dS^T Q.
// probs NULL: each block's P is computed again from Q and K as the forward pass did (the
// same operations on the same inputs, so the same bits), instead of being read from a
// [B, H, Tq, Tk] matrix kept since the forward pass: at 4096 tokens (SD's 64x64 latents)
// that matrix is 0.5 GB per head group of 8 and row, and training SD would not fit.
DUO_KERNEL void duo_attention_backward(const duo_attention_shape *s, const float *q, const float *k,
                            const float *v, const float *out, const float *probs,
                            const float *dout, float *dq, float *dk, float *dv,
                            size_t bh_begin, size_t bh_end) {
    size_t Tq = s->Tq, Tk = s->Tk, d = s->d;
    scratch w = scratch_alloc(s);
    float *spare_p = w.ds + QB * Tk;  // [QB][Tk] of zeros for padded rows
    for (size_t bh = bh_begin; bh < bh_end; bh++) {
        size_t b = bh / s->H, h = bh % s->H;
        gather_transposed(k + b * Tk * s->ldk + h * d, s->ldk, Tk, d, w.kT);
        gather_transposed(v + b * Tk * s->ldv + h * d, s->ldv, Tk, d, w.vT);
        memset(w.dkT, 0, sizeof(float) * 2 * d * Tk);  // dkT and dvT
        for (size_t i0 = 0; i0 < Tq; i0 += QB) {
            const float *qr[QB], *dor[QB], *pr[QB];
            float *dsr[QB], *dqr[QB], row[QB];
            size_t n_max = 0;
            for (int r = 0; r < QB; r++) {
                size_t i = i0 + r;
                int real = i < Tq;
                qr[r] = real ? q + (b * Tq + i) * s->ldq + h * d : w.zeros;
                dor[r] = real ? dout + (b * Tq + i) * s->ldo + h * d : w.zeros;
                pr[r] = !real ? spare_p : probs ? probs + (bh * Tq + i) * Tk : w.p + r * Tk;
                dqr[r] = real ? dq + (b * Tq + i) * s->ldq + h * d : w.dummy;
                dsr[r] = w.ds + r * Tk;
                size_t n = real ? visible_keys(s, i) : 1;
                n_max = n > n_max ? n : n_max;
                const float *o = real ? out + (b * Tq + i) * s->ldo + h * d : w.zeros;
                row[r] = 0;
                for (size_t c = 0; c < d; c++) row[r] += dor[r][c] * o[c];
            }
            if (!probs) {
                float *recomputed[QB];
                size_t n[QB];
                for (int r = 0; r < QB; r++) {
                    recomputed[r] = w.p + r * Tk;
                    n[r] = i0 + r < Tq ? visible_keys(s, i0 + r) : 1;
                }
                rows_times(qr, w.kT, Tk, d, n_max, s->scale, recomputed);
                for (int r = 0; r < QB; r++) softmax_row(recomputed[r], n[r], Tk, 1);
            }
            rows_times(dor, w.vT, Tk, d, n_max, 1.0f, dsr);  // dP
            for (int r = 0; r < QB; r++) scale_softmax_gradient(dsr[r], pr[r], row[r], s->scale, n_max);
            if (mix_keys(n_max))
                rows_mix((const float *const *)dsr, k + b * Tk * s->ldk + h * d, s->ldk, d, n_max, dqr);
            else
                rows_dot((const float *const *)dsr, w.kT, Tk, d, n_max, dqr);
            rank_update(w.dkT, Tk, d, n_max, qr, (const float *const *)dsr);
            rank_update(w.dvT, Tk, d, n_max, dor, pr);
        }
        scatter_transposed(w.dkT, Tk, d, dk + b * Tk * s->ldk + h * d, s->ldk);
        scatter_transposed(w.dvT, Tk, d, dv + b * Tk * s->ldv + h * d, s->ldv);
    }
    free(w.kT);
}
