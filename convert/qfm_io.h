/*
 * convert/qfm_io.h - QFM files as models: GGUF -> QFM (import), QFM -> GGUF
 * (export, byte for byte the GGUF that was imported), opening a QFM with
 * every type qforge knows (ggml types and the affine types of
 * quantize/affine.h), and the provenance a QFM carries.
 *
 * Import refuses a GGUF that a canonical writer would not give back byte for
 * byte (a version other than 3, non-zero padding, bytes after the last
 * tensor's padding), so that export always reproduces the input exactly.
 */
#ifndef QF_QFM_IO_H
#define QF_QFM_IO_H

#include <stdint.h>

#include "formats/error.h"
#include "formats/qfm.h"

/* The type resolver for qf_qfm_open: sizes the affine types ("int4-g64",
 * "int8-ch", ...) by qf_affine_row_size. */
int qf_qfm_affine_types(void *ctx, const char *type, uint32_t n_dims, const uint64_t *ne,
                        uint64_t *nbytes, qf_err *err);

/* qf_qfm_open with that resolver. */
int qf_qfm_open_model(const char *path, qf_qfm **out, qf_err *err);

/* The SHA-256 of the file at `path` in hex, as sha256sum prints it (caller's
 * buffer), and its size in bytes. Returns 0 or an I/O error naming the file. */
int qf_qfm_hash_file(const char *path, char hex[QF_SHA256_HEX], uint64_t *size, qf_err *err);

/*
 * Provenance for a file made from `sources` (n paths: each is hashed, as
 * sha256sum prints it; a folder's regular files are hashed one by one,
 * sorted by name) by the command line argv[0..argc). Sets "sources",
 * "qforge_version", "command_line" and "created" (UTC, ISO 8601) on w.
 */
int qf_qfm_set_basic_provenance(qf_qfm_writer *w, const char *const *sources, int n, int argc,
                                char **argv, qf_err *err);

/*
 * GGUF at `in` -> QFM at `out` (flags as qf_out_open). argv/argc (may be
 * 0/NULL) go into the provenance. Returns 0 or a negative code; on failure
 * nothing is left at `out`.
 */
int qf_qfm_import(const char *in, const char *out, int flags, const qf_qfm_opts *opts, int argc,
                  char **argv, qf_err *err);

/*
 * QFM at `in` -> GGUF at `out`. Every tensor is checked against its SHA-256
 * as it streams out; on a mismatch nothing is left at `out` and the message
 * names the tensor. Types without a GGUF counterpart (affine) are refused.
 */
int qf_qfm_export_gguf(const char *in, const char *out, int flags, qf_err *err);

#endif /* QF_QFM_IO_H */
