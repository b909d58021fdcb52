// Fused scaled dot-product attention, softmax(q k^T * scale) v (Vaswani et al. 2017).
// Head sizes in these models are small (8-64): BLAS GEMMs with such an inner size run far
// below peak, so each (batch, head) pair is done here with loops vectorized over keys.
#include <stdlib.h>

#include "CKernels.h"
#include "fastmath.h"

// y[j] += a * x[j]
static inline void axpy(float a, const float *x, float *y, size_t n) {
    for (size_t j = 0; j < n; j++) y[j] += a * x[j];
}

static inline float dot(const float *a, const float *b, size_t n) {
    float lanes[8] = {0};
    size_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) lanes[l] += a[j + l] * b[j + l];
    float s = 0;
    for (; j < n; j++) s += a[j] * b[j];
    for (int l = 0; l < 8; l++) s += lanes[l];
    return s;
}

// Copies head h of rows [T, ld] into a [d, T] matrix, so loops over keys are contiguous.
static void gather_transposed(const float *src, size_t ld, size_t T, size_t d, float *dst) {
    for (size_t t = 0; t < T; t++)
        for (size_t c = 0; c < d; c++) dst[c * T + t] = src[t * ld + c];
}

static void scatter_transposed(const float *src, size_t T, size_t d, float *dst, size_t ld) {
    for (size_t t = 0; t < T; t++)
        for (size_t c = 0; c < d; c++) dst[t * ld + c] = src[c * T + t];
}

// Number of keys query i may see: all, or under the causal mask those at j <= i
// (aligned at the end when Tk > Tq, as in a decoder with a cache).
static inline size_t visible_keys(const duo_attention_shape *s, size_t i) {
    if (!s->causal) return s->Tk;
    size_t last = i + (s->Tk - s->Tq);
    return last + 1 < s->Tk ? last + 1 : s->Tk;
}

void duo_attention_forward(const duo_attention_shape *s, const float *q, const float *k,
                           const float *v, float *out, float *probs, size_t bh_begin,
                           size_t bh_end) {
    size_t Tq = s->Tq, Tk = s->Tk, d = s->d;
    float *kT = malloc(sizeof(float) * d * Tk * 2);
    float *vT = kT + d * Tk;
    for (size_t bh = bh_begin; bh < bh_end; bh++) {
        size_t b = bh / s->H, h = bh % s->H;
        const float *qb = q + b * Tq * s->ldq + h * d;
        float *ob = out + b * Tq * s->ldo + h * d;
        gather_transposed(k + b * Tk * s->ldk + h * d, s->ldk, Tk, d, kT);
        gather_transposed(v + b * Tk * s->ldv + h * d, s->ldv, Tk, d, vT);
        for (size_t i = 0; i < Tq; i++) {
            const float *qi = qb + i * s->ldq;
            float *p = probs + (bh * Tq + i) * Tk;
            size_t n = visible_keys(s, i);
            // scores p[j] = scale * <q_i, k_j>
            for (size_t j = 0; j < Tk; j++) p[j] = 0.0f;
            for (size_t c = 0; c < d; c++) axpy(qi[c] * s->scale, kT + c * Tk, p, n);
            // softmax over the visible keys
            float m = p[0];
            for (size_t j = 1; j < n; j++) m = p[j] > m ? p[j] : m;
            for (size_t j = 0; j < n; j++) p[j] = duo_expf(p[j] - m);
            float sum = 0;
            for (size_t j = 0; j < n; j++) sum += p[j];
            float inv = 1.0f / sum;
            for (size_t j = 0; j < n; j++) p[j] *= inv;
            // out_i = sum_j p[j] v_j
            float *oi = ob + i * s->ldo;
            for (size_t c = 0; c < d; c++) oi[c] = dot(p, vT + c * Tk, n);
        }
    }
    free(kT);
}

// With P = softmax(S), O = P V, and dO given:
//   dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dO * O)),  dQ = scale dS K,
//   dK = scale dS^T Q.
void duo_attention_backward(const duo_attention_shape *s, const float *q, const float *k,
                            const float *v, const float *out, const float *probs,
                            const float *dout, float *dq, float *dk, float *dv,
                            size_t bh_begin, size_t bh_end) {
    size_t Tq = s->Tq, Tk = s->Tk, d = s->d;
    float *kT = malloc(sizeof(float) * (d * Tk * 4 + Tk));
    float *vT = kT + d * Tk, *dkT = vT + d * Tk, *dvT = dkT + d * Tk, *ds = dvT + d * Tk;
    for (size_t bh = bh_begin; bh < bh_end; bh++) {
        size_t b = bh / s->H, h = bh % s->H;
        gather_transposed(k + b * Tk * s->ldk + h * d, s->ldk, Tk, d, kT);
        gather_transposed(v + b * Tk * s->ldv + h * d, s->ldv, Tk, d, vT);
        for (size_t j = 0; j < 2 * d * Tk; j++) dkT[j] = 0.0f;  // dkT and dvT
        for (size_t i = 0; i < Tq; i++) {
            const float *qi = q + (b * Tq + i) * s->ldq + h * d;
            const float *oi = out + (b * Tq + i) * s->ldo + h * d;
            const float *doi = dout + (b * Tq + i) * s->ldo + h * d;
            float *dqi = dq + (b * Tq + i) * s->ldq + h * d;
            const float *p = probs + (bh * Tq + i) * Tk;
            size_t n = visible_keys(s, i);
            float row = 0;
            for (size_t c = 0; c < d; c++) row += doi[c] * oi[c];
            // dP[j] = <dO_i, v_j>, then dS[j] = scale * P[j] * (dP[j] - row)
            for (size_t j = 0; j < n; j++) ds[j] = 0.0f;
            for (size_t c = 0; c < d; c++) axpy(doi[c], vT + c * Tk, ds, n);
            for (size_t j = 0; j < n; j++) ds[j] = s->scale * p[j] * (ds[j] - row);
            for (size_t c = 0; c < d; c++) {
                dqi[c] = dot(ds, kT + c * Tk, n);
                axpy(qi[c], ds, dkT + c * Tk, n);
                axpy(doi[c], p, dvT + c * Tk, n);
            }
        }
        scatter_transposed(dkT, Tk, d, dk + b * Tk * s->ldk + h * d, s->ldk);
        scatter_transposed(dvT, Tk, d, dv + b * Tk * s->ldv + h * d, s->ldv);
    }
    free(kT);
}
