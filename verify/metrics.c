/*
 * verify/metrics.c - perplexity and KL-divergence statistics (see metrics.h).
 * The float/double mix of each formula follows llama-perplexity's, so that
 * equal logits give equal printed figures.
 */
#include "verify/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* =====================================================================
 * Perplexity
 * ===================================================================== */

/* max, its first index, and log(sum exp(z - max)) of a row. */
static void row_lse(const float *z, int64_t n, float *max, int64_t *imax, float *lse)
{
    float m = z[0];
    int64_t i, im = 0;
    double s = 0.0;

    for (i = 1; i < n; i++)
        if (z[i] > m) {
            m = z[i];
            im = i;
        }
    for (i = 0; i < n; i++)
        s += (double)expf(z[i] - m);
    *max = m;
    *imax = im;
    *lse = (float)log(s);
}

double qf_ppl_nll(const float *logits, int64_t n_vocab, int32_t target)
{
    float m = logits[0];
    double s = 0.0;
    int64_t i;

    for (i = 1; i < n_vocab; i++)
        if (logits[i] > m)
            m = logits[i];
    for (i = 0; i < n_vocab; i++)
        s += (double)expf(logits[i] - m);
    return -((double)(logits[target] - m) - log(s));
}

void qf_ppl_add_nll(qf_ppl *p, double v)
{
    p->sum_nll += v;
    p->sum_nll2 += v * v;
    p->count++;
}

double qf_ppl_add(qf_ppl *p, const float *logits, int64_t n_vocab, int32_t target)
{
    double v = qf_ppl_nll(logits, n_vocab, target);
    qf_ppl_add_nll(p, v);
    return v;
}

double qf_ppl_value(const qf_ppl *p)
{
    return p->count ? exp(p->sum_nll / (double)p->count) : 0.0;
}

double qf_ppl_uncertainty(const qf_ppl *p)
{
    double mean, var;
    if (p->count < 2)
        return 0.0;
    mean = p->sum_nll / (double)p->count;
    var = p->sum_nll2 / (double)p->count - mean * mean;
    return var > 0 ? sqrt(var / (double)(p->count - 1)) * exp(mean) : 0.0;
}

/* =====================================================================
 * KL divergence
 * ===================================================================== */

struct qf_kld {
    double sum_nll, sum_nll2, sum_nll_base, sum_nll_base2, sum_nll_nll_base;
    double sum_kld, sum_kld2, sum_p_diff, sum_p_diff2, sum_p_diff4;
    int64_t n_same_top, count, capacity;
    float *kld_values;    /* (capacity) per-position KLD */
    float *p_diff_values; /* (capacity) per-position delta-p */
};

int qf_kld_new(int64_t capacity, qf_kld **out, qf_err *err)
{
    qf_kld *k;

    *out = NULL;
    if (capacity < 1 || (uint64_t)capacity > SIZE_MAX / sizeof(float))
        return qf_err_set(err, QF_EINVAL, "KLD accumulator for %lld positions",
                          (long long)capacity);
    k = calloc(1, sizeof *k);
    if (!k || !(k->kld_values = malloc((size_t)capacity * sizeof(float))) ||
        !(k->p_diff_values = malloc((size_t)capacity * sizeof(float)))) {
        qf_kld_free(k);
        return qf_err_set(err, QF_ENOMEM, "out of memory (KLD of %lld positions)",
                          (long long)capacity);
    }
    k->capacity = capacity;
    *out = k;
    return 0;
}

void qf_kld_free(qf_kld *k)
{
    if (!k)
        return;
    free(k->kld_values);
    free(k->p_diff_values);
    free(k);
}

int qf_kld_row_compute(const float *q, const float *base, int64_t n_vocab, int32_t target,
                       qf_kld_row *row, qf_err *err)
{
    float max_q, lse_q, max_b, lse_b;
    int64_t imax_q, imax_b, i;
    double sum = 0.0;

    if (target < 0 || target >= n_vocab)
        return qf_err_set(err, QF_EINVAL, "target token %ld outside the vocabulary",
                          (long)target);
    row_lse(q, n_vocab, &max_q, &imax_q, &lse_q);
    row_lse(base, n_vocab, &max_b, &imax_b, &lse_b);
    row->nll = max_q + lse_q - q[target];
    row->nll_base = -(base[target] - max_b - lse_b);
    max_q = max_q + lse_q;
    for (i = 0; i < n_vocab; i++) {
        float lp_base = base[i] - max_b - lse_b;
        if (lp_base > -16.0f) {
            float p_base = expf(lp_base);
            sum += (double)(p_base * (lp_base - q[i] + max_q));
        }
    }
    row->kld = sum;
    row->same_top = imax_q == imax_b;
    row->p_diff = expf(-row->nll) - expf(-row->nll_base);
    return 0;
}

int qf_kld_add_row(qf_kld *k, const qf_kld_row *r, qf_err *err)
{
    double p_diff2;

    if (k->count >= k->capacity)
        return qf_err_set(err, QF_ELIMIT, "KLD accumulator full (%lld positions)",
                          (long long)k->capacity);
    k->sum_nll += (double)r->nll;
    k->sum_nll2 += (double)(r->nll * r->nll);
    k->sum_nll_base += (double)r->nll_base;
    k->sum_nll_base2 += (double)(r->nll_base * r->nll_base);
    k->sum_nll_nll_base += (double)(r->nll * r->nll_base);
    k->sum_kld += r->kld;
    k->sum_kld2 += r->kld * r->kld;
    if (r->same_top)
        k->n_same_top++;
    p_diff2 = (double)(r->p_diff * r->p_diff);
    k->sum_p_diff += (double)r->p_diff;
    k->sum_p_diff2 += p_diff2;
    k->sum_p_diff4 += p_diff2 * p_diff2;
    k->kld_values[k->count] = (float)r->kld;
    k->p_diff_values[k->count] = r->p_diff;
    k->count++;
    return 0;
}

int qf_kld_add(qf_kld *k, const float *q, const float *base, int64_t n_vocab, int32_t target,
               qf_err *err)
{
    qf_kld_row r;
    int rc = qf_kld_row_compute(q, base, n_vocab, target, &r, err);
    return rc ? rc : qf_kld_add_row(k, &r, err);
}

const float *qf_kld_values(const qf_kld *k, int64_t *n)
{
    *n = k->count;
    return k->kld_values;
}

/* Mean and its standard error, as llama.cpp: 0 below 11 values. */
static void mean_unc(double sum, double sum2, int64_t n, double *mean, double *unc)
{
    double f, df;
    if (n < 1) {
        *mean = *unc = 0.0;
        return;
    }
    f = sum / (double)n;
    df = sum2 / (double)n - f * f;
    *mean = f;
    *unc = df > 0 && n > 10 ? sqrt(df / (double)(n - 1)) : 0.0;
}

static double covariance(double sa, double sb, double sab, int64_t n)
{
    double var;
    if (n < 10)
        return 0.0;
    var = sab / (double)n - (sa / (double)n) * (sb / (double)n);
    return var / (double)(n - 1);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* llama.cpp's percentile: linear interpolation at fraction * (n - 1),
 * computed in float. */
static double percentile(const float *v, int64_t n, float fraction)
{
    float p;
    int64_t ip;
    if (fraction <= 0)
        return (double)v[0];
    if (fraction >= 1)
        return (double)v[n - 1];
    p = fraction * (float)(n - 1);
    ip = (int64_t)p;
    p -= (float)ip;
    return (double)((1 - p) * v[ip] + p * v[ip + 1 < n ? ip + 1 : n - 1]);
}

static double median(const float *v, int64_t n)
{
    return n % 2 == 0 ? (double)(0.5f * (v[n / 2] + v[n / 2 - 1])) : (double)v[n / 2];
}

int qf_kld_get_stats(const qf_kld *k, int order_stats, qf_kld_stats *st, qf_err *err)
{
    double lp, lp_unc, lb, lb_unc, cov, mse, mse_unc, ppl_cov, t;
    int64_t n = k->count;

    memset(st, 0, sizeof *st);
    st->count = n;
    if (n < 1)
        return 0;
    mean_unc(k->sum_nll, k->sum_nll2, n, &lp, &lp_unc);
    mean_unc(k->sum_nll_base, k->sum_nll_base2, n, &lb, &lb_unc);
    st->ppl_q = exp(lp);
    st->ppl_q_unc = st->ppl_q * lp_unc;
    st->ppl_base = exp(lb);
    st->ppl_base_unc = st->ppl_base * lb_unc;
    cov = covariance(k->sum_nll, k->sum_nll_base, k->sum_nll_nll_base, n);
    st->cor_ln_ppl = lp_unc > 0 && lb_unc > 0 ? cov / (lp_unc * lb_unc) : 0.0;
    st->ln_ratio = lp - lb;
    t = lp_unc * lp_unc + lb_unc * lb_unc - 2.0 * cov;
    st->ln_ratio_unc = t > 0 ? sqrt(t) : 0.0;
    st->ratio = exp(st->ln_ratio);
    st->ratio_unc = st->ratio * st->ln_ratio_unc;
    ppl_cov = st->ppl_q * st->ppl_base * cov;
    st->diff = st->ppl_q - st->ppl_base;
    t = st->ppl_q_unc * st->ppl_q_unc + st->ppl_base_unc * st->ppl_base_unc - 2.0 * ppl_cov;
    st->diff_unc = t > 0 ? sqrt(t) : 0.0;

    mean_unc(k->sum_kld, k->sum_kld2, n, &st->kld_mean, &st->kld_unc);
    mean_unc(k->sum_p_diff, k->sum_p_diff2, n, &st->dp_mean, &st->dp_unc);
    mean_unc(k->sum_p_diff2, k->sum_p_diff4, n, &mse, &mse_unc);
    st->rms_dp = sqrt(mse);
    st->rms_dp_unc = st->rms_dp > 0 ? 0.5 / st->rms_dp * mse_unc : 0.0;
    st->same_top = (double)k->n_same_top / (double)n;
    st->same_top_unc =
        n > 1 ? sqrt(st->same_top * (1.0 - st->same_top) / (double)(n - 1)) : 0.0;

    if (order_stats) {
        float *kv = malloc((size_t)n * sizeof(float)), *dv = malloc((size_t)n * sizeof(float));
        if (!kv || !dv) {
            free(kv);
            free(dv);
            return qf_err_set(err, QF_ENOMEM, "out of memory");
        }
        memcpy(kv, k->kld_values, (size_t)n * sizeof(float));
        memcpy(dv, k->p_diff_values, (size_t)n * sizeof(float));
        qsort(kv, (size_t)n, sizeof(float), cmp_float);
        qsort(dv, (size_t)n, sizeof(float), cmp_float);
        st->kld_max = (double)kv[n - 1];
        st->kld_p999 = percentile(kv, n, 0.999f);
        st->kld_p99 = percentile(kv, n, 0.990f);
        st->kld_median = median(kv, n);
        st->kld_p10 = percentile(kv, n, 0.100f);
        st->kld_p5 = percentile(kv, n, 0.050f);
        st->kld_p1 = percentile(kv, n, 0.010f);
        st->kld_min = (double)kv[0];
        st->dp_max = (double)dv[n - 1];
        st->dp_p999 = percentile(dv, n, 0.999f);
        st->dp_p99 = percentile(dv, n, 0.990f);
        st->dp_p95 = percentile(dv, n, 0.950f);
        st->dp_p90 = percentile(dv, n, 0.900f);
        st->dp_p75 = percentile(dv, n, 0.750f);
        st->dp_median = median(dv, n);
        st->dp_p25 = percentile(dv, n, 0.250f);
        st->dp_p10 = percentile(dv, n, 0.100f);
        st->dp_p5 = percentile(dv, n, 0.050f);
        st->dp_p1 = percentile(dv, n, 0.010f);
        st->dp_p01 = percentile(dv, n, 0.001f);
        st->dp_min = (double)dv[0];
        free(kv);
        free(dv);
    }
    return 0;
}
