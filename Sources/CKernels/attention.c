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

#define QB 8
#define KB 16

// 16-float vectors (clang/gcc vector extensions): one AVX-512 register, or two AVX ones.
typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));
DUO_INLINE v16 load16(const float *p) { return *(const v16u *)p; }
DUO_INLINE void store16(float *p, v16 x) { *(v16u *)p = x; }

typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));

// Horizontal sum by halving: 4 shuffle-adds instead of 15 dependent adds.
DUO_INLINE float sum16(v16 x) {
    v8 a = __builtin_shufflevector(x, x, 0, 1, 2, 3, 4, 5, 6, 7) +
           __builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15);
    v4 b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
    return (b[0] + b[2]) + (b[1] + b[3]);
}

// out[r][j] = scale * sum_c rows[r][c] * m[c][j] for j < n   (S = Q K^T, dP = dO V^T)
DUO_INLINE void rows_times(const float *const rows[QB], const float *m, size_t ld, size_t d,
                       size_t n, float scale, float *const out[QB]) {
    size_t j0 = 0;
    for (; j0 + KB <= n; j0 += KB) {
        v16 acc[QB] = {0};
        for (size_t c = 0; c < d; c++) {
            v16 mc = load16(m + c * ld + j0);
            for (int r = 0; r < QB; r++) acc[r] += rows[r][c] * mc;
        }
        for (int r = 0; r < QB; r++) store16(out[r] + j0, scale * acc[r]);
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

typedef float v8u __attribute__((vector_size(32), aligned(4)));

// The same as rows_dot with m in the keys' own layout, rows of d floats at stride ld:
// out[r][c] = sum_{j<n} x[r][j] * m[j][c]. With few keys (cross-attention on a short
// text) this wins: it needs no horizontal sums.
DUO_INLINE void rows_mix(const float *const x[QB], const float *m, size_t ld, size_t d, size_t n,
                     float *const out[QB]) {
    size_t c0 = 0;
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
#define FEW_KEYS 48

// m[c][j] += sum_r rows[r][c] * x[r][j] for j < n   (dK^T += Q^T dS, dV^T += dO^T P)
DUO_INLINE void rank_update(float *m, size_t ld, size_t d, size_t n, const float *const rows[QB],
                        const float *const x[QB]) {
    for (size_t c = 0; c < d; c++) {
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

// e^x on 16 lanes: duo_expf's range reduction and polynomial, written on vectors so that
// short rows (16 keys in cross-attention) vectorize too.
DUO_INLINE v16 exp16(v16 x) {
    typedef int32_t v16i __attribute__((vector_size(64)));
    x = __builtin_elementwise_min(__builtin_elementwise_max(x, (v16){0} - 87.3f), (v16){0} + 88.3f);
    v16 n = __builtin_elementwise_floor(x * 1.44269504088896341f + 0.5f);
    v16 r = x - n * 0.693359375f + n * 2.12194440e-4f;
    v16 p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    v16i bits = (__builtin_convertvector(n, v16i) + 127) << 23;
    return p * (v16)bits;
}

// e^x on 16 lanes for x <= 0 in fewer operations than exp16, for the bf16 path's softmax,
// whose exponentials cost as much as a quarter of its time: n = round(x log2 e) by adding
// 1.5 * 2^23 (the sum's low bits are n), a degree-5 polynomial for e^r on |r| <= ln2 / 2
// (fitted to relative error, within 3e-7 of e^x in float32), and 2^n added to the result's
// exponent bits. Inputs below -86.5 are clamped there, so the result stays a normal float.
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

// Softmax of p[0..n) in place; p[n..Tk) set to 0. The max and the sum are reductions:
// written on vectors so they run in lanes instead of one long dependency chain.
DUO_INLINE void softmax_row(float *p, size_t n, size_t Tk) {
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
        v16 e = exp16(load16(p + j0) - m);
        store16(p + j0, e);
        vsum += e;
    }
    float sum = sum16(vsum);
    for (size_t j = full; j < n; j++) {
        p[j] = duo_expf(p[j] - m);
        sum += p[j];
    }
    float inv = 1.0f / sum;
    for (size_t j0 = 0; j0 < full; j0 += KB) store16(p + j0, load16(p + j0) * inv);
    for (size_t j = full; j < n; j++) p[j] *= inv;
    for (size_t j = n; j < Tk; j++) p[j] = 0.0f;
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
        gather_transposed(v + b * Tk * s->ldv + h * d, s->ldv, Tk, d, w.vT);
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
            for (int r = 0; r < QB; r++) softmax_row(pr[r], n[r], Tk);
            if (n_max < FEW_KEYS)
                rows_mix((const float *const *)pr, v + b * Tk * s->ldv + h * d, s->ldv, d, n_max, outr);
            else
                rows_dot((const float *const *)pr, w.vT, Tk, d, n_max, outr);
        }
    }
    free(w.kT);
}

// Queries per block of the bf16 backward pass (4 strips of the 12-row tile).
#define MB 48

DUO_INLINE void *words_alloc(size_t words) {
    return aligned_alloc(64, (words * sizeof(uint32_t) + 63) / 64 * 64);
}

// Queries per block of the bf16 forward pass: one 32-column strip of the bf16 tile.
#define QN 32

typedef uint32_t v16w __attribute__((vector_size(64)));

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
// are packed straight into the second product's operand; the small head size is the
// products' row count, which pads to the 12-row tile far less than to 32-column strips.
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

// The backward pass in bf16 mixed precision, the float32 kernel's formulas (below) as bf16
// GEMMs with float32 sums: per block of MB queries, S and P again, dP = dO V^T,
// dS = scale P (dP - rowsum(dO O)), dQ = dS K, and dK += dS^T Q, dV += P^T dO summed over
// the blocks in float32. Each head's K^T, V^T and K are packed once. No causal mask.
DUO_KERNEL void duo_attention_backward_bf16(const duo_attention_shape *s, const float *q,
                                            const float *k, const float *v, const float *out,
                                            const float *dout, float *dq, float *dk, float *dv,
                                            size_t bh_begin, size_t bh_end) {
    size_t Tq = s->Tq, Tk = s->Tk, d = s->d;
    uint32_t *kt = words_alloc(duo_bf16_packed_words(d, Tk, 1));   // K^T [d, Tk], for S
    uint32_t *vt = words_alloc(duo_bf16_packed_words(d, Tk, 1));   // V^T [d, Tk], for dP
    uint32_t *kb = words_alloc(duo_bf16_packed_words(Tk, d, 1));   // K [Tk, d], for dQ
    uint32_t *qa = words_alloc(duo_bf16_packed_words(d, MB, 0));   // Q block [MB, d]
    uint32_t *da = words_alloc(duo_bf16_packed_words(d, MB, 0));   // dO block [MB, d]
    uint32_t *sa = words_alloc(duo_bf16_packed_words(Tk, MB, 0));  // dS [MB, Tk], for dQ
    uint32_t *st = words_alloc(duo_bf16_packed_words(MB, Tk, 0));  // dS^T [Tk, MB], for dK
    uint32_t *pt = words_alloc(duo_bf16_packed_words(MB, Tk, 0));  // P^T [Tk, MB], for dV
    uint32_t *qb = words_alloc(duo_bf16_packed_words(MB, d, 1));   // Q block [MB, d], for dK
    uint32_t *db = words_alloc(duo_bf16_packed_words(MB, d, 1));   // dO block, for dV
    float *p = malloc(MB * Tk * sizeof(float)), *ds = malloc(MB * Tk * sizeof(float));
    for (size_t bh = bh_begin; bh < bh_end; bh++) {
        size_t b = bh / s->H, h = bh % s->H;
        const float *kh = k + b * Tk * s->ldk + h * d, *vh = v + b * Tk * s->ldv + h * d;
        float *dkh = dk + b * Tk * s->ldk + h * d, *dvh = dv + b * Tk * s->ldv + h * d;
        duo_bf16_pack(kh, 1, (ptrdiff_t)s->ldk, (long)d, (long)Tk, 1, kt);
        duo_bf16_pack(vh, 1, (ptrdiff_t)s->ldv, (long)d, (long)Tk, 1, vt);
        duo_bf16_pack(kh, (ptrdiff_t)s->ldk, 1, (long)Tk, (long)d, 1, kb);
        for (size_t i0 = 0; i0 < Tq; i0 += MB) {
            long rows = (long)(Tq - i0 < MB ? Tq - i0 : MB);
            const float *qi = q + (b * Tq + i0) * s->ldq + h * d;
            const float *doi = dout + (b * Tq + i0) * s->ldo + h * d;
            const float *oi = out + (b * Tq + i0) * s->ldo + h * d;
            duo_bf16_pack(qi, 1, (ptrdiff_t)s->ldq, (long)d, rows, 0, qa);
            duo_bf16_pack(doi, 1, (ptrdiff_t)s->ldo, (long)d, rows, 0, da);
            duo_bf16_multiply_packed(rows, (long)Tk, (long)d, s->scale, qa, kt, 0, p, (long)Tk);
            for (long r = 0; r < rows; r++) softmax_row(p + r * Tk, Tk, Tk);
            duo_bf16_multiply_packed(rows, (long)Tk, (long)d, 1, da, vt, 0, ds, (long)Tk);
            for (long r = 0; r < rows; r++) {
                float row = 0;
                for (size_t c = 0; c < d; c++) row += doi[r * s->ldo + c] * oi[r * s->ldo + c];
                scale_softmax_gradient(ds + r * Tk, p + r * Tk, row, s->scale, Tk);
            }
            duo_bf16_pack(ds, 1, (ptrdiff_t)Tk, (long)Tk, rows, 0, sa);
            duo_bf16_multiply_packed(rows, (long)d, (long)Tk, 1, sa, kb, 0,
                                     dq + (b * Tq + i0) * s->ldq + h * d, (long)s->ldq);
            // dK, dV [Tk, d]: the first block writes them, the others add.
            float first = i0 == 0 ? 0 : 1;
            duo_bf16_pack(ds, (ptrdiff_t)Tk, 1, rows, (long)Tk, 0, st);
            duo_bf16_pack(qi, (ptrdiff_t)s->ldq, 1, rows, (long)d, 1, qb);
            duo_bf16_multiply_packed((long)Tk, (long)d, rows, 1, st, qb, first, dkh, (long)s->ldk);
            duo_bf16_pack(p, (ptrdiff_t)Tk, 1, rows, (long)Tk, 0, pt);
            duo_bf16_pack(doi, (ptrdiff_t)s->ldo, 1, rows, (long)d, 1, db);
            duo_bf16_multiply_packed((long)Tk, (long)d, rows, 1, pt, db, first, dvh, (long)s->ldv);
        }
    }
    free(ds);
    free(p);
    free(db);
    free(qb);
    free(pt);
    free(st);
    free(sa);
    free(da);
    free(qa);
    free(kb);
    free(vt);
    free(kt);
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
                for (int r = 0; r < QB; r++) softmax_row(recomputed[r], n[r], Tk);
            }
            rows_times(dor, w.vT, Tk, d, n_max, 1.0f, dsr);  // dP
            for (int r = 0; r < QB; r++) scale_softmax_gradient(dsr[r], pr[r], row[r], s->scale, n_max);
            if (n_max < FEW_KEYS)
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
