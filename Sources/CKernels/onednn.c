// bf16 convolutions and matrix products through oneDNN (Debian's libdnnl-dev, 2.x), opened
// at run time.
//
// On AVX512-BF16 CPUs oneDNN's direct convolution on channels-last (NHWC) bf16 images runs
// well above im2col + duo's bf16 GEMM (BENCHMARKS.md, "Mixed precision (bf16)"). duo keeps
// NCHW float32 tensors, so the caller hands in the image in NHWC bf16 and turns the NHWC
// float32 result back (channels_last.c); the weights are reordered into the layout the
// convolution asks for, once for frozen weights (duo_onednn_prepare_conv_weights). Linear
// layers' products take bf16 rows and the weights, likewise reordered once. Built only where the
// header is there, and the library is opened with dlopen on first use, so duo builds and
// runs without oneDNN and falls back to its own kernels (every entry point returns 0).
#include "CKernels.h"

#include <stddef.h>

#if defined(__has_include)
#if __has_include(<oneapi/dnnl/dnnl.h>) && __has_include(<dlfcn.h>)
#include <oneapi/dnnl/dnnl.h>
#if DNNL_VERSION_MAJOR == 2
#define DUO_HAS_ONEDNN 1
#endif
#endif
#endif

#if DUO_HAS_ONEDNN
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

// The entry points duo calls, looked up by name in libdnnl.so.2.
#define ONEDNN_FUNCTIONS(X)                                                                        \
    X(dnnl_engine_create)                                                                          \
    X(dnnl_stream_create)                                                                          \
    X(dnnl_stream_wait)                                                                            \
    X(dnnl_memory_desc_init_by_tag)                                                                \
    X(dnnl_memory_desc_get_size)                                                                   \
    X(dnnl_memory_desc_equal)                                                                      \
    X(dnnl_convolution_forward_desc_init)                                                          \
    X(dnnl_convolution_backward_data_desc_init)                                                    \
    X(dnnl_matmul_desc_init)                                                                       \
    X(dnnl_reorder_primitive_desc_create)                                                          \
    X(dnnl_primitive_desc_create)                                                                  \
    X(dnnl_primitive_desc_query_md)                                                                \
    X(dnnl_primitive_desc_destroy)                                                                 \
    X(dnnl_primitive_create)                                                                       \
    X(dnnl_primitive_execute)                                                                      \
    X(dnnl_primitive_destroy)                                                                      \
    X(dnnl_memory_create)                                                                          \
    X(dnnl_memory_destroy)

static struct {
#define DECLARE(name) __typeof__(name) *name;
    ONEDNN_FUNCTIONS(DECLARE)
#undef DECLARE
    void (*omp_set_num_threads)(int);
    __typeof__(dnnl_sgemm) *dnnl_sgemm;
    dnnl_engine_t engine;
    int loaded;
} lib;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static void load(void) {
    // libgomp's idle threads spin after each parallel region unless told otherwise; on two
    // cores that spinning takes the CPU from duo's own threads between convolutions. libgomp
    // reads the variable when it loads; it is unset again after, so that the processes duo
    // starts (the PyTorch peers of duo-bench, external detectors) run as their user set them.
    int set_here = getenv("OMP_WAIT_POLICY") == NULL;
    if (set_here) setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
    void *handle = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (set_here) unsetenv("OMP_WAIT_POLICY");
    if (!handle) return;
#define LOOKUP(name)                                                                               \
    if (!(lib.name = (__typeof__(name) *)dlsym(handle, #name))) return;
    ONEDNN_FUNCTIONS(LOOKUP)
#undef LOOKUP
    lib.omp_set_num_threads = (void (*)(int))dlsym(handle, "omp_set_num_threads");
    lib.dnnl_sgemm = (__typeof__(dnnl_sgemm) *)dlsym(handle, "dnnl_sgemm");
    if (lib.dnnl_engine_create(&lib.engine, dnnl_cpu, 0) != dnnl_success) return;
    lib.loaded = 1;
}

// This thread's stream: data-parallel shards call oneDNN from their own threads at once,
// and a stream is not made to be shared between threads.
static dnnl_stream_t stream(void) {
    static _Thread_local dnnl_stream_t mine;
    if (!mine && lib.dnnl_stream_create(&mine, lib.engine, dnnl_stream_default_flags) !=
                     dnnl_success)
        mine = NULL;
    return mine;
}

static int available(void) {
    pthread_once(&load_once, load);
    return lib.loaded;
}

// Scratch memory of this thread for weights reordered per call (trainable ones), kept
// between calls: a fresh mapping per call costs page faults.
static void *scratch(size_t bytes) {
    static _Thread_local void *buffer;
    static _Thread_local size_t size;
    if (size < bytes) {
        free(buffer);
        buffer = aligned_alloc(64, (bytes + 63) / 64 * 64);
        size = buffer ? bytes : 0;
    }
    return buffer;
}

// A memory object over `data` (which the caller owns) with the layout of `md`.
static dnnl_memory_t wrap(const dnnl_memory_desc_t *md, const void *data) {
    dnnl_memory_t m = NULL;
    if (lib.dnnl_memory_create(&m, md, lib.engine, (void *)data) != dnnl_success) return NULL;
    return m;
}

// dst = src in another layout or type (oneDNN's reorder, which rounds to nearest even).
static int reorder(const dnnl_memory_desc_t *from, const void *src, const dnnl_memory_desc_t *to,
                   void *dst) {
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t p = NULL;
    dnnl_memory_t a = wrap(from, src), b = wrap(to, dst);
    int ok = a && b &&
             lib.dnnl_reorder_primitive_desc_create(&pd, from, lib.engine, to, lib.engine, NULL) ==
                 dnnl_success &&
             lib.dnnl_primitive_create(&p, pd) == dnnl_success;
    if (ok) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, a}, {DNNL_ARG_TO, b}};
        dnnl_stream_t s = stream();
        ok = s && lib.dnnl_primitive_execute(p, s, 2, args) == dnnl_success &&
             lib.dnnl_stream_wait(s) == dnnl_success;
    }
    if (p) lib.dnnl_primitive_destroy(p);
    if (pd) lib.dnnl_primitive_desc_destroy(pd);
    if (a) lib.dnnl_memory_destroy(a);
    if (b) lib.dnnl_memory_destroy(b);
    return ok;
}

// The memory descriptors of one convolution: the caller's OIHW float32 weights and the NHWC
// bf16 / float32 images oneDNN convolves.
typedef struct {
    dnnl_memory_desc_t w, bias, image, weights_any, result, gradient, input_gradient;
    dnnl_dims_t strides, padding;
} conv_descs;

static int describe(const duo_conv_shape *s, long images, long O, conv_descs *d) {
    dnnl_dims_t x = {images, (long)s->C, (long)s->H, (long)s->W};
    dnnl_dims_t w = {O, (long)s->C, (long)s->kh, (long)s->kw};
    dnnl_dims_t y = {images, O, (long)s->Ho, (long)s->Wo};
    dnnl_dims_t bias = {O};
    d->strides[0] = d->strides[1] = (long)s->stride;
    d->padding[0] = d->padding[1] = (long)s->pad;
    return lib.dnnl_memory_desc_init_by_tag(&d->w, 4, w, dnnl_f32, dnnl_oihw) == dnnl_success &&
           lib.dnnl_memory_desc_init_by_tag(&d->bias, 1, bias, dnnl_f32, dnnl_a) ==
               dnnl_success &&
           lib.dnnl_memory_desc_init_by_tag(&d->image, 4, x, dnnl_bf16, dnnl_nhwc) ==
               dnnl_success &&
           lib.dnnl_memory_desc_init_by_tag(&d->weights_any, 4, w, dnnl_bf16,
                                            dnnl_format_tag_any) == dnnl_success &&
           lib.dnnl_memory_desc_init_by_tag(&d->result, 4, y, dnnl_f32, dnnl_nhwc) ==
               dnnl_success;
}

// The forward primitive descriptor (also the backward pass's hint).
static dnnl_primitive_desc_t forward_pd(conv_descs *d, int with_bias) {
    dnnl_convolution_desc_t desc;
    dnnl_primitive_desc_t pd = NULL;
    if (lib.dnnl_convolution_forward_desc_init(
            &desc, dnnl_forward_training, dnnl_convolution_direct, &d->image, &d->weights_any,
            with_bias ? &d->bias : NULL, &d->result, d->strides, d->padding, d->padding) !=
        dnnl_success)
        return NULL;
    if (lib.dnnl_primitive_desc_create(&pd, &desc, NULL, lib.engine, NULL) != dnnl_success)
        return NULL;
    return pd;
}

// The input-gradient primitive descriptor: dY in bf16 NHWC is its "image", dX comes back in
// float32 NHWC (d->gradient, d->input_gradient).
static dnnl_primitive_desc_t backward_pd(const duo_conv_shape *s, long images, long O,
                                         conv_descs *d) {
    dnnl_dims_t yd = {images, O, (long)s->Ho, (long)s->Wo};
    dnnl_dims_t xd = {images, (long)s->C, (long)s->H, (long)s->W};
    if (lib.dnnl_memory_desc_init_by_tag(&d->gradient, 4, yd, dnnl_bf16, dnnl_nhwc) !=
            dnnl_success ||
        lib.dnnl_memory_desc_init_by_tag(&d->input_gradient, 4, xd, dnnl_f32, dnnl_nhwc) !=
            dnnl_success)
        return NULL;
    dnnl_primitive_desc_t hint = forward_pd(d, 0), pd = NULL;
    dnnl_convolution_desc_t desc;
    if (hint &&
        lib.dnnl_convolution_backward_data_desc_init(&desc, dnnl_convolution_direct,
                                                     &d->input_gradient, &d->weights_any,
                                                     &d->gradient, d->strides, d->padding,
                                                     d->padding) == dnnl_success &&
        lib.dnnl_primitive_desc_create(&pd, &desc, NULL, lib.engine, hint) != dnnl_success)
        pd = NULL;
    if (hint) lib.dnnl_primitive_desc_destroy(hint);
    return pd;
}

static dnnl_primitive_desc_t conv_pd(const duo_conv_shape *s, long images, long O, int backward,
                                     int with_bias, conv_descs *d) {
    if (!available() || !describe(s, images, O, d)) return NULL;
    return backward ? backward_pd(s, images, O, d) : forward_pd(d, with_bias);
}

// Weights in the layout a convolution primitive asks for, made once for frozen weights.
struct duo_onednn_weights {
    dnnl_memory_desc_t md;
    void *data;
};

// `w` reordered into the layout `pd` asks for its weights in.
static duo_onednn_weights *prepare(dnnl_primitive_desc_t pd, const dnnl_memory_desc_t *w_md,
                                   const float *w) {
    duo_onednn_weights *prepared = calloc(1, sizeof(*prepared));
    if (!prepared) return NULL;
    prepared->md = *lib.dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    size_t bytes = lib.dnnl_memory_desc_get_size(&prepared->md);
    prepared->data = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!prepared->data || !reorder(w_md, w, &prepared->md, prepared->data)) {
        duo_onednn_weights_free(prepared);
        return NULL;
    }
    return prepared;
}

duo_onednn_weights *duo_onednn_prepare_conv_weights(const duo_conv_shape *s, long images, long O,
                                                    const float *w, int backward, int threads) {
    conv_descs d;
    if (!available()) return NULL;
    if (lib.omp_set_num_threads) lib.omp_set_num_threads(threads);
    dnnl_primitive_desc_t pd = conv_pd(s, images, O, backward, 0, &d);
    if (!pd) return NULL;
    duo_onednn_weights *prepared = prepare(pd, &d.w, w);
    lib.dnnl_primitive_desc_destroy(pd);
    return prepared;
}

void duo_onednn_weights_free(duo_onednn_weights *prepared) {
    if (!prepared) return;
    free(prepared->data);
    free(prepared);
}

// Runs `pd` on the image and result memories, with `prepared` weights where they have the
// layout it asks for, else `w` reordered into scratch memory.
static int execute(dnnl_primitive_desc_t pd, const dnnl_memory_desc_t *w_md, const float *w,
                   const duo_onednn_weights *prepared, int image_arg,
                   const dnnl_memory_desc_t *image_md, const void *image, int result_arg,
                   const dnnl_memory_desc_t *result_md, void *result,
                   const dnnl_memory_desc_t *bias_md, const float *bias) {
    const dnnl_memory_desc_t *weights_md =
        lib.dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const void *weights;
    if (prepared && lib.dnnl_memory_desc_equal(&prepared->md, weights_md)) {
        weights = prepared->data;
    } else {
        void *buffer = scratch(lib.dnnl_memory_desc_get_size(weights_md));
        if (!buffer || !reorder(w_md, w, weights_md, buffer)) return 0;
        weights = buffer;
    }
    dnnl_primitive_t p = NULL;
    dnnl_memory_t mi = wrap(image_md, image), mw = wrap(weights_md, weights),
                  mr = wrap(result_md, result), mb = bias ? wrap(bias_md, bias) : NULL;
    int ok = mi && mw && mr && (!bias || mb) && lib.dnnl_primitive_create(&p, pd) == dnnl_success;
    if (ok) {
        dnnl_exec_arg_t args[4] = {
            {image_arg, mi}, {DNNL_ARG_WEIGHTS, mw}, {result_arg, mr}, {DNNL_ARG_BIAS, mb}};
        dnnl_stream_t s = stream();
        ok = s && lib.dnnl_primitive_execute(p, s, bias ? 4 : 3, args) == dnnl_success &&
             lib.dnnl_stream_wait(s) == dnnl_success;
    }
    if (p) lib.dnnl_primitive_destroy(p);
    if (mi) lib.dnnl_memory_destroy(mi);
    if (mw) lib.dnnl_memory_destroy(mw);
    if (mr) lib.dnnl_memory_destroy(mr);
    if (mb) lib.dnnl_memory_destroy(mb);
    return ok;
}

int duo_onednn_available(void) { return available(); }

int duo_onednn_conv_bf16(const duo_conv_shape *s, long images, long O, const uint16_t *image,
                         const float *w, const duo_onednn_weights *prepared, const float *bias,
                         float *result, int threads) {
    conv_descs d;
    if (!available()) return 0;
    if (lib.omp_set_num_threads) lib.omp_set_num_threads(threads);
    dnnl_primitive_desc_t pd = conv_pd(s, images, O, 0, bias != NULL, &d);
    if (!pd) return 0;
    int ok = execute(pd, &d.w, w, prepared, DNNL_ARG_SRC, &d.image, image, DNNL_ARG_DST,
                     &d.result, result, &d.bias, bias);
    lib.dnnl_primitive_desc_destroy(pd);
    return ok;
}

int duo_onednn_conv_input_gradient_bf16(const duo_conv_shape *s, long images, long O,
                                        const uint16_t *gradient, const float *w,
                                        const duo_onednn_weights *prepared,
                                        float *input_gradient, int threads) {
    conv_descs d;
    if (!available()) return 0;
    if (lib.omp_set_num_threads) lib.omp_set_num_threads(threads);
    dnnl_primitive_desc_t pd = conv_pd(s, images, O, 1, 0, &d);
    if (!pd) return 0;
    int ok = execute(pd, &d.w, w, prepared, DNNL_ARG_DIFF_DST, &d.gradient, gradient,
                     DNNL_ARG_DIFF_SRC, &d.input_gradient, input_gradient, NULL, NULL);
    lib.dnnl_primitive_desc_destroy(pd);
    return ok;
}

// The matrix product C [m, n] = A [m, k] op(W) (+ bias [n]): A bf16 row-major, op(W) [k, n]
// the float32 weights W [k, n] or, transposed, W [n, k] as a linear layer stores them.
typedef struct {
    dnnl_memory_desc_t a, w, weights_any, c, bias;
} matmul_descs;

static dnnl_primitive_desc_t matmul_pd(long m, long n, long k, int trans_w, int with_bias,
                                       matmul_descs *d) {
    dnnl_dims_t ad = {m, k}, wd = {k, n}, cd = {m, n}, bd = {1, n};
    dnnl_matmul_desc_t desc;
    dnnl_primitive_desc_t pd = NULL;
    if (!available() ||
        lib.dnnl_memory_desc_init_by_tag(&d->a, 2, ad, dnnl_bf16, dnnl_ab) != dnnl_success ||
        lib.dnnl_memory_desc_init_by_tag(&d->w, 2, wd, dnnl_f32, trans_w ? dnnl_ba : dnnl_ab) !=
            dnnl_success ||
        lib.dnnl_memory_desc_init_by_tag(&d->weights_any, 2, wd, dnnl_bf16,
                                         dnnl_format_tag_any) != dnnl_success ||
        lib.dnnl_memory_desc_init_by_tag(&d->c, 2, cd, dnnl_f32, dnnl_ab) != dnnl_success ||
        lib.dnnl_memory_desc_init_by_tag(&d->bias, 2, bd, dnnl_f32, dnnl_ab) != dnnl_success ||
        lib.dnnl_matmul_desc_init(&desc, &d->a, &d->weights_any, with_bias ? &d->bias : NULL,
                                  &d->c) != dnnl_success ||
        lib.dnnl_primitive_desc_create(&pd, &desc, NULL, lib.engine, NULL) != dnnl_success)
        return NULL;
    return pd;
}

duo_onednn_weights *duo_onednn_prepare_matmul_weights(long m, long n, long k, const float *w,
                                                      int trans_w, int threads) {
    matmul_descs d;
    if (!available()) return NULL;
    if (lib.omp_set_num_threads) lib.omp_set_num_threads(threads);
    dnnl_primitive_desc_t pd = matmul_pd(m, n, k, trans_w, 0, &d);
    if (!pd) return NULL;
    duo_onednn_weights *prepared = prepare(pd, &d.w, w);
    lib.dnnl_primitive_desc_destroy(pd);
    return prepared;
}

int duo_onednn_matmul_bf16(long m, long n, long k, const uint16_t *a, const float *w, int trans_w,
                           const duo_onednn_weights *prepared, const float *bias, float *c,
                           int threads) {
    matmul_descs d;
    if (!available()) return 0;
    if (lib.omp_set_num_threads) lib.omp_set_num_threads(threads);
    dnnl_primitive_desc_t pd = matmul_pd(m, n, k, trans_w, bias != NULL, &d);
    if (!pd) return 0;
    int ok = execute(pd, &d.w, w, prepared, DNNL_ARG_SRC, &d.a, a, DNNL_ARG_DST, &d.c, c,
                     &d.bias, bias);
    lib.dnnl_primitive_desc_destroy(pd);
    return ok;
}

// C = alpha op(A) op(B) + beta C in float32, row-major, through oneDNN's sgemm (its JIT
// kernels for the CPU's vector width), on the calling thread alone: duo splits GEMMs over
// cores itself, and the data-parallel shards call it from their threads at once.
int duo_onednn_sgemm(int trans_a, int trans_b, long m, long n, long k, float alpha,
                     const float *a, long lda, const float *b, long ldb, float beta, float *c,
                     long ldc) {
    if (!available() || !lib.dnnl_sgemm) return 0;
    if (lib.omp_set_num_threads) lib.omp_set_num_threads(1);
    return lib.dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b,
                          ldb, beta, c, ldc) == dnnl_success;
}

#else

int duo_onednn_available(void) { return 0; }

duo_onednn_weights *duo_onednn_prepare_conv_weights(const duo_conv_shape *s, long images, long O,
                                                    const float *w, int backward, int threads) {
    (void)s, (void)images, (void)O, (void)w, (void)backward, (void)threads;
    return NULL;
}

void duo_onednn_weights_free(duo_onednn_weights *prepared) { (void)prepared; }

duo_onednn_weights *duo_onednn_prepare_matmul_weights(long m, long n, long k, const float *w,
                                                      int trans_w, int threads) {
    (void)m, (void)n, (void)k, (void)w, (void)trans_w, (void)threads;
    return NULL;
}

int duo_onednn_matmul_bf16(long m, long n, long k, const uint16_t *a, const float *w, int trans_w,
                           const duo_onednn_weights *prepared, const float *bias, float *c,
                           int threads) {
    (void)m, (void)n, (void)k, (void)a, (void)w, (void)trans_w, (void)prepared, (void)bias,
        (void)c, (void)threads;
    return 0;
}

int duo_onednn_conv_bf16(const duo_conv_shape *s, long images, long O, const uint16_t *image,
                         const float *w, const duo_onednn_weights *prepared, const float *bias,
                         float *result, int threads) {
    (void)s, (void)images, (void)O, (void)image, (void)w, (void)prepared, (void)bias,
        (void)result, (void)threads;
    return 0;
}

int duo_onednn_conv_input_gradient_bf16(const duo_conv_shape *s, long images, long O,
                                        const uint16_t *gradient, const float *w,
                                        const duo_onednn_weights *prepared,
                                        float *input_gradient, int threads) {
    (void)s, (void)images, (void)O, (void)gradient, (void)w, (void)prepared,
        (void)input_gradient, (void)threads;
    return 0;
}


int duo_onednn_sgemm(int trans_a, int trans_b, long m, long n, long k, float alpha,
                     const float *a, long lda, const float *b, long ldb, float beta, float *c,
                     long ldc) {
    (void)trans_a, (void)trans_b, (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda,
        (void)b, (void)ldb, (void)beta, (void)c, (void)ldc;
    return 0;
}

#endif
