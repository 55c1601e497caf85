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

/* ---- uint8 quantisation, as ONNX QuantizeLinear defines it:
 * q = saturate(round_half_to_even(x / scale) + zero_point) in [0, 255].
 * x / scale is one IEEE float division; it is clamped to [-zero_point, 255 - zero_point]
 * (whole numbers, so clamping before rounding is saturating after) and rounded by the
 * CPU's current mode, round-to-nearest-even unless a caller changed it (nothing here
 * does). SSE2 and scalar code give the same bits: the same division, the same rounding.
 */
#if defined(__SSE2__)
static inline void ecnn_quantize_u8(const float *src, uint8_t *dst, intptr_t n, float scale, int32_t zero_point) {
    const __m128 s = _mm_set1_ps(scale);
    const __m128 lo = _mm_set1_ps((float)-zero_point), hi = _mm_set1_ps((float)(255 - zero_point));
    const __m128i zp = _mm_set1_epi32(zero_point);
    intptr_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i q[4];
        for (int k = 0; k < 4; k++) {
            __m128 v = _mm_div_ps(_mm_loadu_ps(src + i + 4 * k), s);
            v = _mm_min_ps(_mm_max_ps(v, lo), hi);
            q[k] = _mm_add_epi32(_mm_cvtps_epi32(v), zp);
        }
        _mm_storeu_si128((__m128i *)(dst + i), _mm_packus_epi16(_mm_packs_epi32(q[0], q[1]),
                                                                 _mm_packs_epi32(q[2], q[3])));
    }
    for (; i < n; i++) {
        __m128 v = _mm_div_ss(_mm_set_ss(src[i]), s);
        v = _mm_min_ss(_mm_max_ss(v, lo), hi);
        dst[i] = (uint8_t)(_mm_cvtss_si32(v) + zero_point);
    }
}
#else
#include <math.h>
static inline void ecnn_quantize_u8(const float *src, uint8_t *dst, intptr_t n, float scale, int32_t zero_point) {
    const float lo = (float)-zero_point, hi = (float)(255 - zero_point);
    for (intptr_t i = 0; i < n; i++) {
        float v = src[i] / scale;
        v = v < lo ? lo : (v > hi ? hi : v);
        dst[i] = (uint8_t)(lrintf(v) + zero_point);
    }
}
#endif

/* ---- AVX2 horizontal pass, chosen at run time (the module is built for baseline x86-64).
 *
 * Two output pixels of two source rows per iteration. Needs, for every x in
 * [begin, end): pixel B directly right of pixel A (xhi[x] == xlo[x] + cin, or a zero
 * weight) and 8 readable bytes at row + xlo[x]. One 8-byte load then holds both
 * pixels; a byte shuffle zero-extends A and B into 32-bit lanes (reversing the
 * channels for BGR sources). The lerp is the same float operations in the same order
 * as ecnn_v4f_lerp, so the results are bit-identical to the SSE2/scalar path.
 * out rows get 8 floats per pixel pair stored at 3 * x; the last 2 are overwritten
 * by the next pair (the caller's rows have room for them).
 */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#include <immintrin.h>

static inline int ecnn_cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

/* pshufb mask: lanes 0..2 = bytes first, first+1, first+2 (reversed when swap), zero-extended; lane 3 = 0. */
static inline __m128i ecnn_pixel_lanes_mask(int first, int swap) {
    int8_t m[16];
    for (int j = 0; j < 16; j++) m[j] = (int8_t)0x80;
    for (int c = 0; c < 3; c++) m[4 * c] = (int8_t)(first + (swap ? 2 - c : c));
    return _mm_loadu_si128((const __m128i *)m);
}

__attribute__((target("avx2")))
static void ecnn_hpass2_avx2(const uint8_t *row0, const uint8_t *row1, const uint8_t *ahead0,
                             const uint8_t *ahead1, const intptr_t *xlo, const float *dx4,
                             intptr_t begin, intptr_t end, int cin, int swap, float *out0, float *out1) {
    const __m256i mask_a = _mm256_broadcastsi128_si256(ecnn_pixel_lanes_mask(0, swap));
    const __m256i mask_b = _mm256_broadcastsi128_si256(ecnn_pixel_lanes_mask(cin, swap));
    const __m256i pack = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 7, 7); /* [rgb_, rgb_] -> [rgbrgb..] */
    for (intptr_t x = begin; x + 1 < end; x += 2) {
        const intptr_t l0 = xlo[x], l1 = xlo[x + 1];
        if (x & 2) { /* every other pair is enough to touch each cache line; more stalls on prefetches */
            __builtin_prefetch(ahead0 + l0, 0, 3);
            __builtin_prefetch(ahead1 + l0, 0, 3);
        }
        const __m256 t = _mm256_loadu_ps(dx4 + 4 * x); /* [t0 x4, t1 x4] */
        const __m256i p0 = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadl_epi64((const __m128i *)(row0 + l0))),
            _mm_loadl_epi64((const __m128i *)(row0 + l1)), 1);
        const __m256i p1 = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadl_epi64((const __m128i *)(row1 + l0))),
            _mm_loadl_epi64((const __m128i *)(row1 + l1)), 1);
        const __m256 a0 = _mm256_cvtepi32_ps(_mm256_shuffle_epi8(p0, mask_a));
        const __m256 b0 = _mm256_cvtepi32_ps(_mm256_shuffle_epi8(p0, mask_b));
        const __m256 a1 = _mm256_cvtepi32_ps(_mm256_shuffle_epi8(p1, mask_a));
        const __m256 b1 = _mm256_cvtepi32_ps(_mm256_shuffle_epi8(p1, mask_b));
        const __m256 v0 = _mm256_add_ps(a0, _mm256_mul_ps(_mm256_sub_ps(b0, a0), t));
        const __m256 v1 = _mm256_add_ps(a1, _mm256_mul_ps(_mm256_sub_ps(b1, a1), t));
        _mm256_storeu_ps(out0 + 3 * x, _mm256_permutevar8x32_ps(v0, pack));
        _mm256_storeu_ps(out1 + 3 * x, _mm256_permutevar8x32_ps(v1, pack));
    }
}

/* ---- uint8 windows (gather_windows' fast path), chosen at run time with the AVX2 pass.
 *
 * Each position's window is up to 4 source rows of `segment` <= 16 bytes (row ky starts
 * at src + ky * row_len, 16 bytes readable there) packed into `depth` <= 64 bytes; the
 * bytes past `filled` are `zero`. One 16-byte load per row; each 16-byte output block is
 * the OR of a byte shuffle of every row (bytes that come from elsewhere shuffle to 0)
 * and the block's zero tail. Positions [begin, end) of one output row, `depth` bytes
 * apart; the last block may write past the position (the caller keeps that inside the
 * slot: those bytes are written again by what follows).
 */
typedef struct {
    int blocks;                 /* 16-byte output blocks: ceil(depth / 16) */
    int rows;                   /* patch height, <= 4 */
    uint8_t shuffle[4][4][16];  /* [block][row]: source byte per output byte, 0x80 = none */
    uint8_t tail[4][16];        /* [block]: the zero value at bytes in [filled, depth) */
} ecnn_window_masks;

static inline int ecnn_window_masks_init(ecnn_window_masks *m, intptr_t rows, intptr_t segment, intptr_t depth,
                                         uint8_t zero) {
    if (rows > 4 || segment > 16 || depth > 64) return 0;
    m->blocks = (int)((depth + 15) / 16);
    m->rows = (int)rows;
    for (int j = 0; j < 4; j++) {
        for (int b = 0; b < 16; b++) {
            const intptr_t g = 16 * j + b;
            for (int ky = 0; ky < 4; ky++)
                m->shuffle[j][ky][b] = (g < rows * segment && g / segment == ky) ? (uint8_t)(g - ky * segment) : 0x80;
            m->tail[j][b] = (g >= rows * segment && g < depth) ? zero : 0;
        }
    }
    return 1;
}

/* The loop for ROWS rows and BLOCKS blocks, both constants once inlined: unrolled, the
 * masks and rows in registers (uint8 stores may alias anything, so nothing is re-read). */
__attribute__((target("avx2"), always_inline))
static inline void ecnn_windows_u8_body(const uint8_t *src, intptr_t row_len, intptr_t step,
                                        const ecnn_window_masks *m, intptr_t count, uint8_t *dst, intptr_t depth,
                                        const int ROWS, const int BLOCKS) {
    __m128i shuffle[4][4], tail[4];
    for (int j = 0; j < BLOCKS; j++) {
        tail[j] = _mm_loadu_si128((const __m128i *)m->tail[j]);
        for (int ky = 0; ky < ROWS; ky++) shuffle[j][ky] = _mm_loadu_si128((const __m128i *)m->shuffle[j][ky]);
    }
    for (intptr_t p = 0; p < count; p++, src += step, dst += depth) {
        __m128i r[4];
        for (int ky = 0; ky < ROWS; ky++) r[ky] = _mm_loadu_si128((const __m128i *)(src + ky * row_len));
        for (int j = 0; j < BLOCKS; j++) {
            __m128i out = tail[j];
            for (int ky = 0; ky < ROWS; ky++) out = _mm_or_si128(out, _mm_shuffle_epi8(r[ky], shuffle[j][ky]));
            _mm_storeu_si128((__m128i *)(dst + 16 * j), out);
        }
    }
}

__attribute__((target("avx2")))
static void ecnn_windows_u8_avx2(const uint8_t *src, intptr_t row_len, intptr_t step, const ecnn_window_masks *m,
                                 intptr_t count, uint8_t *dst, intptr_t depth) {
#define ECNN_WINDOWS_CASE(R, B) \
    case 4 * (R - 1) + (B - 1): ecnn_windows_u8_body(src, row_len, step, m, count, dst, depth, R, B); break;
    switch (4 * (m->rows - 1) + (m->blocks - 1)) {
        ECNN_WINDOWS_CASE(1, 1) ECNN_WINDOWS_CASE(1, 2) ECNN_WINDOWS_CASE(1, 3) ECNN_WINDOWS_CASE(1, 4)
        ECNN_WINDOWS_CASE(2, 1) ECNN_WINDOWS_CASE(2, 2) ECNN_WINDOWS_CASE(2, 3) ECNN_WINDOWS_CASE(2, 4)
        ECNN_WINDOWS_CASE(3, 1) ECNN_WINDOWS_CASE(3, 2) ECNN_WINDOWS_CASE(3, 3) ECNN_WINDOWS_CASE(3, 4)
        ECNN_WINDOWS_CASE(4, 1) ECNN_WINDOWS_CASE(4, 2) ECNN_WINDOWS_CASE(4, 3) ECNN_WINDOWS_CASE(4, 4)
    }
#undef ECNN_WINDOWS_CASE
}

#else

static inline int ecnn_cpu_has_avx2(void) { return 0; }

static void ecnn_hpass2_avx2(const uint8_t *row0, const uint8_t *row1, const uint8_t *ahead0,
                             const uint8_t *ahead1, const intptr_t *xlo, const float *dx4,
                             intptr_t begin, intptr_t end, int cin, int swap, float *out0, float *out1) {
    /* never called: ecnn_cpu_has_avx2() is 0 on this target */
    (void)row0; (void)row1; (void)ahead0; (void)ahead1; (void)xlo; (void)dx4;
    (void)begin; (void)end; (void)cin; (void)swap; (void)out0; (void)out1;
}

typedef struct { int blocks; } ecnn_window_masks;

static inline int ecnn_window_masks_init(ecnn_window_masks *m, intptr_t rows, intptr_t segment, intptr_t depth,
                                         uint8_t zero) {
    (void)m; (void)rows; (void)segment; (void)depth; (void)zero;
    return 0;
}

static void ecnn_windows_u8_avx2(const uint8_t *src, intptr_t row_len, intptr_t step, const ecnn_window_masks *m,
                                 intptr_t count, uint8_t *dst, intptr_t depth) {
    /* never called: ecnn_window_masks_init() is 0 on this target */
    (void)src; (void)row_len; (void)step; (void)m; (void)count; (void)dst; (void)depth;
}

#endif

#endif /* EDGECNN_PREPROCESS_SIMD_H */
