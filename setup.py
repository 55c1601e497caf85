"""Build the native parts: the Cython preprocess kernels and the C reference."""

from Cython.Build import cythonize
from setuptools import Extension, setup

COMPILE_ARGS = ["-O3"]

extensions = [
    Extension(
        "edgecnn.preprocess._kernels",
        ["edgecnn/preprocess/_kernels.pyx"],
        depends=["edgecnn/preprocess/_kernels.pxd", "edgecnn/preprocess/_simd.h"],
        # OpenMP for threads across frames; no FMA contraction so the float lerps
        # round exactly as TensorFlow's on every target.
        extra_compile_args=COMPILE_ARGS + ["-fopenmp", "-ffp-contract=off"],
        extra_link_args=["-fopenmp"],
    ),
    # The C reference (csrc/). Vectorisation comes from the loop arrangement (innermost loop over
    # independent outputs) plus an AVX2+FMA clone chosen at load time (csrc/ecnn_internal.h), so the
    # binary stays portable (no -march=native). No -ffast-math: -ffinite-math-only would delete the
    # NaN checks in max pooling, and -fassociative-math would reorder the sums the tests compare exactly.
    Extension(
        "edgecnn.reference._cref",
        [
            "edgecnn/reference/_cref.pyx",
            *(f"csrc/{name}.c" for name in ("shape", "conv2d", "pool", "dense", "elementwise", "pad", "quant")),
        ],
        include_dirs=["csrc"],
        depends=["csrc/ecnn.h", "csrc/ecnn_internal.h"],
        extra_compile_args=[*COMPILE_ARGS, "-std=gnu11", "-fno-math-errno"],
        libraries=["m"],
    ),
]

setup(ext_modules=cythonize(extensions, compiler_directives={"language_level": 3}))
