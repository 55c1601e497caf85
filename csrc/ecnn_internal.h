/* Helpers shared by the ecnn .c files; not part of the public API. */
#ifndef ECNN_INTERNAL_H
#define ECNN_INTERNAL_H

#include <stdint.h>
#include <stdlib.h> /* defines __GLIBC__ where glibc is the C library */

#include "ecnn.h"

/* Hot loops get an AVX2+FMA clone picked at load time next to the baseline one
 * (GCC function multiversioning; needs glibc's ifunc). The binary stays portable:
 * a CPU without AVX2 runs the baseline clone. Elsewhere: baseline only. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__)
#define ECNN_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define ECNN_MULTIVERSION
#endif

#define ECNN_ALWAYS_INLINE inline __attribute__((always_inline))

/* *product = a * b * c * d if every factor is >= 1 and the byte count of that many
 * floats fits in int64; ECNN_ERR_SHAPE / ECNN_ERR_OVERFLOW otherwise. */
static inline int ecnn_checked_count(int64_t a, int64_t b, int64_t c, int64_t d, int64_t *product)
{
    const int64_t limit = INT64_MAX / (int64_t)sizeof(float);
    const int64_t factors[4] = {a, b, c, d};
    int64_t total = 1;
    for (int i = 0; i < 4; i++) {
        if (factors[i] < 1)
            return ECNN_ERR_SHAPE;
        if (total > limit / factors[i])
            return ECNN_ERR_OVERFLOW;
        total *= factors[i];
    }
    *product = total;
    return ECNN_OK;
}

static inline int ecnn_check_shape4(ecnn_shape4 s)
{
    int64_t count;
    return ecnn_checked_count(s.n, s.h, s.w, s.c, &count);
}

#endif /* ECNN_INTERNAL_H */
