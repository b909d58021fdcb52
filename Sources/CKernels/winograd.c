// Winograd F(2x2, 3x3) transforms for 3x3 stride-1 convolutions with padding 1 (Lavin &
// Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016, eq. 8):
//
//   Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
//
// for every 2x2 output tile Y, its 4x4 input patch d and the 3x3 kernel g. The 16
// element-wise products, summed over input channels, are 16 GEMMs
// M[ξ] [O, tiles] = U[ξ] [O, C] x V[ξ] [C, tiles], done by the caller; here are the three
// transforms. A tile's products take 16 multiplies where the direct convolution takes 36.
//
//   Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//   G  = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
//   Aᵀ = [1 1 1 0; 0 1 -1 -1]
#include <stdlib.h>
#include <string.h>

#include "CKernels.h"
#include "dispatch.h"

// U[ξ][o][c] = (G g Gᵀ)[ξ] for g = w[o][c] ([O, C, 3, 3]); with `transposed_flipped`,
// g = w[c][o] rotated by 180° ([C, O, 3, 3] read as the kernel of the adjoint, the
// convolution that takes dY to dX). Inlined with a constant flag: two loops over c that
// vectorize.
DUO_INLINE void weights_row(const float *restrict w, float *restrict U, size_t O, size_t C, size_t o,
                               int transposed_flipped) {
    size_t plane = O * C;
    for (size_t c = 0; c < C; c++) {
        const float *src = transposed_flipped ? w + (c * O + o) * 9 : w + (o * C + c) * 9;
        float g[9];
        for (int k = 0; k < 9; k++) g[k] = transposed_flipped ? src[8 - k] : src[k];
        float t[4][3];  // G g
        for (int j = 0; j < 3; j++) {
            t[0][j] = g[j];
            t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
            t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
            t[3][j] = g[6 + j];
        }
        float *u = U + o * C + c;
        for (int i = 0; i < 4; i++) {  // (G g) Gᵀ
            u[(4 * i + 0) * plane] = t[i][0];
            u[(4 * i + 1) * plane] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
            u[(4 * i + 2) * plane] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
            u[(4 * i + 3) * plane] = t[i][2];
        }
    }
}

DUO_KERNEL void duo_winograd_weights(const float *w, float *U, size_t O, size_t C,
                          int transposed_flipped) {
    for (size_t o = 0; o < O; o++) {
        if (transposed_flipped)
            weights_row(w, U, O, C, o, 1);
        else
            weights_row(w, U, O, C, o, 0);
    }
}

// Rows of tiles are short (16 tiles at 32x32), so the loops over them ask for 8-wide
// vectors: the default 16-wide AVX-512 ones would leave them to scalar remainder loops.
#define SHORT_VECTORS _Pragma("clang loop vectorize_width(8) interleave_count(1)")

// V[ξ][c][n * T + t] = (Bᵀ d B)[ξ] for the tiles t of images n of x [images, C, H, W]
// (H and W even, T = H/2 * W/2); V's rows are `columns` long (images * T or more, when
// V holds other images' tiles too). Per channel plane: the zero-padded image is read as its
// even and odd columns, B combines the columns of every padded row, then Bᵀ combines
// rows; every vector runs over consecutive tiles.
DUO_KERNEL void duo_winograd_input(const float *x, float *V, size_t images, size_t C, size_t H,
                        size_t W, size_t columns) {
    size_t tilesW = W / 2, T = (H / 2) * tilesW, N = columns, plane = C * N;
    size_t rows = H + 2, evenW = tilesW + 1;
    float *even = malloc(sizeof(float) * (2 * rows * evenW + 4 * rows * tilesW));
    float *odd = even + rows * evenW, *dB = odd + rows * evenW;  // dB: [4][rows][tilesW]
    for (size_t n = 0; n < images; n++)
        for (size_t c = 0; c < C; c++) {
            const float *xc = x + (n * C + c) * H * W;
            // padded[y][k] = x[y - 1][k - 1]; even[y][k] = padded[y][2k], odd[y][k] = padded[y][2k + 1].
            for (size_t y = 0; y < rows; y++) {
                float *e = even + y * evenW, *o = odd + y * evenW;
                if (y == 0 || y == rows - 1) {
                    memset(e, 0, sizeof(float) * evenW);
                    memset(o, 0, sizeof(float) * evenW);
                    continue;
                }
                const float *row = xc + (y - 1) * W;
                e[0] = 0.0f;
                o[tilesW] = 0.0f;
                SHORT_VECTORS
                for (size_t k = 0; k < tilesW; k++) {
                    e[k + 1] = row[2 * k + 1];
                    o[k] = row[2 * k];
                }
            }
            for (size_t y = 0; y < rows; y++) {  // d B
                const float *e = even + y * evenW, *o = odd + y * evenW;
                float *b0 = dB + y * tilesW, *b1 = b0 + rows * tilesW, *b2 = b1 + rows * tilesW,
                      *b3 = b2 + rows * tilesW;
                SHORT_VECTORS
                for (size_t t = 0; t < tilesW; t++) {
                    b0[t] = e[t] - e[t + 1];
                    b1[t] = o[t] + e[t + 1];
                    b2[t] = e[t + 1] - o[t];
                    b3[t] = o[t] - o[t + 1];
                }
            }
            for (size_t j = 0; j < 4; j++)  // Bᵀ (d B)
                for (size_t ty = 0; ty < H / 2; ty++) {
                    const float *r0 = dB + (j * rows + 2 * ty) * tilesW, *r1 = r0 + tilesW,
                                *r2 = r1 + tilesW, *r3 = r2 + tilesW;
                    float *v0 = V + j * plane + c * N + n * T + ty * tilesW;
                    float *v1 = v0 + 4 * plane, *v2 = v1 + 4 * plane, *v3 = v2 + 4 * plane;
                    SHORT_VECTORS
                    for (size_t t = 0; t < tilesW; t++) {
                        v0[t] = r0[t] - r2[t];
                        v1[t] = r1[t] + r2[t];
                        v2[t] = r2[t] - r1[t];
                        v3[t] = r1[t] - r3[t];
                    }
                }
        }
    free(even);
}

// y [images, O, H, W] = Aᵀ M[ξ] A for every tile, plus bias[o] when bias is not NULL;
// M is [16][O][columns] as the GEMMs left it.
DUO_KERNEL void duo_winograd_output(const float *M, const float *bias, float *y, size_t images,
                         size_t O, size_t H, size_t W, size_t columns) {
    size_t tilesW = W / 2, T = (H / 2) * tilesW, N = columns, plane = O * N;
    float *left = malloc(sizeof(float) * 2 * tilesW), *right = left + tilesW;
    for (size_t n = 0; n < images; n++)
        for (size_t o = 0; o < O; o++) {
            float b = bias ? bias[o] : 0.0f;
            float *yo = y + (n * O + o) * H * W;
            for (size_t ty = 0; ty < H / 2; ty++) {
                const float *m = M + o * N + n * T + ty * tilesW;  // M[ξ] at m + ξ * plane
                for (size_t i = 0; i < 2; i++) {
                    // Row i of Aᵀ M, with Mᵣ row r of the 4x4: M₀ + (M₁ + M₂) for i = 0,
                    // M₁ − (M₂ + M₃) for i = 1.
                    const float *p0 = m + (4 * i) * plane, *p1 = p0 + 4 * plane, *p2 = p1 + 4 * plane;
                    float sign = i == 0 ? 1.0f : -1.0f;
                    SHORT_VECTORS
                    for (size_t t = 0; t < tilesW; t++) {
                        float a[4];
                        for (size_t j = 0; j < 4; j++)
                            a[j] = p0[j * plane + t] + sign * (p1[j * plane + t] + p2[j * plane + t]);
                        left[t] = a[0] + a[1] + a[2] + b;
                        right[t] = a[1] - a[2] - a[3] + b;
                    }
                    float *yr = yo + (2 * ty + i) * W;
                    SHORT_VECTORS
                    for (size_t t = 0; t < tilesW; t++) {
                        yr[2 * t] = left[t];
                        yr[2 * t + 1] = right[t];
                    }
                }
            }
        }
    free(left);
}

// The weight gradient by the same tiles: y = Aᵀ [(G g Gᵀ) ⊙ V] A is linear in g, so
//
//   dg = Gᵀ [ Σ_tiles (A dY Aᵀ) ⊙ V ] G
//
// with dY a tile's 2x2 output gradient. `duo_winograd_output_adjoint` writes
// D[ξ][o][n * T + t] = (A dY Aᵀ)[ξ] for dY [images, O, H, W]; the sum over tiles is 16 GEMMs
// dU[ξ] [O, C] = D[ξ] [O, tiles] x V[ξ]ᵀ [tiles, C] (the caller's), and
// `duo_winograd_weights_adjoint` takes dU [16, O, C] to dW [O, C, 3, 3].
DUO_KERNEL void duo_winograd_output_adjoint(const float *dy, float *D, size_t images, size_t O,
                                 size_t H, size_t W, size_t columns) {
    size_t tilesW = W / 2, T = (H / 2) * tilesW, N = columns, plane = O * N;
    float *even = malloc(sizeof(float) * 2 * tilesW), *odd = even + tilesW;
    for (size_t n = 0; n < images; n++)
        for (size_t o = 0; o < O; o++) {
            const float *yo = dy + (n * O + o) * H * W;
            for (size_t ty = 0; ty < H / 2; ty++) {
                // A dY: rows (p, q), (p + r, q + s), (p − r, q − s), (−r, −s) for the tile
                // [p q; r s]; then each row (u, v) times Aᵀ: (u, u + v, u − v, −v).
                const float *top = yo + 2 * ty * W, *bottom = top + W;
                float *d = D + o * N + n * T + ty * tilesW;  // D[ξ] at d + ξ * plane
                for (size_t i = 0; i < 4; i++) {
                    SHORT_VECTORS
                    for (size_t t = 0; t < tilesW; t++) {
                        float p = top[2 * t], q = top[2 * t + 1], r = bottom[2 * t], s = bottom[2 * t + 1];
                        even[t] = i == 0 ? p : i == 1 ? p + r : i == 2 ? p - r : -r;
                        odd[t] = i == 0 ? q : i == 1 ? q + s : i == 2 ? q - s : -s;
                    }
                    float *d0 = d + (4 * i) * plane, *d1 = d0 + plane, *d2 = d1 + plane, *d3 = d2 + plane;
                    SHORT_VECTORS
                    for (size_t t = 0; t < tilesW; t++) {
                        d0[t] = even[t];
                        d1[t] = even[t] + odd[t];
                        d2[t] = even[t] - odd[t];
                        d3[t] = -odd[t];
                    }
                }
            }
        }
    free(even);
}

DUO_KERNEL void duo_winograd_weights_adjoint(const float *dU, float *dW, size_t O, size_t C) {
    size_t plane = O * C;
    for (size_t o = 0; o < O; o++)
        for (size_t c = 0; c < C; c++) {
            float u[4][4];
            for (int xi = 0; xi < 16; xi++) u[xi / 4][xi % 4] = dU[xi * plane + o * C + c];
            float t[3][4];  // Gᵀ dU, Gᵀ's rows (1, ½, ½, 0), (0, ½, −½, 0), (0, ½, ½, 1)
            for (int j = 0; j < 4; j++) {
                t[0][j] = u[0][j] + 0.5f * (u[1][j] + u[2][j]);
                t[1][j] = 0.5f * (u[1][j] - u[2][j]);
                t[2][j] = 0.5f * (u[1][j] + u[2][j]) + u[3][j];
            }
            float *g = dW + (o * C + c) * 9;
            for (int i = 0; i < 3; i++) {  // (Gᵀ dU) G
                g[3 * i + 0] = t[i][0] + 0.5f * (t[i][1] + t[i][2]);
                g[3 * i + 1] = 0.5f * (t[i][1] - t[i][2]);
                g[3 * i + 2] = 0.5f * (t[i][1] + t[i][2]) + t[i][3];
            }
        }
}
