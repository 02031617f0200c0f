/*
 * tests/util_quantbench.c - micro-benchmark of the row quantizers
 * (qf_quant_rows), scalar reference against each SIMD level this CPU has.
 *
 *   util_quantbench [-s SECONDS] [-r ROWS] [-j THREADS] [-l LEVEL] [-w] [TYPE...]
 *
 *   -s  time per measurement (default 0.5)
 *   -r  rows of 4096 weights in the input buffer (default 512, 8 MiB of
 *       F32: larger than L2, as a model's tensors are); it is quantized
 *       over and over until the time is spent
 *   -j  also measure with this many threads (rows split evenly), to show
 *       that the row quantizers scale
 *   -l  only this level (0 scalar, 1 AVX2, 2 AVX-512; for profiling: no
 *       speedup or byte comparison)
 *   -w  only with the imatrix (default: without, then with)
 *   TYPE  ggml type names (Q4_K, IQ4_XS, ...); default all quantized types
 *
 * Data: N(0, 0.02) weights with a per-row scale in [0.5, 2) and one value
 * in 1000 an outlier at 8 sigma (a transformer's weight matrices look like
 * this); imatrix: log-normal per-column weights.
 *
 * Output, one line per type, imatrix and level:
 *   cyc/32  cycles per 32 weights, counted as TSC ticks: the thread's CPU
 *           time (CLOCK_THREAD_CPUTIME_ID, so time slices lost to other
 *           processes on a shared machine do not count) times the TSC rate,
 *           which is measured against CLOCK_MONOTONIC with __rdtsc and
 *           printed. TSC ticks equal core cycles only when the core runs at
 *           the TSC rate.
 *   MB/s    of F32 input (10^6 bytes per second of that CPU time)
 *   x       speedup over the scalar line
 * all from the fastest pass over the buffer, and whether the bytes equal the
 * scalar bytes. Single-threaded unless -j; the -j lines use wall time.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define HAVE_RDTSC 1
#endif

#include "formats/types.h"
#include "quantize/quant.h"
#include "quantize/quant_impl.h"

#define COLS 4096

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t ticks(void)
{
#ifdef HAVE_RDTSC
    return __rdtsc();
#else
    return (uint64_t)(now_s() * 1e9); /* nanoseconds where there is no TSC */
#endif
}

/* xorshift64 + Box-Muller, deterministic */
static uint64_t rng_state = 88172645463325252ull;

static double uniform01(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return ((double)(rng_state >> 11) + 0.5) / 9007199254740992.0;
}

static double gauss(void)
{
    return sqrt(-2.0 * log(uniform01())) * cos(6.283185307179586 * uniform01());
}

typedef struct job {
    int type;
    const float *x;
    uint8_t *out;
    int64_t rows;
    size_t row_size;
    const float *w;
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    if (qf_quant_rows(j->type, j->x, j->out, j->rows, COLS, j->w) != 0) {
        fprintf(stderr, "util_quantbench: qf_quant_rows failed\n");
        exit(1);
    }
    return NULL;
}

/* Quantize all rows with `threads` threads, repeatedly for `seconds` (at
 * least 3 passes). Returns the seconds of the fastest pass: this thread's
 * CPU time when threads == 1, else wall time (the machine may be shared;
 * the fastest pass is the one least disturbed). */
static double measure(int type, const float *x, uint8_t *out, int64_t rows, size_t rs,
                      const float *w, int threads, double seconds)
{
    job jobs[64];
    pthread_t th[64];
    int passes = 0;
    double best_sec = 0;
    const double t_start = now_s();
    do {
        const double t0 = threads <= 1 ? thread_cpu_s() : now_s();
        if (threads <= 1) {
            job j = { type, x, out, rows, rs, w };
            run_job(&j);
        } else {
            for (int t = 0; t < threads; t++) {
                int64_t r0 = rows * t / threads, r1 = rows * (t + 1) / threads;
                jobs[t] = (job){ type, x + r0 * COLS, out + (size_t)r0 * rs, r1 - r0, rs, w };
                if (pthread_create(&th[t], NULL, run_job, &jobs[t]) != 0) {
                    fprintf(stderr, "util_quantbench: pthread_create failed\n");
                    exit(1);
                }
            }
            for (int t = 0; t < threads; t++)
                pthread_join(th[t], NULL);
        }
        const double sec = (threads <= 1 ? thread_cpu_s() : now_s()) - t0;
        if (passes == 0 || sec < best_sec)
            best_sec = sec;
        passes++;
    } while (passes < 3 || now_s() - t_start < seconds);
    return best_sec;
}

static const char *level_name(int level)
{
    return level == QF_SIMD_AVX512 ? "avx512" : level == QF_SIMD_AVX2 ? "avx2" : "scalar";
}

int main(int argc, char **argv)
{
    static const int all_types[] = {
        QF_GGML_Q4_0, QF_GGML_Q4_1, QF_GGML_Q5_0, QF_GGML_Q5_1, QF_GGML_Q8_0,
        QF_GGML_Q2_K, QF_GGML_Q3_K, QF_GGML_Q4_K, QF_GGML_Q5_K, QF_GGML_Q6_K,
        QF_GGML_IQ4_NL, QF_GGML_IQ4_XS,
    };
    int types[64], ntypes = 0, threads = 1, only_weighted = 0, only_level = -1;
    double seconds = 0.5;
    int64_t rows = 512;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-s") && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (!strcmp(argv[i], "-r") && i + 1 < argc) {
            rows = atoll(argv[++i]);
        } else if (!strcmp(argv[i], "-j") && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "-l") && i + 1 < argc) {
            only_level = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "-w")) {
            only_weighted = 1;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: util_quantbench [-s SECONDS] [-r ROWS] [-j THREADS] [-l LEVEL] [-w] "
                   "[TYPE...]\n");
            return 0;
        } else {
            int t = qf_ggml_type_from_name(argv[i]);
            if (t < 0 || !qf_quant_can_quantize(t) || ntypes == 64) {
                fprintf(stderr, "util_quantbench: unknown type %s\ntry --help\n", argv[i]);
                return 2;
            }
            types[ntypes++] = t;
        }
    }
    if (rows < 1 || threads < 1 || threads > 64 || !(seconds > 0)) {
        fprintf(stderr, "util_quantbench: bad option value\ntry --help\n");
        return 2;
    }
    if (ntypes == 0)
        for (size_t i = 0; i < sizeof all_types / sizeof all_types[0]; i++)
            types[ntypes++] = all_types[i];

    float *x = malloc((size_t)rows * COLS * sizeof *x);
    float *w = malloc(COLS * sizeof *w);
    uint8_t *ref = malloc((size_t)rows * COLS * 2), *out = malloc((size_t)rows * COLS * 2);
    if (!x || !w || !ref || !out) {
        fprintf(stderr, "util_quantbench: out of memory\n");
        return 1;
    }
    for (int64_t r = 0; r < rows; r++) {
        const double row_scale = 0.5 + 1.5 * uniform01();
        for (int c = 0; c < COLS; c++) {
            double v = 0.02 * row_scale * gauss();
            if (uniform01() < 0.001)
                v = (v < 0 ? -8.0 : 8.0) * 0.02 * row_scale;
            x[r * COLS + c] = (float)v;
        }
    }
    for (int c = 0; c < COLS; c++)
        w[c] = (float)exp(gauss());

    /* TSC rate against the monotonic clock */
    const double t0 = now_s();
    const uint64_t c0 = ticks();
    while (now_s() - t0 < 0.1) {
    }
    const double tsc_hz = (double)(ticks() - c0) / (now_s() - t0);

    const int maxl = qf_quant_simd_max();
    if (only_level > maxl) {
        fprintf(stderr, "util_quantbench: level %d not available (max %d)\n", only_level, maxl);
        return 2;
    }
    printf("util_quantbench: %" PRId64 " rows x %d, %.2f s per measurement, %d thread%s\n", rows,
           COLS, seconds, threads, threads > 1 ? "s" : "");
#ifdef HAVE_RDTSC
    printf("cycles: thread CPU time x TSC rate (%.3f GHz, __rdtsc against CLOCK_MONOTONIC)\n",
           tsc_hz * 1e-9);
#else
    printf("cycles: nanoseconds (no TSC on this machine)\n");
#endif
    printf("SIMD levels: scalar%s%s (QF_NO_SIMD and the automatic choice are bypassed)\n\n",
           maxl >= QF_SIMD_AVX2 ? ", avx2" : "", maxl >= QF_SIMD_AVX512 ? ", avx512" : "");
    printf("%-7s %-8s %-7s %10s %9s %8s  %s\n", "type", "imatrix", "level", "cyc/32", "MB/s",
           "x", "bytes");

    const double weights_per_pass = (double)rows * COLS;
    int rc = 0;
    for (int k = 0; k < ntypes; k++) {
        const int type = types[k];
        uint64_t rs64;
        if (qf_ggml_row_size(type, COLS, &rs64) != 0)
            return 1;
        const size_t rs = (size_t)rs64;
        for (int weighted = only_weighted; weighted < 2; weighted++) {
            const float *qw = weighted ? w : NULL;
            double scalar_sec = 0;
            for (int level = 0; level <= maxl; level++) {
                if (only_level >= 0 && level != only_level)
                    continue;
                qf_quant_simd_set_level(level);
                const double spp = measure(type, x, level ? out : ref, rows, rs, qw, 1, seconds);
                const double tk = spp * tsc_hz;
                if (level == 0)
                    scalar_sec = spp;
                const int same = level == 0 || only_level >= 0 ||
                                 memcmp(ref, out, (size_t)rows * rs) == 0;
                if (!same)
                    rc = 1;
                printf("%-7s %-8s %-7s %10.1f %9.1f %8.2f  %s\n", qf_ggml_type_name(type),
                       weighted ? "yes" : "no", level_name(level),
                       tk / weights_per_pass * 32.0, weights_per_pass * 4.0 / spp * 1e-6,
                       scalar_sec > 0 ? scalar_sec / spp : 1.0,
                       level == 0 ? "reference" : only_level >= 0 ? "-" : same ? "equal" : "DIFFER");
                if (threads > 1) {
                    const double wj = measure(type, x, out, rows, rs, qw, threads, seconds);
                    printf("%-7s %-8s %-7s %10.1f %9.1f %8.2f  %d threads: wall ticks, x = over "
                           "1 thread\n",
                           "", "", "", wj * tsc_hz / weights_per_pass * 32.0,
                           weights_per_pass * 4.0 / wj * 1e-6, spp / wj, threads);
                }
                fflush(stdout);
            }
        }
    }
    qf_quant_simd_set_level(-1);
    free(x);
    free(w);
    free(ref);
    free(out);
    return rc;
}
