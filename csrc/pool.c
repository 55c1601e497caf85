/* Max and average pooling, NHWC. The innermost loop runs over channels (contiguous),
 * so it vectorises; each window is clipped to the input, so padding never enters. */
#include "ecnn_internal.h"

typedef struct {
    int64_t y0, y1, x0, x1; /* input rows [y0, y1) and columns [x0, x1) under the window */
} clip;

static ECNN_ALWAYS_INLINE clip window_clip(const ecnn_window *win, ecnn_shape4 in, int64_t oy, int64_t ox)
{
    clip r;
    r.y0 = oy * win->stride_h - win->pad_top;
    r.x0 = ox * win->stride_w - win->pad_left;
    r.y1 = r.y0 + win->kernel_h;
    r.x1 = r.x0 + win->kernel_w;
    r.y0 = r.y0 < 0 ? 0 : r.y0;
    r.x0 = r.x0 < 0 ? 0 : r.x0;
    r.y1 = r.y1 > in.h ? in.h : r.y1;
    r.x1 = r.x1 > in.w ? in.w : r.x1;
    return r; /* never empty: ecnn_pool2d_shape keeps pads below the kernel size */
}

ECNN_MULTIVERSION
static void maxpool_run(const float *restrict input, ecnn_shape4 in, const ecnn_window *win, ecnn_shape4 out,
                        float *restrict output)
{
    const int64_t c_all = in.c;
    for (int64_t image = 0; image < in.n; image++) {
        const float *restrict src = input + image * in.h * in.w * c_all;
        for (int64_t oy = 0; oy < out.h; oy++) {
            for (int64_t ox = 0; ox < out.w; ox++) {
                const clip r = window_clip(win, in, oy, ox);
                float *restrict dst = output + ((image * out.h + oy) * out.w + ox) * c_all;
                const float *restrict first = src + (r.y0 * in.w + r.x0) * c_all;
                for (int64_t c = 0; c < c_all; c++)
                    dst[c] = first[c];
                for (int64_t y = r.y0; y < r.y1; y++) {
                    for (int64_t x = y == r.y0 ? r.x0 + 1 : r.x0; x < r.x1; x++) {
                        const float *restrict v = src + (y * in.w + x) * c_all;
                        /* "greater, or NaN" keeps a NaN once seen: NaN in, NaN out. */
                        for (int64_t c = 0; c < c_all; c++)
                            dst[c] = (v[c] > dst[c] || v[c] != v[c]) ? v[c] : dst[c];
                    }
                }
            }
        }
    }
}

ECNN_MULTIVERSION
static void avgpool_run(const float *restrict input, ecnn_shape4 in, const ecnn_window *win, int count_include_pad,
                        ecnn_shape4 out, float *restrict output)
{
    const int64_t c_all = in.c;
    for (int64_t image = 0; image < in.n; image++) {
        const float *restrict src = input + image * in.h * in.w * c_all;
        for (int64_t oy = 0; oy < out.h; oy++) {
            for (int64_t ox = 0; ox < out.w; ox++) {
                const clip r = window_clip(win, in, oy, ox);
                float *restrict dst = output + ((image * out.h + oy) * out.w + ox) * c_all;
                for (int64_t c = 0; c < c_all; c++)
                    dst[c] = 0.0f;
                for (int64_t y = r.y0; y < r.y1; y++) {
                    for (int64_t x = r.x0; x < r.x1; x++) {
                        const float *restrict v = src + (y * in.w + x) * c_all;
                        for (int64_t c = 0; c < c_all; c++)
                            dst[c] += v[c];
                    }
                }
                const int64_t taps = count_include_pad ? win->kernel_h * win->kernel_w : (r.y1 - r.y0) * (r.x1 - r.x0);
                const float count = (float)taps;
                for (int64_t c = 0; c < c_all; c++)
                    dst[c] /= count;
            }
        }
    }
}

int ecnn_maxpool2d_nhwc_f32(const float *input, ecnn_shape4 in, const ecnn_window *win, float *out)
{
    if (input == NULL || win == NULL || out == NULL)
        return ECNN_ERR_NULL;
    ecnn_shape4 out_shape;
    const int status = ecnn_pool2d_shape(win, in, &out_shape);
    if (status != ECNN_OK)
        return status;
    maxpool_run(input, in, win, out_shape, out);
    return ECNN_OK;
}

int ecnn_avgpool2d_nhwc_f32(const float *input, ecnn_shape4 in, const ecnn_window *win, int count_include_pad,
                            float *out)
{
    if (input == NULL || win == NULL || out == NULL)
        return ECNN_ERR_NULL;
    ecnn_shape4 out_shape;
    const int status = ecnn_pool2d_shape(win, in, &out_shape);
    if (status != ECNN_OK)
        return status;
    avgpool_run(input, in, win, count_include_pad != 0, out_shape, out);
    return ECNN_OK;
}
