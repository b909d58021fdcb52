// Half-precision to float conversion for loading fp16/bf16 checkpoints: with
// -march=native clang turns the F16 loop into vcvtph2ps (F16C), 8 or 16 at a time.
#include "CKernels.h"
#include "dispatch.h"

DUO_KERNEL void duo_f16_to_f32(const uint16_t *src, float *dst, size_t n) {
    const _Float16 *half = (const _Float16 *)src;
    for (size_t i = 0; i < n; i++) dst[i] = (float)half[i];
}

// bfloat16 is the top half of a float32.
DUO_KERNEL void duo_bf16_to_f32(const uint16_t *src, float *dst, size_t n) {
    uint32_t *out = (uint32_t *)dst;
    for (size_t i = 0; i < n; i++) out[i] = (uint32_t)src[i] << 16;
}
