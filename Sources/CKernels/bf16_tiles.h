// The bf16 GEMM's packed operands and tiles (gemm_bf16.c), for kernels that pack an operand
// once and multiply it many times (attention packs each head's keys and values once for all
// its query blocks). Internal to CKernels.
#ifndef DUO_BF16_TILES_H
#define DUO_BF16_TILES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dispatch.h"

// x rounded to bfloat16: to nearest, ties to even (as PyTorch's autocast and oneDNN round).
DUO_INLINE uint16_t bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    uint32_t quiet = (u >> 16) | 0x40;  // a NaN stays a NaN (rounding could make it infinite)
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? quiet : rounded);
}

// Words that op(X) [k, width] takes packed: as op(B) (for_b 1) in strips of 32 columns, as
// op(A) (for_b 0) in strips of 12 rows; each word a (even k, odd k) pair of bf16.
size_t duo_bf16_packed_words(long k, long width, int for_b);
// Packs the k x width operand whose element (kk, j) is src[kk * stride_k + j * stride_p];
// stride_k or stride_p must be 1.
void duo_bf16_pack(const float *src, ptrdiff_t stride_k, ptrdiff_t stride_p, long k, long width,
                   int for_b, uint32_t *dst);
// C [m, n] = alpha * A B + beta * C from packed A [m, k] and B [k, n]; C not read when beta is 0.
void duo_bf16_multiply_packed(long m, long n, long k, float alpha, const uint32_t *a,
                              const uint32_t *b, float beta, float *c, long ldc);

#endif
