// Layout changes between duo's NCHW float32 images and the channels-last (NHWC) ones that
// oneDNN's convolutions run fastest on (onednn.c). Each is a transpose of one image's
// [C, P] plane (P = H·W pixels), in 16 x 16 blocks so that both sides stay in cache lines;
// a whole block is 16 vector loads, a transpose in registers and 16 vector stores.
#include "CKernels.h"
#include "bf16_tiles.h"
#include "dispatch.h"
#include "transpose16.h"

enum { BLOCK = 16 };

typedef uint32_t v16wu __attribute__((vector_size(64), aligned(4)));
typedef uint16_t v16h __attribute__((vector_size(32), aligned(2)));

// 16 rows of 16 floats at `stride` into r, transposed: r[i] is column i.
DUO_INLINE void load_transposed(const float *src, size_t stride, v16w r[16]) {
    for (int i = 0; i < 16; i++) r[i] = *(const v16wu *)(src + i * stride);
    transpose16(r);
}

// out [P, C] (bf16) = x [C, P] rounded, for pixels p_begin..<p_end.
DUO_KERNEL void duo_channels_last_bf16(const float *x, uint16_t *out, size_t C, size_t P,
                                       size_t p_begin, size_t p_end) {
    for (size_t p0 = p_begin; p0 < p_end; p0 += BLOCK) {
        size_t p1 = p0 + BLOCK < p_end ? p0 + BLOCK : p_end;
        for (size_t c0 = 0; c0 < C; c0 += BLOCK) {
            size_t c1 = c0 + BLOCK < C ? c0 + BLOCK : C;
            if (p1 - p0 == BLOCK && c1 - c0 == BLOCK) {
                v16w r[16];
                load_transposed(x + c0 * P + p0, P, r);
                for (int i = 0; i < 16; i++) {  // bf16_round on finite values; NaN stays NaN
                    v16w u = r[i], rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
                    v16w nan = (u & 0x7fffffffu) > 0x7f800000u;
                    rounded = (rounded & ~nan) | (((u >> 16) | 0x40u) & nan);
                    *(v16h *)(out + (p0 + i) * C + c0) = __builtin_convertvector(rounded, v16h);
                }
                continue;
            }
            for (size_t p = p0; p < p1; p++)
                for (size_t c = c0; c < c1; c++) out[p * C + c] = bf16_round(x[c * P + p]);
        }
    }
}

// y [C, P] = src [P, C], for channels c_begin..<c_end.
DUO_KERNEL void duo_channels_first(const float *src, float *y, size_t C, size_t P,
                                   size_t c_begin, size_t c_end) {
    for (size_t c0 = c_begin; c0 < c_end; c0 += BLOCK) {
        size_t c1 = c0 + BLOCK < c_end ? c0 + BLOCK : c_end;
        for (size_t p0 = 0; p0 < P; p0 += BLOCK) {
            size_t p1 = p0 + BLOCK < P ? p0 + BLOCK : P;
            if (p1 - p0 == BLOCK && c1 - c0 == BLOCK) {
                v16w r[16];
                load_transposed(src + p0 * C + c0, C, r);
                for (int i = 0; i < 16; i++) *(v16wu *)(y + (c0 + i) * P + p0) = r[i];
                continue;
            }
            for (size_t c = c0; c < c1; c++)
                for (size_t p = p0; p < p1; p++) y[c * P + p] = src[p * C + c];
        }
    }
}

// out = x rounded to bf16, for elements begin..<end (a linear layer's rows for oneDNN).
DUO_KERNEL void duo_round_bf16(const float *x, uint16_t *out, size_t begin, size_t end) {
    for (size_t i = begin; i < end; i++) out[i] = bf16_round(x[i]);
}
