/* Four-float pixel helpers for the preprocess kernels (_kernels.pyx).
 *
 * One pixel (up to 4 uint8 channels) becomes one 4-lane float vector, so a bilinear
 * lerp of a whole RGB pixel is three vector instructions instead of nine scalar
 * ones. SSE2 (every x86-64) when available, plain scalar code otherwise. Every
 * operation is the same IEEE float operation as the scalar formula, in the same
 * order, so results are bit-identical either way.
 */
#ifndef EDGECNN_PREPROCESS_SIMD_H
#define EDGECNN_PREPROCESS_SIMD_H

#include <stdint.h>
#include <string.h>

/* Four bytes at p, unaligned (may read past a 3-channel pixel: callers make sure
 * the extra byte is inside the frame). */
static inline uint32_t ecnn_load_u32(const uint8_t *p) {
    uint32_t u;
    memcpy(&u, p, 4);
    return u;
}

/* Three bytes at p, never reading a fourth: for the last pixel of a row. */
static inline uint32_t ecnn_load_u24(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16);
}

/* Ask for the cache line holding p (a hint, never faults). */
static inline void ecnn_prefetch(const uint8_t *p) {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p, 0, 3);
#else
    (void)p;
#endif
}

#if defined(__SSE2__)
#include <emmintrin.h>

typedef __m128 ecnn_v4f;

static inline ecnn_v4f ecnn_v4f_from_u8x4(uint32_t u) {
    const __m128i zero = _mm_setzero_si128();
    __m128i v = _mm_cvtsi32_si128((int)u);
    v = _mm_unpacklo_epi8(v, zero);
    v = _mm_unpacklo_epi16(v, zero);
    return _mm_cvtepi32_ps(v);
}

/* a + (b - a) * t, TensorFlow's lerp order. */
static inline ecnn_v4f ecnn_v4f_lerp(ecnn_v4f a, ecnn_v4f b, float t) {
    return _mm_add_ps(a, _mm_mul_ps(_mm_sub_ps(b, a), _mm_set1_ps(t)));
}

static inline ecnn_v4f ecnn_v4f_loadu(const float *p) { return _mm_loadu_ps(p); }
static inline void ecnn_v4f_storeu(float *p, ecnn_v4f v) { _mm_storeu_ps(p, v); }
static inline ecnn_v4f ecnn_v4f_add(ecnn_v4f a, ecnn_v4f b) { return _mm_add_ps(a, b); }
static inline ecnn_v4f ecnn_v4f_mul(ecnn_v4f a, float s) { return _mm_mul_ps(a, _mm_set1_ps(s)); }
/* Lanes [0, 1, 2, 3] -> [2, 1, 0, 3]: BGR(A) pixel -> RGB(A). */
static inline ecnn_v4f ecnn_v4f_swap_rb(ecnn_v4f v) { return _mm_shuffle_ps(v, v, _MM_SHUFFLE(3, 0, 1, 2)); }

#else

typedef struct { float v[4]; } ecnn_v4f;

static inline ecnn_v4f ecnn_v4f_from_u8x4(uint32_t u) {
    ecnn_v4f r;
    for (int i = 0; i < 4; i++) r.v[i] = (float)((u >> (8 * i)) & 0xFFu);
    return r;
}

static inline ecnn_v4f ecnn_v4f_lerp(ecnn_v4f a, ecnn_v4f b, float t) {
    ecnn_v4f r;
    for (int i = 0; i < 4; i++) r.v[i] = a.v[i] + (b.v[i] - a.v[i]) * t;
    return r;
}

static inline ecnn_v4f ecnn_v4f_loadu(const float *p) { ecnn_v4f r; memcpy(r.v, p, sizeof r.v); return r; }
static inline void ecnn_v4f_storeu(float *p, ecnn_v4f v) { memcpy(p, v.v, sizeof v.v); }
static inline ecnn_v4f ecnn_v4f_add(ecnn_v4f a, ecnn_v4f b) {
    for (int i = 0; i < 4; i++) a.v[i] += b.v[i];
    return a;
}
static inline ecnn_v4f ecnn_v4f_mul(ecnn_v4f a, float s) {
    for (int i = 0; i < 4; i++) a.v[i] *= s;
    return a;
}
static inline ecnn_v4f ecnn_v4f_swap_rb(ecnn_v4f v) {
    float t = v.v[0];
    v.v[0] = v.v[2];
    v.v[2] = t;
    return v;
}

#endif

#endif /* EDGECNN_PREPROCESS_SIMD_H */
