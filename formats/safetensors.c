/*
 * formats/safetensors.c - safetensors reader (single file, sharded, folder)
 * and writer.
 *
 * Reading a header goes through four gates, each naming the file and, where
 * there is one, the tensor:
 *
 *   1. the 8-byte length N: N <= QF_ST_MAX_HEADER, 8 + N <= file size;
 *   2. the text: valid UTF-8, starts with '{', and a strict lexical scan
 *      (no control bytes outside JSON whitespace, none inside strings, no
 *      \u0000 escape, which cJSON would silently cut a string at);
 *   3. cJSON parses it; only JSON whitespace may follow the object;
 *   4. the entries: dtype, shape, data_offsets, then the data layout.
 *
 * cJSON keeps numbers as doubles only, which cannot hold every u64 and
 * cannot tell 3 from 3.0. The scan in gate 2 therefore records the raw text
 * of every number; after parsing, a walk over the tree (which cJSON keeps in
 * document order) stores each number's token index in its `valueint`, and
 * shapes and offsets are read from that text exactly.
 */
#include "formats/safetensors.h"
#include "formats/shard_index.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "formats/file.h"
#include "formats/folder.h"

#define INDEX_NAME "model.safetensors.index.json"
#define SHOW 40 /* at most this many bytes of a hostile token go into a message */

/* =====================================================================
 * Small helpers
 * ===================================================================== */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "[2, 3]" into buf (a shape of at most QF_ST_MAX_DIMS dims fits in 200). */
static const char *shape_str(char *buf, size_t cap, uint32_t n_dims, const uint64_t *shape)
{
    size_t used = 0;
    uint32_t i;

    used += (size_t)snprintf(buf, cap, "[");
    for (i = 0; i < n_dims && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%" PRIu64, i ? ", " : "", shape[i]);
    if (used < cap)
        snprintf(buf + used, cap - used, "]");
    return buf;
}

/*
 * Element count and byte size of a shape. Like the reference, overflow of
 * uint64 is an error; unlike a plain fold, the product is taken over the
 * non-zero dims, so a zero-size tensor cannot hide dims whose strides would
 * overflow. Returns 0 or QF_ELIMIT.
 */
static int shape_size(qf_dtype dt, uint32_t n_dims, const uint64_t *shape, uint64_t *n_elements,
                      uint64_t *nbytes)
{
    uint64_t prod = 1, esz = qf_dtype_size(dt);
    int zero = 0;
    uint32_t i;

    for (i = 0; i < n_dims; i++) {
        if (shape[i] == 0) {
            zero = 1;
            continue;
        }
        if (prod > UINT64_MAX / shape[i])
            return QF_ELIMIT;
        prod *= shape[i];
    }
    if (prod > UINT64_MAX / esz)
        return QF_ELIMIT;
    *n_elements = zero ? 0 : prod;
    *nbytes = *n_elements * esz;
    return 0;
}

/* =====================================================================
 * Strict JSON scan and exact numbers
 * ===================================================================== */

typedef struct numtok {
    size_t off, len;
} numtok;

typedef struct jtext {
    const char *text; /* the JSON text (NUL-terminated copy) */
    size_t len;
    numtok *toks;     /* every number token, in document order */
    size_t n_toks, cap_toks;
} jtext;

static void jtext_free(jtext *j)
{
    free(j->toks);
    j->toks = NULL;
    j->n_toks = j->cap_toks = 0;
}

static int is_num_char(char c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/*
 * Lexical checks cJSON does not make, and the number tokens. `what` names
 * the text in messages ("header", "index"). With want_numbers == 0 the
 * tokens are not kept.
 */
static int json_scan(jtext *j, int want_numbers, const char *path, const char *what, qf_err *err)
{
    const char *s = j->text;
    size_t n = j->len, i = 0;

    while (i < n) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"') {
            for (i++; i < n && s[i] != '"'; i++) {
                unsigned char d = (unsigned char)s[i];
                if (d < 0x20)
                    return qf_err_set(err, QF_EFORMAT,
                                      "%s: %s: control byte 0x%02x inside a string at byte %zu",
                                      path, what, d, i);
                if (d == '\\') {
                    if (i + 5 < n && s[i + 1] == 'u' && memcmp(s + i + 2, "0000", 4) == 0)
                        return qf_err_set(err, QF_EFORMAT,
                                          "%s: %s: string holds \\u0000 at byte %zu", path, what, i);
                    i++; /* skip the escaped character */
                }
            }
            i++; /* the closing quote */
            continue;
        }
        if (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return qf_err_set(err, QF_EFORMAT, "%s: %s: control byte 0x%02x at byte %zu", path,
                              what, c, i);
        if (c == '-' || (c >= '0' && c <= '9')) {
            size_t b = i;
            while (i < n && is_num_char(s[i]))
                i++;
            if (want_numbers) {
                if (j->n_toks == j->cap_toks) {
                    size_t cap = j->cap_toks ? j->cap_toks * 2 : 64;
                    numtok *t = realloc(j->toks, cap * sizeof *t);
                    if (!t)
                        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
                    j->toks = t;
                    j->cap_toks = cap;
                }
                j->toks[j->n_toks].off = b;
                j->toks[j->n_toks].len = i - b;
                j->n_toks++;
            }
            continue;
        }
        i++;
    }
    return 0;
}

/* Store in each number item's valueint its token index, in document order. */
static void number_walk(cJSON *it, size_t *k)
{
    for (; it; it = it->next) {
        if (cJSON_IsNumber(it)) {
            it->valueint = *k < (size_t)INT_MAX ? (int)*k : -1;
            (*k)++;
        }
        if (it->child)
            number_walk(it->child, k);
    }
}

/*
 * Parse a JSON object from j->text (NUL-terminated, j->len bytes). Only JSON
 * whitespace may follow it. Returns the tree (owned by the caller:
 * cJSON_Delete) or NULL with the error set.
 */
static cJSON *json_parse_object(jtext *j, int want_numbers, const char *path, const char *what,
                                int *rc, qf_err *err)
{
    const char *end = NULL;
    cJSON *root;
    size_t i, k = 0;

    *rc = json_scan(j, want_numbers, path, what, err);
    if (*rc != 0)
        return NULL;
    root = cJSON_ParseWithLengthOpts(j->text, j->len, &end, 0);
    if (!root) {
        size_t at = end && end >= j->text && end <= j->text + j->len ? (size_t)(end - j->text) : 0;
        *rc = qf_err_set(err, QF_EFORMAT, "%s: %s is not valid JSON (error near byte %zu)", path,
                         what, at);
        return NULL;
    }
    i = end && end >= j->text && end <= j->text + j->len ? (size_t)(end - j->text) : j->len;
    for (; i < j->len; i++) {
        char c = j->text[i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            *rc = qf_err_set(err, QF_EFORMAT, "%s: %s has bytes after the JSON object (at byte %zu)",
                             path, what, i);
            cJSON_Delete(root);
            return NULL;
        }
    }
    if (!cJSON_IsObject(root)) {
        *rc = qf_err_set(err, QF_EFORMAT, "%s: %s is not a JSON object", path, what);
        cJSON_Delete(root);
        return NULL;
    }
    if (want_numbers) {
        number_walk(root, &k);
        if (k != j->n_toks) { /* the scan and cJSON disagree: refuse rather than guess */
            *rc = qf_err_set(err, QF_EFORMAT, "%s: %s: malformed JSON numbers", path, what);
            cJSON_Delete(root);
            return NULL;
        }
    }
    return root;
}

enum { NUM_OK = 0, NUM_NOT_NUMBER, NUM_NEGATIVE, NUM_NOT_INTEGER, NUM_TOO_LARGE };

/* Read `v` as an exact u64 from its raw text. */
static int json_u64(const jtext *j, const cJSON *v, uint64_t *out, const char **tok, int *tok_len)
{
    const char *s;
    size_t n, i;
    uint64_t x = 0;

    *tok = "";
    *tok_len = 0;
    if (!cJSON_IsNumber(v) || v->valueint < 0 || (size_t)v->valueint >= j->n_toks)
        return NUM_NOT_NUMBER;
    s = j->text + j->toks[v->valueint].off;
    n = j->toks[v->valueint].len;
    *tok = s;
    *tok_len = n > SHOW ? SHOW + 1 : (int)n; /* SHOW + 1: cut, see num_error */
    if (n > 0 && s[0] == '-')
        return NUM_NEGATIVE;
    if (n == 0 || (s[0] == '0' && n > 1))
        return NUM_NOT_INTEGER; /* leading zeros are not JSON */
    for (i = 0; i < n; i++) {
        unsigned d;
        if (s[i] < '0' || s[i] > '9')
            return NUM_NOT_INTEGER;
        d = (unsigned)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return NUM_TOO_LARGE;
        x = x * 10 + d;
    }
    *out = x;
    return NUM_OK;
}

/* Message for a failed json_u64 on `what` (e.g. "shape[1]") of tensor `name`. */
static int num_error(qf_err *err, int why, const char *path, const char *name, const char *what,
                     const char *tok, int tok_len)
{
    const char *more = tok_len > SHOW ? "..." : "";

    if (tok_len > SHOW)
        tok_len = SHOW;
    switch (why) {
    case NUM_NEGATIVE:
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": %s is negative (%.*s%s)", path, name,
                          what, tok_len, tok, more);
    case NUM_NOT_INTEGER:
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": %s is not an integer (%.*s%s)", path,
                          name, what, tok_len, tok, more);
    case NUM_TOO_LARGE:
        return qf_err_set(err, QF_ELIMIT, "%s: tensor \"%s\": %s is too large (%.*s%s)", path,
                          name, what, tok_len, tok, more);
    default:
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": %s is not a number", path, name,
                          what);
    }
}

/* =====================================================================
 * Reader
 * ===================================================================== */

typedef struct st_file {
    char *path;
    qf_map *map;         /* NULL over a caller's buffer */
    const uint8_t *base; /* the whole file */
    uint64_t size;
    uint64_t header_len; /* N */
    char **meta_keys, **meta_vals;
    int64_t n_meta;
} st_file;

struct qf_st {
    st_file *files;
    uint32_t n_files;
    qf_st_tensor *tensors;
    int64_t n_tensors, cap_tensors;
    const qf_st_tensor **by_name; /* all tensors sorted by name, for qf_st_find */
    char *index_path;
};

/* A tensor while its header is checked. */
typedef struct ent {
    qf_st_tensor t; /* t.name owned until moved into the reader */
    uint64_t begin, end;
} ent;

static int cmp_ent_name(const void *a, const void *b)
{
    return strcmp(((const ent *)a)->t.name, ((const ent *)b)->t.name);
}

static int cmp_ent_offset(const void *a, const void *b)
{
    const ent *x = *(const ent *const *)a, *y = *(const ent *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return strcmp(x->t.name, y->t.name);
}

static int cmp_tensor_ptr_name(const void *a, const void *b)
{
    return strcmp((*(const qf_st_tensor *const *)a)->name, (*(const qf_st_tensor *const *)b)->name);
}

static void file_free(st_file *f)
{
    int64_t i;

    for (i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    qf_map_close(f->map);
    free(f->path);
}

void qf_st_close(qf_st *st)
{
    int64_t i;
    uint32_t f;

    if (!st)
        return;
    for (i = 0; i < st->n_tensors; i++)
        free((char *)st->tensors[i].name);
    free(st->tensors);
    for (f = 0; f < st->n_files; f++)
        file_free(&st->files[f]);
    free(st->files);
    free(st->by_name);
    free(st->index_path);
    free(st);
}

/* Add a file slot (path copied); returns its index or a negative code. */
static int add_file(qf_st *st, const char *path, qf_err *err)
{
    st_file *f = realloc(st->files, (st->n_files + 1) * sizeof *f);

    if (!f)
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
    st->files = f;
    f = &st->files[st->n_files];
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    if (!f->path)
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
    return (int)st->n_files++;
}

static int parse_meta(st_file *f, const cJSON *m, qf_err *err)
{
    const cJSON *c;
    int64_t n = 0, i;
    char **sorted = NULL;
    int rc = 0;

    if (cJSON_IsNull(m)) /* the reference reads it as an Option: null is none */
        return 0;
    if (!cJSON_IsObject(m))
        return qf_err_set(err, QF_EFORMAT, "%s: __metadata__ is not an object", f->path);
    for (c = m->child; c; c = c->next)
        n++;
    if (n == 0)
        return 0;
    f->meta_keys = calloc((size_t)n, sizeof *f->meta_keys);
    f->meta_vals = calloc((size_t)n, sizeof *f->meta_vals);
    sorted = calloc((size_t)n, sizeof *sorted);
    if (!f->meta_keys || !f->meta_vals || !sorted) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", f->path);
        goto done;
    }
    for (c = m->child; c; c = c->next) {
        if (!cJSON_IsString(c) || !c->valuestring) {
            rc = qf_err_set(err, QF_EFORMAT, "%s: __metadata__ \"%s\": value is not a string",
                            f->path, c->string);
            goto done;
        }
        i = f->n_meta;
        f->meta_keys[i] = strdup(c->string);
        f->meta_vals[i] = strdup(c->valuestring);
        f->n_meta++; /* counted now so that file_free frees a half-made pair */
        if (!f->meta_keys[i] || !f->meta_vals[i]) {
            rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", f->path);
            goto done;
        }
        sorted[i] = f->meta_keys[i];
    }
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_str_ptr);
    for (i = 1; i < n; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0) {
            rc = qf_err_set(err, QF_EFORMAT, "%s: __metadata__: duplicate key \"%s\"", f->path,
                            sorted[i]);
            goto done;
        }
done:
    free(sorted);
    return rc;
}

/* One tensor entry: dtype, shape, data_offsets, nothing else. */
static int parse_entry(const st_file *f, const jtext *j, const cJSON *v, ent *e, qf_err *err)
{
    const char *path = f->path, *name = e->t.name;
    const cJSON *dtype = NULL, *shape = NULL, *offs = NULL, *c;
    const char *tok;
    int tok_len, why, i, n;
    char what[32], sbuf[256];
    uint64_t off[2];

    if (!cJSON_IsObject(v))
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": entry is not an object", path, name);
    for (c = v->child; c; c = c->next) {
        const cJSON **slot;
        if (strcmp(c->string, "dtype") == 0)
            slot = &dtype;
        else if (strcmp(c->string, "shape") == 0)
            slot = &shape;
        else if (strcmp(c->string, "data_offsets") == 0)
            slot = &offs;
        else
            return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": unknown key \"%.*s\"", path,
                              name, SHOW, c->string);
        if (*slot)
            return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": duplicate key \"%s\"", path,
                              name, c->string);
        *slot = c;
    }
    if (!dtype || !shape || !offs)
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": no \"%s\"", path, name,
                          !dtype ? "dtype" : !shape ? "shape" : "data_offsets");

    /* dtype */
    if (!cJSON_IsString(dtype) || !dtype->valuestring)
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": dtype is not a string", path, name);
    e->t.dtype = qf_dtype_from_name(dtype->valuestring, strlen(dtype->valuestring));
    if (e->t.dtype == QF_DTYPE_INVALID)
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": unknown dtype \"%.*s\"", path, name,
                          SHOW, dtype->valuestring);

    /* shape */
    if (!cJSON_IsArray(shape))
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": shape is not an array", path, name);
    n = cJSON_GetArraySize(shape);
    if (n > QF_ST_MAX_DIMS)
        return qf_err_set(err, QF_ELIMIT, "%s: tensor \"%s\": shape has %d dims (max %d)", path,
                          name, n, QF_ST_MAX_DIMS);
    for (i = 0, c = shape->child; c; c = c->next, i++) {
        snprintf(what, sizeof what, "shape[%d]", i);
        why = json_u64(j, c, &e->t.shape[i], &tok, &tok_len);
        if (why != NUM_OK)
            return num_error(err, why, path, name, what, tok, tok_len);
    }
    e->t.n_dims = (uint32_t)n;
    if (shape_size(e->t.dtype, e->t.n_dims, e->t.shape, &e->t.n_elements, &e->t.nbytes) != 0)
        return qf_err_set(err, QF_ELIMIT, "%s: tensor \"%s\": %s %s is too large (over 2^64 bytes)",
                          path, name, qf_dtype_name(e->t.dtype),
                          shape_str(sbuf, sizeof sbuf, e->t.n_dims, e->t.shape));

    /* data_offsets */
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": data_offsets is not [begin, end]",
                          path, name);
    for (i = 0, c = offs->child; c && i < 2; c = c->next, i++) {
        snprintf(what, sizeof what, "data_offsets[%d]", i);
        why = json_u64(j, c, &off[i], &tok, &tok_len);
        if (why != NUM_OK)
            return num_error(err, why, path, name, what, tok, tok_len);
    }
    e->begin = off[0];
    e->end = off[1];
    if (e->begin > e->end)
        return qf_err_set(err, QF_EFORMAT,
                          "%s: tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64 "): begin > end",
                          path, name, e->begin, e->end);
    if (e->end - e->begin != e->t.nbytes)
        return qf_err_set(err, QF_EFORMAT,
                          "%s: tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64 ") hold %" PRIu64
                          " bytes, but %s %s needs %" PRIu64,
                          path, name, e->begin, e->end, e->end - e->begin,
                          qf_dtype_name(e->t.dtype),
                          shape_str(sbuf, sizeof sbuf, e->t.n_dims, e->t.shape), e->t.nbytes);
    return 0;
}

/* Tensors sorted by offset must tile [0, data_size) exactly. */
static int check_layout(const st_file *f, ent *ents, size_t n, uint64_t data_size, qf_err *err)
{
    ent **by_off = NULL;
    const ent *prev = NULL;
    uint64_t at = 0;
    size_t i;
    int rc = 0;

    if (n > 0) {
        by_off = malloc(n * sizeof *by_off);
        if (!by_off)
            return qf_err_set(err, QF_ENOMEM, "%s: out of memory", f->path);
    }
    for (i = 0; i < n; i++)
        by_off[i] = &ents[i];
    if (n > 1)
        qsort(by_off, n, sizeof *by_off, cmp_ent_offset);
    for (i = 0; i < n; i++) {
        const ent *e = by_off[i];
        if (e->begin < at) {
            rc = qf_err_set(err, QF_EFORMAT,
                            "%s: tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64
                            ") overlap \"%s\"",
                            f->path, e->t.name, e->begin, e->end, prev->t.name);
            goto done;
        }
        if (e->begin > at) {
            if (prev)
                rc = qf_err_set(err, QF_EFORMAT,
                                "%s: tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64
                                ") leave a gap of %" PRIu64 " bytes after \"%s\"",
                                f->path, e->t.name, e->begin, e->end, e->begin - at, prev->t.name);
            else
                rc = qf_err_set(err, QF_EFORMAT,
                                "%s: tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64
                                ") leave a gap of %" PRIu64 " bytes at the start of the data",
                                f->path, e->t.name, e->begin, e->end, e->begin);
            goto done;
        }
        at = e->end;
        prev = e;
    }
    if (at > data_size) {
        rc = qf_err_set(err, QF_ETRUNC,
                        "%s: tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64
                        ") end past the data (%" PRIu64 " bytes): file truncated",
                        f->path, prev->t.name, prev->begin, prev->end, data_size);
        goto done;
    }
    if (at < data_size) {
        rc = qf_err_set(err, QF_EFORMAT,
                        "%s: %" PRIu64 " bytes after the last tensor's data (tensors end at %" PRIu64
                        ", the data section is %" PRIu64 " bytes)",
                        f->path, data_size - at, at, data_size);
        goto done;
    }
done:
    free(by_off);
    return rc;
}

/* Reserve room for `more` tensors. */
static int reserve_tensors(qf_st *st, int64_t more, const char *path, qf_err *err)
{
    int64_t need = st->n_tensors + more, cap = st->cap_tensors ? st->cap_tensors : 64;
    qf_st_tensor *t;

    if (need <= st->cap_tensors)
        return 0;
    while (cap < need)
        cap *= 2;
    t = realloc(st->tensors, (size_t)cap * sizeof *t);
    if (!t)
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
    st->tensors = t;
    st->cap_tensors = cap;
    return 0;
}

/* Check the header of file `fi` (already mapped) and append its tensors,
 * sorted by name, to st->tensors. */
static int parse_file(qf_st *st, uint32_t fi, qf_err *err)
{
    st_file *f = &st->files[fi];
    const char *path = f->path;
    const uint8_t *h;
    uint64_t n, data_size, data_at;
    jtext j = { 0 };
    char *text = NULL;
    cJSON *root = NULL;
    const cJSON *c;
    ent *ents = NULL;
    size_t n_ents = 0, cap = 0, i;
    int seen_meta = 0, rc = 0;

    if (f->size < 8)
        return qf_err_set(err, QF_ETRUNC,
                          "%s: file is %" PRIu64 " bytes, too short for the 8-byte header length",
                          path, f->size);
    n = qf_le64(f->base);
    if (n > QF_ST_MAX_HEADER)
        return qf_err_set(err, QF_ELIMIT,
                          "%s: header length %" PRIu64 " exceeds the limit of %u bytes (file size %" PRIu64 ")",
                          path, n, QF_ST_MAX_HEADER, f->size);
    if (n > f->size - 8)
        return qf_err_set(err, QF_ETRUNC, "%s: header length %" PRIu64 " exceeds file size %" PRIu64,
                          path, n, f->size);
    f->header_len = n;
    data_at = 8 + n;
    data_size = f->size - data_at;
    h = f->base + 8;
    if (!qf_utf8_valid((const char *)h, (size_t)n))
        return qf_err_set(err, QF_EFORMAT, "%s: header is not valid UTF-8", path);
    if (n == 0 || h[0] != '{') {
        if (n > 0 && h[0] >= 0x20 && h[0] < 0x7f)
            return qf_err_set(err, QF_EFORMAT, "%s: header is not a JSON object (starts with '%c')",
                              path, h[0]);
        return qf_err_set(err, QF_EFORMAT, "%s: header is not a JSON object", path);
    }

    /* cJSON reads a NUL-terminated copy: no read can leave it. */
    text = malloc((size_t)n + 1);
    if (!text) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory (header of %" PRIu64 " bytes)", path, n);
        goto done;
    }
    memcpy(text, h, (size_t)n);
    text[n] = '\0';
    j.text = text;
    j.len = (size_t)n;
    root = json_parse_object(&j, 1, path, "header", &rc, err);
    if (!root)
        goto done;

    for (c = root->child; c; c = c->next)
        cap++;
    if (cap > 0) {
        ents = calloc(cap, sizeof *ents);
        if (!ents) {
            rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
            goto done;
        }
    }
    for (c = root->child; c; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0) {
            if (seen_meta) {
                rc = qf_err_set(err, QF_EFORMAT, "%s: duplicate \"__metadata__\"", path);
                goto done;
            }
            seen_meta = 1;
            if ((rc = parse_meta(f, c, err)) != 0)
                goto done;
            continue;
        }
        ents[n_ents].t.name = strdup(c->string);
        if (!ents[n_ents].t.name) {
            rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        n_ents++;
        if ((rc = parse_entry(f, &j, c, &ents[n_ents - 1], err)) != 0)
            goto done;
    }
    if (n_ents > 1)
        qsort(ents, n_ents, sizeof *ents, cmp_ent_name);
    for (i = 1; i < n_ents; i++)
        if (strcmp(ents[i - 1].t.name, ents[i].t.name) == 0) {
            rc = qf_err_set(err, QF_EFORMAT, "%s: duplicate tensor \"%s\"", path, ents[i].t.name);
            goto done;
        }
    if ((rc = check_layout(f, ents, n_ents, data_size, err)) != 0)
        goto done;

    if ((rc = reserve_tensors(st, (int64_t)n_ents, path, err)) != 0)
        goto done;
    for (i = 0; i < n_ents; i++) {
        qf_st_tensor *t = &st->tensors[st->n_tensors++];
        *t = ents[i].t;
        ents[i].t.name = NULL; /* moved */
        t->file = fi;
        t->offset = data_at + ents[i].begin;
        t->data = f->base + t->offset;
    }
done:
    for (i = 0; i < n_ents; i++)
        free((char *)ents[i].t.name);
    free(ents);
    cJSON_Delete(root);
    jtext_free(&j);
    free(text);
    return rc;
}

/* The name index; duplicate names across shards are an error. */
static int build_by_name(qf_st *st, qf_err *err)
{
    int64_t i, n = st->n_tensors;

    if (n == 0)
        return 0;
    st->by_name = malloc((size_t)n * sizeof *st->by_name);
    if (!st->by_name)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    for (i = 0; i < n; i++)
        st->by_name[i] = &st->tensors[i];
    qsort(st->by_name, (size_t)n, sizeof *st->by_name, cmp_tensor_ptr_name);
    for (i = 1; i < n; i++) {
        const qf_st_tensor *a = st->by_name[i - 1], *b = st->by_name[i];
        if (strcmp(a->name, b->name) == 0)
            return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\" is also in %s",
                              st->files[b->file].path, b->name, st->files[a->file].path);
    }
    return 0;
}

/* Map `path` into a new file slot. */
static int map_file(qf_st *st, const char *path, uint32_t *fi, qf_err *err)
{
    int k = add_file(st, path, err);
    st_file *f;

    if (k < 0)
        return k;
    f = &st->files[k];
    if ((k = qf_map_open(path, &f->map, err)) != 0)
        return k;
    f->base = qf_map_data(f->map);
    f->size = qf_map_size(f->map);
    *fi = st->n_files - 1;
    return 0;
}

static int open_single(const char *path, qf_st **out, qf_err *err)
{
    qf_st *st = calloc(1, sizeof *st);
    uint32_t fi;
    int rc;

    if (!st)
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
    if ((rc = map_file(st, path, &fi, err)) != 0)
        goto done;
    if ((rc = parse_file(st, fi, err)) != 0)
        goto done;
    rc = build_by_name(st, err);
done:
    if (rc != 0) {
        qf_st_close(st);
        st = NULL;
    }
    *out = st;
    return rc;
}

int qf_st_open_buffer(const void *buf, uint64_t size, const char *name, qf_st **out, qf_err *err)
{
    qf_st *st = NULL;
    int rc;

    if (!name)
        name = "<buffer>";
    if (!out)
        return qf_err_set(err, QF_EINVAL, "%s: no output handle", name);
    *out = NULL;
    if (!buf && size > 0)
        return qf_err_set(err, QF_EINVAL, "%s: NULL buffer", name);
    st = calloc(1, sizeof *st);
    if (!st)
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", name);
    if ((rc = add_file(st, name, err)) < 0)
        goto done;
    st->files[0].base = buf;
    st->files[0].size = size;
    if ((rc = parse_file(st, 0, err)) != 0)
        goto done;
    rc = build_by_name(st, err);
done:
    if (rc != 0) {
        qf_st_close(st);
        st = NULL;
    }
    *out = st;
    return rc;
}

/* ---- sharded models -------------------------------------------------- */

static int open_index(const char *index_path, qf_st **out, qf_err *err)
{
    qf_st *st = NULL;
    qf_map *im = NULL;
    char *text = NULL;
    jtext j = { 0 };
    cJSON *root = NULL;
    qf_shard_index *ix = NULL;
    size_t i;
    uint64_t size;
    int rc = 0;

    *out = NULL;
    st = calloc(1, sizeof *st);
    if (!st || !(st->index_path = strdup(index_path))) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", index_path);
        goto done;
    }
    if ((rc = qf_map_open(index_path, &im, err)) != 0)
        goto done;
    size = qf_map_size(im);
    if (size > QF_ST_MAX_HEADER) {
        rc = qf_err_set(err, QF_ELIMIT, "%s: %" PRIu64 " bytes, over the %u-byte limit for an index",
                        index_path, size, QF_ST_MAX_HEADER);
        goto done;
    }
    if (!qf_utf8_valid((const char *)qf_map_data(im), (size_t)size)) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: not valid UTF-8", index_path);
        goto done;
    }
    text = malloc((size_t)size + 1);
    if (!text) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", index_path);
        goto done;
    }
    if (size > 0)
        memcpy(text, qf_map_data(im), (size_t)size);
    text[size] = '\0';
    j.text = text;
    j.len = (size_t)size;
    root = json_parse_object(&j, 0, index_path, "index", &rc, err);
    if (!root)
        goto done;
    if ((rc = qf_shard_index_build(index_path, root, &ix, err)) != 0)
        goto done;
    for (i = 0; i < qf_shard_index_count(ix); i++) {
        uint32_t fi;
        int64_t k, first = st->n_tensors;

        if ((rc = map_file(st, qf_shard_index_path(ix, i), &fi, err)) != 0 ||
            (rc = parse_file(st, fi, err)) != 0)
            goto done;
        for (k = first; k < st->n_tensors; k++)
            if ((rc = qf_shard_index_claim(ix, st->tensors[k].name, i, err)) != 0)
                goto done;
    }
    if ((rc = qf_shard_index_check_all(ix, err)) != 0)
        goto done;
    rc = build_by_name(st, err);
done:
    if (rc != 0) {
        qf_st_close(st);
        st = NULL;
    }
    *out = st;
    qf_shard_index_free(ix);
    cJSON_Delete(root);
    jtext_free(&j);
    free(text);
    qf_map_close(im);
    return rc;
}

/* ---- folders --------------------------------------------------------- */

static int open_folder(const char *dir, qf_st **out, qf_err *err)
{
    static const char *const idx_suffix = ".safetensors.index.json", *const st_suffix = ".safetensors";
    char **idx = NULL, **st_files = NULL, *path = NULL;
    size_t n_idx = 0, n_st = 0;
    char list[QF_ERR_MSG_MAX];
    int rc;

    *out = NULL;
    path = qf_path_join(dir, INDEX_NAME);
    if (!path)
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", dir);
    if (qf_path_is_regular(path)) {
        rc = open_index(path, out, err);
        goto done;
    }
    free(path);
    path = NULL;
    /* Another library's index (diffusers: diffusion_pytorch_model...), if alone. */
    if ((rc = qf_folder_list(dir, &idx_suffix, 1, NULL, &idx, &n_idx, err)) != 0)
        goto done;
    if (n_idx > 1) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: %zu index files and no " INDEX_NAME ": %s", dir,
                        n_idx, qf_folder_names_join(list, sizeof list, idx, n_idx));
        goto done;
    }
    if (n_idx == 1) {
        if (!(path = qf_path_join(dir, idx[0]))) {
            rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", dir);
            goto done;
        }
        rc = open_index(path, out, err);
        goto done;
    }
    if ((rc = qf_folder_list(dir, &st_suffix, 1, NULL, &st_files, &n_st, err)) != 0)
        goto done;
    if (n_st == 0) {
        rc = qf_err_set(err, QF_ENOTFOUND, "%s: no .safetensors file", dir);
        goto done;
    }
    if (n_st > 1) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: %zu .safetensors files and no " INDEX_NAME ": %s",
                        dir, n_st, qf_folder_names_join(list, sizeof list, st_files, n_st));
        goto done;
    }
    if (!(path = qf_path_join(dir, st_files[0]))) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", dir);
        goto done;
    }
    rc = open_single(path, out, err);
done:
    free(path);
    qf_folder_names_free(idx, n_idx);
    qf_folder_names_free(st_files, n_st);
    return rc;
}

int qf_st_open(const char *path, qf_st **out, qf_err *err)
{
    struct stat sb;

    if (!out)
        return qf_err_set(err, QF_EINVAL, "qf_st_open: no output handle");
    *out = NULL;
    if (!path || !*path)
        return qf_err_set(err, QF_EINVAL, "empty path");
    if (stat(path, &sb) != 0)
        return qf_err_set(err, errno == ENOENT ? QF_ENOTFOUND : QF_EIO, "%s: %s", path,
                          strerror(errno));
    if (S_ISDIR(sb.st_mode))
        return open_folder(path, out, err);
    if (ends_with(path, ".json"))
        return open_index(path, out, err);
    return open_single(path, out, err);
}

/* ---- accessors ------------------------------------------------------- */

int64_t qf_st_tensor_count(const qf_st *st) { return st ? st->n_tensors : 0; }

const qf_st_tensor *qf_st_tensor_at(const qf_st *st, int64_t i)
{
    return st && i >= 0 && i < st->n_tensors ? &st->tensors[i] : NULL;
}

int64_t qf_st_find(const qf_st *st, const char *name)
{
    qf_st_tensor key;
    const qf_st_tensor *kp = &key, **hit;

    if (!st || !name || st->n_tensors == 0)
        return -1;
    key.name = name;
    hit = bsearch(&kp, st->by_name, (size_t)st->n_tensors, sizeof *st->by_name,
                  cmp_tensor_ptr_name);
    return hit ? (int64_t)(*hit - st->tensors) : -1;
}

uint32_t qf_st_file_count(const qf_st *st) { return st ? st->n_files : 0; }

const char *qf_st_file_path(const qf_st *st, uint32_t file)
{
    return st && file < st->n_files ? st->files[file].path : NULL;
}

uint64_t qf_st_file_size(const qf_st *st, uint32_t file)
{
    return st && file < st->n_files ? st->files[file].size : 0;
}

uint64_t qf_st_header_size(const qf_st *st, uint32_t file)
{
    return st && file < st->n_files ? st->files[file].header_len : 0;
}

const char *qf_st_index_path(const qf_st *st) { return st ? st->index_path : NULL; }

int64_t qf_st_meta_count(const qf_st *st, uint32_t file)
{
    return st && file < st->n_files ? st->files[file].n_meta : 0;
}

int qf_st_meta_at(const qf_st *st, uint32_t file, int64_t i, const char **key, const char **value)
{
    const st_file *f;

    if (key)
        *key = NULL;
    if (value)
        *value = NULL;
    if (!st || file >= st->n_files)
        return QF_EINVAL;
    f = &st->files[file];
    if (i < 0 || i >= f->n_meta)
        return QF_EINVAL;
    if (key)
        *key = f->meta_keys[i];
    if (value)
        *value = f->meta_vals[i];
    return 0;
}

const char *qf_st_meta_get(const qf_st *st, const char *key)
{
    uint32_t f;
    int64_t i;

    if (!st || !key)
        return NULL;
    for (f = 0; f < st->n_files; f++)
        for (i = 0; i < st->files[f].n_meta; i++)
            if (strcmp(st->files[f].meta_keys[i], key) == 0)
                return st->files[f].meta_vals[i];
    return NULL;
}

void qf_st_release_tensor(const qf_st *st, int64_t i)
{
    qf_st_release_range(st, i, 0, UINT64_MAX);
}

void qf_st_release_range(const qf_st *st, int64_t i, uint64_t off, uint64_t len)
{
    const qf_st_tensor *t = qf_st_tensor_at(st, i);

    if (!t || !st->files[t->file].map || off >= t->nbytes)
        return;
    if (len > t->nbytes - off)
        len = t->nbytes - off;
    qf_map_release(st->files[t->file].map, t->offset + off, len);
}

/* =====================================================================
 * Writer
 * ===================================================================== */

typedef struct wtensor {
    char *name;
    qf_dtype dtype;
    uint32_t n_dims;
    uint64_t shape[QF_ST_MAX_DIMS];
    uint64_t begin, end; /* data_offsets */
} wtensor;

enum { W_DECLARE = 0, W_WRITING, W_DONE };

struct qf_st_writer {
    char **meta_keys, **meta_vals;
    size_t n_meta, cap_meta;
    wtensor *t;
    size_t n_t, cap_t;
    uint32_t *set;     /* open-addressing name set: tensor index + 1, 0 = empty */
    size_t set_cap;    /* power of two */
    uint64_t total;    /* declared data bytes */
    uint64_t written;
    qf_out *out;
    int state;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* Slot of `name` in the set: the matching slot, or the empty one to use. */
static size_t set_slot(const qf_st_writer *w, const char *name)
{
    size_t mask = w->set_cap - 1, i = (size_t)hash_str(name) & mask;

    while (w->set[i] && strcmp(w->t[w->set[i] - 1].name, name) != 0)
        i = (i + 1) & mask;
    return i;
}

static int set_grow(qf_st_writer *w)
{
    size_t cap = w->set_cap ? w->set_cap * 2 : 64, i;
    uint32_t *old = w->set;

    w->set = calloc(cap, sizeof *w->set);
    if (!w->set) {
        w->set = old;
        return QF_ENOMEM;
    }
    w->set_cap = cap;
    for (i = 0; i < w->n_t; i++)
        w->set[set_slot(w, w->t[i].name)] = (uint32_t)(i + 1);
    free(old);
    return 0;
}

int qf_st_writer_new(qf_st_writer **out, qf_err *err)
{
    if (!out)
        return qf_err_set(err, QF_EINVAL, "qf_st_writer_new: no output handle");
    *out = calloc(1, sizeof **out);
    if (!*out)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    return 0;
}

void qf_st_writer_free(qf_st_writer *w)
{
    size_t i;

    if (!w)
        return;
    qf_out_close(w->out);
    for (i = 0; i < w->n_meta; i++) {
        free(w->meta_keys[i]);
        free(w->meta_vals[i]);
    }
    free(w->meta_keys);
    free(w->meta_vals);
    for (i = 0; i < w->n_t; i++)
        free(w->t[i].name);
    free(w->t);
    free(w->set);
    free(w);
}

int qf_st_writer_set_meta(qf_st_writer *w, const char *key, const char *value, qf_err *err)
{
    size_t i;
    char *v;

    if (!w || !key || !value)
        return qf_err_set(err, QF_EINVAL, "safetensors writer: NULL metadata key or value");
    if (w->state != W_DECLARE)
        return qf_err_set(err, QF_EINVAL, "safetensors writer: metadata set after begin");
    if (!qf_utf8_valid(key, strlen(key)) || !qf_utf8_valid(value, strlen(value)))
        return qf_err_set(err, QF_EINVAL, "safetensors writer: metadata \"%.*s\" is not valid UTF-8",
                          SHOW, key);
    if (!(v = strdup(value)))
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    for (i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta_keys[i], key) == 0) {
            free(w->meta_vals[i]);
            w->meta_vals[i] = v;
            return 0;
        }
    if (w->n_meta == w->cap_meta) {
        size_t cap = w->cap_meta ? w->cap_meta * 2 : 8;
        char **k2 = realloc(w->meta_keys, cap * sizeof *k2), **v2;
        if (k2)
            w->meta_keys = k2;
        v2 = k2 ? realloc(w->meta_vals, cap * sizeof *v2) : NULL;
        if (!v2) {
            free(v);
            return qf_err_set(err, QF_ENOMEM, "out of memory");
        }
        w->meta_vals = v2;
        w->cap_meta = cap;
    }
    if (!(w->meta_keys[w->n_meta] = strdup(key))) {
        free(v);
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    }
    w->meta_vals[w->n_meta++] = v;
    return 0;
}

int qf_st_writer_add_tensor(qf_st_writer *w, const char *name, qf_dtype dtype, uint32_t n_dims,
                            const uint64_t *shape, qf_err *err)
{
    uint64_t n_el, nbytes;
    wtensor *t;
    size_t slot;
    char sbuf[256];

    if (!w || !name || (n_dims > 0 && !shape))
        return qf_err_set(err, QF_EINVAL, "safetensors writer: NULL argument");
    if (w->state != W_DECLARE)
        return qf_err_set(err, QF_EINVAL, "safetensors writer: tensor \"%s\" added after begin",
                          name);
    if (!*name || strcmp(name, "__metadata__") == 0 || !qf_utf8_valid(name, strlen(name)))
        return qf_err_set(err, QF_EINVAL, "safetensors writer: bad tensor name \"%.*s\"", SHOW,
                          name);
    if (qf_dtype_size(dtype) == 0)
        return qf_err_set(err, QF_EINVAL, "safetensors writer: tensor \"%s\": invalid dtype %d",
                          name, (int)dtype);
    if (n_dims > QF_ST_MAX_DIMS)
        return qf_err_set(err, QF_EINVAL, "safetensors writer: tensor \"%s\": %u dims (max %d)",
                          name, n_dims, QF_ST_MAX_DIMS);
    if (shape_size(dtype, n_dims, shape, &n_el, &nbytes) != 0 || nbytes > UINT64_MAX - w->total)
        return qf_err_set(err, QF_ELIMIT, "safetensors writer: tensor \"%s\": %s %s is too large",
                          name, qf_dtype_name(dtype), shape_str(sbuf, sizeof sbuf, n_dims, shape));
    if (w->n_t >= UINT32_MAX - 1)
        return qf_err_set(err, QF_ELIMIT, "safetensors writer: too many tensors");
    if ((w->n_t + 1) * 2 > w->set_cap && set_grow(w) != 0)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    slot = set_slot(w, name);
    if (w->set[slot])
        return qf_err_set(err, QF_EINVAL, "safetensors writer: duplicate tensor \"%s\"", name);
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? w->cap_t * 2 : 64;
        wtensor *nt = realloc(w->t, cap * sizeof *nt);
        if (!nt)
            return qf_err_set(err, QF_ENOMEM, "out of memory");
        w->t = nt;
        w->cap_t = cap;
    }
    t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name)))
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    t->dtype = dtype;
    t->n_dims = n_dims;
    if (n_dims > 0)
        memcpy(t->shape, shape, n_dims * sizeof *shape);
    t->begin = w->total;
    t->end = w->total + nbytes;
    w->total = t->end;
    w->set[slot] = (uint32_t)(w->n_t + 1);
    w->n_t++;
    return 0;
}

/* ---- header JSON ----------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_u64(sbuf *b, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    sb_add(b, tmp, (size_t)n);
}

/* A JSON string: quotes, \" \\ and control characters escaped, UTF-8 kept. */
static void sb_json_str(sbuf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const char *run = s;

    sb_add(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[7];
        size_t n = 2;

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        sb_add(b, run, (size_t)(s - run));
        esc[0] = '\\';
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        sb_add(b, esc, n);
        run = s + 1;
    }
    sb_add(b, run, (size_t)(s - run));
    sb_add(b, "\"", 1);
}

static void build_header(const qf_st_writer *w, sbuf *b)
{
    size_t i;
    uint32_t d;

    sb_add(b, "{", 1);
    if (w->n_meta > 0) {
        sb_str(b, "\"__metadata__\":{");
        for (i = 0; i < w->n_meta; i++) {
            if (i)
                sb_add(b, ",", 1);
            sb_json_str(b, w->meta_keys[i]);
            sb_add(b, ":", 1);
            sb_json_str(b, w->meta_vals[i]);
        }
        sb_add(b, "}", 1);
    }
    for (i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        if (i || w->n_meta > 0)
            sb_add(b, ",", 1);
        sb_json_str(b, t->name);
        sb_str(b, ":{\"dtype\":");
        sb_json_str(b, qf_dtype_name(t->dtype));
        sb_str(b, ",\"shape\":[");
        for (d = 0; d < t->n_dims; d++) {
            if (d)
                sb_add(b, ",", 1);
            sb_u64(b, t->shape[d]);
        }
        sb_str(b, "],\"data_offsets\":[");
        sb_u64(b, t->begin);
        sb_add(b, ",", 1);
        sb_u64(b, t->end);
        sb_str(b, "]}");
    }
    sb_add(b, "}", 1);
    while (b->len % 8 != 0) /* 8 + N is then a multiple of 8: data stays aligned */
        sb_add(b, " ", 1);
}

int qf_st_writer_begin(qf_st_writer *w, const char *path, int flags, qf_err *err)
{
    sbuf b = { 0 };
    uint8_t len[8];
    int rc = 0;

    if (!w || !path)
        return qf_err_set(err, QF_EINVAL, "safetensors writer: NULL argument");
    if (w->state != W_DECLARE)
        return qf_err_set(err, QF_EINVAL, "%s: safetensors writer already begun", path);
    build_header(w, &b);
    if (b.oom) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    if (b.len > QF_ST_MAX_HEADER) {
        rc = qf_err_set(err, QF_ELIMIT, "%s: header of %zu bytes exceeds the limit of %u", path,
                        b.len, QF_ST_MAX_HEADER);
        goto done;
    }
    if ((rc = qf_out_open(path, flags, &w->out, err)) != 0)
        goto done;
    qf_put64(len, (uint64_t)b.len);
    if ((rc = qf_out_write(w->out, len, 8, err)) != 0 ||
        (rc = qf_out_write(w->out, b.p, b.len, err)) != 0) {
        qf_out_close(w->out);
        w->out = NULL;
        goto done;
    }
    w->state = W_WRITING;
done:
    free(b.p);
    return rc;
}

int qf_st_writer_write(qf_st_writer *w, const void *data, uint64_t n, qf_err *err)
{
    const uint8_t *p = data;
    int rc;

    if (!w || (!data && n > 0))
        return qf_err_set(err, QF_EINVAL, "safetensors writer: NULL argument");
    if (w->state != W_WRITING)
        return qf_err_set(err, QF_EINVAL, "safetensors writer: write outside begin/finish");
    if (n > w->total - w->written)
        return qf_err_set(err, QF_EINVAL,
                          "%s: %" PRIu64 " data bytes written past the %" PRIu64 " declared",
                          qf_out_path(w->out), n - (w->total - w->written), w->total);
    while (n > 0) {
        size_t k = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : (size_t)n;
        if ((rc = qf_out_write(w->out, p, k, err)) != 0) {
            /* part of the chunk may be out: the file can no longer be right */
            qf_out_close(w->out);
            w->out = NULL;
            w->state = W_DONE;
            return rc;
        }
        p += k;
        n -= k;
        w->written += k;
    }
    return 0;
}

int qf_st_writer_finish(qf_st_writer *w, qf_err *err)
{
    qf_out *o;
    int rc;

    if (!w)
        return qf_err_set(err, QF_EINVAL, "safetensors writer: NULL argument");
    if (w->state != W_WRITING)
        return qf_err_set(err, QF_EINVAL, "safetensors writer: finish without begin");
    o = w->out;
    w->out = NULL;
    w->state = W_DONE;
    if (w->written != w->total) {
        const char *name = "?";
        size_t i;
        for (i = 0; i < w->n_t; i++)
            if (w->t[i].end > w->written) {
                name = w->t[i].name;
                break;
            }
        rc = qf_err_set(err, QF_EINVAL,
                        "%s: only %" PRIu64 " of %" PRIu64 " data bytes written (tensor \"%s\" "
                        "incomplete); output abandoned",
                        qf_out_path(o), w->written, w->total, name);
        qf_out_close(o);
        return rc;
    }
    return qf_out_commit(o, err);
}
