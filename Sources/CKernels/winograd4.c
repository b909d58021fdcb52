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

typedef float row4 __attribute__((vector_size(16)));  // a tile row of 4 outputs (clang vectors)

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
// (T = H/4 * W/4); V's rows are `columns` long. Per channel plane: the plane is copied into
// a zero-padded one, B combines the six columns of every tile row of every tile (read at
// each tile's offset in the padded plane), then Bᵀ combines the six rows. Every loop runs
// over all the plane's tiles: rows of tiles are only 2-8 long.
DUO_KERNEL void duo_winograd4_input(const float *x, float *V, size_t images, size_t C,
                                    size_t H, size_t W, size_t columns) {
    size_t tilesW = W / 4, T = (H / 4) * tilesW, plane = C * columns, PW = W + 2;
    float *padded = calloc((H + 2) * PW + 36 * T, sizeof(float)), *dB = padded + (H + 2) * PW;
    int *offset = malloc(sizeof(int) * T);  // of each tile's top-left corner in `padded`
    for (size_t t = 0; t < T; t++) offset[t] = (int)(4 * (t / tilesW) * PW + 4 * (t % tilesW));
    for (size_t n = 0; n < images; n++)
        for (size_t c = 0; c < C; c++) {
            const float *xc = x + (n * C + c) * H * W;
            for (size_t y = 0; y < H; y++) memcpy(padded + (y + 1) * PW + 1, xc + y * W, sizeof(float) * W);
            for (size_t i = 0; i < 6; i++) {  // d B: row i of every tile
                const float *row = padded + i * PW;
                float *r0 = dB + 6 * i * T, *r1 = r0 + T, *r2 = r1 + T, *r3 = r2 + T, *r4 = r3 + T,
                      *r5 = r4 + T;
                // dB and the padded plane are apart (one allocation, two regions).
                _Pragma("clang loop vectorize(assume_safety)")
                for (size_t t = 0; t < T; t++) {
                    const float *d = row + offset[t];
                    INPUT_TRANSFORM(d[0], d[1], d[2], d[3], d[4], d[5], r0[t], r1[t], r2[t], r3[t],
                                    r4[t], r5[t]);
                }
            }
            for (size_t j = 0; j < 6; j++) {  // Bᵀ (d B): column j of every tile
                const float *s0 = dB + j * T, *s1 = s0 + 6 * T, *s2 = s1 + 6 * T, *s3 = s2 + 6 * T,
                            *s4 = s3 + 6 * T, *s5 = s4 + 6 * T;
                float *v0 = V + j * plane + c * columns + n * T;
                float *v1 = v0 + 6 * plane, *v2 = v1 + 6 * plane, *v3 = v2 + 6 * plane,
                      *v4 = v3 + 6 * plane, *v5 = v4 + 6 * plane;
                for (size_t t = 0; t < T; t++)
                    INPUT_TRANSFORM(s0[t], s1[t], s2[t], s3[t], s4[t], s5[t], v0[t], v1[t], v2[t],
                                    v3[t], v4[t], v5[t]);
            }
        }
    free(offset);
    free(padded);
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
    float *s = malloc(sizeof(float) * 24 * T);  // Aᵀ M: [4][6][T]
    // The columns of A, the weights of (Aᵀ M)[i][b] in row i of the tile's output.
    const row4 column0 = {1, 0, 0, 0}, column1 = {1, 1, 1, 1}, column2 = {1, -1, 1, -1},
                 column3 = {1, 2, 4, 8}, column4 = {1, -2, 4, -8}, column5 = {0, 0, 0, 1};
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
            // (Aᵀ M) A: row i of a tile is Σ_b (Aᵀ M)[i][b] times column b of A, the four
            // outputs as one short vector stored where the tile's row lies in y.
            float *yo = y + (n * O + o) * H * W;
            for (size_t i = 0; i < 4; i++) {
                const float *s0 = s + 6 * i * T, *s1 = s0 + T, *s2 = s1 + T, *s3 = s2 + T,
                            *s4 = s3 + T, *s5 = s4 + T;
                for (size_t ty = 0, k = 0; ty < H / 4; ty++) {
                    float *yr = yo + (4 * ty + i) * W;
                    for (size_t t = 0; t < tilesW; t++, k++) {
                        row4 row = b + s0[k] * column0 + s1[k] * column1 + s2[k] * column2 +
                                     s3[k] * column3 + s4[k] * column4 + s5[k] * column5;
                        memcpy(yr + 4 * t, &row, sizeof row);
                    }
                }
            }
        }
    free(s);
}
