/*
 * formats/gguf.c - GGUF v3 reader and writer (the format is drawn in
 * formats/gguf.h).
 *
 * Reader: the whole header is validated once at open, through a qf_cur over
 * the mapping (or the caller's buffer). Keys and tensor names are copied into
 * owned strings; values stay in the mapping as (type, byte span) and are
 * decoded on request, so a 150k-entry token array costs nothing until read.
 * Every count is compared with the bytes left before anything is sized from
 * it, and the tables grow geometrically as entries are actually parsed, so a
 * lying count can never make us allocate more than the file justifies.
 *
 * Writer: metadata is kept as (key, type, encoded value bytes), which makes
 * copying a pair from a reader a byte copy and the header a concatenation.
 */
#include "formats/gguf.h"
#include "formats/hash.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/file.h"
#include "formats/types.h"

#define MAX_DEPTH 8           /* arrays may nest at most this many levels */
#define KV_MIN_BYTES 14       /* key len u64 + 1 key byte + type u32 + 1 value byte */
#define TI_MIN_BYTES 32       /* name len u64 + n_dims u32 + ne u64 + type u32 + offset u64 */
#define MAX_KEY_LEN 65535     /* writer limit on key length */
#define MAX_ALIGN (1u << 31)  /* largest power of two a UINT32 can hold */
#define ALIGN_KEY "general.alignment"

static uint64_t pad_to(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

static int is_pow2(uint64_t a) { return a != 0 && (a & (a - 1)) == 0; }

/* =====================================================================
 * Value types
 * ===================================================================== */

static const char *const vtype_names[QF_GGUF_VTYPE_COUNT] = {
    "UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
    "BOOL", "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64",
};

static const uint8_t vtype_sizes[QF_GGUF_VTYPE_COUNT] = {
    1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8,
};

const char *qf_gguf_vtype_name(int t)
{
    return (t >= 0 && t < QF_GGUF_VTYPE_COUNT) ? vtype_names[t] : "?";
}

size_t qf_gguf_vtype_size(int t)
{
    return (t >= 0 && t < QF_GGUF_VTYPE_COUNT) ? vtype_sizes[t] : 0;
}

/*
 * Measure and check the encoded value of type `type` at p[0..avail): on
 * success *len is its size in bytes. `depth` is the number of arrays around
 * it. On failure returns QF_ETRUNC / QF_EFORMAT / QF_ELIMIT and, if `why` is
 * given, a reason without prefix. Work is linear in the bytes walked: every
 * element consumes at least one byte, and fixed-size arrays (other than
 * BOOL) are measured without a loop.
 */
static int walk_value(const uint8_t *p, uint64_t avail, uint32_t type, int depth, uint64_t *len,
                      char *why, size_t why_cap)
{
    uint64_t n, i, pos, min, elen;
    uint32_t et;
    int rc;

    if (type >= QF_GGUF_VTYPE_COUNT) {
        if (why)
            snprintf(why, why_cap, "unknown value type %" PRIu32, type);
        return QF_EFORMAT;
    }
    if (type != QF_GGUF_STRING && type != QF_GGUF_ARRAY) {
        uint64_t s = vtype_sizes[type];
        if (avail < s) {
            if (why)
                snprintf(why, why_cap, "%s value runs past the end of the file",
                         vtype_names[type]);
            return QF_ETRUNC;
        }
        if (type == QF_GGUF_BOOL && p[0] > 1) {
            if (why)
                snprintf(why, why_cap, "BOOL value %u is not 0 or 1", p[0]);
            return QF_EFORMAT;
        }
        *len = s;
        return 0;
    }
    if (type == QF_GGUF_STRING) {
        if (avail < 8) {
            if (why)
                snprintf(why, why_cap, "string length runs past the end of the file");
            return QF_ETRUNC;
        }
        n = qf_le64(p);
        if (n > avail - 8) {
            if (why)
                snprintf(why, why_cap, "string length %" PRIu64 " exceeds the %" PRIu64
                         " bytes left", n, avail - 8);
            return QF_ETRUNC;
        }
        *len = 8 + n;
        return 0;
    }
    /* ARRAY: elem type u32 | n u64 | n values */
    if (depth >= MAX_DEPTH) {
        if (why)
            snprintf(why, why_cap, "arrays nested deeper than %d levels", MAX_DEPTH);
        return QF_ELIMIT;
    }
    if (avail < 12) {
        if (why)
            snprintf(why, why_cap, "array header runs past the end of the file");
        return QF_ETRUNC;
    }
    et = qf_le32(p);
    n = qf_le64(p + 4);
    if (et >= QF_GGUF_VTYPE_COUNT) {
        if (why)
            snprintf(why, why_cap, "array of unknown element type %" PRIu32, et);
        return QF_EFORMAT;
    }
    min = et == QF_GGUF_STRING ? 8 : et == QF_GGUF_ARRAY ? 12 : vtype_sizes[et];
    if (n > (avail - 12) / min) {
        if (why)
            snprintf(why, why_cap, "array count %" PRIu64 " exceeds what %" PRIu64
                     " bytes can hold", n, avail - 12);
        return QF_ETRUNC;
    }
    if (et != QF_GGUF_STRING && et != QF_GGUF_ARRAY && et != QF_GGUF_BOOL) {
        *len = 12 + n * min;
        return 0;
    }
    pos = 12;
    for (i = 0; i < n; i++) {
        rc = walk_value(p + pos, avail - pos, et, depth + 1, &elen, why, why_cap);
        if (rc != 0)
            return rc;
        pos += elen;
    }
    *len = pos;
    return 0;
}

static int64_t sext(uint64_t u, int bits)
{
    uint64_t sign = (uint64_t)1 << (bits - 1);
    uint64_t mask = bits == 64 ? UINT64_MAX : (((uint64_t)1 << bits) - 1);
    int64_t r;

    u &= mask;
    u = (u ^ sign) - sign; /* two's complement sign extension, no UB */
    memcpy(&r, &u, sizeof r);
    return r;
}

/* Fill *v from a span already known to be a well-formed value of `type`. */
static void fill_val(const uint8_t *p, uint64_t len, uint32_t type, qf_gguf_val *v)
{
    memset(v, 0, sizeof *v);
    v->type = (qf_gguf_vtype)type;
    v->raw = p;
    v->raw_len = len;
    switch (type) {
    case QF_GGUF_UINT8:
    case QF_GGUF_BOOL: v->u = p[0]; v->i = (int64_t)v->u; break;
    case QF_GGUF_UINT16: v->u = qf_le16(p); v->i = (int64_t)v->u; break;
    case QF_GGUF_UINT32: v->u = qf_le32(p); v->i = (int64_t)v->u; break;
    case QF_GGUF_UINT64: v->u = qf_le64(p); v->i = sext(v->u, 64); break;
    case QF_GGUF_INT8: v->i = sext(p[0], 8); v->u = (uint64_t)v->i; break;
    case QF_GGUF_INT16: v->i = sext(qf_le16(p), 16); v->u = (uint64_t)v->i; break;
    case QF_GGUF_INT32: v->i = sext(qf_le32(p), 32); v->u = (uint64_t)v->i; break;
    case QF_GGUF_INT64: v->i = sext(qf_le64(p), 64); v->u = (uint64_t)v->i; break;
    case QF_GGUF_FLOAT32: {
        uint32_t b = qf_le32(p);
        float f;
        memcpy(&f, &b, 4);
        v->f = (double)f;
        break;
    }
    case QF_GGUF_FLOAT64: {
        uint64_t b = qf_le64(p);
        memcpy(&v->f, &b, 8);
        break;
    }
    case QF_GGUF_STRING:
        v->str_len = qf_le64(p);
        v->str = (const char *)(p + 8);
        break;
    case QF_GGUF_ARRAY:
        v->arr_type = (qf_gguf_vtype)qf_le32(p);
        v->arr_n = qf_le64(p + 4);
        break;
    default: break;
    }
}

void qf_gguf_iter_init(qf_gguf_iter *it, const qf_gguf_val *arr)
{
    memset(it, 0, sizeof *it);
    if (!arr || arr->type != QF_GGUF_ARRAY || !arr->raw || arr->raw_len < 12)
        return; /* an empty iterator */
    it->p = arr->raw + 12;
    it->end = arr->raw + arr->raw_len;
    it->type = arr->arr_type;
    it->left = arr->arr_n;
}

int qf_gguf_iter_next(qf_gguf_iter *it, qf_gguf_val *out)
{
    uint64_t len;

    if (it->left == 0)
        return 0;
    if (!it->p || it->p > it->end ||
        walk_value(it->p, (uint64_t)(it->end - it->p), it->type, 0, &len, NULL, 0) != 0) {
        it->left = 0;
        return QF_EFORMAT;
    }
    fill_val(it->p, len, it->type, out);
    it->p += len;
    it->left--;
    return 1;
}

/* =====================================================================
 * Name index: open addressing over borrowed NUL-terminated strings
 * ===================================================================== */

typedef struct name_slot {
    const char *name; /* NULL when empty */
    int64_t idx;
} name_slot;

typedef struct name_index {
    name_slot *slots;
    uint64_t cap; /* 0 or a power of two */
    uint64_t n;
} name_index;

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int64_t index_find(const name_index *ix, const char *s, size_t len)
{
    uint64_t h;

    if (ix->cap == 0)
        return -1;
    for (h = hash_bytes(s, len) & (ix->cap - 1);; h = (h + 1) & (ix->cap - 1)) {
        const name_slot *sl = &ix->slots[h];
        if (!sl->name)
            return -1;
        if (strncmp(sl->name, s, len) == 0 && sl->name[len] == '\0')
            return sl->idx;
    }
}

static void index_put(name_slot *slots, uint64_t cap, const char *name, int64_t idx)
{
    uint64_t h = hash_bytes(name, strlen(name)) & (cap - 1);

    while (slots[h].name)
        h = (h + 1) & (cap - 1);
    slots[h].name = name;
    slots[h].idx = idx;
}

/* Add `name` (borrowed; must outlive the index). Returns 0 or QF_ENOMEM. */
static int index_add(name_index *ix, const char *name, int64_t idx)
{
    if ((ix->n + 1) * 2 > ix->cap) {
        uint64_t cap = ix->cap ? ix->cap * 2 : 16, i;
        name_slot *s;
        if (cap > SIZE_MAX / sizeof *s)
            return QF_ENOMEM;
        s = calloc((size_t)cap, sizeof *s);
        if (!s)
            return QF_ENOMEM;
        for (i = 0; i < ix->cap; i++)
            if (ix->slots[i].name)
                index_put(s, cap, ix->slots[i].name, ix->slots[i].idx);
        free(ix->slots);
        ix->slots = s;
        ix->cap = cap;
    }
    index_put(ix->slots, ix->cap, name, idx);
    ix->n++;
    return 0;
}

static void index_free(name_index *ix)
{
    free(ix->slots);
    memset(ix, 0, sizeof *ix);
}

/* Grow *arr (elements of `elt` bytes) so that it holds at least n + 1. */
static int grow(void **arr, int64_t *cap, int64_t n, size_t elt, int64_t limit)
{
    int64_t c;
    void *p;

    if (n < *cap)
        return 0;
    c = *cap ? *cap * 2 : 16;
    if (c > limit)
        c = limit > n ? limit : n + 1;
    if ((uint64_t)c > SIZE_MAX / elt)
        return QF_ENOMEM;
    p = realloc(*arr, (size_t)c * elt);
    if (!p)
        return QF_ENOMEM;
    *arr = p;
    *cap = c;
    return 0;
}

static char *dup_bytes(const void *s, size_t len)
{
    char *d = malloc(len + 1);

    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

/* =====================================================================
 * Reader
 * ===================================================================== */

typedef struct kv_ent {
    char *key;           /* owned, NUL-terminated */
    uint64_t off;        /* file offset of the key */
    uint32_t type;
    const uint8_t *val;  /* encoded value (borrowed from the file) */
    uint64_t val_len;
} kv_ent;

struct qf_gguf {
    char *path;
    qf_map *map;          /* NULL for buffers */
    const uint8_t *base;
    uint64_t size;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;
    uint64_t data_size;
    kv_ent *kv;
    int64_t n_kv, cap_kv;
    qf_gguf_tensor *t;
    int64_t n_t, cap_t;
    name_index keys, names;
};

void qf_gguf_close(qf_gguf *g)
{
    int64_t i;

    if (!g)
        return;
    for (i = 0; i < g->n_kv; i++)
        free(g->kv[i].key);
    for (i = 0; i < g->n_t; i++)
        free((char *)g->t[i].name);
    free(g->kv);
    free(g->t);
    index_free(&g->keys);
    index_free(&g->names);
    qf_map_close(g->map);
    free(g->path);
    free(g);
}

/* Read a string (len u64 | bytes): ETRUNC if either part runs past the end. */
static int read_str(qf_cur *c, const uint8_t **p, uint64_t *len)
{
    uint64_t save = c->pos;

    if (qf_cur_u64(c, len) != 0)
        return QF_ETRUNC;
    if (qf_cur_bytes(c, *len, p) != 0) {
        c->pos = save;
        return QF_ETRUNC;
    }
    return 0;
}

/* Write the 4 magic bytes printably ("PK\x03\x04") into out[24]. */
static void show_magic(const uint8_t *m, char *out, size_t cap)
{
    size_t n = 0;
    int i;

    for (i = 0; i < 4 && n + 5 < cap; i++) {
        if (m[i] >= 0x20 && m[i] < 0x7F && m[i] != '"' && m[i] != '\\')
            out[n++] = (char)m[i];
        else
            n += (size_t)snprintf(out + n, cap - n, "\\x%02X", m[i]);
    }
    out[n] = '\0';
}

static int parse_kvs(qf_gguf *g, qf_cur *c, uint64_t n_kv, qf_err *err)
{
    const char *nm = g->path;
    char why[200];
    uint64_t i;

    for (i = 0; i < n_kv; i++) {
        uint64_t off = c->pos, klen, vlen;
        const uint8_t *kp;
        uint32_t type;
        kv_ent *e;
        int rc;

        if (read_str(c, &kp, &klen) != 0) {
            if (qf_cur_left(c) < 8)
                return qf_err_set(err, QF_ETRUNC, "%s: key %" PRIu64 ": truncated", nm, i);
            return qf_err_set(err, QF_ETRUNC, "%s: key %" PRIu64 ": length %" PRIu64
                              " exceeds the %" PRIu64 " bytes left", nm, i,
                              qf_le64(c->base + c->pos), qf_cur_left(c) - 8);
        }
        if (klen == 0)
            return qf_err_set(err, QF_EFORMAT, "%s: key %" PRIu64 ": empty key", nm, i);
        if (memchr(kp, 0, (size_t)klen))
            return qf_err_set(err, QF_EFORMAT, "%s: key %" PRIu64 ": contains a NUL byte", nm, i);
        if (!qf_utf8_valid((const char *)kp, (size_t)klen))
            return qf_err_set(err, QF_EFORMAT, "%s: key %" PRIu64 ": invalid UTF-8", nm, i);
        if (index_find(&g->keys, (const char *)kp, (size_t)klen) >= 0)
            return qf_err_set(err, QF_EFORMAT, "%s: duplicate key \"%.*s\"", nm,
                              klen > 200 ? 200 : (int)klen, (const char *)kp);
        if (grow((void **)&g->kv, &g->cap_kv, g->n_kv, sizeof *g->kv, (int64_t)n_kv) != 0)
            return qf_err_set(err, QF_ENOMEM, "%s: out of memory", nm);
        e = &g->kv[g->n_kv];
        memset(e, 0, sizeof *e);
        e->key = dup_bytes(kp, (size_t)klen);
        if (!e->key)
            return qf_err_set(err, QF_ENOMEM, "%s: out of memory", nm);
        e->off = off;
        g->n_kv++;
        if (index_add(&g->keys, e->key, g->n_kv - 1) != 0)
            return qf_err_set(err, QF_ENOMEM, "%s: out of memory", nm);
        if (qf_cur_u32(c, &type) != 0)
            return qf_err_set(err, QF_ETRUNC, "%s: key \"%s\": truncated before its type", nm,
                              e->key);
        rc = walk_value(c->base + c->pos, qf_cur_left(c), type, 0, &vlen, why, sizeof why);
        if (rc != 0)
            return qf_err_set(err, rc, "%s: key \"%s\": %s", nm, e->key, why);
        e->type = type;
        e->val = c->base + c->pos;
        e->val_len = vlen;
        c->pos += vlen;
    }
    return 0;
}

static int parse_alignment(qf_gguf *g, qf_err *err)
{
    int64_t i = qf_gguf_find_key(g, ALIGN_KEY);
    uint32_t a;

    g->alignment = QF_GGUF_DEFAULT_ALIGNMENT;
    if (i < 0)
        return 0;
    if (g->kv[i].type != QF_GGUF_UINT32)
        return qf_err_set(err, QF_EFORMAT, "%s: " ALIGN_KEY " has type %s, expected UINT32",
                          g->path, qf_gguf_vtype_name((int)g->kv[i].type));
    a = qf_le32(g->kv[i].val);
    if (!is_pow2(a))
        return qf_err_set(err, QF_EFORMAT, "%s: " ALIGN_KEY " %" PRIu32
                          " is not a power of two", g->path, a);
    g->alignment = a;
    return 0;
}

static int parse_tensor(qf_gguf *g, qf_cur *c, uint64_t i, qf_err *err)
{
    const char *nm = g->path;
    const qf_ggml_traits *tr;
    qf_gguf_tensor *t;
    uint64_t off = c->pos, nlen, rowb, rows, nel;
    const uint8_t *np;
    uint32_t d, type;
    int rc;

    if (read_str(c, &np, &nlen) != 0) {
        if (qf_cur_left(c) < 8)
            return qf_err_set(err, QF_ETRUNC, "%s: tensor %" PRIu64 ": truncated", nm, i);
        return qf_err_set(err, QF_ETRUNC, "%s: tensor %" PRIu64 ": name length %" PRIu64
                          " exceeds the %" PRIu64 " bytes left", nm, i,
                          qf_le64(c->base + c->pos), qf_cur_left(c) - 8);
    }
    if (nlen >= QF_GGUF_MAX_NAME)
        return qf_err_set(err, QF_EFORMAT, "%s: tensor %" PRIu64 ": name of %" PRIu64
                          " bytes is too long (must be < %d)", nm, i, nlen, QF_GGUF_MAX_NAME);
    if (memchr(np, 0, (size_t)nlen))
        return qf_err_set(err, QF_EFORMAT, "%s: tensor %" PRIu64 ": name contains a NUL byte",
                          nm, i);
    if (!qf_utf8_valid((const char *)np, (size_t)nlen))
        return qf_err_set(err, QF_EFORMAT, "%s: tensor %" PRIu64 ": name is not valid UTF-8",
                          nm, i);
    if (index_find(&g->names, (const char *)np, (size_t)nlen) >= 0)
        return qf_err_set(err, QF_EFORMAT, "%s: duplicate tensor name \"%.*s\"", nm, (int)nlen,
                          (const char *)np);
    if (grow((void **)&g->t, &g->cap_t, g->n_t, sizeof *g->t, INT64_MAX) != 0)
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", nm);
    t = &g->t[g->n_t];
    memset(t, 0, sizeof *t);
    t->name = dup_bytes(np, (size_t)nlen);
    if (!t->name)
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", nm);
    t->info_offset = off;
    g->n_t++;
    if (index_add(&g->names, t->name, g->n_t - 1) != 0)
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", nm);

    if (qf_cur_u32(c, &t->n_dims) != 0)
        return qf_err_set(err, QF_ETRUNC, "%s: tensor \"%s\": truncated", nm, t->name);
    if (t->n_dims < 1 || t->n_dims > QF_GGUF_MAX_DIMS)
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": n_dims %" PRIu32
                          " is not in 1..%d", nm, t->name, t->n_dims, QF_GGUF_MAX_DIMS);
    for (d = 0; d < QF_GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d >= t->n_dims)
            continue;
        if (qf_cur_u64(c, &t->ne[d]) != 0)
            return qf_err_set(err, QF_ETRUNC, "%s: tensor \"%s\": truncated", nm, t->name);
        if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX)
            return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": ne[%" PRIu32 "] = %" PRIu64
                              " is out of range [1, 2^63)", nm, t->name, d, t->ne[d]);
    }
    nel = 1;
    for (d = 0; d < QF_GGUF_MAX_DIMS; d++) {
        if (t->ne[d] > (uint64_t)INT64_MAX / nel)
            return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": element count of [%" PRIu64
                              ", %" PRIu64 ", %" PRIu64 ", %" PRIu64 "] overflows int64", nm,
                              t->name, t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
        nel *= t->ne[d];
    }
    t->n_elements = nel;
    if (qf_cur_u32(c, &type) != 0)
        return qf_err_set(err, QF_ETRUNC, "%s: tensor \"%s\": truncated", nm, t->name);
    tr = qf_ggml_type_traits((int)type);
    if (!tr || type > (uint32_t)INT32_MAX)
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": unknown ggml type %" PRIu32, nm,
                          t->name, type);
    t->type = (int)type;
    rc = qf_ggml_row_size(t->type, t->ne[0], &rowb);
    if (rc == QF_EFORMAT)
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": row length %" PRIu64
                          " is not a multiple of the %s block size %" PRIu32, nm, t->name,
                          t->ne[0], tr->name, tr->block_size);
    rows = nel / t->ne[0];
    if (rc != 0 || (rows != 0 && rowb > UINT64_MAX / rows))
        return qf_err_set(err, QF_ELIMIT, "%s: tensor \"%s\": size in bytes overflows", nm,
                          t->name);
    t->nbytes = rowb * rows;
    if (qf_cur_u64(c, &t->offset) != 0)
        return qf_err_set(err, QF_ETRUNC, "%s: tensor \"%s\": truncated", nm, t->name);
    return 0;
}

static int parse(qf_gguf *g, qf_err *err)
{
    const char *nm = g->path;
    qf_cur c = qf_cur_make(g->base, g->size);
    uint64_t n_t, n_kv, left, i, expected;
    int rc;

    if (g->size == 0)
        return qf_err_set(err, QF_ETRUNC, "%s: empty file", nm);
    if (g->size < 4)
        return qf_err_set(err, QF_ETRUNC, "%s: file of %" PRIu64
                          " bytes is too short for a GGUF header", nm, g->size);
    if (memcmp(g->base, QF_GGUF_MAGIC, 4) != 0) {
        char m[24];
        show_magic(g->base, m, sizeof m);
        return qf_err_set(err, QF_EFORMAT, "%s: not a GGUF file (magic \"%s\")", nm, m);
    }
    c.pos = 4;
    if (qf_cur_u32(&c, &g->version) != 0)
        return qf_err_set(err, QF_ETRUNC, "%s: truncated header (%" PRIu64 " bytes)", nm,
                          g->size);
    if (g->version != 0 && (g->version & 0xFFFF) == 0)
        return qf_err_set(err, QF_EUNSUPPORTED, "%s: big-endian GGUF is not supported", nm);
    if (g->version == 0)
        return qf_err_set(err, QF_EFORMAT, "%s: bad GGUF version 0", nm);
    if (g->version == 1)
        return qf_err_set(err, QF_EUNSUPPORTED, "%s: GGUF version 1 is not supported", nm);
    if (g->version > QF_GGUF_VERSION)
        return qf_err_set(err, QF_EUNSUPPORTED, "%s: GGUF version %" PRIu32
                          " is not supported (qforge reads versions 2 and 3)", nm, g->version);
    if (qf_cur_u64(&c, &n_t) != 0 || qf_cur_u64(&c, &n_kv) != 0)
        return qf_err_set(err, QF_ETRUNC, "%s: truncated header (%" PRIu64 " bytes)", nm,
                          g->size);
    left = qf_cur_left(&c);
    if (n_kv > left / KV_MIN_BYTES)
        return qf_err_set(err, QF_ETRUNC, "%s: key/value count %" PRIu64
                          " exceeds what %" PRIu64 " bytes can hold", nm, n_kv, left);
    if (n_t > left / TI_MIN_BYTES)
        return qf_err_set(err, QF_ETRUNC, "%s: tensor count %" PRIu64
                          " exceeds what %" PRIu64 " bytes can hold", nm, n_t, left);

    if ((rc = parse_kvs(g, &c, n_kv, err)) != 0)
        return rc;
    if ((rc = parse_alignment(g, err)) != 0)
        return rc;

    left = qf_cur_left(&c);
    if (n_t > left / TI_MIN_BYTES)
        return qf_err_set(err, QF_ETRUNC, "%s: tensor count %" PRIu64
                          " exceeds what %" PRIu64 " bytes can hold", nm, n_t, left);
    for (i = 0; i < n_t; i++)
        if ((rc = parse_tensor(g, &c, i, err)) != 0)
            return rc;

    /* Data section: header end padded to the alignment; tensors packed in
     * order, each padded, exactly as ggml lays them out. */
    g->data_offset = pad_to(c.pos, g->alignment);
    expected = 0;
    for (i = 0; i < n_t; i++) {
        qf_gguf_tensor *t = &g->t[i];
        uint64_t room = g->data_offset <= g->size ? g->size - g->data_offset : 0;
        if (t->offset % g->alignment != 0)
            return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": offset %" PRIu64
                              " is not a multiple of the alignment %" PRIu32, nm, t->name,
                              t->offset, g->alignment);
        if (t->offset != expected)
            return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": offset %" PRIu64
                              " != expected %" PRIu64, nm, t->name, t->offset, expected);
        if (t->offset > room || t->nbytes > room - t->offset)
            return qf_err_set(err, QF_ETRUNC, "%s: tensor \"%s\": data [%" PRIu64 ", %" PRIu64
                              ") runs past the end of the file (%" PRIu64
                              " bytes of data section)", nm, t->name, t->offset,
                              t->nbytes > UINT64_MAX - t->offset ? UINT64_MAX
                                                                 : t->offset + t->nbytes,
                              room);
        t->data = g->base + g->data_offset + t->offset;
        /* nbytes <= file size, so neither the padding nor the sum overflows */
        expected += pad_to(t->nbytes, g->alignment);
    }
    g->data_size = expected;
    return 0;
}

static int open_common(qf_gguf *g, qf_gguf **out, qf_err *err)
{
    int rc = parse(g, err);

    if (rc != 0) {
        qf_gguf_close(g);
        return rc;
    }
    *out = g;
    return 0;
}

int qf_gguf_open_buffer(const void *buf, uint64_t size, const char *name, qf_gguf **out,
                        qf_err *err)
{
    qf_gguf *g;

    *out = NULL;
    if (!name)
        name = "<buffer>";
    if (!buf && size != 0)
        return qf_err_set(err, QF_EINVAL, "%s: NULL buffer", name);
    g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(name))) {
        free(g);
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", name);
    }
    g->base = buf;
    g->size = size;
    return open_common(g, out, err);
}

int qf_gguf_open(const char *path, qf_gguf **out, qf_err *err)
{
    qf_gguf *g;
    qf_map *m = NULL;
    int rc;

    *out = NULL;
    if ((rc = qf_map_open(path, &m, err)) != 0)
        return rc;
    g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(path))) {
        free(g);
        qf_map_close(m);
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
    }
    g->map = m;
    g->base = qf_map_data(m);
    g->size = qf_map_size(m);
    return open_common(g, out, err);
}

const char *qf_gguf_path(const qf_gguf *g) { return g->path; }
uint32_t qf_gguf_version(const qf_gguf *g) { return g->version; }
uint32_t qf_gguf_alignment(const qf_gguf *g) { return g->alignment; }
uint64_t qf_gguf_data_offset(const qf_gguf *g) { return g->data_offset; }
uint64_t qf_gguf_data_size(const qf_gguf *g) { return g->data_size; }
uint64_t qf_gguf_file_size(const qf_gguf *g) { return g->size; }
const uint8_t *qf_gguf_file_data(const qf_gguf *g) { return g->base; }

int64_t qf_gguf_kv_count(const qf_gguf *g) { return g->n_kv; }

const char *qf_gguf_kv_key(const qf_gguf *g, int64_t i)
{
    return (i >= 0 && i < g->n_kv) ? g->kv[i].key : NULL;
}

qf_gguf_vtype qf_gguf_kv_type(const qf_gguf *g, int64_t i)
{
    return (i >= 0 && i < g->n_kv) ? (qf_gguf_vtype)g->kv[i].type : QF_GGUF_VTYPE_COUNT;
}

uint64_t qf_gguf_kv_offset(const qf_gguf *g, int64_t i)
{
    return (i >= 0 && i < g->n_kv) ? g->kv[i].off : 0;
}

int qf_gguf_kv_value(const qf_gguf *g, int64_t i, qf_gguf_val *v)
{
    if (i < 0 || i >= g->n_kv)
        return QF_EINVAL;
    fill_val(g->kv[i].val, g->kv[i].val_len, g->kv[i].type, v);
    return 0;
}

int64_t qf_gguf_find_key(const qf_gguf *g, const char *key)
{
    return key ? index_find(&g->keys, key, strlen(key)) : -1;
}

/* Look up `key` for a typed getter: 0 with *v filled, or QF_ENOTFOUND. */
static int lookup(const qf_gguf *g, const char *key, qf_gguf_val *v)
{
    int64_t i = qf_gguf_find_key(g, key);

    if (i < 0)
        return QF_ENOTFOUND;
    return qf_gguf_kv_value(g, i, v);
}

static int type_mismatch(const qf_gguf *g, const char *key, const qf_gguf_val *v,
                         const char *want, qf_err *err)
{
    return qf_err_set(err, QF_EFORMAT, "%s: key \"%s\" has type %s, expected %s", g->path, key,
                      qf_gguf_vtype_name((int)v->type), want);
}

static int is_unsigned(qf_gguf_vtype t)
{
    return t == QF_GGUF_UINT8 || t == QF_GGUF_UINT16 || t == QF_GGUF_UINT32 ||
           t == QF_GGUF_UINT64;
}

static int is_signed(qf_gguf_vtype t)
{
    return t == QF_GGUF_INT8 || t == QF_GGUF_INT16 || t == QF_GGUF_INT32 || t == QF_GGUF_INT64;
}

int qf_gguf_get_uint(const qf_gguf *g, const char *key, uint64_t *v, qf_err *err)
{
    qf_gguf_val val;
    int rc = lookup(g, key, &val);

    if (rc != 0)
        return rc;
    if (is_unsigned(val.type)) {
        *v = val.u;
        return 0;
    }
    if (is_signed(val.type)) {
        if (val.i < 0)
            return qf_err_set(err, QF_EFORMAT, "%s: key \"%s\" (%s) is %" PRId64
                              ", expected a non-negative value", g->path, key,
                              qf_gguf_vtype_name((int)val.type), val.i);
        *v = (uint64_t)val.i;
        return 0;
    }
    return type_mismatch(g, key, &val, "an unsigned integer type", err);
}

int qf_gguf_get_int(const qf_gguf *g, const char *key, int64_t *v, qf_err *err)
{
    qf_gguf_val val;
    int rc = lookup(g, key, &val);

    if (rc != 0)
        return rc;
    if (is_signed(val.type)) {
        *v = val.i;
        return 0;
    }
    if (is_unsigned(val.type)) {
        if (val.u > (uint64_t)INT64_MAX)
            return qf_err_set(err, QF_EFORMAT, "%s: key \"%s\" (UINT64) is %" PRIu64
                              ", which does not fit int64", g->path, key, val.u);
        *v = (int64_t)val.u;
        return 0;
    }
    return type_mismatch(g, key, &val, "an integer type", err);
}

int qf_gguf_get_float(const qf_gguf *g, const char *key, double *v, qf_err *err)
{
    qf_gguf_val val;
    int rc = lookup(g, key, &val);

    if (rc != 0)
        return rc;
    if (val.type != QF_GGUF_FLOAT32 && val.type != QF_GGUF_FLOAT64)
        return type_mismatch(g, key, &val, "FLOAT32 or FLOAT64", err);
    *v = val.f;
    return 0;
}

int qf_gguf_get_bool(const qf_gguf *g, const char *key, int *v, qf_err *err)
{
    qf_gguf_val val;
    int rc = lookup(g, key, &val);

    if (rc != 0)
        return rc;
    if (val.type != QF_GGUF_BOOL)
        return type_mismatch(g, key, &val, "BOOL", err);
    *v = val.u != 0;
    return 0;
}

int qf_gguf_get_str(const qf_gguf *g, const char *key, const char **s, uint64_t *len,
                    qf_err *err)
{
    qf_gguf_val val;
    int rc = lookup(g, key, &val);

    if (rc != 0)
        return rc;
    if (val.type != QF_GGUF_STRING)
        return type_mismatch(g, key, &val, "STRING", err);
    *s = val.str;
    if (len)
        *len = val.str_len;
    return 0;
}

int64_t qf_gguf_tensor_count(const qf_gguf *g) { return g->n_t; }

const qf_gguf_tensor *qf_gguf_tensor_at(const qf_gguf *g, int64_t i)
{
    return (i >= 0 && i < g->n_t) ? &g->t[i] : NULL;
}

int64_t qf_gguf_find_tensor(const qf_gguf *g, const char *name)
{
    return name ? index_find(&g->names, name, strlen(name)) : -1;
}

void qf_gguf_release_tensor(const qf_gguf *g, int64_t i)
{
    if (!g || !g->map || i < 0 || i >= g->n_t)
        return;
    qf_map_release(g->map, g->data_offset + g->t[i].offset, g->t[i].nbytes);
}

void qf_gguf_release_range(const qf_gguf *g, int64_t i, uint64_t off, uint64_t len)
{
    const qf_gguf_tensor *t;

    if (!g || !g->map || i < 0 || i >= g->n_t)
        return;
    t = &g->t[i];
    if (off >= t->nbytes || len == 0)
        return;
    if (len > t->nbytes - off)
        len = t->nbytes - off;
    qf_map_release(g->map, g->data_offset + t->offset + off, len);
}

/* =====================================================================
 * Writer
 * ===================================================================== */

typedef struct wkv {
    char *key;       /* owned */
    uint32_t type;
    uint8_t *val;    /* owned encoded value */
    uint64_t len;
} wkv;

typedef struct wtensor {
    char *name;      /* owned */
    int type;
    uint32_t n_dims;
    uint64_t ne[QF_GGUF_MAX_DIMS];
    uint64_t nbytes;
    uint64_t offset; /* set by layout() */
} wtensor;

struct qf_gguf_writer {
    wkv *kv;
    int64_t n_kv, cap_kv;
    wtensor *t;
    int64_t n_t, cap_t;
    name_index names;
    uint32_t alignment;
    uint64_t data_bound;  /* sum of nbytes + MAX_ALIGN per tensor: bounds any layout */
    int begun;            /* begin() succeeded: metadata is frozen */
    qf_out *out;          /* open between begin and finish */
    int64_t cur;          /* tensor receiving data */
    uint64_t cur_done;    /* bytes of it written */
    uint64_t data_left;   /* unpadded bytes still expected */
    qf_sha256 *h_one;     /* with hashing on: digest of the current tensor */
    qf_sha256 *h_all;     /* ... and of all tensor data */
    uint8_t (*digests)[QF_SHA256_LEN]; /* one per tensor, filled as each completes */
    uint8_t digest_all[QF_SHA256_LEN];
};

int qf_gguf_writer_new(qf_gguf_writer **out, qf_err *err)
{
    qf_gguf_writer *w = calloc(1, sizeof *w);

    *out = NULL;
    if (!w)
        return qf_err_set(err, QF_ENOMEM, "gguf writer: out of memory");
    w->alignment = QF_GGUF_DEFAULT_ALIGNMENT;
    *out = w;
    return 0;
}

void qf_gguf_writer_free(qf_gguf_writer *w)
{
    int64_t i;

    if (!w)
        return;
    for (i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    for (i = 0; i < w->n_t; i++)
        free(w->t[i].name);
    free(w->kv);
    free(w->t);
    index_free(&w->names);
    qf_out_close(w->out);
    qf_sha256_free(w->h_one);
    qf_sha256_free(w->h_all);
    free(w->digests);
    free(w);
}

static int64_t writer_find(const qf_gguf_writer *w, const char *key)
{
    int64_t i;

    for (i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0)
            return i;
    return -1;
}

int qf_gguf_writer_remove(qf_gguf_writer *w, const char *key)
{
    int64_t i;

    if (!w || !key || w->begun)
        return QF_EINVAL;
    if ((i = writer_find(w, key)) < 0)
        return QF_ENOTFOUND;
    free(w->kv[i].key);
    free(w->kv[i].val);
    memmove(&w->kv[i], &w->kv[i + 1], (size_t)(w->n_kv - i - 1) * sizeof *w->kv);
    w->n_kv--;
    if (strcmp(key, ALIGN_KEY) == 0)
        w->alignment = QF_GGUF_DEFAULT_ALIGNMENT;
    return 0;
}

/* Store (key, type, val[0..len)) as the last pair, replacing any pair with
 * the same key. `val` must already be a well-formed encoding. */
static int set_encoded(qf_gguf_writer *w, const char *key, uint32_t type, const uint8_t *val,
                       uint64_t len, qf_err *err)
{
    uint32_t align = 0;
    size_t klen;
    wkv e;

    if (!w || !key)
        return qf_err_set(err, QF_EINVAL, "gguf writer: NULL writer or key");
    if (w->begun)
        return qf_err_set(err, QF_EINVAL, "key \"%s\": metadata cannot change after the "
                          "output has begun", key);
    klen = strlen(key);
    if (klen == 0 || klen > MAX_KEY_LEN)
        return qf_err_set(err, QF_EINVAL, "key of %zu bytes: a key must have 1..%d bytes",
                          klen, MAX_KEY_LEN);
    if (!qf_utf8_valid(key, klen))
        return qf_err_set(err, QF_EINVAL, "key \"%s\": invalid UTF-8", key);
    if (strcmp(key, ALIGN_KEY) == 0) {
        if (type != QF_GGUF_UINT32)
            return qf_err_set(err, QF_EINVAL, ALIGN_KEY " must be UINT32, not %s",
                              qf_gguf_vtype_name((int)type));
        align = qf_le32(val);
        if (!is_pow2(align))
            return qf_err_set(err, QF_EINVAL, ALIGN_KEY " %" PRIu32
                              " is not a power of two", align);
    }
    if (len > SIZE_MAX - 1)
        return qf_err_set(err, QF_ENOMEM, "key \"%s\": out of memory", key);
    e.type = type;
    e.len = len;
    e.key = dup_bytes(key, klen);
    e.val = malloc(len ? (size_t)len : 1);
    if (!e.key || !e.val ||
        grow((void **)&w->kv, &w->cap_kv, w->n_kv, sizeof *w->kv, INT64_MAX) != 0) {
        free(e.key);
        free(e.val);
        return qf_err_set(err, QF_ENOMEM, "key \"%s\": out of memory", key);
    }
    if (len)
        memcpy(e.val, val, (size_t)len);
    (void)qf_gguf_writer_remove(w, key); /* ggml: set on an existing key moves it last */
    w->kv[w->n_kv++] = e;
    if (align)
        w->alignment = align;
    return 0;
}

int qf_gguf_writer_set_raw(qf_gguf_writer *w, const char *key, qf_gguf_vtype type,
                           const void *val, uint64_t len, qf_err *err)
{
    char why[200];
    uint64_t used;
    int rc;

    if (!val && len)
        return qf_err_set(err, QF_EINVAL, "key \"%s\": NULL value", key ? key : "");
    rc = walk_value(val ? val : (const void *)"", len, (uint32_t)type, 0, &used, why, sizeof why);
    if (rc != 0)
        return qf_err_set(err, QF_EINVAL, "key \"%s\": bad encoded value: %s", key ? key : "",
                          why);
    if (used != len)
        return qf_err_set(err, QF_EINVAL, "key \"%s\": encoded value has %" PRIu64
                          " trailing bytes", key ? key : "", len - used);
    return set_encoded(w, key, (uint32_t)type, val, len, err);
}

static int set_fixed(qf_gguf_writer *w, const char *key, uint32_t type, uint64_t bits,
                     qf_err *err)
{
    uint8_t b[8];

    switch (vtype_sizes[type]) {
    case 1: b[0] = (uint8_t)bits; break;
    case 2: qf_put16(b, (uint16_t)bits); break;
    case 4: qf_put32(b, (uint32_t)bits); break;
    default: qf_put64(b, bits); break;
    }
    return set_encoded(w, key, type, b, vtype_sizes[type], err);
}

int qf_gguf_writer_set_u8(qf_gguf_writer *w, const char *key, uint8_t v, qf_err *err)
{
    return set_fixed(w, key, QF_GGUF_UINT8, v, err);
}
int qf_gguf_writer_set_i8(qf_gguf_writer *w, const char *key, int8_t v, qf_err *err)
{
    return set_fixed(w, key, QF_GGUF_INT8, (uint64_t)(int64_t)v, err);
}
int qf_gguf_writer_set_u16(qf_gguf_writer *w, const char *key, uint16_t v, qf_err *err)
{
    return set_fixed(w, key, QF_GGUF_UINT16, v, err);
}
int qf_gguf_writer_set_i16(qf_gguf_writer *w, const char *key, int16_t v, qf_err *err)
{
    return set_fixed(w, key, QF_GGUF_INT16, (uint64_t)(int64_t)v, err);
}
int qf_gguf_writer_set_u32(qf_gguf_writer *w, const char *key, uint32_t v, qf_err *err)
{
    return set_fixed(w, key, QF_GGUF_UINT32, v, err);
}
int qf_gguf_writer_set_i32(qf_gguf_writer *w, const char *key, int32_t v, qf_err *err)
{
    return set_fixed(w, key, QF_GGUF_INT32, (uint64_t)(int64_t)v, err);
}
int qf_gguf_writer_set_u64(qf_gguf_writer *w, const char *key, uint64_t v, qf_err *err)
{
    return set_fixed(w, key, QF_GGUF_UINT64, v, err);
}
int qf_gguf_writer_set_i64(qf_gguf_writer *w, const char *key, int64_t v, qf_err *err)
{
    return set_fixed(w, key, QF_GGUF_INT64, (uint64_t)v, err);
}
int qf_gguf_writer_set_f32(qf_gguf_writer *w, const char *key, float v, qf_err *err)
{
    uint32_t b;
    memcpy(&b, &v, 4);
    return set_fixed(w, key, QF_GGUF_FLOAT32, b, err);
}
int qf_gguf_writer_set_f64(qf_gguf_writer *w, const char *key, double v, qf_err *err)
{
    uint64_t b;
    memcpy(&b, &v, 8);
    return set_fixed(w, key, QF_GGUF_FLOAT64, b, err);
}
int qf_gguf_writer_set_bool(qf_gguf_writer *w, const char *key, int v, qf_err *err)
{
    return set_fixed(w, key, QF_GGUF_BOOL, v ? 1 : 0, err);
}

int qf_gguf_writer_set_strn(qf_gguf_writer *w, const char *key, const char *s, uint64_t len,
                            qf_err *err)
{
    uint8_t *b;
    int rc;

    if (!s && len)
        return qf_err_set(err, QF_EINVAL, "key \"%s\": NULL string", key ? key : "");
    if (len > SIZE_MAX - 8)
        return qf_err_set(err, QF_ENOMEM, "key \"%s\": out of memory", key ? key : "");
    if (!qf_utf8_valid(s ? s : "", (size_t)len))
        return qf_err_set(err, QF_EINVAL, "key \"%s\": string value is not valid UTF-8",
                          key ? key : "");
    b = malloc((size_t)len + 8);
    if (!b)
        return qf_err_set(err, QF_ENOMEM, "key \"%s\": out of memory", key ? key : "");
    qf_put64(b, len);
    if (len)
        memcpy(b + 8, s, (size_t)len);
    rc = set_encoded(w, key, QF_GGUF_STRING, b, len + 8, err);
    free(b);
    return rc;
}

int qf_gguf_writer_set_str(qf_gguf_writer *w, const char *key, const char *s, qf_err *err)
{
    if (!s)
        return qf_err_set(err, QF_EINVAL, "key \"%s\": NULL string", key ? key : "");
    return qf_gguf_writer_set_strn(w, key, s, strlen(s), err);
}

int qf_gguf_writer_set_arr(qf_gguf_writer *w, const char *key, qf_gguf_vtype elt,
                           const void *vals, uint64_t n, qf_err *err)
{
    const uint8_t *src = vals;
    uint64_t s = qf_gguf_vtype_size((int)elt), i;
    uint8_t *b;
    int rc;

    if (s == 0)
        return qf_err_set(err, QF_EINVAL, "key \"%s\": set_arr needs a fixed-size element "
                          "type, not %s", key ? key : "", qf_gguf_vtype_name((int)elt));
    if (!vals && n)
        return qf_err_set(err, QF_EINVAL, "key \"%s\": NULL values", key ? key : "");
    if (n > (SIZE_MAX - 12) / s)
        return qf_err_set(err, QF_ENOMEM, "key \"%s\": array of %" PRIu64 " is too large",
                          key ? key : "", n);
    b = malloc((size_t)(12 + n * s));
    if (!b)
        return qf_err_set(err, QF_ENOMEM, "key \"%s\": out of memory", key ? key : "");
    qf_put32(b, (uint32_t)elt);
    qf_put64(b + 4, n);
    for (i = 0; i < n; i++) {
        const uint8_t *p = src + i * s;
        uint8_t *d = b + 12 + i * s;
        uint16_t v16;
        uint32_t v32;
        uint64_t v64;
        switch (s) { /* host representation to little-endian */
        case 1:
            if (elt == QF_GGUF_BOOL && p[0] > 1) {
                free(b);
                return qf_err_set(err, QF_EINVAL, "key \"%s\": element %" PRIu64
                                  ": BOOL value %u is not 0 or 1", key ? key : "", i, p[0]);
            }
            d[0] = p[0];
            break;
        case 2: memcpy(&v16, p, 2); qf_put16(d, v16); break;
        case 4: memcpy(&v32, p, 4); qf_put32(d, v32); break;
        default: memcpy(&v64, p, 8); qf_put64(d, v64); break;
        }
    }
    rc = set_encoded(w, key, QF_GGUF_ARRAY, b, 12 + n * s, err);
    free(b);
    return rc;
}

int qf_gguf_writer_set_arr_str(qf_gguf_writer *w, const char *key, const char *const *strs,
                               const uint64_t *lens, uint64_t n, qf_err *err)
{
    uint64_t total = 12, i, pos;
    uint8_t *b;
    int rc;

    if (!strs && n)
        return qf_err_set(err, QF_EINVAL, "key \"%s\": NULL strings", key ? key : "");
    for (i = 0; i < n; i++) {
        uint64_t l;
        if (!strs[i] && (!lens || lens[i]))
            return qf_err_set(err, QF_EINVAL, "key \"%s\": element %" PRIu64 " is NULL",
                              key ? key : "", i);
        l = lens ? lens[i] : strlen(strs[i]);
        if (l > SIZE_MAX - 8 - total)
            return qf_err_set(err, QF_ENOMEM, "key \"%s\": array is too large", key ? key : "");
        if (!qf_utf8_valid(strs[i] ? strs[i] : "", (size_t)l))
            return qf_err_set(err, QF_EINVAL, "key \"%s\": element %" PRIu64
                              " is not valid UTF-8", key ? key : "", i);
        total += 8 + l;
    }
    b = malloc((size_t)total);
    if (!b)
        return qf_err_set(err, QF_ENOMEM, "key \"%s\": out of memory", key ? key : "");
    qf_put32(b, QF_GGUF_STRING);
    qf_put64(b + 4, n);
    pos = 12;
    for (i = 0; i < n; i++) {
        uint64_t l = lens ? lens[i] : strlen(strs[i]);
        qf_put64(b + pos, l);
        if (l)
            memcpy(b + pos + 8, strs[i], (size_t)l);
        pos += 8 + l;
    }
    rc = set_encoded(w, key, QF_GGUF_ARRAY, b, total, err);
    free(b);
    return rc;
}

int qf_gguf_writer_copy_kv(qf_gguf_writer *w, const qf_gguf *g, int64_t i, qf_err *err)
{
    if (!g || i < 0 || i >= g->n_kv)
        return qf_err_set(err, QF_EINVAL, "copy_kv: no pair %" PRId64, i);
    return set_encoded(w, g->kv[i].key, g->kv[i].type, g->kv[i].val, g->kv[i].val_len, err);
}

int qf_gguf_writer_add_tensor(qf_gguf_writer *w, const char *name, int type, uint32_t n_dims,
                              const uint64_t *ne, qf_err *err)
{
    const qf_ggml_traits *tr = qf_ggml_type_traits(type);
    uint64_t nel = 1, rowb, rows, bound;
    size_t nlen;
    wtensor t;
    uint32_t d;
    int rc;

    if (!w || !name || !ne)
        return qf_err_set(err, QF_EINVAL, "add_tensor: NULL argument");
    if (w->begun)
        return qf_err_set(err, QF_EINVAL, "tensor \"%s\": tensors cannot be added after the "
                          "output has begun", name);
    nlen = strlen(name);
    if (nlen >= QF_GGUF_MAX_NAME)
        return qf_err_set(err, QF_EINVAL, "tensor \"%s\": name of %zu bytes is too long "
                          "(must be < %d)", name, nlen, QF_GGUF_MAX_NAME);
    if (!qf_utf8_valid(name, nlen))
        return qf_err_set(err, QF_EINVAL, "tensor %" PRId64 ": name is not valid UTF-8", w->n_t);
    if (index_find(&w->names, name, nlen) >= 0)
        return qf_err_set(err, QF_EINVAL, "duplicate tensor name \"%s\"", name);
    if (!tr)
        return qf_err_set(err, QF_EINVAL, "tensor \"%s\": unknown ggml type %d", name, type);
    if (n_dims < 1 || n_dims > QF_GGUF_MAX_DIMS)
        return qf_err_set(err, QF_EINVAL, "tensor \"%s\": n_dims %" PRIu32 " is not in 1..%d",
                          name, n_dims, QF_GGUF_MAX_DIMS);
    memset(&t, 0, sizeof t);
    for (d = 0; d < QF_GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] == 0 || t.ne[d] > (uint64_t)INT64_MAX / nel)
            return qf_err_set(err, QF_EINVAL, "tensor \"%s\": dims are zero or their product "
                              "overflows int64", name);
        nel *= t.ne[d];
    }
    rc = qf_ggml_row_size(type, t.ne[0], &rowb);
    if (rc == QF_EFORMAT)
        return qf_err_set(err, QF_EINVAL, "tensor \"%s\": row length %" PRIu64
                          " is not a multiple of the %s block size %" PRIu32, name, t.ne[0],
                          tr->name, tr->block_size);
    rows = nel / t.ne[0];
    if (rc != 0 || rowb > UINT64_MAX / rows)
        return qf_err_set(err, QF_EINVAL, "tensor \"%s\": size in bytes overflows", name);
    t.nbytes = rowb * rows;
    /* Any alignment adds < MAX_ALIGN per tensor: keep the worst case < 2^62
     * so that offsets and the file size can never overflow. */
    bound = (uint64_t)1 << 62;
    if (t.nbytes > bound - MAX_ALIGN || w->data_bound > bound - MAX_ALIGN - t.nbytes)
        return qf_err_set(err, QF_EINVAL, "tensor \"%s\": total tensor size is too large",
                          name);
    t.type = type;
    t.n_dims = n_dims;
    t.name = dup_bytes(name, nlen);
    if (!t.name || grow((void **)&w->t, &w->cap_t, w->n_t, sizeof *w->t, INT64_MAX) != 0) {
        free(t.name);
        return qf_err_set(err, QF_ENOMEM, "tensor \"%s\": out of memory", name);
    }
    w->t[w->n_t] = t;
    if (index_add(&w->names, w->t[w->n_t].name, w->n_t) != 0) {
        free(t.name);
        return qf_err_set(err, QF_ENOMEM, "tensor \"%s\": out of memory", name);
    }
    w->n_t++;
    w->data_bound += t.nbytes + MAX_ALIGN;
    return 0;
}

/* Assign offsets; returns the padded size of the data section. */
static uint64_t layout(qf_gguf_writer *w)
{
    uint64_t off = 0;
    int64_t i;

    for (i = 0; i < w->n_t; i++) {
        w->t[i].offset = off;
        off += pad_to(w->t[i].nbytes, w->alignment);
    }
    return off;
}

static uint64_t header_size(const qf_gguf_writer *w)
{
    uint64_t n = 24;
    int64_t i;

    for (i = 0; i < w->n_kv; i++)
        n += 8 + strlen(w->kv[i].key) + 4 + w->kv[i].len;
    for (i = 0; i < w->n_t; i++)
        n += 8 + strlen(w->t[i].name) + 4 + 8 * (uint64_t)w->t[i].n_dims + 4 + 8;
    return n;
}

uint64_t qf_gguf_writer_file_size(const qf_gguf_writer *w)
{
    uint64_t off = 0;
    int64_t i;

    if (!w)
        return 0;
    for (i = 0; i < w->n_t; i++)
        off += pad_to(w->t[i].nbytes, w->alignment);
    return pad_to(header_size(w), w->alignment) + off;
}

static int out_str(qf_out *o, const char *s, qf_err *err)
{
    uint8_t b[8];
    size_t n = strlen(s);

    qf_put64(b, n);
    if (qf_out_write(o, b, 8, err) != 0 || qf_out_write(o, s, n, err) != 0)
        return QF_EIO;
    return 0;
}

/* qf_out_write takes size_t: feed it in chunks. */
static int out_bytes(qf_out *o, const uint8_t *p, uint64_t n, qf_err *err)
{
    while (n > 0) {
        size_t k = n > (1u << 30) ? (size_t)1 << 30 : (size_t)n;
        if (qf_out_write(o, p, k, err) != 0)
            return QF_EIO;
        p += k;
        n -= k;
    }
    return 0;
}

int qf_gguf_writer_begin(qf_gguf_writer *w, const char *path, int flags, qf_err *err)
{
    qf_out *o = NULL;
    uint8_t b[24];
    uint64_t total = 0;
    int64_t i;
    int rc = 0;
    uint32_t d;

    if (!w || !path)
        return qf_err_set(err, QF_EINVAL, "gguf writer: NULL writer or path");
    if (w->begun)
        return qf_err_set(err, QF_EINVAL, "%s: output already begun", path);
    (void)layout(w);
    if (w->h_all) {
        free(w->digests);
        w->digests = calloc((size_t)(w->n_t ? w->n_t : 1), sizeof *w->digests);
        if (!w->digests)
            return qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
    }
    if ((rc = qf_out_open(path, flags, &o, err)) != 0)
        return rc;
    memcpy(b, QF_GGUF_MAGIC, 4);
    qf_put32(b + 4, QF_GGUF_VERSION);
    qf_put64(b + 8, (uint64_t)w->n_t);
    qf_put64(b + 16, (uint64_t)w->n_kv);
    if ((rc = qf_out_write(o, b, 24, err)) != 0)
        goto done;
    for (i = 0; i < w->n_kv; i++) {
        qf_put32(b, w->kv[i].type);
        if ((rc = out_str(o, w->kv[i].key, err)) != 0 ||
            (rc = qf_out_write(o, b, 4, err)) != 0 ||
            (rc = out_bytes(o, w->kv[i].val, w->kv[i].len, err)) != 0)
            goto done;
    }
    for (i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        if ((rc = out_str(o, t->name, err)) != 0)
            goto done;
        qf_put32(b, t->n_dims);
        if ((rc = qf_out_write(o, b, 4, err)) != 0)
            goto done;
        for (d = 0; d < t->n_dims; d++) {
            qf_put64(b, t->ne[d]);
            if ((rc = qf_out_write(o, b, 8, err)) != 0)
                goto done;
        }
        qf_put32(b, (uint32_t)t->type);
        qf_put64(b + 4, t->offset);
        if ((rc = qf_out_write(o, b, 12, err)) != 0)
            goto done;
        total += t->nbytes;
    }
    /* ggml pads the header to the alignment even when there are no tensors */
    rc = qf_out_zeros(o, pad_to(qf_out_tell(o), w->alignment) - qf_out_tell(o), err);
    if (rc != 0)
        goto done;
    w->out = o;
    o = NULL;
    w->begun = 1;
    w->cur = 0;
    w->cur_done = 0;
    w->data_left = total;
done:
    qf_out_close(o);
    return rc;
}

int qf_gguf_writer_write(qf_gguf_writer *w, const void *data, uint64_t n, qf_err *err)
{
    const uint8_t *p = data;

    if (!w || !w->out)
        return qf_err_set(err, QF_EINVAL, "gguf writer: write without an open output");
    if (!data && n)
        return qf_err_set(err, QF_EINVAL, "%s: NULL data", qf_out_path(w->out));
    if (n > w->data_left)
        return qf_err_set(err, QF_EINVAL, "%s: %" PRIu64 " bytes of tensor data given, only %"
                          PRIu64 " left to write", qf_out_path(w->out), n, w->data_left);
    while (n > 0) {
        wtensor *t = &w->t[w->cur];
        uint64_t k = t->nbytes - w->cur_done;
        if (k > n)
            k = n;
        if (out_bytes(w->out, p, k, err) != 0)
            return QF_EIO;
        if (w->h_all) {
            qf_sha256_update(w->h_one, p, (size_t)k);
            qf_sha256_update(w->h_all, p, (size_t)k);
        }
        p += k;
        n -= k;
        w->data_left -= k;
        w->cur_done += k;
        if (w->cur_done == t->nbytes) {
            if (qf_out_zeros(w->out, pad_to(t->nbytes, w->alignment) - t->nbytes, err) != 0)
                return QF_EIO;
            if (w->h_all) {
                qf_sha256_final(w->h_one, w->digests[w->cur]);
                qf_sha256_reset(w->h_one);
            }
            w->cur++;
            w->cur_done = 0;
        }
    }
    return 0;
}

int qf_gguf_writer_finish(qf_gguf_writer *w, qf_err *err)
{
    qf_out *o;

    if (!w || !w->out)
        return qf_err_set(err, QF_EINVAL, "gguf writer: finish without an open output");
    o = w->out;
    w->out = NULL;
    if (w->data_left > 0) {
        const wtensor *t = &w->t[w->cur];
        qf_err_set(err, QF_EINVAL, "%s: tensor \"%s\": only %" PRIu64 " of %" PRIu64
                   " bytes written (%" PRIu64 " bytes of tensor data missing in all)",
                   qf_out_path(o), t->name, w->cur_done, t->nbytes, w->data_left);
        qf_out_close(o);
        return QF_EINVAL;
    }
    if (w->h_all)
        qf_sha256_final(w->h_all, w->digest_all);
    return qf_out_commit(o, err);
}

int64_t qf_gguf_writer_kv_count(const qf_gguf_writer *w) { return w->n_kv; }

const char *qf_gguf_writer_kv_key(const qf_gguf_writer *w, int64_t i)
{
    return (i >= 0 && i < w->n_kv) ? w->kv[i].key : NULL;
}

int qf_gguf_writer_kv_value(const qf_gguf_writer *w, int64_t i, qf_gguf_val *v)
{
    if (i < 0 || i >= w->n_kv)
        return QF_EINVAL;
    fill_val(w->kv[i].val, w->kv[i].len, w->kv[i].type, v);
    return 0;
}

int64_t qf_gguf_writer_find_key(const qf_gguf_writer *w, const char *key)
{
    return writer_find(w, key);
}

int qf_gguf_writer_hash(qf_gguf_writer *w, qf_err *err)
{
    if (!w || w->begun)
        return qf_err_set(err, QF_EINVAL, "gguf writer: hashing must be enabled before begin");
    if (w->h_all)
        return 0;
    w->h_one = qf_sha256_new();
    w->h_all = qf_sha256_new();
    if (!w->h_one || !w->h_all)
        return qf_err_set(err, QF_ENOMEM, "gguf writer: out of memory");
    return 0;
}

int qf_gguf_writer_digests(const qf_gguf_writer *w, qf_digest_list *out)
{
    if (!w || !w->digests || w->data_left > 0 || w->out)
        return QF_EINVAL;
    out->n = w->n_t;
    out->digests = (const uint8_t(*)[QF_SHA256_LEN])w->digests;
    out->all = w->digest_all;
    out->names = NULL;
    return 0;
}

const char *qf_gguf_writer_tensor_name(const qf_gguf_writer *w, int64_t i)
{
    return (w && i >= 0 && i < w->n_t) ? w->t[i].name : NULL;
}

int64_t qf_gguf_writer_tensor_count(const qf_gguf_writer *w) { return w ? w->n_t : 0; }

int qf_gguf_writer_tensor_info(const qf_gguf_writer *w, int64_t i, qf_gguf_tensor *out)
{
    const wtensor *t;

    if (!w || i < 0 || i >= w->n_t)
        return QF_EINVAL;
    t = &w->t[i];
    memset(out, 0, sizeof *out);
    out->name = t->name;
    out->type = t->type;
    out->n_dims = t->n_dims;
    memcpy(out->ne, t->ne, sizeof out->ne);
    out->n_elements = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    out->offset = t->offset;
    out->nbytes = t->nbytes;
    return 0;
}
