/*
 * tools/report.c - the HTML page of qforge-verify --report (see report.h).
 *
 * Polyglot XHTML: every element closed, every attribute quoted, text
 * escaped, no named entities but XML's own, UTF-8. Charts are SVG drawn
 * here in a fixed coordinate system; the page fetches nothing.
 */
#include "tools/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "formats/file.h"
#include "formats/types.h"

#ifndef QF_VERSION
#define QF_VERSION "unknown"
#endif

/* =====================================================================
 * Text
 * ===================================================================== */

const char *qf_report_num(double v, char *buf, size_t cap)
{
    int prec;
    if (isnan(v)) {
        snprintf(buf, cap, "nan");
        return buf;
    }
    if (isinf(v)) {
        snprintf(buf, cap, v > 0 ? "inf" : "-inf");
        return buf;
    }
    for (prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

/* s escaped for XML text and attribute values; control bytes and, in a
 * string that is not valid UTF-8, bytes >= 0x80 become '?'. */
static void esc(FILE *f, const char *s)
{
    int utf8 = qf_utf8_valid(s, strlen(s));
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default:
            if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f || (c >= 0x80 && !utf8))
                fputc('?', f);
            else
                fputc(c, f);
        }
    }
}

/* A value cell: data-key, data-value and the text shown. */
static void cell(FILE *f, const char *key, double v, const char *shown)
{
    char b[40];
    fputs("<td class=\"num\" data-key=\"", f);
    esc(f, key);
    fprintf(f, "\" data-value=\"%s\">", qf_report_num(v, b, sizeof b));
    esc(f, shown);
    fputs("</td>", f);
}

/* fmt: "%.<digits>f" or "%.<digits>e" (parsed here: -Wformat-nonliteral) */
static void cellf(FILE *f, const char *key, double v, const char *fmt, double shown_v)
{
    char b[64];
    int prec = atoi(fmt + 2);
    if (isinf(shown_v) || isnan(shown_v))
        snprintf(b, sizeof b, "%s", isnan(shown_v) ? "nan" : shown_v > 0 ? "inf" : "-inf");
    else if (fmt[strlen(fmt) - 1] == 'e')
        snprintf(b, sizeof b, "%.*e", prec, shown_v);
    else
        snprintf(b, sizeof b, "%.*f", prec, shown_v);
    cell(f, key, v, b);
}

/* =====================================================================
 * Summary of the KL-divergence mode
 * ===================================================================== */

/* label, value (and its +/-) as the tool prints them */
static void row_pair(FILE *f, const char *label, const char *key, double v, double unc,
                     const char *fmt, double scale, const char *unit)
{
    char k[64];
    fputs("<tr><th>", f);
    esc(f, label);
    fputs("</th>", f);
    snprintf(k, sizeof k, "%s.value", key);
    cellf(f, k, v, fmt, v * scale);
    snprintf(k, sizeof k, "%s.uncertainty", key);
    fputs("<td class=\"pm\">\xc2\xb1</td>", f);
    cellf(f, k, unc, fmt, unc * scale);
    fprintf(f, "<td>%s</td></tr>\n", unit);
}

static void row_one(FILE *f, const char *label, const char *key, double v, const char *fmt,
                    double scale, const char *unit)
{
    fputs("<tr><th>", f);
    esc(f, label);
    fputs("</th>", f);
    cellf(f, key, v, fmt, v * scale);
    fprintf(f, "<td></td><td></td><td>%s</td></tr>\n", unit);
}

static void summary(FILE *f, const qf_kld_stats *s)
{
#define DP "\xce\x94p"
    fputs("<h2>Summary</h2>\n<table id=\"summary\">\n", f);
    fprintf(f, "<tr><th>positions scored</th><td class=\"num\" data-key=\"scored\" "
               "data-value=\"%lld\">%lld</td><td></td><td></td><td></td></tr>\n",
            (long long)s->count, (long long)s->count);
    row_pair(f, "Mean PPL(Q)", "ppl_q", s->ppl_q, s->ppl_q_unc, "%.6f", 1, "");
    row_pair(f, "Mean PPL(base)", "ppl_base", s->ppl_base, s->ppl_base_unc, "%.6f", 1, "");
    row_one(f, "Cor(ln(PPL(Q)), ln(PPL(base)))", "cor_ln_ppl", s->cor_ln_ppl, "%.2f", 100, "%");
    row_pair(f, "Mean ln(PPL(Q)/PPL(base))", "ln_ppl_ratio", s->ln_ratio, s->ln_ratio_unc, "%.6f",
             1, "");
    row_pair(f, "Mean PPL(Q)/PPL(base)", "ppl_ratio", s->ratio, s->ratio_unc, "%.6f", 1, "");
    row_pair(f, "Mean PPL(Q)-PPL(base)", "ppl_diff", s->diff, s->diff_unc, "%.6f", 1, "");
    fputs("<tr class=\"sep\"><th>Mean KLD</th>", f);
    cellf(f, "kld.mean", s->kld_mean, "%.6f", s->kld_mean);
    fputs("<td class=\"pm\">\xc2\xb1</td>", f);
    cellf(f, "kld.uncertainty", s->kld_unc, "%.6f", s->kld_unc);
    fputs("<td></td></tr>\n", f);
    row_one(f, "Maximum KLD", "kld.max", s->kld_max, "%.6f", 1, "");
    row_one(f, "99.9% KLD", "kld.p99_9", s->kld_p999, "%.6f", 1, "");
    row_one(f, "99.0% KLD", "kld.p99", s->kld_p99, "%.6f", 1, "");
    row_one(f, "Median KLD", "kld.median", s->kld_median, "%.6f", 1, "");
    row_one(f, "10.0% KLD", "kld.p10", s->kld_p10, "%.6f", 1, "");
    row_one(f, "5.0% KLD", "kld.p5", s->kld_p5, "%.6f", 1, "");
    row_one(f, "1.0% KLD", "kld.p1", s->kld_p1, "%.6f", 1, "");
    row_one(f, "Minimum KLD", "kld.min", s->kld_min, "%.6f", 1, "");
    fputs("<tr class=\"sep\"><th>Mean " DP "</th>", f);
    cellf(f, "delta_p.mean", s->dp_mean, "%.3f", 100 * s->dp_mean);
    fputs("<td class=\"pm\">\xc2\xb1</td>", f);
    cellf(f, "delta_p.uncertainty", s->dp_unc, "%.3f", 100 * s->dp_unc);
    fputs("<td>%</td></tr>\n", f);
    row_one(f, "Maximum " DP, "delta_p.max", s->dp_max, "%.3f", 100, "%");
    row_one(f, "99.9% " DP, "delta_p.p99_9", s->dp_p999, "%.3f", 100, "%");
    row_one(f, "99.0% " DP, "delta_p.p99", s->dp_p99, "%.3f", 100, "%");
    row_one(f, "95.0% " DP, "delta_p.p95", s->dp_p95, "%.3f", 100, "%");
    row_one(f, "90.0% " DP, "delta_p.p90", s->dp_p90, "%.3f", 100, "%");
    row_one(f, "75.0% " DP, "delta_p.p75", s->dp_p75, "%.3f", 100, "%");
    row_one(f, "Median " DP, "delta_p.median", s->dp_median, "%.3f", 100, "%");
    row_one(f, "25.0% " DP, "delta_p.p25", s->dp_p25, "%.3f", 100, "%");
    row_one(f, "10.0% " DP, "delta_p.p10", s->dp_p10, "%.3f", 100, "%");
    row_one(f, "5.0% " DP, "delta_p.p5", s->dp_p5, "%.3f", 100, "%");
    row_one(f, "1.0% " DP, "delta_p.p1", s->dp_p1, "%.3f", 100, "%");
    row_one(f, "0.1% " DP, "delta_p.p0_1", s->dp_p01, "%.3f", 100, "%");
    row_one(f, "Minimum " DP, "delta_p.min", s->dp_min, "%.3f", 100, "%");
    fputs("<tr class=\"sep\"><th>RMS " DP "</th>", f);
    cellf(f, "rms_dp.value", s->rms_dp, "%.3f", 100 * s->rms_dp);
    fputs("<td class=\"pm\">\xc2\xb1</td>", f);
    cellf(f, "rms_dp.uncertainty", s->rms_dp_unc, "%.3f", 100 * s->rms_dp_unc);
    fputs("<td>%</td></tr>\n", f);
    row_pair(f, "Same top p", "same_top", s->same_top, s->same_top_unc, "%.3f", 100, "%");
    fputs("</table>\n", f);
#undef DP
}

/* =====================================================================
 * Charts
 * ===================================================================== */

static const char *const palette[] = {
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939",
};
enum { N_PALETTE = sizeof palette / sizeof palette[0] };

static void svg_begin(FILE *f, int w, int h, const char *label)
{
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"", w, h, w, h);
    esc(f, label);
    fputs("\">\n", f);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", w, h);
}

/* A "nice" step (1, 2 or 5 times a power of ten) giving at most ~max_ticks. */
static double nice_step(double range, int max_ticks)
{
    double raw = range / max_ticks, p = pow(10.0, floor(log10(raw))), m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

enum { HW = 760, HH = 320, HML = 64, HMR = 20, HMT = 24, HMB = 52, N_BINS = 50 };

static void kld_histogram(FILE *f, const float *v, int64_t n, const qf_kld_stats *s)
{
    double vmin = (double)INFINITY, vmax = 0, lo, hi, pw = HW - HML - HMR, ph = HH - HMT - HMB, step;
    double ymax;
    int64_t bins[N_BINS], cmax = 0, i, below = 0;
    int b, d;

    memset(bins, 0, sizeof bins);
    for (i = 0; i < n; i++)
        if (v[i] > 0) {
            if ((double)v[i] < vmin)
                vmin = (double)v[i];
            if ((double)v[i] > vmax)
                vmax = (double)v[i];
        }
    fputs("<h2>Per-token KL divergence</h2>\n", f);
    svg_begin(f, HW, HH, "histogram of the per-token KL divergence, log-scale x axis");
    if (vmax <= 0) {
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">no position with a KLD above "
                   "0 (%lld positions)</text>\n</svg>\n", HW / 2, HH / 2, (long long)n);
        return;
    }
    hi = ceil(log10(vmax));
    lo = floor(log10(vmin));
    if (hi - lo > 10)
        lo = hi - 10;
    if (hi <= lo)
        hi = lo + 1;
    for (i = 0; i < n; i++) {
        double x = (double)v[i];
        if (!(x > pow(10.0, lo))) {
            b = 0;
            below++;
        } else {
            b = (int)floor((log10(x) - lo) / (hi - lo) * N_BINS);
            b = b < 0 ? 0 : b >= N_BINS ? N_BINS - 1 : b;
        }
        bins[b]++;
    }
    for (b = 0; b < N_BINS; b++)
        if (bins[b] > cmax)
            cmax = bins[b];
    step = nice_step((double)cmax, 5);
    if (step < 1)
        step = 1;
    ymax = ceil((double)cmax / step) * step;
    /* grid and y axis */
    for (d = 0; d * step <= ymax + 1e-9; d++) {
        double y = HMT + ph - (d * step) / ymax * ph;
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                   "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" class=\"tick\">%.0f</text>\n",
                HML, y, HML + pw, y, HML - 6, y + 4, d * step);
    }
    /* bars */
    for (b = 0; b < N_BINS; b++) {
        double x0 = HML + pw * b / N_BINS, h = (double)bins[b] / ymax * ph;
        if (!bins[b])
            continue;
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#4878a8\">"
                   "<title>%lld positions, KLD 1e%.2f .. 1e%.2f</title></rect>\n",
                x0 + 0.5, HMT + ph - h, pw / N_BINS - 1.0, h, (long long)bins[b],
                lo + (hi - lo) * b / N_BINS, lo + (hi - lo) * (b + 1) / N_BINS);
    }
    /* x axis: a tick per decade */
    fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axis\"/>\n", HML,
            HMT + ph, HML + pw, HMT + ph);
    for (d = (int)lo; d <= (int)hi; d++) {
        double x = HML + (d - lo) / (hi - lo) * pw;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axis\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"tick\">1e%d</text>\n",
                x, HMT + ph, x, HMT + ph + 5, x, HMT + ph + 18, d);
    }
    /* the mean and the median */
    if (s) {
        const double mark[2] = { s->kld_median, s->kld_mean };
        const char *name[2] = { "median", "mean" };
        for (d = 0; d < 2; d++) {
            double x;
            if (!(mark[d] > pow(10.0, lo)))
                continue;
            x = HML + (log10(mark[d]) - lo) / (hi - lo) * pw;
            if (x > HML + pw)
                x = HML + pw;
            fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                       "stroke-dasharray=\"4 3\"/><text x=\"%.1f\" y=\"%d\" class=\"tick\" "
                       "fill=\"%s\">%s</text>\n",
                    x, HMT, x, HMT + ph, d ? "#d62728" : "#2ca02c", x + 3, HMT + 10 + 12 * d,
                    d ? "#d62728" : "#2ca02c", name[d]);
        }
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" class=\"label\">KL divergence "
               "(log scale)</text>\n", HML + pw / 2, HH - 8);
    fprintf(f, "<text x=\"14\" y=\"%.1f\" text-anchor=\"middle\" class=\"label\" "
               "transform=\"rotate(-90 14 %.1f)\">positions</text>\n", HMT + ph / 2, HMT + ph / 2);
    fputs("</svg>\n", f);
    fprintf(f, "<p class=\"note\">%lld positions in %d bins from 1e%d to 1e%d", (long long)n,
            N_BINS, (int)lo, (int)hi);
    if (below)
        fprintf(f, "; %lld at or below 1e%d (zero or negative from rounding included) are in the "
                   "first bin", (long long)below, (int)lo);
    fputs(".</p>\n", f);
}

enum { LW = 920, LH = 380, LML = 64, LMR = 190, LMT = 24, LMB = 52, MAX_KINDS = 64 };

static const char *const canon[] = {
    "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up",
    "ffn_down",
};

static int cmp_index_a(const void *x, const void *y)
{
    const qf_tensor_diff *a = *(const qf_tensor_diff *const *)x, *b = *(const qf_tensor_diff *const *)y;
    return (a->index_a > b->index_a) - (a->index_a < b->index_a);
}

static void layer_chart(FILE *f, const qf_tensor_diffs *d)
{
    const qf_tensor_diff **byfile = malloc((size_t)(d->n ? d->n : 1) * sizeof *byfile);
    const char *kinds[MAX_KINDS];
    int n_kinds = 0, n_layer = 0, k, more = 0;
    double ymin = (double)INFINITY, ymax = -(double)INFINITY, pw = LW - LML - LMR, ph = LH - LMT - LMB, step, y0,
           y1;
    int64_t i;
    int l, lstep;

    fputs("<h2>Per-layer error of each tensor kind</h2>\n", f);
    svg_begin(f, LW, LH, "signal-to-noise ratio in dB of each tensor kind, by layer");
    if (!byfile) {
        fputs("</svg>\n", f);
        return;
    }
    for (i = 0; i < d->n; i++)
        byfile[i] = &d->items[i];
    qsort(byfile, (size_t)d->n, sizeof *byfile, cmp_index_a);
    for (i = 0; i < d->n; i++) {
        const qf_tensor_diff *t = byfile[i];
        if (t->layer < 0)
            continue;
        if (t->layer + 1 > n_layer)
            n_layer = t->layer + 1;
        for (k = 0; k < n_kinds && strcmp(kinds[k], t->kind); k++)
            ;
        if (k == n_kinds) {
            if (n_kinds == MAX_KINDS) {
                more = 1;
                continue;
            }
            kinds[n_kinds++] = t->kind;
        }
        if (isfinite(t->st.snr_db)) {
            if (t->st.snr_db < ymin)
                ymin = t->st.snr_db;
            if (t->st.snr_db > ymax)
                ymax = t->st.snr_db;
        }
    }
    /* the usual kinds in the order of a block, then the others as met */
    for (k = 0, l = 0; k < (int)(sizeof canon / sizeof canon[0]); k++) {
        int m;
        for (m = l; m < n_kinds && strcmp(kinds[m], canon[k]); m++)
            ;
        if (m < n_kinds) {
            const char *x = kinds[m];
            memmove(&kinds[l + 1], &kinds[l], (size_t)(m - l) * sizeof kinds[0]);
            kinds[l++] = x;
        }
    }
    if (n_kinds == 0 || !(ymax >= ymin)) {
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n</svg>\n", LW / 2,
                LH / 2, n_kinds ? "every layer tensor is identical (SNR infinite)"
                                : "no layer tensor (blk.N.*) in both models");
        free(byfile);
        return;
    }
    step = nice_step(ymax - ymin > 1 ? ymax - ymin : 1, 6);
    y0 = floor(ymin / step) * step;
    y1 = ceil(ymax / step) * step;
    if (y1 <= y0)
        y1 = y0 + step;
#define YPOS(v) (LMT + ph - ((v) - y0) / (y1 - y0) * ph)
#define XPOS(l) (n_layer > 1 ? LML + 10 + (pw - 20) * (l) / (n_layer - 1) : LML + pw / 2)
    for (k = 0; y0 + k * step <= y1 + step * 1e-9; k++) {
        double v = y0 + k * step, y = YPOS(v);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                   "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" class=\"tick\">%g</text>\n",
                LML, y, LML + pw, y, LML - 6, y + 4, v);
    }
    fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axis\"/>\n", LML,
            LMT + ph, LML + pw, LMT + ph);
    lstep = n_layer <= 32 ? 1 : (n_layer + 15) / 16;
    for (l = 0; l < n_layer; l += lstep)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"tick\">%d</text>\n",
                XPOS(l), LMT + ph + 16, l);
    for (k = 0; k < n_kinds; k++) {
        const char *color = palette[k % N_PALETTE];
        int pen = 0, finite = 0;
        fprintf(f, "<g class=\"series\" data-kind=\"");
        esc(f, kinds[k]);
        fprintf(f, "\"><path fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\"%s d=\"", color,
                k >= N_PALETTE ? " stroke-dasharray=\"5 3\"" : "");
        for (i = 0; i < d->n; i++) {
            const qf_tensor_diff *t = byfile[i];
            if (t->layer < 0 || strcmp(t->kind, kinds[k]))
                continue;
            if (!isfinite(t->st.snr_db)) {
                pen = 0;
                continue;
            }
            fprintf(f, "%s%.1f %.1f ", pen ? "L" : "M", XPOS(t->layer), YPOS(t->st.snr_db));
            pen = finite = 1;
        }
        fputs("\"/>\n", f);
        for (i = 0; i < d->n; i++) {
            const qf_tensor_diff *t = byfile[i];
            if (t->layer < 0 || strcmp(t->kind, kinds[k]) || !isfinite(t->st.snr_db))
                continue;
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"><title>", XPOS(t->layer),
                    YPOS(t->st.snr_db), color);
            esc(f, t->name);
            fprintf(f, ": %.2f dB</title></circle>\n", t->st.snr_db);
        }
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\" "
                   "stroke-width=\"2\"/><text x=\"%.1f\" y=\"%d\" class=\"tick\">",
                LML + pw + 14, LMT + 8 + 15 * k, LML + pw + 34, LMT + 8 + 15 * k, color,
                LML + pw + 40, LMT + 12 + 15 * k);
        esc(f, kinds[k]);
        fputs(finite ? "</text></g>\n" : " (identical)</text></g>\n", f);
    }
#undef YPOS
#undef XPOS
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" class=\"label\">layer</text>\n",
            LML + pw / 2, LH - 8);
    fprintf(f, "<text x=\"14\" y=\"%.1f\" text-anchor=\"middle\" class=\"label\" "
               "transform=\"rotate(-90 14 %.1f)\">SNR (dB), higher is closer</text>\n",
            LMT + ph / 2, LMT + ph / 2);
    fputs("</svg>\n", f);
    fputs("<p class=\"note\">SNR = 10 log10(sum ref\xc2\xb2 / sum (ref - model)\xc2\xb2) of each "
          "tensor; identical tensors (infinite SNR) are left out of the lines.", f);
    if (more)
        fprintf(f, " Only the first %d kinds are drawn.", MAX_KINDS);
    fputs("</p>\n", f);
    free(byfile);
}

/* =====================================================================
 * Per-tensor table
 * ===================================================================== */

static void shape_text(const qf_tensor_diff *t, char *buf, size_t cap)
{
    size_t o = 0;
    uint32_t k;
    buf[0] = '\0';
    for (k = 0; k < t->n_dims && k < 4 && o < cap; k++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%llu", k ? " \xc3\x97 " : "",
                              (unsigned long long)t->ne[k]);
}

static void stat_cells(FILE *f, const char *prefix, const qf_diff_stats *st)
{
    char k[64];
    snprintf(k, sizeof k, "%s.rmse", prefix);
    cellf(f, k, st->rmse, "%.4e", st->rmse);
    snprintf(k, sizeof k, "%s.max_abs", prefix);
    cellf(f, k, st->max_abs, "%.4e", st->max_abs);
    snprintf(k, sizeof k, "%s.rel_err", prefix);
    cellf(f, k, st->rel_err, "%.4e", st->rel_err);
    snprintf(k, sizeof k, "%s.snr_db", prefix);
    cellf(f, k, st->snr_db, "%.2f", st->snr_db);
    snprintf(k, sizeof k, "%s.cosine", prefix);
    cellf(f, k, st->cosine, "%.8f", st->cosine);
}

static void name_list(FILE *f, const char *what, const char *const *names, int64_t n)
{
    int64_t i;
    if (!n)
        return;
    fputs("<p class=\"note\">Only in ", f);
    esc(f, what);
    fputs(": ", f);
    for (i = 0; i < n; i++) {
        fputs(i ? ", <code>" : "<code>", f);
        esc(f, names[i]);
        fputs("</code>", f);
    }
    fputs("</p>\n", f);
}

static void tensor_table(FILE *f, const qf_report *r)
{
    const qf_tensor_diffs *d = r->diffs;
    char shape[128], k[64];
    int64_t i;

    fputs("<h2>Per-tensor error, worst first</h2>\n<p class=\"note\">Reference: ", f);
    esc(f, r->ref_label ? r->ref_label : "A");
    fputs("; compared: ", f);
    esc(f, r->model_label ? r->model_label : "B");
    fputs(".</p>\n<table id=\"tensors\">\n<tr><th>tensor</th><th>shape</th><th>type ref</th>"
          "<th>type model</th><th>RMSE</th><th>max |err|</th><th>rel err</th><th>SNR dB</th>"
          "<th>cosine</th></tr>\n", f);
    for (i = 0; i < d->n; i++) {
        const qf_tensor_diff *t = &d->items[i];
        fprintf(f, "<tr><td data-key=\"tensors.%lld.name\"><code>", (long long)i);
        esc(f, t->name);
        shape_text(t, shape, sizeof shape);
        fputs("</code></td><td>", f);
        esc(f, shape);
        fprintf(f, "</td><td>%s</td><td>%s</td>", qf_ggml_type_name(t->type_a),
                qf_ggml_type_name(t->type_b));
        snprintf(k, sizeof k, "tensors.%lld", (long long)i);
        stat_cells(f, k, &t->st);
        fputs("</tr>\n", f);
    }
    fputs("<tr class=\"sep\"><th>all tensors pooled</th><td></td><td></td><td></td>", f);
    stat_cells(f, "total", &d->total);
    fputs("</tr>\n</table>\n", f);
    name_list(f, r->ref_label ? r->ref_label : "A", d->only_a, d->n_only_a);
    name_list(f, r->model_label ? r->model_label : "B", d->only_b, d->n_only_b);
}

/* =====================================================================
 * The page
 * ===================================================================== */

static const char css[] =
    "body{font-family:sans-serif;margin:24px;color:#222;background:#fff;max-width:1100px}\n"
    "h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ccc}\n"
    "table{border-collapse:collapse;font-size:13px}\n"
    "th,td{padding:2px 8px;text-align:left;border-bottom:1px solid #eee}\n"
    "td.num{text-align:right;font-family:monospace}td.pm{padding:2px}\n"
    "tr.sep th,tr.sep td{border-top:2px solid #bbb}\n"
    "p.note{font-size:12px;color:#555}code{font-size:12px}\n"
    "svg{display:block;margin:8px 0}svg text{font-family:sans-serif}\n"
    "svg .tick{font-size:11px;fill:#333}svg .label{font-size:12px;fill:#222}\n"
    "svg .grid{stroke:#e4e4e4;stroke-width:1}svg .axis{stroke:#333;stroke-width:1}\n";

int qf_report_svg_count(const qf_report *r)
{
    return (r->kld != NULL) + (r->diffs != NULL);
}

int qf_report_write(FILE *f, const qf_report *r)
{
    int i;

    fputs("<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n"
          "<meta charset=\"utf-8\"/>\n<title>", f);
    esc(f, r->title);
    fprintf(f, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>", css);
    esc(f, r->title);
    fputs("</h1>\n<table id=\"settings\">\n", f);
    for (i = 0; i < r->n_settings; i++) {
        fputs("<tr><th>", f);
        esc(f, r->settings[i].label);
        fputs("</th><td>", f);
        esc(f, r->settings[i].value);
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
    if (r->kld) {
        summary(f, r->kld);
        kld_histogram(f, r->kld_values, r->n_kld, r->kld);
    }
    if (r->diffs) {
        layer_chart(f, r->diffs);
        tensor_table(f, r);
    }
    fputs("<p class=\"note\">qforge " QF_VERSION "</p>\n</body>\n</html>\n", f);
    return ferror(f) ? -1 : 0;
}
