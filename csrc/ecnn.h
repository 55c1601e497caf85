/* ecnn: the independent C reference for the layers edgecnn models use.
 *
 * Plain float32 loops, NHWC activations, no BLAS, no Python, no globals, no
 * printing, no errno. Every public function returns a status: ECNN_OK (0) or a
 * negative ECNN_ERR_*; outputs are allocated by the caller, sized by the shape
 * functions below (the same functions the Cython binding and the tests call).
 *
 * Layouts (all C-contiguous):
 *   activations  NHWC  (n, h, w, c)
 *   conv weights HWIO  (kernel_h, kernel_w, in_channels, out_channels)  (Keras' layout)
 *   dense        x (rows, in_features), weights (in_features, out_features)
 *
 * Floating point: loops are vectorised across independent outputs (output
 * channels, pooled channels, dense columns), never across a sum, so every
 * output is accumulated in the fixed order ky, kx, c (dense: k) and the build
 * needs no -ffast-math. NaN and infinities propagate as IEEE says.
 */
#ifndef ECNN_H
#define ECNN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    ECNN_OK = 0,
    ECNN_ERR_NULL = -1,      /* a required pointer is NULL */
    ECNN_ERR_SHAPE = -2,     /* a size < 1, the window does not fit the padded input, groups do not divide channels */
    ECNN_ERR_PARAM = -3,     /* kernel/stride/dilation/groups < 1, pad < 0, pool pad >= kernel, bad mode or ndim */
    ECNN_ERR_OVERFLOW = -4,  /* an element count does not fit in int64 bytes */
};

/* Most axes an N-D kernel (pad, broadcast) takes. */
#define ECNN_MAX_DIMS 8

/* Activation shape, NHWC. */
typedef struct {
    int64_t n, h, w, c;
} ecnn_shape4;

/* How a window's padding is chosen. */
typedef enum {
    ECNN_PAD_EXPLICIT = 0,   /* use the pads already in ecnn_window */
    ECNN_PAD_VALID = 1,      /* no padding */
    ECNN_PAD_SAME_UPPER = 2, /* TensorFlow "same" (ONNX SAME_UPPER): out = ceil(in / stride), odd pad at the end */
    ECNN_PAD_SAME_LOWER = 3, /* ONNX SAME_LOWER: as SAME_UPPER but the odd pad at the start */
} ecnn_padding;

/* A 2-D sliding window: kernel, stride, dilation and the pads actually applied. */
typedef struct {
    int64_t kernel_h, kernel_w;
    int64_t stride_h, stride_w;
    int64_t dilation_h, dilation_w;
    int64_t pad_top, pad_left, pad_bottom, pad_right;
} ecnn_window;

/* Human-readable text for a status code (a static string; never NULL). */
const char *ecnn_status_message(int status);

/* Fill win's four pads for `mode` and an in_h x in_w input (EXPLICIT leaves them as they are). */
int ecnn_resolve_padding(ecnn_padding mode, int64_t in_h, int64_t in_w, ecnn_window *win);

/* Output height/width of a window over an in_h x in_w input:
 * out = (in + pad_before + pad_after - ((k - 1) * dilation + 1)) / stride + 1 (floor). */
int ecnn_window_output(const ecnn_window *win, int64_t in_h, int64_t in_w, int64_t *out_h, int64_t *out_w);

/* Output shape of a convolution with out_channels filters (any pad >= 0). */
int ecnn_conv2d_shape(const ecnn_window *win, ecnn_shape4 in, int64_t out_channels, ecnn_shape4 *out);

/* Output shape of a grouped convolution: in.c and out_channels both multiples of groups >= 1. */
int ecnn_grouped_conv2d_shape(const ecnn_window *win, ecnn_shape4 in, int64_t out_channels, int64_t groups,
                              ecnn_shape4 *out);

/* Output shape of a pooling window (dilation 1; each pad smaller than the kernel, as ONNX requires). */
int ecnn_pool2d_shape(const ecnn_window *win, ecnn_shape4 in, ecnn_shape4 *out);

/* out = conv(input, weights) + bias; input NHWC, weights HWIO (kernel_h, kernel_w, in.c, out_channels),
 * bias (out_channels) or NULL; out sized by ecnn_conv2d_shape. Padding contributes zeros. */
int ecnn_conv2d_nhwc_f32(const float *input, ecnn_shape4 in, const float *weights, const float *bias,
                         int64_t out_channels, const ecnn_window *win, float *out);

/* Grouped convolution: output channel m belongs to group g = m / (out_channels / groups) and reads
 * input channels [g * in.c / groups, (g + 1) * in.c / groups); weights HWIO (kernel_h, kernel_w,
 * in.c / groups, out_channels). groups = in.c = out_channels is a depthwise convolution; groups = 1 is
 * ecnn_conv2d_nhwc_f32. Sums in the order ky, kx, c; out sized by ecnn_grouped_conv2d_shape. */
int ecnn_grouped_conv2d_nhwc_f32(const float *input, ecnn_shape4 in, const float *weights, const float *bias,
                                 int64_t out_channels, int64_t groups, const ecnn_window *win, float *out);

/* Max over each window; padding never wins (as if -inf). A NaN in a window gives NaN. */
int ecnn_maxpool2d_nhwc_f32(const float *input, ecnn_shape4 in, const ecnn_window *win, float *out);

/* Mean over each window. count_include_pad = 0 divides by the taps inside the input
 * (TensorFlow's "same" average pooling, ONNX's default); 1 divides by kernel_h * kernel_w. */
int ecnn_avgpool2d_nhwc_f32(const float *input, ecnn_shape4 in, const ecnn_window *win, int count_include_pad,
                            float *out);

/* out (rows, out_features) = x (rows, in_features) @ weights (in_features, out_features) + bias (or NULL). */
int ecnn_dense_f32(const float *x, int64_t rows, int64_t in_features, const float *weights, const float *bias,
                   int64_t out_features, float *out);

/* Element-wise over count values; out may alias x. */
int ecnn_relu_f32(const float *x, int64_t count, float *out);
int ecnn_sigmoid_f32(const float *x, int64_t count, float *out);

/* The operators of ecnn_unary_f32 (ONNX's of the same names; alpha and beta are its attributes). */
typedef enum {
    ECNN_TANH = 0,
    ECNN_EXP = 1,
    ECNN_LOG = 2,
    ECNN_SQRT = 3,
    ECNN_NEG = 4,
    ECNN_ABS = 5,
    ECNN_RECIPROCAL = 6,
    ECNN_ERF = 7,
    ECNN_SOFTSIGN = 8,          /* x / (1 + |x|) */
    ECNN_SOFTPLUS = 9,          /* log(1 + exp(x)), computed as x + log1p(exp(-x)) for x > 0 */
    ECNN_SIN = 10,
    ECNN_COS = 11,
    ECNN_FLOOR = 12,
    ECNN_CEIL = 13,
    ECNN_ROUND = 14,            /* half to even */
    ECNN_SIGN = 15,             /* -1, 0 or 1; zeros keep their sign */
    ECNN_ELU = 16,              /* x > 0 ? x : alpha * (exp(x) - 1) */
    ECNN_LEAKY_RELU = 17,       /* x >= 0 ? x : alpha * x */
    ECNN_SELU = 18,             /* beta * (x > 0 ? x : alpha * exp(x) - alpha): beta is ONNX's gamma */
    ECNN_CELU = 19,             /* max(0, x) + min(0, alpha * (exp(x / alpha) - 1)) */
    ECNN_HARD_SIGMOID = 20,     /* max(0, min(1, alpha * x + beta)) */
    ECNN_THRESHOLDED_RELU = 21, /* x > alpha ? x : 0 */
    ECNN_HARD_SWISH = 22,       /* x * max(0, min(1, x / 6 + 0.5)) */
    ECNN_MISH = 23,             /* x * tanh(softplus(x)) */
} ecnn_unary_op;

/* out[i] = op(x[i]) over count values, computed in double and rounded once to float. The formulas
 * are applied as written, so NaN gives NaN and so does inf * 0 (softsign, hard swish, mish of an
 * infinity, as ONNX's reference); alpha and beta are ignored by the operators without them.
 * out may alias x. */
int ecnn_unary_f32(ecnn_unary_op op, const float *x, int64_t count, float alpha, float beta, float *out);

/* out[i] = min(max(x[i], lo), hi): hi wherever lo > hi (as ONNX Clip); NaN stays NaN. out may alias x. */
int ecnn_clip_f32(const float *x, int64_t count, float lo, float hi, float *out);

/* The reductions of ecnn_reduce_f32 (ONNX ReduceMean, ReduceSum, ..., ReduceLogSumExp). */
typedef enum {
    ECNN_REDUCE_MEAN = 0,
    ECNN_REDUCE_SUM = 1,
    ECNN_REDUCE_MAX = 2,
    ECNN_REDUCE_MIN = 3,
    ECNN_REDUCE_SUM_SQUARE = 4, /* sum of x * x */
    ECNN_REDUCE_L2 = 5,         /* sqrt of the sum of x * x */
    ECNN_REDUCE_L1 = 6,         /* sum of |x| */
    ECNN_REDUCE_LOG_SUM_EXP = 7, /* m + log(sum of exp(x - m)), m the (finite) max, else 0 */
} ecnn_reduce_op;

/* out[o, i] = op over k of x[o, k, i], x (outer, reduced, inner) C-contiguous, out (outer, inner);
 * reduced >= 1 (the empty reduction is the caller's constant). Sums run in k order in double and
 * are rounded once; max and min give NaN if any value is NaN. Global average pooling of NHWC is
 * MEAN over (n, h * w, c); a reduction over any run of axes adjacent in memory is the same call. */
int ecnn_reduce_f32(ecnn_reduce_op op, const float *x, int64_t outer, int64_t reduced, int64_t inner, float *out);

/* Softmax of each of `rows` contiguous rows of `cols` values (max-subtracted, summed in double). */
int ecnn_softmax_f32(const float *x, int64_t rows, int64_t cols, float *out);

/* Log-softmax of each row, as softmax: out = x - max - log(sum of exp(x - max)). */
int ecnn_log_softmax_f32(const float *x, int64_t rows, int64_t cols, float *out);

/* How ecnn_pad_f32 fills what lies outside the input (numpy.pad's modes of the same names). */
typedef enum {
    ECNN_PAD_MODE_CONSTANT = 0, /* `value` */
    ECNN_PAD_MODE_REFLECT = 1,  /* mirrored without repeating the edge: ... x2 x1 | x0 x1 x2 ... */
    ECNN_PAD_MODE_EDGE = 2,     /* the edge value repeated */
    ECNN_PAD_MODE_WRAP = 3,     /* periodic: the other end continues */
} ecnn_pad_mode;

/* out_shape[d] = in_shape[d] + begin[d] + end[d] for ndim (1..ECNN_MAX_DIMS) axes. A negative pad crops
 * first (as ONNX Pad); every axis keeps >= 1 input value after cropping and every output size is >= 1. */
int ecnn_pad_shape(int ndim, const int64_t *in_shape, const int64_t *begin, const int64_t *end, int64_t *out_shape);

/* Pad (or crop) a C-contiguous ndim-D tensor; out C-contiguous, sized by ecnn_pad_shape. Reflect and
 * wrap repeat periodically when a pad exceeds the (cropped) axis, as numpy.pad does. */
int ecnn_pad_f32(const float *input, int ndim, const int64_t *in_shape, const int64_t *begin, const int64_t *end,
                 ecnn_pad_mode mode, float value, float *out);

/* The element-wise binary operators of ecnn_binary_f32. */
typedef enum {
    ECNN_ADD = 0,
    ECNN_SUB = 1,
    ECNN_MUL = 2,
    ECNN_DIV = 3,
    ECNN_MAX = 4,           /* NaN if either operand is NaN (ONNX Max; unlike C fmax) */
    ECNN_MIN = 5,           /* likewise */
    ECNN_POW = 6,           /* C pow in double, rounded once */
    ECNN_GREATER = 7,       /* the comparisons give 1.0f (true) or 0.0f; any comparison with NaN is false */
    ECNN_LESS = 8,
    ECNN_GREATER_EQUAL = 9,
    ECNN_LESS_EQUAL = 10,
    ECNN_EQUAL = 11,
} ecnn_binary_op;

/* out = a (op) b with numpy broadcasting, one IEEE operation per element. out is C-contiguous of
 * out_shape (ndim 1..ECNN_MAX_DIMS axes); a_strides and b_strides give, per axis, the step in floats
 * between neighbouring elements of each operand (0 along a broadcast axis; any sign). */
int ecnn_binary_f32(ecnn_binary_op op, int ndim, const int64_t *out_shape, const float *a, const int64_t *a_strides,
                    const float *b, const int64_t *b_strides, float *out);

/* ----- Quantisation (csrc/quant.c): ONNX QuantizeLinear / DequantizeLinear -----
 *
 * A tensor is viewed as (outer, channels, inner) around its quantisation axis; per-tensor
 * quantisation is channels = 1. scale and zero_point hold `channels` values; zero_point
 * NULL means 0.
 *   quantize:   out = saturate(round_half_to_even(x / scale[c]) + zero_point[c]), the
 *               division in float32; saturation to [0, 255] (u8) or [-128, 127] (i8);
 *               NaN gives the zero point. Every scale must be finite and non-zero
 *               (ECNN_ERR_PARAM otherwise).
 *   dequantize: out = ((float)x - (float)zero_point[c]) * scale[c], in float32.
 */
int ecnn_quantize_linear_u8(const float *x, int64_t outer, int64_t channels, int64_t inner, const float *scale,
                            const uint8_t *zero_point, uint8_t *out);
int ecnn_quantize_linear_i8(const float *x, int64_t outer, int64_t channels, int64_t inner, const float *scale,
                            const int8_t *zero_point, int8_t *out);
int ecnn_dequantize_linear_u8(const uint8_t *x, int64_t outer, int64_t channels, int64_t inner, const float *scale,
                              const uint8_t *zero_point, float *out);
int ecnn_dequantize_linear_i8(const int8_t *x, int64_t outer, int64_t channels, int64_t inner, const float *scale,
                              const int8_t *zero_point, float *out);
int ecnn_dequantize_linear_i32(const int32_t *x, int64_t outer, int64_t channels, int64_t inner, const float *scale,
                               const int32_t *zero_point, float *out);

#ifdef __cplusplus
}
#endif

#endif /* ECNN_H */
