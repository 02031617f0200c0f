/*
 * qforge-export - a QFM back to the GGUF it stands for, byte for byte; every
 * tensor is checked against its SHA-256 on the way out.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "convert/qfm_io.h"
#include "formats/file.h"
#include "tools/cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: qforge-export IN.qfm OUT.gguf [options]\n"
            "Write the GGUF a QFM stands for (byte for byte the GGUF it was imported from),\n"
            "checking every tensor's SHA-256 on the way; a damaged tensor is named and\n"
            "nothing is written.\n"
            "\n"
            "Options:\n"
            "      --format gguf   the output format (only gguf)\n"
            "  -f, --force         replace OUT if it exists\n"
            "  -q, --quiet         errors only\n"
            "  -h, --help          this help\n"
            "      --version       print the version\n"
            "\n"
            "Exit status: 0 written, 1 an error (nothing is left behind), 2 usage error.\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "format", required_argument, NULL, 'F' }, { "force", no_argument, NULL, 'f' },
        { "quiet", no_argument, NULL, 'q' },         { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },          { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    qf_err err = { 0 };
    int c, force = 0;

    qf_cli_init(argv[0]);
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":fqvh", longopts, NULL)) != -1) {
        switch (c) {
        case 'F':
            if (strcmp(optarg, "gguf") != 0)
                return qf_cli_usage_error("--format: only gguf is supported, got '%s'", optarg);
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
        return qf_cli_usage_error(argc - optind < 2 ? "expected IN.qfm OUT.gguf" : "unexpected argument '%s'",
                                  argv[argc - 1]);
    if (qf_qfm_export_gguf(argv[optind], argv[optind + 1], force ? QF_OUT_FORCE : 0, &err) != 0) {
        qf_cli_report(&err);
        return QF_EXIT_FAIL;
    }
    qf_cli_info(2, "wrote %s", argv[optind + 1]);
    return 0;
}
