/*
 * util_plainconvert - the reference point for convert's speed: map the
 * safetensors file(s), convert every tensor to F16 row by row on one thread
 * with the library's scalar conversions, write the bytes to one file. No
 * GGUF, no metadata, no permutation, no threads: the plain cost of moving
 * these bytes through a conversion.
 *
 *   util_plainconvert MODEL_DIR_OR_FILE OUT
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/safetensors.h"
#include "formats/types.h"

int main(int argc, char **argv)
{
    qf_st *st = NULL;
    qf_err err = { 0 };
    int64_t i;
    int fd;
    float *f;
    uint8_t *out;
    enum { CH = 1 << 20 };

    if (argc != 3) {
        fprintf(stderr, "usage: util_plainconvert MODEL OUT\n");
        return 2;
    }
    if (qf_st_open(argv[1], &st, &err)) {
        fprintf(stderr, "util_plainconvert: %s\n", err.msg);
        return 1;
    }
    fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    f = malloc(CH * sizeof *f);
    out = malloc(CH * 2);
    if (fd < 0 || !f || !out)
        return 1;
    for (i = 0; i < qf_st_tensor_count(st); i++) {
        const qf_st_tensor *t = qf_st_tensor_at(st, i);
        uint64_t done = 0, es = qf_dtype_size(t->dtype);
        while (done < t->n_elements) {
            size_t k = t->n_elements - done > CH ? CH : (size_t)(t->n_elements - done);
            qf_dtype_to_f32(t->dtype, t->data + done * es, f, k);
            qf_f32_to_dtype(QF_DTYPE_F16, f, out, k);
            if (write(fd, out, k * 2) != (ssize_t)(k * 2))
                return 1;
            done += k;
        }
    }
    fsync(fd);
    close(fd);
    free(f);
    free(out);
    qf_st_close(st);
    return 0;
}
