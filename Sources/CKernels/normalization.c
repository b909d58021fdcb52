// Softmax, group norm and layer norm, each with its backward pass.
#include "CKernels.h"
#include "dispatch.h"
#include "fastmath.h"

DUO_INLINE float row_sum(const float *x, size_t n) { return (float)duo_sum(x, n); }

DUO_INLINE float row_max(const float *x, size_t n) {
    float m = x[0];
    for (size_t i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

DUO_KERNEL void duo_softmax_forward(const float *x, float *y, size_t d, size_t row_begin, size_t row_end) {
    for (size_t r = row_begin; r < row_end; r++) {
        const float *xr = x + r * d;
        float *yr = y + r * d;
        float m = row_max(xr, d);
        for (size_t i = 0; i < d; i++) yr[i] = duo_expf(xr[i] - m);
        float inv = 1.0f / row_sum(yr, d);
        for (size_t i = 0; i < d; i++) yr[i] *= inv;
    }
}

// dx = y * (dy - <dy, y>)
DUO_KERNEL void duo_softmax_backward(const float *y, const float *dy, float *dx, size_t d,
                          size_t row_begin, size_t row_end) {
    for (size_t r = row_begin; r < row_end; r++) {
        const float *yr = y + r * d, *dyr = dy + r * d;
        float *dxr = dx + r * d;
        double dot = 0;
        for (size_t i = 0; i < d; i++) dot += yr[i] * dyr[i];
        for (size_t i = 0; i < d; i++) dxr[i] = yr[i] * (dyr[i] - (float)dot);
    }
}

// Two passes (mean, then centred variance) keep the variance accurate when |mean| >> std.
DUO_INLINE void moments(const float *x, size_t n, float *mean_out, float *var_out) {
    float mean = (float)(duo_sum(x, n) / (double)n);
    *mean_out = mean;
    *var_out = (float)(duo_sum_squared_deviations(x, n, mean) / (double)n);
}

// Group norm (Wu & He 2018): statistics over (C/G channels x S pixels) per sample and group.
// Channel c's normalization as one multiply-add, y = x scale + shift: the forward passes
// and the gradient of group norm + SiLU, which recomputes y, take it from here.
DUO_INLINE void group_norm_affine(const float *gamma, const float *beta, float mu, float rs,
                                  size_t ch, float *scale, float *shift) {
    *scale = rs * gamma[ch];
    *shift = beta[ch] - mu * *scale;
}

// The statistics of groups [bg_begin, bg_end), then y = f(x scale + shift) for each channel,
// f the identity or SiLU.
DUO_INLINE void group_norm_apply(const float *x, const float *gamma, const float *beta, float *y,
                                 float *mean, float *rstd, size_t C, size_t S, size_t G, float eps,
                                 size_t bg_begin, size_t bg_end, int silu) {
    size_t cpg = C / G;
    for (size_t bg = bg_begin; bg < bg_end; bg++) {
        size_t b = bg / G, g = bg % G;
        const float *xg = x + (b * C + g * cpg) * S;
        float *yg = y + (b * C + g * cpg) * S;
        float mu, var;
        moments(xg, cpg * S, &mu, &var);
        float rs = 1.0f / __builtin_sqrtf(var + eps);
        mean[bg] = mu;
        rstd[bg] = rs;
        for (size_t c = 0; c < cpg; c++) {
            float scale, shift;
            group_norm_affine(gamma, beta, mu, rs, g * cpg + c, &scale, &shift);
            const float *xc = xg + c * S;
            float *yc = yg + c * S;
            if (silu)
                for (size_t i = 0; i < S; i++) yc[i] = duo_siluf(xc[i] * scale + shift);
            else
                for (size_t i = 0; i < S; i++) yc[i] = xc[i] * scale + shift;
        }
    }
}

DUO_KERNEL void duo_group_norm_forward(const float *x, const float *gamma, const float *beta, float *y,
                            float *mean, float *rstd, size_t C, size_t S, size_t G, float eps,
                            size_t bg_begin, size_t bg_end) {
    group_norm_apply(x, gamma, beta, y, mean, rstd, C, S, G, eps, bg_begin, bg_end, 0);
}

// SiLU(group norm(x)) in one pass over the output: the normalized values are activated
// before they are stored, never written themselves.
DUO_KERNEL void duo_group_norm_silu_forward(const float *x, const float *gamma, const float *beta,
                                 float *y, float *mean, float *rstd, size_t C, size_t S,
                                 size_t G, float eps, size_t bg_begin, size_t bg_end) {
    group_norm_apply(x, gamma, beta, y, mean, rstd, C, S, G, eps, bg_begin, bg_end, 1);
}

// The gradient at the group norm's output from the one at SiLU's, dnorm = dy SiLU'(n), with
// n = x scale + shift recomputed from the saved statistics (the bits the forward pass had).
DUO_KERNEL void duo_group_norm_silu_gradient(const float *x, const float *gamma, const float *beta,
                                  const float *mean, const float *rstd, const float *dy,
                                  float *dnorm, size_t C, size_t S, size_t G, size_t bg_begin,
                                  size_t bg_end) {
    size_t cpg = C / G;
    for (size_t bg = bg_begin; bg < bg_end; bg++) {
        size_t b = bg / G, g = bg % G;
        for (size_t c = 0; c < cpg; c++) {
            size_t ch = g * cpg + c, offset = (b * C + ch) * S;
            float scale, shift;
            group_norm_affine(gamma, beta, mean[bg], rstd[bg], ch, &scale, &shift);
            const float *xc = x + offset, *dyc = dy + offset;
            float *dc = dnorm + offset;
            for (size_t i = 0; i < S; i++) dc[i] = duo_silu_gradient(xc[i] * scale + shift, dyc[i]);
        }
    }
}

// With xhat = (x - mean) rstd and g = dy * gamma over the N elements of a group:
// dx = rstd (g - mean(g) - xhat mean(g xhat)); dgamma = sum dy xhat; dbeta = sum dy.
DUO_KERNEL void duo_group_norm_backward(const float *x, const float *gamma, const float *mean,
                             const float *rstd, const float *dy, float *dx,
                             float *dgamma_partial, float *dbeta_partial, size_t C, size_t S,
                             size_t G, size_t bg_begin, size_t bg_end) {
    size_t cpg = C / G;
    for (size_t bg = bg_begin; bg < bg_end; bg++) {
        size_t b = bg / G, g = bg % G;
        float mu = mean[bg], rs = rstd[bg];
        double sum_g = 0, sum_gxhat = 0;
        for (size_t c = 0; c < cpg; c++) {
            size_t ch = g * cpg + c;
            const float *xc = x + (b * C + ch) * S, *dyc = dy + (b * C + ch) * S;
            float sdy = 0, sdyx = 0;
            for (size_t i = 0; i < S; i++) {
                sdy += dyc[i];
                sdyx += dyc[i] * xc[i];
            }
            // sum dy xhat = rstd (sum dy x - mean sum dy)
            float sdyxhat = rs * (sdyx - mu * sdy);
            dgamma_partial[b * C + ch] = sdyxhat;
            dbeta_partial[b * C + ch] = sdy;
            sum_g += (double)gamma[ch] * sdy;
            sum_gxhat += (double)gamma[ch] * sdyxhat;
        }
        float n = (float)(cpg * S);
        float mean_g = (float)(sum_g / n), mean_gxhat = (float)(sum_gxhat / n);
        for (size_t c = 0; c < cpg; c++) {
            size_t ch = g * cpg + c;
            const float *xc = x + (b * C + ch) * S, *dyc = dy + (b * C + ch) * S;
            float *dxc = dx + (b * C + ch) * S;
            float gm = gamma[ch];
            for (size_t i = 0; i < S; i++) {
                float xhat = (xc[i] - mu) * rs;
                dxc[i] = rs * (dyc[i] * gm - mean_g - xhat * mean_gxhat);
            }
        }
    }
}

// Layer norm (Ba et al. 2016) over the last dimension.
DUO_KERNEL void duo_layer_norm_forward(const float *x, const float *gamma, const float *beta, float *y,
                            float *mean, float *rstd, size_t D, float eps, size_t row_begin,
                            size_t row_end) {
    for (size_t r = row_begin; r < row_end; r++) {
        const float *xr = x + r * D;
        float *yr = y + r * D;
        float mu, var;
        moments(xr, D, &mu, &var);
        float rs = 1.0f / __builtin_sqrtf(var + eps);
        mean[r] = mu;
        rstd[r] = rs;
        for (size_t i = 0; i < D; i++) yr[i] = (xr[i] - mu) * rs * gamma[i] + beta[i];
    }
}

DUO_KERNEL void duo_layer_norm_backward(const float *x, const float *gamma, const float *mean,
                             const float *rstd, const float *dy, float *dx, float *dgamma,
                             float *dbeta, size_t D, size_t row_begin, size_t row_end) {
    for (size_t r = row_begin; r < row_end; r++) {
        const float *xr = x + r * D, *dyr = dy + r * D;
        float *dxr = dx + r * D;
        float mu = mean[r], rs = rstd[r];
        float sum_g = 0, sum_gxhat = 0;
        for (size_t i = 0; i < D; i++) {
            float xhat = (xr[i] - mu) * rs;
            float g = dyr[i] * gamma[i];
            sum_g += g;
            sum_gxhat += g * xhat;
            dgamma[i] += dyr[i] * xhat;
            dbeta[i] += dyr[i];
        }
        float mean_g = sum_g / (float)D, mean_gxhat = sum_gxhat / (float)D;
        for (size_t i = 0; i < D; i++) {
            float xhat = (xr[i] - mu) * rs;
            dxr[i] = rs * (dyr[i] * gamma[i] - mean_g - xhat * mean_gxhat);
        }
    }
}
