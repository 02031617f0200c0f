#include "formats/hash.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/file.h"

struct qf_sha256 {
    EVP_MD_CTX *ctx;
};

qf_sha256 *qf_sha256_new(void)
{
    qf_sha256 *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        qf_sha256_free(h);
        return NULL;
    }
    return h;
}

void qf_sha256_free(qf_sha256 *h)
{
    if (!h)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

void qf_sha256_reset(qf_sha256 *h) { EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL); }

void qf_sha256_update(qf_sha256 *h, const void *data, size_t n)
{
    if (n)
        EVP_DigestUpdate(h->ctx, data, n);
}

void qf_sha256_final(qf_sha256 *h, uint8_t out[QF_SHA256_LEN])
{
    unsigned int len = QF_SHA256_LEN;
    EVP_DigestFinal_ex(h->ctx, out, &len);
}

int qf_sha256_buf(const void *data, size_t n, uint8_t out[QF_SHA256_LEN])
{
    qf_sha256 *h = qf_sha256_new();
    if (!h)
        return QF_ENOMEM;
    qf_sha256_update(h, data, n);
    qf_sha256_final(h, out);
    qf_sha256_free(h);
    return 0;
}

void qf_sha256_hex(const uint8_t d[QF_SHA256_LEN], char hex[QF_SHA256_HEX])
{
    static const char digits[] = "0123456789abcdef";
    int i;
    for (i = 0; i < QF_SHA256_LEN; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[64] = '\0';
}

static int nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int qf_sha256_parse(const char *hex, uint8_t out[QF_SHA256_LEN])
{
    int i;
    for (i = 0; i < QF_SHA256_LEN; i++) {
        int a = nibble(hex[2 * i]), b = a < 0 ? -1 : nibble(hex[2 * i + 1]);
        if (a < 0 || b < 0)
            return QF_EFORMAT;
        out[i] = (uint8_t)(a << 4 | b);
    }
    return 0;
}

int qf_manifest_write(const char *path, int flags, const char *label, const qf_digest_list *d,
                      const char *(*name_at)(const void *ctx, int64_t i), const void *ctx,
                      qf_err *err)
{
    qf_out *o = NULL;
    char hex[QF_SHA256_HEX], line[64 + 16];
    int64_t i;
    int rc;

    if ((rc = qf_out_open(path, flags, &o, err)) != 0)
        return rc;
    for (i = 0; i <= d->n; i++) {
        const char *name = i < d->n ? (d->names ? d->names[i] : name_at(ctx, i)) : NULL;
        qf_sha256_hex(i < d->n ? d->digests[i] : d->all, hex);
        snprintf(line, sizeof line, "sha256    %s  ", hex);
        if ((rc = qf_out_write(o, line, strlen(line), err)) != 0 ||
            (rc = qf_out_write(o, label, strlen(label), err)) != 0)
            goto done;
        if (name && ((rc = qf_out_write(o, ":", 1, err)) != 0 ||
                     (rc = qf_out_write(o, name, strlen(name), err)) != 0))
            goto done;
        if ((rc = qf_out_write(o, "\n", 1, err)) != 0)
            goto done;
    }
    rc = qf_out_commit(o, err);
    o = NULL;
done:
    qf_out_close(o);
    return rc;
}
