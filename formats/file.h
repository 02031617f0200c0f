/*
 * formats/file.h - read-only mapped files, a bounds-checked cursor, and the
 * atomic output file.
 *
 * Reading: inputs are opened O_RDONLY and mapped PROT_READ, MAP_PRIVATE.
 * Nothing in qforge ever writes to an input. A mapping can give back pages
 * it has finished with (qf_map_release), so a reader streaming a 100 GB file
 * keeps its resident set small.
 *
 * Members used in place: a file inside an uncompressed archive can be read
 * where it lies. qf_map_alias_add binds a placeholder file (known by its
 * device and inode, so any spelling of its path matches) to a byte range of
 * another file; qf_map_open of the placeholder then maps that range instead.
 * formats/archive.c makes these bindings; every reader keeps opening paths.
 *
 * Parsing: all file data is reached through qf_cur, which checks every read
 * against the bytes left and decodes little-endian fields one by one (never
 * by casting the mapping to a struct).
 *
 * Writing: qf_out writes to a temporary file "<dir>/.<name>.XXXXXX" in the
 * target folder, and on commit fsyncs it, renames it over the target and
 * fsyncs the folder. Without force, an existing target is refused before
 * anything is written (and again, atomically, at commit time via link(2)
 * semantics where available). Any failure, or closing without commit, removes
 * the temporary file: a crash never leaves a partial output under the target
 * name.
 */
#ifndef QF_FILE_H
#define QF_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"

/* ---------------------------------------------------------------------
 * Mapped input file
 * ------------------------------------------------------------------- */

typedef struct qf_map qf_map;

/*
 * Map `path` read-only. An empty file maps to data == NULL, size == 0.
 * Returns 0 and sets *out (owned by the caller: free with qf_map_close), or
 * QF_EIO (the message names the path and the OS reason) / QF_ENOMEM.
 * Directories are refused with QF_EIO.
 */
int qf_map_open(const char *path, qf_map **out, qf_err *err);

/* Unmap and free; accepts NULL. */
void qf_map_close(qf_map *m);

/*
 * From now on, qf_map_open of the file `placeholder` (an existing regular
 * file, matched by device and inode) maps bytes [off, off + len) of `target`
 * instead; qf_map_size is then len and qf_map_path the path given to
 * qf_map_open. The range is checked against target's size when mapped
 * (QF_ETRUNC if it no longer fits). Bindings are process-wide and
 * thread-safe. Returns 0, QF_EIO (placeholder cannot be stat'ed) or
 * QF_ENOMEM. Maps already open are unaffected by later changes.
 */
int qf_map_alias_add(const char *placeholder, const char *target, uint64_t off, uint64_t len,
                     qf_err *err);

/* Drop the binding made with the same `placeholder` string (works after the
 * file is gone). Unknown paths are ignored. */
void qf_map_alias_remove(const char *placeholder);

/* The mapped bytes (borrowed: valid while the map lives) and their count. */
const uint8_t *qf_map_data(const qf_map *m);
uint64_t qf_map_size(const qf_map *m);

/* The path given to qf_map_open (borrowed). */
const char *qf_map_path(const qf_map *m);

/*
 * Tell the kernel that bytes [off, off+len) will not be needed again soon, so
 * their pages can leave the resident set (madvise DONTNEED on whole pages
 * inside the range). Data stays readable: it is read back from the file if
 * touched again. Out-of-range parts are ignored.
 */
void qf_map_release(const qf_map *m, uint64_t off, uint64_t len);

/* Hint that [off, off+len) will be read soon, sequentially (WILLNEED). */
void qf_map_prefetch(const qf_map *m, uint64_t off, uint64_t len);

/* ---------------------------------------------------------------------
 * Bounds-checked cursor over a byte buffer (plain value struct)
 * ------------------------------------------------------------------- */

typedef struct qf_cur {
    const uint8_t *base; /* start of the buffer (borrowed) */
    uint64_t size;       /* bytes in the buffer */
    uint64_t pos;        /* next byte to read, 0 <= pos <= size */
} qf_cur;

static inline qf_cur qf_cur_make(const void *base, uint64_t size)
{
    qf_cur c = { (const uint8_t *)base, size, 0 };
    return c;
}

static inline uint64_t qf_cur_left(const qf_cur *c) { return c->size - c->pos; }

/*
 * Each reader returns 0 and advances, or QF_ETRUNC without moving if fewer
 * bytes are left than it needs. Values are decoded as little-endian.
 */
int qf_cur_u8(qf_cur *c, uint8_t *v);
int qf_cur_u16(qf_cur *c, uint16_t *v);
int qf_cur_u32(qf_cur *c, uint32_t *v);
int qf_cur_u64(qf_cur *c, uint64_t *v);
int qf_cur_f32(qf_cur *c, float *v);
int qf_cur_f64(qf_cur *c, double *v);
/* Borrow `n` bytes in place: *p points into the buffer. */
int qf_cur_bytes(qf_cur *c, uint64_t n, const uint8_t **p);
int qf_cur_skip(qf_cur *c, uint64_t n);

/* Little-endian stores and loads on unaligned memory. */
static inline uint16_t qf_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t qf_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t qf_le64(const uint8_t *p) { return (uint64_t)qf_le32(p) | ((uint64_t)qf_le32(p + 4) << 32); }
static inline void qf_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void qf_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void qf_put64(uint8_t *p, uint64_t v) { qf_put32(p, (uint32_t)v); qf_put32(p + 4, (uint32_t)(v >> 32)); }

/* 1 if s[0..len) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int qf_utf8_valid(const char *s, size_t len);

/* ---------------------------------------------------------------------
 * Atomic output file
 * ------------------------------------------------------------------- */

typedef struct qf_out qf_out;

enum { QF_OUT_FORCE = 1 }; /* flags for qf_out_open: replace an existing target */

/*
 * Start writing `path`. Without QF_OUT_FORCE an existing path fails with
 * QF_EEXIST ("x.gguf: exists (use --force to overwrite)"). Returns 0 and
 * sets *out (owned by the caller: finish with qf_out_commit, or
 * qf_out_close to abandon), or QF_EIO / QF_EEXIST / QF_ENOMEM.
 */
int qf_out_open(const char *path, int flags, qf_out **out, qf_err *err);

/* Append n bytes (buffered). Returns 0 or QF_EIO. */
int qf_out_write(qf_out *o, const void *buf, size_t n, qf_err *err);

/* Append n zero bytes. Returns 0 or QF_EIO. */
int qf_out_zeros(qf_out *o, uint64_t n, qf_err *err);

/* Overwrite n bytes at offset off, which must lie inside what was appended
 * so far (for a header reserved at the start and filled in at the end).
 * Returns 0, QF_EINVAL (range) or QF_EIO. */
int qf_out_pwrite(qf_out *o, uint64_t off, const void *buf, size_t n, qf_err *err);

/* Bytes appended so far. */
uint64_t qf_out_tell(const qf_out *o);

/*
 * Flush, fsync, rename to the target, fsync the folder, and free `o`.
 * Returns 0, or QF_EIO / QF_EEXIST (the temp file is removed and `o` is freed
 * in every case).
 */
int qf_out_commit(qf_out *o, qf_err *err);

/* Abandon: remove the temporary file and free. Accepts NULL. */
void qf_out_close(qf_out *o);

/* The target path (borrowed). */
const char *qf_out_path(const qf_out *o);

#endif /* QF_FILE_H */
