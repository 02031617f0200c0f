/*
 * convert/quantize_budget.h - measure what each ggml type costs each tensor
 * of a model, in bytes and in error, so that quantize/budget.h can pick the
 * types that fit a size budget best; keep the measurements as a JSON plan.
 *
 * Candidates. A tensor the mixes never quantize (quantize/mix.h: norms, 1-D
 * tensors, ...) has one candidate, its stored type. Every other tensor gets
 * the types of the candidate list (qf_budget_default_types: Q2_K, Q3_K, Q4_K,
 * Q5_K, Q6_K, Q8_0, IQ4_XS, Q4_0, Q4_1, Q5_0, Q5_1, F16) that suit its row
 * length: when the row is a multiple of 256, the K types, IQ4_XS and Q8_0;
 * otherwise the legacy 32-blocks, Q8_0 and F16 where they divide the row.
 * A tensor none of the allowed types fits gets F16.
 *
 * Measurement. Rows are read as F32, quantized as qforge-quantize writes
 * them (with the importance weights qf_quantize_plan would use: the imatrix
 * entry of the tensor when it has ne[0] x ne[2] values, else none) and
 * dequantized. For each candidate, with w_j the importance of column j (the
 * imatrix value, 1 without one):
 *
 *     err    = sum over rows r, columns j of w_j (x_rj - q(x)_rj)^2
 *     signal = sum over rows r, columns j of w_j x_rj^2
 *
 * Tensors with more than `sample_rows` rows are measured on that many rows,
 * evenly spaced (row floor(k * rows / sample_rows)), and both sums are scaled
 * by rows / sample_rows. Work is split across threads by rows; the sums are
 * made row by row in order, so the figures do not depend on the thread count.
 *
 * Score. The allocator minimizes the sum over tensors of
 *
 *     score = sensitivity(kind) * err / signal
 *
 * err/signal is the relative energy of the noise the type adds to the
 * tensor's output y = W x (E|dW x|^2 / E|W x|^2 when x has independent
 * columns with second moments w_j); sensitivity(kind) is how strongly that
 * relative noise reaches the logits, a table per tensor kind
 * (qf_budget_default_sensitivity, or a calibration kept in the plan;
 * docs/budget.md says where they come from).
 *
 * The plan file (JSON):
 *
 *   { "format": "qforge-budget-plan", "version": 1,
 *     "source": "<sha256 of every tensor's name, stored type and shape>",
 *     "imatrix": "<sha256 of the imatrix file>" | null,
 *     "sample_rows": N,
 *     "sensitivity": { "<kind>": s, ... }          (optional: calibrated values)
 *     "tensors": [ { "name", "shape": [ne0, ...], "in_type", "fixed": bool,
 *                    "rows", "sampled", "signal",
 *                    "candidates": [ { "type", "bytes", "err" }, ... ] }, ... ] }
 *
 * Numbers round-trip exactly (17 significant digits), so a plan read back
 * solves to the same types as the measurement it came from.
 */
#ifndef QF_QUANTIZE_BUDGET_H
#define QF_QUANTIZE_BUDGET_H

#include <stdint.h>

#include "convert/convert.h" /* qf_progress_fn */
#include "convert/source.h"
#include "formats/error.h"

/* Candidate types per tensor at most. */
#define QF_BUDGET_MAX_TYPES 16

/* Default row cap per tensor for the measurement. */
#define QF_BUDGET_SAMPLE_ROWS 1024

typedef struct qf_budget_cand {
    int type;        /* ggml type */
    uint64_t bytes;  /* the tensor's bytes in that type (no padding) */
    double err;      /* importance-weighted squared error, scaled to all rows */
} qf_budget_cand;

/* One tensor of the source (plain value struct, borrowed from its plan). */
typedef struct qf_budget_tensor {
    const char *name;
    int in_type;        /* stored ggml type */
    uint32_t n_dims;
    uint64_t ne[4];
    uint64_t rows;      /* ne[1] * ne[2] * ne[3] */
    uint64_t sampled;   /* rows measured (0 for a fixed tensor) */
    int fixed;          /* 1: never quantized: the one candidate is the stored type */
    double signal;      /* importance-weighted sum of squares, scaled to all rows */
    int n_cand;
    qf_budget_cand cand[QF_BUDGET_MAX_TYPES];
} qf_budget_tensor;

typedef struct qf_budget_plan qf_budget_plan;

typedef struct qf_budget_opts {
    const int *types;      /* candidate ggml types, or NULL for the defaults */
    int n_types;
    const char *imatrix;   /* importance matrix file, or NULL */
    int threads;           /* >= 1 */
    uint64_t sample_rows;  /* >= 1 */
} qf_budget_opts;

/* Defaults: the default types, no imatrix, 1 thread, QF_BUDGET_SAMPLE_ROWS. */
void qf_budget_opts_init(qf_budget_opts *o);

/* The default candidate list (static): *n set to its length. */
const int *qf_budget_default_types(int *n);

/*
 * Measure every tensor of `src` (see the top). `progress` (may be NULL) gets
 * tensors done and the total. Returns 0 and sets *out (owned by the caller:
 * qf_budget_plan_free), or QF_EINVAL (an already quantized input tensor, a
 * NaN/Inf in a row, a bad imatrix entry size, an empty type list), read
 * errors, QF_ENOMEM.
 */
int qf_budget_measure(const qf_source *src, const qf_budget_opts *opts, qf_budget_plan **out,
                      qf_progress_fn progress, void *progress_ctx, qf_err *err);

void qf_budget_plan_free(qf_budget_plan *p); /* accepts NULL */

/* Write the plan as JSON to `path` (atomic; flags as qf_out_open). */
int qf_budget_plan_save(const qf_budget_plan *p, const char *path, int flags, qf_err *err);

/*
 * Read a plan written by qf_budget_plan_save and check that it belongs to
 * `src` and `imatrix` (a path or NULL): QF_EMISMATCH "PLAN: measured on
 * another model (...)" or "PLAN: measured with(out) an importance matrix /
 * with another one" when it does not; QF_EFORMAT for a malformed file.
 */
int qf_budget_plan_load(const char *path, const qf_source *src, const char *imatrix,
                        qf_budget_plan **out, qf_err *err);

int64_t qf_budget_plan_count(const qf_budget_plan *p);
const qf_budget_tensor *qf_budget_plan_at(const qf_budget_plan *p, int64_t i); /* in source order */
uint64_t qf_budget_plan_sample_rows(const qf_budget_plan *p);

/* Kinds of tensor for the sensitivities: 0..qf_budget_kind_count()-1,
 * named by the pattern that finds them ("output.weight", "ffn_down", ...;
 * output.weight and token_embd.weight whole names, the others found in the
 * name). The last kind, "other", takes every other tensor. */
int qf_budget_kind_count(void);
const char *qf_budget_kind_name(int kind);
int qf_budget_kind_of(const char *name);

/* The built-in sensitivity of a kind (docs/budget.md), and the plan's: the
 * built-in one unless qf_budget_plan_set_sensitivity (a calibration, see
 * verify/budget_calibrate.h) or the plan file set another. */
double qf_budget_default_sensitivity(int kind);
double qf_budget_plan_sensitivity(const qf_budget_plan *p, int kind);
void qf_budget_plan_set_sensitivity(qf_budget_plan *p, int kind, double s); /* s > 0, finite */
int qf_budget_plan_calibrated(const qf_budget_plan *p); /* 1 if any sensitivity was set */

/* The score of candidate c of tensor i (see the top); 0 for a fixed tensor. */
double qf_budget_plan_score(const qf_budget_plan *p, int64_t i, int c);

/* A solved plan (plain value struct). */
typedef struct qf_budget_solution {
    uint64_t data_bytes;  /* tensor data, each tensor padded to the alignment */
    uint64_t min_bytes;   /* the smallest reachable tensor data */
    uint64_t max_bytes;   /* tensor data when each tensor takes its least-error type */
    double score;         /* summed score */
    int exact;            /* the allocator proved the optimum */
} qf_budget_solution;

/*
 * Choose a type per tensor: types[i] for tensor i (source order; caller's
 * buffer of qf_budget_plan_count ints) so that the tensor data, each tensor
 * padded to `align` bytes, is at most `data_budget`, with the least summed
 * score. `allowed` (may be NULL: all) restricts the candidates of quantized
 * tensors to those types (bit t for ggml type t); a tensor left with none
 * keeps its cheapest measured candidate. Returns 0, QF_ELIMIT when the
 * budget is below the smallest reachable size (sol->min_bytes set), QF_ENOMEM.
 */
int qf_budget_plan_solve(const qf_budget_plan *p, uint64_t data_budget, uint32_t align,
                         uint64_t allowed, int *types, qf_budget_solution *sol, qf_err *err);

#endif /* QF_QUANTIZE_BUDGET_H */
