/*
 * formats/zip.c - zip central-directory reader (see zip.h for the layout and
 * the list of checks, and for why this is not libarchive).
 *
 * Order of work: find the EOCD from the end, resolve zip64, then read the
 * central directory in one pass (names, sizes, extras), then visit each
 * local header, then sort by offset to refuse overlaps and by name to refuse
 * duplicates and to serve qf_zip_find.
 */
#include "formats/zip.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "formats/file.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_Z64_LOC 0x07064b50u
#define SIG_Z64_EOCD 0x06064b50u

#define EOCD_LEN 22u
#define Z64_LOC_LEN 20u
#define Z64_EOCD_LEN 56u
#define CENTRAL_LEN 46u
#define LOCAL_LEN 30u

#define FLAG_ENCRYPTED 0x0001u
#define FLAG_DESCRIPTOR 0x0008u
#define FLAG_STRONG_ENC 0x0040u


struct qf_zip {
    const uint8_t *base;
    uint64_t size;
    char *name;            /* for messages */
    qf_zip_entry *entries; /* central-directory order */
    int64_t n;
    int64_t *by_name;      /* entry indices sorted by name */
};

/* =====================================================================
 * Helpers
 * ===================================================================== */

static const char *method_name(uint16_t m)
{
    switch (m) {
    case 0: return "stored";
    case 8: return "deflate";
    case 9: return "deflate64";
    case 12: return "bzip2";
    case 14: return "lzma";
    case 93: return "zstd";
    case 95: return "xz";
    default: return "unknown method";
    }
}

/* Names a zip may hold here: relative paths without "", "." or ".."
 * components, no NUL, no backslash, valid UTF-8. Returns NULL if fine, else
 * the reason. */
static const char *bad_name(const uint8_t *s, size_t n)
{
    size_t i, start = 0;

    if (n == 0)
        return "is empty";
    if (memchr(s, '\0', n))
        return "holds a NUL byte";
    if (!qf_utf8_valid((const char *)s, n))
        return "is not valid UTF-8";
    if (memchr(s, '\\', n))
        return "holds a backslash";
    if (s[0] == '/')
        return "is an absolute path";
    if (n >= 2 && s[1] == ':')
        return "starts with a drive letter";
    for (i = 0; i <= n; i++) {
        if (i == n || s[i] == '/') {
            size_t len = i - start;
            if (len == 0 && i < n)
                return "has an empty path component";
            if (len == 0 && i == n && n > 0 && s[n - 1] != '/')
                return "has an empty path component";
            if ((len == 1 && s[start] == '.') || (len == 2 && s[start] == '.' && s[start + 1] == '.'))
                return "has a \".\" or \"..\" component (path traversal)";
            start = i + 1;
        }
    }
    return NULL;
}

/* =====================================================================
 * CRC-32, slicing by 4
 * ===================================================================== */

static uint32_t crc_table[4][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    uint32_t i, j, c;

    for (i = 0; i < 256; i++) {
        c = i;
        for (j = 0; j < 8; j++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (i = 0; i < 256; i++) {
        c = crc_table[0][i];
        for (j = 1; j < 4; j++) {
            c = crc_table[0][c & 0xff] ^ (c >> 8);
            crc_table[j][i] = c;
        }
    }
}

uint32_t qf_zip_crc32(uint32_t crc, const void *p, size_t n)
{
    const uint8_t *b = p;
    uint32_t c = ~crc;

    pthread_once(&crc_once, crc_init);
    while (n >= 4) {
        c ^= qf_le32(b);
        c = crc_table[3][c & 0xff] ^ crc_table[2][(c >> 8) & 0xff] ^
            crc_table[1][(c >> 16) & 0xff] ^ crc_table[0][c >> 24];
        b += 4;
        n -= 4;
    }
    while (n--)
        c = crc_table[0][(c ^ *b++) & 0xff] ^ (c >> 8);
    return ~c;
}

/* =====================================================================
 * End of central directory
 * ===================================================================== */

typedef struct cdir {
    uint64_t n;       /* entries */
    uint64_t offset;  /* of the central directory */
    uint64_t size;    /* of the central directory */
    uint64_t limit;   /* first byte after the area the directory may use */
} cdir;

static int find_eocd(const qf_zip *z, cdir *cd, qf_err *err)
{
    const uint8_t *b = z->base;
    uint64_t size = z->size, pos, lo, found = UINT64_MAX;
    uint16_t disk, cd_disk, n_disk, n_total, clen;
    uint32_t cd_size, cd_off;

    if (size < EOCD_LEN)
        return qf_err_set(err, QF_ETRUNC,
                          "%s: zip: %" PRIu64 " bytes, too short for an end-of-central-directory record",
                          z->name, size);
    lo = size - EOCD_LEN > 65535u ? size - EOCD_LEN - 65535u : 0;
    for (pos = size - EOCD_LEN + 1; pos-- > lo;) {
        if (qf_le32(b + pos) != SIG_EOCD)
            continue;
        clen = qf_le16(b + pos + 20);
        if (pos + EOCD_LEN + clen == size) {
            found = pos;
            break;
        }
    }
    if (found == UINT64_MAX)
        return qf_err_set(err, QF_EFORMAT,
                          "%s: zip: no end-of-central-directory record ending the file (not a zip, or truncated)",
                          z->name);
    pos = found;
    disk = qf_le16(b + pos + 4);
    cd_disk = qf_le16(b + pos + 6);
    n_disk = qf_le16(b + pos + 8);
    n_total = qf_le16(b + pos + 10);
    cd_size = qf_le32(b + pos + 12);
    cd_off = qf_le32(b + pos + 16);
    cd->n = n_total;
    cd->size = cd_size;
    cd->offset = cd_off;
    cd->limit = pos;

    if (pos >= Z64_LOC_LEN && qf_le32(b + pos - Z64_LOC_LEN) == SIG_Z64_LOC) {
        const uint8_t *l = b + pos - Z64_LOC_LEN;
        uint32_t z_disk = qf_le32(l + 4), n_disks = qf_le32(l + 16);
        uint64_t zoff = qf_le64(l + 8), rec, zn_disk, zn_total, zsize, zoffset;
        uint32_t zdisk, zcd_disk;
        const uint8_t *e;

        if (z_disk != 0 || n_disks > 1)
            return qf_err_set(err, QF_EUNSUPPORTED,
                              "%s: zip: spans %" PRIu32 " disks (multi-disk archives are not supported)",
                              z->name, n_disks);
        if (zoff > pos - Z64_LOC_LEN || pos - Z64_LOC_LEN - zoff < Z64_EOCD_LEN)
            return qf_err_set(err, QF_EFORMAT,
                              "%s: zip: zip64 end record offset %" PRIu64 " is outside the file",
                              z->name, zoff);
        e = b + zoff;
        if (qf_le32(e) != SIG_Z64_EOCD)
            return qf_err_set(err, QF_EFORMAT,
                              "%s: zip: no zip64 end record at offset %" PRIu64, z->name, zoff);
        rec = qf_le64(e + 4);
        if (rec < Z64_EOCD_LEN - 12 || rec > pos - Z64_LOC_LEN - zoff - 12)
            return qf_err_set(err, QF_EFORMAT,
                              "%s: zip: zip64 end record size %" PRIu64 " is out of range", z->name,
                              rec);
        zdisk = qf_le32(e + 16);
        zcd_disk = qf_le32(e + 20);
        zn_disk = qf_le64(e + 24);
        zn_total = qf_le64(e + 32);
        zsize = qf_le64(e + 40);
        zoffset = qf_le64(e + 48);
        if (zdisk != 0 || zcd_disk != 0)
            return qf_err_set(err, QF_EUNSUPPORTED,
                              "%s: zip: multi-disk archives are not supported", z->name);
        if (zn_disk != zn_total)
            return qf_err_set(err, QF_EFORMAT,
                              "%s: zip: zip64 end record: %" PRIu64 " entries on this disk but %" PRIu64 " in all",
                              z->name, zn_disk, zn_total);
        /* The 32-bit values must be saturated or equal to the 64-bit ones. */
        if ((n_total != 0xFFFFu && n_total != zn_total) ||
            (cd_size != 0xFFFFFFFFu && cd_size != zsize) ||
            (cd_off != 0xFFFFFFFFu && cd_off != zoffset))
            return qf_err_set(err, QF_EFORMAT,
                              "%s: zip: the end record and the zip64 end record disagree", z->name);
        cd->n = zn_total;
        cd->size = zsize;
        cd->offset = zoffset;
        cd->limit = zoff;
    } else {
        if (disk != 0 || cd_disk != 0)
            return qf_err_set(err, QF_EUNSUPPORTED,
                              "%s: zip: disk %u of a multi-disk archive (not supported)", z->name,
                              (unsigned)disk);
        if (n_disk != n_total)
            return qf_err_set(err, QF_EFORMAT,
                              "%s: zip: end record: %u entries on this disk but %u in all", z->name,
                              (unsigned)n_disk, (unsigned)n_total);
    }
    if (cd->offset > cd->limit || cd->size > cd->limit - cd->offset)
        return qf_err_set(err, QF_EFORMAT,
                          "%s: zip: central directory [%" PRIu64 ", +%" PRIu64
                          ") is outside the file (end records at %" PRIu64 ")",
                          z->name, cd->offset, cd->size, cd->limit);
    if (cd->n > QF_ZIP_MAX_ENTRIES)
        return qf_err_set(err, QF_ELIMIT, "%s: zip: %" PRIu64 " entries (limit %u)", z->name,
                          cd->n, QF_ZIP_MAX_ENTRIES);
    if (cd->n > cd->size / CENTRAL_LEN)
        return qf_err_set(err, QF_EFORMAT,
                          "%s: zip: %" PRIu64 " entries cannot fit in a central directory of %" PRIu64 " bytes",
                          z->name, cd->n, cd->size);
    return 0;
}

/* =====================================================================
 * Entries
 * ===================================================================== */

/*
 * Find the zip64 extra (id 1) in extra[0, n) and read, in order, the 8-byte
 * values for the fields that are saturated. `what` says where ("central",
 * "local"). Returns 0 or QF_EFORMAT.
 */
static int read_zip64_extra(const qf_zip *z, const char *ename, const char *what,
                            const uint8_t *extra, uint64_t n, uint64_t *usize, uint64_t *csize,
                            uint64_t *offset, qf_err *err)
{
    qf_cur c = qf_cur_make(extra, n);
    int need_u = usize && *usize == 0xFFFFFFFFu, need_c = csize && *csize == 0xFFFFFFFFu;
    int need_o = offset && *offset == 0xFFFFFFFFu, seen = 0;

    while (qf_cur_left(&c) > 0) {
        uint16_t id, len;
        const uint8_t *p;

        if (qf_cur_u16(&c, &id) || qf_cur_u16(&c, &len) || qf_cur_bytes(&c, len, &p))
            return qf_err_set(err, QF_EFORMAT, "%s: zip: entry \"%s\": %s extra field is malformed",
                              z->name, ename, what);
        if (id == 0x0001) {
            qf_cur f = qf_cur_make(p, len);
            if (seen)
                return qf_err_set(err, QF_EFORMAT,
                                  "%s: zip: entry \"%s\": %s extra holds two zip64 fields", z->name,
                                  ename, what);
            seen = 1;
            if ((need_u && qf_cur_u64(&f, usize)) || (need_c && qf_cur_u64(&f, csize)) ||
                (need_o && qf_cur_u64(&f, offset)))
                return qf_err_set(err, QF_EFORMAT,
                                  "%s: zip: entry \"%s\": %s zip64 extra is too short", z->name,
                                  ename, what);
        }
    }
    if ((need_u || need_c || need_o) && !seen && strcmp(what, "central") == 0)
        return qf_err_set(err, QF_EFORMAT,
                          "%s: zip: entry \"%s\": 32-bit size or offset is saturated but there is no zip64 extra",
                          z->name, ename);
    return 0;
}

/* Read central entry k at cursor c. */
static int read_central(qf_zip *z, qf_cur *c, int64_t k, qf_err *err)
{
    qf_zip_entry *e = &z->entries[k];
    uint32_t sig, crc, csize, usize, ext_attr, loff;
    uint16_t made_by, version, flags, method, mtime, mdate, nlen, xlen, clen, disk, int_attr;
    const uint8_t *name, *extra, *comment;
    uint64_t at = c->pos;
    char shown[4 * QF_ERR_SHOW + 8];
    const char *why;
    char *copy;

    if (qf_cur_u32(c, &sig) || qf_cur_u16(c, &made_by) || qf_cur_u16(c, &version) ||
        qf_cur_u16(c, &flags) || qf_cur_u16(c, &method) || qf_cur_u16(c, &mtime) ||
        qf_cur_u16(c, &mdate) || qf_cur_u32(c, &crc) || qf_cur_u32(c, &csize) ||
        qf_cur_u32(c, &usize) || qf_cur_u16(c, &nlen) || qf_cur_u16(c, &xlen) ||
        qf_cur_u16(c, &clen) || qf_cur_u16(c, &disk) || qf_cur_u16(c, &int_attr) ||
        qf_cur_u32(c, &ext_attr) || qf_cur_u32(c, &loff))
        return qf_err_set(err, QF_ETRUNC,
                          "%s: zip: central entry %" PRId64 " at offset %" PRIu64
                          " runs past the central directory",
                          z->name, k, at);
    if (sig != SIG_CENTRAL)
        return qf_err_set(err, QF_EFORMAT,
                          "%s: zip: central entry %" PRId64 " at offset %" PRIu64 " has a bad signature 0x%08" PRIx32,
                          z->name, k, at, sig);
    if (qf_cur_bytes(c, nlen, &name) || qf_cur_bytes(c, xlen, &extra) ||
        qf_cur_bytes(c, clen, &comment))
        return qf_err_set(err, QF_ETRUNC,
                          "%s: zip: central entry %" PRId64 " at offset %" PRIu64
                          ": name, extra or comment runs past the central directory",
                          z->name, k, at);
    qf_err_show(shown, sizeof shown, name, nlen);
    if ((why = bad_name(name, nlen)) != NULL)
        return qf_err_set(err, QF_EFORMAT, "%s: zip: entry name \"%s\" %s", z->name, shown, why);
    if (flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENC))
        return qf_err_set(err, QF_EUNSUPPORTED, "%s: zip: entry \"%s\" is encrypted", z->name,
                          shown);
    if (disk != 0 && disk != 0xFFFFu)
        return qf_err_set(err, QF_EUNSUPPORTED,
                          "%s: zip: entry \"%s\" starts on disk %u (multi-disk archives are not supported)",
                          z->name, shown, (unsigned)disk);
    copy = malloc((size_t)nlen + 1);
    if (!copy)
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", z->name);
    memcpy(copy, name, nlen);
    copy[nlen] = '\0';
    e->name = copy;
    e->method = method;
    e->flags = flags;
    e->crc32 = crc;
    e->comp_size = csize;
    e->size = usize;
    e->header_offset = loff;
    e->central_offset = (uint64_t)(c->base - z->base) + at;
    return read_zip64_extra(z, shown, "central", extra, xlen, &e->size, &e->comp_size,
                            &e->header_offset, err);
}

/* Visit entry k's local header; set data_offset. `data_limit` is where the
 * central directory starts: no data may reach it. */
static int read_local(qf_zip *z, int64_t k, uint64_t data_limit, qf_err *err)
{
    qf_zip_entry *e = &z->entries[k];
    const uint8_t *h, *name, *extra;
    uint64_t at = e->header_offset, lcsize, lusize;
    uint32_t lcrc;
    uint16_t lflags, lmethod, nlen, xlen;
    char shown[4 * QF_ERR_SHOW + 8];
    qf_cur c;

    qf_err_show(shown, sizeof shown, (const uint8_t *)e->name, strlen(e->name));
    if (at > data_limit || data_limit - at < LOCAL_LEN)
        return qf_err_set(err, QF_EFORMAT,
                          "%s: zip: entry \"%s\": local header offset %" PRIu64
                          " is outside the data area (central directory at %" PRIu64 ")",
                          z->name, shown, at, data_limit);
    h = z->base + at;
    if (qf_le32(h) != SIG_LOCAL)
        return qf_err_set(err, QF_EFORMAT,
                          "%s: zip: entry \"%s\": no local header signature at offset %" PRIu64,
                          z->name, shown, at);
    lflags = qf_le16(h + 6);
    lmethod = qf_le16(h + 8);
    lcrc = qf_le32(h + 14);
    lcsize = qf_le32(h + 18);
    lusize = qf_le32(h + 22);
    nlen = qf_le16(h + 26);
    xlen = qf_le16(h + 28);
    c = qf_cur_make(z->base, data_limit);
    c.pos = at + LOCAL_LEN;
    if (qf_cur_bytes(&c, nlen, &name) || qf_cur_bytes(&c, xlen, &extra))
        return qf_err_set(err, QF_EFORMAT,
                          "%s: zip: entry \"%s\": local header at %" PRIu64 " runs into the central directory",
                          z->name, shown, at);
    if (nlen != strlen(e->name) || memcmp(name, e->name, nlen) != 0)
        return qf_err_set(err, QF_EFORMAT,
                          "%s: zip: entry \"%s\": the local header at %" PRIu64 " names another file",
                          z->name, shown, at);
    if (lmethod != e->method)
        return qf_err_set(err, QF_EFORMAT,
                          "%s: zip: entry \"%s\": method %u in the local header, %u in the central directory",
                          z->name, shown, (unsigned)lmethod, (unsigned)e->method);
    if ((lflags ^ e->flags) & (FLAG_ENCRYPTED | FLAG_DESCRIPTOR))
        return qf_err_set(err, QF_EFORMAT,
                          "%s: zip: entry \"%s\": local and central flags disagree (0x%04x, 0x%04x)",
                          z->name, shown, (unsigned)lflags, (unsigned)e->flags);
    if (read_zip64_extra(z, shown, "local", extra, xlen, &lusize, &lcsize, NULL, err) != 0)
        return QF_EFORMAT;
    if (e->flags & FLAG_DESCRIPTOR) {
        /* The values follow the data; the header may hold zeros. */
        if ((lcrc != 0 && lcrc != e->crc32) || (lcsize != 0 && lcsize != e->comp_size) ||
            (lusize != 0 && lusize != e->size))
            return qf_err_set(err, QF_EFORMAT,
                              "%s: zip: entry \"%s\": local header CRC or sizes disagree with the central directory",
                              z->name, shown);
    } else if (lcrc != e->crc32 || lcsize != e->comp_size || lusize != e->size) {
        return qf_err_set(err, QF_EFORMAT,
                          "%s: zip: entry \"%s\": local header CRC or sizes (%" PRIu64 ", %" PRIu64
                          ") disagree with the central directory (%" PRIu64 ", %" PRIu64 ")",
                          z->name, shown, lcsize, lusize, e->comp_size, e->size);
    }
    e->data_offset = c.pos;
    if (e->comp_size > data_limit - e->data_offset)
        return qf_err_set(err, QF_EFORMAT,
                          "%s: zip: entry \"%s\": data [%" PRIu64 ", +%" PRIu64
                          ") runs past the data area (central directory at %" PRIu64 ")",
                          z->name, shown, e->data_offset, e->comp_size, data_limit);
    if (e->method == QF_ZIP_STORED && e->comp_size != e->size)
        return qf_err_set(err, QF_EFORMAT,
                          "%s: zip: entry \"%s\" is stored but its sizes differ (%" PRIu64 " in the file, %" PRIu64 " extracted)",
                          z->name, shown, e->comp_size, e->size);
    return 0;
}

/* Sort the index array; a plain merge sort keeps this reentrant. */
static void sort_by(const qf_zip *z, int64_t *v, int64_t n, int64_t *tmp,
                    int (*cmp)(const qf_zip *, int64_t, int64_t))
{
    int64_t w, i;

    for (w = 1; w < n; w *= 2) {
        for (i = 0; i < n; i += 2 * w) {
            int64_t lo = i, mid = i + w < n ? i + w : n, hi = i + 2 * w < n ? i + 2 * w : n;
            int64_t a = lo, b = mid, k = lo;
            while (a < mid && b < hi)
                tmp[k++] = cmp(z, v[a], v[b]) <= 0 ? v[a++] : v[b++];
            while (a < mid)
                tmp[k++] = v[a++];
            while (b < hi)
                tmp[k++] = v[b++];
        }
        memcpy(v, tmp, (size_t)n * sizeof *v);
    }
}

static int by_offset(const qf_zip *z, int64_t a, int64_t b)
{
    const qf_zip_entry *x = &z->entries[a], *y = &z->entries[b];
    return x->header_offset < y->header_offset ? -1 : x->header_offset > y->header_offset;
}

static int by_name(const qf_zip *z, int64_t a, int64_t b)
{
    return strcmp(z->entries[a].name, z->entries[b].name);
}

void qf_zip_close(qf_zip *z)
{
    int64_t i;

    if (!z)
        return;
    for (i = 0; i < z->n; i++)
        free((char *)z->entries[i].name);
    free(z->entries);
    free(z->by_name);
    free(z->name);
    free(z);
}

int qf_zip_open_buffer(const void *buf, uint64_t size, const char *name, qf_zip **out,
                       qf_err *err)
{
    qf_zip *z = NULL;
    int64_t *tmp = NULL, *by_off = NULL, i;
    cdir cd = { 0, 0, 0, 0 };
    qf_cur c;
    int rc = 0;

    if (!name)
        name = "<buffer>";
    if (!out)
        return qf_err_set(err, QF_EINVAL, "%s: no output handle", name);
    *out = NULL;
    if (!buf && size > 0)
        return qf_err_set(err, QF_EINVAL, "%s: NULL buffer", name);
    z = calloc(1, sizeof *z);
    if (!z || !(z->name = strdup(name))) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", name);
        goto done;
    }
    z->base = buf;
    z->size = size;
    if ((rc = find_eocd(z, &cd, err)) != 0)
        goto done;
    if (cd.n > 0) {
        z->entries = calloc((size_t)cd.n, sizeof *z->entries);
        z->by_name = malloc((size_t)cd.n * sizeof *z->by_name);
        by_off = malloc((size_t)cd.n * sizeof *by_off);
        tmp = malloc((size_t)cd.n * sizeof *tmp);
        if (!z->entries || !z->by_name || !by_off || !tmp) {
            rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory (%" PRIu64 " zip entries)", name,
                            cd.n);
            goto done;
        }
    }
    c = qf_cur_make(z->base + cd.offset, cd.size);
    for (i = 0; i < (int64_t)cd.n; i++) {
        z->n = i + 1; /* counted now so that close frees a half-read entry */
        if ((rc = read_central(z, &c, i, err)) != 0)
            goto done;
    }
    if (qf_cur_left(&c) != 0) {
        rc = qf_err_set(err, QF_EFORMAT,
                        "%s: zip: %" PRIu64 " bytes after the last of %" PRIu64 " central entries",
                        name, qf_cur_left(&c), cd.n);
        goto done;
    }
    for (i = 0; i < z->n; i++)
        if ((rc = read_local(z, i, cd.offset, err)) != 0)
            goto done;

    /* No two entries may share bytes: [local header, data end) are disjoint. */
    for (i = 0; i < z->n; i++)
        by_off[i] = i;
    sort_by(z, by_off, z->n, tmp, by_offset);
    for (i = 1; i < z->n; i++) {
        const qf_zip_entry *a = &z->entries[by_off[i - 1]], *b = &z->entries[by_off[i]];
        if (a->data_offset + a->comp_size > b->header_offset) {
            char sa[4 * QF_ERR_SHOW + 8], sb[4 * QF_ERR_SHOW + 8];
            rc = qf_err_set(err, QF_EFORMAT,
                            "%s: zip: entries \"%s\" [%" PRIu64 ", %" PRIu64 ") and \"%s\" [%" PRIu64
                            ", %" PRIu64 ") overlap",
                            name, qf_err_show(sa, sizeof sa, (const uint8_t *)a->name, strlen(a->name)),
                            a->header_offset, a->data_offset + a->comp_size,
                            qf_err_show(sb, sizeof sb, (const uint8_t *)b->name, strlen(b->name)),
                            b->header_offset, b->data_offset + b->comp_size);
            goto done;
        }
    }
    for (i = 0; i < z->n; i++)
        z->by_name[i] = i;
    sort_by(z, z->by_name, z->n, tmp, by_name);
    for (i = 1; i < z->n; i++) {
        const qf_zip_entry *a = &z->entries[z->by_name[i - 1]], *b = &z->entries[z->by_name[i]];
        if (strcmp(a->name, b->name) == 0) {
            char sa[4 * QF_ERR_SHOW + 8];
            rc = qf_err_set(err, QF_EFORMAT, "%s: zip: duplicate entry \"%s\"", name,
                            qf_err_show(sa, sizeof sa, (const uint8_t *)a->name, strlen(a->name)));
            goto done;
        }
    }
done:
    free(tmp);
    free(by_off);
    if (rc != 0) {
        qf_zip_close(z);
        z = NULL;
    }
    *out = z;
    return rc;
}

int64_t qf_zip_count(const qf_zip *z) { return z ? z->n : 0; }

const qf_zip_entry *qf_zip_entry_at(const qf_zip *z, int64_t i)
{
    return z && i >= 0 && i < z->n ? &z->entries[i] : NULL;
}

int64_t qf_zip_find(const qf_zip *z, const char *name)
{
    int64_t lo = 0, hi;

    if (!z || !name)
        return -1;
    hi = z->n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(z->entries[z->by_name[mid]].name, name);
        if (c == 0)
            return z->by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

int qf_zip_stored_data(const qf_zip *z, int64_t i, const uint8_t **data, uint64_t *size,
                       qf_err *err)
{
    const qf_zip_entry *e = qf_zip_entry_at(z, i);
    char shown[4 * QF_ERR_SHOW + 8];

    if (data)
        *data = NULL;
    if (size)
        *size = 0;
    if (!e)
        return qf_err_set(err, QF_EINVAL, "zip: no entry %" PRId64, i);
    if (e->method != QF_ZIP_STORED)
        return qf_err_set(err, QF_EUNSUPPORTED,
                          "%s: zip: entry \"%s\" is compressed (method %u, %s; %" PRIu64 " bytes expanding to %" PRIu64
                          ") where torch stores data uncompressed",
                          z->name, qf_err_show(shown, sizeof shown, (const uint8_t *)e->name, strlen(e->name)),
                          (unsigned)e->method, method_name(e->method), e->comp_size, e->size);
    if (data)
        *data = z->base + e->data_offset;
    if (size)
        *size = e->size;
    return 0;
}

int qf_zip_check_crc(const qf_zip *z, int64_t i, qf_err *err)
{
    const uint8_t *p;
    uint64_t n, done = 0;
    uint32_t crc = 0;
    char shown[4 * QF_ERR_SHOW + 8];
    int rc = qf_zip_stored_data(z, i, &p, &n, err);

    if (rc != 0)
        return rc;
    while (done < n) {
        size_t step = n - done > (1u << 30) ? (size_t)1 << 30 : (size_t)(n - done);
        crc = qf_zip_crc32(crc, p + done, step);
        done += step;
    }
    if (crc != z->entries[i].crc32)
        return qf_err_set(err, QF_EMISMATCH,
                          "%s: zip: entry \"%s\": CRC-32 is %08" PRIx32 ", the directory says %08" PRIx32,
                          z->name,
                          qf_err_show(shown, sizeof shown, (const uint8_t *)z->entries[i].name,
                                    strlen(z->entries[i].name)),
                          crc, z->entries[i].crc32);
    return 0;
}
