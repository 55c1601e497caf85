/* Dense layer: out[r, m] = bias[m] + sum over k of x[r, k] * w[k, m], summed in k order.
 * The innermost loop runs over m (contiguous in w and out), so it vectorises without
 * reassociating the sum. */
#include "ecnn_internal.h"

ECNN_MULTIVERSION
static void dense_run(const float *restrict x, int64_t rows, int64_t in_features, const float *restrict weights,
                      const float *restrict bias, int64_t out_features, float *restrict out)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *restrict xr = x + r * in_features;
        float *restrict dst = out + r * out_features;
        for (int64_t m = 0; m < out_features; m++)
            dst[m] = bias != NULL ? bias[m] : 0.0f;
        for (int64_t k = 0; k < in_features; k++) {
            const float xv = xr[k];
            const float *restrict wk = weights + k * out_features;
            for (int64_t m = 0; m < out_features; m++)
                dst[m] += xv * wk[m];
        }
    }
}

int ecnn_dense_f32(const float *x, int64_t rows, int64_t in_features, const float *weights, const float *bias,
                   int64_t out_features, float *out)
{
    if (x == NULL || weights == NULL || out == NULL)
        return ECNN_ERR_NULL;
    int64_t count;
    int status = ecnn_checked_count(rows, in_features, 1, 1, &count);
    if (status == ECNN_OK)
        status = ecnn_checked_count(in_features, out_features, 1, 1, &count);
    if (status == ECNN_OK)
        status = ecnn_checked_count(rows, out_features, 1, 1, &count);
    if (status != ECNN_OK)
        return status;
    dense_run(x, rows, in_features, weights, bias, out_features, out);
    return ECNN_OK;
}
