// Hot loops of the tensor core, in C so that they vectorize at memory speed
// (see BENCHMARKS.md, "Pointwise kernels": a clamped exp runs several times slower in Swift).
// Every function works on a caller-chosen range so Swift can split it over cores.
// Each op's forward kernel sits next to its backward kernel.
#ifndef DUO_CKERNELS_H
#define DUO_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

// Pointwise activations on n contiguous floats. Backward: dx = dy * f'(x).
void duo_silu_forward(const float *x, float *y, size_t n);
void duo_silu_backward(const float *x, const float *dy, float *dx, size_t n);
void duo_gelu_forward(const float *x, float *y, size_t n);
void duo_gelu_backward(const float *x, const float *dy, float *dx, size_t n);
// GEGLU on rows [h | g] of 2 * inner floats -> rows of inner: h * GELU(g) (exact GELU).
void duo_geglu_forward(const float *x, float *y, size_t inner, size_t rows);
void duo_geglu_backward(const float *x, const float *dy, float *dx, size_t inner, size_t rows);
void duo_gelu_tanh_forward(const float *x, float *y, size_t n);
void duo_gelu_tanh_backward(const float *x, const float *dy, float *dx, size_t n);
void duo_quick_gelu_forward(const float *x, float *y, size_t n);
void duo_quick_gelu_backward(const float *x, const float *dy, float *dx, size_t n);
void duo_softplus_forward(const float *x, float *y, size_t n);
void duo_softplus_backward(const float *x, const float *dy, float *dx, size_t n);
void duo_logsigmoid_forward(const float *x, float *y, size_t n);
void duo_logsigmoid_backward(const float *x, const float *dy, float *dx, size_t n);
void duo_exp(const float *x, float *y, size_t n);

// Binary elementwise with broadcasting strides of 0 or 1 (op: 0 add, 1 sub, 2 mul, 3 div).
void duo_binary(int op, const float *a, ptrdiff_t sa, const float *b, ptrdiff_t sb,
                float *y, size_t n);
// y [rows, n] += bias [n] on every row: a linear layer's bias, added after its GEMM.
void duo_add_bias_rows(float *y, const float *bias, size_t rows, size_t n);
// y[i] += alpha * x[i] (x stride 0 or 1)
void duo_axpy(float alpha, const float *x, ptrdiff_t sx, float *y, size_t n);
void duo_scale(float alpha, const float *x, float *y, size_t n);
double duo_sum(const float *x, size_t n);
// sum (x_i - center)^2: the squared norm with center 0, the variance's numerator with the mean.
double duo_sum_squared_deviations(const float *x, size_t n, float center);

// Softmax over the last dimension of rows [rows, d]; rows in [row_begin, row_end).
void duo_softmax_forward(const float *x, float *y, size_t d, size_t row_begin, size_t row_end);
void duo_softmax_backward(const float *y, const float *dy, float *dx, size_t d,
                          size_t row_begin, size_t row_end);

// Group norm on x [B, C, S] with G groups; (b, g) pairs in [bg_begin, bg_end).
// Caches mean and rstd [B, G] for the backward pass.
void duo_group_norm_forward(const float *x, const float *gamma, const float *beta, float *y,
                            float *mean, float *rstd, size_t C, size_t S, size_t G, float eps,
                            size_t bg_begin, size_t bg_end);
// SiLU(group norm(x)), the same bits as the two kernels one after the other, with the same
// statistics cached; the normalized values are not written.
void duo_group_norm_silu_forward(const float *x, const float *gamma, const float *beta,
                                 float *y, float *mean, float *rstd, size_t C, size_t S,
                                 size_t G, float eps, size_t bg_begin, size_t bg_end);
// dnorm = dy * SiLU'(group norm(x)) from the cached statistics: the gradient that
// duo_group_norm_backward then takes back to x.
void duo_group_norm_silu_gradient(const float *x, const float *gamma, const float *beta,
                                  const float *mean, const float *rstd, const float *dy,
                                  float *dnorm, size_t C, size_t S, size_t G, size_t bg_begin,
                                  size_t bg_end);
// dgamma_partial, dbeta_partial: [B, C], summed over B by the caller.
void duo_group_norm_backward(const float *x, const float *gamma, const float *mean,
                             const float *rstd, const float *dy, float *dx,
                             float *dgamma_partial, float *dbeta_partial, size_t C, size_t S,
                             size_t G, size_t bg_begin, size_t bg_end);

// Layer norm over the last dimension of x [rows, D]; caches mean and rstd [rows].
void duo_layer_norm_forward(const float *x, const float *gamma, const float *beta, float *y,
                            float *mean, float *rstd, size_t D, float eps, size_t row_begin,
                            size_t row_end);
// dgamma, dbeta: this range's own accumulators [D] (added to, not overwritten).
void duo_layer_norm_backward(const float *x, const float *gamma, const float *mean,
                             const float *rstd, const float *dy, float *dx, float *dgamma,
                             float *dbeta, size_t D, size_t row_begin, size_t row_end);

// Scaled dot-product attention for heads packed in rows: q [B, Tq, ldq] holds head h at
// columns [h*d, (h+1)*d), likewise k, v [B, Tk, ld], out [B, Tq, ldo].
// probs [B, H, Tq, Tk] is kept for the backward pass (NULL: none kept, none is written).
// (b, h) pairs in [bh_begin, bh_end).
typedef struct {
    size_t B, H, Tq, Tk, d;
    size_t ldq, ldk, ldv, ldo;
    float scale;
    int causal;
} duo_attention_shape;

void duo_attention_forward(const duo_attention_shape *s, const float *q, const float *k,
                           const float *v, float *out, float *probs, size_t bh_begin,
                           size_t bh_end);
// The same forward pass with bf16 operands and float32 sums (AVX512-BF16 CPUs; no causal
// mask, no kept probabilities).
void duo_attention_forward_bf16(const duo_attention_shape *s, const float *q, const float *k,
                                const float *v, float *out, size_t bh_begin, size_t bh_end);
// Its backward pass with bf16 operands and float32 sums (recomputes P; no causal mask).
void duo_attention_backward_bf16(const duo_attention_shape *s, const float *q, const float *k,
                                 const float *v, const float *out, const float *dout, float *dq,
                                 float *dk, float *dv, size_t bh_begin, size_t bh_end);
// dq, dk, dv are written (not accumulated), laid out like q, k, v.
void duo_attention_backward(const duo_attention_shape *s, const float *q, const float *k,
                            const float *v, const float *out, const float *probs,
                            const float *dout, float *dq, float *dk, float *dv,
                            size_t bh_begin, size_t bh_end);

// im2col for one image x [C, H, W] -> cols [C*kh*kw, Ho*Wo] in rows `columns` floats apart
// (>= Ho*Wo); col2im adds back into dx.
typedef struct {
    size_t C, H, W, kh, kw, stride, pad, Ho, Wo;
} duo_conv_shape;

void duo_im2col(const duo_conv_shape *s, const float *x, float *cols, size_t columns,
                size_t row_begin, size_t row_end);
void duo_col2im(const duo_conv_shape *s, const float *cols, size_t columns, float *dx,
                size_t c_begin, size_t c_end);

// bf16 convolutions through oneDNN, opened at run time (onednn.c), on channels-last
// images: result [images, Ho, Wo, O] (float32) = conv(image [images, H, W, C] (bf16), w
// [O, C, kh, kw]) + bias (may be NULL), and input_gradient [images, H, W, C] (float32) from
// gradient [images, Ho, Wo, O] (bf16), with float32 sums. `prepared` (may be NULL) holds w
// already in the primitive's layout (duo_onednn_prepare_conv_weights, backward 0 for the
// forward pass, 1 for the input gradient). Each returns 0, having done nothing usable, when
// oneDNN is not there (then the caller convolves another way).
typedef struct duo_onednn_weights duo_onednn_weights;
int duo_onednn_available(void);
duo_onednn_weights *duo_onednn_prepare_conv_weights(const duo_conv_shape *s, long images, long O,
                                                    const float *w, int backward, int threads);
void duo_onednn_weights_free(duo_onednn_weights *prepared);
int duo_onednn_conv_bf16(const duo_conv_shape *s, long images, long O, const uint16_t *image,
                         const float *w, const duo_onednn_weights *prepared, const float *bias,
                         float *result, int threads);
int duo_onednn_conv_input_gradient_bf16(const duo_conv_shape *s, long images, long O,
                                        const uint16_t *gradient, const float *w,
                                        const duo_onednn_weights *prepared,
                                        float *input_gradient, int threads);

// c [m, n] (float32, row-major) = a [m, k] (bf16, row-major) op(w) + bias [n] (may be NULL)
// through oneDNN's matmul, op(w) [k, n] being w [k, n] or, trans_w, w [n, k] (a linear
// layer's weight); `prepared` from duo_onednn_prepare_matmul_weights with the same m, n, k,
// trans_w. Returns 0 when oneDNN is not there.
duo_onednn_weights *duo_onednn_prepare_matmul_weights(long m, long n, long k, const float *w,
                                                      int trans_w, int threads);
int duo_onednn_matmul_bf16(long m, long n, long k, const uint16_t *a, const float *w, int trans_w,
                           const duo_onednn_weights *prepared, const float *bias, float *c,
                           int threads);
// c [m, n] = alpha op(a) op(b) + beta c in float32, row-major (BLAS's sgemm), through oneDNN's
// sgemm on the calling thread. Returns 0, having done nothing, when oneDNN is not there.
int duo_onednn_sgemm(int trans_a, int trans_b, long m, long n, long k, float alpha,
                     const float *a, long lda, const float *b, long ldb, float beta, float *c,
                     long ldc);
// x [count] rounded to bf16, elements begin..<end.
void duo_round_bf16(const float *x, uint16_t *out, size_t begin, size_t end);

// One image's [C, P] plane to channels-last [P, C] rounded to bf16 (pixels p_begin..<p_end),
// and a channels-last [P, C] float32 plane back to [C, P] (channels c_begin..<c_end).
void duo_channels_last_bf16(const float *x, uint16_t *out, size_t C, size_t P, size_t p_begin,
                            size_t p_end);
void duo_channels_first(const float *src, float *y, size_t C, size_t P, size_t c_begin,
                        size_t c_end);

// Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions with padding 1 on even H, W
// (winograd.c): weights w [O, C, 3, 3] -> U [16, O, C] (or, transposed_flipped, w
// [C, O, 3, 3] as the adjoint's kernel); x [images, C, H, W] -> V [16, C, columns];
// M [16, O, columns] -> y [images, O, H, W] (+ bias, which may be NULL), where the
// images' tiles (H*W/4 each) fill the first images*H*W/4 of a row of `columns`. For dW:
// dY [images, O, H, W] -> D [16, O, columns], and dU [16, O, C] -> dW [O, C, 3, 3].
void duo_winograd_weights(const float *w, float *U, size_t O, size_t C,
                          int transposed_flipped);
void duo_winograd_input(const float *x, float *V, size_t images, size_t C, size_t H,
                        size_t W, size_t columns);
void duo_winograd_output(const float *M, const float *bias, float *y, size_t images,
                         size_t O, size_t H, size_t W, size_t columns);
void duo_winograd_output_adjoint(const float *dy, float *D, size_t images, size_t O,
                                 size_t H, size_t W, size_t columns);
void duo_winograd_weights_adjoint(const float *dU, float *dW, size_t O, size_t C);

// Winograd F(4x4, 3x3), the same for H, W divisible by 4 (winograd4.c): U [36, O, C],
// V [36, C, columns], M [36, O, columns], the images' tiles H*W/16 each.
void duo_winograd4_weights(const float *w, float *U, size_t O, size_t C,
                           int transposed_flipped);
void duo_winograd4_input(const float *x, float *V, size_t images, size_t C, size_t H,
                         size_t W, size_t columns);
void duo_winograd4_output(const float *M, const float *bias, float *y, size_t images,
                          size_t O, size_t H, size_t W, size_t columns);

// Nearest-neighbour 2x upsampling of planes [planes, H, W] -> [planes, 2H, 2W].
void duo_upsample_nearest2x_forward(const float *x, float *y, size_t H, size_t W,
                                    size_t plane_begin, size_t plane_end);
void duo_upsample_nearest2x_backward(const float *dy, float *dx, size_t H, size_t W,
                                     size_t plane_begin, size_t plane_end);

// AdamW update of n parameters (Loshchilov & Hutter 2019, Algorithm 2).
void duo_adamw_step(float *param, const float *grad, float *m, float *v, size_t n, float lr,
                    float beta1, float beta2, float eps, float weight_decay,
                    float bias_correction1, float bias_correction2);

// IEEE half (binary16) and bfloat16 to float, exactly (subnormals, inf and NaN included).
// src must be 2-byte aligned (little-endian values).
void duo_f16_to_f32(const uint16_t *src, float *dst, size_t n);
void duo_bf16_to_f32(const uint16_t *src, float *dst, size_t n);

// Mixed-precision GEMM, row-major: C = alpha * op(A) op(B) + beta * C with op(A) [m, k] and
// op(B) [k, n] rounded to bfloat16 and float32 products and sums (vdpbf16ps where the CPU has
// AVX512-BF16). C is not read when beta is 0. The portable variant runs the same blocking with
// a plain-C tile on any CPU.
int duo_cpu_has_avx512bf16(void);
uint16_t duo_bf16_from_float(float x);
void duo_gemm_bf16(int trans_a, int trans_b, long m, long n, long k, float alpha, const float *a,
                   long lda, const float *b, long ldb, float beta, float *c, long ldc);
void duo_gemm_bf16_portable(int trans_a, int trans_b, long m, long n, long k, float alpha,
                            const float *a, long lda, const float *b, long ldb, float beta,
                            float *c, long ldc);

// Large buffers mapped on their own, in whole 2 MiB huge pages (mapped_buffers.c):
// `duo_mapped_length` is the length mapped for `bytes`, and what `duo_unmap_buffer` takes
// (a range that may span several mappings). `duo_gather_pages` moves the mapped `pieces`
// (each within one mapping, whole 2 MiB, together at most the mapped length of `bytes`), in
// order, into one new range of that length, with new pages for the rest; it returns NULL
// where it cannot (or where the system cannot move pages: `duo_can_move_pages`), the
// pieces unmapped.
size_t duo_mapped_length(size_t bytes);
void *duo_map_buffer(size_t bytes);
void duo_unmap_buffer(void *start, size_t length);
int duo_can_move_pages(void);
void *duo_gather_pages(void *const *pieces, const size_t *lengths, size_t count, size_t bytes);

#endif
