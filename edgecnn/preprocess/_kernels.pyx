# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Fused resize + colour + rescale + batch kernels: uint8 frames -> float32 NHWC, nogil.

Each frame is read once, row by row, and written once into its slot of the batch.
Kernels trust their inputs; edgecnn.preprocess.to_batch checks them.

bilinear: tf.image.resize(method="bilinear", antialias=False), bit for bit: half-pixel
  centres, TensorFlow's float32 weights and lerp order (x, then y). A horizontal pass
  turns each needed source row into a float row of w pixels (only the <= 2h source
  rows the output needs are read; upscales reuse a row for several outputs), then a
  vertical blend writes the output row. Where the CPU has AVX2 (checked at import),
  the horizontal pass of a row pair takes two output pixels per step (_simd.h), with
  bit-identical results; source rows are prefetched a cache line at a time ahead.
area: tf.image.resize(method="area") (TensorFlow's ResizeArea cell weights), to float
  rounding: the source rows of one output row are summed into a float row first
  (contiguous, vectorised; whole-weight rows in exact uint16 sums), then each output
  pixel sums its cells of that row.
Colour: BGR(A) <-> RGB swap in the pixel load; gray = tf.image.rgb_to_grayscale
weights applied after resizing, as TensorFlow does; alpha is dropped.
Normalisation: each value v of output channel c is written as v * mul[c] + add[c]
(rounded twice, no fused multiply-add; mul = 1/255, add = 0 gives v * (1/255) exactly).
Windows (resize_windows_into), for graphs that read each position's patch of the image
(a first convolution folded into the input) and/or uint8 values quantised as ONNX
QuantizeLinear does: each resized row is quantised (or copied) into a zero-bordered image,
then each window row is copied from it in 16-byte moves.
"""

from cython.parallel cimport prange, threadid
from libc.math cimport ceilf, floorf
from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t, uintptr_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

cdef float GRAY_R = 0.2989  # tf.image.rgb_to_grayscale
cdef float GRAY_G = 0.5870
cdef float GRAY_B = 0.1140
# uint16 sums of whole-weight rows are flushed to float before they can overflow.
cdef Py_ssize_t MAX_U16_ROWS = 65535 // 255
# Bilinear: while computing an output row, prefetch the source rows of the one this
# many rows later, a cache line at a time as the sweep reaches it. (Prefetching whole
# rows in one burst overflows the core's miss queue: 1.7x slower on a 32-frame batch.)
cdef Py_ssize_t PREFETCH_ROWS = 2
# Whether the bilinear pass and the uint8 windows may use AVX2 (this CPU has it, and set_avx2 left it on).
cdef bint use_avx2 = cpu_has_avx2()


def set_avx2(bint enabled):
    """Allow (when the CPU has it) or forbid the AVX2 paths; returns the previous setting.
    For tests, which compare the two paths."""
    global use_avx2
    previous = use_avx2
    use_avx2 = enabled and cpu_has_avx2()
    return previous


cdef inline Py_ssize_t clamp(Py_ssize_t v, Py_ssize_t hi) noexcept nogil:
    return 0 if v < 0 else (hi if v > hi else v)


cdef inline float* output_row(const Target* dst, Py_ssize_t y) noexcept nogil:
    """Where output row y is written: its place in the slot, or the row buffer of a sink."""
    return dst.row if dst.row != NULL else dst.data + y * dst.width * dst.channels


cdef inline void emit_row(const Target* dst, Py_ssize_t y) noexcept nogil:
    """Hand the finished row y in dst.row to the sink: quantised or copied into its bordered image."""
    cdef Sink* sink = dst.sink
    cdef Py_ssize_t n = dst.width * dst.channels
    cdef Py_ssize_t at = (y + sink.pad_top) * sink.row_len + sink.left
    if sink.quantize:
        quantize_u8(dst.row, <uint8_t*>sink.bordered + at, n, sink.scale, sink.zero_point)
    else:
        memcpy(<float*>sink.bordered + at, dst.row, n * sizeof(float))


# ---------------------------------------------------------------- bilinear

cdef void bilinear_axis(Py_ssize_t in_size, Py_ssize_t out_size, Py_ssize_t step,
                        Py_ssize_t* lower, Py_ssize_t* upper, float* lerp) noexcept nogil:
    """TensorFlow's half-pixel interpolation indices (times `step`) and weights for one axis."""
    cdef float scale = <float>in_size / <float>out_size
    cdef float pos, fl
    cdef Py_ssize_t i
    for i in range(out_size):
        pos = (<float>i + <float>0.5) * scale - <float>0.5
        fl = floorf(pos)
        lower[i] = clamp(<Py_ssize_t>fl, in_size - 1) * step
        upper[i] = clamp(<Py_ssize_t>ceilf(pos), in_size - 1) * step
        lerp[i] = pos - fl


cdef void hpass_color(const uint8_t* row, const Py_ssize_t* xlo, const Py_ssize_t* xhi,
                      const float* dx, Py_ssize_t w, Py_ssize_t safe_end, bint swap,
                      float* out) noexcept nogil:
    """One 3/4-channel source row -> w RGB float pixels (out holds 3w + 8 floats).

    Pixels below `safe_end` load 4 bytes (the 4th belongs to the next pixel and is
    overwritten by it); the rest load exactly 3 so nothing past the row is read.
    """
    cdef Py_ssize_t x
    cdef uint32_t a, b
    cdef v4f v
    for x in range(safe_end):
        a = load_u32(row + xlo[x])
        b = load_u32(row + xhi[x])
        v = v4f_lerp(v4f_from_u8x4(a), v4f_from_u8x4(b), dx[x])
        v4f_storeu(out + 3 * x, v4f_swap_rb(v) if swap else v)
    hpass_color_tail(row, xlo, xhi, dx, safe_end, w, swap, out)


cdef void hpass_color_tail(const uint8_t* row, const Py_ssize_t* xlo, const Py_ssize_t* xhi,
                           const float* dx, Py_ssize_t begin, Py_ssize_t end, bint swap,
                           float* out) noexcept nogil:
    """hpass_color for pixels [begin, end) with 3-byte loads (nothing read past the row)."""
    cdef Py_ssize_t x
    cdef v4f v
    for x in range(begin, end):
        v = v4f_lerp(v4f_from_u8x4(load_u24(row + xlo[x])), v4f_from_u8x4(load_u24(row + xhi[x])), dx[x])
        v4f_storeu(out + 3 * x, v4f_swap_rb(v) if swap else v)


cdef void hpass_color2_sse(const uint8_t* row0, const uint8_t* row1, const uint8_t* ahead0,
                           const uint8_t* ahead1, const Py_ssize_t* xlo, const Py_ssize_t* xhi,
                           const float* dx, Py_ssize_t begin, Py_ssize_t end, bint swap,
                           float* out0, float* out1) noexcept nogil:
    """hpass_color of pixels [begin, end) (below safe_end) of two rows in one sweep."""
    cdef Py_ssize_t x, lo, hi
    cdef float t
    cdef v4f v0, v1
    for x in range(begin, end):
        lo = xlo[x]
        hi = xhi[x]
        t = dx[x]
        prefetch(ahead0 + lo)
        prefetch(ahead1 + lo)
        v0 = v4f_lerp(v4f_from_u8x4(load_u32(row0 + lo)), v4f_from_u8x4(load_u32(row0 + hi)), t)
        v1 = v4f_lerp(v4f_from_u8x4(load_u32(row1 + lo)), v4f_from_u8x4(load_u32(row1 + hi)), t)
        v4f_storeu(out0 + 3 * x, v4f_swap_rb(v0) if swap else v0)
        v4f_storeu(out1 + 3 * x, v4f_swap_rb(v1) if swap else v1)


cdef void hpass_color2(const uint8_t* row0, const uint8_t* row1, const uint8_t* ahead0,
                       const uint8_t* ahead1, const Py_ssize_t* xlo, const Py_ssize_t* xhi,
                       const float* dx, const float* dx4, Py_ssize_t w, Py_ssize_t safe_end,
                       Py_ssize_t fast_begin, Py_ssize_t fast_end, Py_ssize_t cin, bint swap,
                       float* out0, float* out1) noexcept nogil:
    """hpass_color of two rows in one sweep (a downscale's usual case): shares the tables,
    and prefetches the same columns of rows ahead0 and ahead1, needed a few rows later.
    Pixels [fast_begin, fast_end) go through the AVX2 pass. Left to right, so each
    store's spare lanes are overwritten by the next pixel's."""
    hpass_color2_sse(row0, row1, ahead0, ahead1, xlo, xhi, dx, 0, fast_begin, swap, out0, out1)
    hpass2_avx2(row0, row1, ahead0, ahead1, xlo, dx4, fast_begin, fast_end, cin, swap, out0, out1)
    hpass_color2_sse(row0, row1, ahead0, ahead1, xlo, xhi, dx, fast_end, safe_end, swap, out0, out1)
    hpass_color_tail(row0, xlo, xhi, dx, safe_end, w, swap, out0)
    hpass_color_tail(row1, xlo, xhi, dx, safe_end, w, swap, out1)


cdef void avx2_range(const Py_ssize_t* xlo, const Py_ssize_t* xhi, const float* dx, Py_ssize_t w,
                     Py_ssize_t cin, Py_ssize_t row_bytes, Py_ssize_t* begin, Py_ssize_t* end) noexcept nogil:
    """The even-length run of pixels the AVX2 pass may take (empty without AVX2): B right
    after A (or A's weight alone counts), and 8 bytes readable from A."""
    begin[0] = 0
    end[0] = 0
    if not use_avx2:
        return
    cdef Py_ssize_t x = 0
    while x < w and not fits_avx2(xlo[x], xhi[x], dx[x], cin, row_bytes):
        x += 1
    begin[0] = x
    while x < w and fits_avx2(xlo[x], xhi[x], dx[x], cin, row_bytes):
        x += 1
    end[0] = begin[0] + (x - begin[0]) // 2 * 2


cdef inline bint fits_avx2(Py_ssize_t lo, Py_ssize_t hi, float t, Py_ssize_t cin,
                           Py_ssize_t row_bytes) noexcept nogil:
    return (hi == lo + cin or t == 0) and lo + 8 <= row_bytes


cdef void hpass_gray(const uint8_t* row, const Py_ssize_t* xlo, const Py_ssize_t* xhi,
                     const float* dx, Py_ssize_t w, float* out) noexcept nogil:
    """One 1-channel source row -> w float pixels."""
    cdef Py_ssize_t x
    cdef float a, b
    for x in range(w):
        a = row[xlo[x]]
        b = row[xhi[x]]
        out[x] = a + (b - a) * dx[x]


cdef void vblend(const float* top, const float* bottom, float dy, Py_ssize_t w,
                 Py_ssize_t in_channels, const Target* dst, float* out) noexcept nogil:
    """out row = top + (bottom - top) * dy, then colour and normalise (rows from hpass_*)."""
    cdef Py_ssize_t x, j
    cdef float m0 = dst.mul[0], m1 = dst.mul[1], m2 = dst.mul[2]
    cdef float a0 = dst.add[0], a1 = dst.add[1], a2 = dst.add[2]
    cdef float v, r, g, b
    if dst.channels == 3 and in_channels != 1:
        for x in range(w):
            j = 3 * x
            out[j] = (top[j] + (bottom[j] - top[j]) * dy) * m0 + a0
            out[j + 1] = (top[j + 1] + (bottom[j + 1] - top[j + 1]) * dy) * m1 + a1
            out[j + 2] = (top[j + 2] + (bottom[j + 2] - top[j + 2]) * dy) * m2 + a2
    elif dst.channels == 1 and in_channels == 1:
        for j in range(w):
            out[j] = (top[j] + (bottom[j] - top[j]) * dy) * m0 + a0
    elif dst.channels == 3:
        for x in range(w):
            v = top[x] + (bottom[x] - top[x]) * dy
            out[3 * x] = v * m0 + a0
            out[3 * x + 1] = v * m1 + a1
            out[3 * x + 2] = v * m2 + a2
    else:
        for x in range(w):
            r = top[3 * x] + (bottom[3 * x] - top[3 * x]) * dy
            g = top[3 * x + 1] + (bottom[3 * x + 1] - top[3 * x + 1]) * dy
            b = top[3 * x + 2] + (bottom[3 * x + 2] - top[3 * x + 2]) * dy
            out[x] = (r * GRAY_R + g * GRAY_G + b * GRAY_B) * m0 + a0


cdef int resize_bilinear_frame(const Frame* src, const Target* dst) noexcept nogil:
    """Bilinear resize of one frame into its slot; 0, or -1 when out of memory."""
    cdef Py_ssize_t H = src.height, W = src.width, cin = src.channels
    cdef Py_ssize_t h = dst.height, w = dst.width
    cdef Py_ssize_t row_floats = (3 * w + 8) if cin != 1 else w
    cdef Py_ssize_t nbytes = (2 * h + 2 * w) * sizeof(Py_ssize_t) + (h + 5 * w + 2 * row_floats) * sizeof(float)
    cdef char* scratch = <char*>malloc(nbytes)
    if scratch == NULL:
        return -1
    cdef Py_ssize_t* ylo = <Py_ssize_t*>scratch
    cdef Py_ssize_t* yhi = ylo + h
    cdef Py_ssize_t* xlo = yhi + h
    cdef Py_ssize_t* xhi = xlo + w
    cdef float* dy = <float*>(xhi + w)
    cdef float* dx = dy + h
    cdef float* rows[2]
    rows[0] = dx + w
    rows[1] = rows[0] + row_floats
    cdef float* dx4 = rows[1] + row_floats  # dx[x] four times: the AVX2 pass's weights
    cdef Py_ssize_t tag[2]
    tag[0] = -1
    tag[1] = -1

    bilinear_axis(H, h, 1, ylo, yhi, dy)
    bilinear_axis(W, w, cin, xlo, xhi, dx)
    # 3-channel pixels whose 4-byte load would end past the row load 3 bytes instead.
    cdef Py_ssize_t safe_end = w
    if cin == 3:
        while safe_end > 0 and xhi[safe_end - 1] + 4 > W * 3:
            safe_end -= 1
    cdef Py_ssize_t fast_begin, fast_end, x
    for x in range(w):
        dx4[4 * x] = dx4[4 * x + 1] = dx4[4 * x + 2] = dx4[4 * x + 3] = dx[x]
    avx2_range(xlo, xhi, dx, w, cin, W * cin, &fast_begin, &fast_end)
    if fast_end > safe_end:  # cannot happen (8 readable bytes imply a safe 4-byte load); kept as a guard
        fast_begin = fast_end = 0

    cdef Py_ssize_t y, lo, hi, slot, top, bottom, need, k
    for y in range(h):
        lo = ylo[y]
        hi = yhi[y]
        # Make sure rows lo and hi are in the two slots, computing only the missing ones.
        if cin != 1 and lo != hi and tag[0] != lo and tag[1] != lo and tag[0] != hi and tag[1] != hi:
            k = min(y + PREFETCH_ROWS, h - 1)
            hpass_color2(src.data + lo * src.row_stride, src.data + hi * src.row_stride,
                         src.data + ylo[k] * src.row_stride, src.data + yhi[k] * src.row_stride,
                         xlo, xhi, dx, dx4, w, safe_end, fast_begin, fast_end, cin, dst.swap_rb,
                         rows[0], rows[1])
            tag[0] = lo
            tag[1] = hi
        for k in range(2):
            need = lo if k == 0 else hi
            if tag[0] == need or tag[1] == need:
                continue
            slot = 1 if tag[0] == (hi if k == 0 else lo) else 0
            if cin == 1:
                hpass_gray(src.data + need * src.row_stride, xlo, xhi, dx, w, rows[slot])
            else:
                hpass_color(src.data + need * src.row_stride, xlo, xhi, dx, w, safe_end,
                            dst.swap_rb, rows[slot])
            tag[slot] = need
        top = 0 if tag[0] == lo else 1
        bottom = 0 if tag[0] == hi else 1
        vblend(rows[top], rows[bottom], dy[y], w, cin, dst, output_row(dst, y))
        if dst.row != NULL:
            emit_row(dst, y)
    free(scratch)
    return 0


# ---------------------------------------------------------------- area

cdef struct AreaSpan:
    # Source cells [first .. last] of one output pixel: first and last weighted
    # (already clamped to the image, as TensorFlow's Bound), those between weight 1.
    Py_ssize_t first
    Py_ssize_t last
    Py_ssize_t mid_begin
    Py_ssize_t mid_end
    float first_weight
    float last_weight
    bint has_last


cdef inline float area_cell_weight(Py_ssize_t i, float lo, float hi, float scale) noexcept nogil:
    """Weight of source cell i in the output cell [lo, hi), as TensorFlow's ResizeArea."""
    if i < lo:
        return scale if <float>(i + 1) > hi else <float>(i + 1) - lo
    return hi - <float>i if <float>(i + 1) > hi else <float>1.0


cdef void area_axis(Py_ssize_t in_size, Py_ssize_t out_size, AreaSpan* spans) noexcept nogil:
    cdef float scale = <float>in_size / <float>out_size
    cdef float lo, hi
    cdef Py_ssize_t x, start, end
    for x in range(out_size):
        lo = <float>x * scale
        hi = <float>(x + 1) * scale
        start = <Py_ssize_t>floorf(lo)
        end = <Py_ssize_t>ceilf(hi)
        spans[x].first = clamp(start, in_size - 1)
        spans[x].first_weight = area_cell_weight(start, lo, hi, scale)
        spans[x].has_last = end - 1 != start
        spans[x].last = clamp(end - 1, in_size - 1)
        spans[x].last_weight = area_cell_weight(end - 1, lo, hi, scale)
        spans[x].mid_begin = start + 1
        spans[x].mid_end = end - 1


cdef void accumulate_rows(const Frame* src, Py_ssize_t y_start, Py_ssize_t y_end, float lo, float hi,
                          float scale, float* facc, uint16_t* iacc) noexcept nogil:
    """facc[j] = sum over source rows i in [y_start, y_end) of weight(i) * row_i[j].

    Rows of weight exactly 1 (all but the two edge rows of a downscale) go through
    exact uint16 sums, flushed to facc before they could overflow.
    """
    cdef Py_ssize_t n = src.width * src.channels
    cdef Py_ssize_t i, j, int_rows = 0
    cdef bint facc_empty = True
    cdef float wgt
    cdef const uint8_t* row
    for i in range(y_start, y_end + 1):
        if i == y_end or int_rows == MAX_U16_ROWS:
            if int_rows:  # flush the integer sums
                if facc_empty:
                    for j in range(n):
                        facc[j] = iacc[j]
                else:
                    for j in range(n):
                        facc[j] += iacc[j]
                facc_empty = False
                int_rows = 0
            if i == y_end:
                break
        row = src.data + clamp(i, src.height - 1) * src.row_stride
        wgt = area_cell_weight(i, lo, hi, scale)
        if wgt == 1.0:
            if int_rows == 0:
                for j in range(n):
                    iacc[j] = row[j]
            else:
                for j in range(n):
                    iacc[j] += row[j]
            int_rows += 1
        elif facc_empty:
            for j in range(n):
                facc[j] = row[j] * wgt
            facc_empty = False
        else:
            for j in range(n):
                facc[j] += row[j] * wgt


cdef void area_row_out(const float* facc, const AreaSpan* spans, Py_ssize_t cin,
                       float cell_scale, const Target* dst, float* out) noexcept nogil:
    """One output row from the row sums: each pixel sums its cells, then colour and normalise."""
    cdef Py_ssize_t x, k
    cdef float s, v, r, g, b
    cdef float px[4]
    cdef v4f acc
    cdef float m0 = dst.mul[0], m1 = dst.mul[1], m2 = dst.mul[2]
    cdef float a0 = dst.add[0], a1 = dst.add[1], a2 = dst.add[2]
    for x in range(dst.width):
        if cin == 1:
            s = facc[spans[x].first] * spans[x].first_weight
            for k in range(spans[x].mid_begin, spans[x].mid_end):
                s += facc[k]
            if spans[x].has_last:
                s += facc[spans[x].last] * spans[x].last_weight
            v = s * cell_scale
            if dst.channels == 1:
                out[x] = v * m0 + a0
            else:
                out[3 * x] = v * m0 + a0
                out[3 * x + 1] = v * m1 + a1
                out[3 * x + 2] = v * m2 + a2
            continue
        acc = v4f_mul(v4f_loadu(facc + cin * spans[x].first), spans[x].first_weight)
        for k in range(spans[x].mid_begin, spans[x].mid_end):
            acc = v4f_add(acc, v4f_loadu(facc + cin * k))
        if spans[x].has_last:
            acc = v4f_add(acc, v4f_mul(v4f_loadu(facc + cin * spans[x].last), spans[x].last_weight))
        v4f_storeu(px, v4f_mul(acc, cell_scale))
        if dst.swap_rb:
            r, g, b = px[2], px[1], px[0]
        else:
            r, g, b = px[0], px[1], px[2]
        if dst.channels == 1:
            out[x] = (r * GRAY_R + g * GRAY_G + b * GRAY_B) * m0 + a0
        else:
            out[3 * x] = r * m0 + a0
            out[3 * x + 1] = g * m1 + a1
            out[3 * x + 2] = b * m2 + a2


cdef int resize_area_frame(const Frame* src, const Target* dst) noexcept nogil:
    """Area resize of one frame into its slot; 0, or -1 when out of memory."""
    cdef Py_ssize_t H = src.height, W = src.width, cin = src.channels
    cdef Py_ssize_t h = dst.height, w = dst.width
    cdef Py_ssize_t n = W * cin
    # facc gets 4 floats of slack: a 3-channel pixel is loaded as 4 lanes.
    cdef Py_ssize_t nbytes = w * sizeof(AreaSpan) + (n + 4) * sizeof(float) + n * sizeof(uint16_t)
    cdef char* scratch = <char*>malloc(nbytes)
    if scratch == NULL:
        return -1
    cdef AreaSpan* spans = <AreaSpan*>scratch
    cdef float* facc = <float*>(spans + w)
    cdef uint16_t* iacc = <uint16_t*>(facc + n + 4)
    cdef Py_ssize_t j
    for j in range(n, n + 4):
        facc[j] = 0
    area_axis(W, w, spans)
    cdef float y_scale = <float>H / <float>h
    cdef float x_scale = <float>W / <float>w
    cdef float cell_scale = <float>(1.0 / <double>(y_scale * x_scale))
    cdef float lo, hi
    cdef Py_ssize_t y
    for y in range(h):
        lo = <float>y * y_scale
        hi = <float>(y + 1) * y_scale
        accumulate_rows(src, <Py_ssize_t>floorf(lo), <Py_ssize_t>ceilf(hi), lo, hi, y_scale, facc, iacc)
        area_row_out(facc, spans, cin, cell_scale, dst, output_row(dst, y))
        if dst.row != NULL:
            emit_row(dst, y)
    free(scratch)
    return 0


# ---------------------------------------------------------------- batch

cdef inline void describe(uintptr_t data, const Py_ssize_t* geometry, Py_ssize_t h, Py_ssize_t w,
                          Py_ssize_t cout, bint swap_rb, const float* mul, const float* add,
                          Frame* src, Target* dst) noexcept nogil:
    """Fill `src` from a frame's address and geometry row (height, width, channels, row
    stride) and `dst` with the output size and channel arithmetic; dst's data, row and
    sink are left to the caller."""
    src.data = <const uint8_t*>data
    src.height = geometry[0]
    src.width = geometry[1]
    src.channels = geometry[2]
    src.row_stride = geometry[3]
    dst.height = h
    dst.width = w
    dst.channels = cout
    dst.swap_rb = swap_rb
    cdef int c
    for c in range(3):
        dst.mul[c] = mul[c]
        dst.add[c] = add[c]


cdef inline int resize_frame(const Frame* src, const Target* dst, int method) noexcept nogil:
    return resize_area_frame(src, dst) if method == AREA else resize_bilinear_frame(src, dst)


cdef int resize_one(uintptr_t data, const Py_ssize_t* geometry, float* out,
                    Py_ssize_t h, Py_ssize_t w, Py_ssize_t cout, int method, bint swap_rb,
                    const float* mul, const float* add) noexcept nogil:
    cdef Frame src
    cdef Target dst
    describe(data, geometry, h, w, cout, swap_rb, mul, add, &src, &dst)
    dst.data = out
    dst.row = NULL
    dst.sink = NULL
    return resize_frame(&src, &dst, method)


def resize_batch_into(const uintptr_t[::1] frame_data, const Py_ssize_t[:, ::1] frame_geometry,
                      float[:, :, :, ::1] out, int method, bint swap_rb, const float[::1] mul,
                      const float[::1] add, int threads):
    """Resize frame i (uint8 at address frame_data[i], geometry row i = height, width,
    channels, row stride in bytes) into out[i] (float32 (N, h, w, 1|3)); channel c of
    every value v becomes v * mul[c] + add[c] (mul and add hold 3 floats).

    Frames are spread over `threads` OpenMP threads; the GIL is released throughout.
    The caller keeps the frames alive and has checked every number.
    """
    cdef Py_ssize_t n = out.shape[0], h = out.shape[1], w = out.shape[2], cout = out.shape[3]
    cdef Py_ssize_t i
    cdef int failed = 0
    if threads <= 1 or n <= 1:
        with nogil:
            for i in range(n):
                failed += resize_one(frame_data[i], &frame_geometry[i, 0], &out[i, 0, 0, 0],
                                     h, w, cout, method, swap_rb, &mul[0], &add[0])
    else:
        for i in prange(n, nogil=True, num_threads=threads, schedule="dynamic"):
            failed += resize_one(frame_data[i], &frame_geometry[i, 0], &out[i, 0, 0, 0],
                                 h, w, cout, method, swap_rb, &mul[0], &add[0])
    if failed:
        raise MemoryError(f"preprocess: out of memory for scratch rows in {-failed} of {n} frames")


# ---------------------------------------------------------------- windows

# Window rows are copied in moves of this many bytes; a move may run past its row into
# what is written next, so the bordered image has this much slack after its last value.
cdef enum:
    MOVE_BYTES = 16


cdef inline void fill(window_t* dst, Py_ssize_t count, window_t value) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(count):
        dst[i] = value


cdef void gather_windows(window_t* bordered, Py_ssize_t height, Py_ssize_t width, Py_ssize_t channels,
                         const Windows* layout, window_t zero, window_t* out) noexcept nogil:
    """Zero the border of `bordered` (its interior rows hold the image, see Sink; it has
    MOVE_BYTES of slack) and write every position's window into the slot `out` (see Windows)."""
    cdef Py_ssize_t move = MOVE_BYTES // sizeof(window_t)  # values per move
    cdef Py_ssize_t row_len = (width + layout.pad_left + layout.pad_right) * channels
    cdef Py_ssize_t left = layout.pad_left * channels, right = layout.pad_right * channels
    cdef Py_ssize_t y, x, ky, k
    cdef window_t* row
    cdef window_t zeros[MOVE_BYTES]
    fill(zeros, move, zero)
    fill(bordered, layout.pad_top * row_len, zero)
    for y in range(height):
        row = bordered + (y + layout.pad_top) * row_len
        fill(row, left, zero)
        fill(row + row_len - right, right, zero)
    fill(bordered + (height + layout.pad_top) * row_len, layout.pad_bottom * row_len + move, zero)

    cdef Py_ssize_t segment = layout.patch_w * channels  # one window row
    cdef Py_ssize_t filled = layout.patch_h * segment
    cdef Py_ssize_t depth = layout.depth
    # Positions whose moves (each may overrun by < `move` values into what is written after
    # it: the next window row, the zero tail, the next position) stay inside the slot.
    cdef Py_ssize_t total = layout.out_height * layout.out_width * depth
    cdef Py_ssize_t fast = (total - depth - move) // depth + 1 if total >= depth + move else 0
    cdef Py_ssize_t p = 0, run
    cdef window_t* dst
    cdef const window_t* src
    cdef window_masks masks
    cdef bint shuffled = False
    cdef Py_ssize_t blocks_end = (depth + 15) // 16 * 16  # bytes the shuffled path writes per position
    # Positions [0, shuffled_end) keep all those bytes inside the slot.
    cdef Py_ssize_t shuffled_end = (total - blocks_end) // depth + 1 if total >= blocks_end else 0
    if window_t is uint8_t:
        shuffled = use_avx2 and window_masks_init(&masks, layout.patch_h, segment, depth, zero)
    for y in range(layout.out_height):
        x = 0
        if shuffled:
            run = min(layout.out_width, max(0, shuffled_end - p))
            windows_u8_avx2(<const uint8_t*>(bordered + y * row_len), row_len, channels, &masks, run,
                            <uint8_t*>(out + p * depth), depth)
            x = run
            p += run
        while x < layout.out_width:
            dst = out + p * depth
            src = bordered + y * row_len + x * channels
            if p < fast:
                for ky in range(layout.patch_h):
                    k = 0
                    while k < segment:
                        memcpy(dst + ky * segment + k, src + ky * row_len + k, MOVE_BYTES)
                        k += move
                k = filled
                while k < depth:
                    memcpy(dst + k, zeros, MOVE_BYTES)
                    k += move
            else:  # the slot's last positions: exact copies
                for ky in range(layout.patch_h):
                    memcpy(dst + ky * segment, src + ky * row_len, segment * sizeof(window_t))
                fill(dst + filled, depth - filled, zero)
            p += 1
            x += 1


cdef int windows_one(uintptr_t data, const Py_ssize_t* geometry, window_t* out, Py_ssize_t h, Py_ssize_t w,
                     Py_ssize_t cout, int method, bint swap_rb, const float* mul, const float* add,
                     const Windows* layout, float scale, int32_t zero_point, window_t* bordered) noexcept nogil:
    """One frame -> its windows slot: resized rows go through a Sink into `bordered`, then
    gather_windows. 0, or -1 when out of memory."""
    cdef Frame src
    cdef Target dst
    cdef Sink sink
    describe(data, geometry, h, w, cout, swap_rb, mul, add, &src, &dst)
    dst.data = NULL
    dst.row = <float*>malloc(w * cout * sizeof(float))
    if dst.row == NULL:
        return -1
    dst.sink = &sink
    sink.bordered = bordered
    sink.row_len = (w + layout.pad_left + layout.pad_right) * cout
    sink.pad_top = layout.pad_top
    sink.left = layout.pad_left * cout
    sink.scale = scale
    sink.zero_point = zero_point
    cdef window_t zero
    if window_t is uint8_t:
        sink.quantize = True
        zero = <uint8_t>zero_point
    else:
        sink.quantize = False
        zero = 0
    cdef int failed = resize_frame(&src, &dst, method)
    free(dst.row)
    if failed == 0:
        gather_windows(bordered, h, w, cout, layout, zero, out)
    return failed


def resize_windows_into(const uintptr_t[::1] frame_data, const Py_ssize_t[:, ::1] frame_geometry,
                        window_t[:, :, :, ::1] out, Py_ssize_t height, Py_ssize_t width, Py_ssize_t channels,
                        int method, bint swap_rb, const float[::1] mul, const float[::1] add,
                        Py_ssize_t patch_h, Py_ssize_t patch_w, Py_ssize_t pad_top, Py_ssize_t pad_left,
                        Py_ssize_t pad_bottom, Py_ssize_t pad_right, float scale, int zero_point,
                        window_t[:, ::1] scratch, int threads):
    """resize_batch_into to (height, width, channels) images, written as windows: out[i] is
    (h', w', depth), uint8 (quantised with scale, zero_point, as ONNX QuantizeLinear) or
    float32; see Windows. scratch holds one bordered image per thread: (threads,
    (height + pads) * (width + pads) * channels + 16 bytes' worth). The caller has checked
    every number (out's shape, depth >= patch_h * patch_w * channels)."""
    cdef Windows layout
    layout.patch_h = patch_h
    layout.patch_w = patch_w
    layout.pad_top = pad_top
    layout.pad_left = pad_left
    layout.pad_bottom = pad_bottom
    layout.pad_right = pad_right
    layout.out_height = out.shape[1]
    layout.out_width = out.shape[2]
    layout.depth = out.shape[3]
    cdef Py_ssize_t n = out.shape[0]
    cdef Py_ssize_t i
    cdef int failed = 0
    if threads <= 1 or n <= 1:
        with nogil:
            for i in range(n):
                failed += windows_one(frame_data[i], &frame_geometry[i, 0], &out[i, 0, 0, 0], height, width,
                                      channels, method, swap_rb, &mul[0], &add[0], &layout, scale, zero_point,
                                      &scratch[0, 0])
    else:
        for i in prange(n, nogil=True, num_threads=threads, schedule="dynamic"):
            failed += windows_one(frame_data[i], &frame_geometry[i, 0], &out[i, 0, 0, 0], height, width,
                                  channels, method, swap_rb, &mul[0], &add[0], &layout, scale, zero_point,
                                  &scratch[threadid(), 0])
    if failed:
        raise MemoryError(f"preprocess: out of memory for scratch rows in {-failed} of {n} frames")
