// Branch-free float math that vectorizes (libm's expf/erff calls do not, without libmvec).
#ifndef DUO_FASTMATH_H
#define DUO_FASTMATH_H

#include <stdint.h>
#include <string.h>

#include "dispatch.h"

#define DUO_SQRT1_2 0.70710678118654752f
#define DUO_INV_SQRT_2PI 0.39894228040143268f
#define DUO_SQRT_2_OVER_PI 0.79788456080286536f

// e^x by range reduction x = n ln2 + r, |r| <= ln2/2, and a degree-6 minimax polynomial
// for e^r (Cephes expf coefficients); relative error about 2 ulp. Inputs are clamped so
// that 2^n stays a normal float: e^x underflows to ~1e-38 rather than 0 below -87.3.
DUO_INLINE float duo_expf(float x) {
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

DUO_INLINE float duo_sigmoidf(float x) { return 1.0f / (1.0f + duo_expf(-x)); }

// SiLU and its gradient, shared by the activation kernels and group norm + SiLU, which
// must give the same bits as the two ops one after the other.
DUO_INLINE float duo_siluf(float x) { return x * duo_sigmoidf(x); }
// dy times SiLU'(x), multiplied in this order (the order the kernels have always used).
DUO_INLINE float duo_silu_gradient(float x, float dy) {
    float s = duo_sigmoidf(x);
    return dy * s * (1.0f + x * (1.0f - s));
}

// tanh(x) = 1 - 2 / (e^{2x} + 1); exact limits at +-1 through the clamp in duo_expf.
DUO_INLINE float duo_tanhf(float x) { return 1.0f - 2.0f / (duo_expf(2.0f * x) + 1.0f); }

// erf by Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7), odd-extended to negative x.
DUO_INLINE float duo_erff(float x) {
    float ax = x < 0 ? -x : x;
    float t = 1.0f / (1.0f + 0.3275911f * ax);
    float poly = t * (0.254829592f +
                 t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
    float y = 1.0f - poly * duo_expf(-ax * ax);
    return x < 0 ? -y : y;
}

// log(1 + u) for u in [0, 1] (the softplus tail): log1p via the identity
// log1p(u) = log(w) * u / (w - 1) with w = 1 + u, which keeps precision for tiny u.
DUO_INLINE float duo_logf(float x) {
    // x > 0 finite: x = m 2^e with m in [sqrt(1/2), sqrt 2); log m by atanh series.
    int32_t bits;
    memcpy(&bits, &x, sizeof bits);
    int32_t e = ((bits >> 23) & 0xff) - 127;
    int32_t mbits = (bits & 0x007fffff) | 0x3f800000;
    float m;
    memcpy(&m, &mbits, sizeof m);
    if (m > 1.41421356f) { m *= 0.5f; e += 1; }
    float s = (m - 1.0f) / (m + 1.0f);
    float s2 = s * s;
    float series = s * (2.0f + s2 * (0.666666667f + s2 * (0.4f + s2 * (0.285714286f +
                   s2 * (0.222222222f + s2 * 0.181818182f)))));
    return (float)e * 0.693147180559945f + series;
}

DUO_INLINE float duo_log1pf(float u) {
    float w = 1.0f + u;
    float d = w - 1.0f;
    return d == 0.0f ? u : duo_logf(w) * (u / d);
}

#endif
