"""Declarations of the preprocess kernels (loops in _kernels.pyx, checks in __init__.py)."""

from libc.stdint cimport int32_t, uint8_t, uint32_t


cdef extern from "_simd.h" nogil:
    # One pixel (up to 4 channels) as 4 float lanes; SSE2 or scalar, bit-identical.
    ctypedef struct v4f "ecnn_v4f":
        pass
    uint32_t load_u32 "ecnn_load_u32"(const uint8_t* p)
    uint32_t load_u24 "ecnn_load_u24"(const uint8_t* p)
    void prefetch "ecnn_prefetch"(const uint8_t* p)
    v4f v4f_from_u8x4 "ecnn_v4f_from_u8x4"(uint32_t u)
    v4f v4f_lerp "ecnn_v4f_lerp"(v4f a, v4f b, float t)
    v4f v4f_loadu "ecnn_v4f_loadu"(const float* p)
    void v4f_storeu "ecnn_v4f_storeu"(float* p, v4f v)
    v4f v4f_add "ecnn_v4f_add"(v4f a, v4f b)
    v4f v4f_mul "ecnn_v4f_mul"(v4f a, float s)
    v4f v4f_swap_rb "ecnn_v4f_swap_rb"(v4f v)
    # ONNX QuantizeLinear to uint8 of n floats (round half to even, saturate).
    void quantize_u8 "ecnn_quantize_u8"(const float* src, uint8_t* dst, Py_ssize_t n, float scale,
                                        int32_t zero_point)
    # uint8 windows: shuffle masks for (rows, segment, depth, zero), then positions through them.
    ctypedef struct window_masks "ecnn_window_masks":
        pass
    bint window_masks_init "ecnn_window_masks_init"(window_masks* m, Py_ssize_t rows, Py_ssize_t segment,
                                                     Py_ssize_t depth, uint8_t zero)
    void windows_u8_avx2 "ecnn_windows_u8_avx2"(const uint8_t* src, Py_ssize_t row_len, Py_ssize_t step,
                                                const window_masks* m, Py_ssize_t count, uint8_t* dst,
                                                Py_ssize_t depth)
    # Two rows, two output pixels per step, where pixel B follows pixel A; run-time choice.
    bint cpu_has_avx2 "ecnn_cpu_has_avx2"()
    void hpass2_avx2 "ecnn_hpass2_avx2"(const uint8_t* row0, const uint8_t* row1, const uint8_t* ahead0,
                                        const uint8_t* ahead1, const Py_ssize_t* xlo, const float* dx4,
                                        Py_ssize_t begin, Py_ssize_t end, int cin, int swap,
                                        float* out0, float* out1)


# Resize methods, as the wrapper passes them (index into edgecnn.preprocess.METHODS).
cdef enum Method:
    BILINEAR = 0
    AREA = 1


cdef struct Frame:
    # One uint8 source frame: rows `row_stride` bytes apart, pixels `channels` bytes
    # wide (1 gray, 3 BGR/RGB, 4 BGRA/RGBA), channels contiguous.
    const uint8_t* data
    Py_ssize_t height
    Py_ssize_t width
    Py_ssize_t channels
    Py_ssize_t row_stride


cdef struct Sink:
    # Where finished rows go when a graph reads windows: row y of the image lands in the
    # zero-bordered image `bordered` (uint8 quantised with scale and zero_point when
    # `quantize`, else float32) at row y + pad_top, `left` values in; rows are row_len values.
    void* bordered
    Py_ssize_t row_len
    Py_ssize_t pad_top
    Py_ssize_t left
    bint quantize
    float scale
    int32_t zero_point


cdef struct Target:
    # One float32 (height, width, channels) slot of the output batch, C-contiguous;
    # channels 1 (gray) or 3. swap_rb: swap the source's first and third channel (a
    # BGR(A) source written as RGB, or an RGB source written as BGR). Each output value
    # v of channel c is written as v * mul[c] + add[c] (the normalisation's affine map).
    # With `row` set, each output row is written there instead and handed to `sink`.
    float* data
    Py_ssize_t height
    Py_ssize_t width
    Py_ssize_t channels
    bint swap_rb
    float mul[3]
    float add[3]
    float* row
    Sink* sink


cdef int resize_bilinear_frame(const Frame* src, const Target* dst) noexcept nogil
cdef int resize_area_frame(const Frame* src, const Target* dst) noexcept nogil


# The graph-input values a window kernel writes: quantised bytes or floats.
ctypedef fused window_t:
    uint8_t
    float


cdef struct Windows:
    # Layout of one frame's slot when the graph reads windows (ModelSpec.patch): position
    # (y, x) of the (out_height, out_width) grid holds the patch_h x patch_w window of the
    # padded image whose top-left corner is (y, x), in (row, column, channel) order, then
    # `depth - patch_h * patch_w * channels` copies of the value 0 (its quantised form).
    Py_ssize_t patch_h
    Py_ssize_t patch_w
    Py_ssize_t pad_top
    Py_ssize_t pad_left
    Py_ssize_t pad_bottom
    Py_ssize_t pad_right
    Py_ssize_t out_height
    Py_ssize_t out_width
    Py_ssize_t depth
