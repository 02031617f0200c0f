/*
 * quantize/budget.c - the multiple-choice knapsack of quantize/budget.h:
 * Lagrangian sweep over convex hulls, a byte-unit dynamic programme, greedy
 * fills.
 */
#include "quantize/budget.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The dynamic programme's table: one byte per item and cell. */
#define DP_TABLE_MAX ((uint64_t)64 << 20)

/* An item's Pareto frontier: candidate indices, sizes ascending, errors
 * strictly descending. */
typedef struct frontier {
    int m;
    int idx[QF_BUDGET_MAX_CAND];
} frontier;

typedef struct segment {
    double price;  /* error saved per byte */
    int64_t item;
    int k;         /* from hull point k to k + 1 */
} segment;

typedef struct sort_cand {
    uint64_t bytes;
    double err;
    int idx;
} sort_cand;

static int by_size(const void *pa, const void *pb)
{
    const sort_cand *a = pa, *b = pb;
    if (a->bytes != b->bytes)
        return a->bytes < b->bytes ? -1 : 1;
    if (a->err != b->err)
        return a->err < b->err ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int by_price(const void *pa, const void *pb)
{
    const segment *a = pa, *b = pb;
    if (a->price != b->price)
        return a->price > b->price ? -1 : 1;
    if (a->item != b->item)
        return a->item < b->item ? -1 : 1;
    return a->k < b->k ? -1 : a->k > b->k;
}

static void make_frontier(const qf_budget_item *it, frontier *f)
{
    sort_cand c[QF_BUDGET_MAX_CAND];
    int j;
    for (j = 0; j < it->n; j++) {
        c[j].bytes = it->bytes[j];
        c[j].err = it->err[j];
        c[j].idx = j;
    }
    qsort(c, (size_t)it->n, sizeof c[0], by_size);
    f->m = 0;
    for (j = 0; j < it->n; j++)
        if (f->m == 0 || c[j].err < it->err[f->idx[f->m - 1]])
            f->idx[f->m++] = c[j].idx;
}

#define FB(items, fr, i, j) ((items)[i].bytes[(fr)[i].idx[j]])
#define FE(items, fr, i, j) ((items)[i].err[(fr)[i].idx[j]])

/* Move items to larger frontier points while the slack allows, best
 * error-per-byte first. pos[] are frontier positions; *total the bytes. */
static void greedy_fill(const qf_budget_item *items, const frontier *fr, int64_t n,
                        uint64_t budget, int *pos, uint64_t *total)
{
    for (;;) {
        int64_t bi = -1, i;
        int bj = -1, j;
        double best = 0.0;
        for (i = 0; i < n; i++) {
            uint64_t b0 = FB(items, fr, i, pos[i]);
            double e0 = FE(items, fr, i, pos[i]);
            for (j = pos[i] + 1; j < fr[i].m; j++) {
                uint64_t extra = FB(items, fr, i, j) - b0;
                double r;
                if (extra > budget - *total)
                    break; /* sizes ascend: the rest do not fit either */
                r = extra ? (e0 - FE(items, fr, i, j)) / (double)extra : (double)INFINITY;
                if (bi < 0 || r > best) {
                    best = r;
                    bi = i;
                    bj = j;
                }
            }
        }
        if (bi < 0)
            return;
        *total += FB(items, fr, bi, bj) - FB(items, fr, bi, pos[bi]);
        pos[bi] = bj;
    }
}

/* The Lagrangian sweep over convex hull segments (step 2). */
static int sweep(const qf_budget_item *items, const frontier *fr, int64_t n, uint64_t budget,
                 int *pos, uint64_t *total)
{
    int64_t i, ns = 0, s;
    int *hull = NULL, *hn = NULL, *stopped = NULL;
    segment *seg = NULL;
    int rc = 0;

    hull = malloc((size_t)n * QF_BUDGET_MAX_CAND * sizeof *hull);
    hn = calloc((size_t)n, sizeof *hn);
    stopped = calloc((size_t)n, sizeof *stopped);
    seg = malloc((size_t)n * QF_BUDGET_MAX_CAND * sizeof *seg);
    if (!hull || !hn || !stopped || !seg) {
        rc = QF_ENOMEM;
        goto done;
    }
    for (i = 0; i < n; i++) {
        int *h = hull + i * QF_BUDGET_MAX_CAND, m = 0, j;
        for (j = 0; j < fr[i].m; j++) {
            /* lower hull, sizes ascending: drop the last point while it is
             * not strictly below the line from the one before to point j */
            while (m >= 2) {
                double ax = (double)FB(items, fr, i, h[m - 2]), ay = FE(items, fr, i, h[m - 2]);
                double bx = (double)FB(items, fr, i, h[m - 1]), by = FE(items, fr, i, h[m - 1]);
                double cx = (double)FB(items, fr, i, j), cy = FE(items, fr, i, j);
                if ((bx - ax) * (cy - ay) - (by - ay) * (cx - ax) > 0.0)
                    break;
                m--;
            }
            h[m++] = j;
        }
        hn[i] = m;
        for (j = 0; j + 1 < m; j++) {
            double db = (double)(FB(items, fr, i, h[j + 1]) - FB(items, fr, i, h[j]));
            seg[ns].price = (FE(items, fr, i, h[j]) - FE(items, fr, i, h[j + 1])) / db;
            seg[ns].item = i;
            seg[ns].k = j;
            ns++;
        }
        pos[i] = 0;
        *total += FB(items, fr, i, 0);
    }
    qsort(seg, (size_t)ns, sizeof *seg, by_price);
    for (s = 0; s < ns; s++) {
        const int *h = hull + seg[s].item * QF_BUDGET_MAX_CAND;
        int64_t it = seg[s].item;
        uint64_t extra;
        if (stopped[it] || pos[it] != h[seg[s].k])
            continue;
        extra = FB(items, fr, it, h[seg[s].k + 1]) - FB(items, fr, it, h[seg[s].k]);
        if (extra > budget - *total) {
            stopped[it] = 1;
            continue;
        }
        *total += extra;
        pos[it] = h[seg[s].k + 1];
    }
done:
    free(hull);
    free(hn);
    free(stopped);
    free(seg);
    return rc;
}

static uint64_t gcd64(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* The dynamic programme (step 3). *exact tells whether the units were
 * exact. */
static int program(const qf_budget_item *items, const frontier *fr, int64_t n, uint64_t budget,
                   uint64_t min_total, int *pos, uint64_t *total, int *exact)
{
    uint64_t slack = budget - min_total, g = 0, unit, cells, ncell, b;
    double *prev = NULL, *cur = NULL;
    uint8_t *tab = NULL;
    int64_t i;
    int j, rc = 0;

    for (i = 0; i < n; i++)
        for (j = 1; j < fr[i].m; j++)
            g = gcd64(g, FB(items, fr, i, j) - FB(items, fr, i, 0));
    *total = min_total;
    for (i = 0; i < n; i++)
        pos[i] = 0;
    if (g == 0 || slack == 0) { /* nothing to choose */
        *exact = 1;
        return 0;
    }
    cells = QF_BUDGET_DP_CELLS;
    if (cells > DP_TABLE_MAX / (uint64_t)n)
        cells = DP_TABLE_MAX / (uint64_t)n;
    if (cells < 16)
        cells = 16;
    if (slack / g <= cells) {
        unit = g;
        *exact = 1;
    } else {
        unit = slack / cells + 1;
        *exact = 0;
    }
    ncell = slack / unit + 1;
    prev = calloc((size_t)ncell, sizeof *prev);
    cur = malloc((size_t)ncell * sizeof *cur);
    tab = malloc((size_t)ncell * (size_t)n);
    if (!prev || !cur || !tab) {
        rc = QF_ENOMEM;
        goto done;
    }
    for (i = 0; i < n; i++) {
        uint8_t *t = tab + (size_t)i * ncell;
        for (b = 0; b < ncell; b++) {
            cur[b] = prev[b] + FE(items, fr, i, 0);
            t[b] = 0;
        }
        for (j = 1; j < fr[i].m; j++) {
            uint64_t d = FB(items, fr, i, j) - FB(items, fr, i, 0);
            uint64_t u = (d + unit - 1) / unit;
            double e = FE(items, fr, i, j);
            if (u >= ncell)
                break;
            for (b = u; b < ncell; b++) {
                double v = prev[b - u] + e;
                if (v < cur[b]) {
                    cur[b] = v;
                    t[b] = (uint8_t)j;
                }
            }
        }
        {
            double *sw = prev;
            prev = cur;
            cur = sw;
        }
    }
    b = ncell - 1;
    for (i = n - 1; i >= 0; i--) {
        int k = tab[(size_t)i * ncell + b];
        uint64_t d = FB(items, fr, i, k) - FB(items, fr, i, 0);
        pos[i] = k;
        *total += d;
        b -= (d + unit - 1) / unit;
    }
done:
    free(prev);
    free(cur);
    free(tab);
    return rc;
}

static double sum_err(const qf_budget_item *items, const frontier *fr, int64_t n, const int *pos)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += FE(items, fr, i, pos[i]);
    return s;
}

int qf_budget_solve(const qf_budget_item *items, int64_t n, uint64_t budget, int *choice,
                    qf_budget_result *res, qf_err *err)
{
    frontier *fr = NULL;
    int *pa = NULL, *pb = NULL, *best, exact = 0, rc = 0, j;
    uint64_t min_total = 0, max_total = 0, ta = 0, tb = 0;
    double ea, eb;
    int64_t i;

    if (res)
        memset(res, 0, sizeof *res);
    if (n < 0 || (n > 0 && (!items || !choice)))
        return qf_err_set(err, QF_EINVAL, "qf_budget_solve: bad arguments");
    for (i = 0; i < n; i++) {
        if (items[i].n < 1 || items[i].n > QF_BUDGET_MAX_CAND || !items[i].bytes || !items[i].err)
            return qf_err_set(err, QF_EINVAL, "item %lld: %d candidates (1..%d allowed)",
                              (long long)i, items[i].n, QF_BUDGET_MAX_CAND);
        for (j = 0; j < items[i].n; j++)
            if (!isfinite(items[i].err[j]) || items[i].err[j] < 0.0)
                return qf_err_set(err, QF_EINVAL, "item %lld candidate %d: error %g is not a "
                                  "finite non-negative number", (long long)i, j, items[i].err[j]);
    }
    fr = malloc((size_t)(n ? n : 1) * sizeof *fr);
    pa = malloc((size_t)(n ? n : 1) * sizeof *pa);
    pb = malloc((size_t)(n ? n : 1) * sizeof *pb);
    if (!fr || !pa || !pb) {
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
        goto done;
    }
    for (i = 0; i < n; i++) {
        make_frontier(&items[i], &fr[i]);
        min_total += FB(items, fr, i, 0);
        max_total += FB(items, fr, i, fr[i].m - 1);
    }
    if (res) {
        res->min_bytes = min_total;
        res->max_bytes = max_total;
    }
    if (min_total > budget) {
        rc = qf_err_set(err, QF_ELIMIT,
                        "budget %llu bytes is below the smallest reachable size %llu bytes",
                        (unsigned long long)budget, (unsigned long long)min_total);
        goto done;
    }
    if (sweep(items, fr, n, budget, pa, &ta) != 0 ||
        program(items, fr, n, budget, min_total, pb, &tb, &exact) != 0) {
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
        goto done;
    }
    greedy_fill(items, fr, n, budget, pa, &ta);
    greedy_fill(items, fr, n, budget, pb, &tb);
    ea = sum_err(items, fr, n, pa);
    eb = sum_err(items, fr, n, pb);
    best = eb < ea ? pb : pa;
    for (i = 0; i < n; i++)
        choice[i] = fr[i].idx[best[i]];
    if (res) {
        res->bytes = best == pb ? tb : ta;
        res->err = best == pb ? eb : ea;
        res->exact = exact;
    }
done:
    free(fr);
    free(pa);
    free(pb);
    return rc;
}
