/*
 * quantize/quant_avx2.c - the row quantizers for CPUs with AVX2: 8 groups
 * of weights in the 8 lanes of a 256-bit vector. The kernels are in
 * quantize/quant_x86.inc (shared with quantize/quant_avx512.c); this file
 * supplies the vector operations they are written in. Compiled for the
 * baseline ISA, with AVX2 enabled per function (target attribute), and
 * called only when quantize/quant.c has seen AVX2 in CPUID and the YMM
 * state in XCR0. No FMA: the target does not include it, so the compiler
 * cannot fuse a multiply and an add even if asked to.
 */
#include "quantize/quant_impl.h"

#ifdef QF_QUANT_X86
#include <immintrin.h>

#define QF_TARGET "avx2"
#define VW 8
#define SFX(name) name##_avx2

#define FN static inline __attribute__((target(QF_TARGET), always_inline))

typedef __m256 vf;
typedef __m256i vi;
typedef __m256 vm; /* a lane is all ones (true) or all zeros */

FN vf vf_zero(void) { return _mm256_setzero_ps(); }
FN vf vf_set1(float f) { return _mm256_set1_ps(f); }
FN vf vf_load(const float *p) { return _mm256_loadu_ps(p); }
FN void vf_store(float *p, vf v) { _mm256_storeu_ps(p, v); }
FN vf vf_add(vf a, vf b) { return _mm256_add_ps(a, b); }
FN vf vf_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
/* The empty asm hides the product from the optimizer, so that no build flag
 * (-ffp-contract=fast, -march with FMA) can fuse it into a following add:
 * each lane must round the product, then the sum, as the scalar code does. */
FN vf vf_mul(vf a, vf b)
{
    vf r = _mm256_mul_ps(a, b);
    __asm__("" : "+x"(r));
    return r;
}
FN vf vf_div(vf a, vf b) { return _mm256_div_ps(a, b); }
FN vf vf_sqrt(vf a) { return _mm256_sqrt_ps(a); }
/* to the nearest integer, ties to even (not MXCSR's mode) */
FN vf vf_round(vf a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
FN vf vf_abs(vf a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
FN vf vf_neg(vf a) { return _mm256_xor_ps(_mm256_set1_ps(-0.0f), a); }
/* a < b ? a : b and a > b ? a : b, exactly (b when they compare equal) */
FN vf vf_min(vf a, vf b) { return _mm256_min_ps(a, b); }
FN vf vf_max(vf a, vf b) { return _mm256_max_ps(a, b); }
FN vf vf_sel(vm m, vf a, vf b) { return _mm256_blendv_ps(b, a, m); }

/* C's comparisons: false for NaN, except != */
FN vm vm_lt(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
FN vm vm_gt(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
FN vm vm_ge(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
FN vm vm_eq(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
FN vm vm_neq(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_NEQ_UQ); }
FN vm vm_and(vm a, vm b) { return _mm256_and_ps(a, b); }
FN vm vm_or(vm a, vm b) { return _mm256_or_ps(a, b); }
FN vm vm_andnot(vm a, vm b) { return _mm256_andnot_ps(b, a); } /* a && !b */
FN vm vm_none(void) { return _mm256_setzero_ps(); }
FN int vm_any(vm m) { return _mm256_movemask_ps(m) != 0; }
FN int vm_all(vm m) { return _mm256_movemask_ps(m) == 0xFF; }

FN vi vi_zero(void) { return _mm256_setzero_si256(); }
FN vi vi_set1(int v) { return _mm256_set1_epi32(v); }
FN void vi_store(int32_t *p, vi v) { _mm256_storeu_si256((__m256i *)(void *)p, v); }
FN vi vi_add(vi a, vi b) { return _mm256_add_epi32(a, b); }
FN vi vi_sub(vi a, vi b) { return _mm256_sub_epi32(a, b); }
FN vi vi_and(vi a, vi b) { return _mm256_and_si256(a, b); }
FN vi vi_min(vi a, vi b) { return _mm256_min_epi32(a, b); }
FN vi vi_max(vi a, vi b) { return _mm256_max_epi32(a, b); }
FN vi vi_srl1(vi a) { return _mm256_srli_epi32(a, 1); }
FN vi vi_sel(vm m, vi a, vi b)
{
    return _mm256_castps_si256(
        _mm256_blendv_ps(_mm256_castsi256_ps(b), _mm256_castsi256_ps(a), m));
}
FN vi vi_bits(vf a) { return _mm256_castps_si256(a); }
FN vf vf_from_vi(vi a) { return _mm256_cvtepi32_ps(a); }
/* the 8 lanes (each 0..255) as bytes */
FN void vi_store_u8(uint8_t *p, vi v)
{
    __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    _mm_storel_epi64((__m128i *)(void *)p, _mm_packus_epi16(w, w));
}

/* a 16-entry float table in two registers, looked up by lane index 0..15 */
typedef struct lut16 {
    vf lo, hi;
} lut16;
FN lut16 lut16_load(const float *t)
{
    lut16 r = { _mm256_loadu_ps(t), _mm256_loadu_ps(t + 8) };
    return r;
}
FN vf lut16_get(lut16 t, vi idx)
{
    const vf a = _mm256_permutevar8x32_ps(t.lo, idx), b = _mm256_permutevar8x32_ps(t.hi, idx);
    return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(7))));
}

/* dst[c * dst_stride + r] = src[r * src_stride + c] for an 8 x 8 block */
FN void tr_block(const float *src, int src_stride, float *dst, int dst_stride)
{
    __m256 r[8], t[8], u[8];
    for (int k = 0; k < 8; k++)
        r[k] = _mm256_loadu_ps(src + k * src_stride);
    for (int k = 0; k < 8; k += 2) {
        t[k] = _mm256_unpacklo_ps(r[k], r[k + 1]);
        t[k + 1] = _mm256_unpackhi_ps(r[k], r[k + 1]);
    }
    for (int k = 0; k < 8; k += 4) {
        u[k] = _mm256_shuffle_ps(t[k], t[k + 2], 0x44);
        u[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], 0xEE);
        u[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0x44);
        u[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0xEE);
    }
    for (int k = 0; k < 4; k++) {
        _mm256_storeu_ps(dst + k * dst_stride, _mm256_permute2f128_ps(u[k], u[k + 4], 0x20));
        _mm256_storeu_ps(dst + (k + 4) * dst_stride, _mm256_permute2f128_ps(u[k], u[k + 4], 0x31));
    }
}

#include "quantize/quant_x86.inc"

#else
/* not x86: nothing here (quantize/quant.c never asks for these) */
typedef int qf_quant_avx2_unused;
#endif
