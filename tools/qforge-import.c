/*
 * qforge-import - a GGUF to a QFM (docs/qfm.md): the same metadata and
 * tensors, each tensor compressed with zstd where that saves space, every
 * tensor's SHA-256 and the file digest recorded, with the provenance of the
 * file (the GGUF's SHA-256, the command line). qforge-export gives the GGUF
 * back byte for byte.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "convert/qfm_io.h"
#include "formats/file.h"
#include "tools/cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: qforge-import IN.gguf OUT.qfm [options]\n"
            "Store a GGUF as a QFM: verifiable (SHA-256 per tensor and a file digest),\n"
            "compressible, with its provenance. qforge-export gives the GGUF back byte for byte.\n"
            "\n"
            "Options:\n"
            "      --codec CODEC   zstd (default: per tensor, only where it saves space; F16,\n"
            "                      BF16 and F32 bytes are shuffled when that helps) or raw\n"
            "      --level N       zstd level 1..22 (default: %d)\n"
            "  -t, --threads N     compressing threads (default: %d)\n"
            "  -f, --force         replace OUT if it exists\n"
            "  -q, --quiet         errors only\n"
            "  -h, --help          this help\n"
            "      --version       print the version\n"
            "\n"
            "Exit status: 0 written, 1 an error (nothing is left behind), 2 usage error.\n",
            QF_QFM_DEFAULT_LEVEL, qf_cli_default_threads());
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "codec", required_argument, NULL, 'C' }, { "level", required_argument, NULL, 'L' },
        { "threads", required_argument, NULL, 't' }, { "force", no_argument, NULL, 'f' },
        { "quiet", no_argument, NULL, 'q' },         { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },          { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    qf_qfm_opts o = { QF_QFM_ZSTD, QF_QFM_DEFAULT_LEVEL, 0, 0 };
    qf_err err = { 0 };
    uint64_t v;
    int c, force = 0;
    struct timespec t0, t1;

    qf_cli_init(argv[0]);
    o.threads = qf_cli_default_threads();
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":t:fqvh", longopts, NULL)) != -1) {
        switch (c) {
        case 'C':
            if (!strcmp(optarg, "zstd"))
                o.codec = QF_QFM_ZSTD;
            else if (!strcmp(optarg, "raw"))
                o.codec = QF_QFM_RAW;
            else
                return qf_cli_usage_error("--codec: expected zstd or raw, got '%s'", optarg);
            break;
        case 'L':
            if (qf_cli_parse_u64(optarg, 1, 22, 0, &v) != 0)
                return qf_cli_usage_error("--level: expected 1..22, got '%s'", optarg);
            o.level = (int)v;
            break;
        case 't':
            if (qf_cli_parse_u64(optarg, 1, 256, 0, &v) != 0)
                return qf_cli_usage_error("--threads: expected 1..256, got '%s'", optarg);
            o.threads = (int)v;
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
        return qf_cli_usage_error(argc - optind < 2 ? "expected IN.gguf OUT.qfm" : "unexpected argument '%s'",
                                  argv[argc - 1]);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (qf_qfm_import(argv[optind], argv[optind + 1], force ? QF_OUT_FORCE : 0, &o, argc, argv, &err) != 0) {
        qf_cli_report(&err);
        return QF_EXIT_FAIL;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    qf_cli_info(1, "wrote %s in %.2f s", argv[optind + 1],
                (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9);
    return 0;
}
