/*
 * tests/util_gguf_rewrite.c - read a GGUF and write it back unchanged.
 *
 *   util_gguf_rewrite IN OUT
 *
 * Every pair is copied with qf_gguf_writer_copy_kv and every tensor declared
 * with the same name, type and dims, its bytes taken from the reader. For a
 * file written by ggml or gguf-py the output must be byte-identical to the
 * input (tests/golden/gguf-roundtrip.sh checks that). OUT is replaced if it
 * exists. Exit 0, or 1 with "util_gguf_rewrite: <message>" on stderr; 2 for
 * usage.
 */
#include <stdio.h>

#include "formats/file.h"
#include "formats/gguf.h"

static int rewrite(const char *in, const char *out, qf_err *err)
{
    qf_gguf *g = NULL;
    qf_gguf_writer *w = NULL;
    int64_t i;
    int rc;

    if ((rc = qf_gguf_open(in, &g, err)) != 0)
        goto done;
    if ((rc = qf_gguf_writer_new(&w, err)) != 0)
        goto done;
    for (i = 0; i < qf_gguf_kv_count(g); i++)
        if ((rc = qf_gguf_writer_copy_kv(w, g, i, err)) != 0)
            goto done;
    for (i = 0; i < qf_gguf_tensor_count(g); i++) {
        const qf_gguf_tensor *t = qf_gguf_tensor_at(g, i);
        if ((rc = qf_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, err)) != 0)
            goto done;
    }
    if ((rc = qf_gguf_writer_begin(w, out, QF_OUT_FORCE, err)) != 0)
        goto done;
    for (i = 0; i < qf_gguf_tensor_count(g); i++) {
        const qf_gguf_tensor *t = qf_gguf_tensor_at(g, i);
        if ((rc = qf_gguf_writer_write(w, t->data, t->nbytes, err)) != 0)
            goto done;
        qf_gguf_release_tensor(g, i);
    }
    rc = qf_gguf_writer_finish(w, err);
done:
    qf_gguf_writer_free(w);
    qf_gguf_close(g);
    return rc;
}

int main(int argc, char **argv)
{
    qf_err err = { 0 };

    if (argc != 3) {
        fprintf(stderr, "usage: util_gguf_rewrite IN OUT\n");
        return 2;
    }
    if (rewrite(argv[1], argv[2], &err) != 0) {
        fprintf(stderr, "util_gguf_rewrite: %s\n", err.msg[0] ? err.msg : qf_err_name(err.code));
        return 1;
    }
    return 0;
}
