/*
 * verify/metrics.h - perplexity and KL-divergence statistics, computed the
 * way llama-perplexity computes them (llama.cpp b4747,
 * examples/perplexity/perplexity.cpp), so the figures can be compared.
 *
 * Perplexity protocol (the caller runs the model; see tools/qforge-verify.c):
 * the token list (BOS first, as the tokenizer adds it) is cut into
 * n_chunk = n_tokens / n_ctx chunks; each chunk is evaluated from an empty
 * KV cache with its first token replaced by BOS (when the vocabulary adds
 * one); positions first = n_ctx/2 .. n_ctx-2 are scored, each predicting the
 * next token of the chunk.
 *
 * Scoring one position (logits z of n_vocab floats, target token y):
 *     m = max z,  S = sum_i expf(z_i - m)  (double),  lse = log S
 *     nll = m + lse - z_y
 * PPL = exp(mean nll), with uncertainty PPL * sqrt(var(nll) / (count - 1)).
 *
 * KL divergence of a model Q from a base model P at one position:
 *     KLD = sum over i with log p_i > -16 of p_i * (log p_i - log q_i)
 * (the -16 cut is llama.cpp's: its base file cannot represent smaller
 * log-probabilities). llama.cpp reads P from 16-bit quantized log-probs; here
 * P comes exactly from the base model's float logits, which moves the
 * statistics by far less than their printed precision (see the report).
 * Also: delta-p = q_y - p_y for the target token, and whether both models
 * rank the same token first.
 */
#ifndef QF_METRICS_H
#define QF_METRICS_H

#include <stdint.h>

#include "formats/error.h"

/* ---------------------------------------------------------------------
 * Perplexity
 * ------------------------------------------------------------------- */

/* Running sums (plain value struct; zero it to start). */
typedef struct qf_ppl {
    double sum_nll;   /* sum of nll */
    double sum_nll2;  /* sum of nll^2 */
    int64_t count;    /* positions scored */
} qf_ppl;

/* Score one position: logits (n_vocab floats), target id in [0, n_vocab).
 * Returns the position's nll. */
double qf_ppl_add(qf_ppl *p, const float *logits, int64_t n_vocab, int32_t target);

/* The same in two steps, so that rows can be scored on several threads and
 * added in order: qf_ppl_nll only reads; qf_ppl_add_nll adds one result. */
double qf_ppl_nll(const float *logits, int64_t n_vocab, int32_t target);
void qf_ppl_add_nll(qf_ppl *p, double nll);

/* exp(mean nll), or 0 with nothing scored. */
double qf_ppl_value(const qf_ppl *p);
/* The printed "+/-": PPL * sqrt((mean nll^2 - mean nll^2) / (count - 1)), or 0. */
double qf_ppl_uncertainty(const qf_ppl *p);

/* ---------------------------------------------------------------------
 * KL divergence
 * ------------------------------------------------------------------- */

typedef struct qf_kld qf_kld;

/* Accumulator for up to `capacity` positions (per-position KLD and delta-p
 * are kept for the percentiles). Returns 0 and sets *out (owned by the
 * caller: qf_kld_free), QF_EINVAL or QF_ENOMEM. */
int qf_kld_new(int64_t capacity, qf_kld **out, qf_err *err);
void qf_kld_free(qf_kld *k); /* accepts NULL */

/* Score one position: logits of the model under test (q) and of the base
 * model (base), n_vocab floats each. Returns 0 or QF_ELIMIT (capacity
 * reached) / QF_EINVAL (target out of range). */
int qf_kld_add(qf_kld *k, const float *q, const float *base, int64_t n_vocab, int32_t target,
               qf_err *err);

/* One position's figures (plain value struct), for scoring rows on several
 * threads (qf_kld_row only reads) and adding them in order. */
typedef struct qf_kld_row {
    float nll, nll_base; /* -log q[target], -log p[target] */
    double kld;          /* KL(p || q) over tokens with log p > -16 */
    float p_diff;        /* q[target] - p[target] */
    int same_top;        /* both rank the same token first */
} qf_kld_row;

int qf_kld_row_compute(const float *q, const float *base, int64_t n_vocab, int32_t target,
                       qf_kld_row *row, qf_err *err);
int qf_kld_add_row(qf_kld *k, const qf_kld_row *row, qf_err *err);

/* The per-position KLD values so far, in the order they were added (the
 * histogram of a report); *n is set to their count. Borrowed: valid until
 * the next qf_kld_add / qf_kld_add_row or qf_kld_free. */
const float *qf_kld_values(const qf_kld *k, int64_t *n);

/* Everything llama-perplexity --kl-divergence prints. Ratios are fractions
 * (same_top 0.94 prints as "94.1 %"); "_unc" fields are the printed +/-. */
typedef struct qf_kld_stats {
    int64_t count;                 /* positions */
    double ppl_q, ppl_q_unc;       /* Mean PPL(Q) */
    double ppl_base, ppl_base_unc; /* Mean PPL(base) */
    double cor_ln_ppl;             /* Cor(ln(PPL(Q)), ln(PPL(base))) */
    double ln_ratio, ln_ratio_unc; /* Mean ln(PPL(Q)/PPL(base)) */
    double ratio, ratio_unc;       /* Mean PPL(Q)/PPL(base) */
    double diff, diff_unc;         /* Mean PPL(Q)-PPL(base) */
    double kld_mean, kld_unc;      /* Mean KLD */
    /* KLD order statistics: max, 99.9%, 99%, median, 10%, 5%, 1%, min */
    double kld_max, kld_p999, kld_p99, kld_median, kld_p10, kld_p5, kld_p1, kld_min;
    double dp_mean, dp_unc;        /* Mean delta-p */
    /* delta-p order statistics: max, 99.9, 99, 95, 90, 75, median, 25, 10, 5, 1, 0.1, min */
    double dp_max, dp_p999, dp_p99, dp_p95, dp_p90, dp_p75, dp_median, dp_p25, dp_p10, dp_p5,
        dp_p1, dp_p01, dp_min;
    double rms_dp, rms_dp_unc;     /* RMS delta-p */
    double same_top, same_top_unc; /* Same top p */
} qf_kld_stats;

/* Fill *st from the positions so far; with order_stats = 0 the percentile
 * fields are left 0 (cheap: for per-chunk lines). Returns 0 or QF_ENOMEM. */
int qf_kld_get_stats(const qf_kld *k, int order_stats, qf_kld_stats *st, qf_err *err);

#endif /* QF_METRICS_H */
