/*
 * qforge-export - a QFM back to the GGUF it stands for, byte for byte; every
 * tensor is checked against its SHA-256 on the way out. With --format
 * safetensors: any model (QFM, GGUF, folder) back to a Hugging Face folder,
 * dequantized (convert/export_hf.h).
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "convert/export_hf.h"
#include "convert/qfm_io.h"
#include "convert/source.h"
#include "formats/file.h"
#include "formats/types.h"
#include "tools/cli.h"
#include "tools/model_open.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: qforge-export IN.qfm OUT.gguf [options]\n"
            "       qforge-export --format safetensors MODEL OUT_DIR [--dtype T] [options]\n"
            "Write the GGUF a QFM stands for (byte for byte the GGUF it was imported from),\n"
            "checking every tensor's SHA-256 on the way; a damaged tensor is named and\n"
            "nothing is written.\n"
            "With --format safetensors: MODEL (a QFM, a GGUF of any type, or a folder) as\n"
            "a Hugging Face folder: model.safetensors (sharded above --shard-size) with\n"
            "every tensor dequantized to one dtype and named as in transformers, the q/k\n"
            "row order of the original restored, config.json and generation_config.json\n"
            "rebuilt from the metadata, and for SentencePiece vocabularies\n"
            "tokenizer.model (docs/qfm.md). The folder appears whole or not at all.\n"
            "\n"
            "Options:\n"
            "      --format FMT    gguf (default) or safetensors\n"
            "      --dtype T       with safetensors: f16 (default), bf16 or f32\n"
            "      --shard-size N  with safetensors: bytes per file (K/M/G suffixes;\n"
            "                      default 5G, as transformers' save_pretrained)\n"
            "  -f, --force         replace OUT if it exists\n"
            "  -q, --quiet         errors only\n"
            "  -h, --help          this help\n"
            "      --version       print the version\n"
            "\n"
            "Exit status: 0 written, 1 an error (nothing is left behind), 2 usage error.\n");
}

/* MODEL -> HF folder; returns the exit status. */
static int export_hf(const char *in, const char *out, qf_export_hf_opts *eo, int force)
{
    qf_source *src = NULL;
    qf_err err = { 0 };
    const char *path;
    int rc = QF_EXIT_FAIL;

    eo->flags = force ? QF_EXPORT_FORCE : 0;
    if (qf_tool_model_path(in, &path, &err) != 0 || qf_source_open(path, &src, &err) != 0 ||
        qf_export_hf_ex(src, out, eo, &err) != 0) {
        qf_cli_report(&err);
        goto done;
    }
    if (eo->report & QF_EXPORT_REPORT_NO_TOKENIZER)
        qf_cli_info(1, "note: %s: no tokenizer files written (a GPT-2 style BPE vocabulary)", out);
    qf_cli_info(2, "wrote %s", out);
    rc = 0;
done:
    qf_source_close(src);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "format", required_argument, NULL, 'F' }, { "force", no_argument, NULL, 'f' },
        { "dtype", required_argument, NULL, 'D' },  { "shard-size", required_argument, NULL, 'S' },
        { "quiet", no_argument, NULL, 'q' },         { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },          { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    qf_err err = { 0 };
    qf_export_hf_opts eo = { QF_DTYPE_F16, 0, 0, 0 };
    int c, force = 0, st = 0, dtype_set = 0;

    qf_cli_init(argv[0]);
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":fqvh", longopts, NULL)) != -1) {
        switch (c) {
        case 'F':
            if (strcmp(optarg, "gguf") && strcmp(optarg, "safetensors"))
                return qf_cli_usage_error("--format: expected gguf or safetensors, got '%s'", optarg);
            st = !strcmp(optarg, "safetensors");
            break;
        case 'D':
            if (!strcmp(optarg, "f16") || !strcmp(optarg, "F16"))
                eo.dtype = QF_DTYPE_F16;
            else if (!strcmp(optarg, "bf16") || !strcmp(optarg, "BF16"))
                eo.dtype = QF_DTYPE_BF16;
            else if (!strcmp(optarg, "f32") || !strcmp(optarg, "F32"))
                eo.dtype = QF_DTYPE_F32;
            else
                return qf_cli_usage_error("--dtype: expected f16, bf16 or f32, got '%s'", optarg);
            dtype_set = 1;
            break;
        case 'S':
            if (qf_cli_parse_u64(optarg, 1, UINT64_MAX, 1, &eo.shard_bytes) != 0)
                return qf_cli_usage_error("--shard-size: expected a size, got '%s'", optarg);
            break;
        case 'f': force = 1; break;
        case 'q': qf_cli_verbosity = 0; break;
        case 'v': qf_cli_verbosity++; break;
        case 'h': usage(stdout); return 0;
        case 'V': qf_cli_version(); return 0;
        case ':': return qf_cli_usage_error("option '%s' needs an argument", argv[optind - 1]);
        default: return qf_cli_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 2)
        return qf_cli_usage_error(argc - optind < 2 ? (st ? "expected MODEL OUT_DIR" : "expected IN.qfm OUT.gguf")
                                                    : "unexpected argument '%s'",
                                  argv[argc - 1]);
    if (!st && (dtype_set || eo.shard_bytes))
        return qf_cli_usage_error("--dtype and --shard-size go with --format safetensors");
    if (st)
        return export_hf(argv[optind], argv[optind + 1], &eo, force);
    if (qf_qfm_export_gguf(argv[optind], argv[optind + 1], force ? QF_OUT_FORCE : 0, &err) != 0) {
        qf_cli_report(&err);
        return QF_EXIT_FAIL;
    }
    qf_cli_info(2, "wrote %s", argv[optind + 1]);
    return 0;
}
