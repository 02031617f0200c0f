/*
 * formats/qfm.c - QFM reader, writer and provenance rewrite (format in
 * formats/qfm.h and docs/qfm.md).
 */
#include "formats/qfm.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "formats/file.h"
#include "formats/parallel.h"
#include "formats/types.h"

#define MAX_EXACT ((double)9007199254740992.0) /* 2^53: JSON integers above are inexact */
#define BOUND_NUM 9007199254740991.0           /* widest number the header holds */
enum { BOUND_NONE = 0, BOUND_RAW, BOUND_ANY };
#define MAX_DEPTH 8                            /* nested GGUF arrays, as the GGUF reader */

static uint64_t align64(uint64_t v) { return (v + (QF_QFM_ALIGN - 1)) & ~(uint64_t)(QF_QFM_ALIGN - 1); }

const char *qf_qfm_codec_name(int codec)
{
    return codec == QF_QFM_RAW ? "raw" : codec == QF_QFM_ZSTD ? "zstd" : "?";
}

int qf_qfm_sniff(const void *buf, size_t n)
{
    return n >= 4 && memcmp(buf, QF_QFM_MAGIC, 4) == 0;
}

/* =====================================================================
 * Growing byte buffer
 * ===================================================================== */

typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static int put(bytes *b, const void *d, size_t n)
{
    if (b->cap - b->n < n) {
        size_t cap = b->cap ? b->cap : 64;
        uint8_t *p;
        while (cap - b->n < n)
            cap *= 2;
        if (!(p = realloc(b->p, cap)))
            return QF_ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
    return 0;
}

static int put_u32(bytes *b, uint32_t v)
{
    uint8_t t[4];
    qf_put32(t, v);
    return put(b, t, 4);
}

static int put_u64(bytes *b, uint64_t v)
{
    uint8_t t[8];
    qf_put64(t, v);
    return put(b, t, 8);
}

/* =====================================================================
 * GGUF values <-> JSON
 * ===================================================================== */

static int vtype_from_name(const char *s)
{
    int t;
    for (t = 0; t < QF_GGUF_VTYPE_COUNT; t++)
        if (strcmp(qf_gguf_vtype_name(t), s) == 0)
            return t;
    return -1;
}

/* Shortest decimal that strtof/strtod reads back to the same bits. */
static void fmt_f32(uint32_t bits, char *buf, size_t cap)
{
    float f;
    int p;
    memcpy(&f, &bits, 4);
    if (isnan(f)) {
        if (bits == 0x7fc00000u)
            snprintf(buf, cap, "nan");
        else
            snprintf(buf, cap, "nan:0x%08" PRIx32, bits);
        return;
    }
    if (isinf(f)) {
        snprintf(buf, cap, f < 0 ? "-inf" : "inf");
        return;
    }
    for (p = 1; p <= 9; p++) {
        float back;
        snprintf(buf, cap, "%.*g", p, (double)f);
        back = strtof(buf, NULL);
        if (memcmp(&back, &f, 4) == 0)
            return;
    }
}

static void fmt_f64(uint64_t bits, char *buf, size_t cap)
{
    double f;
    int p;
    memcpy(&f, &bits, 8);
    if (isnan(f)) {
        if (bits == 0x7ff8000000000000ull)
            snprintf(buf, cap, "nan");
        else
            snprintf(buf, cap, "nan:0x%016" PRIx64, bits);
        return;
    }
    if (isinf(f)) {
        snprintf(buf, cap, f < 0 ? "-inf" : "inf");
        return;
    }
    for (p = 1; p <= 17; p++) {
        double back;
        snprintf(buf, cap, "%.*g", p, f);
        back = strtod(buf, NULL);
        if (memcmp(&back, &f, 8) == 0)
            return;
    }
}

static int parse_hex_u64(const char *s, uint64_t *v)
{
    uint64_t x = 0;
    int n = 0;
    for (; *s; s++, n++) {
        int d = (*s >= '0' && *s <= '9') ? *s - '0' : (*s >= 'a' && *s <= 'f') ? *s - 'a' + 10
              : (*s >= 'A' && *s <= 'F') ? *s - 'A' + 10 : -1;
        if (d < 0 || n >= 16)
            return -1;
        x = x << 4 | (uint64_t)d;
    }
    if (n == 0)
        return -1;
    *v = x;
    return 0;
}

/* Parse a float string of the header; bits of a float (is64 = 0) or double. */
static int parse_float(const char *s, int is64, uint64_t *bits)
{
    const char *p = s;
    char *end;
    if (strcmp(s, "nan") == 0) {
        *bits = is64 ? 0x7ff8000000000000ull : 0x7fc00000u;
        return 0;
    }
    if (strncmp(s, "nan:0x", 6) == 0) {
        uint64_t v;
        uint64_t expo = is64 ? 0x7ff0000000000000ull : 0x7f800000u;
        uint64_t mant = is64 ? 0x000fffffffffffffull : 0x007fffffu;
        if (parse_hex_u64(s + 6, &v) != 0 || (!is64 && v > 0xffffffffu) || (v & expo) != expo ||
            (v & mant) == 0)
            return -1;
        *bits = v;
        return 0;
    }
    if (strcmp(s, "inf") == 0 || strcmp(s, "-inf") == 0) {
        int neg = s[0] == '-';
        *bits = is64 ? (0x7ff0000000000000ull | (neg ? 1ull << 63 : 0))
                     : (0x7f800000u | (neg ? 1u << 31 : 0));
        return 0;
    }
    if (*p == '-')
        p++;
    if (!((*p >= '0' && *p <= '9') || *p == '.'))
        return -1; /* no spaces, signs, words or hex forms */
    errno = 0;
    if (is64) {
        double d = strtod(s, &end);
        if (*end || end == s || isinf(d) || isnan(d))
            return -1;
        memcpy(bits, &d, 8);
    } else {
        float f = strtof(s, &end);
        uint32_t b;
        if (*end || end == s || isinf(f) || isnan(f))
            return -1;
        memcpy(&b, &f, 4);
        *bits = b;
    }
    return 0;
}

static int parse_dec64(const char *s, int is_signed, uint64_t *out)
{
    int neg = 0;
    uint64_t v = 0, lim;
    if (is_signed && *s == '-') {
        neg = 1;
        s++;
    }
    if (!*s)
        return -1;
    lim = is_signed ? (neg ? (1ull << 63) : (1ull << 63) - 1) : UINT64_MAX;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        if (v > (lim - (uint64_t)(*s - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = neg ? (uint64_t)0 - v : v;
    return 0;
}

static const char hexd[] = "0123456789abcdef";

static cJSON *encode_array(qf_cur *c, int depth, int *et_out);

/* One value of type t at the cursor (a validated encoding) as JSON. */
static cJSON *encode_value(qf_cur *c, int t, int depth)
{
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    char buf[64];

    switch (t) {
    case QF_GGUF_UINT8: return qf_cur_u8(c, &u8) ? NULL : cJSON_CreateNumber(u8);
    case QF_GGUF_INT8: return qf_cur_u8(c, &u8) ? NULL : cJSON_CreateNumber((int8_t)u8);
    case QF_GGUF_UINT16: return qf_cur_u16(c, &u16) ? NULL : cJSON_CreateNumber(u16);
    case QF_GGUF_INT16: return qf_cur_u16(c, &u16) ? NULL : cJSON_CreateNumber((int16_t)u16);
    case QF_GGUF_UINT32: return qf_cur_u32(c, &u32) ? NULL : cJSON_CreateNumber(u32);
    case QF_GGUF_INT32: return qf_cur_u32(c, &u32) ? NULL : cJSON_CreateNumber((int32_t)u32);
    case QF_GGUF_BOOL: return qf_cur_u8(c, &u8) ? NULL : cJSON_CreateBool(u8 != 0);
    case QF_GGUF_UINT64:
        if (qf_cur_u64(c, &u64))
            return NULL;
        snprintf(buf, sizeof buf, "%" PRIu64, u64);
        return cJSON_CreateString(buf);
    case QF_GGUF_INT64:
        if (qf_cur_u64(c, &u64))
            return NULL;
        snprintf(buf, sizeof buf, "%" PRId64, (int64_t)u64);
        return cJSON_CreateString(buf);
    case QF_GGUF_FLOAT32:
        if (qf_cur_u32(c, &u32))
            return NULL;
        fmt_f32(u32, buf, sizeof buf);
        return cJSON_CreateString(buf);
    case QF_GGUF_FLOAT64:
        if (qf_cur_u64(c, &u64))
            return NULL;
        fmt_f64(u64, buf, sizeof buf);
        return cJSON_CreateString(buf);
    case QF_GGUF_STRING: {
        const uint8_t *p;
        cJSON *j;
        if (qf_cur_u64(c, &u64) || qf_cur_bytes(c, u64, &p))
            return NULL;
        if (!memchr(p, 0, (size_t)u64) && qf_utf8_valid((const char *)p, (size_t)u64)) {
            char *s = malloc((size_t)u64 + 1);
            if (!s)
                return NULL;
            memcpy(s, p, (size_t)u64);
            s[u64] = '\0';
            j = cJSON_CreateString(s);
            free(s);
        } else {
            char *s = malloc((size_t)u64 * 2 + 1);
            uint64_t k;
            if (!s)
                return NULL;
            for (k = 0; k < u64; k++) {
                s[2 * k] = hexd[p[k] >> 4];
                s[2 * k + 1] = hexd[p[k] & 15];
            }
            s[2 * u64] = '\0';
            j = cJSON_CreateObject();
            if (j && !cJSON_AddStringToObject(j, "hex", s)) {
                cJSON_Delete(j);
                j = NULL;
            }
            free(s);
        }
        return j;
    }
    case QF_GGUF_ARRAY: {
        int et;
        cJSON *arr = encode_array(c, depth + 1, &et), *o;
        if (!arr)
            return NULL;
        o = cJSON_CreateObject();
        if (!o || !cJSON_AddStringToObject(o, "element_type", qf_gguf_vtype_name(et))) {
            cJSON_Delete(o);
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddItemToObject(o, "value", arr);
        return o;
    }
    default:
        return NULL;
    }
}

static cJSON *encode_array(qf_cur *c, int depth, int *et_out)
{
    uint32_t et;
    uint64_t n, k;
    cJSON *arr;

    if (depth > MAX_DEPTH || qf_cur_u32(c, &et) || qf_cur_u64(c, &n))
        return NULL;
    *et_out = (int)et;
    if (!(arr = cJSON_CreateArray()))
        return NULL;
    for (k = 0; k < n; k++) {
        cJSON *e = encode_value(c, (int)et, depth);
        if (!e) {
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddItemToArray(arr, e);
    }
    return arr;
}

/* Decoding: JSON -> the GGUF encoding, checked; messages name the key. */
typedef struct dec {
    const char *name; /* file name for messages */
    const char *key;
    qf_err *err;
} dec;

static int dec_fail(const dec *d, const char *what)
{
    return qf_err_set(d->err, QF_EFORMAT, "%s: metadata \"%s\": %s", d->name, d->key, what);
}

static int decode_array(const dec *d, const cJSON *et_j, const cJSON *arr, bytes *b, int depth);

static int decode_value(const dec *d, int t, const cJSON *v, bytes *b, int depth)
{
    static const double lo[] = { 0, -128, 0, -32768, 0, -2147483648.0 };
    static const double hi[] = { 255, 127, 65535, 32767, 4294967295.0, 2147483647.0 };
    static const int sz[] = { 1, 1, 2, 2, 4, 4 };
    uint64_t u;
    uint8_t tmp[8];

    switch (t) {
    case QF_GGUF_UINT8: case QF_GGUF_INT8: case QF_GGUF_UINT16:
    case QF_GGUF_INT16: case QF_GGUF_UINT32: case QF_GGUF_INT32: {
        double x;
        int64_t i;
        if (!cJSON_IsNumber(v))
            return dec_fail(d, "expected a JSON integer");
        x = v->valuedouble;
        if (!(x >= lo[t] && x <= hi[t]) || x != floor(x))
            return dec_fail(d, "integer out of range for its type");
        i = (int64_t)x;
        qf_put64(tmp, (uint64_t)i);
        return put(b, tmp, (size_t)sz[t]) ? QF_ENOMEM : 0;
    }
    case QF_GGUF_BOOL:
        if (!cJSON_IsBool(v))
            return dec_fail(d, "expected true or false");
        tmp[0] = cJSON_IsTrue(v) ? 1 : 0;
        return put(b, tmp, 1) ? QF_ENOMEM : 0;
    case QF_GGUF_UINT64: case QF_GGUF_INT64:
        if (!cJSON_IsString(v) || parse_dec64(v->valuestring, t == QF_GGUF_INT64, &u) != 0)
            return dec_fail(d, "expected a decimal string for a 64-bit integer");
        return put_u64(b, u) ? QF_ENOMEM : 0;
    case QF_GGUF_FLOAT32: case QF_GGUF_FLOAT64:
        if (!cJSON_IsString(v) || parse_float(v->valuestring, t == QF_GGUF_FLOAT64, &u) != 0)
            return dec_fail(d, "expected a float as a decimal string (\"1.5\", \"inf\", \"nan\")");
        if (t == QF_GGUF_FLOAT32)
            return put_u32(b, (uint32_t)u) ? QF_ENOMEM : 0;
        return put_u64(b, u) ? QF_ENOMEM : 0;
    case QF_GGUF_STRING:
        if (cJSON_IsString(v)) {
            size_t n = strlen(v->valuestring);
            if (!qf_utf8_valid(v->valuestring, n))
                return dec_fail(d, "string is not valid UTF-8");
            return (put_u64(b, n) || put(b, v->valuestring, n)) ? QF_ENOMEM : 0;
        }
        if (cJSON_IsObject(v)) {
            const cJSON *h = cJSON_GetObjectItemCaseSensitive(v, "hex");
            size_t n, k;
            if (!cJSON_IsString(h) || (n = strlen(h->valuestring)) % 2 != 0)
                return dec_fail(d, "expected a string or {\"hex\": \"...\"}");
            if (put_u64(b, n / 2))
                return QF_ENOMEM;
            for (k = 0; k < n; k += 2) {
                char pair[3] = { h->valuestring[k], h->valuestring[k + 1], 0 };
                uint64_t x;
                if (parse_hex_u64(pair, &x) != 0)
                    return dec_fail(d, "bad hex string");
                tmp[0] = (uint8_t)x;
                if (put(b, tmp, 1))
                    return QF_ENOMEM;
            }
            return 0;
        }
        return dec_fail(d, "expected a string");
    case QF_GGUF_ARRAY:
        if (!cJSON_IsObject(v))
            return dec_fail(d, "expected {\"element_type\": ..., \"value\": [...]} for a nested array");
        return decode_array(d, cJSON_GetObjectItemCaseSensitive(v, "element_type"),
                            cJSON_GetObjectItemCaseSensitive(v, "value"), b, depth + 1);
    default:
        return dec_fail(d, "bad type");
    }
}

static int decode_array(const dec *d, const cJSON *et_j, const cJSON *arr, bytes *b, int depth)
{
    const cJSON *e;
    int et, rc;

    if (depth > MAX_DEPTH)
        return qf_err_set(d->err, QF_ELIMIT, "%s: metadata \"%s\": arrays nested deeper than %d",
                          d->name, d->key, MAX_DEPTH);
    if (!cJSON_IsString(et_j) || (et = vtype_from_name(et_j->valuestring)) < 0)
        return dec_fail(d, "missing or unknown element_type");
    if (!cJSON_IsArray(arr))
        return dec_fail(d, "expected an array value");
    if (put_u32(b, (uint32_t)et) || put_u64(b, (uint64_t)cJSON_GetArraySize(arr)))
        return QF_ENOMEM;
    cJSON_ArrayForEach(e, arr) {
        if ((rc = decode_value(d, et, e, b, depth)) != 0)
            return rc;
    }
    return 0;
}

/* =====================================================================
 * Header rendering (writer and rewrite)
 * ===================================================================== */

static uint32_t meta_alignment(const qf_gguf_writer *m)
{
    int64_t i = qf_gguf_writer_find_key(m, "general.alignment");
    qf_gguf_val v;
    if (i >= 0 && qf_gguf_writer_kv_value(m, i, &v) == 0 && v.type == QF_GGUF_UINT32)
        return (uint32_t)v.u;
    return QF_GGUF_DEFAULT_ALIGNMENT;
}

static int add_num(cJSON *o, const char *k, double v) { return cJSON_AddNumberToObject(o, k, v) ? 0 : -1; }

static int add_hex(cJSON *o, const char *k, const uint8_t *d, int bound)
{
    char hex[QF_SHA256_HEX];
    if (bound)
        memset(hex, '0', 64), hex[64] = '\0';
    else
        qf_sha256_hex(d, hex);
    return cJSON_AddStringToObject(o, k, hex) ? 0 : -1;
}

/*
 * The header text for these tensors. With `bound` (BOUND_RAW: every tensor
 * will be raw; BOUND_ANY: any codec), every number that is filled in later
 * is written at its widest, so the text is at least as long as any final
 * header: the writer reserves that much before the data.
 */
static char *render_header(const qf_gguf_writer *meta, const qf_qfm_tensor *t, int64_t nt,
                           uint64_t data_size, const cJSON *prov, int bound)
{
    cJSON *root = cJSON_CreateObject(), *g, *md, *ta;
    char *text = NULL;
    int64_t i, n = qf_gguf_writer_kv_count(meta);

    if (!root)
        return NULL;
    if (!(g = cJSON_AddObjectToObject(root, "gguf")) || add_num(g, "version", QF_GGUF_VERSION) ||
        add_num(g, "alignment", meta_alignment(meta)) ||
        !(md = cJSON_AddArrayToObject(root, "metadata")))
        goto done;
    for (i = 0; i < n; i++) {
        qf_gguf_val v;
        cJSON *e = cJSON_CreateObject(), *val;
        qf_cur c;
        if (!e)
            goto done;
        cJSON_AddItemToArray(md, e);
        qf_gguf_writer_kv_value(meta, i, &v);
        if (!cJSON_AddStringToObject(e, "key", qf_gguf_writer_kv_key(meta, i)) ||
            !cJSON_AddStringToObject(e, "type", qf_gguf_vtype_name((int)v.type)))
            goto done;
        c = qf_cur_make(v.raw, v.raw_len);
        if (v.type == QF_GGUF_ARRAY) {
            int et;
            if (!(val = encode_array(&c, 1, &et)))
                goto done;
            if (!cJSON_AddStringToObject(e, "element_type", qf_gguf_vtype_name(et))) {
                cJSON_Delete(val);
                goto done;
            }
        } else if (!(val = encode_value(&c, (int)v.type, 0))) {
            goto done;
        }
        cJSON_AddItemToObject(e, "value", val);
    }
    if (!(ta = cJSON_AddArrayToObject(root, "tensors")))
        goto done;
    for (i = 0; i < nt; i++) {
        const qf_qfm_tensor *x = &t[i];
        cJSON *e = cJSON_CreateObject(), *sh, *fr;
        uint32_t d;
        int zstd = bound == BOUND_ANY || (!bound && x->codec == QF_QFM_ZSTD);
        int64_t f;
        if (!e)
            goto done;
        cJSON_AddItemToArray(ta, e);
        if (!cJSON_AddStringToObject(e, "name", x->name) ||
            !cJSON_AddStringToObject(e, "type", x->type_name) ||
            !(sh = cJSON_AddArrayToObject(e, "shape")))
            goto done;
        for (d = 0; d < x->n_dims; d++) {
            cJSON *num = cJSON_CreateNumber((double)x->ne[d]);
            if (!num)
                goto done;
            cJSON_AddItemToArray(sh, num);
        }
        if (add_num(e, "offset", bound ? BOUND_NUM : (double)x->offset) ||
            add_num(e, "size", (double)x->nbytes) ||
            !cJSON_AddStringToObject(e, "codec", zstd ? "zstd" : "raw"))
            goto done;
        if (zstd) {
            if ((bound || x->shuffle) && add_num(e, "shuffle", bound ? 8 : x->shuffle))
                goto done;
            if (add_num(e, "frame_size", (double)x->frame_size) ||
                !(fr = cJSON_AddArrayToObject(e, "frames")))
                goto done;
            for (f = 0; f < x->n_frames; f++) {
                cJSON *num = cJSON_CreateNumber(bound ? BOUND_NUM : (double)x->frames[f]);
                if (!num)
                    goto done;
                cJSON_AddItemToArray(fr, num);
            }
        }
        if (add_num(e, "stored_size", bound ? BOUND_NUM : (double)x->stored_size) ||
            add_hex(e, "sha256", x->sha256, bound) || add_hex(e, "stored_sha256", x->stored_sha256, bound))
            goto done;
    }
    if (add_num(root, "data_size", bound ? BOUND_NUM : (double)data_size))
        goto done;
    if (prov) {
        cJSON *p = cJSON_Duplicate(prov, 1);
        if (!p)
            goto done;
        cJSON_AddItemToObject(root, "provenance", p);
    }
    text = cJSON_Print(root);
done:
    cJSON_Delete(root);
    return text;
}

static int compute_root(const char *header, uint64_t h, const qf_qfm_tensor *t, int64_t nt,
                        const uint8_t (*digests)[QF_SHA256_LEN], uint8_t out[QF_SHA256_LEN])
{
    qf_sha256 *s = qf_sha256_new();
    int64_t i;
    if (!s)
        return QF_ENOMEM;
    qf_sha256_update(s, header, (size_t)h);
    for (i = 0; i < nt; i++)
        qf_sha256_update(s, digests ? digests[i] : t[i].sha256, QF_SHA256_LEN);
    qf_sha256_final(s, out);
    qf_sha256_free(s);
    return 0;
}

/* Bytes [16, 16 + H) of a file: the header padded with spaces to H. */
static char *pad_header(const char *text, uint64_t h)
{
    size_t n = strlen(text);
    char *p = malloc((size_t)h + 1);
    if (!p)
        return NULL;
    memcpy(p, text, n);
    memset(p + n, ' ', (size_t)(h - n));
    p[h] = '\0';
    return p;
}

/* =====================================================================
 * Reader
 * ===================================================================== */

struct qf_qfm {
    char *path;
    qf_map *map;
    const uint8_t *base;
    uint64_t size;
    uint64_t header_len, data_offset, data_size;
    uint32_t gguf_version, alignment;
    qf_gguf_writer *meta;
    qf_qfm_tensor *t;
    int64_t nt;
    char **strs;          /* owned names and type names, 2 per tensor */
    uint64_t *frames;     /* every tensor's frame sizes */
    char *provenance;
    cJSON *prov_json;
    uint8_t root[QF_SHA256_LEN];
};

void qf_qfm_close(qf_qfm *q)
{
    int64_t i;
    if (!q)
        return;
    if (q->strs)
        for (i = 0; i < 2 * q->nt; i++)
            free(q->strs[i]);
    free(q->strs);
    free(q->t);
    free(q->frames);
    free(q->provenance);
    cJSON_Delete(q->prov_json);
    qf_gguf_writer_free(q->meta);
    qf_map_close(q->map);
    free(q->path);
    free(q);
}

const char *qf_qfm_path(const qf_qfm *q) { return q->path; }
uint64_t qf_qfm_file_size(const qf_qfm *q) { return q->size; }
uint64_t qf_qfm_header_len(const qf_qfm *q) { return q->header_len; }
uint64_t qf_qfm_data_offset(const qf_qfm *q) { return q->data_offset; }
uint64_t qf_qfm_data_size(const qf_qfm *q) { return q->data_size; }
uint32_t qf_qfm_gguf_version(const qf_qfm *q) { return q->gguf_version; }
uint32_t qf_qfm_gguf_alignment(const qf_qfm *q) { return q->alignment; }
const uint8_t *qf_qfm_root(const qf_qfm *q) { return q->root; }
const char *qf_qfm_header(const qf_qfm *q) { return (const char *)q->base + 16; }
const qf_gguf_writer *qf_qfm_metadata(const qf_qfm *q) { return q->meta; }
const char *qf_qfm_provenance(const qf_qfm *q) { return q->provenance; }
int64_t qf_qfm_tensor_count(const qf_qfm *q) { return q->nt; }

const qf_qfm_tensor *qf_qfm_tensor_at(const qf_qfm *q, int64_t i)
{
    return (i >= 0 && i < q->nt) ? &q->t[i] : NULL;
}

int64_t qf_qfm_find_tensor(const qf_qfm *q, const char *name)
{
    int64_t i;
    for (i = 0; i < q->nt; i++)
        if (strcmp(q->t[i].name, name) == 0)
            return i;
    return -1;
}

void qf_qfm_release(const qf_qfm *q, int64_t i)
{
    if (q->map && i >= 0 && i < q->nt)
        qf_map_release(q->map, q->data_offset + q->t[i].offset, q->t[i].stored_size);
}

/* A non-negative JSON integer that doubles hold exactly. */
static int get_uint(const cJSON *o, const char *k, uint64_t *v)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(j) || !(j->valuedouble >= 0 && j->valuedouble < MAX_EXACT) ||
        j->valuedouble != floor(j->valuedouble))
        return -1;
    *v = (uint64_t)j->valuedouble;
    return 0;
}

static const char *get_str(const cJSON *o, const char *k)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(j) ? j->valuestring : NULL;
}

/* JSON whose strings hold a \u0000 escape would lose bytes in cJSON's C
 * strings: refuse them. Backslashes only occur inside strings. */
static int has_nul_escape(const char *s, uint64_t n)
{
    uint64_t i;
    for (i = 0; i < n; i++) {
        if (s[i] != '\\')
            continue;
        if (i + 1 < n && s[i + 1] == 'u' && i + 5 < n && s[i + 2] == '0' && s[i + 3] == '0' &&
            s[i + 4] == '0' && s[i + 5] == '0')
            return 1;
        i++; /* skip the escaped character */
    }
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    const qf_qfm_tensor *x = *(const qf_qfm_tensor *const *)a, *y = *(const qf_qfm_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static int parse_metadata(qf_qfm *q, const cJSON *md, qf_err *err)
{
    const char *nm = q->path;
    const cJSON *e;
    bytes b = { 0 };
    int rc = 0;

    if ((rc = qf_gguf_writer_new(&q->meta, err)) != 0)
        return rc;
    if (!cJSON_IsArray(md))
        return qf_err_set(err, QF_EFORMAT, "%s: header: \"metadata\" must be an array", nm);
    cJSON_ArrayForEach(e, md) {
        const char *key = get_str(e, "key"), *type = get_str(e, "type");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "value");
        dec d = { nm, key, err };
        int t;
        qf_err sub = { 0 };
        if (!key)
            { rc = qf_err_set(err, QF_EFORMAT, "%s: header: metadata entry without a \"key\" string", nm); goto done; }
        if (!type || (t = vtype_from_name(type)) < 0)
            { rc = dec_fail(&d, "missing or unknown \"type\""); goto done; }
        if (!v)
            { rc = dec_fail(&d, "missing \"value\""); goto done; }
        if (qf_gguf_writer_find_key(q->meta, key) >= 0)
            { rc = dec_fail(&d, "duplicate key"); goto done; }
        b.n = 0;
        if (t == QF_GGUF_ARRAY)
            rc = decode_array(&d, cJSON_GetObjectItemCaseSensitive(e, "element_type"), v, &b, 1);
        else
            rc = decode_value(&d, t, v, &b, 0);
        if (rc == QF_ENOMEM)
            rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", nm);
        if (rc)
            goto done;
        if ((rc = qf_gguf_writer_set_raw(q->meta, key, (qf_gguf_vtype)t, b.p, b.n, &sub)) != 0) {
            rc = qf_err_set(err, rc == QF_ENOMEM ? QF_ENOMEM : QF_EFORMAT, "%s: metadata \"%s\": %s",
                            nm, key, sub.msg);
            goto done;
        }
    }
done:
    free(b.p);
    return rc;
}

static int parse_tensor(qf_qfm *q, const cJSON *e, int64_t i, qf_qfm_type_fn types, void *tctx,
                        uint64_t **frames_at, qf_err *err)
{
    const char *nm = q->path;
    qf_qfm_tensor *t = &q->t[i];
    const char *name = get_str(e, "name"), *type = get_str(e, "type"), *codec, *h;
    const cJSON *shape, *d, *fr, *sh;
    uint64_t v, n_el = 1;
    uint32_t nd = 0;
    int rc;

    if (!name)
        return qf_err_set(err, QF_EFORMAT, "%s: header: tensor %" PRId64 " has no \"name\" string", nm, i);
    if (!*name || strlen(name) >= QF_GGUF_MAX_NAME || !qf_utf8_valid(name, strlen(name)))
        return qf_err_set(err, QF_EFORMAT, "%s: tensor %" PRId64 ": bad name (1..63 bytes of UTF-8)", nm, i);
    if (!(q->strs[2 * i] = strdup(name)))
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", nm);
    t->name = q->strs[2 * i];
    if (!type || !*type || strlen(type) > 64)
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": missing \"type\"", nm, name);
    if (!(q->strs[2 * i + 1] = strdup(type)))
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", nm);
    t->type_name = q->strs[2 * i + 1];
    shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) < 1 ||
        cJSON_GetArraySize(shape) > QF_GGUF_MAX_DIMS)
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": \"shape\" must be an array of 1..4 dims",
                          nm, name);
    t->ne[0] = t->ne[1] = t->ne[2] = t->ne[3] = 1;
    cJSON_ArrayForEach(d, shape) {
        if (!cJSON_IsNumber(d) || !(d->valuedouble >= 1 && d->valuedouble < MAX_EXACT) ||
            d->valuedouble != floor(d->valuedouble))
            return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": dim %u is not an integer in [1, 2^53)",
                              nm, name, nd);
        t->ne[nd] = (uint64_t)d->valuedouble;
        if (__builtin_mul_overflow(n_el, t->ne[nd], &n_el))
            return qf_err_set(err, QF_ELIMIT, "%s: tensor \"%s\": element count overflows", nm, name);
        nd++;
    }
    t->n_dims = nd;
    t->n_elements = n_el;
    t->n_rows = t->ne[1] * t->ne[2] * t->ne[3];
    t->ggml_type = qf_ggml_type_from_name(type);
    if (t->ggml_type >= 0) {
        uint64_t row;
        rc = qf_ggml_row_size(t->ggml_type, t->ne[0], &row);
        if (rc == QF_EFORMAT)
            return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": row of %" PRIu64
                              " elements is not a multiple of %s's block size", nm, name, t->ne[0], type);
        if (rc || __builtin_mul_overflow(row, t->n_rows, &t->nbytes))
            return qf_err_set(err, QF_ELIMIT, "%s: tensor \"%s\": byte size overflows", nm, name);
    } else {
        qf_err sub = { 0 };
        rc = types ? types(tctx, type, nd, t->ne, &t->nbytes, &sub) : QF_ENOTFOUND;
        if (rc == QF_ENOTFOUND)
            return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": unknown type \"%s\"", nm, name, type);
        if (rc)
            return qf_err_set(err, rc, "%s: tensor \"%s\": %s", nm, name, sub.msg);
    }
    if (t->nbytes == 0)
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": no bytes", nm, name);
    if (get_uint(e, "size", &v) != 0 || v != t->nbytes)
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": \"size\" is not %" PRIu64
                          ", the bytes its type and shape take", nm, name, t->nbytes);
    if (get_uint(e, "offset", &t->offset) != 0 || get_uint(e, "stored_size", &t->stored_size) != 0)
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": \"offset\" and \"stored_size\" must be "
                          "integers in [0, 2^53)", nm, name);
    if (!(h = get_str(e, "sha256")) || strlen(h) != 64 || qf_sha256_parse(h, t->sha256) != 0)
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": \"sha256\" must be 64 hex digits", nm, name);
    if (!(h = get_str(e, "stored_sha256")) || strlen(h) != 64 || qf_sha256_parse(h, t->stored_sha256) != 0)
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": \"stored_sha256\" must be 64 hex digits",
                          nm, name);
    codec = get_str(e, "codec");
    if (!codec)
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": missing \"codec\"", nm, name);
    sh = cJSON_GetObjectItemCaseSensitive(e, "shuffle");
    if (strcmp(codec, "raw") == 0) {
        t->codec = QF_QFM_RAW;
        if (t->stored_size != t->nbytes)
            return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": raw codec but stored_size %" PRIu64
                              " != size %" PRIu64, nm, name, t->stored_size, t->nbytes);
        if (memcmp(t->sha256, t->stored_sha256, QF_SHA256_LEN) != 0)
            return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": raw codec but sha256 != stored_sha256",
                              nm, name);
        if (sh && !(cJSON_IsNumber(sh) && sh->valuedouble == 0))
            return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": shuffle with the raw codec", nm, name);
        return 0;
    }
    if (strcmp(codec, "zstd") != 0)
        return qf_err_set(err, QF_EUNSUPPORTED, "%s: tensor \"%s\": unknown codec \"%s\"", nm, name, codec);
    t->codec = QF_QFM_ZSTD;
    if (sh) {
        if (!cJSON_IsNumber(sh) || !(sh->valuedouble == 0 || sh->valuedouble == 2 ||
                                     sh->valuedouble == 4 || sh->valuedouble == 8))
            return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": \"shuffle\" must be 0, 2, 4 or 8", nm, name);
        t->shuffle = (int)sh->valuedouble;
        if (t->shuffle && t->nbytes % (uint64_t)t->shuffle != 0)
            return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": size is not a multiple of shuffle %d",
                              nm, name, t->shuffle);
    }
    if (get_uint(e, "frame_size", &t->frame_size) != 0 || t->frame_size == 0 ||
        t->frame_size % QF_QFM_ALIGN != 0 || t->frame_size > QF_QFM_MAX_FRAME)
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": \"frame_size\" must be a multiple of 64 "
                          "in [64, 1 GiB]", nm, name);
    t->n_frames = (int64_t)((t->nbytes + t->frame_size - 1) / t->frame_size);
    fr = cJSON_GetObjectItemCaseSensitive(e, "frames");
    if (!cJSON_IsArray(fr) || (int64_t)cJSON_GetArraySize(fr) != t->n_frames)
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": \"frames\" must list %" PRId64
                          " compressed sizes", nm, name, t->n_frames);
    {
        int64_t f = 0;
        uint64_t sum = 0;
        uint64_t *out = *frames_at;
        cJSON_ArrayForEach(d, fr) {
            uint64_t len = f + 1 < t->n_frames ? t->frame_size : t->nbytes - (uint64_t)f * t->frame_size;
            if (!cJSON_IsNumber(d) || !(d->valuedouble >= 1) ||
                d->valuedouble > (double)ZSTD_compressBound((size_t)len) || d->valuedouble != floor(d->valuedouble))
                return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": frame %" PRId64
                                  ": compressed size is not in [1, %zu]", nm, name, f,
                                  ZSTD_compressBound((size_t)len));
            out[f] = (uint64_t)d->valuedouble;
            sum += out[f];
            f++;
        }
        if (sum != t->stored_size)
            return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": frames add up to %" PRIu64
                              ", stored_size is %" PRIu64, nm, name, sum, t->stored_size);
        t->frames = out;
        *frames_at = out + t->n_frames;
    }
    return 0;
}

static int parse(qf_qfm *q, qf_qfm_type_fn types, void *tctx, qf_err *err)
{
    const char *nm = q->path;
    const char *hdr;
    const char *end = NULL;
    cJSON *root = NULL;
    const cJSON *g, *ta, *e, *prov;
    uint64_t h, v, expected = 0, total_frames = 0;
    uint64_t *frames_at;
    const qf_qfm_tensor **sorted = NULL;
    int64_t i;
    int rc = 0;

    if (q->size < 4 || !qf_qfm_sniff(q->base, 4))
        return qf_err_set(err, q->size < 4 ? QF_ETRUNC : QF_EFORMAT, "%s: not a QFM file (bad magic)", nm);
    if (q->size < 16)
        return qf_err_set(err, QF_ETRUNC, "%s: file too short for a QFM preamble (%" PRIu64 " bytes)", nm,
                          q->size);
    if ((v = qf_le32(q->base + 4)) != QF_QFM_VERSION)
        return qf_err_set(err, QF_EUNSUPPORTED, "%s: QFM version %" PRIu64 " is not supported (qforge reads "
                          "version 1)", nm, v);
    h = qf_le64(q->base + 8);
    if (h == 0 || h > QF_QFM_MAX_HEADER)
        return qf_err_set(err, h ? QF_ELIMIT : QF_EFORMAT, "%s: header length %" PRIu64
                          " is not in [1, 1 GiB]", nm, h);
    if (h > q->size - 16)
        return qf_err_set(err, QF_ETRUNC, "%s: header of %" PRIu64 " bytes runs past the end of the file "
                          "(%" PRIu64 " bytes)", nm, h, q->size);
    q->header_len = h;
    q->data_offset = align64(16 + h);
    hdr = (const char *)q->base + 16;
    if (has_nul_escape(hdr, h))
        return qf_err_set(err, QF_EFORMAT, "%s: header: \\u0000 in a string", nm);
    root = cJSON_ParseWithLengthOpts(hdr, (size_t)h, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        uint64_t at = end && end >= hdr ? (uint64_t)(end - hdr) : 0;
        const char *p = cJSON_GetErrorPtr();
        if (p >= hdr && p <= hdr + h)
            at = (uint64_t)(p - hdr);
        rc = qf_err_set(err, QF_EFORMAT, "%s: header: %s at byte %" PRIu64, nm,
                        root ? "not a JSON object" : "bad JSON", 16 + at);
        goto done;
    }
    for (; end && end < hdr + h; end++)
        if (*end != ' ' && *end != '\n' && *end != '\t' && *end != '\r') {
            rc = qf_err_set(err, QF_EFORMAT, "%s: header: bytes after the JSON object at byte %" PRIu64, nm,
                            (uint64_t)(end - hdr) + 16);
            goto done;
        }
    g = cJSON_GetObjectItemCaseSensitive(root, "gguf");
    if (!cJSON_IsObject(g) || get_uint(g, "version", &v) != 0) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: header: missing \"gguf\": {\"version\", \"alignment\"}", nm);
        goto done;
    }
    if (v != QF_GGUF_VERSION) {
        rc = qf_err_set(err, QF_EUNSUPPORTED, "%s: header: GGUF version %" PRIu64 " (only 3)", nm, v);
        goto done;
    }
    q->gguf_version = (uint32_t)v;
    if (get_uint(g, "alignment", &v) != 0 || v == 0 || v > (1u << 30) || (v & (v - 1)) != 0) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: header: gguf alignment must be a power of two", nm);
        goto done;
    }
    q->alignment = (uint32_t)v;
    if ((rc = parse_metadata(q, cJSON_GetObjectItemCaseSensitive(root, "metadata"), err)) != 0)
        goto done;
    if (meta_alignment(q->meta) != q->alignment) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: header: gguf alignment %" PRIu32
                        " disagrees with general.alignment", nm, q->alignment);
        goto done;
    }
    ta = cJSON_GetObjectItemCaseSensitive(root, "tensors");
    if (!cJSON_IsArray(ta)) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: header: \"tensors\" must be an array", nm);
        goto done;
    }
    q->nt = cJSON_GetArraySize(ta);
    cJSON_ArrayForEach(e, ta) {
        const cJSON *fr = cJSON_GetObjectItemCaseSensitive(e, "frames");
        if (cJSON_IsArray(fr))
            total_frames += (uint64_t)cJSON_GetArraySize(fr);
    }
    q->t = calloc((size_t)q->nt + 1, sizeof *q->t);
    q->strs = calloc(2 * (size_t)q->nt + 1, sizeof *q->strs);
    q->frames = calloc((size_t)total_frames + 1, sizeof *q->frames);
    sorted = calloc((size_t)q->nt + 1, sizeof *sorted);
    if (!q->t || !q->strs || !q->frames || !sorted) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", nm);
        goto done;
    }
    frames_at = q->frames;
    i = 0;
    cJSON_ArrayForEach(e, ta) {
        qf_qfm_tensor *t = &q->t[i];
        if (!cJSON_IsObject(e)) {
            rc = qf_err_set(err, QF_EFORMAT, "%s: header: tensor %" PRId64 " is not an object", nm, i);
            goto done;
        }
        if ((rc = parse_tensor(q, e, i, types, tctx, &frames_at, err)) != 0)
            goto done;
        if (t->offset < expected && i > 0) {
            rc = qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": data at %" PRIu64
                            " overlaps \"%s\" (which ends at %" PRIu64 ")", nm, t->name, t->offset,
                            q->t[i - 1].name, q->t[i - 1].offset + q->t[i - 1].stored_size);
            goto done;
        }
        if (t->offset != expected) {
            rc = qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": offset %" PRIu64 " != expected %" PRIu64,
                            nm, t->name, t->offset, expected);
            goto done;
        }
        if (t->stored_size > MAX_EXACT - t->offset) {
            rc = qf_err_set(err, QF_ELIMIT, "%s: tensor \"%s\": stored bytes overflow", nm, t->name);
            goto done;
        }
        expected = align64(t->offset + t->stored_size);
        sorted[i] = t;
        i++;
    }
    qsort(sorted, (size_t)q->nt, sizeof *sorted, cmp_name);
    for (i = 1; i < q->nt; i++)
        if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0) {
            rc = qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": duplicate name", nm, sorted[i]->name);
            goto done;
        }
    if (get_uint(root, "data_size", &q->data_size) != 0) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: header: missing \"data_size\"", nm);
        goto done;
    }
    if (q->data_size != expected) {
        for (i = 0; i < q->nt; i++) {
            const qf_qfm_tensor *t = &q->t[i];
            if (t->offset + t->stored_size > q->data_size) {
                rc = qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": data [%" PRIu64 ", %" PRIu64
                                ") runs past the end of the data section (%" PRIu64 " bytes)", nm, t->name,
                                t->offset, t->offset + t->stored_size, q->data_size);
                goto done;
            }
        }
        rc = qf_err_set(err, QF_EFORMAT, "%s: header: data_size %" PRIu64 ", the tensors need %" PRIu64,
                        nm, q->data_size, expected);
        goto done;
    }
    prov = cJSON_GetObjectItemCaseSensitive(root, "provenance");
    if (prov && !cJSON_IsObject(prov)) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: header: \"provenance\" must be an object", nm);
        goto done;
    }
    q->prov_json = prov ? cJSON_Duplicate(prov, 1) : cJSON_CreateObject();
    if (!q->prov_json || !(q->provenance = cJSON_PrintUnformatted(q->prov_json))) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", nm);
        goto done;
    }
    /* The file's extent: data, then the trailer, then nothing. */
    if (q->data_offset > q->size || q->size - q->data_offset < q->data_size ||
        q->size - q->data_offset - q->data_size < QF_QFM_TRAILER) {
        rc = qf_err_set(err, QF_ETRUNC, "%s: file ends at byte %" PRIu64 ", its data and digest need %" PRIu64
                        " bytes", nm, q->size, q->data_offset + q->data_size + QF_QFM_TRAILER);
        goto done;
    }
    if (q->size - q->data_offset - q->data_size > QF_QFM_TRAILER) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: %" PRIu64 " bytes after the file digest", nm,
                        q->size - q->data_offset - q->data_size - QF_QFM_TRAILER);
        goto done;
    }
    for (v = 16 + h; v < q->data_offset; v++)
        if (q->base[v] != 0) {
            rc = qf_err_set(err, QF_EFORMAT, "%s: non-zero padding after the header at byte %" PRIu64, nm, v);
            goto done;
        }
    {
        const uint8_t *data = q->base + q->data_offset;
        uint64_t pos = 0;
        for (i = 0; i <= q->nt; i++) {
            uint64_t until = i < q->nt ? q->t[i].offset : q->data_size;
            for (; pos < until; pos++)
                if (data[pos] != 0) {
                    rc = qf_err_set(err, QF_EFORMAT, "%s: non-zero padding %s \"%s\" at byte %" PRIu64, nm,
                                    i < q->nt ? "before" : "after", q->t[i < q->nt ? i : i - 1].name,
                                    q->data_offset + pos);
                    goto done;
                }
            if (i < q->nt) {
                q->t[i].stored = data + q->t[i].offset;
                q->t[i].data = q->t[i].codec == QF_QFM_RAW ? q->t[i].stored : NULL;
                pos = q->t[i].offset + q->t[i].stored_size;
            }
        }
    }
    {
        const uint8_t *tr = q->base + q->data_offset + q->data_size;
        uint8_t want[QF_SHA256_LEN];
        if (memcmp(tr, QF_QFM_TRAILER_MAGIC, 8) != 0) {
            rc = qf_err_set(err, QF_EFORMAT, "%s: bad trailer magic at byte %" PRIu64 " (damaged or truncated)",
                            nm, q->data_offset + q->data_size);
            goto done;
        }
        memcpy(q->root, tr + 8, QF_SHA256_LEN);
        if (compute_root(hdr, h, q->t, q->nt, NULL, want) != 0) {
            rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", nm);
            goto done;
        }
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
        /* (fuzzing builds skip this one check, so that mutated headers
         * reach the tensor decoding paths) */
        if (memcmp(want, q->root, QF_SHA256_LEN) != 0) {
            rc = qf_err_set(err, QF_EMISMATCH, "%s: header does not match the file digest (the header or "
                            "the digest is damaged)", nm);
            goto done;
        }
#endif
    }
done:
    free(sorted);
    cJSON_Delete(root);
    return rc;
}

static int open_common(qf_qfm *q, qf_qfm_type_fn types, void *tctx, qf_qfm **out, qf_err *err)
{
    int rc = parse(q, types, tctx, err);
    if (rc) {
        qf_qfm_close(q);
        return rc;
    }
    *out = q;
    return 0;
}

int qf_qfm_open_buffer(const void *buf, uint64_t size, const char *name, qf_qfm_type_fn types,
                       void *types_ctx, qf_qfm **out, qf_err *err)
{
    qf_qfm *q;
    *out = NULL;
    if (!name)
        name = "<buffer>";
    if (!buf && size)
        return qf_err_set(err, QF_EINVAL, "%s: NULL buffer", name);
    q = calloc(1, sizeof *q);
    if (!q || !(q->path = strdup(name))) {
        free(q);
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", name);
    }
    q->base = buf ? buf : (const uint8_t *)"";
    q->size = size;
    return open_common(q, types, types_ctx, out, err);
}

int qf_qfm_open(const char *path, qf_qfm_type_fn types, void *types_ctx, qf_qfm **out, qf_err *err)
{
    qf_qfm *q;
    int rc;
    *out = NULL;
    q = calloc(1, sizeof *q);
    if (!q || !(q->path = strdup(path))) {
        free(q);
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
    }
    if ((rc = qf_map_open(path, &q->map, err)) != 0) {
        qf_qfm_close(q);
        return rc;
    }
    q->base = qf_map_data(q->map) ? qf_map_data(q->map) : (const uint8_t *)"";
    q->size = qf_map_size(q->map);
    return open_common(q, types, types_ctx, out, err);
}

int qf_qfm_compute_root(const qf_qfm *q, const uint8_t (*digests)[QF_SHA256_LEN],
                        uint8_t root[QF_SHA256_LEN])
{
    return compute_root(qf_qfm_header(q), q->header_len, q->t, q->nt, digests, root);
}

/* =====================================================================
 * Byte-plane shuffle
 * ===================================================================== */

/* Group byte j of every k-byte element: dst[j * m + e] = src[e * k + j]. */
static void shuffle(uint8_t *dst, const uint8_t *src, size_t n, int k)
{
    size_t m = n / (size_t)k, e;
    int j;
    if (k == 2) {
        for (e = 0; e < m; e++) {
            dst[e] = src[2 * e];
            dst[m + e] = src[2 * e + 1];
        }
        return;
    }
    for (j = 0; j < k; j++)
        for (e = 0; e < m; e++)
            dst[(size_t)j * m + e] = src[e * (size_t)k + (size_t)j];
}

static void unshuffle(uint8_t *dst, const uint8_t *src, size_t n, int k)
{
    size_t m = n / (size_t)k, e;
    int j;
    if (k == 2) {
        for (e = 0; e < m; e++) {
            dst[2 * e] = src[e];
            dst[2 * e + 1] = src[m + e];
        }
        return;
    }
    for (j = 0; j < k; j++)
        for (e = 0; e < m; e++)
            dst[e * (size_t)k + (size_t)j] = src[(size_t)j * m + e];
}

/* =====================================================================
 * Reading tensor data
 * ===================================================================== */

static uint64_t frame_len(const qf_qfm_tensor *t, int64_t f)
{
    return f + 1 < t->n_frames ? t->frame_size : t->nbytes - (uint64_t)f * t->frame_size;
}

/* Decode frame f of tensor t (stored bytes at src) into dst (frame_len
 * bytes), using tmp (frame_size bytes) when shuffled. */
static int decode_frame(const qf_qfm *q, const qf_qfm_tensor *t, int64_t f, const uint8_t *src,
                        ZSTD_DCtx *dctx, uint8_t *dst, uint8_t *tmp, qf_err *err)
{
    size_t len = (size_t)frame_len(t, f), r;
    uint8_t *into = t->shuffle ? tmp : dst;
    r = ZSTD_decompressDCtx(dctx, into, len, src, (size_t)t->frames[f]);
    if (ZSTD_isError(r))
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": frame %" PRId64 ": zstd: %s", q->path, t->name,
                          f, ZSTD_getErrorName(r));
    if (r != len)
        return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\": frame %" PRId64 " decompresses to %zu bytes, "
                          "expected %zu", q->path, t->name, f, r, len);
    if (t->shuffle)
        unshuffle(dst, tmp, len, t->shuffle);
    return 0;
}

#define RAW_CHUNK (4u << 20)

int qf_qfm_stream(const qf_qfm *q, int64_t i, qf_qfm_sink_fn fn, void *ctx,
                  uint8_t digest[QF_SHA256_LEN], qf_err *err)
{
    const qf_qfm_tensor *t = qf_qfm_tensor_at(q, i);
    qf_sha256 *h = NULL, *hs = NULL;
    ZSTD_DCtx *dctx = NULL;
    uint8_t *buf = NULL, *tmp = NULL, got[QF_SHA256_LEN], sgot[QF_SHA256_LEN];
    int rc = 0;

    if (!t)
        return qf_err_set(err, QF_EINVAL, "%s: no tensor %" PRId64, q->path, i);
    if (!(h = qf_sha256_new()) || !(hs = qf_sha256_new())) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", q->path);
        goto done;
    }
    if (t->codec == QF_QFM_RAW) {
        uint64_t off;
        for (off = 0; off < t->nbytes; off += RAW_CHUNK) {
            size_t n = (size_t)(t->nbytes - off < RAW_CHUNK ? t->nbytes - off : RAW_CHUNK);
            qf_sha256_update(h, t->stored + off, n);
            if (fn && (rc = fn(ctx, t->stored + off, n)) != 0)
                goto done;
        }
        qf_sha256_final(h, got);
        memcpy(sgot, got, QF_SHA256_LEN);
    } else {
        const uint8_t *src = t->stored;
        int64_t f;
        size_t fmax = (size_t)frame_len(t, 0); /* the first frame is the longest */
        if (!(dctx = ZSTD_createDCtx()) || !(buf = malloc(fmax)) || (t->shuffle && !(tmp = malloc(fmax)))) {
            rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", q->path);
            goto done;
        }
        for (f = 0; f < t->n_frames; f++) {
            size_t len = (size_t)frame_len(t, f);
            qf_sha256_update(hs, src, (size_t)t->frames[f]);
            if ((rc = decode_frame(q, t, f, src, dctx, buf, tmp, err)) != 0)
                goto done;
            qf_sha256_update(h, buf, len);
            if (fn && (rc = fn(ctx, buf, len)) != 0)
                goto done;
            src += t->frames[f];
        }
        qf_sha256_final(h, got);
        qf_sha256_final(hs, sgot);
    }
    if (digest)
        memcpy(digest, got, QF_SHA256_LEN);
    if (memcmp(got, t->sha256, QF_SHA256_LEN) != 0) {
        char a[QF_SHA256_HEX], b[QF_SHA256_HEX];
        qf_sha256_hex(t->sha256, a);
        qf_sha256_hex(got, b);
        rc = qf_err_set(err, QF_EMISMATCH, "%s: tensor \"%s\": SHA-256 mismatch: the data is damaged "
                        "(header %.16s..., data %.16s...)", q->path, t->name, a, b);
    } else if (memcmp(sgot, t->stored_sha256, QF_SHA256_LEN) != 0) {
        rc = qf_err_set(err, QF_EMISMATCH, "%s: tensor \"%s\": stored_sha256 mismatch: the stored bytes "
                        "differ from the header", q->path, t->name);
    }
done:
    ZSTD_freeDCtx(dctx);
    free(buf);
    free(tmp);
    qf_sha256_free(h);
    qf_sha256_free(hs);
    return rc;
}

typedef struct copy_ctx {
    uint8_t *dst;
    uint64_t at;
} copy_ctx;

static int copy_out(void *ctx, const void *data, size_t n)
{
    copy_ctx *c = ctx;
    memcpy(c->dst + c->at, data, n);
    c->at += n;
    return 0;
}

int qf_qfm_read_tensor(const qf_qfm *q, int64_t i, void *dst, uint64_t dst_cap, qf_err *err)
{
    const qf_qfm_tensor *t = qf_qfm_tensor_at(q, i);
    copy_ctx c = { dst, 0 };
    if (!t || dst_cap < t->nbytes)
        return qf_err_set(err, QF_EINVAL, "%s: tensor %" PRId64 ": bad index or buffer too small", q->path, i);
    return qf_qfm_stream(q, i, copy_out, &c, NULL, err);
}

int qf_qfm_read_range(const qf_qfm *q, int64_t i, uint64_t off, uint64_t n, void *dst,
                      void *scratch, qf_err *err)
{
    const qf_qfm_tensor *t = qf_qfm_tensor_at(q, i);
    uint8_t *mine = NULL, *out = dst, *fbuf, *tmp;
    ZSTD_DCtx *dctx = NULL;
    int64_t f, f0, f1;
    const uint8_t *src;
    int rc = 0;

    if (!t || off > t->nbytes || n > t->nbytes - off)
        return qf_err_set(err, QF_EINVAL, "%s: tensor %" PRId64 ": range out of bounds", q->path, i);
    if (n == 0)
        return 0;
    if (t->codec == QF_QFM_RAW) {
        memcpy(dst, t->stored + off, (size_t)n);
        return 0;
    }
    if (!scratch && !(scratch = mine = malloc(2 * (size_t)frame_len(t, 0))))
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", q->path);
    fbuf = scratch;
    tmp = fbuf + (scratch == mine ? frame_len(t, 0) : t->frame_size);
    if (!(dctx = ZSTD_createDCtx())) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", q->path);
        goto done;
    }
    f0 = (int64_t)(off / t->frame_size);
    f1 = (int64_t)((off + n - 1) / t->frame_size);
    src = t->stored;
    for (f = 0; f < f0; f++)
        src += t->frames[f];
    for (f = f0; f <= f1; f++) {
        uint64_t fstart = (uint64_t)f * t->frame_size, len = frame_len(t, f);
        uint64_t a = off > fstart ? off - fstart : 0;
        uint64_t b = off + n < fstart + len ? off + n - fstart : len;
        if ((rc = decode_frame(q, t, f, src, dctx, fbuf, tmp, err)) != 0)
            goto done;
        memcpy(out, fbuf + a, (size_t)(b - a));
        out += b - a;
        src += t->frames[f];
    }
done:
    ZSTD_freeDCtx(dctx);
    free(mine);
    return rc;
}

/* =====================================================================
 * Writer
 * ===================================================================== */

enum { M_UNDECIDED = 0, M_RAW, M_ZSTD, M_SHUF };

typedef struct slot {
    int64_t t, frame;
    uint64_t len;       /* bytes of the frame (filled when full) */
    uint64_t fill;
    uint8_t *in, *shuf, *out, *alt;
    size_t out_n;
    int mode_in;        /* the tensor's mode when the batch started */
    int mode;           /* what out holds */
    int deferred;
} slot;

struct qf_qfm_writer {
    qf_qfm_opts o;
    qf_gguf_writer *meta;
    qf_qfm_tensor *t;
    int64_t nt, cap_t;
    int *mode;            /* per tensor */
    uint64_t **frames;    /* per tensor, owned */
    cJSON *prov;
    /* output */
    qf_out *out;
    uint64_t h;           /* reserved header bytes */
    uint64_t data_start;
    uint64_t pos;         /* data bytes written */
    uint64_t file_size, data_bytes;
    int begun, failed;
    /* input */
    int64_t cur_t;        /* tensor receiving bytes */
    int64_t cur_f;        /* its frame */
    uint64_t cur_off;     /* bytes of it received */
    slot *slots;
    int n_slots, used;
    ZSTD_CCtx **cctx;
    qf_sha256 *h_data, *h_stored;
    int64_t hash_t;
    int last_rc;
};

int qf_qfm_writer_new(const qf_gguf_writer *meta, const qf_qfm_opts *opts, qf_qfm_writer **out,
                      qf_err *err)
{
    qf_qfm_writer *w = calloc(1, sizeof *w);
    int64_t i;
    int rc = 0;

    *out = NULL;
    if (!w)
        return qf_err_set(err, QF_ENOMEM, "qfm writer: out of memory");
    if (opts)
        w->o = *opts;
    else
        w->o.codec = QF_QFM_ZSTD;
    if (w->o.level == 0)
        w->o.level = QF_QFM_DEFAULT_LEVEL;
    if (w->o.threads <= 0)
        w->o.threads = 1;
    if (w->o.frame_size == 0)
        w->o.frame_size = QF_QFM_DEFAULT_FRAME;
    if ((w->o.codec != QF_QFM_RAW && w->o.codec != QF_QFM_ZSTD) || w->o.level < 1 ||
        w->o.level > ZSTD_maxCLevel() || w->o.frame_size % QF_QFM_ALIGN != 0 ||
        w->o.frame_size > QF_QFM_MAX_FRAME) {
        qf_qfm_writer_free(w);
        return qf_err_set(err, QF_EINVAL, "qfm writer: bad options (codec, level 1..%d, frame size)",
                          ZSTD_maxCLevel());
    }
    if ((rc = qf_gguf_writer_new(&w->meta, err)) != 0)
        goto fail;
    if (meta) {
        for (i = 0; i < qf_gguf_writer_kv_count(meta); i++) {
            qf_gguf_val v;
            qf_gguf_writer_kv_value(meta, i, &v);
            if ((rc = qf_gguf_writer_set_raw(w->meta, qf_gguf_writer_kv_key(meta, i), v.type, v.raw,
                                             v.raw_len, err)) != 0)
                goto fail;
        }
        for (i = 0; i < qf_gguf_writer_tensor_count(meta); i++) {
            qf_gguf_tensor gt;
            qf_gguf_writer_tensor_info(meta, i, &gt);
            if ((rc = qf_qfm_writer_add_tensor(w, gt.name, qf_ggml_type_name(gt.type), gt.n_dims, gt.ne,
                                               gt.nbytes, err)) != 0)
                goto fail;
        }
    }
    *out = w;
    return 0;
fail:
    qf_qfm_writer_free(w);
    return rc;
}

void qf_qfm_writer_free(qf_qfm_writer *w)
{
    int64_t i;
    int k;
    if (!w)
        return;
    for (i = 0; i < w->nt; i++) {
        free((char *)w->t[i].name);
        free((char *)w->t[i].type_name);
        free(w->frames[i]);
    }
    free(w->t);
    free(w->frames);
    free(w->mode);
    if (w->slots)
        for (k = 0; k < w->n_slots; k++) {
            free(w->slots[k].in);
            free(w->slots[k].shuf);
            free(w->slots[k].out);
            free(w->slots[k].alt);
        }
    free(w->slots);
    if (w->cctx)
        for (k = 0; k < w->o.threads; k++)
            ZSTD_freeCCtx(w->cctx[k]);
    free(w->cctx);
    qf_sha256_free(w->h_data);
    qf_sha256_free(w->h_stored);
    cJSON_Delete(w->prov);
    qf_gguf_writer_free(w->meta);
    qf_out_close(w->out);
    free(w);
}

qf_gguf_writer *qf_qfm_writer_metadata(qf_qfm_writer *w) { return w->meta; }

int qf_qfm_writer_add_tensor(qf_qfm_writer *w, const char *name, const char *type,
                             uint32_t n_dims, const uint64_t *ne, uint64_t nbytes, qf_err *err)
{
    qf_qfm_tensor *t;
    uint64_t n_el = 1;
    uint32_t d;
    int64_t i;
    int g;

    if (w->begun)
        return qf_err_set(err, QF_EINVAL, "qfm writer: tensor \"%s\" declared after begin", name);
    if (!name || !*name || strlen(name) >= QF_GGUF_MAX_NAME || !qf_utf8_valid(name, strlen(name)))
        return qf_err_set(err, QF_EINVAL, "qfm writer: bad tensor name");
    if (!type || !*type || strlen(type) > 64 || n_dims < 1 || n_dims > QF_GGUF_MAX_DIMS || nbytes == 0)
        return qf_err_set(err, QF_EINVAL, "qfm writer: tensor \"%s\": bad type, dims or size", name);
    for (i = 0; i < w->nt; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return qf_err_set(err, QF_EINVAL, "qfm writer: tensor \"%s\": duplicate name", name);
    for (d = 0; d < n_dims; d++)
        if (ne[d] < 1 || (double)ne[d] >= MAX_EXACT || __builtin_mul_overflow(n_el, ne[d], &n_el))
            return qf_err_set(err, QF_EINVAL, "qfm writer: tensor \"%s\": bad dims", name);
    g = qf_ggml_type_from_name(type);
    if (g >= 0) {
        uint64_t row, want;
        if (qf_ggml_row_size(g, ne[0], &row) != 0 ||
            __builtin_mul_overflow(row, n_el / ne[0], &want) || want != nbytes)
            return qf_err_set(err, QF_EINVAL, "qfm writer: tensor \"%s\": %" PRIu64 " bytes do not fit "
                              "type %s and its shape", name, nbytes, type);
    }
    if (w->nt == w->cap_t) {
        int64_t cap = w->cap_t ? 2 * w->cap_t : 64;
        qf_qfm_tensor *nt = realloc(w->t, (size_t)cap * sizeof *nt);
        uint64_t **nf;
        int *nm;
        if (!nt)
            return qf_err_set(err, QF_ENOMEM, "qfm writer: out of memory");
        w->t = nt;
        if (!(nf = realloc(w->frames, (size_t)cap * sizeof *nf)))
            return qf_err_set(err, QF_ENOMEM, "qfm writer: out of memory");
        w->frames = nf;
        if (!(nm = realloc(w->mode, (size_t)cap * sizeof *nm)))
            return qf_err_set(err, QF_ENOMEM, "qfm writer: out of memory");
        w->mode = nm;
        w->cap_t = cap;
    }
    t = &w->t[w->nt];
    memset(t, 0, sizeof *t);
    w->frames[w->nt] = NULL;
    t->name = strdup(name);
    t->type_name = strdup(g >= 0 ? qf_ggml_type_name(g) : type);
    if (!t->name || !t->type_name) {
        free((char *)t->name);
        free((char *)t->type_name);
        return qf_err_set(err, QF_ENOMEM, "qfm writer: out of memory");
    }
    t->ggml_type = g;
    t->n_dims = n_dims;
    t->ne[0] = t->ne[1] = t->ne[2] = t->ne[3] = 1;
    memcpy(t->ne, ne, n_dims * sizeof *ne);
    t->n_elements = n_el;
    t->n_rows = n_el / ne[0];
    t->nbytes = nbytes;
    t->frame_size = w->o.frame_size;
    t->n_frames = (int64_t)((nbytes + w->o.frame_size - 1) / w->o.frame_size);
    if (!(w->frames[w->nt] = calloc((size_t)t->n_frames, sizeof(uint64_t)))) {
        free((char *)t->name);
        free((char *)t->type_name);
        return qf_err_set(err, QF_ENOMEM, "qfm writer: out of memory");
    }
    t->frames = w->frames[w->nt];
    w->mode[w->nt] = w->o.codec == QF_QFM_RAW ? M_RAW : M_UNDECIDED;
    w->nt++;
    return 0;
}

int qf_qfm_writer_set_provenance(qf_qfm_writer *w, const char *key, const char *json, qf_err *err)
{
    cJSON *v = NULL;
    if (w->begun)
        return qf_err_set(err, QF_EINVAL, "qfm writer: provenance set after begin");
    if (!w->prov && !(w->prov = cJSON_CreateObject()))
        return qf_err_set(err, QF_ENOMEM, "qfm writer: out of memory");
    if (json && !(v = cJSON_Parse(json)))
        return qf_err_set(err, QF_EINVAL, "qfm writer: provenance \"%s\": bad JSON", key);
    cJSON_DeleteItemFromObjectCaseSensitive(w->prov, key);
    if (v && !cJSON_AddItemToObject(w->prov, key, v)) {
        cJSON_Delete(v);
        return qf_err_set(err, QF_ENOMEM, "qfm writer: out of memory");
    }
    return 0;
}

int qf_qfm_writer_begin(qf_qfm_writer *w, const char *path, int flags, qf_err *err)
{
    char *bound = NULL;
    uint8_t pre[16];
    int k, rc = 0;

    if (w->begun)
        return qf_err_set(err, QF_EINVAL, "qfm writer: begun twice");
    w->begun = 1;
    w->n_slots = 2 * w->o.threads;
    w->slots = calloc((size_t)w->n_slots, sizeof *w->slots);
    w->cctx = calloc((size_t)w->o.threads, sizeof *w->cctx);
    w->h_data = qf_sha256_new();
    w->h_stored = qf_sha256_new();
    if (!w->slots || !w->cctx || !w->h_data || !w->h_stored)
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
    for (k = 0; k < w->n_slots; k++) {
        slot *s = &w->slots[k];
        size_t fs = (size_t)w->o.frame_size, cb = ZSTD_compressBound(fs);
        if (!(s->in = malloc(fs)))
            return qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
        if (w->o.codec == QF_QFM_ZSTD &&
            (!(s->shuf = malloc(fs)) || !(s->out = malloc(cb)) || !(s->alt = malloc(cb))))
            return qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
    }
    for (k = 0; k < w->o.threads && w->o.codec == QF_QFM_ZSTD; k++) {
        if (!(w->cctx[k] = ZSTD_createCCtx()))
            return qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
        if (ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx[k], ZSTD_c_compressionLevel, w->o.level)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx[k], ZSTD_c_checksumFlag, 1)))
            return qf_err_set(err, QF_EINVAL, "%s: zstd level %d refused", path, w->o.level);
    }
    if (!(bound = render_header(w->meta, w->t, w->nt, 0, w->prov,
                                w->o.codec == QF_QFM_RAW ? BOUND_RAW : BOUND_ANY)))
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
    w->h = strlen(bound);
    free(bound);
    if ((rc = qf_out_open(path, flags, &w->out, err)) != 0)
        return rc;
    memcpy(pre, QF_QFM_MAGIC, 4);
    qf_put32(pre + 4, QF_QFM_VERSION);
    qf_put64(pre + 8, w->h);
    w->data_start = align64(16 + w->h);
    if ((rc = qf_out_write(w->out, pre, 16, err)) != 0 ||
        (rc = qf_out_zeros(w->out, w->data_start - 16, err)) != 0)
        return rc;
    w->cur_t = 0;
    w->cur_f = 0;
    w->cur_off = 0;
    return 0;
}

/* ---- the batch: compress, decide, write ---- */

static int shuffle_width(const qf_qfm_tensor *t)
{
    switch (t->ggml_type) {
    case QF_GGML_F16: case QF_GGML_BF16: return 2;
    case QF_GGML_F32: return 4;
    default: return 0;
    }
}

static size_t zcompress(ZSTD_CCtx *c, uint8_t *dst, const uint8_t *src, size_t n)
{
    return ZSTD_compress2(c, dst, ZSTD_compressBound(n), src, n);
}

typedef struct batch {
    qf_qfm_writer *w;
    int phase;
} batch;

static int compress_slot(qf_qfm_writer *w, slot *s, int worker, int decide)
{
    ZSTD_CCtx *c = w->cctx[worker];
    const qf_qfm_tensor *t = &w->t[s->t];
    int k = shuffle_width(t);
    size_t n = (size_t)s->len, r;

    if (decide) {
        size_t plain = zcompress(c, s->out, s->in, n), sh = SIZE_MAX;
        if (ZSTD_isError(plain))
            return QF_ENOMEM;
        if (k) {
            shuffle(s->shuf, s->in, n, k);
            sh = zcompress(c, s->alt, s->shuf, n);
            if (ZSTD_isError(sh))
                return QF_ENOMEM;
        }
        /* zstd only where it saves at least 1%: raw tensors stay mappable */
        if ((plain < sh ? plain : sh) > n - n / 100) {
            s->mode = M_RAW;
        } else if (sh < plain) {
            uint8_t *x = s->out;
            s->out = s->alt;
            s->alt = x;
            s->out_n = sh;
            s->mode = M_SHUF;
        } else {
            s->out_n = plain;
            s->mode = M_ZSTD;
        }
        return 0;
    }
    s->mode = s->mode_in;
    if (s->mode == M_RAW)
        return 0;
    if (s->mode == M_SHUF)
        shuffle(s->shuf, s->in, n, k);
    r = zcompress(c, s->out, s->mode == M_SHUF ? s->shuf : s->in, n);
    if (ZSTD_isError(r))
        return QF_ENOMEM;
    s->out_n = r;
    return 0;
}

/* Hash the uncompressed bytes of the batch in order (runs beside the
 * compressing jobs). */
static void hash_batch(qf_qfm_writer *w)
{
    int k;
    for (k = 0; k < w->used; k++) {
        slot *s = &w->slots[k];
        qf_qfm_tensor *t = &w->t[s->t];
        if (s->frame == 0)
            qf_sha256_reset(w->h_data);
        qf_sha256_update(w->h_data, s->in, (size_t)s->len);
        if (s->frame == t->n_frames - 1)
            qf_sha256_final(w->h_data, t->sha256);
    }
}

static int batch_job(void *ctx, int64_t begin, int64_t end, int worker)
{
    batch *b = ctx;
    qf_qfm_writer *w = b->w;
    int64_t j;
    for (j = begin; j < end; j++) {
        slot *s;
        int rc;
        if (j == w->used) {
            if (b->phase == 1)
                hash_batch(w);
            continue;
        }
        s = &w->slots[j];
        if (b->phase == 1) {
            if (s->mode_in != M_UNDECIDED)
                rc = compress_slot(w, s, worker, 0);
            else if (s->frame == 0)
                rc = compress_slot(w, s, worker, 1);
            else {
                s->deferred = 1;
                continue;
            }
        } else {
            if (!s->deferred)
                continue;
            rc = compress_slot(w, s, worker, 0);
        }
        if (rc)
            return rc;
    }
    return 0;
}

static int flush_batch(qf_qfm_writer *w, qf_err *err)
{
    batch b = { w, 1 };
    int k, rc, any = 0;

    if (w->used == 0)
        return 0;
    for (k = 0; k < w->used; k++) {
        w->slots[k].mode_in = w->mode[w->slots[k].t];
        w->slots[k].deferred = 0;
    }
    if ((rc = qf_parallel_for(w->o.threads, w->used + 1, 1, batch_job, &b)) != 0)
        return qf_err_set(err, QF_ENOMEM, "%s: compression failed", qf_out_path(w->out));
    for (k = 0; k < w->used; k++) {
        slot *s = &w->slots[k];
        if (s->mode_in == M_UNDECIDED && s->frame == 0) {
            w->mode[s->t] = s->mode;
            if (s->mode == M_SHUF)
                w->t[s->t].shuffle = shuffle_width(&w->t[s->t]);
        }
        if (s->deferred) {
            s->mode_in = w->mode[s->t];
            any = 1;
        }
    }
    if (any) {
        b.phase = 2;
        if ((rc = qf_parallel_for(w->o.threads, w->used, 1, batch_job, &b)) != 0)
            return qf_err_set(err, QF_ENOMEM, "%s: compression failed", qf_out_path(w->out));
    }
    for (k = 0; k < w->used; k++) {
        slot *s = &w->slots[k];
        qf_qfm_tensor *t = &w->t[s->t];
        const uint8_t *p = s->mode == M_RAW ? s->in : s->out;
        size_t n = s->mode == M_RAW ? (size_t)s->len : s->out_n;
        if (s->frame == 0) {
            uint64_t a = align64(w->pos);
            if ((rc = qf_out_zeros(w->out, a - w->pos, err)) != 0)
                return rc;
            w->pos = a;
            t->offset = a;
            t->stored_size = 0;
            t->codec = s->mode == M_RAW ? QF_QFM_RAW : QF_QFM_ZSTD;
            qf_sha256_reset(w->h_stored);
        }
        if ((rc = qf_out_write(w->out, p, n, err)) != 0)
            return rc;
        qf_sha256_update(w->h_stored, p, n);
        w->frames[s->t][s->frame] = n;
        t->stored_size += n;
        w->pos += n;
        if (s->frame == t->n_frames - 1) {
            qf_sha256_final(w->h_stored, t->stored_sha256);
            if (t->codec == QF_QFM_RAW) {
                t->n_frames = 0;
                t->frame_size = 0;
            }
        }
        s->fill = 0;
    }
    w->used = 0;
    return 0;
}

int qf_qfm_writer_write(qf_qfm_writer *w, const void *data, uint64_t n, qf_err *err)
{
    const uint8_t *p = data;
    int rc;

    if (!w->out || w->failed)
        return qf_err_set(err, QF_EINVAL, "qfm writer: not writing");
    while (n > 0) {
        qf_qfm_tensor *t;
        slot *s;
        uint64_t take;
        if (w->cur_t >= w->nt) {
            w->failed = 1;
            return qf_err_set(err, QF_EINVAL, "%s: more tensor data than declared", qf_out_path(w->out));
        }
        t = &w->t[w->cur_t];
        s = &w->slots[w->used];
        if (s->fill == 0) {
            s->t = w->cur_t;
            s->frame = w->cur_f;
            s->len = frame_len(t, w->cur_f);
        }
        take = s->len - s->fill < n ? s->len - s->fill : n;
        memcpy(s->in + s->fill, p, (size_t)take);
        s->fill += take;
        p += take;
        n -= take;
        if (s->fill == s->len) {
            w->used++;
            if (++w->cur_f == t->n_frames) {
                w->cur_f = 0;
                w->cur_t++;
            }
            if (w->used == w->n_slots && (rc = flush_batch(w, err)) != 0) {
                w->failed = 1;
                return rc;
            }
        }
    }
    return 0;
}

int qf_qfm_writer_finish(qf_qfm_writer *w, qf_err *err)
{
    char *text = NULL, *hdr = NULL;
    uint8_t root[QF_SHA256_LEN];
    uint64_t data_size;
    int rc;

    if (!w->out || w->failed)
        return qf_err_set(err, QF_EINVAL, "qfm writer: not writing");
    if ((rc = flush_batch(w, err)) != 0)
        goto fail;
    if (w->cur_t < w->nt) {
        rc = qf_err_set(err, QF_EINVAL, "%s: tensor \"%s\": data missing", qf_out_path(w->out),
                        w->t[w->cur_t].name);
        goto fail;
    }
    data_size = align64(w->pos);
    if ((rc = qf_out_zeros(w->out, data_size - w->pos, err)) != 0)
        goto fail;
    if (!(text = render_header(w->meta, w->t, w->nt, data_size, w->prov, 0)) || strlen(text) > w->h ||
        !(hdr = pad_header(text, w->h)) || compute_root(hdr, w->h, w->t, w->nt, NULL, root) != 0) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", qf_out_path(w->out));
        goto fail;
    }
    if ((rc = qf_out_write(w->out, QF_QFM_TRAILER_MAGIC, 8, err)) != 0 ||
        (rc = qf_out_write(w->out, root, QF_SHA256_LEN, err)) != 0 ||
        (rc = qf_out_pwrite(w->out, 16, hdr, (size_t)w->h, err)) != 0)
        goto fail;
    w->file_size = qf_out_tell(w->out);
    {
        int64_t i;
        for (i = 0; i < w->nt; i++)
            w->data_bytes += w->t[i].nbytes;
    }
    rc = qf_out_commit(w->out, err);
    w->out = NULL;
    free(text);
    free(hdr);
    return rc;
fail:
    w->failed = 1;
    free(text);
    free(hdr);
    qf_out_close(w->out);
    w->out = NULL;
    return rc;
}

uint64_t qf_qfm_writer_file_size(const qf_qfm_writer *w) { return w->file_size; }
uint64_t qf_qfm_writer_data_bytes(const qf_qfm_writer *w) { return w->data_bytes; }

/* =====================================================================
 * Provenance rewrite
 * ===================================================================== */

int qf_qfm_rewrite_provenance(const char *path, const char *json, int flags, qf_qfm_type_fn types,
                              void *types_ctx, qf_err *err)
{
    qf_qfm *q = NULL;
    cJSON *patch = NULL, *prov = NULL, *item;
    char *text = NULL;
    qf_out *o = NULL;
    uint8_t pre[16], root[QF_SHA256_LEN];
    uint64_t h, data_start;
    int rc;

    if ((rc = qf_qfm_open(path, types, types_ctx, &q, err)) != 0)
        return rc;
    if (!(patch = cJSON_Parse(json ? json : "")) || !cJSON_IsObject(patch)) {
        rc = qf_err_set(err, QF_EINVAL, "%s: provenance: expected a JSON object", path);
        goto done;
    }
    if (flags & QF_QFM_PROV_REPLACE) {
        prov = patch;
        patch = NULL;
    } else {
        if (!(prov = cJSON_Duplicate(q->prov_json, 1))) {
            rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        for (item = patch->child; item; item = item->next) {
            cJSON_DeleteItemFromObjectCaseSensitive(prov, item->string);
            if (!cJSON_IsNull(item)) {
                cJSON *c = cJSON_Duplicate(item, 1);
                if (!c || !cJSON_AddItemToObject(prov, item->string, c)) {
                    cJSON_Delete(c);
                    rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
                    goto done;
                }
            }
        }
    }
    if (!(text = render_header(q->meta, q->t, q->nt, q->data_size, prov, 0)) ||
        compute_root(text, strlen(text), q->t, q->nt, NULL, root) != 0) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    h = strlen(text);
    data_start = align64(16 + h);
    memcpy(pre, QF_QFM_MAGIC, 4);
    qf_put32(pre + 4, QF_QFM_VERSION);
    qf_put64(pre + 8, h);
    if ((rc = qf_out_open(path, QF_OUT_FORCE, &o, err)) != 0 ||
        (rc = qf_out_write(o, pre, 16, err)) != 0 || (rc = qf_out_write(o, text, (size_t)h, err)) != 0 ||
        (rc = qf_out_zeros(o, data_start - 16 - h, err)) != 0)
        goto done;
    {
        uint64_t off;
        for (off = 0; off < q->data_size; off += RAW_CHUNK) {
            size_t n = (size_t)(q->data_size - off < RAW_CHUNK ? q->data_size - off : RAW_CHUNK);
            if ((rc = qf_out_write(o, q->base + q->data_offset + off, n, err)) != 0)
                goto done;
            if (q->map)
                qf_map_release(q->map, q->data_offset + off, n);
        }
    }
    if ((rc = qf_out_write(o, QF_QFM_TRAILER_MAGIC, 8, err)) != 0 ||
        (rc = qf_out_write(o, root, QF_SHA256_LEN, err)) != 0)
        goto done;
    rc = qf_out_commit(o, err);
    o = NULL;
done:
    qf_out_close(o);
    free(text);
    cJSON_Delete(patch);
    cJSON_Delete(prov);
    qf_qfm_close(q);
    return rc;
}
