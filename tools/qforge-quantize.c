/*
 * qforge-quantize - a GGUF or a Hugging Face folder to a quantized GGUF with
 * llama.cpp's mixes, the same bytes llama-quantize writes; same positional
 * arguments and option names as llama-quantize.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "convert/quantize_model.h"
#include "convert/source.h"
#include "formats/file.h"
#include "formats/types.h"
#include "quantize/mix.h"
#include "quantize/quant.h"
#include "tools/cli.h"
#include "tools/model_open.h"

static void usage(FILE *f)
{
    const char *name, *desc;
    int i, ftype;

    fprintf(f,
            "Usage: qforge-quantize [options] IN OUT TYPE [NTHREADS]\n"
            "Quantize a model to one of llama.cpp's types, byte for byte as llama-quantize\n"
            "does. IN is a GGUF (F32, F16 or BF16 tensors) or a Hugging Face model folder,\n"
            "converted and quantized in one pass (the same bytes as converting to F32 first).\n"
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
            "  -f, --force                  replace OUT (and OUT.sha256) if it exists\n"
            "  -q, --quiet                  errors only\n"
            "  -v, --verbose                more messages (every fallback, imatrix misses)\n"
            "  -h, --help                   this help\n"
            "      --version                print the version\n"
            "\n"
            "Types (TYPE is a name, case-insensitive, or the number llama.cpp writes to\n"
            "general.file_type):\n",
            qf_cli_default_threads());
    for (i = 0; (name = qf_mix_list(i, &ftype, &desc)) != NULL; i++)
        fprintf(f, "  %2d  or  %-7s : %s\n", ftype, name, desc);
    fprintf(f,
            "\n"
            "A type a tensor cannot take (its row length is not a multiple of the block size)\n"
            "falls back as llama.cpp's does (Q4_K -> Q5_0, Q6_K -> Q8_0, ...), and to F16\n"
            "where llama.cpp would stop; every such tensor is reported.\n"
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
    o = (size_t)snprintf(buf, cap, "%s", w);
    if (t->pattern && o < cap)
        o += (size_t)snprintf(buf + o, cap - o, " /%s/", t->pattern);
    if (t->fallback && o < cap)
        o += (size_t)snprintf(buf + o, cap - o, "; fallback from %s (%" PRIu64 " columns)%s",
                              qf_ggml_type_name(t->wanted), t->ne[0],
                              t->llama_fails ? ", where llama.cpp stops" : "");
    if (t->requantize && o < cap)
        o += (size_t)snprintf(buf + o, cap - o, "; requantized from %s", qf_ggml_type_name(t->in_type));
    if (t->imatrix && o < cap)
        (void)snprintf(buf + o, cap - o, "; imatrix");
    return buf;
}

/* "Q5_0 x 20, Q8_0 x 10, F32 x 11": counts per written type, in type-id order. */
static void type_counts(const qf_quantize *q, char *buf, size_t cap)
{
    int64_t counts[QF_GGML_TYPE_COUNT] = { 0 }, i;
    size_t o = 0;
    int t;
    buf[0] = '\0';
    for (i = 0; i < qf_quantize_tensor_count(q); i++)
        counts[qf_quantize_tensor_at(q, i)->type]++;
    for (t = 0; t < QF_GGML_TYPE_COUNT; t++)
        if (counts[t] && o < cap)
            o += (size_t)snprintf(buf + o, cap - o, "%s%s x %" PRId64, o ? ", " : "",
                                  qf_ggml_type_name(t), counts[t]);
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
                        t->ne[0], qf_ggml_type_name(t->wanted), qf_ggml_type_name(t->type));
        }
        if (t->imatrix_missing)
            qf_cli_info(2, "imatrix: no entry for \"%s\": quantized without weights", t->name);
    }
    if (quiet_fb && qf_cli_verbosity < 2)
        qf_cli_info(1, "warning: %" PRId64 " tensor%s fell back to another type (rows not a "
                    "multiple of the block size), as llama.cpp does; -v lists them",
                    quiet_fb, quiet_fb == 1 ? "" : "s");
    if (tt.n_requantized)
        qf_cli_info(1, "warning: %" PRId64 " tensor%s already quantized: dequantized and "
                    "quantized again, which loses quality", tt.n_requantized,
                    tt.n_requantized == 1 ? " is" : "s are");
}

static void json_plan(const qf_quantize *q, const char *in, const char *out, int ftype,
                      int written, double secs)
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
    qf_json_str(&j, qf_mix_name(ftype));
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
        qf_json_str(&j, qf_ggml_type_name(t->type));
        qf_json_key(&j, "wanted");
        qf_json_str(&j, qf_ggml_type_name(t->wanted));
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
    qf_json_u64(&j, tt.file_size);
    if (written) {
        qf_json_key(&j, "seconds");
        qf_json_f64(&j, secs);
    }
    qf_json_obj_end(&j);
    qf_json_obj_end(&j);
    qf_json_end(&j);
}

static void print_plan(const qf_quantize *q, const char *in, int ftype)
{
    int64_t i, n = qf_quantize_tensor_count(q);
    qf_quantize_totals tt;
    char a[32], b[32], c[32], d[32], sh[96], why[256], types[1024];

    qf_quantize_get_totals(q, &tt);
    printf("%5s  %-34s %-16s %-6s %-6s %12s %6s  %s\n", "#", "tensor", "shape", "in", "type",
           "bytes", "bpw", "why");
    for (i = 0; i < n; i++) {
        const qf_quantize_tensor *t = qf_quantize_tensor_at(q, i);
        printf("%5" PRId64 "  %-34s %-16s %-6s %-6s %12" PRIu64 " %6.2f  %s\n", i + 1, t->name,
               shape(t, sh, sizeof sh), qf_ggml_type_name(t->in_type), qf_ggml_type_name(t->type),
               t->out_bytes, bpw(t->out_bytes, t->n_elements), why_text(t, why, sizeof why));
    }
    type_counts(q, types, sizeof types);
    printf("\n%s -> %s: %s tensors (%s), %s weights\n", in, qf_mix_name(ftype),
           qf_cli_commas((uint64_t)tt.n_tensors, a, sizeof a), types,
           qf_cli_commas(tt.n_elements, b, sizeof b));
    printf("tensor data %s -> %s bytes (%.2f -> %.2f bpw); file %s bytes (%.2f bpw)\n",
           qf_cli_commas(tt.in_bytes, a, sizeof a), qf_cli_commas(tt.out_bytes, b, sizeof b),
           bpw(tt.in_bytes, tt.n_elements), bpw(tt.out_bytes, tt.n_elements),
           qf_cli_commas(tt.file_size, c, sizeof c), bpw(tt.file_size, tt.n_elements));
    if (tt.n_fallback)
        printf("fallbacks: %s (%s where llama.cpp stops)\n",
               qf_cli_commas((uint64_t)tt.n_fallback, d, sizeof d),
               qf_cli_commas((uint64_t)tt.n_llama_fails, a, sizeof a));
}

static void print_summary(const qf_quantize *q, const char *out, int ftype, double secs)
{
    qf_quantize_totals tt;
    char a[32], b[32], c[32], d[32], types[1024];
    int64_t entries, chunks;

    if (qf_cli_verbosity < 1)
        return;
    qf_quantize_get_totals(q, &tt);
    type_counts(q, types, sizeof types);
    qf_cli_info(1, "wrote %s: %s (general.file_type %d), %s bytes", out, qf_mix_name(ftype), ftype,
                qf_cli_commas(tt.file_size, a, sizeof a));
    fprintf(stderr, "  tensors    %" PRId64 ": %s\n", tt.n_tensors, types);
    fprintf(stderr, "  size       %s -> %s (%.2f -> %.2f bits per weight)\n",
            qf_cli_human(tt.in_bytes, a, sizeof a), qf_cli_human(tt.out_bytes, b, sizeof b),
            bpw(tt.in_bytes, tt.n_elements), bpw(tt.out_bytes, tt.n_elements));
    if (tt.n_fallback)
        fprintf(stderr, "  fallbacks  %" PRId64 " (rows not a multiple of the block size), %" PRId64
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

int main(int argc, char **argv)
{
    enum { O_IMATRIX = 256, O_PURE, O_OUTTYPE, O_EMBTYPE, O_TTYPE, O_LEAVE, O_REQUANT, O_DRY,
           O_CHECKSUM, O_JSON, O_VERSION };
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

    qf_cli_init(argv[0]);
    qf_quantize_opts_init(&opts);
    opts.threads = qf_cli_default_threads();
    ttypes = calloc((size_t)argc + 1, sizeof *ttypes);
    if (!ttypes) {
        qf_cli_error("out of memory");
        return QF_EXIT_FAIL;
    }
    opts.tensor_types = ttypes;
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
        case O_PURE: opts.pure = 1; break;
        case O_OUTTYPE:
            if ((rc = parse_type("--output-tensor-type", optarg, &opts.output_tensor_type)) != 0)
                goto done;
            break;
        case O_EMBTYPE:
            if ((rc = parse_type("--token-embedding-type", optarg, &opts.token_embedding_type)) != 0)
                goto done;
            break;
        case O_TTYPE:
            if ((rc = check_tensor_type(optarg)) != 0)
                goto done;
            ttypes[opts.n_tensor_types++] = optarg;
            break;
        case O_LEAVE: opts.leave_output_tensor = 1; break;
        case O_REQUANT: opts.allow_requantize = 1; break;
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
    if (npos < 1) {
        rc = qf_cli_usage_error("missing IN, OUT and TYPE");
        goto done;
    }
    in = argv[optind];
    if (npos == 2 && dry) { /* --dry-run IN TYPE */
        type_arg = argv[optind + 1];
    } else if (npos < 3) {
        if (npos == 2 && qf_mix_from_name(argv[optind + 1]) >= 0)
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
    if ((ftype = qf_mix_from_name(type_arg)) < 0) {
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
            json_plan(plan, in, out, ftype, 0, 0);
        else
            print_plan(plan, in, ftype);
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
    if (qf_quantize_write(plan, out, force ? QF_OUT_FORCE : 0, manifest, on_progress, &prog,
                          &err) != 0) {
        qf_progress_free(prog.bar);
        qf_cli_report(&err);
        goto done;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    qf_progress_free(prog.bar);
    secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    if (json)
        json_plan(plan, in, out, ftype, 1, secs);
    print_summary(plan, out, ftype, secs);
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
