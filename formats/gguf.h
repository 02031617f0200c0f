/*
 * formats/gguf.h - GGUF v3 reader and writer.
 *
 * The file, all integers little-endian:
 *
 *   +--------------------------------------------------------------+
 *   | magic "GGUF" | version u32 (3; 2 accepted) | n_tensors u64 | n_kv u64 |
 *   +--------------------------------------------------------------+
 *   | n_kv key/value pairs:                                         |
 *   |   key: string | type u32 | value                              |
 *   +--------------------------------------------------------------+
 *   | n_tensors tensor infos:                                       |
 *   |   name: string | n_dims u32 | ne[n_dims] u64 | type u32 | offset u64 |
 *   +--------------------------------------------------------------+
 *   | zero padding to `alignment`                                   |
 *   +--------------------------------------------------------------+  <- data offset
 *   | tensor data, each tensor at data offset + its offset,         |
 *   | each followed by zero padding to `alignment`                  |
 *   +--------------------------------------------------------------+
 *
 *   string = len u64 | len bytes of UTF-8, no terminator
 *   value  = UINT8/INT8 (1 byte) | UINT16/INT16 (2) | UINT32/INT32/FLOAT32 (4)
 *          | UINT64/INT64/FLOAT64 (8) | BOOL (1 byte, 0 or 1) | STRING
 *          | ARRAY: elem type u32 | n u64 | n values (arrays may nest)
 *   alignment = general.alignment (u32, a power of two) or 32 if absent.
 *   ne[0] is the row length (the fastest-moving dimension); n_dims <= 4.
 *   A tensor's bytes are ne[1]*ne[2]*ne[3] rows of row_size(type, ne[0]).
 *
 * The reader trusts nothing: it checks the magic, the version, byte order
 * (a big-endian file is named as such and refused), every string length and
 * count against the bytes left, UTF-8 keys and names, duplicate keys and
 * names, key/value types, name length < 64, dims within [1, 2^63) whose
 * product does not overflow, known type ids, row length divisible by the
 * block size, the alignment (power of two), tensor offsets that are aligned,
 * equal to the running sum of padded tensor sizes (as ggml requires), and
 * inside the file. A file that passes can be used without further checks.
 *
 * The writer keeps metadata in memory in insertion order (setting an existing
 * key removes it and appends it, as ggml does), computes tensor offsets,
 * writes the header, then streams tensor data and padding through an atomic
 * qf_out. Reading a file and writing back its keys and tensors unchanged
 * gives the same bytes.
 */
#ifndef QF_GGUF_H
#define QF_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"
#include "formats/hash.h"

#define QF_GGUF_MAGIC "GGUF"
#define QF_GGUF_VERSION 3
#define QF_GGUF_MAX_DIMS 4
#define QF_GGUF_MAX_NAME 64 /* a tensor name must be shorter than this (ggml) */
#define QF_GGUF_DEFAULT_ALIGNMENT 32

typedef enum qf_gguf_vtype {
    QF_GGUF_UINT8 = 0,
    QF_GGUF_INT8 = 1,
    QF_GGUF_UINT16 = 2,
    QF_GGUF_INT16 = 3,
    QF_GGUF_UINT32 = 4,
    QF_GGUF_INT32 = 5,
    QF_GGUF_FLOAT32 = 6,
    QF_GGUF_BOOL = 7,
    QF_GGUF_STRING = 8,
    QF_GGUF_ARRAY = 9,
    QF_GGUF_UINT64 = 10,
    QF_GGUF_INT64 = 11,
    QF_GGUF_FLOAT64 = 12,
    QF_GGUF_VTYPE_COUNT = 13
} qf_gguf_vtype;

/* "UINT32", "STRING", "ARRAY", ... as gguf_dump prints them; "?" if bad. */
const char *qf_gguf_vtype_name(int t);

/* Size in bytes of a fixed-size value type; 0 for STRING, ARRAY, bad ids. */
size_t qf_gguf_vtype_size(int t);

/*
 * A decoded value (plain value struct; every pointer borrowed from the file
 * or buffer it came from).
 *   integer types and BOOL: `u` holds the value zero-extended (unsigned
 *                           types, BOOL) and `i` sign-extended (signed types);
 *                           both are filled so callers can read either.
 *   FLOAT32/FLOAT64:        `f`.
 *   STRING:                 `str`, `str_len` (not NUL-terminated).
 *   ARRAY:                  `arr_type`, `arr_n`; elements are read with
 *                           qf_gguf_iter.
 *   every type:             `raw`, `raw_len`: the encoded bytes of the value
 *                           (for ARRAY including its type and count).
 */
typedef struct qf_gguf_val {
    qf_gguf_vtype type;
    uint64_t u;
    int64_t i;
    double f;
    const char *str;
    uint64_t str_len;
    qf_gguf_vtype arr_type;
    uint64_t arr_n;
    const uint8_t *raw;
    uint64_t raw_len;
} qf_gguf_val;

/* Iterator over the elements of an ARRAY value (plain value struct). */
typedef struct qf_gguf_iter {
    const uint8_t *p;    /* next element */
    const uint8_t *end;  /* end of the array's bytes */
    qf_gguf_vtype type;  /* element type */
    uint64_t left;       /* elements not yet returned */
} qf_gguf_iter;

/* Start iterating `arr` (which must be an ARRAY value). */
void qf_gguf_iter_init(qf_gguf_iter *it, const qf_gguf_val *arr);

/* Decode the next element into *out: returns 1, 0 at the end, or
 * QF_EFORMAT if the bytes are malformed (never for a validated file). */
int qf_gguf_iter_next(qf_gguf_iter *it, qf_gguf_val *out);

/* ---------------------------------------------------------------------
 * Reader
 * ------------------------------------------------------------------- */

typedef struct qf_gguf qf_gguf;

/* One tensor (plain value struct, borrowed from the reader). */
typedef struct qf_gguf_tensor {
    const char *name;              /* NUL-terminated */
    int type;                      /* ggml type id (formats/types.h) */
    uint32_t n_dims;               /* 1..4 */
    uint64_t ne[QF_GGUF_MAX_DIMS]; /* ne[0] = row length; unused dims are 1 */
    uint64_t n_elements;
    uint64_t offset;               /* bytes from the data offset */
    uint64_t nbytes;               /* bytes of data, without padding */
    const uint8_t *data;           /* the bytes (inside the file's mapping) */
    uint64_t info_offset;          /* file offset of this tensor's info */
} qf_gguf_tensor;

/*
 * Open and validate `path`. Returns 0 and sets *out (owned by the caller:
 * free with qf_gguf_close), or QF_EIO / QF_EFORMAT / QF_ETRUNC / QF_ELIMIT /
 * QF_EUNSUPPORTED / QF_ENOMEM with a message that starts with the path.
 * QF_ETRUNC: the file ends before something it announces (a string, a
 * count that the bytes left cannot hold, tensor data). QF_EUNSUPPORTED:
 * GGUF version 1, versions above 3, big-endian files. QF_ELIMIT: arrays
 * nested deeper than 8 levels, sizes that overflow.
 */
int qf_gguf_open(const char *path, qf_gguf **out, qf_err *err);

/*
 * Same, over a caller's buffer of `size` bytes (borrowed: it must outlive the
 * reader). `name` is used in messages. The entry point for fuzzing.
 */
int qf_gguf_open_buffer(const void *buf, uint64_t size, const char *name, qf_gguf **out,
                        qf_err *err);

/* Free; accepts NULL. */
void qf_gguf_close(qf_gguf *g);

const char *qf_gguf_path(const qf_gguf *g);          /* name given at open (borrowed) */
uint32_t qf_gguf_version(const qf_gguf *g);
uint32_t qf_gguf_alignment(const qf_gguf *g);
uint64_t qf_gguf_data_offset(const qf_gguf *g);      /* file offset of the data section */
uint64_t qf_gguf_data_size(const qf_gguf *g);        /* padded tensor bytes */
uint64_t qf_gguf_file_size(const qf_gguf *g);
const uint8_t *qf_gguf_file_data(const qf_gguf *g);  /* all bytes (borrowed) */

/* Key/value pairs, in file order. */
int64_t qf_gguf_kv_count(const qf_gguf *g);
const char *qf_gguf_kv_key(const qf_gguf *g, int64_t i); /* NUL-terminated, borrowed */
qf_gguf_vtype qf_gguf_kv_type(const qf_gguf *g, int64_t i);
uint64_t qf_gguf_kv_offset(const qf_gguf *g, int64_t i); /* file offset of the key */
/* Decode pair i's value into *v. Returns 0 or QF_EINVAL for a bad index. */
int qf_gguf_kv_value(const qf_gguf *g, int64_t i, qf_gguf_val *v);
/* Index of `key`, or -1. */
int64_t qf_gguf_find_key(const qf_gguf *g, const char *key);

/*
 * Typed look-ups by key, for callers that know what they expect.
 * _uint accepts any unsigned or non-negative signed integer type; _int any
 * integer type that fits int64; _float FLOAT32/FLOAT64; _str STRING.
 * Return 0, QF_ENOTFOUND if the key is absent, or QF_EFORMAT if its type
 * does not fit (the message names the key and both types). QF_ENOTFOUND
 * leaves `err` untouched, so optional keys can be probed with the same
 * record. _get_str's *s is borrowed and not NUL-terminated; len may be NULL.
 */
int qf_gguf_get_uint(const qf_gguf *g, const char *key, uint64_t *v, qf_err *err);
int qf_gguf_get_int(const qf_gguf *g, const char *key, int64_t *v, qf_err *err);
int qf_gguf_get_float(const qf_gguf *g, const char *key, double *v, qf_err *err);
int qf_gguf_get_bool(const qf_gguf *g, const char *key, int *v, qf_err *err);
int qf_gguf_get_str(const qf_gguf *g, const char *key, const char **s, uint64_t *len,
                    qf_err *err);

/* Tensors, in file order. */
int64_t qf_gguf_tensor_count(const qf_gguf *g);
const qf_gguf_tensor *qf_gguf_tensor_at(const qf_gguf *g, int64_t i); /* NULL if out of range */
int64_t qf_gguf_find_tensor(const qf_gguf *g, const char *name);        /* index or -1 */

/* Give back the pages of tensor i once it has been consumed (no-op for
 * buffers). */
void qf_gguf_release_tensor(const qf_gguf *g, int64_t i);

/* Same for bytes [off, off + len) of tensor i's data (offsets relative to
 * t->data, clipped to the tensor): for callers streaming a large tensor.
 * Only pages wholly inside the range are given back. No-op for buffers and
 * bad indexes. */
void qf_gguf_release_range(const qf_gguf *g, int64_t i, uint64_t off, uint64_t len);

/* ---------------------------------------------------------------------
 * Writer
 * ------------------------------------------------------------------- */

typedef struct qf_gguf_writer qf_gguf_writer;

/* New empty writer (version 3, alignment 32 until general.alignment is set).
 * Returns 0 and sets *out (owned by the caller: qf_gguf_writer_free). */
int qf_gguf_writer_new(qf_gguf_writer **out, qf_err *err);

/* Free, abandoning any output in progress (its temp file is removed).
 * Accepts NULL. */
void qf_gguf_writer_free(qf_gguf_writer *w);

/*
 * Set a key. Setting an existing key removes the old pair and appends the new
 * one. Setting "general.alignment" (UINT32, a power of two) changes the
 * alignment. Keys must be valid UTF-8, 1..65535 bytes. Return 0, QF_EINVAL
 * (bad key or value) or QF_ENOMEM. Calls after qf_gguf_writer_begin fail.
 */
int qf_gguf_writer_set_u8(qf_gguf_writer *w, const char *key, uint8_t v, qf_err *err);
int qf_gguf_writer_set_i8(qf_gguf_writer *w, const char *key, int8_t v, qf_err *err);
int qf_gguf_writer_set_u16(qf_gguf_writer *w, const char *key, uint16_t v, qf_err *err);
int qf_gguf_writer_set_i16(qf_gguf_writer *w, const char *key, int16_t v, qf_err *err);
int qf_gguf_writer_set_u32(qf_gguf_writer *w, const char *key, uint32_t v, qf_err *err);
int qf_gguf_writer_set_i32(qf_gguf_writer *w, const char *key, int32_t v, qf_err *err);
int qf_gguf_writer_set_u64(qf_gguf_writer *w, const char *key, uint64_t v, qf_err *err);
int qf_gguf_writer_set_i64(qf_gguf_writer *w, const char *key, int64_t v, qf_err *err);
int qf_gguf_writer_set_f32(qf_gguf_writer *w, const char *key, float v, qf_err *err);
int qf_gguf_writer_set_f64(qf_gguf_writer *w, const char *key, double v, qf_err *err);
int qf_gguf_writer_set_bool(qf_gguf_writer *w, const char *key, int v, qf_err *err);
int qf_gguf_writer_set_str(qf_gguf_writer *w, const char *key, const char *s, qf_err *err);
/* String of known length (may hold any bytes that are valid UTF-8). */
int qf_gguf_writer_set_strn(qf_gguf_writer *w, const char *key, const char *s, uint64_t len,
                            qf_err *err);
/* Array of fixed-size elements given in host representation (uint8_t[] for
 * UINT8/BOOL, int32_t[] for INT32, float[] for FLOAT32, ...). */
int qf_gguf_writer_set_arr(qf_gguf_writer *w, const char *key, qf_gguf_vtype elt,
                           const void *vals, uint64_t n, qf_err *err);
/* Array of strings; lens may be NULL for NUL-terminated strings. */
int qf_gguf_writer_set_arr_str(qf_gguf_writer *w, const char *key, const char *const *strs,
                               const uint64_t *lens, uint64_t n, qf_err *err);
/* Set a value from its encoded bytes (as qf_gguf_val.raw holds them: for
 * STRING the length prefix, for ARRAY the element type and count first).
 * The encoding is checked as the reader checks it (nested arrays allowed, up
 * to 8 levels); QF_EINVAL if malformed or if bytes are left over. This is how
 * nested arrays are written. */
int qf_gguf_writer_set_raw(qf_gguf_writer *w, const char *key, qf_gguf_vtype type,
                           const void *val, uint64_t len, qf_err *err);
/* Copy pair i of reader g (any type, nested arrays included) unchanged. */
int qf_gguf_writer_copy_kv(qf_gguf_writer *w, const qf_gguf *g, int64_t i, qf_err *err);
/* Remove a key; returns 0 if removed, QF_ENOTFOUND if absent. */
int qf_gguf_writer_remove(qf_gguf_writer *w, const char *key);

/* Read back the pairs set so far, in order (values borrowed from the writer,
 * valid until the pair is changed): the same view the reader gives. */
int64_t qf_gguf_writer_kv_count(const qf_gguf_writer *w);
const char *qf_gguf_writer_kv_key(const qf_gguf_writer *w, int64_t i);
int qf_gguf_writer_kv_value(const qf_gguf_writer *w, int64_t i, qf_gguf_val *v);
int64_t qf_gguf_writer_find_key(const qf_gguf_writer *w, const char *key); /* index or -1 */

/*
 * Declare the next tensor: name (< 64 bytes, unique), ggml type id, dims
 * (ne[0] is the row length). Data must later be supplied in the same order.
 * Returns 0, QF_EINVAL (duplicate or bad name, unknown type, bad dims, row
 * not divisible by the block size) or QF_ENOMEM.
 */
int qf_gguf_writer_add_tensor(qf_gguf_writer *w, const char *name, int type, uint32_t n_dims,
                              const uint64_t *ne, qf_err *err);

/* Size the file will have (header, padding and data), once all tensors are
 * declared; valid before begin (for --dry-run). Like ggml, every tensor is
 * padded to the alignment, the last one included, so the size is a multiple
 * of the alignment. */
uint64_t qf_gguf_writer_file_size(const qf_gguf_writer *w);

/*
 * Open the output (atomic; flags as qf_out_open) and write the header and
 * tensor infos. Returns 0 or QF_EIO / QF_EEXIST / QF_ENOMEM.
 */
int qf_gguf_writer_begin(qf_gguf_writer *w, const char *path, int flags, qf_err *err);

/*
 * Append tensor data. Bytes flow into the declared tensors in order: a call
 * may cover part of a tensor or run across several; the writer inserts the
 * padding after each tensor. Supplying more bytes than declared fails with
 * QF_EINVAL.
 */
int qf_gguf_writer_write(qf_gguf_writer *w, const void *data, uint64_t n, qf_err *err);

/*
 * Check that every declared byte was supplied, then commit the file (fsync,
 * rename). Returns 0, QF_EINVAL (data missing) or QF_EIO. On failure the
 * temp file is removed.
 */
int qf_gguf_writer_finish(qf_gguf_writer *w, qf_err *err);

/*
 * Hash tensor data as it streams out (SHA-256 per tensor and of all tensor
 * data in order, as qforge-sum and llama-gguf-hash compute them), so a
 * manifest of the output costs no second read. Call before begin.
 */
int qf_gguf_writer_hash(qf_gguf_writer *w, qf_err *err);

/* After a successful finish with hashing on: the digests (borrowed from the
 * writer; names are read with qf_gguf_writer_tensor_name). QF_EINVAL if
 * hashing was off or the file is not finished. */
int qf_gguf_writer_digests(const qf_gguf_writer *w, qf_digest_list *out);

/* Name of declared tensor i (borrowed), or NULL. */
const char *qf_gguf_writer_tensor_name(const qf_gguf_writer *w, int64_t i);

/* Declared tensors: their count, and tensor i as the reader would show it
 * (name borrowed; offset as laid out; data NULL). QF_EINVAL for a bad i. */
int64_t qf_gguf_writer_tensor_count(const qf_gguf_writer *w);
int qf_gguf_writer_tensor_info(const qf_gguf_writer *w, int64_t i, qf_gguf_tensor *out);

#endif /* QF_GGUF_H */
