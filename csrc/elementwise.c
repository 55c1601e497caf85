/* Activations and the broadcast add/mul that bias and Rescaling become. */
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

static int check_broadcast(const float *a, int64_t count, const float *b, int64_t period, const float *out)
{
    if (a == NULL || b == NULL || out == NULL)
        return ECNN_ERR_NULL;
    if (count < 1 || period < 1 || count % period != 0)
        return ECNN_ERR_SHAPE;
    return ECNN_OK;
}

int ecnn_add_f32(const float *a, int64_t count, const float *b, int64_t period, float *out)
{
    const int status = check_broadcast(a, count, b, period, out);
    if (status != ECNN_OK)
        return status;
    for (int64_t start = 0; start < count; start += period)
        for (int64_t j = 0; j < period; j++)
            out[start + j] = a[start + j] + b[j];
    return ECNN_OK;
}

int ecnn_mul_f32(const float *a, int64_t count, const float *b, int64_t period, float *out)
{
    const int status = check_broadcast(a, count, b, period, out);
    if (status != ECNN_OK)
        return status;
    for (int64_t start = 0; start < count; start += period)
        for (int64_t j = 0; j < period; j++)
            out[start + j] = a[start + j] * b[j];
    return ECNN_OK;
}
