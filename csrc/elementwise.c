/* Activations, clipping, means, and the broadcast arithmetic that bias, Rescaling and merges become. */
#include <math.h>

#include "ecnn_internal.h"

int ecnn_relu_f32(const float *x, int64_t count, float *out)
{
    if (x == NULL || out == NULL)
        return ECNN_ERR_NULL;
    if (count < 1)
        return ECNN_ERR_SHAPE;
    for (int64_t i = 0; i < count; i++)
        out[i] = x[i] < 0.0f ? 0.0f : x[i]; /* NaN stays NaN */
    return ECNN_OK;
}

int ecnn_sigmoid_f32(const float *x, int64_t count, float *out)
{
    if (x == NULL || out == NULL)
        return ECNN_ERR_NULL;
    if (count < 1)
        return ECNN_ERR_SHAPE;
    /* In double, rounded once: exp(-x) overflowing to inf gives exactly 0. */
    for (int64_t i = 0; i < count; i++)
        out[i] = (float)(1.0 / (1.0 + exp(-(double)x[i])));
    return ECNN_OK;
}

int ecnn_clip_f32(const float *x, int64_t count, float lo, float hi, float *out)
{
    if (x == NULL || out == NULL)
        return ECNN_ERR_NULL;
    if (count < 1)
        return ECNN_ERR_SHAPE;
    for (int64_t i = 0; i < count; i++) {
        const float v = x[i] < lo ? lo : x[i]; /* NaN fails both tests: stays NaN */
        out[i] = v > hi ? hi : v;
    }
    return ECNN_OK;
}

enum { MEAN_BLOCK = 64 }; /* inner values summed side by side in double, on the stack */

ECNN_MULTIVERSION
static void reduce_mean_run(const float *restrict x, int64_t outer, int64_t reduced, int64_t inner, float *restrict out)
{
    for (int64_t o = 0; o < outer; o++) {
        const float *restrict src = x + o * reduced * inner;
        for (int64_t i0 = 0; i0 < inner; i0 += MEAN_BLOCK) {
            const int64_t width = inner - i0 < MEAN_BLOCK ? inner - i0 : MEAN_BLOCK;
            double acc[MEAN_BLOCK] = {0.0};
            for (int64_t k = 0; k < reduced; k++) {
                const float *restrict row = src + k * inner + i0;
                for (int64_t j = 0; j < width; j++)
                    acc[j] += (double)row[j];
            }
            for (int64_t j = 0; j < width; j++)
                out[o * inner + i0 + j] = (float)(acc[j] / (double)reduced);
        }
    }
}

int ecnn_reduce_mean_f32(const float *x, int64_t outer, int64_t reduced, int64_t inner, float *out)
{
    if (x == NULL || out == NULL)
        return ECNN_ERR_NULL;
    int64_t count;
    const int status = ecnn_checked_count(outer, reduced, inner, 1, &count);
    if (status != ECNN_OK)
        return status;
    reduce_mean_run(x, outer, reduced, inner, out);
    return ECNN_OK;
}

int ecnn_softmax_f32(const float *x, int64_t rows, int64_t cols, float *out)
{
    if (x == NULL || out == NULL)
        return ECNN_ERR_NULL;
    int64_t count;
    const int status = ecnn_checked_count(rows, cols, 1, 1, &count);
    if (status != ECNN_OK)
        return status;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *dst = out + r * cols;
        float top = xr[0];
        for (int64_t j = 1; j < cols; j++)
            top = (xr[j] > top || xr[j] != xr[j]) ? xr[j] : top;
        double sum = 0.0;
        for (int64_t j = 0; j < cols; j++)
            sum += exp((double)xr[j] - (double)top);
        for (int64_t j = 0; j < cols; j++)
            dst[j] = (float)(exp((double)xr[j] - (double)top) / sum);
    }
    return ECNN_OK;
}

/* One output row of n values: a and b step by sa and sb floats. The contiguous and one-scalar
 * cases get their own loops so that they vectorise. */
#define BINARY_ROW(name, expr)                                                                                   \
    ECNN_MULTIVERSION                                                                                            \
    static void name(const float *restrict a, int64_t sa, const float *restrict b, int64_t sb, int64_t n,       \
                     float *restrict out)                                                                        \
    {                                                                                                            \
        if (sa == 1 && sb == 1) {                                                                                \
            for (int64_t i = 0; i < n; i++) {                                                                    \
                const float x = a[i], y = b[i];                                                                  \
                out[i] = (expr);                                                                                 \
            }                                                                                                    \
        } else if (sa == 1 && sb == 0) {                                                                         \
            const float y = b[0];                                                                                \
            for (int64_t i = 0; i < n; i++) {                                                                    \
                const float x = a[i];                                                                            \
                out[i] = (expr);                                                                                 \
            }                                                                                                    \
        } else if (sa == 0 && sb == 1) {                                                                         \
            const float x = a[0];                                                                                \
            for (int64_t i = 0; i < n; i++) {                                                                    \
                const float y = b[i];                                                                            \
                out[i] = (expr);                                                                                 \
            }                                                                                                    \
        } else {                                                                                                 \
            for (int64_t i = 0; i < n; i++) {                                                                    \
                const float x = a[i * sa], y = b[i * sb];                                                        \
                out[i] = (expr);                                                                                 \
            }                                                                                                    \
        }                                                                                                        \
    }

BINARY_ROW(add_row, x + y)
BINARY_ROW(sub_row, x - y)
BINARY_ROW(mul_row, x * y)
BINARY_ROW(div_row, x / y)

typedef void (*binary_row)(const float *, int64_t, const float *, int64_t, int64_t, float *);

int ecnn_binary_f32(ecnn_binary_op op, int ndim, const int64_t *out_shape, const float *a, const int64_t *a_strides,
                    const float *b, const int64_t *b_strides, float *out)
{
    if (out_shape == NULL || a == NULL || a_strides == NULL || b == NULL || b_strides == NULL || out == NULL)
        return ECNN_ERR_NULL;
    if (ndim < 1 || ndim > ECNN_MAX_DIMS)
        return ECNN_ERR_PARAM;
    binary_row row;
    switch (op) {
    case ECNN_ADD: row = add_row; break;
    case ECNN_SUB: row = sub_row; break;
    case ECNN_MUL: row = mul_row; break;
    case ECNN_DIV: row = div_row; break;
    default: return ECNN_ERR_PARAM;
    }
    int64_t rows = 1;
    for (int d = 0; d < ndim - 1; d++) {
        int64_t count;
        const int status = ecnn_checked_count(rows, out_shape[d], out_shape[ndim - 1], 1, &count);
        if (status != ECNN_OK)
            return status;
        rows *= out_shape[d];
    }
    if (out_shape[ndim - 1] < 1)
        return ECNN_ERR_SHAPE;
    const int64_t n = out_shape[ndim - 1];
    int64_t index[ECNN_MAX_DIMS] = {0}; /* the current row's position over axes [0, ndim - 1) */
    const float *pa = a, *pb = b;
    for (int64_t r = 0; r < rows; r++) {
        row(pa, a_strides[ndim - 1], pb, b_strides[ndim - 1], n, out + r * n);
        /* Step to the next row like an odometer: the last outer axis fastest. */
        for (int d = ndim - 2; d >= 0; d--) {
            pa += a_strides[d];
            pb += b_strides[d];
            if (++index[d] < out_shape[d])
                break;
            pa -= a_strides[d] * out_shape[d];
            pb -= b_strides[d] * out_shape[d];
            index[d] = 0;
        }
    }
    return ECNN_OK;
}
