/*
 * qforge-tokenize - text to token ids with a model's tokenizer, as
 * llama.cpp's llama-tokenize (b4747) gives them: the same ids for the same
 * model, in its --ids format or one "id -> 'piece'" line per token.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "convert/source.h"
#include "convert/vocab.h"
#include "formats/file.h"
#include "tools/cli.h"
#include "tools/model_open.h"
#include "verify/tokenizer.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: qforge-tokenize -m MODEL (-p TEXT | -f FILE) [options]\n"
            "Split text into token ids with MODEL's tokenizer, exactly as llama.cpp's\n"
            "llama-tokenize does (SentencePiece \"llama\" and byte-level BPE \"gpt2\"\n"
            "tokenizers, llama.cpp's pre-tokenizers).\n"
            "\n"
            "MODEL is a .gguf file, a model folder (read as qforge-convert reads it),\n"
            "or a folder holding only tokenizer files (tokenizer.model or\n"
            "tokenizer.json, tokenizer_config.json, ...).\n"
            "\n"
            "Input (one of; the bytes are used as they are, no escapes are processed,\n"
            "like llama-tokenize --no-escape):\n"
            "  -p, --prompt TEXT     the text\n"
            "  -f, --file FILE       the text of FILE, '-' for standard input\n"
            "\n"
            "Options:\n"
            "  -m, --model MODEL     the model (required)\n"
            "      --ids             print the ids only, as a list: [1, 15043, 3186]\n"
            "      --no-bos          do not add BOS (nor EOS), even if the model asks for it\n"
            "      --no-parse-special  take special-token text such as <s> or\n"
            "                        <|endoftext|> as plain text\n"
            "      --lines           tokenize each line on its own: lines end at LF (a\n"
            "                        final LF ends the last line; CR, VT, U+2028 and such\n"
            "                        are not line ends) and the LF is not tokenized\n"
            "      --json            JSON output: {\"ids\": [...], \"pieces\": [...]}, or with\n"
            "                        --lines an array of them\n"
            "  -q, --quiet           errors only\n"
            "  -v, --verbose         say how the model was read\n"
            "  -h, --help            this help\n"
            "      --version         print the version\n"
            "\n"
            "Output, without --ids: one line per token, \"%%6d -> '%%s'\" (llama-tokenize's\n"
            "format) with the text the token stands for, special tokens included;\n"
            "control bytes and invalid UTF-8 are shown as \\n, \\t, \\xNN. With --lines,\n"
            "each line's tokens come after a line \"# line N\" (N from 1). With --ids,\n"
            "one list per input line (with --lines) or one list in all.\n"
            "\n"
            "BOS is added when the model's add_bos_token says so (EOS likewise), as\n"
            "llama-tokenize does, unless --no-bos.\n"
            "\n"
            "\n%s"
            "\nExit status: 0 done, 1 the model or the input could not be read, 2 usage\n"
            "error.\n", qf_tool_archive_help);
}

/* The whole of path ("-": standard input) into a malloc'd buffer. */
static int read_all(const char *path, char **out, size_t *len)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    char *buf = NULL, *p;
    size_t n = 0, cap = 0, got;

    if (!f) {
        qf_cli_error("%s: %s", path, strerror(errno));
        return -1;
    }
    for (;;) {
        if (n + 65536 > cap) {
            cap = cap ? cap * 2 : 65536 * 2;
            if (!(p = realloc(buf, cap))) {
                qf_cli_error("%s: out of memory", path);
                goto fail;
            }
            buf = p;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        qf_cli_error("%s: read error", path);
        goto fail;
    }
    if (f != stdin)
        fclose(f);
    *out = buf;
    *len = n;
    return 0;
fail:
    if (f != stdin)
        fclose(f);
    free(buf);
    return -1;
}

/* A model source, else (for a folder) its tokenizer files alone. */
static int open_tokenizer(const char *path, qf_tokenizer **t)
{
    qf_source *s = NULL;
    qf_vocab *v = NULL;
    qf_err err = { 0 }, err2 = { 0 };
    struct stat sb;
    int rc;

    if (qf_tool_model_path(path, &path, &err) != 0) {
        qf_cli_report(&err);
        return -1;
    }
    rc = qf_source_open(path, &s, &err);
    if (rc == 0) {
        qf_cli_info(2, "reading the tokenizer of %s (%s)", path, qf_source_kind(s));
        rc = qf_tokenizer_from_source(s, t, &err);
        qf_source_close(s);
        if (rc) {
            qf_cli_report(&err);
            return -1;
        }
        return 0;
    }
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        int rc2 = qf_vocab_load(path, 0, &v, &err2);
        if (rc2 == 0) {
            qf_cli_info(2, "%s is not a model folder (%s); reading its tokenizer files", path,
                        err.msg);
            rc2 = qf_tokenizer_from_vocab(v, path, t, &err2);
            qf_vocab_free(v);
            if (rc2) {
                qf_cli_report(&err2);
                return -1;
            }
            return 0;
        }
        if (rc2 != QF_ENOTFOUND) {
            qf_cli_report(&err2);
            return -1;
        }
    }
    qf_cli_report(&err);
    return -1;
}

static void print_ids(const int32_t *ids, int64_t n)
{
    int64_t i;
    putchar('[');
    for (i = 0; i < n; i++)
        printf(i ? ", %" PRId32 : "%" PRId32, ids[i]);
    printf("]\n");
}

static int print_pieces(const qf_tokenizer *t, const int32_t *ids, int64_t n, qf_json *j)
{
    char buf[256], *big = NULL;
    int64_t i, len;
    qf_err err = { 0 };

    if (j) {
        qf_json_obj_begin(j);
        qf_json_key(j, "ids");
        qf_json_arr_begin(j);
        for (i = 0; i < n; i++)
            qf_json_i64(j, ids[i]);
        qf_json_arr_end(j);
        qf_json_key(j, "pieces");
        qf_json_arr_begin(j);
    }
    for (i = 0; i < n; i++) {
        const char *p = buf;
        len = qf_tokenizer_token_to_piece(t, ids[i], 1, buf, sizeof buf, &err);
        if (len < 0) {
            qf_cli_report(&err);
            return -1;
        }
        if ((size_t)len > sizeof buf) {
            free(big);
            if (!(big = malloc((size_t)len))) {
                qf_cli_error("out of memory");
                return -1;
            }
            qf_tokenizer_token_to_piece(t, ids[i], 1, big, (size_t)len, &err);
            p = big;
        }
        if (j) {
            qf_json_strn(j, p, (uint64_t)len);
        } else {
            printf("%6" PRId32 " -> '", ids[i]);
            qf_cli_print_escaped(stdout, p, (uint64_t)len);
            printf("'\n");
        }
    }
    free(big);
    if (j) {
        qf_json_arr_end(j);
        qf_json_obj_end(j);
    }
    return 0;
}

/* Tokenize one piece of text and print it. */
static int one(const qf_tokenizer *t, const char *text, size_t len, int add_special,
               int parse_special, int ids_only, long line, qf_json *j)
{
    qf_err err = { 0 };
    int32_t *ids = NULL;
    int64_t n;
    int rc = 0;

    n = qf_tokenizer_encode(t, text, len, add_special, parse_special, NULL, 0, &err);
    if (n >= 0 && (ids = malloc((size_t)(n ? n : 1) * sizeof *ids)) == NULL) {
        qf_cli_error("out of memory");
        return -1;
    }
    if (n >= 0)
        n = qf_tokenizer_encode(t, text, len, add_special, parse_special, ids, n, &err);
    if (n < 0) {
        qf_cli_report(&err);
        free(ids);
        return -1;
    }
    if (ids_only && !j) {
        print_ids(ids, n);
    } else {
        if (line > 0 && !j)
            printf("# line %ld\n", line);
        rc = print_pieces(t, ids, n, j);
    }
    free(ids);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "model", required_argument, NULL, 'm' },   { "prompt", required_argument, NULL, 'p' },
        { "file", required_argument, NULL, 'f' },    { "ids", no_argument, NULL, 'I' },
        { "no-bos", no_argument, NULL, 'B' },        { "no-parse-special", no_argument, NULL, 'S' },
        { "lines", no_argument, NULL, 'L' },         { "json", no_argument, NULL, 'J' },
        { "quiet", no_argument, NULL, 'q' },         { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },          { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *model = NULL, *prompt = NULL, *file = NULL;
    int c, ids_only = 0, no_bos = 0, no_special = 0, lines = 0, json = 0, rc = QF_EXIT_OK;
    int add_special;
    char *text = NULL;
    size_t len = 0;
    qf_tokenizer *t = NULL;
    qf_json j;

    qf_cli_init(argv[0]);
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:p:f:qvh", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'p': prompt = optarg; break;
        case 'f': file = optarg; break;
        case 'I': ids_only = 1; break;
        case 'B': no_bos = 1; break;
        case 'S': no_special = 1; break;
        case 'L': lines = 1; break;
        case 'J': json = 1; break;
        case 'q': qf_cli_verbosity = 0; break;
        case 'v': qf_cli_verbosity++; break;
        case 'h': usage(stdout); return 0;
        case 'V': qf_cli_version(); return 0;
        case ':': return qf_cli_usage_error("option '%s' needs an argument", argv[optind - 1]);
        default: return qf_cli_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return qf_cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (!model)
        return qf_cli_usage_error("missing -m MODEL");
    if (!prompt == !file)
        return qf_cli_usage_error(prompt ? "give -p or -f, not both" : "missing -p TEXT or -f FILE");

    if (open_tokenizer(model, &t) != 0)
        return QF_EXIT_FAIL;
    if (prompt) {
        len = strlen(prompt);
        if (!(text = malloc(len + 1))) {
            qf_cli_error("out of memory");
            rc = QF_EXIT_FAIL;
            goto done;
        }
        memcpy(text, prompt, len + 1);
    } else if (read_all(file, &text, &len) != 0) {
        rc = QF_EXIT_FAIL;
        goto done;
    }

    /* llama-tokenize: add_special = the model's add_bos && !--no-bos */
    add_special = qf_tokenizer_add_bos(t) && !no_bos;
    if (json)
        qf_json_init(&j, stdout, 0);
    if (lines) {
        size_t at = 0;
        long n = 0;
        if (json)
            qf_json_arr_begin(&j);
        while (at < len) {
            const char *nl = memchr(text + at, '\n', len - at);
            size_t end = nl ? (size_t)(nl - text) : len;
            if (one(t, text + at, end - at, add_special, !no_special, ids_only, ++n,
                    json ? &j : NULL) != 0) {
                rc = QF_EXIT_FAIL;
                goto done;
            }
            at = nl ? end + 1 : len;
        }
        if (json)
            qf_json_arr_end(&j);
    } else if (one(t, text, len, add_special, !no_special, ids_only, 0, json ? &j : NULL) != 0) {
        rc = QF_EXIT_FAIL;
        goto done;
    }
    if (json)
        qf_json_end(&j);
done:
    if (fflush(stdout) != 0 && rc == QF_EXIT_OK) {
        qf_cli_error("standard output: %s", strerror(errno));
        rc = QF_EXIT_FAIL;
    }
    free(text);
    qf_tokenizer_free(t);
    return rc;
}
