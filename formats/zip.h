/*
 * formats/zip.h - a read-only zip central-directory reader over a buffer
 * (usually a mapped file), for PyTorch checkpoints.
 *
 * Why our own reader and not libarchive: torch.save writes every member
 * STORED (uncompressed), with padding in the local header's extra field so
 * that each storage's bytes start on a 64-byte boundary in the file. That
 * lets a reader hand out tensors as pointers into the mmap: zero copies,
 * pages given back as they are consumed (qf_map_release), a 100 GB
 * checkpoint read with a small resident set. libarchive is a streaming
 * extractor: it copies each member's bytes into its own buffers and does not
 * expose where they lie in the file, so every tensor would be copied and the
 * whole checkpoint would pass through user-space buffers. Reading the
 * central directory ourselves is small, and it lets us apply the checks a
 * hostile file needs (below) before any byte of data is touched.
 *
 * The layout read (all fields little-endian):
 *
 *   [local header 1][data 1][descriptor?] ... [central directory][zip64 EOCD?]
 *   [zip64 locator?][end of central directory (EOCD)][comment]
 *
 *   local header  (30 bytes + name + extra)       sig 50 4b 03 04 ("PK\3\4")
 *     version(2) flags(2) method(2) time(2) date(2) crc32(4) csize(4) usize(4)
 *     name_len(2) extra_len(2) name extra
 *   central entry (46 bytes + name + extra + comment)     sig "PK\1\2"
 *     made_by(2) version(2) flags(2) method(2) time(2) date(2) crc32(4)
 *     csize(4) usize(4) name_len(2) extra_len(2) comment_len(2) disk(2)
 *     int_attr(2) ext_attr(4) local_offset(4) name extra comment
 *   EOCD          (22 bytes + comment)                      sig "PK\5\6"
 *     disk(2) cd_disk(2) n_this_disk(2) n_total(2) cd_size(4) cd_offset(4)
 *     comment_len(2)
 *   zip64 locator (20 bytes, right before the EOCD)         sig "PK\6\7"
 *     z64_disk(4) z64_eocd_offset(8) n_disks(4)
 *   zip64 EOCD    (56 bytes and more)                       sig "PK\6\6"
 *     record_size(8) made_by(2) version(2) disk(4) cd_disk(4)
 *     n_this_disk(8) n_total(8) cd_size(8) cd_offset(8)
 *   zip64 extra field (id 0x0001 in an extra area): the 8-byte usize,
 *     csize, local_offset (and 4-byte disk) of the fields saturated in the
 *     32-bit header (0xFFFFFFFF / 0xFFFF), in that order.
 *
 * What the reader checks (every number is checked before it is used):
 *   - the EOCD is the last one whose comment ends exactly at the end of the
 *     buffer; one disk only; the entry counts agree; a zip64 locator, when
 *     present, points at a valid zip64 EOCD whose values replace saturated
 *     32-bit ones and agree with the others;
 *   - the central directory lies inside the buffer, before the EOCD records,
 *     and its entries fill it exactly; at most QF_ZIP_MAX_ENTRIES;
 *   - each entry: a name of 1..65535 bytes, valid UTF-8, no NUL, no '\',
 *     not absolute, no "", "." or ".." component (a trailing '/' marks a
 *     folder), names unique; not encrypted; zip64 extras well formed;
 *   - its local header lies inside the file with the same name and method;
 *     its CRC and sizes equal the central ones (or are 0 when flag bit 3
 *     says a data descriptor follows the data);
 *   - its data lies inside the file, before the central directory; STORED
 *     data has csize == usize; no two entries' [local header, data end)
 *     ranges overlap.
 * Compressed entries are listed (method kept) but never inflated: asking for
 * their bytes fails (qf_zip_stored_data), so nothing can expand a bomb.
 */
#ifndef QF_ZIP_H
#define QF_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"

#define QF_ZIP_MAX_ENTRIES 16000000u

enum { QF_ZIP_STORED = 0, QF_ZIP_DEFLATE = 8 };

/* One member (plain value struct, borrowed from the reader). */
typedef struct qf_zip_entry {
    const char *name;       /* NUL-terminated, as in the central directory */
    uint16_t method;        /* QF_ZIP_STORED, QF_ZIP_DEFLATE, or another method id */
    uint16_t flags;         /* general purpose bits of the central entry */
    uint32_t crc32;         /* of the uncompressed bytes */
    uint64_t comp_size;     /* bytes of (possibly compressed) data in the file */
    uint64_t size;          /* bytes once extracted */
    uint64_t header_offset; /* of the local header */
    uint64_t data_offset;   /* of the first data byte: absolute in the buffer */
    uint64_t central_offset; /* of its central-directory header */
} qf_zip_entry;

typedef struct qf_zip qf_zip;

/*
 * Read the central directory of the zip in buf[0, size) (borrowed: it must
 * outlive the reader). `name` is used in messages ("x.bin: zip: ..."). All
 * checks listed above are made here. Returns 0 and sets *out (owned by the
 * caller: qf_zip_close), or QF_EFORMAT / QF_ETRUNC / QF_ELIMIT /
 * QF_EUNSUPPORTED (multi-disk, encrypted) / QF_ENOMEM.
 */
int qf_zip_open_buffer(const void *buf, uint64_t size, const char *name, qf_zip **out,
                       qf_err *err);

/* Free; accepts NULL. */
void qf_zip_close(qf_zip *z);

/* Entries in central-directory order. */
int64_t qf_zip_count(const qf_zip *z);
const qf_zip_entry *qf_zip_entry_at(const qf_zip *z, int64_t i); /* NULL if out of range */

/* Index of the entry named exactly `name`, or -1. */
int64_t qf_zip_find(const qf_zip *z, const char *name);

/*
 * The bytes of entry i, in place (borrowed from the buffer): *data and
 * *size (== entry->size). Only STORED entries can be read: any other method
 * is QF_EUNSUPPORTED naming the method ("compressed (deflate) where torch
 * stores data uncompressed"). QF_EINVAL for a bad index.
 */
int qf_zip_stored_data(const qf_zip *z, int64_t i, const uint8_t **data, uint64_t *size,
                       qf_err *err);

/* Check entry i's CRC-32 over its stored bytes: 0, or QF_EMISMATCH naming the
 * entry (QF_EUNSUPPORTED if it is not stored). Reads every byte. */
int qf_zip_check_crc(const qf_zip *z, int64_t i, qf_err *err);

/* CRC-32 (the zip/gzip polynomial 0xEDB88320) of n bytes, continuing from
 * `crc` (0 to start). */
uint32_t qf_zip_crc32(uint32_t crc, const void *p, size_t n);

#endif /* QF_ZIP_H */
