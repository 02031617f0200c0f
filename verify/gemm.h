/*
 * verify/gemm.h - the F32 matrix products of the reference forward pass.
 *
 * Every product here is Y = X * W^T for a weight matrix W of n_out rows of
 * n_in floats (the GGUF layout: ne[0] = n_in is the row length) and a batch
 * X of n_tok rows of n_in floats:
 *
 *     Y[t][o] = sum over k = 0, 1, ..., n_in-1 of X[t][k] * W[o][k]
 *
 * Reproducibility is the contract: each Y element starts from 0 and adds
 * the products (each rounded to float) one at a time in increasing k, with a
 * separate multiply and add (no fused multiply-add). The vector code spreads
 * the work over *different outputs*, never over k, so the plain C path and
 * the AVX2 and AVX-512 paths give the same bits, for any thread count and
 * any batch size: a token's logits do not depend on which other tokens share
 * its batch.
 *
 * Weights are packed once (at model load) into panels of QF_GEMM_NR rows,
 * k-major, so the inner loop reads both operands contiguously:
 *
 *     panel p = rows [p*NR, p*NR + NR):
 *         data[(p * n_in + k) * NR + r] = W[p*NR + r][k]
 *
 *     +-- panel 0 ---------------+-- panel 1 ---------------+
 *     | k=0: W[0][0] .. W[31][0] | k=0: W[32][0] .. W[63][0]|
 *     | k=1: W[0][1] .. W[31][1] | ...                      |
 *     | ...                      |                          |
 *
 * Rows past n_out in the last panel are zero.
 */
#ifndef QF_GEMM_H
#define QF_GEMM_H

#include <stdint.h>

#include "formats/error.h"

#define QF_GEMM_NR 32 /* weight rows per panel (two AVX-512 vectors) */
#define QF_GEMM_MR 8  /* batch rows per micro-tile */

/* A packed weight matrix (plain value struct; data owned by whoever called
 * qf_gemm_mat_alloc and freed with qf_gemm_mat_free). */
typedef struct qf_gemm_mat {
    int64_t n_out;  /* rows of W (outputs) */
    int64_t n_in;   /* row length (inputs) */
    float *data;    /* ceil(n_out / NR) panels of n_in * NR floats, 64-byte aligned */
} qf_gemm_mat;

/* Allocate a matrix: every row must then be stored with qf_gemm_mat_set_rows
 * (the padding rows are zero). Returns 0, QF_EINVAL (a size <= 0) or
 * QF_ENOMEM. */
int qf_gemm_mat_alloc(qf_gemm_mat *m, int64_t n_out, int64_t n_in, qf_err *err);
void qf_gemm_mat_free(qf_gemm_mat *m); /* accepts NULL and a zeroed struct */

/* Store rows [row0, row0 + n) from src (n rows of n_in floats, row-major). */
void qf_gemm_mat_set_rows(qf_gemm_mat *m, int64_t row0, int64_t n, const float *src);
/* Copy row `row` out (n_in floats into dst). */
void qf_gemm_mat_get_row(const qf_gemm_mat *m, int64_t row, float *dst);

/*
 * Y = X * W^T: x is n_tok rows with stride ldx (>= n_in), y is n_tok rows
 * of w->n_out with stride ldy (>= n_out); x and y must not overlap. Runs on
 * up to n_threads threads (results do not depend on it). Returns 0 or
 * QF_ENOMEM (the packed copy of X could not be allocated).
 */
int qf_gemm(const qf_gemm_mat *w, const float *x, int64_t ldx, int64_t n_tok, float *y,
            int64_t ldy, int n_threads, qf_err *err);

/*
 * A small product on the calling thread (attention uses it): for r < mr
 * (<= QF_GEMM_MR) and c < n,
 *     y[r * ldy + c] = sum over k = 0 .. K-1 of xp[k * QF_GEMM_MR + r] * w[k * ldw + c]
 * each sum from 0 in increasing k, as qf_gemm. xp holds the rows packed
 * k-major, QF_GEMM_MR values per k (rows past mr are computed and dropped);
 * w is any row-major matrix. The vector paths read w in whole groups of
 * QF_GEMM_NR columns: w[k * ldw + c] must be readable for c up to n rounded
 * up to QF_GEMM_NR (the values past n are not used).
 */
void qf_gemm_block(const float *xp, int mr, const float *w, int64_t ldw, int64_t K, int64_t n,
                   float *y, int64_t ldy);

/* Instruction sets for the kernels. AUTO picks the widest the CPU and OS
 * support; the others force a path (tests use this to check that every path
 * gives the same bits). */
enum { QF_GEMM_ISA_AUTO = 0, QF_GEMM_ISA_GENERIC = 1, QF_GEMM_ISA_AVX2 = 2, QF_GEMM_ISA_AVX512 = 3 };

/* Choose the path (not thread-safe: call before any product runs). Returns
 * the path now in use; asking for one the CPU lacks falls back to AUTO's. */
int qf_gemm_set_isa(int isa);
/* The path in use, and its name ("generic", "avx2", "avx512"). */
int qf_gemm_isa(void);
const char *qf_gemm_isa_name(int isa);

#endif /* QF_GEMM_H */
