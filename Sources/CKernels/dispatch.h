// Kernels are built for several x86-64 levels at once, and the dynamic loader picks the best
// one the CPU has when the library loads (GNU ifunc): one binary runs on any x86-64 CPU and
// uses AVX-512 or AVX2 with FMA where present, with no -march flag (which would tie the binary
// to the build machine's CPU, and which SwiftPM refuses in a package used as a dependency).
// Elsewhere (macOS, arm64) each kernel is built once for the target's baseline.
#ifndef DUO_DISPATCH_H
#define DUO_DISPATCH_H

#if defined(__x86_64__) && defined(__ELF__) && defined(__clang__) && !defined(DUO_NO_DISPATCH)
#define DUO_KERNEL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DUO_KERNEL
#endif

// Helpers are inlined into each kernel so that they are compiled for its level too (a call to
// a separate function would run the baseline build of it).
#define DUO_INLINE static inline __attribute__((always_inline))

// Multiply-adds may fuse (FMA) wherever the level has them, as -ffp-contract=fast allowed.
#pragma clang fp contract(fast)

#endif
