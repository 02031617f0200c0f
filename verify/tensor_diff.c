/*
 * verify/tensor_diff.c - per-tensor error of one model's weights against
 * another's (see tensor_diff.h).
 */
#include "verify/tensor_diff.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/parallel.h"

/* F32 elements per block of rows (per source): the unit of work and of the
 * summation order. A row longer than this is a block of its own. */
enum { BLOCK_ELEMS = 1 << 18 };

/* =====================================================================
 * Sums and statistics
 * ===================================================================== */

void qf_diff_acc_add(qf_diff_acc *acc, const float *a, const float *b, uint64_t n)
{
    double s_a2 = 0.0, s_b2 = 0.0, s_ab = 0.0, s_d2 = 0.0, m = acc->max_abs;
    uint64_t i;

    for (i = 0; i < n; i++) {
        double x = (double)a[i], y = (double)b[i], d = x - y, ad = fabs(d);
        s_a2 += x * x;
        s_b2 += y * y;
        s_ab += x * y;
        s_d2 += d * d;
        if (!(ad <= m) && !isnan(m)) /* a NaN sticks */
            m = ad;
    }
    acc->sum_a2 += s_a2;
    acc->sum_b2 += s_b2;
    acc->sum_ab += s_ab;
    acc->sum_d2 += s_d2;
    acc->max_abs = m;
    acc->n += n;
}

void qf_diff_acc_merge(qf_diff_acc *acc, const qf_diff_acc *p)
{
    acc->n += p->n;
    acc->sum_a2 += p->sum_a2;
    acc->sum_b2 += p->sum_b2;
    acc->sum_ab += p->sum_ab;
    acc->sum_d2 += p->sum_d2;
    if (!(p->max_abs <= acc->max_abs) && !isnan(acc->max_abs))
        acc->max_abs = p->max_abs;
}

void qf_diff_stats_of(const qf_diff_acc *acc, qf_diff_stats *st)
{
    double na = sqrt(acc->sum_a2), nd = sqrt(acc->sum_d2), c;

    memset(st, 0, sizeof *st);
    st->n = acc->n;
    st->max_abs = acc->max_abs;
    st->identical = acc->sum_d2 == 0.0 && acc->max_abs == 0.0;
    st->rmse = acc->n ? sqrt(acc->sum_d2 / (double)acc->n) : 0.0;
    if (st->identical) {
        st->rel_err = 0.0;
        st->snr_db = (double)INFINITY;
        st->cosine = 1.0;
        return;
    }
    if (isnan(acc->sum_d2) || isnan(acc->sum_a2) || isnan(acc->sum_b2)) {
        st->rel_err = st->snr_db = st->cosine = (double)NAN;
        return;
    }
    st->rel_err = na > 0 ? nd / na : (double)INFINITY;
    /* sum_d2 > 0 here (it is 0 only when every d is 0, i.e. identical) */
    st->snr_db = acc->sum_a2 > 0 ? 10.0 * log10(acc->sum_a2 / acc->sum_d2) : -(double)INFINITY;
    if (acc->sum_a2 == 0.0 && acc->sum_b2 == 0.0)
        c = 1.0;
    else if (acc->sum_a2 == 0.0 || acc->sum_b2 == 0.0)
        c = 0.0;
    else
        c = acc->sum_ab / sqrt(acc->sum_a2 * acc->sum_b2);
    st->cosine = c > 1.0 ? 1.0 : c < -1.0 ? -1.0 : c;
}

int qf_diff_stats_cmp(const qf_diff_stats *x, const qf_diff_stats *y)
{
    int nx = isnan(x->snr_db), ny = isnan(y->snr_db);
    if (nx || ny)
        return ny - nx;
    return (x->snr_db > y->snr_db) - (x->snr_db < y->snr_db);
}

/* =====================================================================
 * Every tensor of two sources
 * ===================================================================== */

/* What the workers share for one tensor. */
typedef struct {
    const qf_source *a, *b;
    int64_t ia, ib;
    uint64_t ne0, n_rows, rows_per_block;
    qf_diff_acc *parts;   /* (blocks) */
    float **buf;          /* per worker: 2 * cap floats */
    qf_err *errs;         /* per worker */
} block_job;

static int diff_blocks(void *ctx, int64_t begin, int64_t end, int worker)
{
    block_job *j = ctx;
    float *ba = j->buf[worker], *bb;
    int64_t k;
    int rc;

    for (k = begin; k < end; k++) {
        uint64_t row0 = (uint64_t)k * j->rows_per_block, n = j->rows_per_block;
        if (n > j->n_rows - row0)
            n = j->n_rows - row0;
        bb = ba + j->rows_per_block * j->ne0;
        if ((rc = qf_source_rows_f32(j->a, j->ia, row0, n, ba, &j->errs[worker])) != 0 ||
            (rc = qf_source_rows_f32(j->b, j->ib, row0, n, bb, &j->errs[worker])) != 0)
            return rc;
        memset(&j->parts[k], 0, sizeof j->parts[k]);
        qf_diff_acc_add(&j->parts[k], ba, bb, n * j->ne0);
        qf_source_release_rows(j->a, j->ia, row0, n);
        qf_source_release_rows(j->b, j->ib, row0, n);
    }
    return 0;
}

static void shape_str(const qf_source_tensor *t, char *buf, size_t cap)
{
    size_t o = 0;
    uint32_t d;
    buf[0] = '\0';
    for (d = 0; d < t->n_dims && d < 4 && o < cap; d++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%" PRIu64, d ? " x " : "", t->ne[d]);
}

/* layer and kind of a GGUF tensor name */
static void name_parts(const char *name, int *layer, char *kind, size_t cap)
{
    const char *p = name;
    size_t n;
    long l = -1;

    if (!strncmp(name, "blk.", 4)) {
        char *end;
        l = strtol(name + 4, &end, 10);
        if (end != name + 4 && *end == '.' && l >= 0 && l < 1000000)
            p = end + 1;
        else
            l = -1;
    }
    n = strlen(p);
    if (n > 7 && !strcmp(p + n - 7, ".weight"))
        n -= 7;
    if (n >= cap)
        n = cap - 1;
    memcpy(kind, p, n);
    kind[n] = '\0';
    *layer = (int)l;
}

static int cmp_diff(const void *x, const void *y)
{
    const qf_tensor_diff *a = x, *b = y;
    int c = qf_diff_stats_cmp(&a->st, &b->st);
    return c ? c : (a->index_a > b->index_a) - (a->index_a < b->index_a);
}

void qf_tensor_diffs_free(qf_tensor_diffs *d)
{
    if (!d)
        return;
    free(d->items);
    free(d->only_a);
    free(d->only_b);
    free(d);
}

int qf_tensor_diff_sources(const qf_source *a, const qf_source *b, int n_threads,
                           qf_diff_progress_fn progress, void *progress_ctx,
                           qf_tensor_diffs **out, qf_err *err)
{
    int64_t na = qf_source_tensor_count(a), nb = qf_source_tensor_count(b), i, k;
    const char *pa = qf_source_path(a), *pb = qf_source_path(b);
    qf_tensor_diffs *d = NULL;
    qf_diff_acc total;
    qf_diff_acc *parts = NULL;
    float **bufs = NULL;
    qf_err *errs = NULL;
    uint64_t cap = 0, max_blocks = 1;
    int t, rc = 0;

    *out = NULL;
    if (n_threads < 1)
        n_threads = 1;
    if (n_threads > 256)
        n_threads = 256;
    memset(&total, 0, sizeof total);
    if (!(d = calloc(1, sizeof *d)) ||
        !(d->items = calloc((size_t)(na ? na : 1), sizeof *d->items)) ||
        !(d->only_a = calloc((size_t)(na ? na : 1), sizeof *d->only_a)) ||
        !(d->only_b = calloc((size_t)(nb ? nb : 1), sizeof *d->only_b))) {
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
        goto done;
    }

    /* Pair the tensors up and check their shapes before reading any. */
    for (i = 0; i < na; i++) {
        const qf_source_tensor *ta = qf_source_tensor_at(a, i), *tb;
        int64_t j = qf_source_find_tensor(b, ta->name);
        qf_tensor_diff *it;
        uint64_t rpb, blocks;
        if (j < 0) {
            d->only_a[d->n_only_a++] = ta->name;
            continue;
        }
        tb = qf_source_tensor_at(b, j);
        if (memcmp(ta->ne, tb->ne, sizeof ta->ne) != 0) {
            char sa[96], sb[96];
            shape_str(ta, sa, sizeof sa);
            shape_str(tb, sb, sizeof sb);
            rc = qf_err_set(err, QF_EMISMATCH,
                            "%s: tensor \"%s\" is %s, in %s it is %s: not the same model", pa,
                            ta->name, sa, pb, sb);
            goto done;
        }
        it = &d->items[d->n++];
        it->name = ta->name;
        it->index_a = i;
        it->index_b = j;
        it->type_a = ta->type;
        it->type_b = tb->type;
        it->n_dims = ta->n_dims;
        memcpy(it->ne, ta->ne, sizeof it->ne);
        name_parts(ta->name, &it->layer, it->kind, sizeof it->kind);
        rpb = ta->ne[0] >= BLOCK_ELEMS || ta->ne[0] == 0 ? 1 : BLOCK_ELEMS / ta->ne[0];
        if (rpb * ta->ne[0] > cap)
            cap = rpb * ta->ne[0];
        blocks = ta->n_rows ? (ta->n_rows + rpb - 1) / rpb : 0;
        if (blocks > max_blocks)
            max_blocks = blocks;
    }
    for (i = 0; i < nb; i++) {
        const qf_source_tensor *tb = qf_source_tensor_at(b, i);
        if (qf_source_find_tensor(a, tb->name) < 0)
            d->only_b[d->n_only_b++] = tb->name;
    }
    if (d->n == 0) {
        rc = qf_err_set(err, QF_EMISMATCH, "%s and %s have no tensor in common: not the same model",
                        pa, pb);
        goto done;
    }
    if (cap > SIZE_MAX / (2 * sizeof(float)) || max_blocks > SIZE_MAX / sizeof *parts) {
        rc = qf_err_set(err, QF_ELIMIT, "%s: tensor too large", pa);
        goto done;
    }
    if (!(parts = malloc((size_t)max_blocks * sizeof *parts)) ||
        !(bufs = calloc((size_t)n_threads, sizeof *bufs)) ||
        !(errs = calloc((size_t)n_threads, sizeof *errs))) {
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
        goto done;
    }
    for (t = 0; t < n_threads; t++)
        if (!(bufs[t] = malloc((size_t)(cap ? cap : 1) * 2 * sizeof(float)))) {
            rc = qf_err_set(err, QF_ENOMEM, "out of memory (row buffers)");
            goto done;
        }

    for (k = 0; k < d->n; k++) {
        qf_tensor_diff *it = &d->items[k];
        const qf_source_tensor *ta = qf_source_tensor_at(a, it->index_a);
        qf_diff_acc acc;
        block_job j;
        uint64_t blocks, bi;

        memset(&j, 0, sizeof j);
        j.a = a;
        j.b = b;
        j.ia = it->index_a;
        j.ib = it->index_b;
        j.ne0 = ta->ne[0];
        j.n_rows = ta->n_rows;
        j.rows_per_block = ta->ne[0] >= BLOCK_ELEMS || ta->ne[0] == 0 ? 1 : BLOCK_ELEMS / ta->ne[0];
        j.parts = parts;
        j.buf = bufs;
        j.errs = errs;
        blocks = ta->n_rows ? (ta->n_rows + j.rows_per_block - 1) / j.rows_per_block : 0;
        if ((rc = qf_parallel_for(n_threads, (int64_t)blocks, 1, diff_blocks, &j)) != 0) {
            for (t = 0; t < n_threads; t++)
                if (errs[t].code != 0) {
                    if (err)
                        *err = errs[t];
                    break;
                }
            if (t == n_threads)
                qf_err_set(err, rc, "%s: tensor \"%s\": %s", pa, it->name, qf_err_name(rc));
            goto done;
        }
        memset(&acc, 0, sizeof acc);
        for (bi = 0; bi < blocks; bi++)
            qf_diff_acc_merge(&acc, &parts[bi]);
        qf_diff_stats_of(&acc, &it->st);
        qf_diff_acc_merge(&total, &acc);
        qf_source_release(a, it->index_a);
        qf_source_release(b, it->index_b);
        if (progress)
            progress(progress_ctx, k + 1, d->n);
    }
    qf_diff_stats_of(&total, &d->total);
    qsort(d->items, (size_t)d->n, sizeof *d->items, cmp_diff);
    *out = d;
    d = NULL;
done:
    if (bufs)
        for (t = 0; t < n_threads; t++)
            free(bufs[t]);
    free(bufs);
    free(errs);
    free(parts);
    qf_tensor_diffs_free(d);
    return rc;
}
