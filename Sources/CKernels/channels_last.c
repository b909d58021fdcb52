// Layout changes between duo's NCHW float32 images and the channels-last (NHWC) ones that
// oneDNN's convolutions run fastest on (onednn_conv.c). Each is a transpose of one image's
// [C, P] plane (P = H·W pixels), in 16 x 16 blocks so that both sides stay in cache lines.
#include "CKernels.h"
#include "bf16_tiles.h"
#include "dispatch.h"

enum { BLOCK = 16 };

// out [P, C] (bf16) = x [C, P] rounded, for pixels p_begin..<p_end.
DUO_KERNEL void duo_channels_last_bf16(const float *x, uint16_t *out, size_t C, size_t P,
                                       size_t p_begin, size_t p_end) {
    for (size_t p0 = p_begin; p0 < p_end; p0 += BLOCK) {
        size_t p1 = p0 + BLOCK < p_end ? p0 + BLOCK : p_end;
        for (size_t c0 = 0; c0 < C; c0 += BLOCK) {
            size_t c1 = c0 + BLOCK < C ? c0 + BLOCK : C;
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
            for (size_t c = c0; c < c1; c++)
                for (size_t p = p0; p < p1; p++) y[c * P + p] = src[p * C + c];
        }
    }
}

// out = x rounded to bf16, for elements begin..<end (a linear layer's rows for oneDNN).
DUO_KERNEL void duo_round_bf16(const float *x, uint16_t *out, size_t begin, size_t end) {
    for (size_t i = begin; i < end; i++) out[i] = bf16_round(x[i]);
}
