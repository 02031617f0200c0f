/*
 * qforge - run `qforge-<verb>`: `qforge inspect x.gguf` is
 * `qforge-inspect x.gguf`. The tool is looked for beside this executable
 * first, then on PATH.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/cli.h"

static const struct {
    const char *verb;
    const char *what;
} verbs[] = {
    { "convert", "a Hugging Face folder (or archive) to GGUF, as llama.cpp's converter does, or to QFM" },
    { "inspect", "list a GGUF, QFM, safetensors or PyTorch model: metadata, tensors, sizes" },
    { "sum", "SHA-256 of every tensor (llama-gguf-hash manifests), and --check (GGUF, QFM)" },
    { "tokenize", "text to token ids with a model's tokenizer, as llama-tokenize" },
    { "quantize", "quantize to llama.cpp's types and mixes (Q4_K_M, ...), a size budget, or QFM's int4/int8" },
    { "import", "store a GGUF as a QFM: per-tensor SHA-256, zstd, provenance" },
    { "export", "write the GGUF a QFM stands for, byte for byte; or any model as a Hugging Face folder" },
    { "verify", "perplexity, KL divergence from a reference (llama-perplexity), per-tensor error" },
    { "imatrix", "importance matrix of a model over a text, for quantize --imatrix (llama-imatrix)" },
};

static void usage(FILE *f)
{
    size_t i;
    fprintf(f,
            "Usage: qforge <verb> [arguments]   (runs qforge-<verb>)\n"
            "       qforge --help | --version\n"
            "\n"
            "Verbs:\n");
    for (i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        fprintf(f, "  %-10s %s\n", verbs[i].verb, verbs[i].what);
    fprintf(f, "\n'qforge <verb> --help' describes each verb.\n");
}

/* Folder of this executable (from /proc/self/exe), or "" if unknown. */
static void self_dir(char *buf, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    char *slash;
    if (n <= 0) {
        buf[0] = '\0';
        return;
    }
    buf[n] = '\0';
    slash = strrchr(buf, '/');
    if (slash)
        *slash = '\0';
    else
        buf[0] = '\0';
}

int main(int argc, char **argv)
{
    char tool[128], dir[PATH_MAX], path[PATH_MAX + 160];
    const char *verb;

    qf_cli_init("qforge");
    if (argc < 2)
        return qf_cli_usage_error("missing verb");
    verb = argv[1];
    if (!strcmp(verb, "-h") || !strcmp(verb, "--help") || !strcmp(verb, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(verb, "--version") || !strcmp(verb, "-V")) {
        qf_cli_version();
        return 0;
    }
    if (verb[0] == '-' || strchr(verb, '/') || strlen(verb) > 64)
        return qf_cli_usage_error("'%s' is not a verb", verb);

    snprintf(tool, sizeof tool, "qforge-%s", verb);
    argv[1] = tool;
    self_dir(dir, sizeof dir);
    if (dir[0]) {
        snprintf(path, sizeof path, "%s/%s", dir, tool);
        if (access(path, X_OK) == 0) {
            execv(path, argv + 1);
            qf_cli_error("%s: %s", path, strerror(errno));
            return 1;
        }
    }
    execvp(tool, argv + 1);
    if (errno == ENOENT)
        return qf_cli_usage_error("unknown verb '%s' (no %s beside qforge or on PATH)", verb,
                                  tool);
    qf_cli_error("%s: %s", tool, strerror(errno));
    return 1;
}
