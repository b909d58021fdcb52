// Binary elementwise ops, reductions and the AdamW update.
#include "CKernels.h"
#include "dispatch.h"

// The four broadcast cases get their own loops: a stride known to be 1 or 0 lets
// clang vectorize, a runtime stride does not.
#define DUO_BINARY_LOOPS(EXPR)                                                      \
    if (sa == 1 && sb == 1) { for (size_t i = 0; i < n; i++) { float x = a[i], z = b[i]; y[i] = EXPR; } } \
    else if (sa == 1) { float z = b[0]; for (size_t i = 0; i < n; i++) { float x = a[i]; y[i] = EXPR; } } \
    else if (sb == 1) { float x = a[0]; for (size_t i = 0; i < n; i++) { float z = b[i]; y[i] = EXPR; } } \
    else { float x = a[0], z = b[0]; for (size_t i = 0; i < n; i++) y[i] = EXPR; }

DUO_KERNEL void duo_binary(int op, const float *a, ptrdiff_t sa, const float *b, ptrdiff_t sb,
                float *y, size_t n) {
    switch (op) {
    case 0: DUO_BINARY_LOOPS(x + z); break;
    case 1: DUO_BINARY_LOOPS(x - z); break;
    case 2: DUO_BINARY_LOOPS(x * z); break;
    default: DUO_BINARY_LOOPS(x / z); break;
    }
}

DUO_KERNEL void duo_axpy(float alpha, const float *x, ptrdiff_t sx, float *y, size_t n) {
    if (sx == 1) {
        for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
    } else {
        float ax = alpha * x[0];
        for (size_t i = 0; i < n; i++) y[i] += ax;
    }
}

DUO_KERNEL void duo_add_bias_rows(float *y, const float *bias, size_t rows, size_t n) {
    for (size_t r = 0; r < rows; r++) {
        float *row = y + r * n;
        for (size_t i = 0; i < n; i++) row[i] += bias[i];
    }
}

DUO_KERNEL void duo_scale(float alpha, const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = alpha * x[i];
}

// Sums in 16 float lanes (vectorized), then in double: ~1e-7 relative error for the
// sizes we reduce, without the cost of a double-precision pass.
DUO_KERNEL double duo_sum(const float *x, size_t n) {
    double total = 0;
    size_t i = 0;
    while (i < n) {
        size_t end = n - i > 4096 ? i + 4096 : n;
        float lanes[16] = {0};
        for (; i + 16 <= end; i += 16)
            for (int l = 0; l < 16; l++) lanes[l] += x[i + l];
        for (; i < end; i++) lanes[0] += x[i];
        for (int l = 0; l < 16; l++) total += lanes[l];
    }
    return total;
}

DUO_KERNEL double duo_sum_squared_deviations(const float *x, size_t n, float center) {
    double total = 0;
    size_t i = 0;
    while (i < n) {
        size_t end = n - i > 4096 ? i + 4096 : n;
        float lanes[16] = {0};
        for (; i + 16 <= end; i += 16)
            for (int l = 0; l < 16; l++) {
                float c = x[i + l] - center;
                lanes[l] += c * c;
            }
        for (; i < end; i++) lanes[0] += (x[i] - center) * (x[i] - center);
        for (int l = 0; l < 16; l++) total += lanes[l];
    }
    return total;
}

// AdamW (Loshchilov & Hutter 2019, Algorithm 2): decoupled decay theta -= lr * wd * theta,
// then the Adam step with bias-corrected moments, as torch.optim.AdamW does.
DUO_KERNEL void duo_adamw_step(float *param, const float *grad, float *m, float *v, size_t n, float lr,
                    float beta1, float beta2, float eps, float weight_decay,
                    float bias_correction1, float bias_correction2) {
    float decay = 1.0f - lr * weight_decay;
    float step = lr / bias_correction1;
    float inv_sqrt_bc2 = 1.0f / __builtin_sqrtf(bias_correction2);
    for (size_t i = 0; i < n; i++) {
        float g = grad[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * g;
        v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
        float denom = __builtin_sqrtf(v[i]) * inv_sqrt_bc2 + eps;
        param[i] = param[i] * decay - step * m[i] / denom;
    }
}
