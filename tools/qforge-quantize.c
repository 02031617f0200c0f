/*
 * qforge-quantize - a GGUF or a Hugging Face folder to a quantized GGUF with
 * llama.cpp's mixes, the same bytes llama-quantize writes; same positional
 * arguments and option names as llama-quantize.
 */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "convert/quantize_budget.h"
#include "convert/quantize_model.h"
#include "convert/source.h"
#include "formats/file.h"
#include "formats/types.h"
#include "quantize/affine.h"
#include "quantize/mix.h"
#include "quantize/quant.h"
#include "tools/cli.h"
#include "tools/model_open.h"
#include "verify/budget_calibrate.h"

static void usage(FILE *f)
{
    const char *name, *desc;
    int i, ftype;

    fprintf(f,
            "Usage: qforge-quantize [options] IN OUT TYPE [NTHREADS]\n"
            "       qforge-quantize [options] IN OUT.qfm TYPE|AFFINE [NTHREADS]\n"
            "       qforge-quantize [options] IN OUT --target-size SIZE | --target-bpw BPW |\n"
            "                       --max-memory SIZE [--ctx N]\n"
            "Quantize a model to one of llama.cpp's types, byte for byte as llama-quantize\n"
            "does. IN is a GGUF or QFM (F32, F16 or BF16 tensors) or a Hugging Face folder,\n"
            "converted and quantized in one pass (the same bytes as converting to F32 first).\n"
            "With a size budget instead of TYPE, each tensor gets the type that makes the\n"
            "model's estimated error smallest within the budget (docs/budget.md).\n"
            "With OUT ending in .qfm (or --format qfm) the output is a QFM (docs/qfm.md):\n"
            "the same metadata and tensors (qforge-export gives back the very GGUF), every\n"
            "tensor's SHA-256, and a provenance with the inputs' SHA-256, the command line\n"
            "and the recipe (each tensor's type, the imatrix and its SHA-256, a budget's\n"
            "summary). A QFM can also hold QFM's AFFINE integer types (below).\n"
            "\n"
            "Options:\n"
            "  -t, --threads N              threads (default: %d; NTHREADS does the same)\n"
            "      --imatrix FILE           importance matrix from llama-imatrix (legacy .dat\n"
            "                               or GGUF format)\n"
            "      --pure                   no mix rules: TYPE's base type for every tensor\n"
            "      --output-tensor-type T   ggml type for output.weight (e.g. q8_0, f16)\n"
            "      --token-embedding-type T ggml type for token_embd.weight\n"
            "      --tensor-type REGEX=T    ggml type for tensors whose name matches REGEX\n"
            "                               (POSIX extended; repeatable, the first match wins)\n"
            "      --leave-output-tensor    leave output.weight as stored\n"
            "      --allow-requantize       accept already quantized tensors: they are\n"
            "                               dequantized and quantized again (quality suffers)\n"
            "      --dry-run                print every tensor's type, bytes and bits per\n"
            "                               weight and the totals; write nothing (OUT may be\n"
            "                               left out)\n"
            "      --checksum               also write OUT.sha256, the per-tensor manifest that\n"
            "                               qforge-sum --check reads (hashed while writing)\n"
            "      --json                   print the plan or the result as JSON on stdout\n"
            "      --format FMT             gguf or qfm (default: qfm when OUT ends in .qfm)\n"
            "      --codec CODEC            QFM: zstd (default) or raw (tensors usable in place)\n"
            "      --level N                QFM: zstd level 1..22 (default: %d)\n"
            "  -f, --force                  replace OUT (and OUT.sha256) if it exists\n"
            "  -q, --quiet                  errors only\n"
            "  -v, --verbose                more messages (every fallback, imatrix misses)\n"
            "  -h, --help                   this help\n"
            "      --version                print the version\n"
            "\n"
            "Size budget (replaces TYPE):\n"
            "      --target-size SIZE       the output file at most SIZE bytes (K, M, G:\n"
            "                               powers of 1024); within 0.5%% below when the\n"
            "                               tensors' sizes allow\n"
            "      --target-bpw BPW         tensor data at most BPW * weights / 8 bytes\n"
            "                               (weights: elements of every tensor, norms too,\n"
            "                               as llama.cpp counts its model's BPW)\n"
            "      --max-memory SIZE        the file, plus an F16 KV cache of --ctx tokens,\n"
            "                               plus an estimate of llama.cpp's compute buffers,\n"
            "                               at most SIZE bytes (the split is printed)\n"
            "      --ctx N                  tokens for --max-memory (default 4096)\n"
            "      --types LIST             candidate types, comma-separated (default: Q2_K,\n"
            "                               Q3_K,Q4_K,Q5_K,Q6_K,Q8_0,IQ4_XS for rows that are\n"
            "                               a multiple of 256, Q4_0,Q4_1,Q5_0,Q5_1,Q8_0,F16\n"
            "                               for other rows); norms and the like stay as stored\n"
            "      --save-plan PLAN.json    keep the measured errors (with or without a target;\n"
            "                               without one, only measure)\n"
            "      --plan PLAN.json         reuse them: a new budget is solved in a moment;\n"
            "                               a plan of another model or imatrix is refused\n"
            "      --sample-rows N          rows measured per tensor, evenly spaced\n"
            "                               (default %d)\n"
            "      --calibrate TEXT         measure this model's sensitivities (how much each\n"
            "                               kind of tensor's noise moves the logits: KL\n"
            "                               divergence over TEXT, one kind quantized at a\n"
            "                               time) instead of the built-in table; kept in the\n"
            "                               plan. Runs the model in F32: small models only\n"
            "      --calibrate-chunks N     chunks of TEXT to run (default 16)\n"
            "      --calibrate-ctx N        tokens per chunk (default 128)\n"
            "      --dry-run                print each tensor's type, bytes and estimated\n"
            "                               error, and the totals; write no model (OUT may\n"
            "                               be left out)\n"
            "                               With a QFM OUT the budget counts the GGUF it\n"
            "                               stands for (what qforge-export writes)\n"
            "\n"
            "Types (TYPE is a name, case-insensitive, or the number llama.cpp writes to\n"
            "general.file_type):\n",
            qf_cli_default_threads(), QF_QFM_DEFAULT_LEVEL, QF_BUDGET_SAMPLE_ROWS);
    for (i = 0; (name = qf_mix_list(i, &ftype, &desc)) != NULL; i++)
        fprintf(f, "  %2d  or  %-7s : %s\n", ftype, name, desc);
    fprintf(f,
            "\n"
            "A type a tensor cannot take (its row length is not a multiple of the block size)\n"
            "falls back as llama.cpp's does (Q4_K -> Q5_0, Q6_K -> Q8_0, ...), and to F16\n"
            "where llama.cpp would stop; every such tensor is reported.\n"
            "\n"
            "AFFINE types (a QFM OUT only; quantize/affine.h draws the layouts):\n"
            "  int4-g32, int4-g64, int4-g128  4-bit codes, an F16 scale and bias per group of\n"
            "                                 32/64/128 columns: 5, 4.5, 4.25 bits per weight\n"
            "  int8-g32, int8-g64, int8-g128  8-bit codes, likewise: 9, 8.5, 8.25 bits per weight\n"
            "  int8-ch                        symmetric 8-bit, an F32 scale per row\n"
            "Every tensor llama.cpp's mixes would quantize gets the type: the 2-D weights,\n"
            "token_embd.weight and output.weight included; norms and 1-D tensors keep their\n"
            "type. A tensor whose row length is not a multiple of the group is written\n"
            "int8-ch instead (reported as a fallback). --tensor-type, --output-tensor-type\n"
            "and --token-embedding-type still give ggml types to the tensors they name;\n"
            "--imatrix does not apply. general.file_type is 1 (F16): no llama.cpp file type\n"
            "names these types, and such a file has no GGUF form (qforge-export refuses it;\n"
            "every qforge tool reads it).\n"
            "\n%s"
            "\nExit status: 0 written, 1 an error (nothing is left behind), 2 usage error.\n",
            qf_tool_archive_help);
}

/* ---------------------------------------------------------------------
 * Reporting
 * ------------------------------------------------------------------- */

typedef struct progress_state {
    qf_progress *bar;
    uint64_t last;
} progress_state;

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    progress_state *p = ctx;
    (void)total;
    qf_progress_add(p->bar, done - p->last);
    p->last = done;
}

static const char *shape(const qf_quantize_tensor *t, char *buf, size_t cap)
{
    size_t o = 0;
    uint32_t d;
    buf[0] = '\0';
    for (d = 0; d < t->n_dims && o < cap; d++)
        o += (size_t)snprintf(buf + o, cap - o, d ? " x %" PRIu64 : "%" PRIu64, t->ne[d]);
    return buf;
}

static double bpw(uint64_t bytes, uint64_t elements)
{
    return elements ? (double)bytes * 8.0 / (double)elements : 0.0;
}

static const char *why_text(const qf_quantize_tensor *t, char *buf, size_t cap)
{
    static const char *const WHY[] = { "kept", "mix default", "mix rule", "--pure",
                                       "--tensor-type", "--output-tensor-type",
                                       "--token-embedding-type" };
    const char *w = t->why >= 0 && t->why < (int)(sizeof WHY / sizeof WHY[0]) ? WHY[t->why] : "?";
    size_t o;
    if (!t->quantize && t->why != QF_MIX_KEPT)
        w = "already in this type";
    if (t->wanted >= QF_AFFINE_CODE_BASE)
        w = "affine type";
    o = (size_t)snprintf(buf, cap, "%s", w);
    if (t->pattern && o < cap)
        o += (size_t)snprintf(buf + o, cap - o, " /%s/", t->pattern);
    if (t->fallback && o < cap)
        o += (size_t)snprintf(buf + o, cap - o, "; fallback from %s (%" PRIu64 " columns)%s",
                              qf_quantize_type_name(t->wanted), t->ne[0],
                              t->llama_fails ? ", where llama.cpp stops" : "");
    if (t->requantize && o < cap)
        o += (size_t)snprintf(buf + o, cap - o, "; requantized from %s", qf_ggml_type_name(t->in_type));
    if (t->budget && o < cap)
        o += (size_t)snprintf(buf + o, cap - o, "; size budget");
    if (t->imatrix && o < cap)
        (void)snprintf(buf + o, cap - o, "; imatrix");
    return buf;
}

/* "Q5_0 x 20, Q8_0 x 10, F32 x 11": counts per written type, in type-id
 * order (ggml types, then the affine types). */
static void type_counts(const qf_quantize *q, char *buf, size_t cap)
{
    enum { NT = QF_GGML_TYPE_COUNT + QF_AFFINE_CODE_COUNT };
    int64_t counts[NT] = { 0 }, i;
    size_t o = 0;
    int t;
    buf[0] = '\0';
    for (i = 0; i < qf_quantize_tensor_count(q); i++) {
        t = qf_quantize_tensor_at(q, i)->type;
        counts[t >= QF_AFFINE_CODE_BASE ? QF_GGML_TYPE_COUNT + t - QF_AFFINE_CODE_BASE : t]++;
    }
    for (t = 0; t < NT; t++)
        if (counts[t] && o < cap)
            o += (size_t)snprintf(buf + o, cap - o, "%s%s x %" PRId64, o ? ", " : "",
                                  qf_quantize_type_name(t < QF_GGML_TYPE_COUNT ? t
                                                        : QF_AFFINE_CODE_BASE + t - QF_GGML_TYPE_COUNT),
                                  counts[t]);
}

static void warn_plan(const qf_quantize *q)
{
    int64_t i, n = qf_quantize_tensor_count(q), quiet_fb = 0;
    qf_quantize_totals tt;

    qf_quantize_get_totals(q, &tt);
    for (i = 0; i < n; i++) {
        const qf_quantize_tensor *t = qf_quantize_tensor_at(q, i);
        const qf_ggml_traits *tr = qf_ggml_type_traits(t->wanted);
        if (t->llama_fails)
            qf_cli_info(1, "warning: tensor \"%s\": %" PRIu64 " columns are not a multiple of %u "
                        "(%s): written as %s, where llama.cpp b4747 stops",
                        t->name, t->ne[0], tr ? tr->block_size : 0, qf_ggml_type_name(t->wanted),
                        qf_ggml_type_name(t->type));
        else if (t->fallback) {
            quiet_fb++;
            qf_cli_info(2, "fallback: tensor \"%s\": %" PRIu64 " columns, %s -> %s", t->name,
                        t->ne[0], qf_quantize_type_name(t->wanted), qf_quantize_type_name(t->type));
        }
        if (t->imatrix_missing)
            qf_cli_info(2, "imatrix: no entry for \"%s\": quantized without weights", t->name);
    }
    if (quiet_fb && qf_cli_verbosity < 2)
        qf_cli_info(1, "warning: %" PRId64 " tensor%s fell back to another type (rows not a "
                    "multiple of the block size or group), as llama.cpp does; -v lists them",
                    quiet_fb, quiet_fb == 1 ? "" : "s");
    if (tt.n_requantized)
        qf_cli_info(1, "warning: %" PRId64 " tensor%s already quantized: dequantized and "
                    "quantized again, which loses quality", tt.n_requantized,
                    tt.n_requantized == 1 ? " is" : "s are");
}

static void json_plan(const qf_quantize *q, const char *in, const char *out, const char *tname,
                      int ftype, int written, double secs)
{
    int64_t i, n = qf_quantize_tensor_count(q), entries, chunks;
    const char *dataset;
    qf_quantize_totals tt;
    qf_json j;

    qf_quantize_get_totals(q, &tt);
    qf_json_init(&j, stdout, 1);
    qf_json_obj_begin(&j);
    qf_json_key(&j, "input");
    qf_json_str(&j, in);
    qf_json_key(&j, "output");
    if (out)
        qf_json_str(&j, out);
    else
        qf_json_null(&j);
    qf_json_key(&j, "written");
    qf_json_bool(&j, written);
    qf_json_key(&j, "type");
    qf_json_str(&j, tname);
    qf_json_key(&j, "ftype");
    qf_json_i64(&j, ftype);
    qf_json_key(&j, "imatrix");
    if (qf_quantize_imatrix_info(q, &entries, &chunks, &dataset)) {
        qf_json_obj_begin(&j);
        qf_json_key(&j, "entries");
        qf_json_i64(&j, entries);
        qf_json_key(&j, "chunks");
        qf_json_i64(&j, chunks);
        qf_json_key(&j, "dataset");
        if (dataset)
            qf_json_str(&j, dataset);
        else
            qf_json_null(&j);
        qf_json_obj_end(&j);
    } else {
        qf_json_null(&j);
    }
    qf_json_key(&j, "tensors");
    qf_json_arr_begin(&j);
    for (i = 0; i < n; i++) {
        const qf_quantize_tensor *t = qf_quantize_tensor_at(q, i);
        char why[256];
        uint32_t d;
        qf_json_obj_begin(&j);
        qf_json_key(&j, "name");
        qf_json_str(&j, t->name);
        qf_json_key(&j, "shape");
        qf_json_arr_begin(&j);
        for (d = 0; d < t->n_dims; d++)
            qf_json_u64(&j, t->ne[d]);
        qf_json_arr_end(&j);
        qf_json_key(&j, "in_type");
        qf_json_str(&j, qf_ggml_type_name(t->in_type));
        qf_json_key(&j, "type");
        qf_json_str(&j, qf_quantize_type_name(t->type));
        qf_json_key(&j, "wanted");
        qf_json_str(&j, qf_quantize_type_name(t->wanted));
        qf_json_key(&j, "bytes");
        qf_json_u64(&j, t->out_bytes);
        qf_json_key(&j, "bpw");
        qf_json_f64(&j, bpw(t->out_bytes, t->n_elements));
        qf_json_key(&j, "quantized");
        qf_json_bool(&j, t->quantize);
        qf_json_key(&j, "fallback");
        qf_json_bool(&j, t->fallback);
        qf_json_key(&j, "llama_fails");
        qf_json_bool(&j, t->llama_fails);
        qf_json_key(&j, "requantized");
        qf_json_bool(&j, t->requantize);
        qf_json_key(&j, "imatrix");
        qf_json_bool(&j, t->imatrix);
        qf_json_key(&j, "why");
        qf_json_str(&j, why_text(t, why, sizeof why));
        qf_json_obj_end(&j);
    }
    qf_json_arr_end(&j);
    qf_json_key(&j, "totals");
    qf_json_obj_begin(&j);
    qf_json_key(&j, "tensors");
    qf_json_i64(&j, tt.n_tensors);
    qf_json_key(&j, "quantized");
    qf_json_i64(&j, tt.n_quantized);
    qf_json_key(&j, "fallbacks");
    qf_json_i64(&j, tt.n_fallback);
    qf_json_key(&j, "llama_fails");
    qf_json_i64(&j, tt.n_llama_fails);
    qf_json_key(&j, "elements");
    qf_json_u64(&j, tt.n_elements);
    qf_json_key(&j, "bytes_in");
    qf_json_u64(&j, tt.in_bytes);
    qf_json_key(&j, "bytes_out");
    qf_json_u64(&j, tt.out_bytes);
    qf_json_key(&j, "bpw_in");
    qf_json_f64(&j, bpw(tt.in_bytes, tt.n_elements));
    qf_json_key(&j, "bpw_out");
    qf_json_f64(&j, bpw(tt.out_bytes, tt.n_elements));
    qf_json_key(&j, "file_size");
    if (tt.file_size)
        qf_json_u64(&j, tt.file_size);
    else
        qf_json_null(&j); /* affine types, not written yet: a QFM's size depends on its codec */
    if (written) {
        qf_json_key(&j, "seconds");
        qf_json_f64(&j, secs);
    }
    qf_json_obj_end(&j);
    qf_json_obj_end(&j);
    qf_json_end(&j);
}

static void print_plan(const qf_quantize *q, const char *in, const char *tname)
{
    int64_t i, n = qf_quantize_tensor_count(q);
    qf_quantize_totals tt;
    char a[32], b[32], c[32], d[32], sh[96], why[256], types[1024];

    qf_quantize_get_totals(q, &tt);
    printf("%5s  %-34s %-16s %-6s %-9s %12s %6s  %s\n", "#", "tensor", "shape", "in", "type",
           "bytes", "bpw", "why");
    for (i = 0; i < n; i++) {
        const qf_quantize_tensor *t = qf_quantize_tensor_at(q, i);
        printf("%5" PRId64 "  %-34s %-16s %-6s %-9s %12" PRIu64 " %6.2f  %s\n", i + 1, t->name,
               shape(t, sh, sizeof sh), qf_ggml_type_name(t->in_type), qf_quantize_type_name(t->type),
               t->out_bytes, bpw(t->out_bytes, t->n_elements), why_text(t, why, sizeof why));
    }
    type_counts(q, types, sizeof types);
    printf("\n%s -> %s: %s tensors (%s), %s weights\n", in, tname,
           qf_cli_commas((uint64_t)tt.n_tensors, a, sizeof a), types,
           qf_cli_commas(tt.n_elements, b, sizeof b));
    if (qf_quantize_has_affine(q))
        printf("tensor data %s -> %s bytes (%.2f -> %.2f bpw); a QFM only (its size depends on "
               "the codec)\n",
               qf_cli_commas(tt.in_bytes, a, sizeof a), qf_cli_commas(tt.out_bytes, b, sizeof b),
               bpw(tt.in_bytes, tt.n_elements), bpw(tt.out_bytes, tt.n_elements));
    else
        printf("tensor data %s -> %s bytes (%.2f -> %.2f bpw); file %s bytes (%.2f bpw)\n",
               qf_cli_commas(tt.in_bytes, a, sizeof a), qf_cli_commas(tt.out_bytes, b, sizeof b),
               bpw(tt.in_bytes, tt.n_elements), bpw(tt.out_bytes, tt.n_elements),
               qf_cli_commas(tt.file_size, c, sizeof c), bpw(tt.file_size, tt.n_elements));
    if (tt.n_fallback)
        printf("fallbacks: %s (%s where llama.cpp stops)\n",
               qf_cli_commas((uint64_t)tt.n_fallback, d, sizeof d),
               qf_cli_commas((uint64_t)tt.n_llama_fails, a, sizeof a));
}

static void print_summary(const qf_quantize *q, const char *out, const char *tname, int ftype,
                          double secs)
{
    qf_quantize_totals tt;
    char a[32], b[32], c[32], d[32], types[1024];
    int64_t entries, chunks;

    if (qf_cli_verbosity < 1)
        return;
    qf_quantize_get_totals(q, &tt);
    type_counts(q, types, sizeof types);
    qf_cli_info(1, "wrote %s: %s (general.file_type %d), %s bytes", out, tname, ftype,
                qf_cli_commas(tt.file_size, a, sizeof a));
    fprintf(stderr, "  tensors    %" PRId64 ": %s\n", tt.n_tensors, types);
    fprintf(stderr, "  size       %s -> %s (%.2f -> %.2f bits per weight)\n",
            qf_cli_human(tt.in_bytes, a, sizeof a), qf_cli_human(tt.out_bytes, b, sizeof b),
            bpw(tt.in_bytes, tt.n_elements), bpw(tt.out_bytes, tt.n_elements));
    if (tt.n_fallback)
        fprintf(stderr, "  fallbacks  %" PRId64 " (rows not a multiple of the block size or group), %" PRId64
                        " of them where llama.cpp stops\n",
                tt.n_fallback, tt.n_llama_fails);
    if (qf_quantize_imatrix_info(q, &entries, &chunks, NULL))
        fprintf(stderr, "  imatrix    %" PRId64 " entries, %" PRId64 " chunks: weights for %" PRId64
                        " tensors, %" PRId64 " without\n",
                entries, chunks, tt.n_imatrix_used, tt.n_imatrix_missing);
    fprintf(stderr, "  time       %.2f s, %s/s of input (%s/s written)\n", secs,
            qf_cli_human(secs > 0 ? (uint64_t)((double)tt.in_bytes / secs) : 0, c, sizeof c),
            qf_cli_human(secs > 0 ? (uint64_t)((double)tt.out_bytes / secs) : 0, d, sizeof d));
}

/* ---------------------------------------------------------------------
 * Output: GGUF or QFM
 * ------------------------------------------------------------------- */

/* Where the model goes (plain value struct). */
typedef struct out_format {
    int qfm;             /* 1: a QFM */
    qf_qfm_opts qo;      /* its codec and level */
    const char *in_arg;  /* IN as given: hashed into the QFM's provenance */
    int argc;            /* the command line, for the provenance */
    char **argv;
} out_format;

/* Write plan q to `out` as f says. `tname` names the recipe's type,
 * `budget_json` (may be NULL) summarizes a size budget. */
static int write_model(qf_quantize *q, const char *out, int force, const char *manifest,
                       const out_format *f, const char *tname, const char *budget_json,
                       progress_state *prog, qf_err *err)
{
    qf_quantize_qfm_opts o;

    if (!f->qfm)
        return qf_quantize_write(q, out, force ? QF_OUT_FORCE : 0, manifest, on_progress, prog, err);
    qf_quantize_qfm_opts_init(&o);
    o.qfm = f->qo;
    o.type_name = tname;
    o.sources = &f->in_arg;
    o.n_sources = 1;
    o.argc = f->argc;
    o.argv = f->argv;
    o.budget_json = budget_json;
    return qf_quantize_write_qfm(q, out, force ? QF_OUT_FORCE : 0, &o, on_progress, prog, err);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* ---------------------------------------------------------------------
 * Size budgets: --target-size, --target-bpw, --max-memory
 * ------------------------------------------------------------------- */

enum { TARGET_NONE = 0, TARGET_SIZE, TARGET_BPW, TARGET_MEMORY };

typedef struct budget_args {
    int target;             /* TARGET_* */
    uint64_t size;          /* --target-size or --max-memory, bytes */
    double bpw;             /* --target-bpw */
    uint64_t ctx;           /* --ctx (tokens), for --max-memory */
    const char *plan_in;    /* --plan */
    const char *plan_out;   /* --save-plan */
    uint64_t sample_rows;   /* --sample-rows */
    const char *calibrate;  /* --calibrate TEXT */
    uint64_t calib_chunks;  /* --calibrate-chunks */
    uint64_t calib_ctx;     /* --calibrate-ctx */
    int types[QF_BUDGET_MAX_TYPES];
    int n_types;            /* 0: the default candidate list */
} budget_args;

/* What the plan's metadata keys say (the values are fixed-size, so the
 * header's size does not depend on them). */
typedef struct plan_kv {
    const char *target;     /* "size", "bpw", "memory" */
    uint64_t target_bytes;  /* the file size, tensor data or memory asked for */
    uint64_t tensor_bytes;  /* tensor data chosen, padded */
    double error;           /* summed score */
    uint32_t sample_rows;
} plan_kv;

static int add_plan_kv(void *ctx, qf_gguf_writer *w, qf_err *err)
{
    const plan_kv *k = ctx;
    int rc;
    if ((rc = qf_gguf_writer_set_str(w, "quantize.plan.target", k->target, err)) != 0 ||
        (rc = qf_gguf_writer_set_u64(w, "quantize.plan.target_bytes", k->target_bytes, err)) != 0 ||
        (rc = qf_gguf_writer_set_u64(w, "quantize.plan.tensor_bytes", k->tensor_bytes, err)) != 0 ||
        (rc = qf_gguf_writer_set_f64(w, "quantize.plan.error", k->error, err)) != 0 ||
        (rc = qf_gguf_writer_set_u32(w, "quantize.plan.sample_rows", k->sample_rows, err)) != 0)
        return rc;
    return 0;
}

/* "Q2_K,q4_k,Q8_0" into ggml types. */
static int parse_types(const char *s, budget_args *b)
{
    char buf[512], *tok, *save = NULL;
    if (strlen(s) >= sizeof buf)
        return qf_cli_usage_error("--types: list too long");
    strcpy(buf, s);
    b->n_types = 0;
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int t = qf_ggml_type_from_name(tok), i;
        if (t < 0 || !qf_quant_can_quantize(t) || t == QF_GGML_F32)
            return qf_cli_usage_error("--types: '%s' is not a type qforge quantizes to", tok);
        for (i = 0; i < b->n_types; i++)
            if (b->types[i] == t)
                break;
        if (i < b->n_types)
            continue;
        if (b->n_types == QF_BUDGET_MAX_TYPES)
            return qf_cli_usage_error("--types: at most %d types", QF_BUDGET_MAX_TYPES);
        b->types[b->n_types++] = t;
    }
    if (b->n_types == 0)
        return qf_cli_usage_error("--types: empty list");
    return 0;
}

static uint64_t src_hparam(const qf_source *s, const char *arch, const char *suffix, uint64_t dflt)
{
    char key[160];
    uint64_t v;
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return qf_source_get_uint(s, key, &v, NULL) == 0 ? v : dflt;
}

/* The memory a run needs beside the weights (llama.cpp, CPU, one sequence):
 *   kv      = n_ctx * n_layer * n_head_kv * (head_dim_k + head_dim_v) * 2 bytes (F16 cache)
 *   compute = 4 * n_ub * (n_vocab + 2 n_embd + 2 n_ff + n_head * n_ctx) bytes, n_ub =
 *             min(n_ctx, 512): the F32 logits of a micro-batch, its residual and
 *             normed activations, the FFN's two intermediates and one layer's
 *             attention scores. */
typedef struct mem_split {
    uint64_t kv, compute;
    uint64_t n_layer, n_head, n_head_kv, head_k, head_v, n_embd, n_ff, n_vocab, n_ub;
} mem_split;

static void memory_split(const qf_source *src, uint64_t n_ctx, mem_split *m)
{
    const char *a = NULL;
    uint64_t alen = 0;
    char arch[64] = "";
    int64_t te;

    memset(m, 0, sizeof *m);
    if (qf_source_get_str(src, "general.architecture", &a, &alen, NULL) == 0 && alen < sizeof arch)
        memcpy(arch, a, (size_t)alen), arch[alen] = '\0';
    m->n_layer = src_hparam(src, arch, "block_count", 0);
    m->n_head = src_hparam(src, arch, "attention.head_count", 0);
    m->n_head_kv = src_hparam(src, arch, "attention.head_count_kv", m->n_head);
    m->n_embd = src_hparam(src, arch, "embedding_length", 0);
    m->n_ff = src_hparam(src, arch, "feed_forward_length", 0);
    m->head_k = src_hparam(src, arch, "attention.key_length", m->n_head ? m->n_embd / m->n_head : 0);
    m->head_v = src_hparam(src, arch, "attention.value_length", m->head_k);
    te = qf_source_find_tensor(src, "token_embd.weight");
    m->n_vocab = te >= 0 ? qf_source_tensor_at(src, te)->ne[1] : 0;
    m->n_ub = n_ctx < 512 ? n_ctx : 512;
    m->kv = n_ctx * m->n_layer * m->n_head_kv * (m->head_k + m->head_v) * 2;
    m->compute = 4 * m->n_ub * (m->n_vocab + 2 * m->n_embd + 2 * m->n_ff + m->n_head * n_ctx);
}

/* The mix that best names a budget's result in general.file_type: the
 * quantized type holding the most bytes. */
static int dominant_ftype(const qf_quantize *q)
{
    static const struct { int type, ftype; } MAP[] = {
        { QF_GGML_Q2_K, QF_FTYPE_Q2_K },     { QF_GGML_Q3_K, QF_FTYPE_Q3_K_M },
        { QF_GGML_Q4_K, QF_FTYPE_Q4_K_M },   { QF_GGML_Q5_K, QF_FTYPE_Q5_K_M },
        { QF_GGML_Q6_K, QF_FTYPE_Q6_K },     { QF_GGML_Q8_0, QF_FTYPE_Q8_0 },
        { QF_GGML_IQ4_XS, QF_FTYPE_IQ4_XS }, { QF_GGML_IQ4_NL, QF_FTYPE_IQ4_NL },
        { QF_GGML_Q4_0, QF_FTYPE_Q4_0 },     { QF_GGML_Q4_1, QF_FTYPE_Q4_1 },
        { QF_GGML_Q5_0, QF_FTYPE_Q5_0 },     { QF_GGML_Q5_1, QF_FTYPE_Q5_1 },
        { QF_GGML_F16, QF_FTYPE_F16 },       { QF_GGML_BF16, QF_FTYPE_BF16 },
    };
    uint64_t bytes[sizeof MAP / sizeof MAP[0]] = { 0 }, best = 0;
    int64_t i;
    size_t k, bk = sizeof MAP;
    for (i = 0; i < qf_quantize_tensor_count(q); i++) {
        const qf_quantize_tensor *t = qf_quantize_tensor_at(q, i);
        for (k = 0; k < sizeof MAP / sizeof MAP[0]; k++)
            if (t->quantize && MAP[k].type == t->type)
                bytes[k] += t->out_bytes;
    }
    for (k = 0; k < sizeof MAP / sizeof MAP[0]; k++)
        if (bytes[k] > best) {
            best = bytes[k];
            bk = k;
        }
    return bk < sizeof MAP / sizeof MAP[0] ? MAP[bk].ftype : QF_FTYPE_F32;
}

static uint64_t padded_data(const qf_quantize *q, uint32_t align)
{
    uint64_t s = 0;
    for (int64_t i = 0; i < qf_quantize_tensor_count(q); i++)
        s += (qf_quantize_tensor_at(q, i)->out_bytes + align - 1) / align * align;
    return s;
}

typedef struct measure_progress {
    qf_progress *bar;
    uint64_t last;
} measure_progress;

static void on_measure(void *ctx, uint64_t done, uint64_t total)
{
    measure_progress *p = ctx;
    (void)total;
    qf_progress_add(p->bar, done - p->last);
    p->last = done;
}

static void print_budget_plan(const qf_quantize *q, const qf_budget_plan *bp, const char *in,
                              const plan_kv *kv, const qf_budget_solution *sol)
{
    int64_t i, n = qf_quantize_tensor_count(q);
    qf_quantize_totals tt;
    char a[32], b[32], c[32], sh[96], types[1024];

    qf_quantize_get_totals(q, &tt);
    printf("%5s  %-34s %-16s %-6s %12s %6s %12s\n", "#", "tensor", "shape", "type", "bytes", "bpw",
           "est. error");
    for (i = 0; i < n; i++) {
        const qf_quantize_tensor *t = qf_quantize_tensor_at(q, i);
        const qf_budget_tensor *bt = qf_budget_plan_at(bp, t->source_index);
        double e = 0.0;
        int k;
        for (k = 0; bt && k < bt->n_cand; k++)
            if (bt->cand[k].type == t->type)
                e = qf_budget_plan_score(bp, t->source_index, k);
        printf("%5" PRId64 "  %-34s %-16s %-6s %12" PRIu64 " %6.2f %12.4g\n", i + 1, t->name,
               shape(t, sh, sizeof sh), qf_ggml_type_name(t->type), t->out_bytes,
               bpw(t->out_bytes, t->n_elements), e);
    }
    type_counts(q, types, sizeof types);
    printf("\n%s -> size budget (%s): %s tensors (%s), %s weights\n", in, kv->target,
           qf_cli_commas((uint64_t)tt.n_tensors, a, sizeof a), types,
           qf_cli_commas(tt.n_elements, b, sizeof b));
    printf("tensor data %s bytes (%.3f bpw), file %s bytes; estimated error %.6g%s\n",
           qf_cli_commas(tt.out_bytes, a, sizeof a), bpw(tt.out_bytes, tt.n_elements),
           qf_cli_commas(tt.file_size, b, sizeof b), sol->score,
           sol->exact ? " (optimal for the measured errors)" : "");
    printf("reachable tensor data: %s to %s bytes (padded)\n",
           qf_cli_commas(sol->min_bytes, a, sizeof a), qf_cli_commas(sol->max_bytes, c, sizeof c));
}

static void json_budget(const qf_quantize *q, const qf_budget_plan *bp, const char *in,
                        const char *out, int written, const plan_kv *kv,
                        const qf_budget_solution *sol, const mem_split *ms)
{
    int64_t i, n = qf_quantize_tensor_count(q);
    qf_quantize_totals tt;
    qf_json j;

    qf_quantize_get_totals(q, &tt);
    qf_json_init(&j, stdout, 1);
    qf_json_obj_begin(&j);
    qf_json_key(&j, "input");
    qf_json_str(&j, in);
    qf_json_key(&j, "output");
    if (out)
        qf_json_str(&j, out);
    else
        qf_json_null(&j);
    qf_json_key(&j, "written");
    qf_json_bool(&j, written);
    qf_json_key(&j, "target");
    qf_json_str(&j, kv->target);
    qf_json_key(&j, "target_bytes");
    qf_json_u64(&j, kv->target_bytes);
    if (ms) {
        qf_json_key(&j, "kv_cache_bytes");
        qf_json_u64(&j, ms->kv);
        qf_json_key(&j, "compute_bytes");
        qf_json_u64(&j, ms->compute);
    }
    qf_json_key(&j, "tensors");
    qf_json_arr_begin(&j);
    for (i = 0; i < n; i++) {
        const qf_quantize_tensor *t = qf_quantize_tensor_at(q, i);
        const qf_budget_tensor *bt = qf_budget_plan_at(bp, t->source_index);
        double e = 0.0;
        int k;
        for (k = 0; bt && k < bt->n_cand; k++)
            if (bt->cand[k].type == t->type)
                e = qf_budget_plan_score(bp, t->source_index, k);
        qf_json_obj_begin(&j);
        qf_json_key(&j, "name");
        qf_json_str(&j, t->name);
        qf_json_key(&j, "type");
        qf_json_str(&j, qf_ggml_type_name(t->type));
        qf_json_key(&j, "bytes");
        qf_json_u64(&j, t->out_bytes);
        qf_json_key(&j, "error");
        qf_json_f64(&j, e);
        qf_json_obj_end(&j);
    }
    qf_json_arr_end(&j);
    qf_json_key(&j, "tensor_bytes");
    qf_json_u64(&j, tt.out_bytes);
    qf_json_key(&j, "file_size");
    qf_json_u64(&j, tt.file_size);
    qf_json_key(&j, "bpw");
    qf_json_f64(&j, bpw(tt.out_bytes, tt.n_elements));
    qf_json_key(&j, "error");
    qf_json_f64(&j, sol->score);
    qf_json_key(&j, "optimal");
    qf_json_bool(&j, sol->exact);
    qf_json_obj_end(&j);
    qf_json_end(&j);
}

static void on_calibrated(void *ctx, const qf_calibrate_kind *k)
{
    (void)ctx;
    qf_cli_info(1, "calibration: %-18s %3d tensors, err/signal %.4g, KLD %.4g: sensitivity %.4g",
                qf_budget_kind_name(k->kind), k->n_tensors, k->rel_err, k->kld, k->sensitivity);
}

/* Quantize `in` to the types that fit the budget best. `opts` carries
 * threads and the imatrix; `out` may be NULL (dry run or measure only). */
static int run_budget(const budget_args *ba, qf_quantize_opts *opts, const char *in,
                      const char *out, int dry, int json, int force, const out_format *fmt)
{
    qf_source *src = NULL;
    qf_budget_plan *bp = NULL;
    qf_quantize *q = NULL;
    qf_err err = { 0 };
    int *types = NULL, rc = QF_EXIT_FAIL;
    int64_t i, n;
    uint64_t allowed = 0, data_budget = 0, overhead, n_elements = 0, v;
    uint32_t align = 32;
    plan_kv kv = { "size", 0, 0, 0.0, 0 };
    qf_budget_solution sol;
    mem_split ms;
    char a[32], b[32], c[32], d[32];

    if (qf_tool_model_path(in, &in, &err) != 0 || qf_source_open(in, &src, &err) != 0) {
        qf_cli_report(&err);
        goto done;
    }
    if (ba->plan_in) {
        if (qf_budget_plan_load(ba->plan_in, src, opts->imatrix, &bp, &err) != 0) {
            qf_cli_report(&err);
            goto done;
        }
    } else {
        qf_budget_opts bo;
        measure_progress mp = { NULL, 0 };
        struct timespec t0, t1;
        qf_budget_opts_init(&bo);
        bo.types = ba->n_types ? ba->types : NULL;
        bo.n_types = ba->n_types;
        bo.imatrix = opts->imatrix;
        bo.threads = opts->threads;
        bo.sample_rows = ba->sample_rows;
        mp.bar = qf_progress_new("measuring", (uint64_t)qf_source_tensor_count(src));
        clock_gettime(CLOCK_MONOTONIC, &t0);
        rc = qf_budget_measure(src, &bo, &bp, on_measure, &mp, &err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        qf_progress_free(mp.bar);
        if (rc != 0) {
            rc = QF_EXIT_FAIL;
            qf_cli_report(&err);
            goto done;
        }
        rc = QF_EXIT_FAIL;
        qf_cli_info(2, "measured %" PRId64 " tensors in %.2f s", qf_budget_plan_count(bp),
                    (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9);
    }
    if (ba->calibrate) {
        qf_calibrate_opts co;
        const char *tmp = getenv("TMPDIR");
        struct timespec t0, t1;
        co.text = ba->calibrate;
        co.n_ctx = (int64_t)ba->calib_ctx;
        co.max_chunks = (int64_t)ba->calib_chunks;
        co.threads = opts->threads;
        co.imatrix = opts->imatrix;
        co.tmp_dir = tmp && *tmp ? tmp : "/tmp";
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (qf_budget_calibrate(src, bp, &co, on_calibrated, NULL, &err) != 0) {
            qf_cli_report(&err);
            goto done;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        qf_cli_info(1, "calibrated on %s in %.1f s", ba->calibrate,
                    (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9);
    }
    if (ba->plan_out) {
        if (qf_budget_plan_save(bp, ba->plan_out, force ? QF_OUT_FORCE : 0, &err) != 0) {
            qf_cli_report(&err);
            goto done;
        }
        qf_cli_info(1, "wrote %s", ba->plan_out);
    }
    if (ba->target == TARGET_NONE) { /* measure only */
        rc = 0;
        goto done;
    }

    /* the header's size: any choice of types gives the same one */
    n = qf_budget_plan_count(bp);
    types = malloc((size_t)(n ? n : 1) * sizeof *types);
    if (!types) {
        qf_cli_error("out of memory");
        goto done;
    }
    for (i = 0; i < n; i++) {
        const qf_budget_tensor *t = qf_budget_plan_at(bp, i);
        types[i] = t->fixed ? -1 : t->cand[0].type;
        n_elements += t->ne[0] * t->rows;
    }
    for (i = 0; i < ba->n_types; i++)
        allowed |= 1ull << ba->types[i];
    if (!ba->n_types)
        allowed = ~0ull;
    if (qf_source_get_uint(src, "general.alignment", &v, NULL) == 0 && v > 0 && v <= (1u << 30) &&
        !(v & (v - 1)))
        align = (uint32_t)v;
    kv.sample_rows = (uint32_t)qf_budget_plan_sample_rows(bp);
    /* the header's size depends on this string: set before it is measured */
    kv.target = ba->target == TARGET_BPW ? "bpw" : ba->target == TARGET_MEMORY ? "memory" : "size";
    opts->ftype = QF_FTYPE_Q8_0;
    opts->source_types = types;
    opts->extra_kv = add_plan_kv;
    opts->extra_kv_ctx = &kv;
    if (qf_quantize_plan(src, opts, &q, &err) != 0) {
        qf_cli_report(&err);
        goto done;
    }
    {
        qf_quantize_totals tt;
        qf_quantize_get_totals(q, &tt);
        overhead = tt.file_size - padded_data(q, align);
    }
    qf_quantize_free(q);
    q = NULL;

    memset(&ms, 0, sizeof ms);
    switch (ba->target) {
    case TARGET_SIZE:
        kv.target_bytes = ba->size;
        data_budget = ba->size > overhead ? ba->size - overhead : 0;
        break;
    case TARGET_BPW:
        data_budget = (uint64_t)(ba->bpw * (double)n_elements / 8.0);
        kv.target_bytes = data_budget;
        break;
    case TARGET_MEMORY:
        kv.target_bytes = ba->size;
        memory_split(src, ba->ctx, &ms);
        data_budget = ba->size > overhead + ms.kv + ms.compute ? ba->size - overhead - ms.kv - ms.compute : 0;
        break;
    }
    if (qf_budget_plan_solve(bp, data_budget, align, allowed, types, &sol, &err) != 0) {
        if (err.code == QF_ELIMIT) {
            uint64_t extra = ba->target == TARGET_SIZE ? overhead
                           : ba->target == TARGET_MEMORY ? overhead + ms.kv + ms.compute : 0;
            if (ba->target == TARGET_BPW)
                qf_cli_error("%s: --target-bpw %g is below the smallest reachable %.4f bpw "
                             "(%s bytes of tensor data)", in, ba->bpw,
                             (double)sol.min_bytes * 8.0 / (double)n_elements,
                             qf_cli_commas(sol.min_bytes, a, sizeof a));
            else
                qf_cli_error("%s: %s %s bytes is below the smallest reachable %s bytes", in,
                             ba->target == TARGET_SIZE ? "--target-size" : "--max-memory",
                             qf_cli_commas(ba->size, a, sizeof a),
                             qf_cli_commas(sol.min_bytes + extra, b, sizeof b));
        } else {
            qf_cli_report(&err);
        }
        goto done;
    }
    kv.tensor_bytes = sol.data_bytes;
    kv.error = sol.score;

    /* the real plan: twice, the second with the general.file_type that
     * names the result (the header keeps its size) */
    if (qf_quantize_plan(src, opts, &q, &err) != 0) {
        qf_cli_report(&err);
        goto done;
    }
    opts->ftype = dominant_ftype(q);
    qf_quantize_free(q);
    q = NULL;
    if (qf_quantize_plan(src, opts, &q, &err) != 0) {
        qf_cli_report(&err);
        goto done;
    }
    {
        qf_quantize_totals tt;
        qf_quantize_get_totals(q, &tt);
        if (padded_data(q, align) != sol.data_bytes || tt.file_size != overhead + sol.data_bytes) {
            qf_cli_error("%s: internal error: planned %" PRIu64 " bytes, the allocator counted %"
                         PRIu64, in, tt.file_size, overhead + sol.data_bytes);
            goto done;
        }
        if (ba->target == TARGET_MEMORY)
            qf_cli_info(1, "memory %s: weights (file) %s + KV cache %s (%" PRIu64 " tokens, F16) + "
                        "compute %s", qf_cli_commas(ba->size, a, sizeof a),
                        qf_cli_commas(tt.file_size, b, sizeof b),
                        qf_cli_commas(ms.kv, c, sizeof c), ba->ctx,
                        qf_cli_commas(ms.compute, d, sizeof d));
    }
    if (dry) {
        if (json)
            json_budget(q, bp, in, out, 0, &kv, &sol, ba->target == TARGET_MEMORY ? &ms : NULL);
        else
            print_budget_plan(q, bp, in, &kv, &sol);
        rc = 0;
        goto done;
    }
    {
        progress_state prog = { NULL, 0 };
        qf_quantize_totals tt;
        char summary[1536], types_s[1024], err_s[32];
        qf_quantize_get_totals(q, &tt);
        type_counts(q, types_s, sizeof types_s);
        if (isfinite(kv.error)) /* a JSON number */
            snprintf(err_s, sizeof err_s, "%.9g", kv.error);
        else
            snprintf(err_s, sizeof err_s, "null");
        /* the recipe's "budget" (a QFM); the type names are plain ASCII */
        snprintf(summary, sizeof summary,
                 "{\"target\": \"%s\", \"target_bytes\": %" PRIu64 ", \"tensor_bytes\": %" PRIu64
                 ", \"error\": %s, \"optimal\": %s, \"sample_rows\": %" PRIu32
                 ", \"saved_plan_reused\": %s, \"calibrated\": %s, \"types\": \"%s\"}",
                 kv.target, kv.target_bytes, kv.tensor_bytes, err_s, sol.exact ? "true" : "false",
                 kv.sample_rows, ba->plan_in ? "true" : "false", ba->calibrate ? "true" : "false",
                 types_s);
        prog.bar = qf_progress_new("quantizing", tt.out_bytes);
        rc = write_model(q, out, force, NULL, fmt, "size budget", summary, &prog, &err);
        qf_progress_free(prog.bar);
        qf_quantize_get_totals(q, &tt);
        if (rc != 0) {
            rc = QF_EXIT_FAIL;
            qf_cli_report(&err);
            goto done;
        }
        if (json)
            json_budget(q, bp, in, out, 1, &kv, &sol, ba->target == TARGET_MEMORY ? &ms : NULL);
        qf_cli_info(1, "wrote %s: %s bytes (%.3f bpw of tensor data), estimated error %.6g", out,
                    qf_cli_commas(tt.file_size, a, sizeof a), bpw(tt.out_bytes, tt.n_elements),
                    sol.score);
    }
    rc = 0;
done:
    qf_quantize_free(q);
    qf_budget_plan_free(bp);
    qf_source_close(src);
    free(types);
    return rc;
}

/* ---------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------- */

static int parse_type(const char *opt, const char *s, int *out)
{
    int t = qf_ggml_type_from_name(s);
    if (t < 0 || !qf_quant_can_quantize(t))
        return qf_cli_usage_error("%s: expected a type qforge writes (F32, F16, BF16, Q4_0, Q4_1, "
                                  "Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, "
                                  "IQ4_XS), got '%s'", opt, s);
    *out = t;
    return 0;
}

/* A --tensor-type rule is checked when it is read, so a bad one is a usage
 * error. */
static int check_tensor_type(const char *spec)
{
    qf_mix_opts o = { QF_FTYPE_Q8_0, 0, 0, 0, -1, -1 };
    qf_mix_model m;
    qf_mix *mix = NULL;
    qf_err err = { 0 };
    int rc;

    memset(&m, 0, sizeof m);
    if (qf_mix_new(&o, &m, &mix, &err) != 0) {
        qf_cli_report(&err);
        return QF_EXIT_FAIL;
    }
    rc = qf_mix_add_override(mix, spec, &err);
    qf_mix_free(mix);
    if (rc == QF_ENOMEM) {
        qf_cli_report(&err);
        return QF_EXIT_FAIL;
    }
    return rc ? qf_cli_usage_error("%s", err.msg) : 0;
}

/* The budget options' usage rules: IN OUT (IN alone for --dry-run or a
 * measurement with --save-plan only); no TYPE, no mix options. */
static int budget_usage(const budget_args *ba, int npos, int dry, int mix_opts, int checksum,
                        int ctx_given)
{
    if (!ba->target && !ba->plan_out)
        return qf_cli_usage_error("--plan, --types and --calibrate need --target-size, "
                                  "--target-bpw, --max-memory or --save-plan");
    if (mix_opts)
        return qf_cli_usage_error("a size budget chooses every type: --pure, --tensor-type, "
                                  "--output-tensor-type, --token-embedding-type, "
                                  "--leave-output-tensor and --allow-requantize do not apply");
    if (checksum)
        return qf_cli_usage_error("--checksum is not available with a size budget");
    if (ctx_given && ba->target != TARGET_MEMORY)
        return qf_cli_usage_error("--ctx goes with --max-memory");
    if (ba->plan_in && ba->plan_out && !ba->calibrate)
        return qf_cli_usage_error("--plan and --save-plan: the plan is already saved");
    if (npos < 1)
        return qf_cli_usage_error("missing IN and OUT");
    if (npos > 2)
        return qf_cli_usage_error("with a size budget the arguments are IN OUT (no TYPE)");
    if (npos == 1 && ba->target && !dry)
        return qf_cli_usage_error("missing OUT (or --dry-run)");
    return 0;
}

int main(int argc, char **argv)
{
    enum { O_IMATRIX = 256, O_PURE, O_OUTTYPE, O_EMBTYPE, O_TTYPE, O_LEAVE, O_REQUANT, O_DRY,
           O_CHECKSUM, O_JSON, O_VERSION, O_TSIZE, O_TBPW, O_MAXMEM, O_CTX, O_TYPES, O_PLAN,
           O_SAVEPLAN, O_SAMPLE, O_CALIB, O_CALIB_CHUNKS, O_CALIB_CTX, O_FORMAT, O_CODEC,
           O_LEVEL };
    static const struct option longopts[] = {
        { "threads", required_argument, NULL, 't' },
        { "imatrix", required_argument, NULL, O_IMATRIX },
        { "pure", no_argument, NULL, O_PURE },
        { "output-tensor-type", required_argument, NULL, O_OUTTYPE },
        { "token-embedding-type", required_argument, NULL, O_EMBTYPE },
        { "tensor-type", required_argument, NULL, O_TTYPE },
        { "leave-output-tensor", no_argument, NULL, O_LEAVE },
        { "allow-requantize", no_argument, NULL, O_REQUANT },
        { "dry-run", no_argument, NULL, O_DRY },
        { "checksum", no_argument, NULL, O_CHECKSUM },
        { "json", no_argument, NULL, O_JSON },
        { "force", no_argument, NULL, 'f' },
        { "quiet", no_argument, NULL, 'q' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, O_VERSION },
        { "target-size", required_argument, NULL, O_TSIZE },
        { "target-bpw", required_argument, NULL, O_TBPW },
        { "max-memory", required_argument, NULL, O_MAXMEM },
        { "ctx", required_argument, NULL, O_CTX },
        { "types", required_argument, NULL, O_TYPES },
        { "plan", required_argument, NULL, O_PLAN },
        { "save-plan", required_argument, NULL, O_SAVEPLAN },
        { "sample-rows", required_argument, NULL, O_SAMPLE },
        { "calibrate", required_argument, NULL, O_CALIB },
        { "calibrate-chunks", required_argument, NULL, O_CALIB_CHUNKS },
        { "calibrate-ctx", required_argument, NULL, O_CALIB_CTX },
        { "format", required_argument, NULL, O_FORMAT },
        { "codec", required_argument, NULL, O_CODEC },
        { "level", required_argument, NULL, O_LEVEL },
        { NULL, 0, NULL, 0 },
    };
    qf_quantize_opts opts;
    const char **ttypes = NULL;
    const char *in, *out = NULL, *type_arg;
    int c, dry = 0, json = 0, checksum = 0, force = 0, rc = QF_EXIT_FAIL, npos, ftype;
    char *manifest = NULL;
    uint64_t v;
    qf_source *src = NULL;
    qf_quantize *plan = NULL;
    qf_err err = { 0 };
    progress_state prog = { NULL, 0 };
    struct timespec t0, t1;
    double secs;
    budget_args ba;
    int mix_opts = 0, ctx_given = 0, format = -1, codec_given = 0;
    out_format fmt;
    qf_affine aff;
    const char *tname;

    qf_cli_init(argv[0]);
    qf_quantize_opts_init(&opts);
    memset(&ba, 0, sizeof ba);
    ba.ctx = 4096;
    ba.sample_rows = QF_BUDGET_SAMPLE_ROWS;
    ba.calib_chunks = 16;
    ba.calib_ctx = 128;
    opts.threads = qf_cli_default_threads();
    ttypes = calloc((size_t)argc + 1, sizeof *ttypes);
    if (!ttypes) {
        qf_cli_error("out of memory");
        return QF_EXIT_FAIL;
    }
    opts.tensor_types = ttypes;
    memset(&fmt, 0, sizeof fmt);
    fmt.qo.codec = QF_QFM_ZSTD;
    fmt.qo.level = QF_QFM_DEFAULT_LEVEL;
    fmt.argc = argc;
    fmt.argv = argv;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":t:fqvh", longopts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (qf_cli_parse_u64(optarg, 1, 256, 0, &v) != 0) {
                rc = qf_cli_usage_error("--threads: expected 1..256, got '%s'", optarg);
                goto done;
            }
            opts.threads = (int)v;
            break;
        case O_IMATRIX: opts.imatrix = optarg; break;
        case O_PURE: opts.pure = 1; mix_opts = 1; break;
        case O_OUTTYPE:
            mix_opts = 1;
            if ((rc = parse_type("--output-tensor-type", optarg, &opts.output_tensor_type)) != 0)
                goto done;
            break;
        case O_EMBTYPE:
            mix_opts = 1;
            if ((rc = parse_type("--token-embedding-type", optarg, &opts.token_embedding_type)) != 0)
                goto done;
            break;
        case O_TTYPE:
            if ((rc = check_tensor_type(optarg)) != 0)
                goto done;
            ttypes[opts.n_tensor_types++] = optarg;
            mix_opts = 1;
            break;
        case O_LEAVE: opts.leave_output_tensor = 1; mix_opts = 1; break;
        case O_REQUANT: opts.allow_requantize = 1; mix_opts = 1; break;
        case O_TSIZE:
        case O_MAXMEM:
            if (ba.target) {
                rc = qf_cli_usage_error("give one of --target-size, --target-bpw, --max-memory");
                goto done;
            }
            if (qf_cli_parse_u64(optarg, 1, UINT64_MAX / 2, 1, &ba.size) != 0) {
                rc = qf_cli_usage_error("%s: expected a size in bytes (K, M, G suffixes: powers "
                                        "of 1024), got '%s'", c == O_TSIZE ? "--target-size" :
                                        "--max-memory", optarg);
                goto done;
            }
            ba.target = c == O_TSIZE ? TARGET_SIZE : TARGET_MEMORY;
            break;
        case O_TBPW: {
            char *end;
            if (ba.target) {
                rc = qf_cli_usage_error("give one of --target-size, --target-bpw, --max-memory");
                goto done;
            }
            ba.bpw = strtod(optarg, &end);
            if (end == optarg || *end || !(ba.bpw > 0.0 && ba.bpw <= 64.0)) {
                rc = qf_cli_usage_error("--target-bpw: expected bits per weight in (0, 64], got '%s'",
                                        optarg);
                goto done;
            }
            ba.target = TARGET_BPW;
            break;
        }
        case O_CTX:
            if (qf_cli_parse_u64(optarg, 1, (uint64_t)1 << 24, 1, &ba.ctx) != 0) {
                rc = qf_cli_usage_error("--ctx: expected 1..16M tokens, got '%s'", optarg);
                goto done;
            }
            ctx_given = 1;
            break;
        case O_TYPES:
            if ((rc = parse_types(optarg, &ba)) != 0)
                goto done;
            break;
        case O_PLAN: ba.plan_in = optarg; break;
        case O_CALIB: ba.calibrate = optarg; break;
        case O_CALIB_CHUNKS:
        case O_CALIB_CTX:
            if (qf_cli_parse_u64(optarg, c == O_CALIB_CTX ? 4 : 1, 1u << 20, 0,
                                 c == O_CALIB_CTX ? &ba.calib_ctx : &ba.calib_chunks) != 0) {
                rc = qf_cli_usage_error("%s: expected a number, got '%s'",
                                        c == O_CALIB_CTX ? "--calibrate-ctx" : "--calibrate-chunks",
                                        optarg);
                goto done;
            }
            break;
        case O_SAVEPLAN: ba.plan_out = optarg; break;
        case O_SAMPLE:
            if (qf_cli_parse_u64(optarg, 1, UINT32_MAX, 0, &ba.sample_rows) != 0) {
                rc = qf_cli_usage_error("--sample-rows: expected 1..4294967295, got '%s'", optarg);
                goto done;
            }
            break;
        case O_FORMAT:
            if (strcmp(optarg, "gguf") && strcmp(optarg, "qfm")) {
                rc = qf_cli_usage_error("--format: expected gguf or qfm, got '%s'", optarg);
                goto done;
            }
            format = !strcmp(optarg, "qfm");
            break;
        case O_CODEC:
            if (strcmp(optarg, "zstd") && strcmp(optarg, "raw")) {
                rc = qf_cli_usage_error("--codec: expected zstd or raw, got '%s'", optarg);
                goto done;
            }
            fmt.qo.codec = strcmp(optarg, "raw") ? QF_QFM_ZSTD : QF_QFM_RAW;
            codec_given = 1;
            break;
        case O_LEVEL:
            if (qf_cli_parse_u64(optarg, 1, 22, 0, &v) != 0) {
                rc = qf_cli_usage_error("--level: expected 1..22, got '%s'", optarg);
                goto done;
            }
            fmt.qo.level = (int)v;
            codec_given = 1;
            break;
        case O_DRY: dry = 1; break;
        case O_CHECKSUM: checksum = 1; break;
        case O_JSON: json = 1; break;
        case 'f': force = 1; break;
        case 'q': qf_cli_verbosity = 0; break;
        case 'v': qf_cli_verbosity++; break;
        case 'h': usage(stdout); rc = 0; goto done;
        case O_VERSION: qf_cli_version(); rc = 0; goto done;
        case ':':
            rc = qf_cli_usage_error("option '%s' needs an argument", argv[optind - 1]);
            goto done;
        default:
            rc = qf_cli_usage_error("unknown option '%s'", argv[optind - 1]);
            goto done;
        }
    }
    rc = QF_EXIT_USAGE;
    npos = argc - optind;
    /* the output's format: --format, else OUT's extension */
    out = npos >= 2 && !(npos == 2 && dry && !(ba.target || ba.plan_in || ba.plan_out ||
                                                ba.n_types || ba.calibrate))
              ? argv[optind + 1] : NULL;
    fmt.qfm = format >= 0 ? format : out && ends_with(out, ".qfm");
    fmt.in_arg = npos >= 1 ? argv[optind] : NULL;
    if (codec_given && !fmt.qfm) {
        rc = qf_cli_usage_error("--codec and --level go with a QFM output (OUT.qfm or --format qfm)");
        goto done;
    }
    if (checksum && fmt.qfm) {
        rc = qf_cli_usage_error("--checksum: a QFM carries its own digests (qforge-sum --check OUT)");
        goto done;
    }
    if (ba.target || ba.plan_in || ba.plan_out || ba.n_types || ba.calibrate) {
        if ((rc = budget_usage(&ba, npos, dry, mix_opts, checksum, ctx_given)) != 0)
            goto done;
        in = npos >= 1 ? argv[optind] : NULL;
        out = npos >= 2 ? argv[optind + 1] : NULL;
        if (out && !force && access(out, F_OK) == 0 && !dry && ba.target) {
            qf_cli_error("%s: already exists (use --force to overwrite)", out);
            rc = QF_EXIT_FAIL;
            goto done;
        }
        if (ba.plan_out && !force && access(ba.plan_out, F_OK) == 0) {
            qf_cli_error("%s: already exists (use --force to overwrite)", ba.plan_out);
            rc = QF_EXIT_FAIL;
            goto done;
        }
        rc = run_budget(&ba, &opts, in, dry ? NULL : out, dry, json, force, &fmt);
        goto done;
    }
    if (npos < 1) {
        rc = qf_cli_usage_error("missing IN, OUT and TYPE");
        goto done;
    }
    in = argv[optind];
    if (npos == 2 && dry) { /* --dry-run IN TYPE */
        type_arg = argv[optind + 1];
    } else if (npos < 3) {
        if (npos == 2 && (qf_mix_from_name(argv[optind + 1]) >= 0 ||
                          qf_affine_parse(argv[optind + 1], &aff) == 0))
            rc = qf_cli_usage_error("missing OUT: the arguments are IN OUT TYPE [NTHREADS]");
        else
            rc = qf_cli_usage_error("missing %s: the arguments are IN OUT TYPE [NTHREADS]",
                                    npos == 1 ? "OUT and TYPE" : "TYPE");
        goto done;
    } else {
        out = argv[optind + 1];
        type_arg = argv[optind + 2];
        if (npos > 4) {
            rc = qf_cli_usage_error("unexpected argument '%s'", argv[optind + 4]);
            goto done;
        }
        if (npos == 4) {
            if (qf_cli_parse_u64(argv[optind + 3], 0, 256, 0, &v) != 0) {
                rc = qf_cli_usage_error("NTHREADS: expected 0..256, got '%s'", argv[optind + 3]);
                goto done;
            }
            opts.threads = v ? (int)v : qf_cli_default_threads();
        }
    }
    if ((ftype = qf_mix_from_name(type_arg)) >= 0) {
        tname = qf_mix_name(ftype);
    } else if (qf_affine_parse(type_arg, &aff) == 0) {
        opts.affine = qf_affine_code(aff);
        ftype = QF_FTYPE_F16; /* written to general.file_type (quantize_model.h) */
        tname = qf_affine_name(aff);
        if (out && !fmt.qfm) {
            rc = qf_cli_usage_error("%s: %s is a QFM type (no GGUF can hold it): name OUT *.qfm or "
                                    "give --format qfm", out, tname);
            goto done;
        }
        if (opts.imatrix) {
            rc = qf_cli_usage_error("--imatrix: the affine type %s takes no importance matrix",
                                    tname);
            goto done;
        }
    } else {
        rc = qf_cli_usage_error("unknown TYPE '%s' (qforge-quantize --help lists them)", type_arg);
        goto done;
    }
    opts.ftype = ftype;
    rc = QF_EXIT_FAIL;

    if (checksum && out) {
        size_t n = strlen(out) + 8;
        if (!(manifest = malloc(n))) {
            qf_cli_error("out of memory");
            goto done;
        }
        snprintf(manifest, n, "%s.sha256", out);
    }
    if (!dry && !force) { /* fail before the work, not after it */
        if (access(out, F_OK) == 0) {
            qf_cli_error("%s: already exists (use --force to overwrite)", out);
            goto done;
        }
        if (manifest && access(manifest, F_OK) == 0) {
            qf_cli_error("%s: already exists (use --force to overwrite)", manifest);
            goto done;
        }
    }

    if (qf_tool_model_path(in, &in, &err) != 0 ||
        qf_source_open(in, &src, &err) != 0 || qf_quantize_plan(src, &opts, &plan, &err) != 0) {
        qf_cli_report(&err);
        goto done;
    }
    if (dry) {
        if (json)
            json_plan(plan, in, out, tname, ftype, 0, 0);
        else
            print_plan(plan, in, tname);
        fflush(stdout);
        warn_plan(plan);
        rc = 0;
        goto done;
    }
    warn_plan(plan); /* before the work, which may take long */

    {
        qf_quantize_totals tt;
        qf_quantize_get_totals(plan, &tt);
        prog.bar = qf_progress_new("quantizing", tt.out_bytes);
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (write_model(plan, out, force, manifest, &fmt, tname, NULL, &prog, &err) != 0) {
        qf_progress_free(prog.bar);
        qf_cli_report(&err);
        goto done;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    qf_progress_free(prog.bar);
    secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    if (json)
        json_plan(plan, in, out, tname, ftype, 1, secs);
    print_summary(plan, out, tname, ftype, secs);
    if (manifest)
        qf_cli_info(1, "wrote %s", manifest);
    rc = 0;
done:
    qf_quantize_free(plan);
    qf_source_close(src);
    free(manifest);
    free(ttypes);
    return rc;
}
