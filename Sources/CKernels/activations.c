// Pointwise activations and their derivatives. Written as branch-free loops over
// contiguous floats so that clang vectorizes them (AVX2/AVX-512 with -march=native).
#include "CKernels.h"
#include "dispatch.h"
#include "fastmath.h"

// SiLU(x) = x * sigmoid(x) (Elfwing et al. 2018).
DUO_KERNEL void duo_silu_forward(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = duo_siluf(x[i]);
}

DUO_KERNEL void duo_silu_backward(const float *x, const float *dy, float *dx, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] = duo_silu_gradient(x[i], dy[i]);
}

// Exact GELU(x) = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) (Hendrycks & Gimpel 2016).
DUO_KERNEL void duo_gelu_forward(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + duo_erff(x[i] * DUO_SQRT1_2));
}

DUO_KERNEL void duo_gelu_backward(const float *x, const float *dy, float *dx, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float cdf = 0.5f * (1.0f + duo_erff(x[i] * DUO_SQRT1_2));
        float pdf = DUO_INV_SQRT_2PI * duo_expf(-0.5f * x[i] * x[i]);
        dx[i] = dy[i] * (cdf + x[i] * pdf);
    }
}

// GEGLU (Shazeer 2020, eq. 5) on rows [h | g] of 2 * inner floats: y = h * GELU(g), with
// the exact GELU above. Fused, so the halves are never copied apart.
DUO_KERNEL void duo_geglu_forward(const float *x, float *y, size_t inner, size_t rows) {
    for (size_t r = 0; r < rows; r++) {
        const float *h = x + r * 2 * inner, *g = h + inner;
        float *yr = y + r * inner;
        for (size_t i = 0; i < inner; i++) yr[i] = h[i] * 0.5f * g[i] * (1.0f + duo_erff(g[i] * DUO_SQRT1_2));
    }
}

// dh = dy * GELU(g), dg = dy * h * GELU'(g), written to rows [dh | dg].
DUO_KERNEL void duo_geglu_backward(const float *x, const float *dy, float *dx, size_t inner, size_t rows) {
    for (size_t r = 0; r < rows; r++) {
        const float *h = x + r * 2 * inner, *g = h + inner, *dyr = dy + r * inner;
        float *dh = dx + r * 2 * inner, *dg = dh + inner;
        for (size_t i = 0; i < inner; i++) {
            float cdf = 0.5f * (1.0f + duo_erff(g[i] * DUO_SQRT1_2));
            float pdf = DUO_INV_SQRT_2PI * duo_expf(-0.5f * g[i] * g[i]);
            dh[i] = dyr[i] * g[i] * cdf;
            dg[i] = dyr[i] * h[i] * (cdf + g[i] * pdf);
        }
    }
}

// Tanh GELU: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (Hendrycks & Gimpel 2016, eq. 2).
DUO_KERNEL void duo_gelu_tanh_forward(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float u = DUO_SQRT_2_OVER_PI * (x[i] + 0.044715f * x[i] * x[i] * x[i]);
        y[i] = 0.5f * x[i] * (1.0f + duo_tanhf(u));
    }
}

DUO_KERNEL void duo_gelu_tanh_backward(const float *x, const float *dy, float *dx, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x2 = x[i] * x[i];
        float u = DUO_SQRT_2_OVER_PI * (x[i] + 0.044715f * x2 * x[i]);
        float t = duo_tanhf(u);
        float du = DUO_SQRT_2_OVER_PI * (1.0f + 3.0f * 0.044715f * x2);
        dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * x[i] * (1.0f - t * t) * du);
    }
}

// Quick GELU: x * sigmoid(1.702 x), the activation of OpenAI's CLIP text encoder.
DUO_KERNEL void duo_quick_gelu_forward(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] * duo_sigmoidf(1.702f * x[i]);
}

DUO_KERNEL void duo_quick_gelu_backward(const float *x, const float *dy, float *dx, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float s = duo_sigmoidf(1.702f * x[i]);
        dx[i] = dy[i] * (s + 1.702f * x[i] * s * (1.0f - s));
    }
}

// softplus(x) = log(1 + e^x), computed as max(x, 0) + log1p(e^-|x|) so it never overflows.
DUO_KERNEL void duo_softplus_forward(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float ax = x[i] < 0 ? -x[i] : x[i];
        y[i] = (x[i] > 0 ? x[i] : 0.0f) + duo_log1pf(duo_expf(-ax));
    }
}

DUO_KERNEL void duo_softplus_backward(const float *x, const float *dy, float *dx, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * duo_sigmoidf(x[i]);
}

// log sigmoid(x) = -softplus(-x): the DPO loss is -log sigmoid(logits) (Rafailov et al. 2023).
DUO_KERNEL void duo_logsigmoid_forward(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float ax = x[i] < 0 ? -x[i] : x[i];
        y[i] = (x[i] < 0 ? x[i] : 0.0f) - duo_log1pf(duo_expf(-ax));
    }
}

DUO_KERNEL void duo_logsigmoid_backward(const float *x, const float *dy, float *dx, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * duo_sigmoidf(-x[i]);
}

DUO_KERNEL void duo_exp(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = duo_expf(x[i]);
}
