/*
 * formats/hash.h - SHA-256 (libcrypto underneath), streaming and one-shot.
 * Used for per-tensor digests, manifests and file checksums.
 */
#ifndef QF_HASH_H
#define QF_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"

#define QF_SHA256_LEN 32
#define QF_SHA256_HEX 65 /* 64 hex digits + NUL */

typedef struct qf_sha256 qf_sha256;

/* New context, ready for updates; NULL if out of memory. Owned by the
 * caller: free with qf_sha256_free (accepts NULL). */
qf_sha256 *qf_sha256_new(void);
void qf_sha256_free(qf_sha256 *h);

/* Start over. */
void qf_sha256_reset(qf_sha256 *h);
void qf_sha256_update(qf_sha256 *h, const void *data, size_t n);
/* Write the digest to out (caller's buffer of 32 bytes); the context must be
 * reset before it is used again. */
void qf_sha256_final(qf_sha256 *h, uint8_t out[QF_SHA256_LEN]);

/* One shot. Returns 0 or QF_ENOMEM. */
int qf_sha256_buf(const void *data, size_t n, uint8_t out[QF_SHA256_LEN]);

/* Lower-case hex of a digest into hex (caller's buffer of 65 bytes). */
void qf_sha256_hex(const uint8_t d[QF_SHA256_LEN], char hex[QF_SHA256_HEX]);

/* Parse 64 hex digits (either case); returns 0 or QF_EFORMAT. */
int qf_sha256_parse(const char *hex, uint8_t out[QF_SHA256_LEN]);

/* ---------------------------------------------------------------------
 * Manifests: the line format of llama.cpp's `llama-gguf-hash --sha256`
 *
 *   sha256    <64 hex>  <label>:<tensor name>     one line per tensor
 *   sha256    <64 hex>  <label>                   all tensor data in order
 * ------------------------------------------------------------------- */

/* Digests of a file's tensors (plain value struct; pointers borrowed). */
typedef struct qf_digest_list {
    int64_t n;
    const uint8_t (*digests)[QF_SHA256_LEN]; /* n digests, in file order */
    const uint8_t *all;                     /* digest of all tensor data */
    const char *const *names;               /* n names, or NULL: see name_at */
} qf_digest_list;

/*
 * Write a manifest to `path` atomically (flags as qf_out_open). `label` is
 * the file name the lines carry (usually the model file's base name, so the
 * manifest checks from beside it). name_at(ctx, i) gives tensor i's name when
 * d->names is NULL. Returns 0 or QF_EIO / QF_EEXIST / QF_ENOMEM.
 */
int qf_manifest_write(const char *path, int flags, const char *label, const qf_digest_list *d,
                      const char *(*name_at)(const void *ctx, int64_t i), const void *ctx,
                      qf_err *err);

#endif /* QF_HASH_H */
