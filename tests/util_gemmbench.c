/*
 * util_gemmbench - F32 throughput of this machine and of qf_gemm, for
 * bench/verify.sh.
 *
 *   util_gemmbench peak [-t N]
 *       multiply-then-add throughput of the widest vectors qf_gemm uses
 *       (registers only, 8 independent chains per thread): the F32 peak
 *       qf_gemm could reach (best of 5 runs). Prints
 *       "peak_gflops=<x> isa=<name> threads=<n>".
 *   util_gemmbench gemm N_OUT N_IN N_TOK [-t N]
 *       qf_gemm on that shape (best of ~1 s of runs). Prints "gflops=<x>".
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "verify/gemm.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define X86 1
#endif

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#define ITERS 100000000L

/* 8 chains of b = b * m; a = a + b: one multiply and one add per chain and
 * iteration, the pair qf_gemm's kernels issue. */
#define BODY(T, MUL, ADD)                                                                         \
    b0 = MUL(b0, m); a0 = ADD(a0, b0); b1 = MUL(b1, m); a1 = ADD(a1, b1);                         \
    b2 = MUL(b2, m); a2 = ADD(a2, b2); b3 = MUL(b3, m); a3 = ADD(a3, b3);                         \
    b4 = MUL(b4, m); a4 = ADD(a4, b4); b5 = MUL(b5, m); a5 = ADD(a5, b5);                         \
    b6 = MUL(b6, m); a6 = ADD(a6, b6); b7 = MUL(b7, m); a7 = ADD(a7, b7);

#ifdef X86
__attribute__((target("avx512f"))) static float spin512(long n)
{
    /* distinct starting values, or the compiler merges identical chains */
    __m512 m = _mm512_set1_ps(0.9999999f), a0 = _mm512_set1_ps(1), a1 = _mm512_set1_ps(2),
           a2 = _mm512_set1_ps(3), a3 = _mm512_set1_ps(4), a4 = _mm512_set1_ps(5),
           a5 = _mm512_set1_ps(6), a6 = _mm512_set1_ps(7), a7 = _mm512_set1_ps(8),
           b0 = _mm512_set1_ps(1e-3f), b1 = _mm512_set1_ps(2e-3f), b2 = _mm512_set1_ps(3e-3f),
           b3 = _mm512_set1_ps(4e-3f), b4 = _mm512_set1_ps(5e-3f), b5 = _mm512_set1_ps(6e-3f),
           b6 = _mm512_set1_ps(7e-3f), b7 = _mm512_set1_ps(8e-3f);
    long i;
    for (i = 0; i < n; i++) {
        BODY(__m512, _mm512_mul_ps, _mm512_add_ps)
    }
    a0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                       _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    return _mm512_reduce_add_ps(a0);
}

__attribute__((target("avx2"))) static float spin256(long n)
{
    /* 4 chains run twice as often: 16 ymm registers hold no more */
    __m256 m = _mm256_set1_ps(0.9999999f), a0 = _mm256_set1_ps(1), a1 = _mm256_set1_ps(2),
           a2 = _mm256_set1_ps(3), a3 = _mm256_set1_ps(4), b0 = _mm256_set1_ps(1e-3f),
           b1 = _mm256_set1_ps(2e-3f), b2 = _mm256_set1_ps(3e-3f), b3 = _mm256_set1_ps(4e-3f);
    float out[8];
    long i;
    for (i = 0; i < 2 * n; i++) {
        b0 = _mm256_mul_ps(b0, m); a0 = _mm256_add_ps(a0, b0);
        b1 = _mm256_mul_ps(b1, m); a1 = _mm256_add_ps(a1, b1);
        b2 = _mm256_mul_ps(b2, m); a2 = _mm256_add_ps(a2, b2);
        b3 = _mm256_mul_ps(b3, m); a3 = _mm256_add_ps(a3, b3);
    }
    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    return out[0];
}
#endif

static float spin_scalar(long n)
{
    float m = 0.9999999f, a0 = 1, a1 = 2, a2 = 3, a3 = 4, b0 = 1e-3f, b1 = 2e-3f, b2 = 3e-3f,
          b3 = 4e-3f;
    long i;
    for (i = 0; i < 2 * n; i++) {
        b0 = b0 * m; a0 = a0 + b0; b1 = b1 * m; a1 = a1 + b1;
        b2 = b2 * m; a2 = a2 + b2; b3 = b3 * m; a3 = a3 + b3;
    }
    return a0 + a1 + a2 + a3;
}

static volatile float sink;
static int isa;

static void *spin(void *arg)
{
    (void)arg;
#ifdef X86
    if (isa == QF_GEMM_ISA_AVX512) {
        sink = spin512(ITERS / 4);
        return NULL;
    }
    if (isa == QF_GEMM_ISA_AVX2) {
        sink = spin256(ITERS / 4);
        return NULL;
    }
#endif
    sink = spin_scalar(ITERS / 4);
    return NULL;
}

static double peak(int threads)
{
    pthread_t tid[64];
    double t0 = now_s(), dt, lanes, flops_per_iter;
    int i;
    isa = qf_gemm_isa();
    for (i = 1; i < threads; i++)
        pthread_create(&tid[i], NULL, spin, NULL);
    spin(NULL);
    for (i = 1; i < threads; i++)
        pthread_join(tid[i], NULL);
    dt = now_s() - t0;
    lanes = isa == QF_GEMM_ISA_AVX512 ? 16 : isa == QF_GEMM_ISA_AVX2 ? 8 : 1;
    flops_per_iter = 16 * lanes; /* per unit of n: 8 multiplies and 8 adds per lane */
    return flops_per_iter * (double)(ITERS / 4) * threads / dt / 1e9;
}

int main(int argc, char **argv)
{
    int threads = 1, a;
    for (a = 1; a + 1 < argc; a++)
        if (!strcmp(argv[a], "-t"))
            threads = atoi(argv[a + 1]);
    if (threads < 1 || threads > 64)
        threads = 1;
    if (argc >= 2 && !strcmp(argv[1], "peak")) {
        double p = 0;
        int r;
        for (r = 0; r < 5; r++) { /* best of 5: other jobs only ever slow it down */
            double q = peak(threads);
            p = q > p ? q : p;
        }
        printf("peak_gflops=%.1f isa=%s threads=%d\n", p, qf_gemm_isa_name(qf_gemm_isa()), threads);
        return 0;
    }
    if (argc >= 5 && !strcmp(argv[1], "gemm")) {
        int64_t N = atol(argv[2]), K = atol(argv[3]), T = atol(argv[4]), i;
        qf_gemm_mat m;
        float *x = malloc((size_t)(T * K) * sizeof(float)), *y = malloc((size_t)(T * N) * sizeof(float));
        double best = 1e30, t0 = now_s();
        if (!x || !y || qf_gemm_mat_alloc(&m, N, K, NULL) != 0)
            return 1;
        for (i = 0; i < T * K; i++)
            x[i] = (float)(i % 17) * 0.01f;
        for (i = 0; i < (N + QF_GEMM_NR - 1) / QF_GEMM_NR * QF_GEMM_NR * K; i++)
            m.data[i] = (float)(i % 13) * 0.01f;
        while (now_s() - t0 < 1.0) {
            double t = now_s();
            qf_gemm(&m, x, K, T, y, N, threads, NULL);
            t = now_s() - t;
            best = t < best ? t : best;
        }
        printf("gflops=%.1f\n", 2.0 * (double)N * (double)K * (double)T / best / 1e9);
        qf_gemm_mat_free(&m);
        free(x);
        free(y);
        return 0;
    }
    fprintf(stderr, "usage: util_gemmbench peak [-t N] | gemm N_OUT N_IN N_TOK [-t N]\n");
    return 2;
}
