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


def conv2d_shape(tuple window, tuple in_shape, int64_t out_channels):
    """NHWC output shape of a convolution (ecnn_conv2d_shape)."""
    cdef ecnn_window win = to_window(window)
    cdef ecnn_shape4 out
    check(ecnn_conv2d_shape(&win, to_shape(in_shape), out_channels, &out), "conv2d shape")
    return (out.n, out.h, out.w, out.c)


def pool2d_shape(tuple window, tuple in_shape):
    """NHWC output shape of a pooling window (ecnn_pool2d_shape)."""
    cdef ecnn_window win = to_window(window)
    cdef ecnn_shape4 out
    check(ecnn_pool2d_shape(&win, to_shape(in_shape), &out), "pool2d shape")
    return (out.n, out.h, out.w, out.c)


def conv2d_nhwc(const float[:, :, :, ::1] x, const float[:, :, :, ::1] weights, const float[::1] bias,
                tuple window, float[:, :, :, ::1] out):
    cdef ecnn_window win = to_window(window)
    cdef ecnn_shape4 s = ecnn_shape4(x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    cdef const float *b = &bias[0] if bias is not None else NULL
    cdef int64_t m = weights.shape[3]
    cdef int status
    with nogil:
        status = ecnn_conv2d_nhwc_f32(&x[0, 0, 0, 0], s, &weights[0, 0, 0, 0], b, m, &win, &out[0, 0, 0, 0])
    check(status, "conv2d")


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


def add(const float[::1] a, const float[::1] b, float[::1] out):
    cdef int status
    with nogil:
        status = ecnn_add_f32(&a[0], a.shape[0], &b[0], b.shape[0], &out[0])
    check(status, "add")


def mul(const float[::1] a, const float[::1] b, float[::1] out):
    cdef int status
    with nogil:
        status = ecnn_mul_f32(&a[0], a.shape[0], &b[0], b.shape[0], &out[0])
    check(status, "mul")


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
