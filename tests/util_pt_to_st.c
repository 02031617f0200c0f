/*
 * util_pt_to_st - write the tensors of a PyTorch checkpoint (any file or
 * folder qf_weights_open reads) as one safetensors file: same names, dtypes,
 * shapes and bytes, in the checkpoint's order. The CLI tests use it to get
 * the .safetensors twin of a .bin fixture without torch.
 *
 *   util_pt_to_st IN OUT.safetensors
 */
#include <stdio.h>

#include "formats/safetensors.h"
#include "formats/weights.h"

int main(int argc, char **argv)
{
    qf_weights *w = NULL;
    qf_st_writer *sw = NULL;
    qf_err err = { 0 };
    int64_t i, n;
    int rc = 1;

    if (argc != 3) {
        fprintf(stderr, "usage: util_pt_to_st IN OUT.safetensors\n");
        return 2;
    }
    if (qf_weights_open(argv[1], &w, &err) != 0 || qf_st_writer_new(&sw, &err) != 0)
        goto done;
    n = qf_weights_count(w);
    for (i = 0; i < n; i++) {
        const qf_st_tensor *t = qf_weights_at(w, i);
        if (qf_st_writer_add_tensor(sw, t->name, t->dtype, t->n_dims, t->shape, &err) != 0)
            goto done;
    }
    if (qf_st_writer_begin(sw, argv[2], 0, &err) != 0)
        goto done;
    for (i = 0; i < n; i++) {
        const qf_st_tensor *t = qf_weights_at(w, i);
        if (qf_st_writer_write(sw, t->data, t->nbytes, &err) != 0)
            goto done;
    }
    rc = qf_st_writer_finish(sw, &err) != 0;
done:
    if (rc)
        fprintf(stderr, "util_pt_to_st: %s\n", err.msg[0] ? err.msg : "failed");
    qf_st_writer_free(sw);
    qf_weights_close(w);
    return rc;
}
