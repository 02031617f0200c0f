/*
 * qforge-verify - measure what quantization cost: the perplexity of a model
 * over a text, or, with --ref, the KL divergence of a model from a reference
 * model on the same tokens, computed and printed as llama-perplexity does
 * (plain and --kl-divergence modes), by the F32 reference forward pass;
 * with --tensors, the error of each tensor of one file against another's;
 * with --report, an HTML page of it all (tools/report.c).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "convert/qfm_io.h"
#include "convert/source.h"
#include "formats/file.h"
#include "formats/hash.h"
#include "formats/parallel.h"
#include "formats/qfm.h"
#include "formats/types.h"
#include "tools/cli.h"
#include "tools/model_open.h"
#include "tools/report.h"
#include "verify/gemm.h"
#include "verify/metrics.h"
#include "verify/model.h"
#include "verify/tensor_diff.h"
#include "verify/tokenizer.h"

enum { EXIT_THRESHOLD = 3 }; /* --max-kld / --min-same-top exceeded */

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: qforge-verify -m MODEL [--ref REF] (-f TEXT | --tokens IDS.json) [options]\n"
            "       qforge-verify --tensors A B [--json] [--report OUT.html] [-t N]\n"
            "Without --ref: the perplexity of MODEL over the text, as llama-perplexity\n"
            "computes it: chunks of N_CTX tokens, each from an empty cache with BOS\n"
            "first, the second half of each chunk scored.\n"
            "With --ref: both models on the same tokens, and the statistics of\n"
            "llama-perplexity --kl-divergence (REF is the base): PPL of both, their\n"
            "ratio and correlation, KL divergence, delta-p, same top token.\n"
            "MODEL and REF are GGUF files (any block type) or Hugging Face folders; the\n"
            "forward pass runs in F32.\n"
            "With --tensors: no forward pass; every tensor A and B both hold (two files\n"
            "of one model, A the reference) read as F32 and compared: RMSE, max |error|,\n"
            "relative error ||A-B||/||A||, SNR in dB (10 log10(sum A^2 / sum (A-B)^2),\n"
            "inf when identical) and cosine similarity, worst (lowest SNR) first.\n"
            "\n"
            "Options:\n"
            "  -m, --model MODEL       the model to measure\n"
            "      --ref REF           the reference (base) model: KL-divergence mode\n"
            "  -f, --file TEXT         text to evaluate (tokenized with MODEL's vocabulary,\n"
            "                          BOS added as llama.cpp does)\n"
            "      --tokens IDS.json   token ids instead of text: a JSON array, as\n"
            "                          llama-tokenize --ids prints it (BOS included)\n"
            "  -c, --ctx-size N        tokens per chunk (default 512)\n"
            "      --chunks N          evaluate at most N chunks (default: all)\n"
            "  -b, --batch-size N      tokens per matrix product (default: 512, at most\n"
            "                          N_CTX; it changes speed and memory, not the figures)\n"
            "  -t, --threads N         threads (default: %d, the online CPUs)\n"
            "      --numerics ggml|f32 ggml (default): round what llama.cpp's CPU backend\n"
            "                          rounds (each product's input to the weight type's\n"
            "                          Q8_0/Q8_K/F16 partner, an F16 KV cache), so figures\n"
            "                          match llama-perplexity's; f32: all in F32, the cost of\n"
            "                          the weights alone (as a PyTorch float32 pass)\n"
            "      --json              machine-readable output on stdout\n"
            "      --max-kld X         exit 3 if the mean KLD exceeds X\n"
            "      --min-same-top P    exit 3 if the same-top-token rate is below P percent\n"
            "      --tensors A B       compare the tensors of A and B (see above)\n"
            "      --report OUT.html   also write a self-contained HTML page: with --ref,\n"
            "                          the summary, a histogram of the per-token KLD and\n"
            "                          the per-layer error of each tensor kind of MODEL\n"
            "                          against REF; with --tensors, the per-layer chart and\n"
            "                          the per-tensor table\n"
            "      --force             replace OUT.html if it exists\n"
            "      --record            MODEL is a QFM: store this run's summary (text and\n"
            "                          its SHA-256, settings, PPL, KLD statistics, pass)\n"
            "                          as \"verify\" in its provenance (the file is\n"
            "                          rewritten atomically; its tensors do not change)\n"
            "  -q, --quiet             errors only\n"
            "  -v, --verbose           more messages\n"
            "  -h, --help              this help\n"
            "      --version           print the version\n"
            "\n"
            "\n%s"
            "\nExit status: 0 done, 1 an error, 2 usage error, 3 a --max-kld or\n"
            "--min-same-top limit was exceeded.\n",
            qf_cli_default_threads(), qf_tool_archive_help);
}

typedef struct {
    const char *model, *ref, *text, *tokens;
    const char *report;         /* --report OUT.html, or NULL */
    int record;                 /* --record: the summary into MODEL's QFM provenance */
    const char *tensors[2];     /* --tensors A B */
    int64_t n_ctx, n_batch, max_chunks;
    int threads, json, numerics, force, tensor_mode;
    double max_kld, min_same_top; /* < 0: not set */
} options;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* CPU time of the process (all threads), seconds: with wall time it tells a
 * slow machine from a busy one. */
static double cpu_s(void)
{
    struct rusage r;
    if (getrusage(RUSAGE_SELF, &r) != 0)
        return 0.0;
    return (double)r.ru_utime.tv_sec + (double)r.ru_utime.tv_usec * 1e-6 +
           (double)r.ru_stime.tv_sec + (double)r.ru_stime.tv_usec * 1e-6;
}

/* A finite number >= 0; returns 0 or -1. */
static int parse_nonneg(const char *s, double *out)
{
    char *end;
    double v;
    errno = 0;
    v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v) || v < 0)
        return -1;
    *out = v;
    return 0;
}

/* =====================================================================
 * Inputs: the file's bytes, token ids
 * ===================================================================== */

static char *read_file(const char *path, size_t *len, qf_err *err)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL, *nb;
    size_t n = 0, cap = 0, got;

    if (!f) {
        qf_err_set(err, QF_EIO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    for (;;) {
        if (cap - n < 65536) {
            cap = cap ? cap * 2 : 1 << 20;
            if (!(nb = realloc(buf, cap + 1))) {
                qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
                goto fail;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        qf_err_set(err, QF_EIO, "%s: read error", path);
        goto fail;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
fail:
    fclose(f);
    free(buf);
    return NULL;
}

/* Token ids from a JSON array of integers in [0, n_vocab). */
static int read_token_json(const char *path, int64_t n_vocab, int32_t **ids, int64_t *n,
                           qf_err *err)
{
    size_t len;
    char *text = read_file(path, &len, err);
    cJSON *js = NULL, *it;
    int64_t k = 0;
    int rc = 0;

    *ids = NULL;
    if (!text)
        return err ? err->code : QF_EIO;
    js = cJSON_ParseWithLength(text, len);
    if (!js || !cJSON_IsArray(js)) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: not a JSON array of token ids", path);
        goto done;
    }
    *n = cJSON_GetArraySize(js);
    if (!(*ids = malloc((size_t)(*n ? *n : 1) * sizeof **ids))) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    cJSON_ArrayForEach(it, js) {
        double v = cJSON_IsNumber(it) ? it->valuedouble : -1;
        if (!(v >= 0 && v < (double)n_vocab && v == floor(v))) {
            rc = qf_err_set(err, QF_EFORMAT, "%s: item %" PRId64 " is not a token id in [0, %" PRId64 ")",
                            path, k, n_vocab);
            goto done;
        }
        (*ids)[k++] = (int32_t)v;
    }
done:
    if (rc != 0) {
        free(*ids);
        *ids = NULL;
    }
    cJSON_Delete(js);
    free(text);
    return rc;
}

/* Tokenize a text file as llama-perplexity does: one trailing newline
 * dropped (its -f reading does so), BOS/EOS as the vocabulary says,
 * special-token text parsed. */
static int tokenize_file(const qf_source *src, const char *path, int32_t **ids, int64_t *n,
                         qf_err *err)
{
    qf_tokenizer *tok = NULL;
    size_t len;
    char *text = read_file(path, &len, err);
    int rc;

    *ids = NULL;
    if (!text)
        return err ? err->code : QF_EIO;
    if (len > 0 && text[len - 1] == '\n')
        len--;
    rc = qf_tokenizer_from_source(src, &tok, err);
    if (rc == 0)
        rc = qf_tokenizer_encode_alloc(tok, text, len, 1, 1, ids, n, err);
    qf_tokenizer_free(tok);
    free(text);
    return rc;
}

/* BOS handling as llama.cpp's vocabulary: tokenizer.ggml.add_bos_token if
 * present, else on for SentencePiece ("llama") vocabularies; the id from
 * tokenizer.ggml.bos_token_id (SentencePiece default 1). Returns the id to
 * put first in each chunk, or -1 for none. */
static int32_t chunk_bos(const qf_source *src)
{
    const char *model = NULL;
    uint64_t len = 0, bos;
    int64_t i = qf_source_find_key(src, "tokenizer.ggml.add_bos_token");
    int spm, add;

    spm = qf_source_get_str(src, "tokenizer.ggml.model", &model, &len, NULL) == 0 && len == 5 &&
          memcmp(model, "llama", 5) == 0;
    add = spm;
    if (i >= 0) {
        qf_gguf_val v;
        if (qf_source_kv_value(src, i, &v) == 0 && v.type == QF_GGUF_BOOL)
            add = v.u != 0;
    }
    if (!add)
        return -1;
    if (qf_source_get_uint(src, "tokenizer.ggml.bos_token_id", &bos, NULL) == 0 &&
        bos < INT32_MAX)
        return (int32_t)bos;
    return spm ? 1 : -1;
}

/* =====================================================================
 * Models
 * ===================================================================== */

typedef struct {
    qf_source *src;
    qf_model *m;
    qf_model_state *st;
    int32_t bos;
    float *logits; /* (n_ctx - first, n_vocab) */
} runner;

static int runner_open(runner *r, const char *path, const options *o, qf_err *err)
{
    const qf_model_config *c;
    char h[32];
    double t0 = now_s();
    int rc;

    memset(r, 0, sizeof *r);
    if ((rc = qf_tool_model_path(path, &path, err)) != 0 ||
        (rc = qf_source_open(path, &r->src, err)) != 0 ||
        (rc = qf_model_load(r->src, o->threads, &r->m, err)) != 0)
        return rc;
    c = qf_model_get_config(r->m);
    r->bos = chunk_bos(r->src);
    qf_cli_info(1, "%s: %s, %" PRId64 " layers, dim %" PRId64 ", %" PRId64 " heads (%" PRId64
                " kv), vocab %" PRId64 ", %s of F32 weights, loaded in %.2f s",
                path, c->arch, c->n_layer, c->dim, c->n_head, c->n_head_kv, c->n_vocab,
                qf_cli_human(qf_model_weight_bytes(r->m), h, sizeof h), now_s() - t0);
    return 0;
}

static int runner_start(runner *r, const options *o, qf_err *err)
{
    int64_t V = qf_model_get_config(r->m)->n_vocab, rows = o->n_ctx - o->n_ctx / 2;
    int rc = qf_model_state_new(r->m, o->n_ctx, o->n_batch, o->threads, o->numerics, &r->st, err);
    if (rc != 0)
        return rc;
    if (!(r->logits = malloc((size_t)rows * (size_t)V * sizeof(float))))
        return qf_err_set(err, QF_ENOMEM, "out of memory (logits of %" PRId64 " tokens)", rows);
    return 0;
}

static void runner_close(runner *r)
{
    free(r->logits);
    qf_model_state_free(r->st);
    qf_model_free(r->m);
    qf_source_close(r->src);
}

/* Evaluate chunk `tokens` (n_ctx ids) from an empty cache, BOS first;
 * logits of positions n_ctx/2 .. n_ctx-1 into r->logits. */
static int run_chunk(runner *r, const int32_t *tokens, int64_t n_ctx, int32_t *buf, qf_err *err)
{
    memcpy(buf, tokens, (size_t)n_ctx * sizeof *buf);
    if (r->bos >= 0)
        buf[0] = r->bos;
    qf_model_state_reset(r->st);
    return qf_model_eval(r->m, r->st, buf, n_ctx, n_ctx / 2, r->logits, err);
}

/* =====================================================================
 * Output
 * ===================================================================== */

static void kld_chunk_header(void)
{
    printf("chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence"
           "              \xce\x94p RMS            Same top p\n");
}

static void kld_chunk_line(int64_t chunk, const qf_kld_stats *s)
{
    printf("%4" PRId64, chunk);
    printf("    %9.4lf \xc2\xb1 %9.4lf", s->ppl_q, s->ppl_q_unc);
    printf("    %10.5lf \xc2\xb1 %10.5lf", s->ln_ratio, s->ln_ratio_unc);
    printf("    %10.5lf \xc2\xb1 %10.5lf", s->kld_mean, s->kld_unc);
    printf("    %6.3lf \xc2\xb1 %6.3lf %%", 100.0 * s->rms_dp, 100.0 * s->rms_dp_unc);
    printf("    %6.3lf \xc2\xb1 %6.3lf %%\n", 100.0 * s->same_top, 100.0 * s->same_top_unc);
    fflush(stdout);
}

/* The summary, line for line as llama-perplexity --kl-divergence prints it
 * (without its duplicated "99.0%   KLD" line). */
static void kld_summary(const qf_kld_stats *s)
{
#define PM "\xc2\xb1"
#define DP "\xce\x94p"
    printf("====== Perplexity statistics ======\n");
    printf("Mean PPL(Q)                   : %10.6lf " PM " %10.6lf\n", s->ppl_q, s->ppl_q_unc);
    printf("Mean PPL(base)                : %10.6lf " PM " %10.6lf\n", s->ppl_base,
           s->ppl_base_unc);
    printf("Cor(ln(PPL(Q)), ln(PPL(base))): %6.2lf%%\n", 100.0 * s->cor_ln_ppl);
    printf("Mean ln(PPL(Q)/PPL(base))     : %10.6lf " PM " %10.6lf\n", s->ln_ratio,
           s->ln_ratio_unc);
    printf("Mean PPL(Q)/PPL(base)         : %10.6lf " PM " %10.6lf\n", s->ratio, s->ratio_unc);
    printf("Mean PPL(Q)-PPL(base)         : %10.6lf " PM " %10.6lf\n", s->diff, s->diff_unc);
    printf("\n====== KL divergence statistics ======\n");
    printf("Mean    KLD: %10.6lf " PM " %10.6lf\n", s->kld_mean, s->kld_unc);
    printf("Maximum KLD: %10.6f\n", s->kld_max);
    printf("99.9%%   KLD: %10.6f\n", s->kld_p999);
    printf("99.0%%   KLD: %10.6f\n", s->kld_p99);
    printf("Median  KLD: %10.6f\n", s->kld_median);
    printf("10.0%%   KLD: %10.6f\n", s->kld_p10);
    printf(" 5.0%%   KLD: %10.6f\n", s->kld_p5);
    printf(" 1.0%%   KLD: %10.6f\n", s->kld_p1);
    printf("Minimum KLD: %10.6f\n", s->kld_min);
    printf("\n====== Token probability statistics ======\n");
    printf("Mean    " DP ": %6.3lf " PM " %5.3lf %%\n", 100.0 * s->dp_mean, 100.0 * s->dp_unc);
    printf("Maximum " DP ": %6.3lf%%\n", 100.0 * s->dp_max);
    printf("99.9%%   " DP ": %6.3lf%%\n", 100.0 * s->dp_p999);
    printf("99.0%%   " DP ": %6.3lf%%\n", 100.0 * s->dp_p99);
    printf("95.0%%   " DP ": %6.3lf%%\n", 100.0 * s->dp_p95);
    printf("90.0%%   " DP ": %6.3lf%%\n", 100.0 * s->dp_p90);
    printf("75.0%%   " DP ": %6.3lf%%\n", 100.0 * s->dp_p75);
    printf("Median  " DP ": %6.3lf%%\n", 100.0 * s->dp_median);
    printf("25.0%%   " DP ": %6.3lf%%\n", 100.0 * s->dp_p25);
    printf("10.0%%   " DP ": %6.3lf%%\n", 100.0 * s->dp_p10);
    printf(" 5.0%%   " DP ": %6.3lf%%\n", 100.0 * s->dp_p5);
    printf(" 1.0%%   " DP ": %6.3lf%%\n", 100.0 * s->dp_p1);
    printf(" 0.1%%   " DP ": %6.3lf%%\n", 100.0 * s->dp_p01);
    printf("Minimum " DP ": %6.3lf%%\n", 100.0 * s->dp_min);
    printf("RMS " DP "    : %6.3lf " PM " %5.3lf %%\n", 100.0 * s->rms_dp, 100.0 * s->rms_dp_unc);
    printf("Same top p: %6.3lf " PM " %5.3lf %%\n", 100.0 * s->same_top, 100.0 * s->same_top_unc);
#undef PM
#undef DP
}

static void json_pair(qf_json *j, const char *key, double v, double unc)
{
    qf_json_key(j, key);
    qf_json_obj_begin(j);
    qf_json_key(j, "value");
    qf_json_f64(j, v);
    qf_json_key(j, "uncertainty");
    qf_json_f64(j, unc);
    qf_json_obj_end(j);
}

static void json_num(qf_json *j, const char *key, double v)
{
    qf_json_key(j, key);
    qf_json_f64(j, v);
}

static void json_head(qf_json *j, const char *mode, const options *o, int64_t n_tokens,
                      int64_t n_chunk, int64_t scored, double secs, double cpu)
{
    qf_json_key(j, "mode");
    qf_json_str(j, mode);
    qf_json_key(j, "model");
    qf_json_str(j, o->model);
    if (o->ref) {
        qf_json_key(j, "ref");
        qf_json_str(j, o->ref);
    }
    qf_json_key(j, "n_ctx");
    qf_json_i64(j, o->n_ctx);
    qf_json_key(j, "n_tokens");
    qf_json_i64(j, n_tokens);
    qf_json_key(j, "n_chunks");
    qf_json_i64(j, n_chunk);
    qf_json_key(j, "scored");
    qf_json_i64(j, scored);
    qf_json_key(j, "threads");
    qf_json_i64(j, o->threads);
    json_num(j, "seconds", secs);
    json_num(j, "cpu_seconds", cpu);
}

/* =====================================================================
 * The report and the per-tensor comparison
 * ===================================================================== */

/* Refuse an existing --report target before any work (qf_out_open checks
 * again when it is written). */
static int report_check(const options *o, qf_err *err)
{
    if (o->report && !o->force && access(o->report, F_OK) == 0)
        return qf_err_set(err, QF_EEXIST, "%s: exists (use --force to overwrite)", o->report);
    return 0;
}

/* Render the page in memory, then write it through the atomic writer: no
 * partial page is ever left under the target name. */
static int report_save(const options *o, const qf_report *r, qf_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    qf_out *out = NULL;
    int rc, wrc;

    if (!m)
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", o->report);
    wrc = qf_report_write(m, r);
    if (fclose(m) != 0 || wrc != 0) {
        free(buf);
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", o->report);
    }
    if ((rc = qf_out_open(o->report, o->force ? QF_OUT_FORCE : 0, &out, err)) == 0) {
        if ((rc = qf_out_write(out, buf, len, err)) != 0)
            qf_out_close(out);
        else
            rc = qf_out_commit(out, err);
    }
    free(buf);
    if (rc == 0)
        qf_cli_info(1, "%s: report written (%zu bytes)", o->report, len);
    return rc;
}

/* The bar is made at the first tensor, when the count of tensors in both
 * files is known. */
static void on_diff_progress(void *ctx, int64_t done, int64_t total)
{
    qf_progress **prog = ctx;
    (void)done;
    if (!*prog)
        *prog = qf_progress_new("tensors", (uint64_t)total);
    qf_progress_add(*prog, 1);
}

/* Compare every tensor of ref (the reference) and model. */
static int diff_sources(const qf_source *ref, const qf_source *model, const options *o,
                        qf_tensor_diffs **out, qf_err *err)
{
    double t0 = now_s();
    qf_progress *prog = NULL;
    int rc = qf_tensor_diff_sources(ref, model, o->threads, on_diff_progress, &prog, out, err);
    qf_progress_free(prog);
    if (rc == 0)
        qf_cli_info(1, "%" PRId64 " tensors compared in %.2f s, %d threads", (*out)->n,
                    now_s() - t0, o->threads);
    return rc;
}

static void shape_str(const qf_tensor_diff *t, char *buf, size_t cap)
{
    size_t n = 0;
    uint32_t k;
    buf[0] = '\0';
    for (k = 0; k < t->n_dims && k < 4 && n < cap; k++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%" PRIu64, k ? " x " : "", t->ne[k]);
}

/* v with prec digits, as %e (style 'e') or %f, or inf / nan */
static const char *fmt_stat(char *buf, size_t cap, char style, int prec, double v)
{
    if (isnan(v))
        snprintf(buf, cap, "nan");
    else if (isinf(v))
        snprintf(buf, cap, v > 0 ? "inf" : "-inf");
    else if (style == 'e')
        snprintf(buf, cap, "%.*e", prec, v);
    else
        snprintf(buf, cap, "%.*f", prec, v);
    return buf;
}

static void stat_line(const char *name, int w, const char *shape, const char *ta, const char *tb,
                      const qf_diff_stats *st)
{
    char b[5][32];
    printf("%-*s  %-14s %-7s %-7s %11s %11s %11s %8s %11s\n", w, name, shape, ta, tb,
           fmt_stat(b[0], 32, 'e', 4, st->rmse), fmt_stat(b[1], 32, 'e', 4, st->max_abs),
           fmt_stat(b[2], 32, 'e', 4, st->rel_err), fmt_stat(b[3], 32, 'f', 2, st->snr_db),
           fmt_stat(b[4], 32, 'f', 8, st->cosine));
}

static void print_names(const char *what, const char *const *names, int64_t n)
{
    int64_t i;
    if (!n)
        return;
    printf("only in %s (%" PRId64 "):", what, n);
    for (i = 0; i < n; i++)
        printf("%s %s", i ? "," : "", names[i]);
    printf("\n");
}

static void json_stats(qf_json *j, const qf_diff_stats *st)
{
    qf_json_key(j, "n");
    qf_json_u64(j, st->n);
    qf_json_key(j, "rmse");
    qf_json_f64(j, st->rmse);
    qf_json_key(j, "max_abs");
    qf_json_f64(j, st->max_abs);
    qf_json_key(j, "rel_err");
    qf_json_f64(j, st->rel_err);
    qf_json_key(j, "snr_db"); /* null when infinite (identical) */
    qf_json_f64(j, st->snr_db);
    qf_json_key(j, "cosine");
    qf_json_f64(j, st->cosine);
    qf_json_key(j, "identical");
    qf_json_bool(j, st->identical);
}

static void json_names(qf_json *j, const char *key, const char *const *names, int64_t n)
{
    int64_t i;
    qf_json_key(j, key);
    qf_json_arr_begin(j);
    for (i = 0; i < n; i++)
        qf_json_str(j, names[i]);
    qf_json_arr_end(j);
}

static void print_diffs(const options *o, const qf_tensor_diffs *d)
{
    int64_t i;
    int w = 6;
    char shape[64];
    uint32_t k;

    if (o->json) {
        qf_json j;
        qf_json_init(&j, stdout, 1);
        qf_json_obj_begin(&j);
        qf_json_key(&j, "mode");
        qf_json_str(&j, "tensors");
        qf_json_key(&j, "a");
        qf_json_str(&j, o->tensors[0]);
        qf_json_key(&j, "b");
        qf_json_str(&j, o->tensors[1]);
        qf_json_key(&j, "tensors");
        qf_json_arr_begin(&j);
        for (i = 0; i < d->n; i++) {
            const qf_tensor_diff *t = &d->items[i];
            qf_json_obj_begin(&j);
            qf_json_key(&j, "name");
            qf_json_str(&j, t->name);
            qf_json_key(&j, "shape");
            qf_json_arr_begin(&j);
            for (k = 0; k < t->n_dims && k < 4; k++)
                qf_json_u64(&j, t->ne[k]);
            qf_json_arr_end(&j);
            qf_json_key(&j, "type_a");
            qf_json_str(&j, qf_ggml_type_name(t->type_a));
            qf_json_key(&j, "type_b");
            qf_json_str(&j, qf_ggml_type_name(t->type_b));
            qf_json_key(&j, "layer");
            qf_json_i64(&j, t->layer);
            qf_json_key(&j, "kind");
            qf_json_str(&j, t->kind);
            json_stats(&j, &t->st);
            qf_json_obj_end(&j);
        }
        qf_json_arr_end(&j);
        json_names(&j, "only_in_a", d->only_a, d->n_only_a);
        json_names(&j, "only_in_b", d->only_b, d->n_only_b);
        qf_json_key(&j, "total");
        qf_json_obj_begin(&j);
        json_stats(&j, &d->total);
        qf_json_obj_end(&j);
        qf_json_obj_end(&j);
        qf_json_end(&j);
        return;
    }
    for (i = 0; i < d->n; i++)
        if ((int)strlen(d->items[i].name) > w)
            w = (int)strlen(d->items[i].name);
    if (w < 18)
        w = 18;
    printf("A (reference): %s\nB            : %s\n%" PRId64 " tensors in both, worst first\n\n",
           o->tensors[0], o->tensors[1], d->n);
    printf("%-*s  %-14s %-7s %-7s %11s %11s %11s %8s %11s\n", w, "tensor", "shape", "type A",
           "type B", "RMSE", "max |err|", "rel err", "SNR dB", "cosine");
    for (i = 0; i < d->n; i++) {
        const qf_tensor_diff *t = &d->items[i];
        shape_str(t, shape, sizeof shape);
        stat_line(t->name, w, shape, qf_ggml_type_name(t->type_a), qf_ggml_type_name(t->type_b),
                  &t->st);
    }
    stat_line("all tensors pooled", w, "", "", "", &d->total);
    print_names("A", d->only_a, d->n_only_a);
    print_names("B", d->only_b, d->n_only_b);
}

static int run_tensors(const options *o, qf_err *err)
{
    qf_source *a = NULL, *b = NULL;
    qf_tensor_diffs *d = NULL;
    qf_report_setting set[2];
    qf_report r;
    const char *pa, *pb;
    int rc;

    if ((rc = report_check(o, err)) != 0 || (rc = qf_tool_model_path(o->tensors[0], &pa, err)) != 0 ||
        (rc = qf_tool_model_path(o->tensors[1], &pb, err)) != 0 ||
        (rc = qf_source_open(pa, &a, err)) != 0 || (rc = qf_source_open(pb, &b, err)) != 0 ||
        (rc = diff_sources(a, b, o, &d, err)) != 0)
        goto done;
    print_diffs(o, d);
    fflush(stdout);
    if (o->report) {
        memset(&r, 0, sizeof r);
        set[0].label = "reference (A)";
        set[0].value = o->tensors[0];
        set[1].label = "compared (B)";
        set[1].value = o->tensors[1];
        r.title = "qforge-verify: per-tensor error";
        r.settings = set;
        r.n_settings = 2;
        r.diffs = d;
        r.ref_label = o->tensors[0];
        r.model_label = o->tensors[1];
        rc = report_save(o, &r, err);
    }
done:
    qf_tensor_diffs_free(d);
    qf_source_close(a);
    qf_source_close(b);
    return rc;
}

/* =====================================================================
 * The two modes
 * ===================================================================== */

/* Scoring a chunk's positions on the threads: row i is position first + i,
 * predicting chunk[first + i + 1]; results are added in order afterwards. */
typedef struct {
    const float *q, *base; /* (rows, n_vocab) logits; base NULL for perplexity */
    const int32_t *targets;
    int64_t n_vocab;
    double *nll;           /* perplexity: (rows) */
    qf_kld_row *kr;        /* KL divergence: (rows) */
} score_job;

static int score_rows(void *ctx, int64_t begin, int64_t end, int worker)
{
    score_job *j = ctx;
    int64_t i;
    int rc;
    (void)worker;
    for (i = begin; i < end; i++) {
        const float *q = j->q + i * j->n_vocab;
        if (!j->base) {
            j->nll[i] = qf_ppl_nll(q, j->n_vocab, j->targets[i]);
        } else if ((rc = qf_kld_row_compute(q, j->base + i * j->n_vocab, j->n_vocab,
                                            j->targets[i], &j->kr[i], NULL)) != 0) {
            return rc;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------
 * --record: the run's summary as the "verify" field of MODEL's QFM
 * provenance (docs/qfm.md), the file rewritten atomically.
 * ------------------------------------------------------------------- */

/* Before the work: MODEL must be a QFM file of its own (not in an archive). */
static int record_check(const options *o, qf_err *err)
{
    const char *path;
    int rc;
    if (!o->record)
        return 0;
    if ((rc = qf_tool_model_path(o->model, &path, err)) != 0)
        return rc;
    if (strcmp(path, o->model) != 0 || qf_tool_sniff(path, err) != QF_KIND_QFM)
        return qf_err_set(err, QF_EINVAL, "%s: --record writes into a QFM file; this is not one",
                          o->model);
    if (access(path, W_OK) != 0)
        return qf_err_set(err, QF_EIO, "%s: --record: %s", path, strerror(errno));
    return 0;
}

static void jnum(cJSON *o, const char *key, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

/* ppl: the perplexity run's (kld NULL), or kld: the KL-divergence run's. */
static int record_summary(const options *o, int64_t n_chunk, const qf_ppl *ppl,
                          const qf_kld_stats *kld, int pass, qf_err *err)
{
    const char *input = o->tokens ? o->tokens : o->text;
    cJSON *root = NULL, *v, *k;
    char hex[QF_SHA256_HEX], when[32], *json = NULL, *data = NULL;
    uint8_t d[QF_SHA256_LEN];
    size_t len = 0;
    time_t now = time(NULL);
    struct tm tm;
    int rc;

    if (!o->record)
        return 0;
    if (!(data = read_file(input, &len, err)))
        return err->code ? err->code : QF_EIO;
    qf_sha256_buf(data, len, d);
    qf_sha256_hex(d, hex);
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    rc = QF_ENOMEM;
    if (!(root = cJSON_CreateObject()) || !(v = cJSON_AddObjectToObject(root, "verify")))
        goto done;
    cJSON_AddStringToObject(v, "tool", "qforge-verify " QF_VERSION);
    cJSON_AddStringToObject(v, "date", when);
    cJSON_AddStringToObject(v, "mode", kld ? "kl-divergence" : "perplexity");
    cJSON_AddStringToObject(v, o->tokens ? "tokens" : "text", input);
    cJSON_AddStringToObject(v, o->tokens ? "tokens_sha256" : "text_sha256", hex);
    if (o->ref)
        cJSON_AddStringToObject(v, "reference", o->ref);
    cJSON_AddNumberToObject(v, "n_ctx", (double)o->n_ctx);
    cJSON_AddNumberToObject(v, "chunks", (double)n_chunk);
    cJSON_AddStringToObject(v, "numerics", o->numerics == QF_NUMERICS_GGML ? "ggml" : "f32");
    if (kld) {
        cJSON_AddNumberToObject(v, "positions", (double)kld->count);
        jnum(v, "ppl", kld->ppl_q);
        jnum(v, "ppl_reference", kld->ppl_base);
        jnum(v, "ppl_ratio", kld->ratio);
        if (!(k = cJSON_AddObjectToObject(v, "kld")))
            goto done;
        jnum(k, "mean", kld->kld_mean);
        jnum(k, "uncertainty", kld->kld_unc);
        jnum(k, "median", kld->kld_median);
        jnum(k, "p99", kld->kld_p99);
        jnum(k, "max", kld->kld_max);
        jnum(v, "rms_delta_p", kld->rms_dp);
        jnum(v, "same_top", kld->same_top);
        if (o->max_kld >= 0)
            jnum(v, "max_kld", o->max_kld);
        if (o->min_same_top >= 0)
            jnum(v, "min_same_top", o->min_same_top);
        cJSON_AddBoolToObject(v, "pass", pass);
    } else {
        cJSON_AddNumberToObject(v, "positions", (double)ppl->count);
        jnum(v, "ppl", qf_ppl_value(ppl));
        jnum(v, "ppl_uncertainty", qf_ppl_uncertainty(ppl));
    }
    if (!(json = cJSON_PrintUnformatted(root)))
        goto done;
    rc = qf_qfm_rewrite_provenance(o->model, json, 0, qf_qfm_affine_types, NULL, err);
    if (rc == 0)
        qf_cli_info(1, "recorded the summary in %s", o->model);
done:
    if (rc == QF_ENOMEM)
        qf_err_set(err, rc, "out of memory");
    cJSON_Delete(root);
    free(json);
    free(data);
    return rc;
}

static int run_ppl(runner *r, const options *o, const int32_t *ids, int64_t n_tokens,
                   int64_t n_chunk, qf_err *err)
{
    int64_t V = qf_model_get_config(r->m)->n_vocab, first = o->n_ctx / 2, i, j;
    int32_t *buf = malloc((size_t)o->n_ctx * sizeof *buf);
    double *chunk_ppl = malloc((size_t)n_chunk * sizeof *chunk_ppl), t0 = now_s(), c0 = cpu_s();
    double *nll = malloc((size_t)o->n_ctx * sizeof *nll), secs, cpu;
    qf_progress *prog = NULL;
    qf_ppl p = { 0, 0, 0 };
    score_job sj;
    int rc = 0;

    if (!buf || !chunk_ppl || !nll) {
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
        goto done;
    }
    qf_cli_info(1, "perplexity: %" PRId64 " chunks of %" PRId64 " tokens, positions %" PRId64
                "..%" PRId64 " scored, %d threads, %s kernels",
                n_chunk, o->n_ctx, first, o->n_ctx - 2, o->threads, qf_gemm_isa_name(qf_gemm_isa()));
    if (o->json) /* otherwise the chunk figures on stdout show the progress */
        prog = qf_progress_new("perplexity", (uint64_t)n_chunk);
    for (i = 0; i < n_chunk; i++) {
        const int32_t *chunk = ids + i * o->n_ctx;
        if ((rc = run_chunk(r, chunk, o->n_ctx, buf, err)) != 0)
            goto done;
        memset(&sj, 0, sizeof sj);
        sj.q = r->logits;
        sj.targets = chunk + first + 1;
        sj.n_vocab = V;
        sj.nll = nll;
        qf_parallel_for(o->threads, o->n_ctx - 1 - first, 8, score_rows, &sj);
        for (j = 0; j < o->n_ctx - 1 - first; j++)
            qf_ppl_add_nll(&p, nll[j]);
        chunk_ppl[i] = qf_ppl_value(&p);
        if (!o->json) {
            printf("[%" PRId64 "]%.4lf,", i + 1, chunk_ppl[i]);
            fflush(stdout);
        }
        qf_progress_add(prog, 1);
    }
    qf_progress_free(prog);
    prog = NULL;
    secs = now_s() - t0;
    cpu = cpu_s() - c0;
    qf_cli_info(1, "%" PRId64 " tokens in %.2f s (%.1f tokens/s)", n_chunk * o->n_ctx, secs,
                (double)(n_chunk * o->n_ctx) / secs);
    if (o->json) {
        qf_json jw;
        qf_json_init(&jw, stdout, 1);
        qf_json_obj_begin(&jw);
        json_head(&jw, "perplexity", o, n_tokens, n_chunk, p.count, secs, cpu);
        qf_json_key(&jw, "chunks");
        qf_json_arr_begin(&jw);
        for (i = 0; i < n_chunk; i++)
            qf_json_f64(&jw, chunk_ppl[i]);
        qf_json_arr_end(&jw);
        json_pair(&jw, "ppl", qf_ppl_value(&p), qf_ppl_uncertainty(&p));
        qf_json_obj_end(&jw);
        qf_json_end(&jw);
    } else {
        printf("\nFinal estimate: PPL = %.4lf +/- %.5lf\n", qf_ppl_value(&p),
               qf_ppl_uncertainty(&p));
    }
    fflush(stdout);
    rc = record_summary(o, n_chunk, &p, NULL, 1, err);
done:
    qf_progress_free(prog);
    free(buf);
    free(chunk_ppl);
    free(nll);
    return rc;
}

static void json_kld(qf_json *j, const qf_kld_stats *s)
{
    json_pair(j, "ppl_q", s->ppl_q, s->ppl_q_unc);
    json_pair(j, "ppl_base", s->ppl_base, s->ppl_base_unc);
    json_num(j, "cor_ln_ppl", s->cor_ln_ppl);
    json_pair(j, "ln_ppl_ratio", s->ln_ratio, s->ln_ratio_unc);
    json_pair(j, "ppl_ratio", s->ratio, s->ratio_unc);
    json_pair(j, "ppl_diff", s->diff, s->diff_unc);
    qf_json_key(j, "kld");
    qf_json_obj_begin(j);
    json_num(j, "mean", s->kld_mean);
    json_num(j, "uncertainty", s->kld_unc);
    json_num(j, "max", s->kld_max);
    json_num(j, "p99_9", s->kld_p999);
    json_num(j, "p99", s->kld_p99);
    json_num(j, "median", s->kld_median);
    json_num(j, "p10", s->kld_p10);
    json_num(j, "p5", s->kld_p5);
    json_num(j, "p1", s->kld_p1);
    json_num(j, "min", s->kld_min);
    qf_json_obj_end(j);
    qf_json_key(j, "delta_p");
    qf_json_obj_begin(j);
    json_num(j, "mean", s->dp_mean);
    json_num(j, "uncertainty", s->dp_unc);
    json_num(j, "max", s->dp_max);
    json_num(j, "p99_9", s->dp_p999);
    json_num(j, "p99", s->dp_p99);
    json_num(j, "p95", s->dp_p95);
    json_num(j, "p90", s->dp_p90);
    json_num(j, "p75", s->dp_p75);
    json_num(j, "median", s->dp_median);
    json_num(j, "p25", s->dp_p25);
    json_num(j, "p10", s->dp_p10);
    json_num(j, "p5", s->dp_p5);
    json_num(j, "p1", s->dp_p1);
    json_num(j, "p0_1", s->dp_p01);
    json_num(j, "min", s->dp_min);
    qf_json_obj_end(j);
    json_pair(j, "rms_dp", s->rms_dp, s->rms_dp_unc);
    json_pair(j, "same_top", s->same_top, s->same_top_unc);
}

/* Returns 0, EXIT_THRESHOLD (as a positive value) or a negative code. */
static int kld_report(const options *o, const qf_kld *k, const qf_kld_stats *s, int64_t n_chunk,
                      const qf_tensor_diffs *diffs, qf_err *err)
{
    char ctx[32], chunks[32], scored[32];
    qf_report_setting set[7];
    qf_report r;

    snprintf(ctx, sizeof ctx, "%" PRId64, o->n_ctx);
    snprintf(chunks, sizeof chunks, "%" PRId64, n_chunk);
    snprintf(scored, sizeof scored, "%" PRId64, s->count);
    set[0].label = "model (Q)";
    set[0].value = o->model;
    set[1].label = "reference (base)";
    set[1].value = o->ref;
    set[2].label = o->tokens ? "token ids" : "text";
    set[2].value = o->tokens ? o->tokens : o->text;
    set[3].label = "tokens per chunk";
    set[3].value = ctx;
    set[4].label = "chunks";
    set[4].value = chunks;
    set[5].label = "positions scored";
    set[5].value = scored;
    set[6].label = "numerics";
    set[6].value = o->numerics == QF_NUMERICS_GGML ? "ggml" : "f32";
    memset(&r, 0, sizeof r);
    r.title = "qforge-verify: KL divergence and weight error";
    r.settings = set;
    r.n_settings = 7;
    r.kld = s;
    r.kld_values = qf_kld_values(k, &r.n_kld);
    r.diffs = diffs;
    r.ref_label = o->ref;
    r.model_label = o->model;
    return report_save(o, &r, err);
}

static int run_kld(runner *q, runner *base, const options *o, const int32_t *ids,
                   int64_t n_tokens, int64_t n_chunk, const qf_tensor_diffs *diffs, qf_err *err)
{
    int64_t V = qf_model_get_config(q->m)->n_vocab, first = o->n_ctx / 2, i, j;
    int32_t *buf = malloc((size_t)o->n_ctx * sizeof *buf);
    qf_kld_row *kr = malloc((size_t)o->n_ctx * sizeof *kr);
    double t0 = now_s(), c0 = cpu_s(), secs, cpu;
    qf_progress *prog = NULL;
    qf_kld *k = NULL;
    qf_kld_stats s;
    score_job sj;
    int rc, over = 0;

    if (!buf || !kr) {
        rc = qf_err_set(err, QF_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = qf_kld_new(n_chunk * (o->n_ctx - 1 - first), &k, err)) != 0)
        goto done;
    qf_cli_info(1, "kl-divergence: %" PRId64 " chunks of %" PRId64 " tokens, positions %" PRId64
                "..%" PRId64 " scored, %d threads, %s kernels",
                n_chunk, o->n_ctx, first, o->n_ctx - 2, o->threads, qf_gemm_isa_name(qf_gemm_isa()));
    if (o->json)
        prog = qf_progress_new("kl-divergence", (uint64_t)n_chunk);
    else
        kld_chunk_header();
    for (i = 0; i < n_chunk; i++) {
        const int32_t *chunk = ids + i * o->n_ctx;
        if ((rc = run_chunk(base, chunk, o->n_ctx, buf, err)) != 0 ||
            (rc = run_chunk(q, chunk, o->n_ctx, buf, err)) != 0)
            goto done;
        memset(&sj, 0, sizeof sj);
        sj.q = q->logits;
        sj.base = base->logits;
        sj.targets = chunk + first + 1;
        sj.n_vocab = V;
        sj.kr = kr;
        if ((rc = qf_parallel_for(o->threads, o->n_ctx - 1 - first, 8, score_rows, &sj)) != 0) {
            qf_err_set(err, rc, "scoring chunk %" PRId64 ": %s", i + 1, qf_err_name(rc));
            goto done;
        }
        for (j = 0; j < o->n_ctx - 1 - first; j++)
            if ((rc = qf_kld_add_row(k, &kr[j], err)) != 0)
                goto done;
        if (!o->json) {
            qf_kld_get_stats(k, 0, &s, NULL);
            kld_chunk_line(i + 1, &s);
        }
        qf_progress_add(prog, 1);
    }
    qf_progress_free(prog);
    prog = NULL;
    secs = now_s() - t0;
    cpu = cpu_s() - c0;
    qf_cli_info(1, "%" PRId64 " tokens through two models in %.2f s (%.1f tokens/s each)",
                n_chunk * o->n_ctx, secs, 2.0 * (double)(n_chunk * o->n_ctx) / secs);
    if ((rc = qf_kld_get_stats(k, 1, &s, err)) != 0)
        goto done;
    if (o->max_kld >= 0 && s.kld_mean > o->max_kld)
        over = 1;
    if (o->min_same_top >= 0 && 100.0 * s.same_top < o->min_same_top)
        over = 1;
    if (o->json) {
        qf_json jw;
        qf_json_init(&jw, stdout, 1);
        qf_json_obj_begin(&jw);
        json_head(&jw, "kl-divergence", o, n_tokens, n_chunk, s.count, secs, cpu);
        json_kld(&jw, &s);
        if (o->max_kld >= 0)
            json_num(&jw, "max_kld", o->max_kld);
        if (o->min_same_top >= 0)
            json_num(&jw, "min_same_top", o->min_same_top);
        qf_json_key(&jw, "pass");
        qf_json_bool(&jw, !over);
        qf_json_obj_end(&jw);
        qf_json_end(&jw);
    } else {
        printf("\n");
        kld_summary(&s);
    }
    fflush(stdout);
    if (o->report && (rc = kld_report(o, k, &s, n_chunk, diffs, err)) != 0)
        goto done;
    if ((rc = record_summary(o, n_chunk, NULL, &s, !over, err)) != 0)
        goto done;
    if (o->max_kld >= 0 && s.kld_mean > o->max_kld)
        qf_cli_error("mean KLD %.6f exceeds --max-kld %g", s.kld_mean, o->max_kld);
    if (o->min_same_top >= 0 && 100.0 * s.same_top < o->min_same_top)
        qf_cli_error("same top token %.3f %% is below --min-same-top %g", 100.0 * s.same_top,
                     o->min_same_top);
    rc = over ? EXIT_THRESHOLD : 0;
done:
    qf_progress_free(prog);
    qf_kld_free(k);
    free(buf);
    free(kr);
    return rc;
}

/* =====================================================================
 * main
 * ===================================================================== */

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "model", required_argument, NULL, 'm' },     { "ref", required_argument, NULL, 'R' },
        { "file", required_argument, NULL, 'f' },      { "tokens", required_argument, NULL, 'T' },
        { "ctx-size", required_argument, NULL, 'c' },  { "chunks", required_argument, NULL, 'C' },
        { "batch-size", required_argument, NULL, 'b' }, { "threads", required_argument, NULL, 't' },
        { "json", no_argument, NULL, 'J' },            { "max-kld", required_argument, NULL, 'K' },
        { "min-same-top", required_argument, NULL, 'S' }, { "quiet", no_argument, NULL, 'q' },
        { "numerics", required_argument, NULL, 'N' },
        { "tensors", no_argument, NULL, 'D' },         { "report", required_argument, NULL, 'O' },
        { "force", no_argument, NULL, 'F' },           { "record", no_argument, NULL, 'W' },
        { "verbose", no_argument, NULL, 'v' },         { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },         { NULL, 0, NULL, 0 },
    };
    options o;
    runner q, base;
    qf_tensor_diffs *diffs = NULL;
    qf_err err = { 0 };
    int32_t *ids = NULL;
    int64_t n_tokens = 0, n_chunk;
    uint64_t v;
    int c, rc = 0, have_base = 0;

    memset(&o, 0, sizeof o);
    memset(&q, 0, sizeof q);
    memset(&base, 0, sizeof base);
    o.n_ctx = 512;
    o.max_chunks = -1;
    o.max_kld = o.min_same_top = -1;
    o.numerics = QF_NUMERICS_GGML;
    qf_cli_init(argv[0]);
    o.threads = qf_cli_default_threads();
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:f:c:b:t:qvh", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': o.model = optarg; break;
        case 'R': o.ref = optarg; break;
        case 'f': o.text = optarg; break;
        case 'T': o.tokens = optarg; break;
        case 'c':
            if (qf_cli_parse_u64(optarg, 2, 1 << 24, 0, &v) != 0)
                return qf_cli_usage_error("--ctx-size: expected 2..16777216, got '%s'", optarg);
            o.n_ctx = (int64_t)v;
            break;
        case 'C':
            if (qf_cli_parse_u64(optarg, 1, INT32_MAX, 0, &v) != 0)
                return qf_cli_usage_error("--chunks: expected a positive count, got '%s'", optarg);
            o.max_chunks = (int64_t)v;
            break;
        case 'b':
            if (qf_cli_parse_u64(optarg, 1, 1 << 24, 0, &v) != 0)
                return qf_cli_usage_error("--batch-size: expected a positive count, got '%s'",
                                          optarg);
            o.n_batch = (int64_t)v;
            break;
        case 't':
            if (qf_cli_parse_u64(optarg, 1, 256, 0, &v) != 0)
                return qf_cli_usage_error("--threads: expected 1..256, got '%s'", optarg);
            o.threads = (int)v;
            break;
        case 'J': o.json = 1; break;
        case 'D': o.tensor_mode = 1; break;
        case 'O': o.report = optarg; break;
        case 'F': o.force = 1; break;
        case 'W': o.record = 1; break;
        case 'N':
            if (!strcmp(optarg, "ggml"))
                o.numerics = QF_NUMERICS_GGML;
            else if (!strcmp(optarg, "f32"))
                o.numerics = QF_NUMERICS_F32;
            else
                return qf_cli_usage_error("--numerics: expected ggml or f32, got '%s'", optarg);
            break;
        case 'K':
            if (parse_nonneg(optarg, &o.max_kld) != 0)
                return qf_cli_usage_error("--max-kld: expected a number >= 0, got '%s'", optarg);
            break;
        case 'S':
            if (parse_nonneg(optarg, &o.min_same_top) != 0 || o.min_same_top > 100)
                return qf_cli_usage_error("--min-same-top: expected a percentage 0..100, got '%s'",
                                          optarg);
            break;
        case 'q': qf_cli_verbosity = 0; break;
        case 'v': qf_cli_verbosity++; break;
        case 'h': usage(stdout); return 0;
        case 'V': qf_cli_version(); return 0;
        case ':': return qf_cli_usage_error("option '%s' needs an argument", argv[optind - 1]);
        default: return qf_cli_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (o.tensor_mode) {
        if (o.model || o.ref || o.text || o.tokens || o.max_kld >= 0 || o.min_same_top >= 0 ||
            o.record)
            return qf_cli_usage_error("--tensors takes two files, not -m, --ref, -f, --tokens, "
                                      "--max-kld, --min-same-top or --record");
        if (argc - optind != 2)
            return qf_cli_usage_error("--tensors needs two files: A (the reference) and B");
        o.tensors[0] = argv[optind];
        o.tensors[1] = argv[optind + 1];
        if ((rc = run_tensors(&o, &err)) != 0) {
            qf_cli_report(&err);
            return QF_EXIT_FAIL;
        }
        return 0;
    }
    if (optind < argc)
        return qf_cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (o.report && !o.ref)
        return qf_cli_usage_error("--report needs --ref (or --tensors)");
    if (!o.model)
        return qf_cli_usage_error("missing -m MODEL");
    if (!o.text == !o.tokens)
        return qf_cli_usage_error(o.text ? "give -f TEXT or --tokens IDS.json, not both"
                                         : "missing -f TEXT or --tokens IDS.json");
    if (!o.ref && (o.max_kld >= 0 || o.min_same_top >= 0))
        return qf_cli_usage_error("--max-kld and --min-same-top need --ref");
    if (o.n_batch == 0) /* the batch changes no figure; 512 keeps a product's input in L2 */
        o.n_batch = 512;
    if (o.n_batch > o.n_ctx)
        o.n_batch = o.n_ctx;

    if ((rc = report_check(&o, &err)) != 0 || (rc = record_check(&o, &err)) != 0 ||
        (rc = runner_open(&q, o.model, &o, &err)) != 0)
        goto fail;
    if (o.ref) {
        have_base = 1;
        if ((rc = runner_open(&base, o.ref, &o, &err)) != 0)
            goto fail;
        if (qf_model_get_config(base.m)->n_vocab != qf_model_get_config(q.m)->n_vocab) {
            rc = qf_err_set(&err, QF_EMISMATCH, "%s has %" PRId64 " tokens, %s has %" PRId64
                            ": not the same vocabulary", o.ref,
                            qf_model_get_config(base.m)->n_vocab, o.model,
                            qf_model_get_config(q.m)->n_vocab);
            goto fail;
        }
        /* the weights' error for the report, before the long part */
        if (o.report && (rc = diff_sources(base.src, q.src, &o, &diffs, &err)) != 0)
            goto fail;
    }
    if (qf_model_get_config(q.m)->n_ctx_train > 0 && o.n_ctx > qf_model_get_config(q.m)->n_ctx_train)
        qf_cli_info(1, "warning: %s was trained on %" PRId64 " tokens of context, -c is %" PRId64,
                    o.model, qf_model_get_config(q.m)->n_ctx_train, o.n_ctx);
    if (o.tokens)
        rc = read_token_json(o.tokens, qf_model_get_config(q.m)->n_vocab, &ids, &n_tokens, &err);
    else
        rc = tokenize_file(q.src, o.text, &ids, &n_tokens, &err);
    if (rc != 0)
        goto fail;
    qf_cli_info(2, "%" PRId64 " tokens", n_tokens);
    if (n_tokens < 2 * o.n_ctx) {
        rc = qf_err_set(&err, QF_EINVAL, "%s: %" PRId64 " tokens; perplexity with a context of %"
                        PRId64 " needs at least %" PRId64 " (lower -c)",
                        o.tokens ? o.tokens : o.text, n_tokens, o.n_ctx, 2 * o.n_ctx);
        goto fail;
    }
    n_chunk = n_tokens / o.n_ctx;
    if (o.max_chunks > 0 && o.max_chunks < n_chunk)
        n_chunk = o.max_chunks;
    if ((rc = runner_start(&q, &o, &err)) != 0 || (have_base && (rc = runner_start(&base, &o, &err)) != 0))
        goto fail;

    rc = have_base ? run_kld(&q, &base, &o, ids, n_tokens, n_chunk, diffs, &err)
                   : run_ppl(&q, &o, ids, n_tokens, n_chunk, &err);
    if (rc < 0)
        goto fail;
    goto done;
fail:
    qf_cli_report(&err);
    rc = QF_EXIT_FAIL;
done:
    qf_tensor_diffs_free(diffs);
    free(ids);
    runner_close(&q);
    runner_close(&base);
    return rc;
}
