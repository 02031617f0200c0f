/*
 * verify/gemm.c - packed F32 products (see gemm.h for the contract).
 *
 * One driver, three micro-kernels (plain C, AVX2, AVX-512) that compute the
 * same MR x NR tile of Y = X * W^T: for every k in order, every accumulator
 * gets acc = acc + x[r][k] * w[c][k]. The kernels differ only in how many
 * accumulators sit in one register, which never changes a sum's order.
 *
 * The vector kernels are compiled with target attributes and chosen at run
 * time, so the default build (no -march) still uses the machine's vectors.
 */
#include "verify/gemm.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "formats/parallel.h"

#if defined(__x86_64__) || defined(__i386__)
#define QF_X86 1
#include <immintrin.h>
#endif

#define NR QF_GEMM_NR
#define MR QF_GEMM_MR

/* =====================================================================
 * Packed weights
 * ===================================================================== */

static int64_t n_panels(int64_t n_out)
{
    return (n_out + NR - 1) / NR;
}

int qf_gemm_mat_alloc(qf_gemm_mat *m, int64_t n_out, int64_t n_in, qf_err *err)
{
    uint64_t bytes;

    memset(m, 0, sizeof *m);
    if (n_out <= 0 || n_in <= 0)
        return qf_err_set(err, QF_EINVAL, "matrix of %lld x %lld", (long long)n_out,
                          (long long)n_in);
    if ((uint64_t)n_in > (UINT64_MAX / 4 / NR) / (uint64_t)n_panels(n_out))
        return qf_err_set(err, QF_ELIMIT, "matrix of %lld x %lld is too large", (long long)n_out,
                          (long long)n_in);
    bytes = (uint64_t)n_panels(n_out) * (uint64_t)n_in * NR * sizeof(float);
    bytes = (bytes + 63) & ~(uint64_t)63;
    if (bytes > SIZE_MAX || !(m->data = aligned_alloc(64, (size_t)bytes)))
        return qf_err_set(err, QF_ENOMEM, "out of memory (matrix of %lld x %lld)",
                          (long long)n_out, (long long)n_in);
    /* rows past n_out in the last panel must read as zero; the others are
     * all written by qf_gemm_mat_set_rows (zeroing them too would touch
     * every page twice) */
    memset(m->data + (n_panels(n_out) - 1) * n_in * NR, 0, (size_t)n_in * NR * sizeof(float));
    m->n_out = n_out;
    m->n_in = n_in;
    return 0;
}

void qf_gemm_mat_free(qf_gemm_mat *m)
{
    if (!m)
        return;
    free(m->data);
    m->data = NULL;
    m->n_out = m->n_in = 0;
}

void qf_gemm_mat_set_rows(qf_gemm_mat *m, int64_t row0, int64_t n, const float *src)
{
    int64_t K = m->n_in, r, k;
    for (r = 0; r < n; r++) {
        int64_t row = row0 + r;
        float *dst = m->data + (row / NR) * K * NR + row % NR;
        const float *s = src + r * K;
        for (k = 0; k < K; k++)
            dst[k * NR] = s[k];
    }
}

void qf_gemm_mat_get_row(const qf_gemm_mat *m, int64_t row, float *dst)
{
    int64_t K = m->n_in, k;
    const float *s = m->data + (row / NR) * K * NR + row % NR;
    for (k = 0; k < K; k++)
        dst[k] = s[k * NR];
}

/* =====================================================================
 * Micro-kernels: for r < mr, c < nr,
 *     y[r][c] = (acc ? y[r][c] : 0) + sum over k < kc of xp[k][r] * wp[k][c]
 * with xp: kc x MR (part of a packed block of X) and wp: kc rows of NR
 * floats, ldw apart (a slice of a weight panel, where ldw = NR, or of any
 * row-major matrix). A product of K columns is one call per k-block, each
 * continuing the previous one's sums from y: the order of every sum stays
 * k = 0, 1, ..., K-1. The vector kernels read all NR floats of each wp row.
 * ===================================================================== */

typedef void (*kernel_fn)(const float *xp, const float *wp, int64_t ldw, int64_t kc, float *y,
                          int64_t ldy, int mr, int nr, int acc);

/* The tile as it stands in y (valid part; zeros elsewhere), or zeros. */
static void load_tile(float *tile, const float *y, int64_t ldy, int mr, int nr, int acc)
{
    int r;
    memset(tile, 0, MR * NR * sizeof(float));
    if (acc)
        for (r = 0; r < mr; r++)
            memcpy(tile + r * NR, y + r * ldy, (size_t)nr * sizeof(float));
}

static void store_tile(const float *tile, float *y, int64_t ldy, int mr, int nr)
{
    int r;
    for (r = 0; r < mr; r++)
        memcpy(y + r * ldy, tile + r * NR, (size_t)nr * sizeof(float));
}

static void kernel_generic(const float *xp, const float *wp, int64_t ldw, int64_t kc, float *y,
                           int64_t ldy, int mr, int nr, int acc)
{
    float t[MR * NR];
    int64_t k;
    int r, c;

    load_tile(t, y, ldy, mr, nr, acc);
    for (k = 0; k < kc; k++) {
        const float *xk = xp + k * MR, *wk = wp + k * ldw;
        for (r = 0; r < MR; r++) {
            float xv = xk[r];
            float *a = t + r * NR;
            for (c = 0; c < nr; c++)
                a[c] = a[c] + xv * wk[c];
        }
    }
    store_tile(t, y, ldy, mr, nr);
}

#ifdef QF_X86

__attribute__((target("avx2"))) static void kernel_avx2(const float *xp, const float *wp,
                                                        int64_t ldw, int64_t kc, float *y,
                                                        int64_t ldy, int mr, int nr, int acc)
{
    /* 16 ymm registers: the 8 x 32 tile is done as four 4 x 16 quarters,
     * 8 accumulators each, through a tile buffer. */
    float t[MR * NR];
    int rh, ch;

    load_tile(t, y, ldy, mr, nr, acc);
    for (rh = 0; rh < MR; rh += 4) {
        for (ch = 0; ch < NR; ch += 16) {
            float *t0 = t + rh * NR + ch;
            __m256 c00 = _mm256_loadu_ps(t0), c01 = _mm256_loadu_ps(t0 + 8);
            __m256 c10 = _mm256_loadu_ps(t0 + NR), c11 = _mm256_loadu_ps(t0 + NR + 8);
            __m256 c20 = _mm256_loadu_ps(t0 + 2 * NR), c21 = _mm256_loadu_ps(t0 + 2 * NR + 8);
            __m256 c30 = _mm256_loadu_ps(t0 + 3 * NR), c31 = _mm256_loadu_ps(t0 + 3 * NR + 8);
            const float *xk = xp + rh, *wk = wp + ch;
            int64_t k;
            for (k = 0; k < kc; k++, xk += MR, wk += ldw) {
                __m256 w0 = _mm256_loadu_ps(wk), w1 = _mm256_loadu_ps(wk + 8), x;
                x = _mm256_broadcast_ss(xk + 0);
                c00 = _mm256_add_ps(c00, _mm256_mul_ps(x, w0));
                c01 = _mm256_add_ps(c01, _mm256_mul_ps(x, w1));
                x = _mm256_broadcast_ss(xk + 1);
                c10 = _mm256_add_ps(c10, _mm256_mul_ps(x, w0));
                c11 = _mm256_add_ps(c11, _mm256_mul_ps(x, w1));
                x = _mm256_broadcast_ss(xk + 2);
                c20 = _mm256_add_ps(c20, _mm256_mul_ps(x, w0));
                c21 = _mm256_add_ps(c21, _mm256_mul_ps(x, w1));
                x = _mm256_broadcast_ss(xk + 3);
                c30 = _mm256_add_ps(c30, _mm256_mul_ps(x, w0));
                c31 = _mm256_add_ps(c31, _mm256_mul_ps(x, w1));
            }
            _mm256_storeu_ps(t0, c00), _mm256_storeu_ps(t0 + 8, c01);
            _mm256_storeu_ps(t0 + NR, c10), _mm256_storeu_ps(t0 + NR + 8, c11);
            _mm256_storeu_ps(t0 + 2 * NR, c20), _mm256_storeu_ps(t0 + 2 * NR + 8, c21);
            _mm256_storeu_ps(t0 + 3 * NR, c30), _mm256_storeu_ps(t0 + 3 * NR + 8, c31);
        }
    }
    store_tile(t, y, ldy, mr, nr);
}

#define ACC2(r)                                                                                   \
    x = _mm512_set1_ps(xk[r]);                                                                    \
    c##r##0 = _mm512_add_ps(c##r##0, _mm512_mul_ps(x, w0));                                       \
    c##r##1 = _mm512_add_ps(c##r##1, _mm512_mul_ps(x, w1));
#define LD2(r) c##r##0 = _mm512_loadu_ps(c + r * ldc), c##r##1 = _mm512_loadu_ps(c + r * ldc + 16);
#define ST2(r) _mm512_storeu_ps(c + r * ldc, c##r##0), _mm512_storeu_ps(c + r * ldc + 16, c##r##1);

__attribute__((target("avx512f"))) static void kernel_avx512(const float *xp, const float *wp,
                                                             int64_t ldw, int64_t kc, float *y,
                                                             int64_t ldy, int mr, int nr, int acc)
{
    __m512 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71;
    float t[MR * NR], *c = y;
    int64_t ldc = ldy, k;
    const float *xk = xp, *wk = wp;
    int full = mr == MR && nr == NR;

    if (!full) { /* partial tile: work in a buffer */
        load_tile(t, y, ldy, mr, nr, acc);
        c = t;
        ldc = NR;
        acc = 1;
    }
    if (acc) {
        LD2(0) LD2(1) LD2(2) LD2(3) LD2(4) LD2(5) LD2(6) LD2(7)
    } else {
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = _mm512_setzero_ps();
        c40 = c41 = c50 = c51 = c60 = c61 = c70 = c71 = _mm512_setzero_ps();
    }
    for (k = 0; k < kc; k++, xk += MR, wk += ldw) {
        __m512 w0 = _mm512_loadu_ps(wk), w1 = _mm512_loadu_ps(wk + 16), x;
        ACC2(0) ACC2(1) ACC2(2) ACC2(3) ACC2(4) ACC2(5) ACC2(6) ACC2(7)
    }
    ST2(0) ST2(1) ST2(2) ST2(3) ST2(4) ST2(5) ST2(6) ST2(7)
    if (!full)
        store_tile(t, y, ldy, mr, nr);
}

#endif /* QF_X86 */

/* =====================================================================
 * Dispatch
 * ===================================================================== */

/* The path in use: set once on first use (pthread_once, so that worker
 * threads calling in see the pointers below written), or by
 * qf_gemm_set_isa before any product runs. */
static _Atomic int isa_now; /* 0 until set */
static pthread_once_t isa_once = PTHREAD_ONCE_INIT;
static kernel_fn kernel_now = kernel_generic;

static int isa_best(void)
{
#ifdef QF_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return QF_GEMM_ISA_AVX512;
    if (__builtin_cpu_supports("avx2"))
        return QF_GEMM_ISA_AVX2;
#endif
    return QF_GEMM_ISA_GENERIC;
}

int qf_gemm_set_isa(int isa)
{
    int best = isa_best();
    if (isa <= QF_GEMM_ISA_AUTO || isa > best)
        isa = best;
    switch (isa) {
#ifdef QF_X86
    case QF_GEMM_ISA_AVX512:
        kernel_now = kernel_avx512;
        break;
    case QF_GEMM_ISA_AVX2:
        kernel_now = kernel_avx2;
        break;
#endif
    default:
        isa = QF_GEMM_ISA_GENERIC;
        kernel_now = kernel_generic;
    }
    isa_now = isa;
    return isa;
}

static void isa_auto(void)
{
    if (!isa_now)
        qf_gemm_set_isa(QF_GEMM_ISA_AUTO);
}

int qf_gemm_isa(void)
{
    if (!isa_now)
        pthread_once(&isa_once, isa_auto);
    return isa_now;
}

const char *qf_gemm_isa_name(int isa)
{
    switch (isa) {
    case QF_GEMM_ISA_GENERIC: return "generic";
    case QF_GEMM_ISA_AVX2: return "avx2";
    case QF_GEMM_ISA_AVX512: return "avx512";
    default: return "auto";
    }
}

void qf_gemm_block(const float *xp, int mr, const float *w, int64_t ldw, int64_t K, int64_t n,
                   float *y, int64_t ldy)
{
    int64_t c;
    qf_gemm_isa();
    for (c = 0; c < n; c += NR)
        kernel_now(xp, w + c, ldw, K, y + c, ldy, mr, (int)(n - c < NR ? n - c : NR), 0);
}

/* =====================================================================
 * Driver. X is packed into blocks of MR rows (K x MR each, zero rows past
 * n_tok). Threads take runs of whole weight panels; within a run the loop
 * is k-block, panel, token block, so a KC x NR slice of a panel (32 KiB)
 * sits in L1 while every token block passes over it, and the KC-deep slab
 * of X is reused from L2 across the run's panels.
 * ===================================================================== */

#define KC 256

typedef struct {
    const qf_gemm_mat *w;
    const float *xp;
    int64_t n_tok, n_blk;
    float *y;
    int64_t ldy;
    kernel_fn kern;
} gemm_job;

static int gemm_panels(void *ctx, int64_t begin, int64_t end, int worker)
{
    const gemm_job *j = ctx;
    int64_t K = j->w->n_in, p, b, k0;
    (void)worker;
    for (k0 = 0; k0 < K; k0 += KC) {
        int64_t kc = K - k0 < KC ? K - k0 : KC;
        for (p = begin; p < end; p++) {
            const float *wp = j->w->data + (p * K + k0) * NR;
            int nr = (int)(j->w->n_out - p * NR < NR ? j->w->n_out - p * NR : NR);
            for (b = 0; b < j->n_blk; b++) {
                int mr = (int)(j->n_tok - b * MR < MR ? j->n_tok - b * MR : MR);
                j->kern(j->xp + (b * K + k0) * MR, wp, NR, kc, j->y + b * MR * j->ldy + p * NR,
                        j->ldy, mr, nr, k0 > 0);
            }
        }
    }
    return 0;
}

typedef struct {
    const float *x;
    int64_t ldx, n_tok, K;
    float *xp;
} pack_job;

static int pack_blocks(void *ctx, int64_t begin, int64_t end, int worker)
{
    const pack_job *j = ctx;
    int64_t b, k;
    int r;
    (void)worker;
    for (b = begin; b < end; b++) {
        float *dst = j->xp + b * j->K * MR;
        for (r = 0; r < MR; r++) {
            int64_t t = b * MR + r;
            if (t < j->n_tok) {
                const float *src = j->x + t * j->ldx;
                for (k = 0; k < j->K; k++)
                    dst[k * MR + r] = src[k];
            } else {
                for (k = 0; k < j->K; k++)
                    dst[k * MR + r] = 0.0f;
            }
        }
    }
    return 0;
}

int qf_gemm(const qf_gemm_mat *w, const float *x, int64_t ldx, int64_t n_tok, float *y,
            int64_t ldy, int n_threads, qf_err *err)
{
    int64_t K = w->n_in, n_blk = (n_tok + MR - 1) / MR, np = n_panels(w->n_out), chunk;
    size_t bytes;
    pack_job pj;
    gemm_job j;
    int rc;

    if (n_tok <= 0)
        return 0;
    qf_gemm_isa();
    if (n_threads < 1)
        n_threads = 1;
    bytes = ((size_t)n_blk * (size_t)K * MR * sizeof(float) + 63) & ~(size_t)63;
    if (!(pj.xp = aligned_alloc(64, bytes)))
        return qf_err_set(err, QF_ENOMEM, "out of memory (a batch of %lld x %lld)",
                          (long long)n_tok, (long long)K);
    pj.x = x;
    pj.ldx = ldx;
    pj.n_tok = n_tok;
    pj.K = K;
    qf_parallel_for(n_threads, n_blk, 4, pack_blocks, &pj);
    j.w = w;
    j.xp = pj.xp;
    j.n_tok = n_tok;
    j.n_blk = n_blk;
    j.y = y;
    j.ldy = ldy;
    j.kern = kernel_now;
    /* Runs of panels: a few per thread, to balance without losing reuse. */
    chunk = (np + 4 * n_threads - 1) / (4 * n_threads);
    rc = qf_parallel_for(n_threads, np, chunk, gemm_panels, &j);
    free(pj.xp);
    return rc;
}
