/*
 * tests/util_pt_dump.c - list a model's tensors with the SHA-256 of their
 * bytes, one per line, in reader order:
 *
 *   <name>\t<dtype>\t[d0, d1, ...]\t<sha256 of the contiguous bytes>
 *
 *   util_pt_dump [--globals] [--verify] PATH     PyTorch checkpoint, index or folder
 *   util_pt_dump --safetensors PATH              the same listing of a safetensors model
 *
 * --globals adds "global\t<module>.<name>\t<count>" lines after the tensors;
 * --verify checks the storages' CRC-32 first. Used by tests/golden/pytorch.sh
 * to compare a .bin with the .safetensors of the same weights. Exit 1 with
 * "util_pt_dump: <message>" on stderr when the model is refused.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "formats/hash.h"
#include "formats/pytorch.h"
#include "formats/safetensors.h"

static void line(const char *name, qf_dtype dt, uint32_t n_dims, const uint64_t *shape,
                 const uint8_t *data, uint64_t nbytes)
{
    uint8_t d[QF_SHA256_LEN];
    char hex[QF_SHA256_HEX];
    uint32_t k;

    qf_sha256_buf(data, (size_t)nbytes, d);
    qf_sha256_hex(d, hex);
    printf("%s\t%s\t[", name, qf_dtype_name(dt));
    for (k = 0; k < n_dims; k++)
        printf("%s%" PRIu64, k ? ", " : "", shape[k]);
    printf("]\t%s\n", hex);
}

int main(int argc, char **argv)
{
    int globals = 0, verify = 0, st_mode = 0, i = 1;
    qf_err err = { 0 };
    int64_t n, k;

    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--globals") == 0)
            globals = 1;
        else if (strcmp(argv[i], "--verify") == 0)
            verify = 1;
        else if (strcmp(argv[i], "--safetensors") == 0)
            st_mode = 1;
        else
            break;
    }
    if (i != argc - 1) {
        fprintf(stderr, "usage: util_pt_dump [--globals] [--verify] [--safetensors] PATH\n");
        return 2;
    }
    if (st_mode) {
        qf_st *st = NULL;
        if (qf_st_open(argv[i], &st, &err) != 0) {
            fprintf(stderr, "util_pt_dump: %s\n", err.msg);
            return 1;
        }
        n = qf_st_tensor_count(st);
        for (k = 0; k < n; k++) {
            const qf_st_tensor *t = qf_st_tensor_at(st, k);
            line(t->name, t->dtype, t->n_dims, t->shape, t->data, t->nbytes);
        }
        qf_st_close(st);
        return 0;
    }
    {
        qf_pt *pt = NULL;
        if (qf_pt_open(argv[i], &pt, &err) != 0 || (verify && qf_pt_verify(pt, &err) != 0)) {
            fprintf(stderr, "util_pt_dump: %s\n", err.msg);
            qf_pt_close(pt);
            return 1;
        }
        n = qf_pt_tensor_count(pt);
        for (k = 0; k < n; k++) {
            const qf_pt_tensor *t = qf_pt_tensor_at(pt, k);
            line(t->name, t->dtype, t->n_dims, t->shape, t->data, t->nbytes);
        }
        if (globals)
            for (k = 0; k < qf_pt_global_count(pt); k++) {
                const qf_pt_global *g = qf_pt_global_at(pt, k);
                printf("global\t%s.%s\t%" PRIu64 "\n", g->module, g->name, g->count);
            }
        qf_pt_close(pt);
    }
    return 0;
}
