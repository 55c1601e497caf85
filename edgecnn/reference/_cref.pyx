# cython: boundscheck=False, wraparound=False, initializedcheck=False
"""Thin binding over csrc/: status codes become ValueError. Callers (kernels.py) check and allocate.

A window travels as a 10-tuple (kernel_h, kernel_w, stride_h, stride_w, dilation_h,
dilation_w, pad_top, pad_left, pad_bottom, pad_right).
"""

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t

PAD_EXPLICIT = ECNN_PAD_EXPLICIT
PAD_VALID = ECNN_PAD_VALID
PAD_SAME_UPPER = ECNN_PAD_SAME_UPPER
PAD_SAME_LOWER = ECNN_PAD_SAME_LOWER
PAD_MODES = {"constant": ECNN_PAD_MODE_CONSTANT, "reflect": ECNN_PAD_MODE_REFLECT, "edge": ECNN_PAD_MODE_EDGE,
             "wrap": ECNN_PAD_MODE_WRAP}
BINARY_OPS = {"add": ECNN_ADD, "sub": ECNN_SUB, "mul": ECNN_MUL, "div": ECNN_DIV, "max": ECNN_MAX, "min": ECNN_MIN,
              "pow": ECNN_POW, "greater": ECNN_GREATER, "less": ECNN_LESS, "greater_equal": ECNN_GREATER_EQUAL,
              "less_equal": ECNN_LESS_EQUAL, "equal": ECNN_EQUAL}
UNARY_OPS = {"tanh": ECNN_TANH, "exp": ECNN_EXP, "log": ECNN_LOG, "sqrt": ECNN_SQRT, "neg": ECNN_NEG, "abs": ECNN_ABS,
             "reciprocal": ECNN_RECIPROCAL, "erf": ECNN_ERF, "softsign": ECNN_SOFTSIGN, "softplus": ECNN_SOFTPLUS,
             "sin": ECNN_SIN, "cos": ECNN_COS, "floor": ECNN_FLOOR, "ceil": ECNN_CEIL, "round": ECNN_ROUND,
             "sign": ECNN_SIGN, "elu": ECNN_ELU, "leaky_relu": ECNN_LEAKY_RELU, "selu": ECNN_SELU, "celu": ECNN_CELU,
             "hard_sigmoid": ECNN_HARD_SIGMOID, "thresholded_relu": ECNN_THRESHOLDED_RELU,
             "hard_swish": ECNN_HARD_SWISH, "mish": ECNN_MISH}
REDUCE_OPS = {"mean": ECNN_REDUCE_MEAN, "sum": ECNN_REDUCE_SUM, "max": ECNN_REDUCE_MAX, "min": ECNN_REDUCE_MIN,
              "sum_square": ECNN_REDUCE_SUM_SQUARE, "l2": ECNN_REDUCE_L2, "l1": ECNN_REDUCE_L1,
              "log_sum_exp": ECNN_REDUCE_LOG_SUM_EXP}
MAX_DIMS = ECNN_MAX_DIMS


cdef int check(int status, str what) except -1:
    if status != ECNN_OK:
        raise ValueError(f"{what}: {ecnn_status_message(status).decode()} (ecnn status {status})")
    return 0


cdef ecnn_window to_window(tuple window) except *:
    cdef ecnn_window win
    (win.kernel_h, win.kernel_w, win.stride_h, win.stride_w, win.dilation_h, win.dilation_w,
     win.pad_top, win.pad_left, win.pad_bottom, win.pad_right) = window
    return win


cdef tuple from_window(const ecnn_window *win):
    return (win.kernel_h, win.kernel_w, win.stride_h, win.stride_w, win.dilation_h, win.dilation_w,
            win.pad_top, win.pad_left, win.pad_bottom, win.pad_right)


cdef ecnn_shape4 to_shape(tuple shape) except *:
    cdef ecnn_shape4 s
    s.n, s.h, s.w, s.c = shape
    return s


def resolve_padding(int mode, int64_t in_h, int64_t in_w, tuple window):
    """The window with its pads filled in for `mode` (one of PAD_*) over an in_h x in_w input."""
    cdef ecnn_window win = to_window(window)
    check(ecnn_resolve_padding(<ecnn_padding>mode, in_h, in_w, &win), "padding")
    return from_window(&win)


def grouped_conv2d_shape(tuple window, tuple in_shape, int64_t out_channels, int64_t groups):
    """NHWC output shape of a grouped convolution (ecnn_grouped_conv2d_shape)."""
    cdef ecnn_window win = to_window(window)
    cdef ecnn_shape4 out
    check(ecnn_grouped_conv2d_shape(&win, to_shape(in_shape), out_channels, groups, &out), "grouped conv2d shape")
    return (out.n, out.h, out.w, out.c)


def pad_shape(const int64_t[::1] in_shape, const int64_t[::1] begin, const int64_t[::1] end):
    """Output shape of ecnn_pad_f32 (ecnn_pad_shape); the three arrays have one entry per axis."""
    cdef int64_t out[ECNN_MAX_DIMS]
    cdef int ndim = in_shape.shape[0]
    if begin.shape[0] != ndim or end.shape[0] != ndim or ndim < 1:
        raise ValueError(f"pad shape: {ndim} axes but {begin.shape[0]} begin and {end.shape[0]} end pads")
    check(ecnn_pad_shape(ndim, &in_shape[0], &begin[0], &end[0], out), "pad shape")
    return tuple(out[d] for d in range(ndim))


def pool2d_shape(tuple window, tuple in_shape):
    """NHWC output shape of a pooling window (ecnn_pool2d_shape)."""
    cdef ecnn_window win = to_window(window)
    cdef ecnn_shape4 out
    check(ecnn_pool2d_shape(&win, to_shape(in_shape), &out), "pool2d shape")
    return (out.n, out.h, out.w, out.c)


def grouped_conv2d_nhwc(const float[:, :, :, ::1] x, const float[:, :, :, ::1] weights, const float[::1] bias,
                        int64_t groups, tuple window, float[:, :, :, ::1] out):
    cdef ecnn_window win = to_window(window)
    cdef ecnn_shape4 s = ecnn_shape4(x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    cdef const float *b = &bias[0] if bias is not None else NULL
    cdef int64_t m = weights.shape[3]
    cdef int status
    with nogil:
        status = ecnn_grouped_conv2d_nhwc_f32(&x[0, 0, 0, 0], s, &weights[0, 0, 0, 0], b, m, groups, &win,
                                              &out[0, 0, 0, 0])
    check(status, "grouped conv2d")


def maxpool2d_nhwc(const float[:, :, :, ::1] x, tuple window, float[:, :, :, ::1] out):
    cdef ecnn_window win = to_window(window)
    cdef ecnn_shape4 s = ecnn_shape4(x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    cdef int status
    with nogil:
        status = ecnn_maxpool2d_nhwc_f32(&x[0, 0, 0, 0], s, &win, &out[0, 0, 0, 0])
    check(status, "maxpool2d")


def avgpool2d_nhwc(const float[:, :, :, ::1] x, tuple window, bint count_include_pad, float[:, :, :, ::1] out):
    cdef ecnn_window win = to_window(window)
    cdef ecnn_shape4 s = ecnn_shape4(x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    cdef int status
    with nogil:
        status = ecnn_avgpool2d_nhwc_f32(&x[0, 0, 0, 0], s, &win, count_include_pad, &out[0, 0, 0, 0])
    check(status, "avgpool2d")


def dense(const float[:, ::1] x, const float[:, ::1] weights, const float[::1] bias, float[:, ::1] out):
    cdef const float *b = &bias[0] if bias is not None else NULL
    cdef int status
    with nogil:
        status = ecnn_dense_f32(&x[0, 0], x.shape[0], x.shape[1], &weights[0, 0], b, weights.shape[1], &out[0, 0])
    check(status, "dense")


def relu(const float[::1] x, float[::1] out):
    cdef int status
    with nogil:
        status = ecnn_relu_f32(&x[0], x.shape[0], &out[0])
    check(status, "relu")


def sigmoid(const float[::1] x, float[::1] out):
    cdef int status
    with nogil:
        status = ecnn_sigmoid_f32(&x[0], x.shape[0], &out[0])
    check(status, "sigmoid")


def softmax(const float[:, ::1] x, float[:, ::1] out):
    cdef int status
    with nogil:
        status = ecnn_softmax_f32(&x[0, 0], x.shape[0], x.shape[1], &out[0, 0])
    check(status, "softmax")


def log_softmax(const float[:, ::1] x, float[:, ::1] out):
    cdef int status
    with nogil:
        status = ecnn_log_softmax_f32(&x[0, 0], x.shape[0], x.shape[1], &out[0, 0])
    check(status, "log_softmax")


def unary(str op, const float[::1] x, float alpha, float beta, float[::1] out):
    """out = op(x) element-wise, op a key of UNARY_OPS."""
    cdef ecnn_unary_op c_op = UNARY_OPS[op]
    cdef int status
    with nogil:
        status = ecnn_unary_f32(c_op, &x[0], x.shape[0], alpha, beta, &out[0])
    check(status, op)


def clip(const float[::1] x, float lo, float hi, float[::1] out):
    cdef int status
    with nogil:
        status = ecnn_clip_f32(&x[0], x.shape[0], lo, hi, &out[0])
    check(status, "clip")


def reduce(str op, const float[:, :, ::1] x, float[:, ::1] out):
    """out (outer, inner) = op (a key of REDUCE_OPS) of x (outer, reduced, inner) over its middle axis."""
    cdef ecnn_reduce_op c_op = REDUCE_OPS[op]
    cdef int status
    with nogil:
        status = ecnn_reduce_f32(c_op, &x[0, 0, 0], x.shape[0], x.shape[1], x.shape[2], &out[0, 0])
    check(status, f"reduce_{op}")


def pad(const float[::1] x, const int64_t[::1] in_shape, const int64_t[::1] begin, const int64_t[::1] end, str mode,
        float value, float[::1] out):
    """Pad the C-contiguous tensor x (flattened, of in_shape) into out (flattened, of pad_shape)."""
    cdef int ndim = in_shape.shape[0]
    cdef ecnn_pad_mode c_mode = PAD_MODES[mode]
    cdef int status
    if begin.shape[0] != ndim or end.shape[0] != ndim or ndim < 1:
        raise ValueError(f"pad: {ndim} axes but {begin.shape[0]} begin and {end.shape[0]} end pads")
    with nogil:
        status = ecnn_pad_f32(&x[0], ndim, &in_shape[0], &begin[0], &end[0], c_mode, value, &out[0])
    check(status, "pad")


def binary(str op, const int64_t[::1] out_shape, const float[::1] a, const int64_t[::1] a_strides,
           const float[::1] b, const int64_t[::1] b_strides, float[::1] out):
    """out (flattened, C order over out_shape) = a (op) b, each operand read at its element strides from its first value."""
    cdef ecnn_binary_op c_op = BINARY_OPS[op]
    cdef int ndim = out_shape.shape[0]
    cdef int status
    if a_strides.shape[0] != ndim or b_strides.shape[0] != ndim or ndim < 1:
        raise ValueError(f"binary: {ndim} axes but {a_strides.shape[0]} and {b_strides.shape[0]} strides")
    with nogil:
        status = ecnn_binary_f32(c_op, ndim, &out_shape[0], &a[0], &a_strides[0], &b[0], &b_strides[0], &out[0])
    check(status, op)


# ----- quantisation: x viewed as (outer, channels, inner); zero_point None means 0 -----

ctypedef fused quant_int:
    uint8_t
    int8_t
    int32_t


def quantize_linear(const float[::1] x, int64_t outer, int64_t channels, int64_t inner, const float[::1] scale,
                    const quant_int[::1] zero_point, quant_int[::1] out):
    """ecnn_quantize_linear_u8 / _i8, picked by out's type (int32 output is not an ONNX type)."""
    cdef const quant_int *zp = &zero_point[0] if zero_point is not None else NULL
    cdef int status
    if quant_int is int32_t:
        raise ValueError("quantize_linear: int32 output is not supported")
    with nogil:
        if quant_int is uint8_t:
            status = ecnn_quantize_linear_u8(&x[0], outer, channels, inner, &scale[0], zp, &out[0])
        elif quant_int is int8_t:
            status = ecnn_quantize_linear_i8(&x[0], outer, channels, inner, &scale[0], zp, &out[0])
    check(status, "quantize_linear")


def dequantize_linear(const quant_int[::1] x, int64_t outer, int64_t channels, int64_t inner,
                      const float[::1] scale, const quant_int[::1] zero_point, float[::1] out):
    """ecnn_dequantize_linear_u8 / _i8 / _i32, picked by x's type."""
    cdef const quant_int *zp = &zero_point[0] if zero_point is not None else NULL
    cdef int status
    with nogil:
        if quant_int is uint8_t:
            status = ecnn_dequantize_linear_u8(&x[0], outer, channels, inner, &scale[0], zp, &out[0])
        elif quant_int is int8_t:
            status = ecnn_dequantize_linear_i8(&x[0], outer, channels, inner, &scale[0], zp, &out[0])
        else:
            status = ecnn_dequantize_linear_i32(&x[0], outer, channels, inner, &scale[0], zp, &out[0])
    check(status, "dequantize_linear")
