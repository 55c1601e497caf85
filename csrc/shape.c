/* Status messages, padding rules and output shapes: the one place sizes are computed. */
#include "ecnn_internal.h"

const char *ecnn_status_message(int status)
{
    static const char *const messages[] = {
        "ok",
        "a required pointer is NULL",
        "bad shape: a size < 1, the window does not fit the padded input, or groups do not divide the channels",
        "bad parameter: kernel/stride/dilation/groups < 1, negative pad, pool pad >= kernel, unknown mode or rank",
        "size overflow: the element count does not fit in int64 bytes",
    };
    const int count = (int)(sizeof messages / sizeof messages[0]);
    if (status > 0 || -status >= count)
        return "unknown ecnn status";
    return messages[-status];
}

static int check_window_params(const ecnn_window *win)
{
    if (win->kernel_h < 1 || win->kernel_w < 1 || win->stride_h < 1 || win->stride_w < 1 || win->dilation_h < 1 ||
        win->dilation_w < 1)
        return ECNN_ERR_PARAM;
    if (win->pad_top < 0 || win->pad_left < 0 || win->pad_bottom < 0 || win->pad_right < 0)
        return ECNN_ERR_PARAM;
    /* Keep every index computation far from int64 overflow. */
    const int64_t big = INT64_C(1) << 31;
    if (win->kernel_h > big || win->kernel_w > big || win->stride_h > big || win->stride_w > big ||
        win->dilation_h > big || win->dilation_w > big || win->pad_top > big || win->pad_left > big ||
        win->pad_bottom > big || win->pad_right > big)
        return ECNN_ERR_OVERFLOW;
    return ECNN_OK;
}

/* TensorFlow's "same": out = ceil(in / stride), total pad = what that output needs, split so
 * the odd pixel goes after (upper) or before (lower). */
static void same_pads(int64_t in, int64_t kernel, int64_t stride, int64_t dilation, int lower, int64_t *before,
                      int64_t *after)
{
    const int64_t out = (in + stride - 1) / stride;
    const int64_t extent = (kernel - 1) * dilation + 1;
    int64_t total = (out - 1) * stride + extent - in;
    if (total < 0)
        total = 0;
    const int64_t small = total / 2;
    *before = lower ? total - small : small;
    *after = total - *before;
}

int ecnn_resolve_padding(ecnn_padding mode, int64_t in_h, int64_t in_w, ecnn_window *win)
{
    if (win == NULL)
        return ECNN_ERR_NULL;
    if (in_h < 1 || in_w < 1)
        return ECNN_ERR_SHAPE;
    switch (mode) {
    case ECNN_PAD_EXPLICIT:
        break;
    case ECNN_PAD_VALID:
        win->pad_top = win->pad_left = win->pad_bottom = win->pad_right = 0;
        break;
    case ECNN_PAD_SAME_UPPER:
    case ECNN_PAD_SAME_LOWER: {
        win->pad_top = win->pad_left = win->pad_bottom = win->pad_right = 0;
        const int status = check_window_params(win);
        if (status != ECNN_OK)
            return status;
        const int lower = mode == ECNN_PAD_SAME_LOWER;
        same_pads(in_h, win->kernel_h, win->stride_h, win->dilation_h, lower, &win->pad_top, &win->pad_bottom);
        same_pads(in_w, win->kernel_w, win->stride_w, win->dilation_w, lower, &win->pad_left, &win->pad_right);
        break;
    }
    default:
        return ECNN_ERR_PARAM;
    }
    return check_window_params(win);
}

static int window_extent(int64_t in, int64_t kernel, int64_t stride, int64_t dilation, int64_t before, int64_t after,
                         int64_t *out)
{
    const int64_t padded = in + before + after;
    const int64_t extent = (kernel - 1) * dilation + 1;
    if (padded < extent)
        return ECNN_ERR_SHAPE;
    *out = (padded - extent) / stride + 1;
    return ECNN_OK;
}

int ecnn_window_output(const ecnn_window *win, int64_t in_h, int64_t in_w, int64_t *out_h, int64_t *out_w)
{
    if (win == NULL || out_h == NULL || out_w == NULL)
        return ECNN_ERR_NULL;
    if (in_h < 1 || in_w < 1)
        return ECNN_ERR_SHAPE;
    if (in_h > INT64_C(1) << 40 || in_w > INT64_C(1) << 40)
        return ECNN_ERR_OVERFLOW;
    int status = check_window_params(win);
    if (status != ECNN_OK)
        return status;
    status = window_extent(in_h, win->kernel_h, win->stride_h, win->dilation_h, win->pad_top, win->pad_bottom, out_h);
    if (status != ECNN_OK)
        return status;
    return window_extent(in_w, win->kernel_w, win->stride_w, win->dilation_w, win->pad_left, win->pad_right, out_w);
}

int ecnn_grouped_conv2d_shape(const ecnn_window *win, ecnn_shape4 in, int64_t out_channels, int64_t groups,
                              ecnn_shape4 *out)
{
    if (win == NULL || out == NULL)
        return ECNN_ERR_NULL;
    if (groups < 1)
        return ECNN_ERR_PARAM;
    int status = ecnn_check_shape4(in);
    if (status != ECNN_OK)
        return status;
    if (out_channels < 1 || in.c % groups != 0 || out_channels % groups != 0)
        return ECNN_ERR_SHAPE;
    ecnn_shape4 result = {in.n, 0, 0, out_channels};
    status = ecnn_window_output(win, in.h, in.w, &result.h, &result.w);
    if (status != ECNN_OK)
        return status;
    int64_t weights;
    status = ecnn_checked_count(win->kernel_h, win->kernel_w, in.c / groups, out_channels, &weights);
    if (status != ECNN_OK)
        return status;
    status = ecnn_check_shape4(result);
    if (status != ECNN_OK)
        return status;
    *out = result;
    return ECNN_OK;
}

int ecnn_conv2d_shape(const ecnn_window *win, ecnn_shape4 in, int64_t out_channels, ecnn_shape4 *out)
{
    return ecnn_grouped_conv2d_shape(win, in, out_channels, 1, out);
}

int ecnn_pool2d_shape(const ecnn_window *win, ecnn_shape4 in, ecnn_shape4 *out)
{
    if (win == NULL || out == NULL)
        return ECNN_ERR_NULL;
    int status = ecnn_check_shape4(in);
    if (status != ECNN_OK)
        return status;
    /* Pads below the kernel size (ONNX requires it) and no dilation keep every window
     * overlapping the input, so no average is over zero taps. */
    if (win->dilation_h != 1 || win->dilation_w != 1)
        return ECNN_ERR_PARAM;
    if (win->pad_top >= win->kernel_h || win->pad_bottom >= win->kernel_h || win->pad_left >= win->kernel_w ||
        win->pad_right >= win->kernel_w)
        return ECNN_ERR_PARAM;
    ecnn_shape4 result = {in.n, 0, 0, in.c};
    status = ecnn_window_output(win, in.h, in.w, &result.h, &result.w);
    if (status != ECNN_OK)
        return status;
    status = ecnn_check_shape4(result);
    if (status != ECNN_OK)
        return status;
    *out = result;
    return ECNN_OK;
}

int ecnn_pad_shape(int ndim, const int64_t *in_shape, const int64_t *begin, const int64_t *end, int64_t *out_shape)
{
    if (in_shape == NULL || begin == NULL || end == NULL || out_shape == NULL)
        return ECNN_ERR_NULL;
    if (ndim < 1 || ndim > ECNN_MAX_DIMS)
        return ECNN_ERR_PARAM;
    const int64_t big = INT64_C(1) << 40; /* keeps every sum below far from overflow */
    int64_t total = 1;
    for (int d = 0; d < ndim; d++) {
        if (begin[d] > big || end[d] > big || begin[d] < -big || end[d] < -big || in_shape[d] > big)
            return ECNN_ERR_OVERFLOW;
        const int64_t crop = (begin[d] < 0 ? -begin[d] : 0) + (end[d] < 0 ? -end[d] : 0);
        if (in_shape[d] < 1 || in_shape[d] - crop < 1)
            return ECNN_ERR_SHAPE;
        out_shape[d] = in_shape[d] + begin[d] + end[d];
        if (total > (INT64_MAX / (int64_t)sizeof(float)) / out_shape[d])
            return ECNN_ERR_OVERFLOW;
        total *= out_shape[d];
    }
    return ECNN_OK;
}
