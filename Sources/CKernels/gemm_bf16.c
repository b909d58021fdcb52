// Mixed-precision GEMM: the operands are rounded to bfloat16 (round to nearest even, as
// PyTorch's autocast and oneDNN round), products and sums are float32. On CPUs with
// AVX512-BF16 the inner product is `vdpbf16ps`, which multiplies two bf16 pairs exactly and
// adds them into float32 lanes: twice the multiply-adds per instruction of an fp32 FMA.
//
// The layout follows the usual blocked GEMM (Goto and van de Geijn, "Anatomy of
// high-performance matrix multiplication", 2008): a KC-deep slice of B is packed into strips
// of NR columns, a block of A into strips of MR rows, and a register-tile kernel runs over
// strip pairs. Packing stores each (even k, odd k) pair of an element as one 32-bit word,
// low half first: the operand order `vdpbf16ps` reads.
#include "CKernels.h"
#include "bf16_tiles.h"
#include "dispatch.h"

#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum {
    MR = 12,    // rows of the register tile: 12 x 2 accumulators + 2 B vectors + 1 broadcast
    NR = 32,    // columns: two 16-lane vectors
    KC = 512,   // depth of a packed slice (even): an NR strip of B is 32 KB, L1's size
    MC = 192,   // rows of a packed A block (a multiple of MR): 192 KB, in L2
    NC = 2048,  // columns of a packed B slice: 2 MB, in L3
};

uint16_t duo_bf16_from_float(float x) { return bf16_round(x); }

DUO_INLINE uint32_t pair_word(float even, float odd) {
    return (uint32_t)bf16_round(even) | ((uint32_t)bf16_round(odd) << 16);
}

// bf16 of x[0..<count] into out (vectorizes: contiguous in and out).
DUO_INLINE void round_run(const float *x, long count, uint16_t *out) {
    for (long q = 0; q < count; q++) out[q] = bf16_round(x[q]);
}

// Packs the kc x width slice whose element (kk, j) is src[kk * stride_k + j * stride_p] into
// strips of `panel` elements: strip s holds words [p][panel] for pairs p < ceil(kc / 2), its
// columns past `width` and the odd k past `kc` zero. The callers' layouts have stride_p 1
// (two rows of the slice make a run of pairs) or stride_k 1 (each column is a run along k,
// whose bf16 halves, little-endian, are already the pair words).
DUO_KERNEL
static void pack(const float *src, ptrdiff_t stride_k, ptrdiff_t stride_p, long kc, long width,
                 long panel, uint32_t *dst) {
    long pairs = (kc + 1) / 2;
    uint16_t run[KC + 2];
    for (long s = 0; s * panel < width; s++) {
        uint32_t *strip = dst + s * panel * pairs;
        long cols = width - s * panel < panel ? width - s * panel : panel;
        const float *base = src + s * panel * stride_p;
        if (stride_p == 1) {
            for (long p = 0; p < pairs; p++) {
                const float *even = base + 2 * p * stride_k;
                uint32_t *out = strip + p * panel;
                if (2 * p + 1 < kc) {
                    const float *odd = even + stride_k;
                    for (long j = 0; j < cols; j++) out[j] = pair_word(even[j], odd[j]);
                } else {
                    for (long j = 0; j < cols; j++) out[j] = pair_word(even[j], 0);
                }
                for (long j = cols; j < panel; j++) out[j] = 0;
            }
        } else if (stride_k == 1) {
            for (long j = 0; j < cols; j++) {
                for (long q0 = 0; q0 < kc; q0 += KC) {  // in runs of KC values (KC is even)
                    long count = kc - q0 < KC ? kc - q0 : KC;
                    round_run(base + j * stride_p + q0, count, run);
                    run[count] = 0;  // the odd half of the last pair when kc is odd
                    for (long p = 0; p < (count + 1) / 2; p++)
                        memcpy(strip + (q0 / 2 + p) * panel + j, run + 2 * p, 4);
                }
            }
            for (long p = 0; p < pairs; p++)
                for (long j = cols; j < panel; j++) strip[p * panel + j] = 0;
        } else {
            for (long j = 0; j < cols; j++) {
                const float *column = base + j * stride_p;
                for (long p = 0; p < pairs; p++) {
                    float odd = 2 * p + 1 < kc ? column[(2 * p + 1) * stride_k] : 0;
                    strip[p * panel + j] = pair_word(column[2 * p * stride_k], odd);
                }
            }
            for (long p = 0; p < pairs; p++)
                for (long j = cols; j < panel; j++) strip[p * panel + j] = 0;
        }
    }
}

DUO_INLINE float bf16_low(uint32_t w) {
    uint32_t u = w << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

DUO_INLINE float bf16_high(uint32_t w) {
    uint32_t u = w & 0xffff0000u;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

typedef void (*tile_kernel)(long pairs, const uint32_t *a, const uint32_t *b, float *c, long ldc,
                            float alpha, float beta, int mr, int nr);

// C tile = alpha * A strip . B strip + beta * C tile, in plain C (any CPU): the reference
// the vector kernel is tested against, and the kernel where AVX512-BF16 is missing.
DUO_KERNEL
static void tile_portable(long pairs, const uint32_t *a, const uint32_t *b, float *c, long ldc,
                          float alpha, float beta, int mr, int nr) {
    float acc[MR][NR];
    memset(acc, 0, sizeof acc);
    for (long p = 0; p < pairs; p++) {
        const uint32_t *bp = b + p * NR;
        for (int r = 0; r < MR; r++) {
            float a0 = bf16_low(a[p * MR + r]), a1 = bf16_high(a[p * MR + r]);
            for (int j = 0; j < NR; j++) {
                // vdpbf16ps's order: the odd pair's product first, then the even one's.
                acc[r][j] += a1 * bf16_high(bp[j]);
                acc[r][j] += a0 * bf16_low(bp[j]);
            }
        }
    }
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < nr; j++)
            c[r * ldc + j] = alpha * acc[r][j] + (beta == 0 ? 0 : beta * c[r * ldc + j]);
}

#if defined(__x86_64__) && defined(__clang__)
#define DUO_HAS_BF16_KERNEL 1
#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

BF16_TARGET
static void tile_avx512bf16(long pairs, const uint32_t *a, const uint32_t *b, float *c, long ldc,
                            float alpha, float beta, int mr, int nr) {
    __m512 acc[MR][2];
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (long p = 0; p < pairs; p++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + p * NR);
        __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + p * NR + 16);
        for (int r = 0; r < MR; r++) {
            __m512bh ar = (__m512bh)_mm512_set1_epi32((int)a[p * MR + r]);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], ar, b0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], ar, b1);
        }
    }
    __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? 0xffff : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int r = 0; r < mr; r++) {
        float *row = c + r * ldc;
        __m512 y0 = _mm512_mul_ps(va, acc[r][0]), y1 = _mm512_mul_ps(va, acc[r][1]);
        if (beta != 0) {  // C is not read when beta is 0: it may hold anything
            y0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, row), y0);
            y1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, row + 16), y1);
        }
        _mm512_mask_storeu_ps(row, m0, y0);
        _mm512_mask_storeu_ps(row + 16, m1, y1);
    }
}
#endif

int duo_cpu_has_avx512bf16(void) {
#if DUO_HAS_BF16_KERNEL
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

// The packing buffers of this thread, made on its first call and kept: a fresh allocation of
// this size per call is a fresh mapping, whose page faults cost more than the packing.
static uint32_t *packing_buffer(int which, size_t bytes) {
    static _Thread_local uint32_t *buffers[2];
    if (!buffers[which]) {
        buffers[which] = aligned_alloc(64, bytes);
        if (!buffers[which]) abort();
    }
    return buffers[which];
}

static void gemm_bf16(tile_kernel tile, int trans_a, int trans_b, long m, long n, long k,
                      float alpha, const float *a, long lda, const float *b, long ldb, float beta,
                      float *c, long ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {  // C = beta * C
        for (long i = 0; i < m; i++)
            for (long j = 0; j < n; j++) c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j];
        return;
    }
    uint32_t *packed_b = packing_buffer(0, (size_t)(NC + NR) * (KC / 2) * 4);
    uint32_t *packed_a = packing_buffer(1, (size_t)(MC + MR) * (KC / 2) * 4);
    for (long jc = 0; jc < n; jc += NC) {
        long nc = n - jc < NC ? n - jc : NC;
        for (long pc = 0; pc < k; pc += KC) {
            long kc = k - pc < KC ? k - pc : KC, pairs = (kc + 1) / 2;
            // B's element (kk, j) is b[kk * ldb + j], or b[j * ldb + kk] transposed.
            pack(b + (trans_b ? jc * ldb + pc : pc * ldb + jc), trans_b ? 1 : ldb,
                 trans_b ? ldb : 1, kc, nc, NR, packed_b);
            float beta_here = pc == 0 ? beta : 1;  // later slices add to the first's sum
            for (long ic = 0; ic < m; ic += MC) {
                long mc = m - ic < MC ? m - ic : MC;
                // A's element (i, kk) is a[i * lda + kk], or a[kk * lda + i] transposed.
                pack(a + (trans_a ? pc * lda + ic : ic * lda + pc), trans_a ? lda : 1,
                     trans_a ? 1 : lda, kc, mc, MR, packed_a);
                for (long jr = 0; jr < nc; jr += NR) {
                    for (long ir = 0; ir < mc; ir += MR) {
                        tile(pairs, packed_a + ir * pairs, packed_b + jr * pairs,
                             c + (ic + ir) * ldc + jc + jr, ldc, alpha, beta_here,
                             (int)(mc - ir < MR ? mc - ir : MR), (int)(nc - jr < NR ? nc - jr : NR));
                    }
                }
            }
        }
    }
}

// The vector tile where the CPU has AVX512-BF16, else the portable one.
static tile_kernel best_tile(void) {
#if DUO_HAS_BF16_KERNEL
    static int native = -1;  // asked once; threads that race store the same answer
    int has = __atomic_load_n(&native, __ATOMIC_RELAXED);
    if (has < 0) {
        has = duo_cpu_has_avx512bf16();
        __atomic_store_n(&native, has, __ATOMIC_RELAXED);
    }
    return has ? tile_avx512bf16 : tile_portable;
#else
    return tile_portable;
#endif
}

void duo_gemm_bf16(int trans_a, int trans_b, long m, long n, long k, float alpha, const float *a,
                   long lda, const float *b, long ldb, float beta, float *c, long ldc) {
    gemm_bf16(best_tile(), trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

size_t duo_bf16_packed_words(long k, long width, int for_b) {
    long panel = for_b ? NR : MR;
    return (size_t)((width + panel - 1) / panel * panel * ((k + 1) / 2));
}

void duo_bf16_pack(const float *src, ptrdiff_t stride_k, ptrdiff_t stride_p, long k, long width,
                   int for_b, uint32_t *dst) {
    pack(src, stride_k, stride_p, k, width, for_b ? NR : MR, dst);
}

void duo_bf16_multiply_packed(long m, long n, long k, float alpha, const uint32_t *a,
                              const uint32_t *b, float beta, float *c, long ldc) {
    tile_kernel tile = best_tile();
    long pairs = (k + 1) / 2;
    // KC-deep slices, so that a strip of B stays in L1 while the strips of A pass it.
    for (long p0 = 0; p0 < pairs; p0 += KC / 2) {
        long np = pairs - p0 < KC / 2 ? pairs - p0 : KC / 2;
        for (long jr = 0; jr < n; jr += NR)
            for (long ir = 0; ir < m; ir += MR)
                tile(np, a + ir * pairs + p0 * MR, b + jr * pairs + p0 * NR, c + ir * ldc + jr, ldc,
                     alpha, p0 == 0 ? beta : 1, (int)(m - ir < MR ? m - ir : MR),
                     (int)(n - jr < NR ? n - jr : NR));
    }
}

void duo_gemm_bf16_portable(int trans_a, int trans_b, long m, long n, long k, float alpha,
                            const float *a, long lda, const float *b, long ldb, float beta,
                            float *c, long ldc) {
    gemm_bf16(tile_portable, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
