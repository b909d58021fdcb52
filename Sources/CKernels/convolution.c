// im2col / col2im for convolution as GEMM, and nearest 2x upsampling.
#include <string.h>

#include "CKernels.h"
#include "dispatch.h"

// cols row r = (c, ky, kx) holds, for every output pixel (oy, ox), the input value at
// (oy * stride - pad + ky, ox * stride - pad + kx), or 0 in the padding.
DUO_KERNEL void duo_im2col(const duo_conv_shape *s, const float *x, float *cols, size_t columns,
                           size_t row_begin, size_t row_end) {
    for (size_t r = row_begin; r < row_end; r++) {
        size_t c = r / (s->kh * s->kw), ky = (r / s->kw) % s->kh, kx = r % s->kw;
        const float *xc = x + c * s->H * s->W;
        float *row = cols + r * columns;
        for (size_t oy = 0; oy < s->Ho; oy++) {
            float *out = row + oy * s->Wo;
            ptrdiff_t iy = (ptrdiff_t)(oy * s->stride + ky) - (ptrdiff_t)s->pad;
            if (iy < 0 || iy >= (ptrdiff_t)s->H) {
                memset(out, 0, sizeof(float) * s->Wo);
                continue;
            }
            const float *xrow = xc + iy * s->W;
            ptrdiff_t shift = (ptrdiff_t)kx - (ptrdiff_t)s->pad;
            if (s->stride == 1) {
                // contiguous: out[ox] = xrow[ox + shift] where in range
                size_t lo = shift < 0 ? (size_t)(-shift) : 0;
                size_t hi = (ptrdiff_t)s->W - shift < (ptrdiff_t)s->Wo ? (size_t)((ptrdiff_t)s->W - shift) : s->Wo;
                for (size_t ox = 0; ox < lo; ox++) out[ox] = 0.0f;
                if (hi > lo) memcpy(out + lo, xrow + lo + shift, sizeof(float) * (hi - lo));
                for (size_t ox = hi > lo ? hi : lo; ox < s->Wo; ox++) out[ox] = 0.0f;
            } else {
                for (size_t ox = 0; ox < s->Wo; ox++) {
                    ptrdiff_t ix = (ptrdiff_t)(ox * s->stride) + shift;
                    out[ox] = (ix >= 0 && ix < (ptrdiff_t)s->W) ? xrow[ix] : 0.0f;
                }
            }
        }
    }
}

// The adjoint of im2col: each input pixel sums the columns it was copied to. Split by
// input channel so that threads never write the same pixel.
DUO_KERNEL void duo_col2im(const duo_conv_shape *s, const float *cols, size_t columns, float *dx,
                           size_t c_begin, size_t c_end) {
    for (size_t c = c_begin; c < c_end; c++) {
        float *dxc = dx + c * s->H * s->W;
        for (size_t ky = 0; ky < s->kh; ky++)
            for (size_t kx = 0; kx < s->kw; kx++) {
                const float *row = cols + ((c * s->kh + ky) * s->kw + kx) * columns;
                ptrdiff_t shift = (ptrdiff_t)kx - (ptrdiff_t)s->pad;
                for (size_t oy = 0; oy < s->Ho; oy++) {
                    ptrdiff_t iy = (ptrdiff_t)(oy * s->stride + ky) - (ptrdiff_t)s->pad;
                    if (iy < 0 || iy >= (ptrdiff_t)s->H) continue;
                    float *drow = dxc + iy * s->W;
                    const float *in = row + oy * s->Wo;
                    if (s->stride == 1) {
                        size_t lo = shift < 0 ? (size_t)(-shift) : 0;
                        size_t hi = (ptrdiff_t)s->W - shift < (ptrdiff_t)s->Wo ? (size_t)((ptrdiff_t)s->W - shift) : s->Wo;
                        for (size_t ox = lo; ox < hi; ox++) drow[ox + shift] += in[ox];
                    } else {
                        for (size_t ox = 0; ox < s->Wo; ox++) {
                            ptrdiff_t ix = (ptrdiff_t)(ox * s->stride) + shift;
                            if (ix >= 0 && ix < (ptrdiff_t)s->W) drow[ix] += in[ox];
                        }
                    }
                }
            }
    }
}

DUO_KERNEL void duo_upsample_nearest2x_forward(const float *x, float *y, size_t H, size_t W,
                                    size_t plane_begin, size_t plane_end) {
    for (size_t p = plane_begin; p < plane_end; p++) {
        const float *xp = x + p * H * W;
        float *yp = y + p * 4 * H * W;
        for (size_t i = 0; i < H; i++) {
            float *r0 = yp + (2 * i) * 2 * W, *r1 = r0 + 2 * W;
            for (size_t j = 0; j < W; j++) r0[2 * j] = r0[2 * j + 1] = xp[i * W + j];
            memcpy(r1, r0, sizeof(float) * 2 * W);
        }
    }
}

// Each input pixel receives the sum of the gradients of its four copies.
DUO_KERNEL void duo_upsample_nearest2x_backward(const float *dy, float *dx, size_t H, size_t W,
                                     size_t plane_begin, size_t plane_end) {
    for (size_t p = plane_begin; p < plane_end; p++) {
        const float *dyp = dy + p * 4 * H * W;
        float *dxp = dx + p * H * W;
        for (size_t i = 0; i < H; i++) {
            const float *r0 = dyp + (2 * i) * 2 * W, *r1 = r0 + 2 * W;
            for (size_t j = 0; j < W; j++)
                dxp[i * W + j] = r0[2 * j] + r0[2 * j + 1] + r1[2 * j] + r1[2 * j + 1];
        }
    }
}
