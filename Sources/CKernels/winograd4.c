// Winograd F(4x4, 3x3) transforms for 3x3 stride-1 convolutions with padding 1 on H, W
// divisible by 4 (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR
// 2016, section 4.2, with the interpolation points 0, ±1, ±2):
//
//   Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
//
// for every 4x4 output tile Y, its 6x6 input patch d and the 3x3 kernel g. The 36 products,
// summed over input channels, are 36 GEMMs M[ξ] [O, tiles] = U[ξ] [O, C] x V[ξ] [C, tiles]
// (the caller's); a tile's products take 36 multiplies per 16 outputs where F(2x2, 3x3)
// takes 64 and the direct convolution 144. The larger constants round more: the result
// differs from the direct sum by about ten float32 roundings of its terms instead of one.
//
//   Bᵀ = [4  0 -5  0 1 0;  0 -4 -4  1 1 0;  0 4 -4 -1 1 0;
//         0 -2 -1  2 1 0;  0  2 -1 -2 1 0;  0 4  0 -5 0 1]
//   G  = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
//   Aᵀ = [1 1 1 1 1 0;  0 1 -1 2 -2 0;  0 1 1 4 4 0;  0 1 -1 8 -8 1]
#include <stdlib.h>
#include <string.h>

#include "CKernels.h"
#include "dispatch.h"

// Rows of tiles are 4 (16x16 images) or 8 (32x32) long: 4-wide vectors, so that neither
// falls to a scalar remainder loop.
#define TILE_VECTORS _Pragma("clang loop vectorize_width(4) interleave_count(1)")

// G v for a column v of 3: the 6 values of the kernel's transform along one axis.
DUO_INLINE void kernel_transform(float v0, float v1, float v2, float out[6]) {
    const float sixth = 1.0f / 6.0f, twelfth = 1.0f / 12.0f, twentyfourth = 1.0f / 24.0f;
    float even = twentyfourth * v0 + sixth * v2, odd = twelfth * v1;
    out[0] = 0.25f * v0;
    out[1] = -sixth * (v0 + v1 + v2);
    out[2] = -sixth * (v0 - v1 + v2);
    out[3] = even + odd;
    out[4] = even - odd;
    out[5] = v2;
}

// U[ξ][o][c] for one o and every c: straight-line code over c, so the loop vectorizes
// across channels (U's rows run over c). Inlined with a constant flag.
DUO_INLINE void weights4_row(const float *restrict w, float *restrict U, size_t O, size_t C, size_t o,
                             int transposed_flipped) {
    size_t plane = O * C;
    float *u = U + o * C;
    // The 36 planes are disjoint (plane = O * C), which the compiler cannot tell.
    _Pragma("clang loop vectorize(assume_safety)")
    for (size_t c = 0; c < C; c++) {
        const float *src = transposed_flipped ? w + (c * O + o) * 9 : w + (o * C + c) * 9;
        float g[9];
        for (int k = 0; k < 9; k++) g[k] = transposed_flipped ? src[8 - k] : src[k];
        float t[3][6];  // (G g)ᵀ: column j of g transformed
        for (int j = 0; j < 3; j++) kernel_transform(g[j], g[3 + j], g[6 + j], t[j]);
        for (int i = 0; i < 6; i++) {  // row i of G g, times Gᵀ
            float row[6];
            kernel_transform(t[0][i], t[1][i], t[2][i], row);
            for (int j = 0; j < 6; j++) u[(6 * i + j) * plane + c] = row[j];
        }
    }
}

// U[ξ][o][c] = (G g Gᵀ)[ξ] for g = w[o][c] ([O, C, 3, 3]); with `transposed_flipped`, g =
// w[c][o] rotated by 180° ([C, O, 3, 3] read as the kernel of the adjoint, dY to dX).
DUO_KERNEL void duo_winograd4_weights(const float *w, float *U, size_t O, size_t C,
                                      int transposed_flipped) {
    for (size_t o = 0; o < O; o++) {
        if (transposed_flipped)
            weights4_row(w, U, O, C, o, 1);
        else
            weights4_row(w, U, O, C, o, 0);
    }
}

// Bᵀ v for six values v0..v5 spaced along one axis, written to out0..out5.
#define INPUT_TRANSFORM(v0, v1, v2, v3, v4, v5, out0, out1, out2, out3, out4, out5) \
    do {                                                                            \
        float a_ = (v4) - 4.0f * (v2), b_ = (v3) - 4.0f * (v1);                       \
        float c_ = (v4) - (v2), d_ = 2.0f * ((v3) - (v1));                            \
        out0 = 4.0f * (v0) - 5.0f * (v2) + (v4);                                    \
        out1 = a_ + b_;                                                             \
        out2 = a_ - b_;                                                             \
        out3 = c_ + d_;                                                             \
        out4 = c_ - d_;                                                             \
        out5 = 4.0f * (v1) - 5.0f * (v3) + (v5);                                    \
    } while (0)

// V[ξ][c][n * T + t] = (Bᵀ d B)[ξ] for the tiles t of images n of x [images, C, H, W]
// (T = H/4 * W/4); V's rows are `columns` long. Per channel plane: each zero-padded row
// is split into its four column phases (a tile's six columns are phases 0-3 of tile t and
// phases 0-1 of tile t + 1), B combines them for every row at once, then Bᵀ combines each
// tile row's six rows; every vector runs over consecutive tiles.
DUO_KERNEL void duo_winograd4_input(const float *x, float *V, size_t images, size_t C,
                                    size_t H, size_t W, size_t columns) {
    size_t tilesW = W / 4, T = (H / 4) * tilesW, plane = C * columns;
    size_t rows = H + 2, stride = tilesW + 1, span = rows * stride;
    // phases [4][rows][tilesW + 1], dB [6][rows][tilesW + 1]
    float *phase = malloc(sizeof(float) * 10 * span), *dB = phase + 4 * span;
    for (size_t n = 0; n < images; n++)
        for (size_t c = 0; c < C; c++) {
            const float *xc = x + (n * C + c) * H * W;
            // phase[j][y][t] = padded[y][4t + j] = x[y - 1][4t + j - 1]
            for (size_t y = 0; y < rows; y++) {
                float *p0 = phase + y * stride, *p1 = p0 + span, *p2 = p1 + span, *p3 = p2 + span;
                if (y == 0 || y == rows - 1) {
                    for (int j = 0; j < 4; j++) memset(p0 + j * span, 0, sizeof(float) * stride);
                    continue;
                }
                const float *row = xc + (y - 1) * W;
                p0[0] = 0.0f;
                for (size_t t = 0; t < tilesW; t++) {
                    p0[t + 1] = row[4 * t + 3];
                    p1[t] = row[4 * t];
                    p2[t] = row[4 * t + 1];
                    p3[t] = row[4 * t + 2];
                }
                p1[tilesW] = p2[tilesW] = p3[tilesW] = 0.0f;
            }
            // d B over every row at once; the last entry of each row is not a tile's and is
            // not read again.
            const float *p0 = phase, *p1 = p0 + span, *p2 = p1 + span, *p3 = p2 + span;
            float *r0 = dB, *r1 = r0 + span, *r2 = r1 + span, *r3 = r2 + span, *r4 = r3 + span,
                  *r5 = r4 + span;
            for (size_t k = 0; k + 1 < span; k++)
                INPUT_TRANSFORM(p0[k], p1[k], p2[k], p3[k], p0[k + 1], p1[k + 1], r0[k], r1[k],
                                r2[k], r3[k], r4[k], r5[k]);
            // Bᵀ (d B) for each tile row
            for (size_t j = 0; j < 6; j++)
                for (size_t ty = 0; ty < H / 4; ty++) {
                    const float *s0 = dB + j * span + 4 * ty * stride, *s1 = s0 + stride,
                                *s2 = s1 + stride, *s3 = s2 + stride, *s4 = s3 + stride,
                                *s5 = s4 + stride;
                    float *v0 = V + j * plane + c * columns + n * T + ty * tilesW;
                    float *v1 = v0 + 6 * plane, *v2 = v1 + 6 * plane, *v3 = v2 + 6 * plane,
                          *v4 = v3 + 6 * plane, *v5 = v4 + 6 * plane;
                    TILE_VECTORS
                    for (size_t t = 0; t < tilesW; t++)
                        INPUT_TRANSFORM(s0[t], s1[t], s2[t], s3[t], s4[t], s5[t], v0[t], v1[t],
                                        v2[t], v3[t], v4[t], v5[t]);
                }
        }
    free(phase);
}

// Aᵀ v for six values v0..v5 along one axis: the four outputs.
#define OUTPUT_TRANSFORM(v0, v1, v2, v3, v4, v5, out0, out1, out2, out3) \
    do {                                                                \
        float s12_ = (v1) + (v2), d12_ = (v1) - (v2);                     \
        float s34_ = (v3) + (v4), d34_ = (v3) - (v4);                     \
        out0 = (v0) + s12_ + s34_;                                      \
        out1 = d12_ + 2.0f * d34_;                                      \
        out2 = s12_ + 4.0f * s34_;                                      \
        out3 = d12_ + 8.0f * d34_ + (v5);                               \
    } while (0)

// y [images, O, H, W] = Aᵀ M[ξ] A for every tile, plus bias[o] when bias is not NULL;
// M is [36][O][columns] as the GEMMs left it.
DUO_KERNEL void duo_winograd4_output(const float *M, const float *bias, float *y,
                                     size_t images, size_t O, size_t H, size_t W,
                                     size_t columns) {
    size_t tilesW = W / 4, T = (H / 4) * tilesW, plane = O * columns;
    float *s = malloc(sizeof(float) * (24 + 4) * T);  // Aᵀ M: [4][6][T]; then a row: [4][T]
    float *out = s + 24 * T;
    for (size_t n = 0; n < images; n++)
        for (size_t o = 0; o < O; o++) {
            float b = bias ? bias[o] : 0.0f;
            const float *m = M + o * columns + n * T;  // M[ξ] at m + ξ * plane
            for (size_t j = 0; j < 6; j++) {           // Aᵀ over the rows of every tile
                const float *m0 = m + j * plane, *m1 = m0 + 6 * plane, *m2 = m1 + 6 * plane,
                            *m3 = m2 + 6 * plane, *m4 = m3 + 6 * plane, *m5 = m4 + 6 * plane;
                float *s0 = s + j * T, *s1 = s0 + 6 * T, *s2 = s1 + 6 * T, *s3 = s2 + 6 * T;
                for (size_t k = 0; k < T; k++)
                    OUTPUT_TRANSFORM(m0[k], m1[k], m2[k], m3[k], m4[k], m5[k], s0[k], s1[k],
                                     s2[k], s3[k]);
            }
            float *yo = y + (n * O + o) * H * W;
            for (size_t i = 0; i < 4; i++) {  // (Aᵀ M) A: row i of every tile
                const float *s0 = s + 6 * i * T, *s1 = s0 + T, *s2 = s1 + T, *s3 = s2 + T,
                            *s4 = s3 + T, *s5 = s4 + T;
                float *o0 = out, *o1 = o0 + T, *o2 = o1 + T, *o3 = o2 + T;
                for (size_t k = 0; k < T; k++) {
                    OUTPUT_TRANSFORM(s0[k], s1[k], s2[k], s3[k], s4[k], s5[k], o0[k], o1[k],
                                     o2[k], o3[k]);
                    o0[k] += b;
                    o1[k] += b;
                    o2[k] += b;
                    o3[k] += b;
                }
                for (size_t ty = 0; ty < H / 4; ty++) {
                    float *yr = yo + (4 * ty + i) * W;
                    size_t first = ty * tilesW;
                    for (size_t t = 0; t < tilesW; t++) {
                        yr[4 * t] = o0[first + t];
                        yr[4 * t + 1] = o1[first + t];
                        yr[4 * t + 2] = o2[first + t];
                        yr[4 * t + 3] = o3[first + t];
                    }
                }
            }
        }
    free(s);
}
