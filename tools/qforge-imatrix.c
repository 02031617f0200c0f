/*
 * qforge-imatrix - an importance matrix for qforge-quantize --imatrix (and
 * llama-quantize), computed as llama.cpp's llama-imatrix (b4747) computes
 * it, with the reference forward pass (verify/model.h):
 *
 *   - the text is tokenized with the model's tokenizer (BOS added as the
 *     model says, special-token text not parsed, one trailing newline of
 *     the file dropped) and cut into chunks of N_CTX tokens; a last partial
 *     chunk is dropped, and --chunks keeps the first N;
 *   - each chunk runs from an empty cache with its first token replaced by
 *     BOS (when the model adds BOS), in batches of up to 512 tokens
 *     (llama.cpp's default micro-batch);
 *   - before every product W x of a "blk.*" weight (and of output.weight
 *     with --process-output), the squares of x's columns are added up per
 *     column in float, over all tokens of the batch; a batch of fewer than
 *     16 tokens is skipped, as llama-imatrix skips it; ncall counts the
 *     batches;
 *   - the file holds, per matrix, (sum / tokens) * ncall (legacy .dat), or
 *     the sums and token counts (GGUF); quantize/imatrix.h has both formats.
 *
 * The perplexity of the second half of each chunk is reported as
 * llama-imatrix prints it, which checks the forward pass on the way.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "convert/source.h"
#include "formats/file.h"
#include "formats/parallel.h"
#include "quantize/imatrix.h"
#include "tools/cli.h"
#include "verify/metrics.h"
#include "verify/model.h"
#include "verify/tokenizer.h"

/* llama-imatrix ignores products whose input has fewer rows than this
 * ("why are small batches ignored (<16 tokens)?" in its source). */
enum { MIN_ROWS = 16 };
/* llama.cpp's default micro-batch: the rows of one product. */
enum { UBATCH = 512 };

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: qforge-imatrix -m MODEL -f TEXT -o OUT [options]\n"
            "Compute an importance matrix for quantizing MODEL, as llama.cpp's\n"
            "llama-imatrix does: run MODEL over TEXT in chunks of N_CTX tokens and add\n"
            "up, for every matrix product W x of the transformer blocks, the squares of\n"
            "each column of x over all tokens. OUT is read by qforge-quantize --imatrix\n"
            "and llama-quantize --imatrix.\n"
            "MODEL is a GGUF file (any block type) or a Hugging Face folder.\n"
            "\n"
            "Options:\n"
            "  -m, --model MODEL       the model\n"
            "  -f, --file TEXT         calibration text (its name is recorded in OUT)\n"
            "  -o, --output OUT        the imatrix file to write\n"
            "  -c, --ctx-size N        tokens per chunk (default 512; at least 16)\n"
            "      --chunks N          use at most N chunks (default: all)\n"
            "  -t, --threads N         threads (default: %d, the online CPUs)\n"
            "      --format dat|gguf   dat (default): the legacy binary format of\n"
            "                          llama-imatrix b4747, which every llama-quantize\n"
            "                          reads; gguf: the GGUF format of newer llama.cpp\n"
            "      --process-output    also collect output.weight (llama-imatrix's option\n"
            "                          of the same name; a tied model has no output.weight)\n"
            "      --numerics ggml|f32 ggml (default): round what llama.cpp's CPU backend\n"
            "                          rounds (F16 KV cache; each product's input to the\n"
            "                          weight type's partner), as llama-imatrix runs; f32:\n"
            "                          all in F32\n"
            "      --force             replace OUT if it exists\n"
            "  -q, --quiet             errors only\n"
            "  -v, --verbose           more messages (every entry)\n"
            "  -h, --help              this help\n"
            "      --version           print the version\n"
            "\n"
            "The text must hold at least 2 * N_CTX tokens. Each chunk starts from an\n"
            "empty cache with BOS in place of its first token; the perplexity of the\n"
            "second half of each chunk is reported as llama-imatrix reports it.\n"
            "\n"
            "Exit status: 0 done, 1 an error, 2 usage error.\n",
            qf_cli_default_threads());
}

typedef struct {
    const char *model, *text, *out;
    int64_t n_ctx, max_chunks;
    int threads, format, numerics, process_output, force;
} options;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* 1 if both paths name one existing file. */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* The whole file into a malloc'd, NUL-terminated buffer. */
static char *read_text(const char *path, size_t *len, qf_err *err)
{
    qf_map *m = NULL;
    char *buf;
    uint64_t n;

    if (qf_map_open(path, &m, err) != 0)
        return NULL;
    n = qf_map_size(m);
    if (n >= SIZE_MAX || !(buf = malloc((size_t)n + 1))) {
        qf_map_close(m);
        qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    if (n)
        memcpy(buf, qf_map_data(m), (size_t)n);
    buf[n] = '\0';
    qf_map_close(m);
    *len = (size_t)n;
    return buf;
}

/* Tokenize as llama-imatrix: -f drops one trailing newline; BOS/EOS as the
 * model says; special-token text is not parsed (common_tokenize's
 * default). */
static int tokenize(const qf_tokenizer *tok, const char *path, int32_t **ids, int64_t *n,
                    qf_err *err)
{
    size_t len;
    char *text = read_text(path, &len, err);
    int rc;

    *ids = NULL;
    if (!text)
        return err && err->code ? err->code : QF_EIO;
    if (len > 0 && text[len - 1] == '\n')
        len--;
    rc = qf_tokenizer_encode_alloc(tok, text, len, 1, 0, ids, n, err);
    free(text);
    return rc;
}

/* ---------------------------------------------------------------------
 * The observer: which products llama-imatrix collects, into the collector
 * ------------------------------------------------------------------- */

typedef struct {
    qf_imatrix_acc *acc;
    int process_output;
} collector;

static int observe(void *user, const char *name, const float *x, int64_t n_tokens, int64_t n_in,
                   qf_err *err)
{
    collector *c = user;
    if (n_tokens < MIN_ROWS)
        return 0;
    if (strncmp(name, "blk.", 4) != 0 && !(c->process_output && !strcmp(name, "output.weight")))
        return 0;
    return qf_imatrix_acc_add(c->acc, name, x, n_tokens, n_in, err);
}

/* ---------------------------------------------------------------------
 * Scoring (the perplexity llama-imatrix prints), on the threads
 * ------------------------------------------------------------------- */

typedef struct {
    const float *logits;    /* (rows, n_vocab) */
    const int32_t *targets; /* (rows) */
    int64_t n_vocab;
    double *nll;            /* (rows) */
} score_job;

static int score_rows(void *ctx, int64_t begin, int64_t end, int worker)
{
    score_job *j = ctx;
    (void)worker;
    for (int64_t i = begin; i < end; i++)
        j->nll[i] = qf_ppl_nll(j->logits + i * j->n_vocab, j->n_vocab, j->targets[i]);
    return 0;
}

/* ---------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------- */

static int parse_args(int argc, char **argv, options *o)
{
    enum { O_CHUNKS = 256, O_FORMAT, O_PROCESS_OUTPUT, O_NUMERICS, O_FORCE, O_VERSION };
    static const struct option longopts[] = {
        { "model", required_argument, NULL, 'm' },
        { "file", required_argument, NULL, 'f' },
        { "output", required_argument, NULL, 'o' },
        { "ctx-size", required_argument, NULL, 'c' },
        { "chunks", required_argument, NULL, O_CHUNKS },
        { "threads", required_argument, NULL, 't' },
        { "format", required_argument, NULL, O_FORMAT },
        { "process-output", no_argument, NULL, O_PROCESS_OUTPUT },
        { "numerics", required_argument, NULL, O_NUMERICS },
        { "force", no_argument, NULL, O_FORCE },
        { "quiet", no_argument, NULL, 'q' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, O_VERSION },
        { NULL, 0, NULL, 0 },
    };
    uint64_t v;
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:f:o:c:t:qvh", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'f': o->text = optarg; break;
        case 'o': o->out = optarg; break;
        case 'c':
            if (qf_cli_parse_u64(optarg, MIN_ROWS, 1 << 24, 0, &v) != 0)
                return qf_cli_usage_error("--ctx-size: expected %d..16777216, got '%s' (llama-imatrix "
                                          "ignores products of fewer than %d tokens)",
                                          MIN_ROWS, optarg, MIN_ROWS);
            o->n_ctx = (int64_t)v;
            break;
        case O_CHUNKS:
            if (qf_cli_parse_u64(optarg, 1, INT32_MAX, 0, &v) != 0)
                return qf_cli_usage_error("--chunks: expected a positive count, got '%s'", optarg);
            o->max_chunks = (int64_t)v;
            break;
        case 't':
            if (qf_cli_parse_u64(optarg, 1, 256, 0, &v) != 0)
                return qf_cli_usage_error("--threads: expected 1..256, got '%s'", optarg);
            o->threads = (int)v;
            break;
        case O_FORMAT:
            if (!strcmp(optarg, "dat"))
                o->format = QF_IMATRIX_FORMAT_DAT;
            else if (!strcmp(optarg, "gguf"))
                o->format = QF_IMATRIX_FORMAT_GGUF;
            else
                return qf_cli_usage_error("--format: expected dat or gguf, got '%s'", optarg);
            break;
        case O_PROCESS_OUTPUT: o->process_output = 1; break;
        case O_NUMERICS:
            if (!strcmp(optarg, "ggml"))
                o->numerics = QF_NUMERICS_GGML;
            else if (!strcmp(optarg, "f32"))
                o->numerics = QF_NUMERICS_F32;
            else
                return qf_cli_usage_error("--numerics: expected ggml or f32, got '%s'", optarg);
            break;
        case O_FORCE: o->force = 1; break;
        case 'q': qf_cli_verbosity = 0; break;
        case 'v': qf_cli_verbosity++; break;
        case 'h': usage(stdout); return -1;
        case O_VERSION: qf_cli_version(); return -1;
        case ':': return qf_cli_usage_error("option '%s' needs an argument", argv[optind - 1]);
        default: return qf_cli_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return qf_cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (!o->model)
        return qf_cli_usage_error("missing -m MODEL");
    if (!o->text)
        return qf_cli_usage_error("missing -f TEXT");
    if (!o->out)
        return qf_cli_usage_error("missing -o OUT");
    return 0;
}

int main(int argc, char **argv)
{
    options o;
    qf_err err = { 0 };
    qf_source *src = NULL;
    qf_model *m = NULL;
    qf_model_state *st = NULL;
    qf_tokenizer *tok = NULL;
    qf_imatrix_acc *acc = NULL;
    qf_progress *prog = NULL;
    collector col;
    int32_t *ids = NULL, *buf = NULL, bos;
    float *logits = NULL;
    double *nll = NULL, t0;
    int64_t n_tokens = 0, n_chunk, first, n_vocab, i, j;
    qf_ppl ppl = { 0, 0, 0 };
    int rc;

    memset(&o, 0, sizeof o);
    o.n_ctx = 512;
    o.max_chunks = -1;
    o.format = QF_IMATRIX_FORMAT_DAT;
    o.numerics = QF_NUMERICS_GGML;
    qf_cli_init(argv[0]);
    o.threads = qf_cli_default_threads();
    if ((rc = parse_args(argc, argv, &o)) != 0)
        return rc < 0 ? QF_EXIT_OK : rc;
    /* fail before the run, not after it; never replace an input */
    if (same_file(o.out, o.model) || same_file(o.out, o.text)) {
        qf_cli_error("%s: is an input (-m or -f); choose another -o", o.out);
        return QF_EXIT_FAIL;
    }
    if (!o.force && access(o.out, F_OK) == 0) {
        qf_cli_error("%s: already exists (use --force to overwrite)", o.out);
        return QF_EXIT_FAIL;
    }

    t0 = now_s();
    if ((rc = qf_source_open(o.model, &src, &err)) != 0 ||
        (rc = qf_tokenizer_from_source(src, &tok, &err)) != 0 ||
        (rc = qf_model_load(src, o.threads, &m, &err)) != 0)
        goto fail;
    {
        const qf_model_config *c = qf_model_get_config(m);
        char h[32];
        qf_cli_info(2, "%s: %s, %" PRId64 " layers, dim %" PRId64 ", vocab %" PRId64
                    ", %s of F32 weights, loaded in %.2f s",
                    o.model, c->arch, c->n_layer, c->dim, c->n_vocab,
                    qf_cli_human(qf_model_weight_bytes(m), h, sizeof h), now_s() - t0);
        n_vocab = c->n_vocab;
        if (c->n_ctx_train > 0 && o.n_ctx > c->n_ctx_train)
            qf_cli_info(1, "warning: %s was trained on %" PRId64 " tokens of context, -c is %" PRId64,
                        o.model, c->n_ctx_train, o.n_ctx);
        if (o.process_output && c->tied_output)
            qf_cli_info(1, "warning: %s has no output.weight (tied to token_embd.weight): "
                        "--process-output collects nothing more", o.model);
    }
    if ((rc = tokenize(tok, o.text, &ids, &n_tokens, &err)) != 0)
        goto fail;
    if (n_tokens < 2 * o.n_ctx) {
        rc = qf_err_set(&err, QF_EINVAL, "%s: %" PRId64 " tokens; a context of %" PRId64
                        " needs at least %" PRId64 " (lower -c)", o.text, n_tokens, o.n_ctx,
                        2 * o.n_ctx);
        goto fail;
    }
    n_chunk = n_tokens / o.n_ctx;
    if (o.max_chunks > 0 && o.max_chunks < n_chunk)
        n_chunk = o.max_chunks;
    bos = qf_tokenizer_add_bos(tok) ? qf_tokenizer_bos(tok) : -1;

    /* logits: all positions with --process-output (llama-imatrix asks for
     * every token's), else the scored second half */
    first = o.process_output ? 0 : o.n_ctx / 2;
    if ((rc = qf_model_state_new(m, o.n_ctx, o.n_ctx < UBATCH ? o.n_ctx : UBATCH, o.threads,
                                 o.numerics, &st, &err)) != 0 ||
        (rc = qf_imatrix_acc_new(&acc, &err)) != 0)
        goto fail;
    buf = malloc((size_t)o.n_ctx * sizeof *buf);
    nll = malloc((size_t)o.n_ctx * sizeof *nll);
    logits = malloc((size_t)(o.n_ctx - first) * (size_t)n_vocab * sizeof *logits);
    if (!buf || !nll || !logits) {
        rc = qf_err_set(&err, QF_ENOMEM, "out of memory (logits of %" PRId64 " tokens)",
                        o.n_ctx - first);
        goto fail;
    }
    col.acc = acc;
    col.process_output = o.process_output;
    qf_model_state_set_observer(st, observe, &col);

    qf_cli_info(1, "imatrix: %" PRId64 " chunks of %" PRId64 " tokens (of %" PRId64 "), %d threads",
                n_chunk, o.n_ctx, n_tokens, o.threads);
    t0 = now_s();
    prog = qf_progress_new("imatrix", (uint64_t)n_chunk);
    for (i = 0; i < n_chunk; i++) {
        const int32_t *chunk = ids + i * o.n_ctx;
        const int64_t scored = o.n_ctx - 1 - o.n_ctx / 2;
        score_job sj;
        memcpy(buf, chunk, (size_t)o.n_ctx * sizeof *buf);
        if (bos >= 0)
            buf[0] = bos;
        qf_model_state_reset(st);
        if ((rc = qf_model_eval(m, st, buf, o.n_ctx, first, logits, &err)) != 0) {
            qf_err_prefix(&err, o.model);
            goto fail;
        }
        sj.logits = logits + (o.n_ctx / 2 - first) * n_vocab;
        sj.targets = chunk + o.n_ctx / 2 + 1;
        sj.n_vocab = n_vocab;
        sj.nll = nll;
        qf_parallel_for(o.threads, scored, 8, score_rows, &sj);
        for (j = 0; j < scored; j++)
            qf_ppl_add_nll(&ppl, nll[j]);
        qf_cli_info(2, "[%" PRId64 "]%.4f", i + 1, qf_ppl_value(&ppl));
        qf_progress_add(prog, 1);
    }
    qf_progress_free(prog);
    prog = NULL;

    if ((rc = qf_imatrix_acc_write(acc, o.out, o.format, o.force ? QF_OUT_FORCE : 0, o.text,
                                   (uint32_t)n_chunk, (uint32_t)o.n_ctx, &err)) != 0)
        goto fail;
    if (qf_cli_verbosity >= 2)
        for (i = 0; i < qf_imatrix_acc_count(acc); i++) {
            qf_imatrix_sums e;
            qf_imatrix_acc_get(acc, i, &e);
            fprintf(stderr, "  %-32s %6" PRId64 " values, %4" PRId32 " calls, %8" PRId64 " tokens\n",
                    e.name, e.n_cols, e.ncall, e.count);
        }
    {
        char a[32];
        qf_cli_info(1, "wrote %s (%s): %" PRId64 " entries from %" PRId64 " chunks (%s tokens) in "
                    "%.2f s; PPL = %.4f +/- %.5f",
                    o.out, o.format == QF_IMATRIX_FORMAT_GGUF ? "gguf" : "dat",
                    qf_imatrix_acc_count(acc), n_chunk,
                    qf_cli_commas((uint64_t)(n_chunk * o.n_ctx), a, sizeof a), now_s() - t0,
                    qf_ppl_value(&ppl), qf_ppl_uncertainty(&ppl));
    }
    rc = QF_EXIT_OK;
    goto done;
fail:
    qf_cli_report(&err);
    rc = QF_EXIT_FAIL;
done:
    qf_progress_free(prog);
    free(logits);
    free(nll);
    free(buf);
    free(ids);
    qf_imatrix_acc_free(acc);
    qf_model_state_free(st);
    qf_model_free(m);
    qf_tokenizer_free(tok);
    qf_source_close(src);
    return rc;
}
