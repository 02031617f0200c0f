/*
 * qforge-convert - a Hugging Face model folder to one GGUF file that
 * llama.cpp loads: the tensors and metadata llama.cpp's own converter writes,
 * streamed from the mapped input in bounded memory.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "convert/convert.h"
#include "formats/file.h"
#include "formats/types.h"
#include "tools/cli.h"
#include "tools/model_open.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: qforge-convert MODEL -o OUT.gguf [options]\n"
            "Convert a Hugging Face model folder (config.json, tokenizer, one or many\n"
            "*.safetensors; a Hugging Face cache snapshot works too) to GGUF.\n"
            "\n"
            "Options:\n"
            "  -o, --outfile OUT      the GGUF to write (never replaced without --force)\n"
            "      --outtype TYPE     f32, f16, bf16, q8_0 or auto (default: f16; auto keeps\n"
            "                         bf16 and f16 sources as they are, else f16). Norms and\n"
            "                         1-D tensors stay f32; q8_0 rows not divisible by 32\n"
            "                         are written f16\n"
            "  -t, --threads N        threads converting rows (default: %d)\n"
            "      --format FMT       gguf (default) or qfm: a QFM (docs/qfm.md) with every\n"
            "                         tensor's SHA-256, zstd where it saves space, and the\n"
            "                         provenance (the folder's files and their SHA-256)\n"
            "      --codec CODEC      with --format qfm: zstd (default) or raw\n"
            "      --level N          with --format qfm: zstd level 1..22 (default: %d)\n"
            "      --vocab-only       write the metadata and tokenizer, no tensors\n"
            "      --name NAME        general.name (default: derived from the folder)\n"
            "      --dry-run          print the plan (every tensor's name, source, type,\n"
            "                         shape and bytes) and write nothing\n"
            "      --checksum         also write OUT.sha256, the per-tensor manifest that\n"
            "                         qforge-sum --check reads (hashed while writing)\n"
            "      --json             print the plan or the result as JSON on stdout\n"
            "  -f, --force            replace OUT if it exists\n"
            "  -q, --quiet            errors only\n"
            "  -v, --verbose          more messages\n"
            "  -h, --help             this help\n"
            "      --version          print the version\n"
            "\n%s"
            "\nExit status: 0 written, 1 an error (nothing is left behind), 2 usage error.\n",
            qf_cli_default_threads(), QF_QFM_DEFAULT_LEVEL, qf_tool_archive_help);
}

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    static uint64_t last;
    qf_progress *p = ctx;
    (void)total;
    if (done < last)
        last = 0;
    qf_progress_add(p, done - last);
    last = done;
}

static const char *shape(const qf_convert_tensor *t, char *buf, size_t cap)
{
    size_t o = 0;
    uint32_t d;
    for (d = 0; d < t->n_dims && o < cap; d++)
        o += (size_t)snprintf(buf + o, cap - o, d ? " x %" PRIu64 : "%" PRIu64, t->ne[d]);
    return buf;
}

static void print_plan(const qf_convert *c, int json, const char *out, double secs, int written)
{
    int64_t i, n = qf_convert_tensor_count(c);
    char a[32], b[32], h[32], sh[96];
    uint64_t data = 0;

    for (i = 0; i < n; i++)
        data += qf_convert_tensor_at(c, i)->nbytes;
    if (json) {
        qf_json j;
        qf_json_init(&j, stdout, 1);
        qf_json_obj_begin(&j);
        qf_json_key(&j, "output");
        qf_json_str(&j, out ? out : "");
        qf_json_key(&j, "written");
        qf_json_bool(&j, written);
        qf_json_key(&j, "architecture");
        qf_json_str(&j, qf_convert_arch(c));
        qf_json_key(&j, "outtype");
        qf_json_str(&j, qf_outtype_name(qf_convert_outtype(c)));
        qf_json_key(&j, "parameters");
        qf_json_u64(&j, qf_convert_param_count(c));
        qf_json_key(&j, "file_size");
        qf_json_u64(&j, qf_convert_file_size(c));
        if (written) {
            qf_json_key(&j, "seconds");
            qf_json_f64(&j, secs);
        }
        qf_json_key(&j, "tensors");
        qf_json_arr_begin(&j);
        for (i = 0; i < n; i++) {
            const qf_convert_tensor *t = qf_convert_tensor_at(c, i);
            uint32_t d;
            qf_json_obj_begin(&j);
            qf_json_key(&j, "name");
            qf_json_str(&j, t->name);
            qf_json_key(&j, "source");
            qf_json_str(&j, t->source ? t->source : "(generated)");
            qf_json_key(&j, "type");
            qf_json_str(&j, qf_ggml_type_name(t->type));
            qf_json_key(&j, "shape");
            qf_json_arr_begin(&j);
            for (d = 0; d < t->n_dims; d++)
                qf_json_u64(&j, t->ne[d]);
            qf_json_arr_end(&j);
            qf_json_key(&j, "bytes");
            qf_json_u64(&j, t->nbytes);
            if (t->fallback) {
                qf_json_key(&j, "fallback");
                qf_json_bool(&j, 1);
            }
            qf_json_obj_end(&j);
        }
        qf_json_arr_end(&j);
        qf_json_obj_end(&j);
        qf_json_end(&j);
        return;
    }
    if (!written) {
        printf("%5s  %-32s %-7s %-16s %12s  %s\n", "#", "tensor", "type", "shape", "bytes", "source");
        for (i = 0; i < n; i++) {
            const qf_convert_tensor *t = qf_convert_tensor_at(c, i);
            printf("%5" PRId64 "  %-32s %-7s %-16s %12" PRIu64 "  %s%s\n", i + 1, t->name,
                   qf_ggml_type_name(t->type), shape(t, sh, sizeof sh), t->nbytes,
                   t->source ? t->source : "(generated)", t->fallback ? "  (fallback: row not divisible by 32)" : "");
        }
        printf("\n%s: %s, %s tensors, %s parameters, %s bytes of tensor data; file %s bytes (%s)\n",
               out ? out : "(dry run)", qf_convert_arch(c), qf_cli_commas((uint64_t)n, a, sizeof a),
               qf_cli_commas(qf_convert_param_count(c), b, sizeof b), qf_cli_commas(data, sh, sizeof sh),
               qf_cli_commas(qf_convert_file_size(c), h, sizeof h),
               qf_outtype_name(qf_convert_outtype(c)));
        return;
    }
    qf_cli_info(1, "wrote %s: %s, %s, %s tensors, %s bytes (%s) in %.2f s", out, qf_convert_arch(c),
                qf_outtype_name(qf_convert_outtype(c)), qf_cli_commas((uint64_t)n, a, sizeof a),
                qf_cli_commas(qf_convert_file_size(c), b, sizeof b),
                qf_cli_human(qf_convert_file_size(c), h, sizeof h), secs);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "outfile", required_argument, NULL, 'o' }, { "outtype", required_argument, NULL, 'T' },
        { "threads", required_argument, NULL, 't' }, { "vocab-only", no_argument, NULL, 'W' },
        { "name", required_argument, NULL, 'N' },    { "dry-run", no_argument, NULL, 'D' },
        { "checksum", no_argument, NULL, 'C' },      { "json", no_argument, NULL, 'J' },
        { "force", no_argument, NULL, 'f' },         { "quiet", no_argument, NULL, 'q' },
        { "verbose", no_argument, NULL, 'v' },       { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },       { "format", required_argument, NULL, 'R' },
        { "codec", required_argument, NULL, 'K' },  { "level", required_argument, NULL, 'L' },
        { NULL, 0, NULL, 0 },
    };
    qf_convert_opts opts = { QF_OUTTYPE_F16, 0, 0, NULL };
    const char *out = NULL, *model;
    int c, dry = 0, json = 0, checksum = 0, force = 0, rc, type, qfm = 0;
    qf_qfm_opts qo = { QF_QFM_ZSTD, QF_QFM_DEFAULT_LEVEL, 0, 0 };
    char *manifest = NULL;
    uint64_t v;
    qf_convert *cv = NULL;
    qf_err err = { 0 };
    qf_progress *prog = NULL;
    struct timespec t0, t1;

    qf_cli_init(argv[0]);
    opts.threads = qf_cli_default_threads();
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:t:fqvh", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'T':
            if ((type = qf_outtype_from_name(optarg)) < 0)
                return qf_cli_usage_error("--outtype: expected f32, f16, bf16, q8_0 or auto, got '%s'", optarg);
            opts.outtype = (qf_outtype)type;
            break;
        case 't':
            if (qf_cli_parse_u64(optarg, 1, 256, 0, &v) != 0)
                return qf_cli_usage_error("--threads: expected 1..256, got '%s'", optarg);
            opts.threads = (int)v;
            break;
        case 'W': opts.vocab_only = 1; break;
        case 'R':
            if (strcmp(optarg, "gguf") && strcmp(optarg, "qfm"))
                return qf_cli_usage_error("--format: expected gguf or qfm, got '%s'", optarg);
            qfm = !strcmp(optarg, "qfm");
            break;
        case 'K':
            if (strcmp(optarg, "zstd") && strcmp(optarg, "raw"))
                return qf_cli_usage_error("--codec: expected zstd or raw, got '%s'", optarg);
            qo.codec = strcmp(optarg, "raw") ? QF_QFM_ZSTD : QF_QFM_RAW;
            break;
        case 'L':
            if (qf_cli_parse_u64(optarg, 1, 22, 0, &v) != 0)
                return qf_cli_usage_error("--level: expected 1..22, got '%s'", optarg);
            qo.level = (int)v;
            break;
        case 'N': opts.name = optarg; break;
        case 'D': dry = 1; break;
        case 'C': checksum = 1; break;
        case 'J': json = 1; break;
        case 'f': force = 1; break;
        case 'q': qf_cli_verbosity = 0; break;
        case 'v': qf_cli_verbosity++; break;
        case 'h': usage(stdout); return 0;
        case 'V': qf_cli_version(); return 0;
        case ':': return qf_cli_usage_error("option '%s' needs an argument", argv[optind - 1]);
        default: return qf_cli_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return qf_cli_usage_error("missing MODEL folder");
    if (optind + 1 < argc)
        return qf_cli_usage_error("unexpected argument '%s'", argv[optind + 1]);
    model = argv[optind];
    if (!out && !dry)
        return qf_cli_usage_error("missing -o OUT.gguf");
    if (qfm && checksum)
        return qf_cli_usage_error("--checksum: a QFM carries its own digests (qforge-sum --check OUT)");

    if (qf_tool_model_path(model, &model, &err) != 0 ||
        qf_convert_plan(model, &opts, &cv, &err) != 0) {
        qf_cli_report(&err);
        return QF_EXIT_FAIL;
    }
    if (dry) {
        print_plan(cv, json, out, 0, 0);
        qf_convert_free(cv);
        return 0;
    }
    if (checksum) {
        size_t n = strlen(out) + 8;
        manifest = malloc(n);
        if (!manifest) {
            qf_cli_error("out of memory");
            qf_convert_free(cv);
            return QF_EXIT_FAIL;
        }
        snprintf(manifest, n, "%s.sha256", out);
    }
    prog = qf_progress_new("converting", qf_convert_file_size(cv));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    qo.threads = opts.threads;
    if (qfm)
        rc = qf_convert_write_qfm(cv, out, force ? QF_OUT_FORCE : 0, &qo, model, argc, argv, on_progress,
                                  prog, &err);
    else
        rc = qf_convert_write(cv, out, force ? QF_OUT_FORCE : 0, manifest, on_progress, prog, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    qf_progress_free(prog);
    if (rc != 0) {
        qf_cli_report(&err);
    } else {
        print_plan(cv, json, out,
                   (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9, 1);
        if (manifest)
            qf_cli_info(1, "wrote %s", manifest);
    }
    free(manifest);
    qf_convert_free(cv);
    return rc ? QF_EXIT_FAIL : 0;
}
