/*
 * verify/tensor_diff.h - tensor by tensor, how far one model's weights are
 * from another's: two files of the same model (typically the source and a
 * quantized file), each a GGUF of any block type or an HF folder, both read
 * as F32 rows (convert/source.h).
 *
 * For a tensor a (the reference) and b (the one measured), n elements:
 *
 *     d_i     = a_i - b_i                      (in double)
 *     RMSE    = sqrt(sum d^2 / n)
 *     max err = max |d_i|
 *     rel err = ||d|| / ||a||                  (0 if both are 0, inf if only a is)
 *     SNR dB  = 10 log10(sum a^2 / sum d^2)    (inf when d = 0)
 *     cosine  = sum a b / sqrt(sum a^2 sum b^2) (1 when d = 0 or both are 0,
 *                                               0 when only one is 0)
 *
 * Sums are taken in double, each block of rows in order and the blocks in
 * order, the blocks cut by the tensor's shape alone: the figures are the
 * same bits for any thread count.
 */
#ifndef QF_TENSOR_DIFF_H
#define QF_TENSOR_DIFF_H

#include <stdint.h>

#include "convert/source.h"
#include "formats/error.h"

/* ---------------------------------------------------------------------
 * Sums and statistics of one pair of vectors (plain value structs)
 * ------------------------------------------------------------------- */

typedef struct qf_diff_acc {
    uint64_t n;      /* elements added */
    double sum_a2;   /* sum a^2 */
    double sum_b2;   /* sum b^2 */
    double sum_ab;   /* sum a b */
    double sum_d2;   /* sum (a - b)^2 */
    double max_abs;  /* max |a - b| (NaN once a NaN was met) */
} qf_diff_acc;

/* Add n pairs (a[i], b[i]) in order; zero the struct to start. */
void qf_diff_acc_add(qf_diff_acc *acc, const float *a, const float *b, uint64_t n);

/* acc += part (sums added, maxima kept). */
void qf_diff_acc_merge(qf_diff_acc *acc, const qf_diff_acc *part);

typedef struct qf_diff_stats {
    uint64_t n;       /* elements */
    double rmse;      /* sqrt(mean (a - b)^2) */
    double max_abs;   /* max |a - b| */
    double rel_err;   /* ||a - b|| / ||a|| */
    double snr_db;    /* 10 log10(sum a^2 / sum (a - b)^2); +inf when identical */
    double cosine;    /* cosine similarity of a and b */
    int identical;    /* every a_i == b_i */
} qf_diff_stats;

/* The statistics of the sums (formulas above). */
void qf_diff_stats_of(const qf_diff_acc *acc, qf_diff_stats *st);

/* Ordering worst first: NaN SNR first, then lower SNR first; returns <0, 0,
 * >0 as strcmp. Ties are left to the caller. */
int qf_diff_stats_cmp(const qf_diff_stats *x, const qf_diff_stats *y);

/* ---------------------------------------------------------------------
 * Every tensor of two sources
 * ------------------------------------------------------------------- */

/* One tensor present in both sources (plain value struct). */
typedef struct qf_tensor_diff {
    const char *name;       /* GGUF name (borrowed from source a) */
    int64_t index_a;        /* its index in a and in b */
    int64_t index_b;
    int type_a, type_b;     /* ggml type ids as stored */
    uint32_t n_dims;
    uint64_t ne[4];         /* ggml order, the same in both */
    int layer;              /* N of "blk.N.<kind>", or -1 */
    char kind[64];          /* "attn_q", "ffn_down", "attn_q.bias", "token_embd": the name
                               without "blk.N." and without a final ".weight" */
    qf_diff_stats st;
} qf_tensor_diff;

typedef struct qf_tensor_diffs {
    int64_t n;              /* tensors in both */
    qf_tensor_diff *items;  /* (n) worst first: qf_diff_stats_cmp, then a's file order */
    int64_t n_only_a;       /* tensors only in a, in a's order */
    const char **only_a;    /* (n_only_a) names, borrowed from source a */
    int64_t n_only_b;
    const char **only_b;    /* (n_only_b) names, borrowed from source b */
    qf_diff_stats total;    /* every element of every tensor in both, pooled */
} qf_tensor_diffs;

/* Called on the caller's thread after each tensor. */
typedef void (*qf_diff_progress_fn)(void *ctx, int64_t done, int64_t total);

/*
 * Compare every tensor that a and b both hold (matched by name), a being the
 * reference, on up to n_threads threads, reading blocks of rows (about 1 MiB
 * of F32 each per source and thread) and giving their pages back as it goes.
 * progress may be NULL. The result borrows names from a and b: keep them
 * open while it is used.
 * Returns 0 and sets *out (owned by the caller: qf_tensor_diffs_free),
 * QF_EMISMATCH (a tensor of another shape, or no tensor in common: the
 * message names both files and the tensor), QF_EUNSUPPORTED (a block type
 * qforge cannot dequantize), QF_ENOMEM.
 */
int qf_tensor_diff_sources(const qf_source *a, const qf_source *b, int n_threads,
                           qf_diff_progress_fn progress, void *progress_ctx,
                           qf_tensor_diffs **out, qf_err *err);

void qf_tensor_diffs_free(qf_tensor_diffs *d); /* accepts NULL */

#endif /* QF_TENSOR_DIFF_H */
