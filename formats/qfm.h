/*
 * formats/qfm.h - QFM, qforge's model file: verifiable, compressible,
 * self-describing. A GGUF is what a runtime loads; a QFM is what people keep,
 * ship and audit. Every byte is described by a JSON header, every tensor
 * carries the SHA-256 of its bytes, and the GGUF it stands for can be
 * written back byte for byte. docs/qfm.md has the full specification.
 *
 * The file, all integers little-endian:
 *
 *   offset          size  field
 *   0               4     magic "QFM\0" (51 46 4d 00)
 *   4               4     version u32 = 1
 *   8               8     header_len u64 = H (1 <= H <= 1 GiB)
 *   16              H     header: one JSON object, UTF-8, possibly followed
 *                         by ASCII spaces (0x20) up to H bytes
 *   16+H            P     zero bytes up to data_offset = align64(16 + H)
 *   data_offset     D     tensor data (D = header "data_size", a multiple
 *                         of 64): tensor i's stored bytes at data_offset +
 *                         its "offset", then zeros up to the next multiple
 *                         of 64
 *   data_offset+D   8     trailer magic "QFMROOT\0"
 *   data_offset+D+8 32    root: the file digest (below)
 *                         the file ends here: size = data_offset + D + 40
 *
 * The header (all keys required unless marked optional):
 *
 *   {
 *     "gguf": {"version": 3, "alignment": 32},
 *     "metadata": [                      GGUF key/value pairs, in GGUF order
 *       {"key": "general.architecture", "type": "STRING", "value": "llama"},
 *       {"key": "llama.block_count", "type": "UINT32", "value": 2},
 *       {"key": "x.big", "type": "UINT64", "value": "18446744073709551615"},
 *       {"key": "x.eps", "type": "FLOAT32", "value": "9.99999975e-06"},
 *       {"key": "tokenizer.ggml.tokens", "type": "ARRAY",
 *        "element_type": "STRING", "value": ["<unk>", "<s>"]}, ...],
 *     "tensors": [                       GGUF tensor-info order
 *       {"name": "token_embd.weight", "type": "F16", "shape": [64, 512],
 *        "offset": 0, "size": 65536, "codec": "zstd", "shuffle": 2,
 *        "frame_size": 4194304, "frames": [51234], "stored_size": 51234,
 *        "sha256": "<64 hex>", "stored_sha256": "<64 hex>"}, ...],
 *     "data_size": 51264,
 *     "provenance": { ... }              free-form object (optional)
 *   }
 *
 *   values: UINT8..INT32 JSON integers; UINT64/INT64 decimal strings;
 *           BOOL true/false; FLOAT32/FLOAT64 decimal strings that read back
 *           to the same bits ("%.9g" / "%.17g"; "inf", "-inf", "nan" for the
 *           default quiet NaN, "nan:0x<hex bits>" for any other NaN);
 *           STRING a JSON string, or {"hex": "..."} when the bytes are not
 *           UTF-8 or hold a NUL; ARRAY a JSON array of its elements, and an
 *           element that is itself an array is {"element_type": T,
 *           "value": [...]}.
 *   type:   a ggml type name ("F32", "Q4_K") or a type the caller resolves
 *           (QFM's affine types, "int4-g64"; see qf_qfm_type_fn).
 *   shape:  ggml order, shape[0] is the row length; 1..4 dims, each >= 1.
 *   size:   bytes of the tensor as a GGUF holds it (uncompressed).
 *   offset: from data_offset; a multiple of 64; tensors follow one another
 *           in table order, each at the first multiple of 64 after the
 *           previous one's stored bytes.
 *   codec:  "raw" (stored_size = size, the bytes as they are: an
 *           uncompressed tensor can be mapped and used in place) or "zstd":
 *           the tensor is cut into frames of frame_size bytes (the last one
 *           shorter), each compressed as one independent zstd frame;
 *           "frames" lists their compressed sizes, which add up to
 *           stored_size. With "shuffle": k (2, 4 or 8; 0 or absent: none)
 *           each frame's bytes were regrouped before compression: byte j of
 *           element e goes to position j * (n / k) + e, n the frame's
 *           length.
 *   sha256: of the tensor's uncompressed bytes (what GGUF holds);
 *           stored_sha256: of its stored bytes (checkable with dd and
 *           sha256sum without decompressing).
 *
 * File digest (root): SHA-256 of the H header bytes (as stored, padding
 * included) followed by the 32-byte SHA-256 of every tensor's uncompressed
 * bytes, in table order. The header fixes every digest and layout detail,
 * so a reader that checks the header against the root at open, then each
 * tensor against its digest, has checked the whole file, and names the
 * tensor that differs.
 *
 * The reader trusts nothing: magic, version, header length against the file
 * size, JSON syntax (no \u0000 escapes), every field's JSON type and range,
 * duplicate keys and tensor names, GGUF value encodings (via the GGUF
 * writer's checks), type names, dims and the byte size they imply (overflow
 * checked), codecs, shuffle widths, frame counts and sizes against
 * ZSTD_compressBound, offsets (aligned, in order, not overlapping, inside
 * the data section), data_size, the trailer, and the root over the header.
 * Tensor bytes are checked when read (qf_qfm_read_tensor, qf_qfm_stream).
 */
#ifndef QF_QFM_H
#define QF_QFM_H

#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"
#include "formats/gguf.h"
#include "formats/hash.h"

#define QF_QFM_MAGIC "QFM\0"
#define QF_QFM_VERSION 1
#define QF_QFM_ALIGN 64
#define QF_QFM_TRAILER_MAGIC "QFMROOT\0"
#define QF_QFM_TRAILER 40                       /* magic + root */
#define QF_QFM_MAX_HEADER (1ull << 30)           /* 1 GiB of JSON */
#define QF_QFM_MAX_FRAME (1ull << 30)
#define QF_QFM_DEFAULT_FRAME (4ull << 20)        /* 4 MiB */
#define QF_QFM_DEFAULT_LEVEL 3

typedef enum qf_qfm_codec {
    QF_QFM_RAW = 0,
    QF_QFM_ZSTD = 1,
} qf_qfm_codec;

/* "raw", "zstd"; "?" for anything else. */
const char *qf_qfm_codec_name(int codec);

/* 1 if the first bytes of buf (n of them) are a QFM magic. */
int qf_qfm_sniff(const void *buf, size_t n);

/*
 * Byte size of a tensor whose type is not a ggml type. Returns 0 and sets
 * *nbytes, QF_ENOTFOUND if the name is unknown (err untouched), or another
 * negative code (the shape does not suit the type) with a message in err.
 * The reader resolves ggml type names itself and calls this for the rest;
 * without one, other names are refused as unknown types.
 */
typedef int (*qf_qfm_type_fn)(void *ctx, const char *type, uint32_t n_dims, const uint64_t *ne,
                              uint64_t *nbytes, qf_err *err);

/* ---------------------------------------------------------------------
 * Reader
 * ------------------------------------------------------------------- */

typedef struct qf_qfm qf_qfm;

/* One tensor (plain value struct, borrowed from the reader). */
typedef struct qf_qfm_tensor {
    const char *name;
    const char *type_name;          /* as the header spells it */
    int ggml_type;                  /* ggml type id, or -1 for a resolved non-ggml type */
    uint32_t n_dims;                /* 1..4 */
    uint64_t ne[QF_GGUF_MAX_DIMS];  /* ne[0] = row length; unused dims are 1 */
    uint64_t n_elements;
    uint64_t n_rows;                /* ne[1] * ne[2] * ne[3] */
    uint64_t nbytes;                /* uncompressed bytes */
    uint64_t offset;                /* from the data offset */
    uint64_t stored_size;           /* bytes in the file */
    int codec;                      /* qf_qfm_codec */
    int shuffle;                    /* 0, 2, 4 or 8 */
    uint64_t frame_size;            /* zstd: uncompressed bytes per frame */
    int64_t n_frames;               /* zstd: ceil(nbytes / frame_size); raw: 0 */
    const uint64_t *frames;         /* zstd: n_frames compressed sizes */
    uint8_t sha256[QF_SHA256_LEN];        /* of the uncompressed bytes */
    uint8_t stored_sha256[QF_SHA256_LEN]; /* of the stored bytes */
    const uint8_t *stored;          /* the stored bytes (in the mapping) */
    const uint8_t *data;            /* raw: the bytes in place (== stored); zstd: NULL */
} qf_qfm_tensor;

/*
 * Open and validate `path` (mapped read-only). `types` (may be NULL) sizes
 * non-ggml types. Returns 0 and sets *out (owned by the caller:
 * qf_qfm_close), or QF_EIO / QF_EFORMAT / QF_ETRUNC / QF_ELIMIT /
 * QF_EUNSUPPORTED / QF_EMISMATCH (the header does not match the root) /
 * QF_ENOMEM, with a message that starts with the path and names the key or
 * tensor.
 */
int qf_qfm_open(const char *path, qf_qfm_type_fn types, void *types_ctx, qf_qfm **out,
                qf_err *err);

/* Same over a caller's buffer (borrowed: it must outlive the reader); `name`
 * is used in messages. The entry point for fuzzing. */
int qf_qfm_open_buffer(const void *buf, uint64_t size, const char *name, qf_qfm_type_fn types,
                       void *types_ctx, qf_qfm **out, qf_err *err);

void qf_qfm_close(qf_qfm *q); /* accepts NULL */

const char *qf_qfm_path(const qf_qfm *q);
uint64_t qf_qfm_file_size(const qf_qfm *q);
uint64_t qf_qfm_header_len(const qf_qfm *q);
uint64_t qf_qfm_data_offset(const qf_qfm *q);
uint64_t qf_qfm_data_size(const qf_qfm *q);
uint32_t qf_qfm_gguf_version(const qf_qfm *q);
uint32_t qf_qfm_gguf_alignment(const qf_qfm *q);
/* The stored root (32 bytes, borrowed). */
const uint8_t *qf_qfm_root(const qf_qfm *q);
/* The header's bytes (H of them, borrowed, not NUL-terminated). */
const char *qf_qfm_header(const qf_qfm *q);

/* Metadata as GGUF pairs, in order, held in a GGUF writer (borrowed): read
 * them with the qf_gguf_writer_kv_* getters, copy them with
 * qf_gguf_writer_set_raw. */
const qf_gguf_writer *qf_qfm_metadata(const qf_qfm *q);

/* The provenance object as compact JSON text ("{}" if absent; borrowed). */
const char *qf_qfm_provenance(const qf_qfm *q);

int64_t qf_qfm_tensor_count(const qf_qfm *q);
const qf_qfm_tensor *qf_qfm_tensor_at(const qf_qfm *q, int64_t i); /* NULL if out of range */
int64_t qf_qfm_find_tensor(const qf_qfm *q, const char *name);       /* index or -1 */

/*
 * Stream tensor i's uncompressed bytes to fn in order (chunks of at most one
 * frame), checking every frame and, at the end, the SHA-256; fn returns 0
 * to go on or a negative code to stop (returned as is). `digest` (may be
 * NULL) receives the SHA-256 computed. Memory: one frame. Thread-safe (calls
 * on different tensors, or the same, may run at once). Returns 0,
 * QF_EFORMAT (a frame does not decompress to its size), QF_EMISMATCH (the
 * bytes differ from the header's digest: "x.qfm: tensor "name": SHA-256
 * mismatch ...") or QF_ENOMEM. fn may be NULL to only check.
 */
typedef int (*qf_qfm_sink_fn)(void *ctx, const void *data, size_t n);
int qf_qfm_stream(const qf_qfm *q, int64_t i, qf_qfm_sink_fn fn, void *ctx,
                  uint8_t digest[QF_SHA256_LEN], qf_err *err);

/* Tensor i's uncompressed bytes into dst (caller's buffer of dst_cap >=
 * nbytes), checked as qf_qfm_stream checks them. */
int qf_qfm_read_tensor(const qf_qfm *q, int64_t i, void *dst, uint64_t dst_cap, qf_err *err);

/*
 * Bytes [off, off + n) of tensor i's uncompressed bytes into dst, decoding
 * only the frames that cover them (no digest check: a part cannot be
 * checked). `scratch` (may be NULL) is a buffer of 2 * frame_size bytes the call
 * may use to avoid an allocation. Thread-safe. Returns 0, QF_EINVAL (range)
 * or QF_EFORMAT / QF_ENOMEM.
 */
int qf_qfm_read_range(const qf_qfm *q, int64_t i, uint64_t off, uint64_t n, void *dst,
                      void *scratch, qf_err *err);

/* The root over the header and the given digests (one per tensor, in table
 * order): what a checker compares with qf_qfm_root. */
int qf_qfm_compute_root(const qf_qfm *q, const uint8_t (*digests)[QF_SHA256_LEN],
                        uint8_t root[QF_SHA256_LEN]);

/* Give back the pages of tensor i's stored bytes (no-op for buffers). */
void qf_qfm_release(const qf_qfm *q, int64_t i);

/* ---------------------------------------------------------------------
 * Writer
 * ------------------------------------------------------------------- */

typedef struct qf_qfm_opts {
    int codec;           /* QF_QFM_RAW or QF_QFM_ZSTD */
    int level;           /* zstd level 1..22 (0: QF_QFM_DEFAULT_LEVEL) */
    int threads;         /* compressing threads (>= 1; 0: 1) */
    uint64_t frame_size; /* 0: QF_QFM_DEFAULT_FRAME; a multiple of 64 */
} qf_qfm_opts;

typedef struct qf_qfm_writer qf_qfm_writer;

/*
 * New writer. With `meta` (may be NULL) every key/value pair and every
 * declared tensor of that GGUF writer is taken over (copied: `meta` may be
 * freed after), so a pipeline that builds a qf_gguf_writer can target QFM
 * by handing it over. `opts` may be NULL (zstd, default level, 1 thread).
 * Returns 0 and sets *out (owned by the caller: qf_qfm_writer_free), or
 * QF_EINVAL / QF_ENOMEM.
 */
int qf_qfm_writer_new(const qf_gguf_writer *meta, const qf_qfm_opts *opts, qf_qfm_writer **out,
                      qf_err *err);

/* Free, abandoning any output in progress. Accepts NULL. */
void qf_qfm_writer_free(qf_qfm_writer *w);

/* The metadata (borrowed, writable until begin): set keys with the
 * qf_gguf_writer_set_* calls. Tensors are declared on the QFM writer. */
qf_gguf_writer *qf_qfm_writer_metadata(qf_qfm_writer *w);

/*
 * Declare the next tensor by type name: a ggml name (the size is checked
 * against `nbytes`) or any other name with its byte size (the caller
 * vouches for it; e.g. "int4-g64" sized by qf_affine_row_size). Tensors
 * declared in the metadata writer come first, then these, in order.
 * Returns 0, QF_EINVAL (duplicate or bad name, bad dims, wrong size) or
 * QF_ENOMEM.
 */
int qf_qfm_writer_add_tensor(qf_qfm_writer *w, const char *name, const char *type,
                             uint32_t n_dims, const uint64_t *ne, uint64_t nbytes, qf_err *err);

/*
 * Set provenance field `key` to the JSON value in `json` (any JSON text:
 * object, string, number...), replacing it if present; json == NULL removes
 * it. Before begin. Returns 0, QF_EINVAL (bad JSON) or QF_ENOMEM.
 */
int qf_qfm_writer_set_provenance(qf_qfm_writer *w, const char *key, const char *json,
                                 qf_err *err);

/* Open the output (atomic; flags as qf_out_open) and reserve the header.
 * Returns 0 or QF_EIO / QF_EEXIST / QF_ENOMEM / QF_EINVAL. */
int qf_qfm_writer_begin(qf_qfm_writer *w, const char *path, int flags, qf_err *err);

/* Append uncompressed tensor data: bytes flow into the declared tensors in
 * order, as qf_gguf_writer_write. Memory stays a few frames per thread. */
int qf_qfm_writer_write(qf_qfm_writer *w, const void *data, uint64_t n, qf_err *err);

/* Check every declared byte was supplied, write the header, the trailer,
 * and commit. Returns 0, QF_EINVAL (data missing) or QF_EIO. */
int qf_qfm_writer_finish(qf_qfm_writer *w, qf_err *err);

/* After finish: bytes written, and uncompressed tensor bytes. */
uint64_t qf_qfm_writer_file_size(const qf_qfm_writer *w);
uint64_t qf_qfm_writer_data_bytes(const qf_qfm_writer *w);

/* ---------------------------------------------------------------------
 * Provenance rewrite
 * ------------------------------------------------------------------- */

enum { QF_QFM_PROV_REPLACE = 1 }; /* flags: replace the whole object instead of merging */

/*
 * Rewrite the QFM at `path` with its provenance changed: `json` is a JSON
 * object whose fields replace (or add to) the existing ones; a field set to
 * null removes it; with QF_QFM_PROV_REPLACE the object replaces the old one.
 * Every tensor's stored bytes are copied unchanged (they are not decoded),
 * the header and root are recomputed, and the new file replaces the old one
 * atomically (temp file, fsync, rename). The input is checked first (as
 * qf_qfm_open checks it; `types` as there). Returns 0 or a negative code;
 * on failure the file is left as it was.
 */
int qf_qfm_rewrite_provenance(const char *path, const char *json, int flags, qf_qfm_type_fn types,
                              void *types_ctx, qf_err *err);

#endif /* QF_QFM_H */
