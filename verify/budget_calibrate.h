/*
 * verify/budget_calibrate.h - measure, for one model, how strongly each
 * kind of tensor's quantization noise reaches its logits, and keep the
 * figures in a budget plan (convert/quantize_budget.h) in place of the
 * built-in table.
 *
 * For each kind of tensor the model has (qf_budget_kind_of), every tensor
 * of that kind is quantized to one type (Q3_K where its rows take K blocks,
 * else Q4_0 where they take 32-blocks, else its smallest measured
 * candidate) and every other tensor is kept in F32; the model is written to
 * a temporary GGUF, loaded, and run over chunks of a text (n_ctx tokens from
 * an empty cache, BOS first, the second half of each chunk scored, all in
 * F32 numerics). The mean KL divergence of those positions against the F32
 * model, divided by the summed err/signal the plan measured for the same
 * tensors in the same types, is the kind's sensitivity.
 *
 * The F32 model and one variant are in memory at a time (as F32), so this is
 * for models that fit: a 1B model needs about 8 GB. Calibrate on other text
 * than the text the result is judged on.
 */
#ifndef QF_BUDGET_CALIBRATE_H
#define QF_BUDGET_CALIBRATE_H

#include <stdint.h>

#include "convert/quantize_budget.h"
#include "convert/source.h"
#include "formats/error.h"

typedef struct qf_calibrate_opts {
    const char *text;      /* UTF-8 text file to run */
    int64_t n_ctx;         /* tokens per chunk (>= 4) */
    int64_t max_chunks;    /* at most this many chunks (>= 1) */
    int threads;           /* >= 1 */
    const char *imatrix;   /* the plan's importance matrix, or NULL */
    const char *tmp_dir;   /* folder for the temporary GGUF files */
} qf_calibrate_opts;

/* One line of the result (plain value struct), per kind the model has. */
typedef struct qf_calibrate_kind {
    int kind;              /* qf_budget_kind_of */
    int n_tensors;
    double rel_err;        /* summed err/signal of the quantized tensors */
    double kld;            /* mean KL divergence */
    double sensitivity;    /* kld / rel_err, set in the plan */
} qf_calibrate_kind;

/* Called after each kind (may be NULL). */
typedef void (*qf_calibrate_fn)(void *ctx, const qf_calibrate_kind *k);

/*
 * Calibrate `plan` (measured on `src`) as described at the top and set its
 * sensitivities. Returns 0, or a negative code with a message naming the
 * file: QF_EINVAL (text shorter than one chunk), QF_EUNSUPPORTED (an
 * architecture the forward pass does not run), tokenizer, read and write
 * errors, QF_ENOMEM. Temporary files are removed in every case.
 */
int qf_budget_calibrate(const qf_source *src, qf_budget_plan *plan, const qf_calibrate_opts *o,
                        qf_calibrate_fn fn, void *ctx, qf_err *err);

#endif /* QF_BUDGET_CALIBRATE_H */
