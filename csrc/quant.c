/* QuantizeLinear / DequantizeLinear exactly as the ONNX operators define them.
 *
 *   quantize:   y = saturate(round_half_to_even(x / scale) + zero_point)
 *   dequantize: y = ((float)x - (float)zero_point) * scale
 *
 * The division and the product are single float32 operations, as in onnx's reference
 * implementation (numpy float32 arithmetic) and in onnxruntime's kernels. Rounding is
 * done here, not by rint()/nearbyint(), so it never depends on the floating-point
 * environment's rounding mode.
 */
#include <math.h>

#include "ecnn_internal.h"

/* Round to the nearest integer, ties to even. x - floor(x) is exact for every float. */
static ECNN_ALWAYS_INLINE float round_half_to_even(float x)
{
    const float low = floorf(x);
    const float fraction = x - low;
    if (fraction > 0.5f)
        return low + 1.0f;
    if (fraction < 0.5f)
        return low;
    return fmodf(low, 2.0f) == 0.0f ? low : low + 1.0f;
}

static int check_layout(const void *x, int64_t outer, int64_t channels, int64_t inner, const float *scale,
                        const void *out)
{
    if (x == NULL || scale == NULL || out == NULL)
        return ECNN_ERR_NULL;
    int64_t count;
    return ecnn_checked_count(outer, channels, inner, 1, &count);
}

static int check_quantize_scales(const float *scale, int64_t channels)
{
    for (int64_t c = 0; c < channels; c++)
        if (!(isfinite(scale[c]) && scale[c] != 0.0f))
            return ECNN_ERR_PARAM;
    return ECNN_OK;
}

/* One definition per integer type: T, its range, and the public name. The rounded value is
 * clamped in float before the conversion to int, so +-inf and huge values saturate; NaN
 * (which ONNX leaves undefined) becomes the zero point. */
#define ECNN_DEFINE_QUANTIZE(NAME, T, LO, HI)                                                                   \
    int NAME(const float *x, int64_t outer, int64_t channels, int64_t inner, const float *scale,              \
             const T *zero_point, T *out)                                                                       \
    {                                                                                                           \
        int status = check_layout(x, outer, channels, inner, scale, out);                                       \
        if (status == ECNN_OK)                                                                                  \
            status = check_quantize_scales(scale, channels);                                                    \
        if (status != ECNN_OK)                                                                                  \
            return status;                                                                                      \
        for (int64_t o = 0; o < outer; o++)                                                                     \
            for (int64_t c = 0; c < channels; c++) {                                                            \
                const float s = scale[c];                                                                       \
                const int32_t zp = zero_point != NULL ? (int32_t)zero_point[c] : 0;                             \
                const int64_t base = (o * channels + c) * inner;                                                \
                for (int64_t i = 0; i < inner; i++) {                                                           \
                    float r = round_half_to_even(x[base + i] / s);                                              \
                    r = r != r ? 0.0f : (r < -1024.0f ? -1024.0f : (r > 1024.0f ? 1024.0f : r));                \
                    const int32_t q = (int32_t)r + zp;                                                          \
                    out[base + i] = (T)(q < (LO) ? (LO) : (q > (HI) ? (HI) : q));                               \
                }                                                                                               \
            }                                                                                                   \
        return ECNN_OK;                                                                                         \
    }

#define ECNN_DEFINE_DEQUANTIZE(NAME, T)                                                                         \
    int NAME(const T *x, int64_t outer, int64_t channels, int64_t inner, const float *scale,                  \
             const T *zero_point, float *out)                                                                   \
    {                                                                                                           \
        const int status = check_layout(x, outer, channels, inner, scale, out);                                 \
        if (status != ECNN_OK)                                                                                  \
            return status;                                                                                      \
        for (int64_t o = 0; o < outer; o++)                                                                     \
            for (int64_t c = 0; c < channels; c++) {                                                            \
                const float s = scale[c];                                                                       \
                const float zp = zero_point != NULL ? (float)zero_point[c] : 0.0f;                              \
                const int64_t base = (o * channels + c) * inner;                                                \
                for (int64_t i = 0; i < inner; i++)                                                             \
                    out[base + i] = ((float)x[base + i] - zp) * s;                                              \
            }                                                                                                   \
        return ECNN_OK;                                                                                         \
    }

ECNN_DEFINE_QUANTIZE(ecnn_quantize_linear_u8, uint8_t, 0, 255)
ECNN_DEFINE_QUANTIZE(ecnn_quantize_linear_i8, int8_t, -128, 127)
ECNN_DEFINE_DEQUANTIZE(ecnn_dequantize_linear_u8, uint8_t)
ECNN_DEFINE_DEQUANTIZE(ecnn_dequantize_linear_i8, int8_t)
ECNN_DEFINE_DEQUANTIZE(ecnn_dequantize_linear_i32, int32_t)
