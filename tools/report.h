/*
 * tools/report.h - the HTML page of qforge-verify --report: one
 * self-contained file (inline CSS and SVG, nothing fetched), written as
 * polyglot XHTML so that an XML parser reads it as well as a browser.
 *
 * The page holds, as far as the run has them:
 *   - the settings of the run (models, text, context, numerics);
 *   - the summary table of the KL-divergence mode (id "summary"): each value
 *     cell carries data-key (its path in the --json output, as
 *     "kld.median" or "ppl_q.value") and data-value (the number, written
 *     so that it reads back to the same double);
 *   - a histogram of the per-token KLD (log-scale x axis), as inline SVG;
 *   - the per-layer SNR of each tensor kind (one series per kind), as inline
 *     SVG, and the per-tensor table (id "tensors", cells keyed
 *     "tensors.<i>.<field>" as in --tensors --json).
 *
 * It lives in tools/ rather than verify/: it is presentation, like the
 * printed tables, while the library computes the figures and never formats
 * them for people. It writes to a FILE * so that the tool can send the
 * bytes through the atomic writer (formats/file.h).
 */
#ifndef QF_TOOLS_REPORT_H
#define QF_TOOLS_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "verify/metrics.h"
#include "verify/tensor_diff.h"

/* A line of the settings table (borrowed strings). */
typedef struct qf_report_setting {
    const char *label;
    const char *value;
} qf_report_setting;

typedef struct qf_report {
    const char *title;                  /* page heading */
    const qf_report_setting *settings;  /* (n_settings) */
    int n_settings;
    const qf_kld_stats *kld;            /* summary (KL-divergence mode), or NULL */
    const float *kld_values;            /* (n_kld) per-token KLD, or NULL */
    int64_t n_kld;
    const qf_tensor_diffs *diffs;       /* per-tensor comparison, or NULL */
    const char *ref_label, *model_label; /* what diffs compared: the reference (a), the other (b) */
} qf_report;

/* The number of <svg> elements qf_report_write draws for r (one per chart:
 * the KLD histogram when kld is set, the per-layer chart when diffs is). */
int qf_report_svg_count(const qf_report *r);

/* Write the page to f. Returns 0, or -1 if a write to f failed. */
int qf_report_write(FILE *f, const qf_report *r);

/* Shortest decimal that reads back to the same double ("inf", "-inf" and
 * "nan" for those), into buf (at least 32 bytes); returns buf. */
const char *qf_report_num(double v, char *buf, size_t cap);

#endif /* QF_TOOLS_REPORT_H */
