// A 16 x 16 transpose of 32-bit words held in 16 vectors (one AVX-512 register each), for
// kernels that turn rows into columns: attention's packing of P and dS, and the
// channels-last layout changes. Internal to CKernels.
#ifndef DUO_TRANSPOSE16_H
#define DUO_TRANSPOSE16_H

#include <stdint.h>

#include "dispatch.h"

typedef uint32_t v16w __attribute__((vector_size(64)));

// 16 vectors of 16 words transposed in place: r[i][l] becomes r[l][i]. Four rounds swap
// the off-diagonal blocks of 8, 4, 2 and 1 words between rows i and i + s: the new r[i]
// keeps a's lanes where l & s is 0 and takes b[l - s] elsewhere; the new r[i + s] takes
// a[l + s] where l & s is 0 and keeps b's lanes elsewhere.
DUO_INLINE void transpose16(v16w r[16]) {
    for (int i = 0; i < 16; i++) {
        if (i & 8) continue;
        v16w a = r[i], b = r[i + 8];
        r[i] = __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
        r[i + 8] = __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    }
    for (int i = 0; i < 16; i++) {
        if (i & 4) continue;
        v16w a = r[i], b = r[i + 4];
        r[i] = __builtin_shufflevector(a, b, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
        r[i + 4] = __builtin_shufflevector(a, b, 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
    }
    for (int i = 0; i < 16; i++) {
        if (i & 2) continue;
        v16w a = r[i], b = r[i + 2];
        r[i] = __builtin_shufflevector(a, b, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
        r[i + 2] = __builtin_shufflevector(a, b, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
    }
    for (int i = 0; i < 16; i++) {
        if (i & 1) continue;
        v16w a = r[i], b = r[i + 1];
        r[i] = __builtin_shufflevector(a, b, 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
        r[i + 1] = __builtin_shufflevector(a, b, 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
    }
}

#endif
