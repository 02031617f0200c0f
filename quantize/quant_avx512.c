/*
 * quantize/quant_avx512.c - the row quantizers for CPUs with AVX-512F: 16
 * groups of weights in the 16 lanes of a 512-bit vector. The kernels are in
 * quantize/quant_x86.inc (shared with quantize/quant_avx2.c); this file
 * supplies the vector operations they are written in. Compiled for the
 * baseline ISA, with AVX-512F enabled per function (target attribute), and
 * called only when quantize/quant.c has seen AVX512F in CPUID and the
 * opmask/ZMM state in XCR0. AVX-512F includes FMA instructions; the
 * Makefile's -ffp-contract=off (and the pragma in quant_x86.inc for clang)
 * keeps the compiler from fusing a multiply and an add.
 */
#include "quantize/quant_impl.h"

#ifdef QF_QUANT_X86
#include <immintrin.h>

#define QF_TARGET "avx512f"
#define VW 16
#define SFX(name) name##_avx512

#define FN static inline __attribute__((target(QF_TARGET), always_inline))

typedef __m512 vf;
typedef __m512i vi;
typedef __mmask16 vm;

FN vf vf_zero(void) { return _mm512_setzero_ps(); }
FN vf vf_set1(float f) { return _mm512_set1_ps(f); }
FN vf vf_load(const float *p) { return _mm512_loadu_ps(p); }
FN void vf_store(float *p, vf v) { _mm512_storeu_ps(p, v); }
FN vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
FN vf vf_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
/* The empty asm hides the product from the optimizer, so that no build flag
 * (-ffp-contract=fast, or GCC's default in GNU C mode) can fuse it into a
 * following add - AVX-512F has FMA: each lane must round the product, then
 * the sum, as the scalar code does. */
FN vf vf_mul(vf a, vf b)
{
    vf r = _mm512_mul_ps(a, b);
    __asm__("" : "+v"(r));
    return r;
}
FN vf vf_div(vf a, vf b) { return _mm512_div_ps(a, b); }
FN vf vf_sqrt(vf a) { return _mm512_sqrt_ps(a); }
/* to the nearest integer, ties to even (not MXCSR's mode) */
FN vf vf_round(vf a)
{
    return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
FN vf vf_abs(vf a)
{
    return _mm512_castsi512_ps(
        _mm512_and_si512(_mm512_castps_si512(a), _mm512_set1_epi32(0x7fffffff)));
}
FN vf vf_neg(vf a)
{
    return _mm512_castsi512_ps(
        _mm512_xor_si512(_mm512_castps_si512(a), _mm512_set1_epi32((int)0x80000000u)));
}
/* a < b ? a : b and a > b ? a : b, exactly (b when they compare equal) */
FN vf vf_min(vf a, vf b) { return _mm512_min_ps(a, b); }
FN vf vf_max(vf a, vf b) { return _mm512_max_ps(a, b); }
FN vf vf_sel(vm m, vf a, vf b) { return _mm512_mask_blend_ps(m, b, a); }

/* C's comparisons: false for NaN, except != */
FN vm vm_lt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
FN vm vm_gt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
FN vm vm_ge(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
FN vm vm_eq(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
FN vm vm_neq(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_NEQ_UQ); }
FN vm vm_and(vm a, vm b) { return (vm)(a & b); }
FN vm vm_or(vm a, vm b) { return (vm)(a | b); }
FN vm vm_andnot(vm a, vm b) { return (vm)(a & ~b); } /* a && !b */
FN vm vm_none(void) { return 0; }
FN int vm_any(vm m) { return m != 0; }
FN int vm_all(vm m) { return m == 0xFFFF; }

FN vi vi_zero(void) { return _mm512_setzero_si512(); }
FN vi vi_set1(int v) { return _mm512_set1_epi32(v); }
FN void vi_store(int32_t *p, vi v) { _mm512_storeu_si512(p, v); }
FN vi vi_add(vi a, vi b) { return _mm512_add_epi32(a, b); }
FN vi vi_sub(vi a, vi b) { return _mm512_sub_epi32(a, b); }
FN vi vi_and(vi a, vi b) { return _mm512_and_si512(a, b); }
FN vi vi_min(vi a, vi b) { return _mm512_min_epi32(a, b); }
FN vi vi_max(vi a, vi b) { return _mm512_max_epi32(a, b); }
FN vi vi_srl1(vi a) { return _mm512_srli_epi32(a, 1); }
FN vi vi_sel(vm m, vi a, vi b) { return _mm512_mask_blend_epi32(m, b, a); }
FN vi vi_bits(vf a) { return _mm512_castps_si512(a); }
FN vf vf_from_vi(vi a) { return _mm512_cvtepi32_ps(a); }
/* the 16 lanes (each 0..255) as bytes */
FN void vi_store_u8(uint8_t *p, vi v)
{
    _mm_storeu_si128((__m128i *)(void *)p, _mm512_cvtepi32_epi8(v));
}

/* a 16-entry float table in one register, looked up by lane index 0..15 */
typedef struct lut16 {
    vf t;
} lut16;
FN lut16 lut16_load(const float *t)
{
    lut16 r = { _mm512_loadu_ps(t) };
    return r;
}
FN vf lut16_get(lut16 t, vi idx) { return _mm512_permutexvar_ps(idx, t.t); }

/* dst[c * dst_stride + r] = src[r * src_stride + c] for a 16 x 16 block:
 * pairs interleaved within 128-bit lanes, then quads, then the 128-bit
 * lanes gathered (u[4j + m] holds, in lane L, column 4L + m of rows
 * 4j..4j+3). */
FN void tr_block(const float *src, int src_stride, float *dst, int dst_stride)
{
    __m512 r[16], t[16], u[16];
    for (int k = 0; k < 16; k++)
        r[k] = _mm512_loadu_ps(src + k * src_stride);
    for (int k = 0; k < 16; k += 2) {
        t[k] = _mm512_unpacklo_ps(r[k], r[k + 1]);
        t[k + 1] = _mm512_unpackhi_ps(r[k], r[k + 1]);
    }
    for (int k = 0; k < 16; k += 4) {
        u[k] = _mm512_shuffle_ps(t[k], t[k + 2], 0x44);
        u[k + 1] = _mm512_shuffle_ps(t[k], t[k + 2], 0xEE);
        u[k + 2] = _mm512_shuffle_ps(t[k + 1], t[k + 3], 0x44);
        u[k + 3] = _mm512_shuffle_ps(t[k + 1], t[k + 3], 0xEE);
    }
    for (int m = 0; m < 4; m++) {
        const __m512 xa = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x88);
        const __m512 xb = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xDD);
        const __m512 ya = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x88);
        const __m512 yb = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xDD);
        _mm512_storeu_ps(dst + m * dst_stride, _mm512_shuffle_f32x4(xa, ya, 0x88));
        _mm512_storeu_ps(dst + (8 + m) * dst_stride, _mm512_shuffle_f32x4(xa, ya, 0xDD));
        _mm512_storeu_ps(dst + (4 + m) * dst_stride, _mm512_shuffle_f32x4(xb, yb, 0x88));
        _mm512_storeu_ps(dst + (12 + m) * dst_stride, _mm512_shuffle_f32x4(xb, yb, 0xDD));
    }
}

#include "quantize/quant_x86.inc"

#else
/* not x86: nothing here (quantize/quant.c never asks for these) */
typedef int qf_quant_avx512_unused;
#endif
