/* Activations and other element-wise maps, clipping, reductions, softmax, and the broadcast
 * arithmetic and comparisons that bias, Rescaling, merges and ONNX's Max/Min/Pow/Greater/... become. */
#include <math.h>

#include "ecnn_internal.h"

/* The larger (smaller) of a and b, NaN if either is NaN (C's fmax/fmin return the other one);
 * a on a tie. */
static ECNN_ALWAYS_INLINE double propagating_max(double a, double b)
{
    return (b > a || b != b) ? b : a;
}

static ECNN_ALWAYS_INLINE double propagating_min(double a, double b)
{
    return (b < a || b != b) ? b : a;
}

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

/* log(1 + exp(v)) without overflow: for v > 0 it is v + log(1 + exp(-v)). */
static ECNN_ALWAYS_INLINE double softplus(double v)
{
    return v > 0.0 ? v + log1p(exp(-v)) : log1p(exp(v));
}

/* t clamped to [0, 1]; NaN fails both tests and stays NaN. */
static ECNN_ALWAYS_INLINE double clamp01(double t)
{
    return t < 0.0 ? 0.0 : t > 1.0 ? 1.0 : t;
}

/* One loop per operator, v = x[i] in double; no restrict, since out may alias x. */
#define UNARY_LOOP(name, expr)                                                                                   \
    ECNN_MULTIVERSION                                                                                            \
    static void name(const float *x, int64_t n, double alpha, double beta, float *out)                          \
    {                                                                                                            \
        (void)alpha;                                                                                             \
        (void)beta;                                                                                              \
        for (int64_t i = 0; i < n; i++) {                                                                        \
            const double v = (double)x[i];                                                                       \
            out[i] = (float)(expr);                                                                              \
        }                                                                                                        \
    }

UNARY_LOOP(tanh_loop, tanh(v))
UNARY_LOOP(exp_loop, exp(v))
UNARY_LOOP(log_loop, log(v))
UNARY_LOOP(sqrt_loop, sqrt(v))
UNARY_LOOP(neg_loop, -v)
UNARY_LOOP(abs_loop, fabs(v))
UNARY_LOOP(reciprocal_loop, 1.0 / v)
UNARY_LOOP(erf_loop, erf(v))
UNARY_LOOP(softsign_loop, v / (1.0 + fabs(v)))
UNARY_LOOP(softplus_loop, softplus(v))
UNARY_LOOP(sin_loop, sin(v))
UNARY_LOOP(cos_loop, cos(v))
UNARY_LOOP(floor_loop, floor(v))
UNARY_LOOP(ceil_loop, ceil(v))
UNARY_LOOP(round_loop, nearbyint(v)) /* the default rounding mode: half to even */
UNARY_LOOP(sign_loop, v > 0.0 ? 1.0 : v < 0.0 ? -1.0 : v)
UNARY_LOOP(elu_loop, v > 0.0 ? v : alpha * expm1(v))
UNARY_LOOP(leaky_relu_loop, v >= 0.0 ? v : alpha * v)
UNARY_LOOP(selu_loop, beta * (v > 0.0 ? v : alpha * exp(v) - alpha))
UNARY_LOOP(celu_loop, propagating_max(0.0, v) + propagating_min(0.0, alpha * expm1(v / alpha)))
UNARY_LOOP(hard_sigmoid_loop, clamp01(alpha * v + beta))
UNARY_LOOP(thresholded_relu_loop, (v > alpha || v != v) ? v : 0.0)
UNARY_LOOP(hard_swish_loop, v * clamp01(v / 6.0 + 0.5))
UNARY_LOOP(mish_loop, v * tanh(softplus(v)))

typedef void (*unary_loop)(const float *, int64_t, double, double, float *);

static const unary_loop UNARY_LOOPS[] = {
    [ECNN_TANH] = tanh_loop,
    [ECNN_EXP] = exp_loop,
    [ECNN_LOG] = log_loop,
    [ECNN_SQRT] = sqrt_loop,
    [ECNN_NEG] = neg_loop,
    [ECNN_ABS] = abs_loop,
    [ECNN_RECIPROCAL] = reciprocal_loop,
    [ECNN_ERF] = erf_loop,
    [ECNN_SOFTSIGN] = softsign_loop,
    [ECNN_SOFTPLUS] = softplus_loop,
    [ECNN_SIN] = sin_loop,
    [ECNN_COS] = cos_loop,
    [ECNN_FLOOR] = floor_loop,
    [ECNN_CEIL] = ceil_loop,
    [ECNN_ROUND] = round_loop,
    [ECNN_SIGN] = sign_loop,
    [ECNN_ELU] = elu_loop,
    [ECNN_LEAKY_RELU] = leaky_relu_loop,
    [ECNN_SELU] = selu_loop,
    [ECNN_CELU] = celu_loop,
    [ECNN_HARD_SIGMOID] = hard_sigmoid_loop,
    [ECNN_THRESHOLDED_RELU] = thresholded_relu_loop,
    [ECNN_HARD_SWISH] = hard_swish_loop,
    [ECNN_MISH] = mish_loop,
};

int ecnn_unary_f32(ecnn_unary_op op, const float *x, int64_t count, float alpha, float beta, float *out)
{
    if (x == NULL || out == NULL)
        return ECNN_ERR_NULL;
    if ((int)op < 0 || (int)op >= (int)(sizeof UNARY_LOOPS / sizeof UNARY_LOOPS[0]))
        return ECNN_ERR_PARAM;
    if (count < 1)
        return ECNN_ERR_SHAPE;
    UNARY_LOOPS[op](x, count, (double)alpha, (double)beta, out);
    return ECNN_OK;
}

enum { REDUCE_BLOCK = 64 }; /* inner values reduced side by side in double, on the stack */

/* For each output: acc = start, then acc = step(acc, v) for v = x[o, k, i] in k order, then
 * out = finish(acc) (n = reduced); inner values are processed REDUCE_BLOCK at a time. */
#define REDUCE_LOOP(name, start, step, finish)                                                                   \
    ECNN_MULTIVERSION                                                                                            \
    static void name(const float *restrict x, int64_t outer, int64_t reduced, int64_t inner, float *restrict out) \
    {                                                                                                            \
        const double n = (double)reduced;                                                                        \
        (void)n;                                                                                                 \
        for (int64_t o = 0; o < outer; o++) {                                                                    \
            const float *restrict src = x + o * reduced * inner;                                                 \
            for (int64_t i0 = 0; i0 < inner; i0 += REDUCE_BLOCK) {                                               \
                const int64_t width = inner - i0 < REDUCE_BLOCK ? inner - i0 : REDUCE_BLOCK;                     \
                double acc[REDUCE_BLOCK];                                                                        \
                for (int64_t j = 0; j < width; j++)                                                              \
                    acc[j] = (start);                                                                            \
                for (int64_t k = 0; k < reduced; k++) {                                                          \
                    const float *restrict row = src + k * inner + i0;                                            \
                    for (int64_t j = 0; j < width; j++) {                                                        \
                        const double a = acc[j], v = (double)row[j];                                             \
                        acc[j] = (step);                                                                         \
                    }                                                                                            \
                }                                                                                                \
                for (int64_t j = 0; j < width; j++) {                                                            \
                    const double a = acc[j];                                                                     \
                    out[o * inner + i0 + j] = (float)(finish);                                                   \
                }                                                                                                \
            }                                                                                                    \
        }                                                                                                        \
    }

REDUCE_LOOP(reduce_mean_loop, 0.0, a + v, a / n)
REDUCE_LOOP(reduce_sum_loop, 0.0, a + v, a)
REDUCE_LOOP(reduce_max_loop, -INFINITY, propagating_max(a, v), a)
REDUCE_LOOP(reduce_min_loop, INFINITY, propagating_min(a, v), a)
REDUCE_LOOP(reduce_sum_square_loop, 0.0, a + v * v, a) /* v * v is exact in double */
REDUCE_LOOP(reduce_l2_loop, 0.0, a + v * v, sqrt(a))
REDUCE_LOOP(reduce_l1_loop, 0.0, a + fabs(v), a)

/* Two passes per block: the max m, then m + log(sum of exp(x - m)); an infinite or NaN max shifts
 * by 0 instead, so that all -inf gives -inf, any +inf gives +inf and NaN gives NaN. */
ECNN_MULTIVERSION
static void reduce_log_sum_exp_loop(const float *restrict x, int64_t outer, int64_t reduced, int64_t inner,
                                    float *restrict out)
{
    for (int64_t o = 0; o < outer; o++) {
        const float *restrict src = x + o * reduced * inner;
        for (int64_t i0 = 0; i0 < inner; i0 += REDUCE_BLOCK) {
            const int64_t width = inner - i0 < REDUCE_BLOCK ? inner - i0 : REDUCE_BLOCK;
            double shift[REDUCE_BLOCK], acc[REDUCE_BLOCK];
            for (int64_t j = 0; j < width; j++)
                shift[j] = -INFINITY;
            for (int64_t k = 0; k < reduced; k++)
                for (int64_t j = 0; j < width; j++)
                    shift[j] = propagating_max(shift[j], (double)src[k * inner + i0 + j]);
            for (int64_t j = 0; j < width; j++) {
                shift[j] = isfinite(shift[j]) ? shift[j] : 0.0;
                acc[j] = 0.0;
            }
            for (int64_t k = 0; k < reduced; k++)
                for (int64_t j = 0; j < width; j++)
                    acc[j] += exp((double)src[k * inner + i0 + j] - shift[j]);
            for (int64_t j = 0; j < width; j++)
                out[o * inner + i0 + j] = (float)(shift[j] + log(acc[j]));
        }
    }
}

typedef void (*reduce_loop)(const float *, int64_t, int64_t, int64_t, float *);

static const reduce_loop REDUCE_LOOPS[] = {
    [ECNN_REDUCE_MEAN] = reduce_mean_loop,
    [ECNN_REDUCE_SUM] = reduce_sum_loop,
    [ECNN_REDUCE_MAX] = reduce_max_loop,
    [ECNN_REDUCE_MIN] = reduce_min_loop,
    [ECNN_REDUCE_SUM_SQUARE] = reduce_sum_square_loop,
    [ECNN_REDUCE_L2] = reduce_l2_loop,
    [ECNN_REDUCE_L1] = reduce_l1_loop,
    [ECNN_REDUCE_LOG_SUM_EXP] = reduce_log_sum_exp_loop,
};

int ecnn_reduce_f32(ecnn_reduce_op op, const float *x, int64_t outer, int64_t reduced, int64_t inner, float *out)
{
    if (x == NULL || out == NULL)
        return ECNN_ERR_NULL;
    if ((int)op < 0 || (int)op >= (int)(sizeof REDUCE_LOOPS / sizeof REDUCE_LOOPS[0]))
        return ECNN_ERR_PARAM;
    int64_t count;
    const int status = ecnn_checked_count(outer, reduced, inner, 1, &count);
    if (status != ECNN_OK)
        return status;
    REDUCE_LOOPS[op](x, outer, reduced, inner, out);
    return ECNN_OK;
}

/* The max of a row (NaN if it holds one) and the sum of exp(x - max) over it, in double. */
static double row_max(const float *x, int64_t n)
{
    double top = x[0];
    for (int64_t j = 1; j < n; j++)
        top = propagating_max(top, x[j]);
    return top;
}

static double row_sum_exp(const float *x, int64_t n, double top)
{
    double sum = 0.0;
    for (int64_t j = 0; j < n; j++)
        sum += exp((double)x[j] - top);
    return sum;
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
        const double top = row_max(xr, cols), sum = row_sum_exp(xr, cols, top);
        for (int64_t j = 0; j < cols; j++)
            dst[j] = (float)(exp((double)xr[j] - top) / sum);
    }
    return ECNN_OK;
}

int ecnn_log_softmax_f32(const float *x, int64_t rows, int64_t cols, float *out)
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
        const double top = row_max(xr, cols), log_sum = log(row_sum_exp(xr, cols, top));
        for (int64_t j = 0; j < cols; j++)
            dst[j] = (float)((double)xr[j] - top - log_sum);
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
BINARY_ROW(max_row, (float)propagating_max(x, y))
BINARY_ROW(min_row, (float)propagating_min(x, y))
BINARY_ROW(pow_row, (float)pow((double)x, (double)y))
BINARY_ROW(greater_row, x > y ? 1.0f : 0.0f)
BINARY_ROW(less_row, x < y ? 1.0f : 0.0f)
BINARY_ROW(greater_equal_row, x >= y ? 1.0f : 0.0f)
BINARY_ROW(less_equal_row, x <= y ? 1.0f : 0.0f)
BINARY_ROW(equal_row, x == y ? 1.0f : 0.0f)

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
    case ECNN_MAX: row = max_row; break;
    case ECNN_MIN: row = min_row; break;
    case ECNN_POW: row = pow_row; break;
    case ECNN_GREATER: row = greater_row; break;
    case ECNN_LESS: row = less_row; break;
    case ECNN_GREATER_EQUAL: row = greater_equal_row; break;
    case ECNN_LESS_EQUAL: row = less_equal_row; break;
    case ECNN_EQUAL: row = equal_row; break;
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
