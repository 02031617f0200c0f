/*
 * util_export_hf - write a Hugging Face folder from a model (qf_export_hf).
 *
 *   util_export_hf IN OUT_DIR [f16|bf16|f32] [--force] [--shard-size BYTES]
 *
 * IN is a GGUF file or a model folder. The default dtype is f32. Prints
 * "no tokenizer" on stderr when the vocabulary could not be written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/export_hf.h"
#include "convert/source.h"
#include "formats/types.h"

int main(int argc, char **argv)
{
    qf_export_hf_opts o = { QF_DTYPE_F32, 0, 0, 0 };
    const char *in = NULL, *out = NULL;
    qf_source *s = NULL;
    qf_err err = { 0 };
    int i, rc;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--force"))
            o.flags |= QF_EXPORT_FORCE;
        else if (!strcmp(a, "--shard-size") && i + 1 < argc)
            o.shard_bytes = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "f32"))
            o.dtype = QF_DTYPE_F32;
        else if (!strcmp(a, "f16"))
            o.dtype = QF_DTYPE_F16;
        else if (!strcmp(a, "bf16"))
            o.dtype = QF_DTYPE_BF16;
        else if (!in)
            in = a;
        else if (!out)
            out = a;
        else
            in = NULL, i = argc;
    }
    if (!in || !out) {
        fprintf(stderr, "usage: util_export_hf IN OUT_DIR [f16|bf16|f32] [--force] [--shard-size BYTES]\n");
        return 2;
    }
    rc = qf_source_open(in, &s, &err);
    if (!rc)
        rc = qf_export_hf_ex(s, out, &o, &err);
    qf_source_close(s);
    if (rc) {
        fprintf(stderr, "util_export_hf: %s\n", err.msg);
        return 1;
    }
    if (o.report & QF_EXPORT_REPORT_NO_TOKENIZER)
        fprintf(stderr, "util_export_hf: %s: no tokenizer written (vocabulary not SentencePiece)\n", out);
    return 0;
}
