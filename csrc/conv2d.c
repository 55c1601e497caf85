/* 2-D convolution (dense and grouped), NHWC activations, HWIO weights.
 *
 * Each output pixel is out[m] = bias[m] + sum over (ky, kx, c) of x[iy, ix, c] * w[ky, kx, c, m],
 * summed in that order. The innermost loop runs over m (contiguous in both w and out), so
 * it vectorises without reassociating any sum. Away from the borders, PIXELS output pixels
 * of one row share every weight load and keep their CHANNELS partial sums in registers;
 * border pixels and channel tails take the clipped one-pixel loop.
 */
#include "ecnn_internal.h"

enum { PIXELS = 4, CHANNELS = 16 }; /* conv_block is written out for PIXELS = 4 */

typedef struct {
    const float *input;   /* NHWC */
    ecnn_shape4 in;
    const float *weights; /* HWIO */
    const float *bias;    /* out_channels or NULL */
    int64_t out_channels;
    ecnn_window win;
    ecnn_shape4 out_shape;
    float *output;        /* NHWC, out_shape */
} conv_args;

/* Channels [m0, m1) of output pixel (oy, ox) of image `image`, skipping taps in the padding. */
static ECNN_ALWAYS_INLINE void conv_pixel(const conv_args *a, int64_t image, int64_t oy, int64_t ox, int64_t m0,
                                          int64_t m1)
{
    const int64_t cin = a->in.c, m_all = a->out_channels;
    const float *restrict src = a->input + image * a->in.h * a->in.w * cin;
    float *restrict dst = a->output + ((image * a->out_shape.h + oy) * a->out_shape.w + ox) * m_all;
    for (int64_t m = m0; m < m1; m++)
        dst[m] = a->bias != NULL ? a->bias[m] : 0.0f;
    for (int64_t ky = 0; ky < a->win.kernel_h; ky++) {
        const int64_t iy = oy * a->win.stride_h - a->win.pad_top + ky * a->win.dilation_h;
        if (iy < 0 || iy >= a->in.h)
            continue;
        for (int64_t kx = 0; kx < a->win.kernel_w; kx++) {
            const int64_t ix = ox * a->win.stride_w - a->win.pad_left + kx * a->win.dilation_w;
            if (ix < 0 || ix >= a->in.w)
                continue;
            const float *restrict x = src + (iy * a->in.w + ix) * cin;
            const float *restrict w = a->weights + (ky * a->win.kernel_w + kx) * cin * m_all;
            for (int64_t c = 0; c < cin; c++) {
                const float xv = x[c];
                const float *restrict wc = w + c * m_all;
                for (int64_t m = m0; m < m1; m++)
                    dst[m] += xv * wc[m];
            }
        }
    }
}

/* Channels [m0, m0 + CHANNELS) of PIXELS neighbouring output pixels whose windows lie inside the input. */
static ECNN_ALWAYS_INLINE void conv_block(const conv_args *a, int64_t image, int64_t oy, int64_t ox, int64_t m0)
{
    const int64_t cin = a->in.c, m_all = a->out_channels;
    const int64_t pixel_step = a->win.stride_w * cin;
    const float *restrict src = a->input + image * a->in.h * a->in.w * cin;
    /* One accumulator row per pixel, updated in one loop over j: GCC vectorises that loop
     * and keeps the four rows in registers. */
    float acc0[CHANNELS], acc1[CHANNELS], acc2[CHANNELS], acc3[CHANNELS];
    for (int j = 0; j < CHANNELS; j++) {
        const float b = a->bias != NULL ? a->bias[m0 + j] : 0.0f;
        acc0[j] = acc1[j] = acc2[j] = acc3[j] = b;
    }
    for (int64_t ky = 0; ky < a->win.kernel_h; ky++) {
        const int64_t iy = oy * a->win.stride_h - a->win.pad_top + ky * a->win.dilation_h;
        for (int64_t kx = 0; kx < a->win.kernel_w; kx++) {
            const int64_t ix = ox * a->win.stride_w - a->win.pad_left + kx * a->win.dilation_w;
            const float *restrict x = src + (iy * a->in.w + ix) * cin;
            const float *restrict w = a->weights + (ky * a->win.kernel_w + kx) * cin * m_all + m0;
            for (int64_t c = 0; c < cin; c++) {
                const float *restrict wc = w + c * m_all;
                const float x0 = x[c], x1 = x[pixel_step + c], x2 = x[2 * pixel_step + c], x3 = x[3 * pixel_step + c];
                for (int j = 0; j < CHANNELS; j++) {
                    acc0[j] += x0 * wc[j];
                    acc1[j] += x1 * wc[j];
                    acc2[j] += x2 * wc[j];
                    acc3[j] += x3 * wc[j];
                }
            }
        }
    }
    float *restrict dst = a->output + ((image * a->out_shape.h + oy) * a->out_shape.w + ox) * m_all + m0;
    for (int j = 0; j < CHANNELS; j++) {
        dst[j] = acc0[j];
        dst[m_all + j] = acc1[j];
        dst[2 * m_all + j] = acc2[j];
        dst[3 * m_all + j] = acc3[j];
    }
}

/* First output coordinate whose window starts inside the input, and one past the last whose window ends inside. */
static void interior_range(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t dilation, int64_t pad,
                           int64_t *first, int64_t *end)
{
    int64_t lo = 0;
    while (lo < out && lo * stride - pad < 0)
        lo++;
    int64_t hi = lo;
    while (hi < out && hi * stride - pad + (kernel - 1) * dilation < in)
        hi++;
    *first = lo;
    *end = hi;
}

ECNN_MULTIVERSION
static void conv2d_run(const conv_args *a)
{
    int64_t y_first, y_end, x_first, x_end;
    interior_range(a->in.h, a->out_shape.h, a->win.kernel_h, a->win.stride_h, a->win.dilation_h, a->win.pad_top, &y_first,
                   &y_end);
    interior_range(a->in.w, a->out_shape.w, a->win.kernel_w, a->win.stride_w, a->win.dilation_w, a->win.pad_left, &x_first,
                   &x_end);
    const int64_t m_all = a->out_channels;
    /* Channel blocks outermost: one block's weights (kernel_h * kernel_w * in.c * CHANNELS floats)
     * stay in cache while every pixel is visited. */
    for (int64_t m0 = 0; m0 < m_all; m0 += CHANNELS) {
        const int64_t m1 = m0 + CHANNELS <= m_all ? m0 + CHANNELS : m_all;
        const int full = m1 - m0 == CHANNELS;
        for (int64_t image = 0; image < a->in.n; image++) {
            for (int64_t oy = 0; oy < a->out_shape.h; oy++) {
                const int row_inside = oy >= y_first && oy < y_end;
                int64_t ox = 0;
                while (ox < a->out_shape.w) {
                    if (full && row_inside && ox >= x_first && ox < x_end && x_end - x_first >= PIXELS) {
                        /* A short last block is moved back to end at x_end: it recomputes a few
                         * pixels (to the same values) rather than sending them to conv_pixel. */
                        const int64_t start = ox + PIXELS <= x_end ? ox : x_end - PIXELS;
                        conv_block(a, image, oy, start, m0);
                        ox = start + PIXELS;
                    } else {
                        conv_pixel(a, image, oy, ox, m0, m1);
                        ox += 1;
                    }
                }
            }
        }
    }
}

int ecnn_conv2d_nhwc_f32(const float *input, ecnn_shape4 in, const float *weights, const float *bias,
                         int64_t out_channels, const ecnn_window *win, float *out)
{
    if (input == NULL || weights == NULL || win == NULL || out == NULL)
        return ECNN_ERR_NULL;
    conv_args a = {input, in, weights, bias, out_channels, *win, {0, 0, 0, 0}, out};
    const int status = ecnn_conv2d_shape(win, in, out_channels, &a.out_shape);
    if (status != ECNN_OK)
        return status;
    conv2d_run(&a);
    return ECNN_OK;
}

/* Every output pixel of a grouped convolution, skipping taps in the padding. Depthwise (one input
 * and one output channel per group) multiplies channel by channel; otherwise each group's input
 * channel c feeds that group's output channels, which are contiguous. */
ECNN_MULTIVERSION
static void grouped_run(const conv_args *a, int64_t groups)
{
    const int64_t cin = a->in.c, m_all = a->out_channels;
    const int64_t cin_g = cin / groups, cout_g = m_all / groups;
    for (int64_t image = 0; image < a->in.n; image++) {
        const float *restrict src = a->input + image * a->in.h * a->in.w * cin;
        for (int64_t oy = 0; oy < a->out_shape.h; oy++) {
            for (int64_t ox = 0; ox < a->out_shape.w; ox++) {
                float *restrict dst = a->output + ((image * a->out_shape.h + oy) * a->out_shape.w + ox) * m_all;
                for (int64_t m = 0; m < m_all; m++)
                    dst[m] = a->bias != NULL ? a->bias[m] : 0.0f;
                for (int64_t ky = 0; ky < a->win.kernel_h; ky++) {
                    const int64_t iy = oy * a->win.stride_h - a->win.pad_top + ky * a->win.dilation_h;
                    if (iy < 0 || iy >= a->in.h)
                        continue;
                    for (int64_t kx = 0; kx < a->win.kernel_w; kx++) {
                        const int64_t ix = ox * a->win.stride_w - a->win.pad_left + kx * a->win.dilation_w;
                        if (ix < 0 || ix >= a->in.w)
                            continue;
                        const float *restrict x = src + (iy * a->in.w + ix) * cin;
                        const float *restrict w = a->weights + (ky * a->win.kernel_w + kx) * cin_g * m_all;
                        if (cin_g == 1 && cout_g == 1) {
                            for (int64_t m = 0; m < m_all; m++)
                                dst[m] += x[m] * w[m];
                            continue;
                        }
                        for (int64_t g = 0; g < groups; g++) {
                            for (int64_t c = 0; c < cin_g; c++) {
                                const float xv = x[g * cin_g + c];
                                const float *restrict wc = w + c * m_all + g * cout_g;
                                float *restrict dg = dst + g * cout_g;
                                for (int64_t j = 0; j < cout_g; j++)
                                    dg[j] += xv * wc[j];
                            }
                        }
                    }
                }
            }
        }
    }
}

int ecnn_grouped_conv2d_nhwc_f32(const float *input, ecnn_shape4 in, const float *weights, const float *bias,
                                 int64_t out_channels, int64_t groups, const ecnn_window *win, float *out)
{
    if (input == NULL || weights == NULL || win == NULL || out == NULL)
        return ECNN_ERR_NULL;
    conv_args a = {input, in, weights, bias, out_channels, *win, {0, 0, 0, 0}, out};
    const int status = ecnn_grouped_conv2d_shape(win, in, out_channels, groups, &a.out_shape);
    if (status != ECNN_OK)
        return status;
    if (groups == 1)
        conv2d_run(&a);
    else
        grouped_run(&a, groups);
    return ECNN_OK;
}
