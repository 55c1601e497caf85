# Declarations of the C reference in csrc/ecnn.h (see there for the contracts).
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t


cdef extern from "ecnn.h" nogil:
    enum:
        ECNN_OK
        ECNN_ERR_NULL
        ECNN_ERR_SHAPE
        ECNN_ERR_PARAM
        ECNN_ERR_OVERFLOW
        ECNN_MAX_DIMS

    ctypedef struct ecnn_shape4:
        int64_t n, h, w, c

    ctypedef enum ecnn_padding:
        ECNN_PAD_EXPLICIT
        ECNN_PAD_VALID
        ECNN_PAD_SAME_UPPER
        ECNN_PAD_SAME_LOWER

    ctypedef enum ecnn_pad_mode:
        ECNN_PAD_MODE_CONSTANT
        ECNN_PAD_MODE_REFLECT
        ECNN_PAD_MODE_EDGE
        ECNN_PAD_MODE_WRAP

    ctypedef enum ecnn_binary_op:
        ECNN_ADD
        ECNN_SUB
        ECNN_MUL
        ECNN_DIV
        ECNN_MAX
        ECNN_MIN
        ECNN_POW
        ECNN_GREATER
        ECNN_LESS
        ECNN_GREATER_EQUAL
        ECNN_LESS_EQUAL
        ECNN_EQUAL

    ctypedef enum ecnn_unary_op:
        ECNN_TANH
        ECNN_EXP
        ECNN_LOG
        ECNN_SQRT
        ECNN_NEG
        ECNN_ABS
        ECNN_RECIPROCAL
        ECNN_ERF
        ECNN_SOFTSIGN
        ECNN_SOFTPLUS
        ECNN_SIN
        ECNN_COS
        ECNN_FLOOR
        ECNN_CEIL
        ECNN_ROUND
        ECNN_SIGN
        ECNN_ELU
        ECNN_LEAKY_RELU
        ECNN_SELU
        ECNN_CELU
        ECNN_HARD_SIGMOID
        ECNN_THRESHOLDED_RELU
        ECNN_HARD_SWISH
        ECNN_MISH

    ctypedef enum ecnn_reduce_op:
        ECNN_REDUCE_MEAN
        ECNN_REDUCE_SUM
        ECNN_REDUCE_MAX
        ECNN_REDUCE_MIN
        ECNN_REDUCE_SUM_SQUARE
        ECNN_REDUCE_L2
        ECNN_REDUCE_L1
        ECNN_REDUCE_LOG_SUM_EXP

    ctypedef struct ecnn_window:
        int64_t kernel_h, kernel_w
        int64_t stride_h, stride_w
        int64_t dilation_h, dilation_w
        int64_t pad_top, pad_left, pad_bottom, pad_right

    const char *ecnn_status_message(int status)
    int ecnn_resolve_padding(ecnn_padding mode, int64_t in_h, int64_t in_w, ecnn_window *win)
    int ecnn_window_output(const ecnn_window *win, int64_t in_h, int64_t in_w, int64_t *out_h, int64_t *out_w)
    int ecnn_conv2d_shape(const ecnn_window *win, ecnn_shape4 inp, int64_t out_channels, ecnn_shape4 *out)
    int ecnn_grouped_conv2d_shape(const ecnn_window *win, ecnn_shape4 inp, int64_t out_channels, int64_t groups,
                                  ecnn_shape4 *out)
    int ecnn_pad_shape(int ndim, const int64_t *in_shape, const int64_t *begin, const int64_t *end, int64_t *out_shape)
    int ecnn_pool2d_shape(const ecnn_window *win, ecnn_shape4 inp, ecnn_shape4 *out)
    int ecnn_conv2d_nhwc_f32(const float *inp, ecnn_shape4 in_shape, const float *weights, const float *bias,
                             int64_t out_channels, const ecnn_window *win, float *out)
    int ecnn_grouped_conv2d_nhwc_f32(const float *inp, ecnn_shape4 in_shape, const float *weights, const float *bias,
                                     int64_t out_channels, int64_t groups, const ecnn_window *win, float *out)
    int ecnn_maxpool2d_nhwc_f32(const float *inp, ecnn_shape4 in_shape, const ecnn_window *win, float *out)
    int ecnn_avgpool2d_nhwc_f32(const float *inp, ecnn_shape4 in_shape, const ecnn_window *win,
                                int count_include_pad, float *out)
    int ecnn_dense_f32(const float *x, int64_t rows, int64_t in_features, const float *weights, const float *bias,
                       int64_t out_features, float *out)
    int ecnn_relu_f32(const float *x, int64_t count, float *out)
    int ecnn_sigmoid_f32(const float *x, int64_t count, float *out)
    int ecnn_unary_f32(ecnn_unary_op op, const float *x, int64_t count, float alpha, float beta, float *out)
    int ecnn_softmax_f32(const float *x, int64_t rows, int64_t cols, float *out)
    int ecnn_log_softmax_f32(const float *x, int64_t rows, int64_t cols, float *out)
    int ecnn_clip_f32(const float *x, int64_t count, float lo, float hi, float *out)
    int ecnn_reduce_f32(ecnn_reduce_op op, const float *x, int64_t outer, int64_t reduced, int64_t inner, float *out)
    int ecnn_pad_f32(const float *inp, int ndim, const int64_t *in_shape, const int64_t *begin, const int64_t *end,
                     ecnn_pad_mode mode, float value, float *out)
    int ecnn_binary_f32(ecnn_binary_op op, int ndim, const int64_t *out_shape, const float *a, const int64_t *a_strides,
                        const float *b, const int64_t *b_strides, float *out)

    # Quantisation (csrc/quant.c)
    int ecnn_quantize_linear_u8(const float *x, int64_t outer, int64_t channels, int64_t inner, const float *scale,
                                const uint8_t *zero_point, uint8_t *out)
    int ecnn_quantize_linear_i8(const float *x, int64_t outer, int64_t channels, int64_t inner, const float *scale,
                                const int8_t *zero_point, int8_t *out)
    int ecnn_dequantize_linear_u8(const uint8_t *x, int64_t outer, int64_t channels, int64_t inner,
                                  const float *scale, const uint8_t *zero_point, float *out)
    int ecnn_dequantize_linear_i8(const int8_t *x, int64_t outer, int64_t channels, int64_t inner,
                                  const float *scale, const int8_t *zero_point, float *out)
    int ecnn_dequantize_linear_i32(const int32_t *x, int64_t outer, int64_t channels, int64_t inner,
                                   const float *scale, const int32_t *zero_point, float *out)
