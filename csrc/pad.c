/* N-D padding and cropping (ONNX Pad): constant, reflect, edge and wrap. Each output row (all
 * axes but the last) maps to one input row, or to none (constant fill); along the last axis
 * every output value maps to one input value or to the constant. */
#include "ecnn_internal.h"

/* Index into an axis of `len` values (after cropping) for position p relative to its start;
 * -1 means the constant. */
static ECNN_ALWAYS_INLINE int64_t source_index(int64_t p, int64_t len, ecnn_pad_mode mode)
{
    if (p >= 0 && p < len)
        return p;
    switch (mode) {
    case ECNN_PAD_MODE_EDGE:
        return p < 0 ? 0 : len - 1;
    case ECNN_PAD_MODE_WRAP: {
        const int64_t r = p % len;
        return r < 0 ? r + len : r;
    }
    case ECNN_PAD_MODE_REFLECT: {
        if (len == 1)
            return 0;
        const int64_t period = 2 * (len - 1);
        int64_t r = p % period;
        r = r < 0 ? r + period : r;
        return r < len ? r : period - r;
    }
    default:
        return -1;
    }
}

typedef struct {
    int64_t in_stride[ECNN_MAX_DIMS]; /* floats between neighbours along each input axis */
    int64_t crop[ECNN_MAX_DIMS];      /* input values dropped at the start (negative begin pad) */
    int64_t len[ECNN_MAX_DIMS];       /* input values left after cropping */
    int64_t shift[ECNN_MAX_DIMS];     /* output values added at the start (positive begin pad) */
} pad_plan;

ECNN_MULTIVERSION
static void pad_run(const float *restrict input, int ndim, const int64_t *out_shape, const pad_plan *plan,
                    ecnn_pad_mode mode, float value, float *restrict out)
{
    const int last = ndim - 1;
    const int64_t n = out_shape[last];
    int64_t rows = 1;
    for (int d = 0; d < last; d++)
        rows *= out_shape[d];
    int64_t index[ECNN_MAX_DIMS] = {0};
    for (int64_t r = 0; r < rows; r++) {
        float *restrict dst = out + r * n;
        const float *restrict src = input;
        for (int d = 0; d < last && src != NULL; d++) {
            const int64_t s = source_index(index[d] - plan->shift[d], plan->len[d], mode);
            src = s < 0 ? NULL : src + (plan->crop[d] + s) * plan->in_stride[d];
        }
        if (src == NULL) {
            for (int64_t j = 0; j < n; j++)
                dst[j] = value;
        } else {
            src += plan->crop[last];
            for (int64_t j = 0; j < n; j++) {
                const int64_t s = source_index(j - plan->shift[last], plan->len[last], mode);
                dst[j] = s < 0 ? value : src[s];
            }
        }
        for (int d = last - 1; d >= 0; d--) {
            if (++index[d] < out_shape[d])
                break;
            index[d] = 0;
        }
    }
}

int ecnn_pad_f32(const float *input, int ndim, const int64_t *in_shape, const int64_t *begin, const int64_t *end,
                 ecnn_pad_mode mode, float value, float *out)
{
    if (input == NULL || out == NULL)
        return ECNN_ERR_NULL;
    if (mode != ECNN_PAD_MODE_CONSTANT && mode != ECNN_PAD_MODE_REFLECT && mode != ECNN_PAD_MODE_EDGE &&
        mode != ECNN_PAD_MODE_WRAP)
        return ECNN_ERR_PARAM;
    int64_t out_shape[ECNN_MAX_DIMS];
    const int status = ecnn_pad_shape(ndim, in_shape, begin, end, out_shape);
    if (status != ECNN_OK)
        return status;
    pad_plan plan;
    int64_t stride = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        plan.in_stride[d] = stride;
        stride *= in_shape[d];
        plan.crop[d] = begin[d] < 0 ? -begin[d] : 0;
        plan.len[d] = in_shape[d] - plan.crop[d] - (end[d] < 0 ? -end[d] : 0);
        plan.shift[d] = begin[d] > 0 ? begin[d] : 0;
    }
    pad_run(input, ndim, out_shape, &plan, mode, value, out);
    return ECNN_OK;
}
