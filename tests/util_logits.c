/*
 * util_logits - run the reference forward pass over a JSON array of token
 * ids and compare the logits with a raw float32 file (n_tokens x n_vocab,
 * row-major, little-endian), as PyTorch wrote them.
 *
 *   util_logits MODEL TOKENS.json REF.f32 [-t N] [-b N_BATCH] [--isa generic|avx2|avx512]
 *               [--numerics f32|ggml]
 *
 * Prints one line:
 *   max_abs_err=<e> max_abs_logit=<m> rel=<e/m> argmax_agree=<k>/<n>
 * Exit 0 if it ran (the caller judges the numbers), 1 on an error.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/source.h"
#include "verify/gemm.h"
#include "verify/model.h"

static char *slurp(const char *path, long *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = '\0';
        *len = n;
    } else {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    qf_err err = { 0 };
    qf_source *src = NULL;
    qf_model *m = NULL;
    qf_model_state *st = NULL;
    cJSON *js = NULL;
    char *text = NULL, *refb = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    const float *ref;
    long len, rlen;
    int64_t n, V, i, k, agree = 0, n_batch = 0;
    int threads = 1, rc = 1, a, numerics = QF_NUMERICS_F32;
    double max_err = 0, max_ref = 0;

    if (argc < 4) {
        fprintf(stderr, "usage: util_logits MODEL TOKENS.json REF.f32 [-t N] [-b N] [--isa I]\n");
        return 2;
    }
    for (a = 4; a + 1 < argc; a += 2) {
        if (!strcmp(argv[a], "-t"))
            threads = atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "-b"))
            n_batch = atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--numerics"))
            numerics = !strcmp(argv[a + 1], "ggml") ? QF_NUMERICS_GGML : QF_NUMERICS_F32;
        else if (!strcmp(argv[a], "--isa"))
            qf_gemm_set_isa(!strcmp(argv[a + 1], "generic") ? QF_GEMM_ISA_GENERIC
                            : !strcmp(argv[a + 1], "avx2") ? QF_GEMM_ISA_AVX2
                                                             : QF_GEMM_ISA_AVX512);
    }
    if (!(text = slurp(argv[2], &len)) || !(js = cJSON_Parse(text)) || !cJSON_IsArray(js)) {
        fprintf(stderr, "util_logits: %s: not a JSON array\n", argv[2]);
        goto done;
    }
    n = cJSON_GetArraySize(js);
    ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
    for (i = 0; i < n; i++)
        ids[i] = (int32_t)cJSON_GetArrayItem(js, (int)i)->valueint;
    if (qf_source_open(argv[1], &src, &err) || qf_model_load(src, threads, &m, &err) ||
        qf_model_state_new(m, n, n_batch, threads, numerics, &st, &err))
        goto fail;
    V = qf_model_get_config(m)->n_vocab;
    if (!(refb = slurp(argv[3], &rlen)) || rlen != (long)(n * V * 4)) {
        fprintf(stderr, "util_logits: %s: expected %lld floats\n", argv[3], (long long)(n * V));
        goto done;
    }
    ref = (const float *)(const void *)refb;
    logits = malloc((size_t)(n * V) * sizeof(float));
    if (qf_model_eval(m, st, ids, n, 0, logits, &err))
        goto fail;
    for (i = 0; i < n; i++) {
        int64_t am = 0, ar = 0;
        for (k = 0; k < V; k++) {
            double e = fabs((double)logits[i * V + k] - (double)ref[i * V + k]);
            if (e > max_err)
                max_err = e;
            if (fabs((double)ref[i * V + k]) > max_ref)
                max_ref = fabs((double)ref[i * V + k]);
            if (logits[i * V + k] > logits[i * V + am])
                am = k;
            if (ref[i * V + k] > ref[i * V + ar])
                ar = k;
        }
        agree += am == ar;
    }
    printf("max_abs_err=%.6g max_abs_logit=%.6g rel=%.6g argmax_agree=%lld/%lld\n", max_err,
           max_ref, max_ref > 0 ? max_err / max_ref : 0.0, (long long)agree, (long long)n);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "util_logits: %s\n", err.msg);
done:
    qf_model_state_free(st);
    qf_model_free(m);
    qf_source_close(src);
    cJSON_Delete(js);
    free(text);
    free(refb);
    free(ids);
    free(logits);
    return rc;
}
