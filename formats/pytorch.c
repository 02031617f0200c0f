/*
 * formats/pytorch.c - PyTorch checkpoint reader (see pytorch.h for the
 * format and the checks).
 *
 * One file goes through these steps, each naming the file (and the tensor
 * or the data.pkl byte offset) when it refuses:
 *
 *   1. the first bytes: "PK\3\4", else legacy torch.save or not torch;
 *   2. the zip directory (formats/zip.c) and the members torch writes;
 *   3. data.pkl through the pickle reader with the allow-list below;
 *   4. every persistent id -> a storage member of the right size;
 *   5. which dict holds the tensors, and their names;
 *   6. every tensor rebuild -> a view inside its storage;
 *   7. the tensors of the dict, in its order; identical views linked;
 *      strided views copied out.
 */
#include "formats/pytorch.h"
#include "formats/shard_index.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "formats/file.h"
#include "formats/folder.h"
#include "formats/pickle.h"
#include "formats/zip.h"

#define MAX_INDEX (100u << 20) /* bytes of an index.json */
#define MAX_DICT_DEPTH 3       /* how deep a nested state dict is looked for */
#define OWN_SLACK_VIEW (1u << 20)
#define OWN_SLACK_FILE (16u << 20)

/* =====================================================================
 * The allow-list: every GLOBAL a state dict needs, and nothing that runs
 * ===================================================================== */

enum {
    K_DICT = 1,     /* collections.OrderedDict */
    K_V1,           /* torch._utils._rebuild_tensor */
    K_V2,           /* torch._utils._rebuild_tensor_v2 */
    K_V3,           /* torch._utils._rebuild_tensor_v3 */
    K_PARAM,        /* torch._utils._rebuild_parameter */
    K_PARAM_STATE,  /* torch._utils._rebuild_parameter_with_state */
    K_FROM_TYPE,    /* torch._tensor._rebuild_from_type_v2 */
    K_TENSOR_CLASS, /* torch.Tensor, torch.nn.Parameter (as values) */
    K_STORAGE,      /* typed storage classes; the dtype in the low byte */
    K_UNTYPED,      /* torch.UntypedStorage */
    K_DTYPE,        /* torch.float32 ...; the dtype in the low byte */
    K_BAD_STORAGE,  /* known storage classes we cannot read (complex, quantized) */
    K_BAD_DTYPE     /* known dtypes we cannot read */
};

#define TAG(k, dt) ((k) << 8 | (int)(dt))
#define TAG_KIND(t) ((t) >> 8)
#define TAG_DTYPE(t) ((qf_dtype)((t) & 0xff))

#define CALL_(m, n, k) { m, n, QF_PKL_CALLABLE, TAG(k, 0) }
#define STORAGE(n, dt) { "torch", n, QF_PKL_VALUE, TAG(K_STORAGE, dt) }
#define BAD_STORAGE(n) { "torch", n, QF_PKL_VALUE, TAG(K_BAD_STORAGE, 0) }
#define DTYPE(n, dt) { "torch", n, QF_PKL_VALUE, TAG(K_DTYPE, dt) }
#define BAD_DTYPE(n) { "torch", n, QF_PKL_VALUE, TAG(K_BAD_DTYPE, 0) }

static const qf_pkl_allow ALLOW[] = {
    { "collections", "OrderedDict", QF_PKL_DICT_TYPE, TAG(K_DICT, 0) },
    CALL_("torch._utils", "_rebuild_tensor", K_V1),
    CALL_("torch._utils", "_rebuild_tensor_v2", K_V2),
    CALL_("torch._utils", "_rebuild_tensor_v3", K_V3),
    CALL_("torch._utils", "_rebuild_parameter", K_PARAM),
    CALL_("torch._utils", "_rebuild_parameter_with_state", K_PARAM_STATE),
    CALL_("torch._tensor", "_rebuild_from_type_v2", K_FROM_TYPE),
    { "torch._tensor", "Tensor", QF_PKL_VALUE, TAG(K_TENSOR_CLASS, 0) },
    { "torch", "Tensor", QF_PKL_VALUE, TAG(K_TENSOR_CLASS, 0) },
    { "torch.nn.parameter", "Parameter", QF_PKL_VALUE, TAG(K_TENSOR_CLASS, 0) },
    STORAGE("FloatStorage", QF_DTYPE_F32),
    STORAGE("DoubleStorage", QF_DTYPE_F64),
    STORAGE("HalfStorage", QF_DTYPE_F16),
    STORAGE("BFloat16Storage", QF_DTYPE_BF16),
    STORAGE("LongStorage", QF_DTYPE_I64),
    STORAGE("IntStorage", QF_DTYPE_I32),
    STORAGE("ShortStorage", QF_DTYPE_I16),
    STORAGE("CharStorage", QF_DTYPE_I8),
    STORAGE("ByteStorage", QF_DTYPE_U8),
    STORAGE("BoolStorage", QF_DTYPE_BOOL),
    BAD_STORAGE("ComplexFloatStorage"),
    BAD_STORAGE("ComplexDoubleStorage"),
    BAD_STORAGE("QInt8Storage"),
    BAD_STORAGE("QUInt8Storage"),
    BAD_STORAGE("QInt32Storage"),
    BAD_STORAGE("QUInt4x2Storage"),
    BAD_STORAGE("QUInt2x4Storage"),
    { "torch", "UntypedStorage", QF_PKL_VALUE, TAG(K_UNTYPED, 0) },
    { "torch.storage", "UntypedStorage", QF_PKL_VALUE, TAG(K_UNTYPED, 0) },
    DTYPE("float32", QF_DTYPE_F32),
    DTYPE("float", QF_DTYPE_F32),
    DTYPE("float64", QF_DTYPE_F64),
    DTYPE("double", QF_DTYPE_F64),
    DTYPE("float16", QF_DTYPE_F16),
    DTYPE("half", QF_DTYPE_F16),
    DTYPE("bfloat16", QF_DTYPE_BF16),
    DTYPE("int64", QF_DTYPE_I64),
    DTYPE("long", QF_DTYPE_I64),
    DTYPE("int32", QF_DTYPE_I32),
    DTYPE("int", QF_DTYPE_I32),
    DTYPE("int16", QF_DTYPE_I16),
    DTYPE("short", QF_DTYPE_I16),
    DTYPE("int8", QF_DTYPE_I8),
    DTYPE("uint8", QF_DTYPE_U8),
    DTYPE("bool", QF_DTYPE_BOOL),
    DTYPE("uint16", QF_DTYPE_U16),
    DTYPE("uint32", QF_DTYPE_U32),
    DTYPE("uint64", QF_DTYPE_U64),
    DTYPE("float8_e4m3fn", QF_DTYPE_F8_E4M3),
    DTYPE("float8_e5m2", QF_DTYPE_F8_E5M2),
    BAD_DTYPE("complex32"),
    BAD_DTYPE("complex64"),
    BAD_DTYPE("complex128"),
    BAD_DTYPE("cfloat"),
    BAD_DTYPE("cdouble"),
    BAD_DTYPE("chalf"),
    BAD_DTYPE("float8_e4m3fnuz"),
    BAD_DTYPE("float8_e5m2fnuz"),
    BAD_DTYPE("qint8"),
    BAD_DTYPE("quint8"),
    BAD_DTYPE("qint32"),
    BAD_DTYPE("quint4x2"),
    BAD_DTYPE("quint2x4"),
    BAD_DTYPE("bits8"),
    BAD_DTYPE("bits16"),
    BAD_DTYPE("bits1x8"),
    BAD_DTYPE("bits2x4"),
    BAD_DTYPE("bits4x2"),
};

#define N_ALLOW (sizeof ALLOW / sizeof ALLOW[0])

/* qf_pt_tensor_st copies shapes into qf_st_tensor. */
_Static_assert(QF_PT_MAX_DIMS == QF_ST_MAX_DIMS, "qf_pt_tensor and qf_st_tensor hold as many dims");

/* Preference among several nested dicts of tensors (by their key). */
static const char *const PREFERRED[] = { "state_dict", "model_state_dict", "model", "module",
                                         "network", "net", "params", "weights" };
#define N_PREFERRED (sizeof PREFERRED / sizeof PREFERRED[0])

/* =====================================================================
 * Reader state
 * ===================================================================== */

typedef struct pt_storage {
    char *key;             /* owned */
    const char *type_name; /* "FloatStorage", "UntypedStorage" (static) */
    qf_dtype dtype;        /* element type; U8 for untyped storages */
    int untyped;
    uint64_t numel;        /* elements of dtype */
    uint64_t nbytes;
    const uint8_t *data;   /* in the file */
    uint64_t offset;       /* absolute file offset of data */
    int64_t entry;         /* zip member */
    int used;              /* a listed tensor views it */
} pt_storage;

typedef struct pt_file {
    char *path;
    qf_map *map;           /* NULL over a caller's buffer */
    const uint8_t *base;
    uint64_t size;
    qf_zip *zip;
    char *root;
    char *dict_path;
    int protocol, version;
    uint64_t skipped;
    pt_storage *storages;
    uint32_t n_storages;
    uint8_t **owned;       /* materialized copies */
    size_t n_owned;
    uint64_t owned_bytes;
} pt_file;

struct qf_pt {
    pt_file *files;
    uint32_t n_files;
    qf_pt_tensor *tensors;
    qf_st_tensor *st;      /* the same tensors as qf_st_tensor */
    int64_t n_tensors, cap_tensors;
    int64_t *by_name;
    qf_pt_global *globals;
    int64_t n_globals, cap_globals;
    char *index_path;
};

/* One tensor rebuild, checked. */
typedef struct pt_view {
    uint32_t storage;
    qf_dtype dtype;
    uint32_t n_dims;
    uint64_t shape[QF_PT_MAX_DIMS];
    int64_t stride[QF_PT_MAX_DIMS];
    uint64_t offset;       /* storage offset, elements */
    uint64_t n_elements, nbytes;
    int contiguous;
    const uint8_t *data;   /* set in step 7 */
    int materialized;
    int64_t first_tensor;  /* index of the first listed tensor with this view */
} pt_view;

/* Work space for one file. */
typedef struct pt_ctx {
    qf_pt *pt;
    uint32_t fi;
    pt_file *f;
    const char *path;
    char pkl_name[1024];   /* "<path>: data.pkl" */
    qf_pkl *pkl;
    uint32_t n_objs;
    int32_t *storage_of;   /* per object id: storage index, or -1 */
    int32_t *view_of;      /* per object id: view index, or -1 */
    int32_t *name_of;      /* per object id: the dict pair that names it, or -1 */
    pt_view *views;
    uint32_t n_views, cap_views;
    int32_t *key_slots;    /* open addressing: storage index + 1, or 0 */
    uint32_t cap_slots;    /* a power of two, > 2 x storages */
    qf_pkl_id dict;        /* the state dict */
    qf_err *err;
} pt_ctx;

/* =====================================================================
 * Small helpers
 * ===================================================================== */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

static const char *shape_str(char *buf, size_t cap, uint32_t n, const uint64_t *v)
{
    size_t used = 0;
    uint32_t i;

    used += (size_t)snprintf(buf, cap, "[");
    for (i = 0; i < n && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%" PRIu64, i ? ", " : "", v[i]);
    if (used < cap)
        snprintf(buf + used, cap - used, "]");
    return buf;
}

static const char *stride_str(char *buf, size_t cap, uint32_t n, const int64_t *v)
{
    size_t used = 0;
    uint32_t i;

    used += (size_t)snprintf(buf, cap, "[");
    for (i = 0; i < n && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%" PRId64, i ? ", " : "", v[i]);
    if (used < cap)
        snprintf(buf + used, cap - used, "]");
    return buf;
}

static const qf_pkl_obj *obj(const pt_ctx *c, qf_pkl_id id) { return qf_pkl_get(c->pkl, id); }

static const qf_pkl_global *global_of(const pt_ctx *c, const qf_pkl_obj *o)
{
    return qf_pkl_global_at(c->pkl, o->global);
}

/* The tag of a GLOBAL object, or 0 if `id` is not a GLOBAL. */
static int tag_of(const pt_ctx *c, qf_pkl_id id)
{
    const qf_pkl_obj *o = obj(c, id);
    return o && o->kind == QF_PKL_GLOBAL ? global_of(c, o)->tag : 0;
}

static const char *kind_of(const pt_ctx *c, qf_pkl_id id)
{
    const qf_pkl_obj *o = obj(c, id);
    return o ? qf_pkl_kind_name(o->kind) : "nothing";
}

/* "<path>: data.pkl: byte N: <msg>" */
static int pkl_fail(pt_ctx *c, int code, uint64_t at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int pkl_fail(pt_ctx *c, int code, uint64_t at, const char *fmt, ...)
{
    char msg[QF_ERR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qf_err_set(c->err, code, "%s: byte %" PRIu64 ": %s", c->pkl_name, at, msg);
}

/* A tensor rebuild refused: names the tensor when the state dict does. */
static int call_fail(pt_ctx *c, qf_pkl_id call, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int call_fail(pt_ctx *c, qf_pkl_id call, int code, const char *fmt, ...)
{
    const qf_pkl_obj *o = obj(c, call);
    const qf_pkl_global *g = global_of(c, o);
    char msg[QF_ERR_MSG_MAX], nm[4 * QF_ERR_SHOW + 8];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->name_of[call] >= 0) {
        const qf_pkl_obj *d = obj(c, c->dict);
        const qf_pkl_obj *k = obj(c, d->items[2 * (uint32_t)c->name_of[call]]);
        return qf_err_set(c->err, code, "%s: tensor \"%s\": %s.%s (data.pkl byte %" PRIu64 "): %s",
                          c->path, qf_err_show(nm, sizeof nm, k->s, k->len), g->module, g->name, o->offset,
                          msg);
    }
    return qf_err_set(c->err, code, "%s: byte %" PRIu64 ": %s.%s: %s", c->pkl_name, o->offset,
                      g->module, g->name, msg);
}

/* =====================================================================
 * Close and accessors' helpers
 * ===================================================================== */

static void file_free(pt_file *f)
{
    uint32_t i;
    size_t k;

    for (i = 0; i < f->n_storages; i++)
        free(f->storages[i].key);
    free(f->storages);
    for (k = 0; k < f->n_owned; k++)
        free(f->owned[k]);
    free(f->owned);
    qf_zip_close(f->zip);
    qf_map_close(f->map);
    free(f->root);
    free(f->dict_path);
    free(f->path);
}

void qf_pt_close(qf_pt *pt)
{
    int64_t i;
    uint32_t f;

    if (!pt)
        return;
    for (i = 0; i < pt->n_tensors; i++)
        free((char *)pt->tensors[i].name);
    free(pt->tensors);
    free(pt->st);
    for (f = 0; f < pt->n_files; f++)
        file_free(&pt->files[f]);
    free(pt->files);
    free(pt->by_name);
    free(pt->globals);
    free(pt->index_path);
    free(pt);
}

static int add_file(qf_pt *pt, const char *path, qf_err *err)
{
    pt_file *f = realloc(pt->files, (pt->n_files + 1) * sizeof *f);

    if (!f)
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
    pt->files = f;
    f = &pt->files[pt->n_files];
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    if (!f->path)
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
    return (int)pt->n_files++;
}

/* =====================================================================
 * Steps 1-2: the archive
 * ===================================================================== */

/* A small member (version, byteorder) read whole; *data borrowed. */
static int small_member(pt_ctx *c, const char *rel, const uint8_t **data, uint64_t *n, int *found)
{
    char name[1024];
    int64_t i;
    int rc;

    *found = 0;
    snprintf(name, sizeof name, "%s/%s", c->f->root, rel);
    i = qf_zip_find(c->f->zip, name);
    if (i < 0)
        return 0;
    *found = 1;
    if ((rc = qf_zip_stored_data(c->f->zip, i, data, n, c->err)) != 0 ||
        (rc = qf_zip_check_crc(c->f->zip, i, c->err)) != 0)
        return rc;
    return 0;
}

static int read_archive(pt_ctx *c, const uint8_t **pkl, uint64_t *pkl_len)
{
    pt_file *f = c->f;
    const qf_zip_entry *e;
    const uint8_t *d;
    uint64_t n, k;
    int64_t i, cnt;
    size_t rl;
    char name[1024];
    int found, found2 = 0, rc, v;

    if (f->size >= 4 && memcmp(f->base, "PK\003\004", 4) == 0) {
        /* the zip below */
    } else if (f->size >= 2 && f->base[0] == 0x80 && f->base[1] <= 5) {
        return qf_err_set(c->err, QF_EUNSUPPORTED,
                          "%s: a bare pickle: the legacy torch.save format (torch < 1.6, or "
                          "_use_new_zipfile_serialization=False) is not supported; re-save it with a current torch",
                          c->path);
    } else if (f->size >= 262 && memcmp(f->base + 257, "ustar", 5) == 0) {
        return qf_err_set(c->err, QF_EUNSUPPORTED,
                          "%s: a tar archive: the legacy (torch < 0.4) checkpoint format is not supported",
                          c->path);
    } else {
        return qf_err_set(c->err, QF_EFORMAT,
                          "%s: not a PyTorch checkpoint (no zip local header \"PK\\3\\4\" at the start)",
                          c->path);
    }
    if ((rc = qf_zip_open_buffer(f->base, f->size, c->path, &f->zip, c->err)) != 0)
        return rc;
    cnt = qf_zip_count(f->zip);
    if (cnt == 0)
        return qf_err_set(c->err, QF_EFORMAT, "%s: the zip archive is empty", c->path);

    /* The root folder: the first member's first component, shared by all. */
    e = qf_zip_entry_at(f->zip, 0);
    {
        const char *slash = strchr(e->name, '/');
        char shown[4 * QF_ERR_SHOW + 8];
        if (!slash)
            return qf_err_set(c->err, QF_EFORMAT,
                              "%s: member \"%s\" is not inside a folder (torch writes <root>/data.pkl)",
                              c->path, qf_err_show(shown, sizeof shown, e->name, strlen(e->name)));
        rl = (size_t)(slash - e->name);
        if (rl + 64 > sizeof name)
            return qf_err_set(c->err, QF_ELIMIT, "%s: archive folder name of %zu bytes is too long",
                              c->path, rl);
        f->root = malloc(rl + 1);
        if (!f->root)
            return qf_err_set(c->err, QF_ENOMEM, "%s: out of memory", c->path);
        memcpy(f->root, e->name, rl);
        f->root[rl] = '\0';
    }
    for (i = 1; i < cnt; i++) {
        e = qf_zip_entry_at(f->zip, i);
        if (strncmp(e->name, f->root, rl) != 0 || e->name[rl] != '/') {
            char a[4 * QF_ERR_SHOW + 8], b[4 * QF_ERR_SHOW + 8];
            return qf_err_set(c->err, QF_EFORMAT,
                              "%s: member \"%s\" is outside the archive folder \"%s\"", c->path,
                              qf_err_show(a, sizeof a, e->name, strlen(e->name)),
                              qf_err_show(b, sizeof b, f->root, rl));
        }
    }
    snprintf(name, sizeof name, "%s/constants.pkl", f->root);
    if (qf_zip_find(f->zip, name) >= 0)
        return qf_err_set(c->err, QF_EUNSUPPORTED,
                          "%s: a TorchScript archive (torch.jit.save: constants.pkl, code/) is not a state dict",
                          c->path);

    /* byteorder (optional): little only. */
    if ((rc = small_member(c, "byteorder", &d, &n, &found)) != 0)
        return rc;
    if (found) {
        if (n == 3 && memcmp(d, "big", 3) == 0)
            return qf_err_set(c->err, QF_EUNSUPPORTED,
                              "%s: byteorder is \"big\": big-endian checkpoints are not supported",
                              c->path);
        if (n != 6 || memcmp(d, "little", 6) != 0) {
            char shown[4 * QF_ERR_SHOW + 8];
            return qf_err_set(c->err, QF_EFORMAT, "%s: byteorder is \"%s\", not \"little\" or \"big\"",
                              c->path, qf_err_show(shown, sizeof shown, (const char *)d, n));
        }
    }

    /* version or .data/version: a decimal number. */
    if ((rc = small_member(c, "version", &d, &n, &found)) != 0)
        return rc;
    if (!found && (rc = small_member(c, ".data/version", &d, &n, &found2)) != 0)
        return rc;
    if (!found && !found2)
        return qf_err_set(c->err, QF_EFORMAT, "%s: no member \"%s/version\" (not a torch.save archive?)",
                          c->path, f->root);
    v = 0;
    for (k = 0; k < n && d[k] >= '0' && d[k] <= '9' && v < 100000; k++)
        v = v * 10 + (d[k] - '0');
    if (k == 0 || v == 0 || v >= 100000 || (k < n && !(k + 1 == n && d[k] == '\n'))) {
        char shown[4 * QF_ERR_SHOW + 8];
        return qf_err_set(c->err, QF_EFORMAT, "%s: version is \"%s\", not a positive number",
                          c->path, qf_err_show(shown, sizeof shown, (const char *)d, n));
    }
    f->version = v;

    /* data.pkl */
    snprintf(name, sizeof name, "%s/data.pkl", f->root);
    i = qf_zip_find(f->zip, name);
    if (i < 0)
        return qf_err_set(c->err, QF_EFORMAT, "%s: no member \"%s\"", c->path, name);
    if ((rc = qf_zip_stored_data(f->zip, i, pkl, pkl_len, c->err)) != 0 ||
        (rc = qf_zip_check_crc(f->zip, i, c->err)) != 0)
        return rc;
    return 0;
}

/* =====================================================================
 * Step 4: storages
 * ===================================================================== */

static int storage_key_ok(const char *s, uint64_t n)
{
    uint64_t i;

    if (n == 0 || n > 200 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return 0;
    }
    return 1;
}

/* Storage keys -> storages: a hash table, so that many storages (or many
 * persistent ids naming one) cost linear time. */
static uint32_t key_slot(const pt_ctx *c, const char *key)
{
    uint32_t h = 2166136261u, mask = c->cap_slots - 1, at;
    const unsigned char *k;

    for (k = (const unsigned char *)key; *k; k++)
        h = (h ^ *k) * 16777619u;
    for (at = h & mask;; at = (at + 1) & mask) {
        int32_t v = c->key_slots[at];
        if (v == 0 || strcmp(c->f->storages[v - 1].key, key) == 0)
            return at;
    }
}

/* Keep the table under half full (room for one more storage). */
static int grow_slots(pt_ctx *c)
{
    uint32_t cap = c->cap_slots ? c->cap_slots : 64, i;
    int32_t *ns;

    while ((uint64_t)(c->f->n_storages + 1) * 2 > cap)
        cap *= 2;
    if (cap == c->cap_slots)
        return 0;
    ns = calloc(cap, sizeof *ns);
    if (!ns)
        return qf_err_set(c->err, QF_ENOMEM, "%s: out of memory", c->path);
    free(c->key_slots);
    c->key_slots = ns;
    c->cap_slots = cap;
    for (i = 0; i < c->f->n_storages; i++)
        c->key_slots[key_slot(c, c->f->storages[i].key)] = (int32_t)i + 1;
    return 0;
}

static int do_persid(pt_ctx *c, qf_pkl_id id)
{
    const qf_pkl_obj *p = obj(c, id), *t = obj(c, p->arg), *it[5];
    pt_file *f = c->f;
    pt_storage *s;
    const qf_pkl_global *g;
    char key[256], member[1024], shown[4 * QF_ERR_SHOW + 8];
    uint64_t esz, need, size;
    const uint8_t *data;
    int64_t e;
    uint32_t i, slot;
    int tag, rc;

    if (!t || t->kind != QF_PKL_TUPLE)
        return pkl_fail(c, QF_EFORMAT, p->offset,
                        "persistent id is a %s, not a (\"storage\", type, key, location, numel) tuple",
                        kind_of(c, p->arg));
    if (t->n != 5)
        return pkl_fail(c, QF_EFORMAT, p->offset,
                        "persistent id is a tuple of %" PRIu32 " items, not (\"storage\", type, key, location, numel)",
                        t->n);
    for (i = 0; i < 5; i++)
        it[i] = obj(c, t->items[i]);
    if (it[0]->kind != QF_PKL_STR || it[0]->len != 7 || memcmp(it[0]->s, "storage", 7) != 0)
        return pkl_fail(c, QF_EFORMAT, p->offset, "persistent id does not start with \"storage\"");
    tag = tag_of(c, t->items[1]);
    if (TAG_KIND(tag) == K_BAD_STORAGE) {
        g = global_of(c, it[1]);
        return pkl_fail(c, QF_EUNSUPPORTED, p->offset, "storage type %s.%s is not supported",
                        g->module, g->name);
    }
    if (TAG_KIND(tag) != K_STORAGE && TAG_KIND(tag) != K_UNTYPED)
        return pkl_fail(c, QF_EFORMAT, p->offset,
                        "persistent id's storage type is a %s, not a torch storage class",
                        it[1]->kind == QF_PKL_GLOBAL ? "global of another kind" : kind_of(c, t->items[1]));
    if (it[2]->kind != QF_PKL_STR || !storage_key_ok(it[2]->s, it[2]->len))
        return pkl_fail(c, QF_EFORMAT, p->offset,
                        "persistent id's storage key is not a plain name (letters, digits, _ . -)%s%s%s",
                        it[2]->kind == QF_PKL_STR ? ": \"" : "",
                        it[2]->kind == QF_PKL_STR ? qf_err_show(shown, sizeof shown, it[2]->s, it[2]->len) : "",
                        it[2]->kind == QF_PKL_STR ? "\"" : "");
    if (it[3]->kind != QF_PKL_STR)
        return pkl_fail(c, QF_EFORMAT, p->offset, "persistent id's location is a %s, not a str",
                        kind_of(c, t->items[3]));
    if (it[4]->kind != QF_PKL_INT || it[4]->i < 0)
        return pkl_fail(c, QF_EFORMAT, p->offset,
                        "persistent id's element count is %s, not an int >= 0",
                        it[4]->kind == QF_PKL_INT ? "negative" : kind_of(c, t->items[4]));
    memcpy(key, it[2]->s, (size_t)it[2]->len);
    key[it[2]->len] = '\0';
    g = global_of(c, it[1]);

    /* The same key again: it must say the same thing. */
    if ((rc = grow_slots(c)) != 0)
        return rc;
    slot = key_slot(c, key);
    if (c->key_slots[slot] > 0) {
        i = (uint32_t)c->key_slots[slot] - 1;
        s = &f->storages[i];
        if (strcmp(s->type_name, g->name) != 0 || s->numel != (uint64_t)it[4]->i)
            return pkl_fail(c, QF_EFORMAT, p->offset,
                            "storage \"%s\" is declared as %s of %" PRIu64 " and as %s of %" PRId64,
                            key, s->type_name, s->numel, g->name, it[4]->i);
        c->storage_of[id] = (int32_t)i;
        return 0;
    }

    snprintf(member, sizeof member, "%s/data/%s", f->root, key);
    e = qf_zip_find(f->zip, member);
    if (e < 0)
        return pkl_fail(c, QF_EFORMAT, p->offset, "storage \"%s\": no member \"%s\"", key, member);
    if ((rc = qf_zip_stored_data(f->zip, e, &data, &size, c->err)) != 0)
        return rc;
    esz = TAG_KIND(tag) == K_UNTYPED ? 1 : qf_dtype_size(TAG_DTYPE(tag));
    if ((uint64_t)it[4]->i > UINT64_MAX / esz)
        return pkl_fail(c, QF_ELIMIT, p->offset, "storage \"%s\": %" PRId64 " elements overflow",
                        key, it[4]->i);
    need = (uint64_t)it[4]->i * esz;
    if (need != size)
        return pkl_fail(c, QF_EFORMAT, p->offset,
                        "storage \"%s\": %s of %" PRId64 " elements needs %" PRIu64
                        " bytes, member \"%s\" holds %" PRIu64,
                        key, g->name, it[4]->i, need, member, size);
    if (f->n_storages >= (uint32_t)INT32_MAX)
        return pkl_fail(c, QF_ELIMIT, p->offset, "too many storages");
    if ((f->n_storages & (f->n_storages - 1)) == 0) { /* grow at powers of two */
        uint32_t cap = f->n_storages ? f->n_storages * 2 : 8;
        pt_storage *ns = realloc(f->storages, (size_t)cap * sizeof *ns);
        if (!ns)
            return qf_err_set(c->err, QF_ENOMEM, "%s: out of memory", c->path);
        f->storages = ns;
    }
    s = &f->storages[f->n_storages];
    memset(s, 0, sizeof *s);
    if (!(s->key = strdup(key)))
        return qf_err_set(c->err, QF_ENOMEM, "%s: out of memory", c->path);
    s->type_name = g->name;
    s->untyped = TAG_KIND(tag) == K_UNTYPED;
    s->dtype = s->untyped ? QF_DTYPE_U8 : TAG_DTYPE(tag);
    s->numel = (uint64_t)it[4]->i;
    s->nbytes = size;
    s->data = data;
    s->offset = qf_zip_entry_at(f->zip, e)->data_offset;
    s->entry = e;
    c->key_slots[slot] = (int32_t)f->n_storages + 1;
    c->storage_of[id] = (int32_t)f->n_storages++;
    return 0;
}

/* =====================================================================
 * Step 5: the state dict
 * ===================================================================== */

static int is_tensor(const pt_ctx *c, qf_pkl_id id)
{
    const qf_pkl_obj *o = obj(c, id);
    return o && o->kind == QF_PKL_CALL;
}

static uint32_t tensors_in(const pt_ctx *c, qf_pkl_id dict)
{
    const qf_pkl_obj *d = obj(c, dict);
    uint32_t i, n = 0;

    for (i = 0; i < d->n; i++)
        n += is_tensor(c, d->items[2 * i + 1]);
    return n;
}

typedef struct cand {
    qf_pkl_id dict;
    int32_t parent;   /* index in the BFS list, -1 for the root */
    qf_pkl_id key;    /* STR object naming it in its parent */
    uint32_t depth;
} cand;

/* "a/b/c" of candidate i into buf. */
static const char *cand_path(const pt_ctx *c, const cand *v, int32_t i, char *buf, size_t cap)
{
    int32_t chain[MAX_DICT_DEPTH + 1];
    int n = 0, j;
    size_t used = 0;
    char part[4 * QF_ERR_SHOW + 8];

    buf[0] = '\0';
    for (; i >= 0 && v[i].parent >= 0 && n <= MAX_DICT_DEPTH; i = v[i].parent)
        chain[n++] = i;
    for (j = n - 1; j >= 0 && used < cap; j--) {
        const qf_pkl_obj *k = obj(c, v[chain[j]].key);
        used += (size_t)snprintf(buf + used, cap - used, "%s%s", j == n - 1 ? "" : "/",
                                 qf_err_show(part, sizeof part, k->s, k->len));
    }
    return buf;
}

static int preference(const pt_ctx *c, const cand *v)
{
    const qf_pkl_obj *k = obj(c, v->key);
    size_t i;

    for (i = 0; i < N_PREFERRED; i++)
        if (k->len == strlen(PREFERRED[i]) && memcmp(k->s, PREFERRED[i], k->len) == 0)
            return (int)i;
    return (int)N_PREFERRED;
}

static int find_dict(pt_ctx *c)
{
    qf_pkl_id root = qf_pkl_root(c->pkl);
    const qf_pkl_obj *r = obj(c, root);
    cand *v = NULL;
    uint8_t *seen = NULL;
    size_t n = 0, cap = 0, head = 0, i;
    int32_t best = -1;
    uint32_t level = 0;
    char buf[QF_ERR_MSG_MAX], p1[256], p2[256];
    int rc = 0;

    if (r->kind == QF_PKL_CALL)
        return qf_err_set(c->err, QF_EUNSUPPORTED,
                          "%s: the checkpoint is a single tensor, not a dict of named tensors", c->path);
    if (r->kind != QF_PKL_DICT)
        return qf_err_set(c->err, QF_EFORMAT, "%s: the checkpoint holds a %s, not a dict of tensors",
                          c->path, qf_pkl_kind_name(r->kind));
    if (r->n == 0 || tensors_in(c, root) > 0) {
        c->dict = root;
        c->f->dict_path = strdup("");
        return c->f->dict_path ? 0 : qf_err_set(c->err, QF_ENOMEM, "%s: out of memory", c->path);
    }

    /* Breadth first over dicts under str keys; each dict visited once. */
    seen = calloc((size_t)c->n_objs + 1, 1);
    cap = 64;
    v = malloc(cap * sizeof *v);
    if (!seen || !v) {
        rc = qf_err_set(c->err, QF_ENOMEM, "%s: out of memory", c->path);
        goto done;
    }
    v[n++] = (cand){ root, -1, 0, 0 };
    seen[root] = 1;
    while (head < n) {
        cand cur = v[head];
        const qf_pkl_obj *d = obj(c, cur.dict);
        int32_t me = (int32_t)head++;

        if (cur.depth > level) {
            if (best >= 0)
                break; /* the shallowest level with a candidate decides */
            level = cur.depth;
        }
        if (cur.depth > 0 && tensors_in(c, cur.dict) > 0) {
            if (best < 0) {
                best = me;
            } else {
                int pb = preference(c, &v[best]), pm = preference(c, &cur);
                if (pm < pb) {
                    best = me;
                } else if (pm == pb) {
                    rc = qf_err_set(c->err, QF_EFORMAT,
                                    "%s: several dicts of tensors (\"%s\", \"%s\") and none is the state dict by name",
                                    c->path, cand_path(c, v, best, p1, sizeof p1),
                                    cand_path(c, v, me, p2, sizeof p2));
                    goto done;
                }
            }
            continue; /* a dict of tensors: not searched further */
        }
        if (cur.depth >= MAX_DICT_DEPTH)
            continue;
        for (i = 0; i < d->n; i++) {
            qf_pkl_id k = d->items[2 * i], val = d->items[2 * i + 1];
            const qf_pkl_obj *ko = obj(c, k), *vo = obj(c, val);
            if (ko->kind != QF_PKL_STR || vo->kind != QF_PKL_DICT || seen[val])
                continue;
            seen[val] = 1;
            if (n == cap) {
                cand *nv;
                cap *= 2;
                nv = realloc(v, cap * sizeof *nv);
                if (!nv) {
                    rc = qf_err_set(c->err, QF_ENOMEM, "%s: out of memory", c->path);
                    goto done;
                }
                v = nv;
            }
            v[n++] = (cand){ val, me, k, cur.depth + 1 };
        }
    }
    if (best < 0) {
        size_t used = 0;
        buf[0] = '\0';
        for (i = 0; i < r->n && i < 6 && used < 200; i++) {
            const qf_pkl_obj *k = obj(c, r->items[2 * i]);
            char part[4 * QF_ERR_SHOW + 8];
            used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%s", i ? ", " : "",
                                     k->kind == QF_PKL_STR ? qf_err_show(part, sizeof part, k->s, k->len)
                                                           : qf_pkl_kind_name(k->kind));
        }
        rc = qf_err_set(c->err, QF_EFORMAT, "%s: no dict of tensors in the checkpoint (top-level keys: %s%s)",
                        c->path, buf, r->n > 6 ? ", ..." : "");
        goto done;
    }
    c->dict = v[best].dict;
    c->f->dict_path = strdup(cand_path(c, v, best, buf, sizeof buf));
    if (!c->f->dict_path)
        rc = qf_err_set(c->err, QF_ENOMEM, "%s: out of memory", c->path);
done:
    free(seen);
    free(v);
    return rc;
}

/* =====================================================================
 * Step 6: tensor rebuilds
 * ===================================================================== */

static int arg_int(const pt_ctx *c, qf_pkl_id id, int64_t *v)
{
    const qf_pkl_obj *o = obj(c, id);
    if (!o || o->kind != QF_PKL_INT)
        return 0;
    *v = o->i;
    return 1;
}

/* A tuple (or list) of at most QF_PT_MAX_DIMS ints into v[]; returns the count
 * or -1 (not ints), -2 (too many). */
static int arg_ints(const pt_ctx *c, qf_pkl_id id, int64_t *v)
{
    const qf_pkl_obj *o = obj(c, id);
    uint32_t i;

    if (!o || (o->kind != QF_PKL_TUPLE && o->kind != QF_PKL_LIST))
        return -1;
    if (o->n > QF_PT_MAX_DIMS)
        return -2;
    for (i = 0; i < o->n; i++)
        if (!arg_int(c, o->items[i], &v[i]))
            return -1;
    return (int)o->n;
}

/* metadata: a dict of str -> bool; any true bit (neg, conj) changes values. */
static int check_metadata(pt_ctx *c, qf_pkl_id call, qf_pkl_id id)
{
    const qf_pkl_obj *m = obj(c, id);
    char nm[4 * QF_ERR_SHOW + 8];
    uint32_t i;

    if (m->kind == QF_PKL_NONE)
        return 0;
    if (m->kind != QF_PKL_DICT)
        return call_fail(c, call, QF_EFORMAT, "metadata is a %s, not a dict", qf_pkl_kind_name(m->kind));
    for (i = 0; i < m->n; i++) {
        const qf_pkl_obj *k = obj(c, m->items[2 * i]), *val = obj(c, m->items[2 * i + 1]);
        if (k->kind != QF_PKL_STR || val->kind != QF_PKL_BOOL)
            return call_fail(c, call, QF_EFORMAT, "metadata is not a dict of str to bool");
        if (val->i)
            return call_fail(c, call, QF_EUNSUPPORTED, "metadata sets \"%s\" (neg/conj views are not supported)",
                             qf_err_show(nm, sizeof nm, k->s, k->len));
    }
    return 0;
}

static int add_view(pt_ctx *c, const pt_view *v, int32_t *index)
{
    if (c->n_views == c->cap_views) {
        uint32_t cap = c->cap_views ? c->cap_views * 2 : 64;
        pt_view *nv = realloc(c->views, (size_t)cap * sizeof *nv);
        if (!nv)
            return qf_err_set(c->err, QF_ENOMEM, "%s: out of memory", c->path);
        c->views = nv;
        c->cap_views = cap;
    }
    c->views[c->n_views] = *v;
    *index = (int32_t)c->n_views++;
    return 0;
}

/*
 * A rebuild of kind `kind` (K_V1, K_V2, K_V3) with argument tuple `args`,
 * reached through CALL `call` (for messages): the view, checked.
 */
static int build_view(pt_ctx *c, qf_pkl_id call, int kind, qf_pkl_id args, int32_t *index)
{
    const qf_pkl_obj *a = obj(c, args);
    const pt_storage *s;
    pt_view v;
    int64_t off, size[QF_PT_MAX_DIMS], stride[QF_PT_MAX_DIMS];
    uint64_t esz, maxi, prod = 1, expect;
    char b1[256], b2[256];
    int n, ns, zero = 0, d, rc;
    uint32_t want_min = kind == K_V1 ? 4 : kind == K_V2 ? 6 : 7, want_max = kind == K_V1 ? 4 : want_min + 1;
    const qf_pkl_obj *st;

    memset(&v, 0, sizeof v);
    if (!a || a->kind != QF_PKL_TUPLE)
        return call_fail(c, call, QF_EFORMAT, "arguments are a %s, not a tuple", kind_of(c, args));
    if (a->n < want_min || a->n > want_max)
        return call_fail(c, call, QF_EFORMAT, "%" PRIu32 " arguments (%" PRIu32 "%s expected)", a->n,
                         want_min, want_max > want_min ? " or more" : "");
    st = obj(c, a->items[0]);
    if (st->kind != QF_PKL_PERSID || c->storage_of[a->items[0]] < 0)
        return call_fail(c, call, QF_EFORMAT, "storage is a %s, not a persistent storage id",
                         qf_pkl_kind_name(st->kind));
    v.storage = (uint32_t)c->storage_of[a->items[0]];
    s = &c->f->storages[v.storage];
    if (!arg_int(c, a->items[1], &off) || off < 0)
        return call_fail(c, call, QF_EFORMAT, "storage_offset is %s, not an int >= 0",
                         obj(c, a->items[1])->kind == QF_PKL_INT ? "negative" : kind_of(c, a->items[1]));
    n = arg_ints(c, a->items[2], size);
    if (n == -2)
        return call_fail(c, call, QF_ELIMIT, "size has %" PRIu32 " dims (at most %d are read)",
                         obj(c, a->items[2])->n, QF_PT_MAX_DIMS);
    if (n < 0)
        return call_fail(c, call, QF_EFORMAT, "size is not a tuple of ints");
    ns = arg_ints(c, a->items[3], stride);
    if (ns < 0)
        return call_fail(c, call, QF_EFORMAT, "stride is not a tuple of at most %d ints", QF_PT_MAX_DIMS);
    if (ns != n)
        return call_fail(c, call, QF_EFORMAT, "size has %d dims but stride %d", n, ns);
    if (kind != K_V1) {
        const qf_pkl_obj *rg = obj(c, a->items[4]), *hooks = obj(c, a->items[5]);
        if (rg->kind != QF_PKL_BOOL)
            return call_fail(c, call, QF_EFORMAT, "requires_grad is a %s, not a bool",
                             qf_pkl_kind_name(rg->kind));
        if (hooks->kind != QF_PKL_DICT)
            return call_fail(c, call, QF_EFORMAT, "backward_hooks is a %s, not a dict",
                             qf_pkl_kind_name(hooks->kind));
    }
    if (kind == K_V3) {
        int tag = tag_of(c, a->items[6]);
        if (TAG_KIND(tag) == K_BAD_DTYPE) {
            const qf_pkl_global *g = global_of(c, obj(c, a->items[6]));
            return call_fail(c, call, QF_EUNSUPPORTED, "dtype torch.%s is not supported", g->name);
        }
        if (TAG_KIND(tag) != K_DTYPE)
            return call_fail(c, call, QF_EFORMAT, "dtype is a %s, not a torch dtype", kind_of(c, a->items[6]));
        v.dtype = TAG_DTYPE(tag);
        if (!s->untyped && s->dtype != v.dtype)
            return call_fail(c, call, QF_EFORMAT, "dtype %s disagrees with storage \"%s\" (%s)",
                             qf_dtype_name(v.dtype), s->key, s->type_name);
        if (a->n == 8 && (rc = check_metadata(c, call, a->items[7])) != 0)
            return rc;
    } else {
        if (s->untyped)
            return call_fail(c, call, QF_EFORMAT, "storage \"%s\" is untyped and no dtype is given", s->key);
        v.dtype = s->dtype;
        if (kind == K_V2 && a->n == 7 && (rc = check_metadata(c, call, a->items[6])) != 0)
            return rc;
    }
    esz = qf_dtype_size(v.dtype);

    /* Shape, element count, bounds. */
    v.n_dims = (uint32_t)n;
    v.offset = (uint64_t)off;
    maxi = (uint64_t)off;
    for (d = 0; d < n; d++) {
        if (size[d] < 0)
            return call_fail(c, call, QF_EFORMAT, "size[%d] is negative (%" PRId64 ")", d, size[d]);
        if (stride[d] < 0)
            return call_fail(c, call, QF_EFORMAT, "stride[%d] is negative (%" PRId64 ")", d, stride[d]);
        v.shape[d] = (uint64_t)size[d];
        v.stride[d] = stride[d];
        if (size[d] == 0) {
            zero = 1;
            continue;
        }
        if (prod > UINT64_MAX / (uint64_t)size[d])
            return call_fail(c, call, QF_ELIMIT, "size %s overflows 64 bits",
                             shape_str(b1, sizeof b1, (uint32_t)n, v.shape));
        prod *= (uint64_t)size[d];
    }
    if (prod > UINT64_MAX / esz)
        return call_fail(c, call, QF_ELIMIT, "size %s of %s overflows 64 bits",
                         shape_str(b1, sizeof b1, (uint32_t)n, v.shape), qf_dtype_name(v.dtype));
    v.n_elements = zero ? 0 : prod;
    v.nbytes = v.n_elements * esz;
    if (v.n_elements == 0) {
        if (v.offset > s->nbytes / esz)
            return call_fail(c, call, QF_EFORMAT,
                             "storage_offset %" PRIu64 " is past the end of storage \"%s\" (%" PRIu64 " bytes)",
                             v.offset, s->key, s->nbytes);
        v.contiguous = 1;
    } else {
        int bad = 0;
        for (d = 0; d < n; d++) {
            uint64_t span = v.shape[d] - 1, st_ = (uint64_t)v.stride[d];
            if (st_ != 0 && span > UINT64_MAX / st_) {
                bad = 1;
                break;
            }
            if (maxi > UINT64_MAX - span * st_) {
                bad = 1;
                break;
            }
            maxi += span * st_;
        }
        if (bad || maxi >= s->nbytes / esz)
            return call_fail(c, call, QF_EFORMAT,
                             "the view (offset %" PRIu64 ", size %s, stride %s) reaches past storage \"%s\" (%s of %" PRIu64 " bytes)",
                             v.offset, shape_str(b1, sizeof b1, (uint32_t)n, v.shape),
                             stride_str(b2, sizeof b2, (uint32_t)n, v.stride), s->key, s->type_name,
                             s->nbytes);
        /* Row-major contiguous, ignoring size-1 dims (as torch's is_contiguous). */
        v.contiguous = 1;
        expect = 1;
        for (d = n - 1; d >= 0; d--) {
            if (v.shape[d] != 1 && (uint64_t)v.stride[d] != expect) {
                v.contiguous = 0;
                break;
            }
            expect *= v.shape[d];
        }
    }
    v.first_tensor = -1;
    return add_view(c, &v, index);
}

static int do_call(pt_ctx *c, qf_pkl_id id)
{
    const qf_pkl_obj *o = obj(c, id), *a = obj(c, o->arg);
    int kind = TAG_KIND(global_of(c, o)->tag);
    qf_pkl_id inner;
    int32_t vi;
    int rc;

    switch (kind) {
    case K_V1: case K_V2: case K_V3:
        if ((rc = build_view(c, id, kind, o->arg, &vi)) != 0)
            return rc;
        c->view_of[id] = vi;
        return 0;
    case K_PARAM: case K_PARAM_STATE:
        if (a->n != (kind == K_PARAM ? 3u : 4u))
            return call_fail(c, id, QF_EFORMAT, "%" PRIu32 " arguments (%u expected)", a->n,
                             kind == K_PARAM ? 3u : 4u);
        inner = a->items[0];
        if (!is_tensor(c, inner) || c->view_of[inner] < 0)
            return call_fail(c, id, QF_EFORMAT, "data is a %s, not a tensor", kind_of(c, inner));
        if (obj(c, a->items[1])->kind != QF_PKL_BOOL)
            return call_fail(c, id, QF_EFORMAT, "requires_grad is a %s, not a bool", kind_of(c, a->items[1]));
        if (obj(c, a->items[2])->kind != QF_PKL_DICT)
            return call_fail(c, id, QF_EFORMAT, "backward_hooks is a %s, not a dict", kind_of(c, a->items[2]));
        c->view_of[id] = c->view_of[inner];
        return 0;
    case K_FROM_TYPE: {
        int ik, ck;
        if (a->n != 4)
            return call_fail(c, id, QF_EFORMAT, "%" PRIu32 " arguments (4 expected)", a->n);
        ik = TAG_KIND(tag_of(c, a->items[0]));
        ck = TAG_KIND(tag_of(c, a->items[1]));
        if (ik != K_V1 && ik != K_V2 && ik != K_V3)
            return call_fail(c, id, QF_EFORMAT, "func is not a torch tensor rebuild function");
        if (ck != K_TENSOR_CLASS)
            return call_fail(c, id, QF_EFORMAT, "type is not torch.Tensor or torch.nn.Parameter");
        if ((rc = build_view(c, id, ik, a->items[2], &vi)) != 0)
            return rc;
        c->view_of[id] = vi;
        return 0;
    }
    default: /* only rebuilders are callable in the allow-list */
        return call_fail(c, id, QF_EFORMAT, "is not a tensor rebuild function");
    }
}

/* =====================================================================
 * Step 7: the tensors
 * ===================================================================== */

static int reserve_tensors(qf_pt *pt, int64_t more, const char *path, qf_err *err)
{
    int64_t need = pt->n_tensors + more, cap = pt->cap_tensors ? pt->cap_tensors : 64;
    qf_pt_tensor *t;

    if (need <= pt->cap_tensors)
        return 0;
    while (cap < need)
        cap *= 2;
    t = realloc(pt->tensors, (size_t)cap * sizeof *t);
    if (!t)
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
    pt->tensors = t;
    pt->cap_tensors = cap;
    return 0;
}

/* Copy the strided view into dst (n_elements > 0, bounds already checked). */
static void copy_view(uint8_t *dst, const uint8_t *src, const pt_view *v, size_t esz)
{
    uint64_t idx[QF_PT_MAX_DIMS] = { 0 }, outer, o, j, e, inner;
    uint32_t d, last;

    if (v->n_dims == 0) {
        memcpy(dst, src + v->offset * esz, esz);
        return;
    }
    last = v->n_dims - 1;
    inner = v->shape[last];
    outer = v->n_elements / inner;
    for (o = 0; o < outer; o++) {
        e = v->offset;
        for (d = 0; d < last; d++)
            e += idx[d] * (uint64_t)v->stride[d];
        if (v->stride[last] == 1) {
            memcpy(dst, src + e * esz, (size_t)(inner * esz));
            dst += inner * esz;
        } else {
            for (j = 0; j < inner; j++) {
                memcpy(dst, src + (e + j * (uint64_t)v->stride[last]) * esz, esz);
                dst += esz;
            }
        }
        for (d = last; d-- > 0;) {
            if (++idx[d] < v->shape[d])
                break;
            idx[d] = 0;
        }
    }
}

/* Give view vi its data: a pointer into the file, or an owned copy. */
static int place_view(pt_ctx *c, pt_view *v, const char *tname)
{
    pt_file *f = c->f;
    const pt_storage *s = &f->storages[v->storage];
    size_t esz = qf_dtype_size(v->dtype);
    uint64_t cap_view, cap_file;
    uint8_t *buf, **no;
    char nm[4 * QF_ERR_SHOW + 8];

    if (v->data || v->materialized)
        return 0;
    if (v->contiguous) {
        v->data = s->data + v->offset * esz;
        return 0;
    }
    cap_view = s->nbytes > (UINT64_MAX - OWN_SLACK_VIEW) / 4 ? UINT64_MAX : s->nbytes * 4 + OWN_SLACK_VIEW;
    cap_file = f->size > (UINT64_MAX - OWN_SLACK_FILE) / 4 ? UINT64_MAX : f->size * 4 + OWN_SLACK_FILE;
    if (v->nbytes > cap_view)
        return qf_err_set(c->err, QF_ELIMIT,
                          "%s: tensor \"%s\": its strided view would copy out %" PRIu64
                          " bytes from a storage of %" PRIu64 " (more than 4x: refused)",
                          c->path, qf_err_show(nm, sizeof nm, tname, strlen(tname)), v->nbytes, s->nbytes);
    if (v->nbytes > cap_file - f->owned_bytes)
        return qf_err_set(c->err, QF_ELIMIT,
                          "%s: tensor \"%s\": strided views would copy out more than %" PRIu64
                          " bytes in all (4x the file size + 16 MiB)",
                          c->path, qf_err_show(nm, sizeof nm, tname, strlen(tname)), cap_file);
    if (v->nbytes > SIZE_MAX)
        return qf_err_set(c->err, QF_ENOMEM, "%s: out of memory", c->path);
    no = realloc(f->owned, (f->n_owned + 1) * sizeof *no);
    if (!no)
        return qf_err_set(c->err, QF_ENOMEM, "%s: out of memory", c->path);
    f->owned = no;
    buf = malloc((size_t)v->nbytes);
    if (!buf)
        return qf_err_set(c->err, QF_ENOMEM, "%s: tensor \"%s\": out of memory (%" PRIu64 " bytes)",
                          c->path, qf_err_show(nm, sizeof nm, tname, strlen(tname)), v->nbytes);
    f->owned[f->n_owned++] = buf;
    f->owned_bytes += v->nbytes;
    copy_view(buf, s->data, v, esz);
    v->data = buf;
    v->materialized = 1;
    return 0;
}

static int cmp_view_key(const pt_view *a, const pt_view *b)
{
    uint32_t d;

    if (a->storage != b->storage)
        return a->storage < b->storage ? -1 : 1;
    if (a->offset != b->offset)
        return a->offset < b->offset ? -1 : 1;
    if (a->dtype != b->dtype)
        return a->dtype < b->dtype ? -1 : 1;
    if (a->n_dims != b->n_dims)
        return a->n_dims < b->n_dims ? -1 : 1;
    for (d = 0; d < a->n_dims; d++) {
        if (a->shape[d] != b->shape[d])
            return a->shape[d] < b->shape[d] ? -1 : 1;
        if (a->stride[d] != b->stride[d])
            return a->stride[d] < b->stride[d] ? -1 : 1;
    }
    return 0;
}

/*
 * Views with the same storage, offset, dtype, shape and strides are one
 * view: fold them together so tied weights share their data (and a strided
 * one is copied once). Rewrites view_of.
 */
static int fold_views(pt_ctx *c)
{
    uint32_t *ord = NULL, *rep = NULL, i, id;

    if (c->n_views < 2)
        return 0;
    ord = malloc((size_t)c->n_views * sizeof *ord);
    rep = malloc((size_t)c->n_views * sizeof *rep);
    if (!ord || !rep) {
        free(ord);
        free(rep);
        return qf_err_set(c->err, QF_ENOMEM, "%s: out of memory", c->path);
    }
    for (i = 0; i < c->n_views; i++)
        ord[i] = i;
    /* A merge sort: qsort has no context pointer, and readers may run on
     * several threads at once. */
    {
        uint32_t *tmp = malloc((size_t)c->n_views * sizeof *tmp), w, lo, mid, hi, x, y, k;
        if (!tmp) {
            free(ord);
            free(rep);
            return qf_err_set(c->err, QF_ENOMEM, "%s: out of memory", c->path);
        }
        for (w = 1; w < c->n_views; w *= 2) {
            for (lo = 0; lo < c->n_views; lo += 2 * w) {
                mid = lo + w < c->n_views ? lo + w : c->n_views;
                hi = lo + 2 * w < c->n_views ? lo + 2 * w : c->n_views;
                x = lo;
                y = mid;
                k = lo;
                while (x < mid && y < hi)
                    tmp[k++] = cmp_view_key(&c->views[ord[x]], &c->views[ord[y]]) <= 0 ? ord[x++] : ord[y++];
                while (x < mid)
                    tmp[k++] = ord[x++];
                while (y < hi)
                    tmp[k++] = ord[y++];
            }
            memcpy(ord, tmp, (size_t)c->n_views * sizeof *ord);
            if (w > UINT32_MAX / 2)
                break;
        }
        free(tmp);
    }
    for (i = 0; i < c->n_views; i++) {
        if (i > 0 && cmp_view_key(&c->views[ord[i - 1]], &c->views[ord[i]]) == 0)
            rep[ord[i]] = rep[ord[i - 1]];
        else
            rep[ord[i]] = ord[i];
    }
    for (id = 1; id <= c->n_objs; id++)
        if (c->view_of[id] >= 0)
            c->view_of[id] = (int32_t)rep[c->view_of[id]];
    free(ord);
    free(rep);
    return 0;
}

static int list_tensors(pt_ctx *c)
{
    qf_pt *pt = c->pt;
    const qf_pkl_obj *d = obj(c, c->dict);
    char nm[4 * QF_ERR_SHOW + 8];
    uint32_t i, k;
    int rc;

    if ((rc = reserve_tensors(pt, d->n, c->path, c->err)) != 0)
        return rc;
    for (i = 0; i < d->n; i++) {
        const qf_pkl_obj *key = obj(c, d->items[2 * i]);
        qf_pkl_id val = d->items[2 * i + 1];
        qf_pt_tensor *t;
        pt_view *v;
        char *name;

        if (!is_tensor(c, val)) {
            c->f->skipped++;
            continue;
        }
        if (key->kind != QF_PKL_STR)
            return pkl_fail(c, QF_EFORMAT, key->offset, "a tensor's key is a %s, not a str",
                            qf_pkl_kind_name(key->kind));
        if (key->len == 0)
            return pkl_fail(c, QF_EFORMAT, key->offset, "a tensor has an empty name");
        if (memchr(key->s, '\0', (size_t)key->len))
            return pkl_fail(c, QF_EFORMAT, key->offset, "tensor name \"%s\" holds a NUL byte",
                            qf_err_show(nm, sizeof nm, key->s, key->len));
        name = malloc((size_t)key->len + 1);
        if (!name)
            return qf_err_set(c->err, QF_ENOMEM, "%s: out of memory", c->path);
        memcpy(name, key->s, (size_t)key->len);
        name[key->len] = '\0';
        v = &c->views[c->view_of[val]];
        if ((rc = place_view(c, v, name)) != 0) {
            free(name);
            return rc;
        }
        t = &pt->tensors[pt->n_tensors];
        memset(t, 0, sizeof *t);
        t->name = name;
        t->dtype = v->dtype;
        t->n_dims = v->n_dims;
        for (k = 0; k < v->n_dims; k++) {
            t->shape[k] = v->shape[k];
            t->stride[k] = v->stride[k];
        }
        t->n_elements = v->n_elements;
        t->nbytes = v->nbytes;
        t->file = c->fi;
        t->offset = c->f->storages[v->storage].offset + v->offset * qf_dtype_size(v->dtype);
        t->data = v->data;
        t->storage = c->f->storages[v->storage].key;
        t->storage_offset = v->offset;
        t->materialized = v->materialized;
        t->same_as = v->first_tensor;
        if (v->first_tensor < 0)
            v->first_tensor = pt->n_tensors;
        c->f->storages[v->storage].used = 1;
        pt->n_tensors++;
    }
    return 0;
}

/* Add this file's GLOBALs to the checkpoint's list. */
static int merge_globals(pt_ctx *c)
{
    qf_pt *pt = c->pt;
    uint32_t i, n = qf_pkl_global_count(c->pkl);
    int64_t k;

    for (i = 0; i < n; i++) {
        const qf_pkl_global *g = qf_pkl_global_at(c->pkl, i);
        for (k = 0; k < pt->n_globals; k++)
            if (strcmp(pt->globals[k].module, g->module) == 0 && strcmp(pt->globals[k].name, g->name) == 0)
                break;
        if (k == pt->n_globals) {
            if (pt->n_globals == pt->cap_globals) {
                int64_t cap = pt->cap_globals ? pt->cap_globals * 2 : 16;
                qf_pt_global *ng = realloc(pt->globals, (size_t)cap * sizeof *ng);
                if (!ng)
                    return qf_err_set(c->err, QF_ENOMEM, "%s: out of memory", c->path);
                pt->globals = ng;
                pt->cap_globals = cap;
            }
            pt->globals[k].module = g->module;
            pt->globals[k].name = g->name;
            pt->globals[k].count = 0;
            pt->n_globals++;
        }
        pt->globals[k].count += g->count;
    }
    return 0;
}

/* Read file fi (already mapped or given) and append its tensors. */
static int parse_file(qf_pt *pt, uint32_t fi, qf_err *err)
{
    pt_ctx c;
    const uint8_t *pkl;
    uint64_t pkl_len;
    qf_pkl_id id;
    uint32_t i;
    int rc;

    memset(&c, 0, sizeof c);
    c.pt = pt;
    c.fi = fi;
    c.f = &pt->files[fi];
    c.path = c.f->path;
    c.err = err;
    snprintf(c.pkl_name, sizeof c.pkl_name, "%s: data.pkl", c.path);

    if ((rc = read_archive(&c, &pkl, &pkl_len)) != 0)
        goto done;
    if ((rc = qf_pkl_read(pkl, pkl_len, c.pkl_name, ALLOW, N_ALLOW, NULL, &c.pkl, err)) != 0)
        goto done;
    c.f->protocol = qf_pkl_protocol(c.pkl);
    if ((rc = merge_globals(&c)) != 0)
        goto done;
    c.n_objs = qf_pkl_count(c.pkl);
    c.storage_of = malloc(((size_t)c.n_objs + 1) * sizeof *c.storage_of);
    c.view_of = malloc(((size_t)c.n_objs + 1) * sizeof *c.view_of);
    c.name_of = malloc(((size_t)c.n_objs + 1) * sizeof *c.name_of);
    if (!c.storage_of || !c.view_of || !c.name_of) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", c.path);
        goto done;
    }
    for (id = 0; id <= c.n_objs; id++)
        c.storage_of[id] = c.view_of[id] = c.name_of[id] = -1;

    /* 4: storages, all of them. */
    for (id = 1; id <= c.n_objs; id++)
        if (obj(&c, id)->kind == QF_PKL_PERSID && (rc = do_persid(&c, id)) != 0)
            goto done;
    /* 5: the dict, and names for the messages of step 6. */
    if ((rc = find_dict(&c)) != 0)
        goto done;
    {
        const qf_pkl_obj *d = obj(&c, c.dict);
        for (i = 0; i < d->n; i++) {
            qf_pkl_id val = d->items[2 * i + 1];
            if (is_tensor(&c, val) && c.name_of[val] < 0 && obj(&c, d->items[2 * i])->kind == QF_PKL_STR)
                c.name_of[val] = (int32_t)i;
        }
        for (id = c.n_objs; id >= 1; id--) { /* wrappers name what they wrap */
            const qf_pkl_obj *o = obj(&c, id);
            if (o->kind == QF_PKL_CALL && c.name_of[id] >= 0) {
                int k = TAG_KIND(global_of(&c, o)->tag);
                const qf_pkl_obj *a = obj(&c, o->arg);
                if ((k == K_PARAM || k == K_PARAM_STATE) && a->n > 0 && is_tensor(&c, a->items[0]) &&
                    c.name_of[a->items[0]] < 0)
                    c.name_of[a->items[0]] = c.name_of[id];
            }
        }
    }
    /* 6: every tensor rebuild, in the order made (wrapped ones first). */
    for (id = 1; id <= c.n_objs; id++)
        if (obj(&c, id)->kind == QF_PKL_CALL && (rc = do_call(&c, id)) != 0)
            goto done;
    /* 7 */
    if ((rc = fold_views(&c)) != 0)
        goto done;
    rc = list_tensors(&c);
done:
    free(c.storage_of);
    free(c.view_of);
    free(c.name_of);
    free(c.views);
    free(c.key_slots);
    qf_pkl_free(c.pkl);
    return rc;
}

/* =====================================================================
 * Opening: one file, a buffer, an index, a folder
 * ===================================================================== */

static int cmp_tensor_name(const qf_pt *pt, int64_t a, int64_t b)
{
    return strcmp(pt->tensors[a].name, pt->tensors[b].name);
}

/* Name index (merge sort: no global state); duplicates are an error. Also
 * builds the qf_st_tensor mirror. */
static int finish(qf_pt *pt, qf_err *err)
{
    int64_t n = pt->n_tensors, i, w, *tmp;

    if (n == 0)
        return 0;
    pt->by_name = malloc((size_t)n * sizeof *pt->by_name);
    tmp = malloc((size_t)n * sizeof *tmp);
    pt->st = calloc((size_t)n, sizeof *pt->st);
    if (!pt->by_name || !tmp || !pt->st) {
        free(tmp);
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    }
    for (i = 0; i < n; i++)
        pt->by_name[i] = i;
    for (w = 1; w < n; w *= 2) {
        int64_t lo;
        for (lo = 0; lo < n; lo += 2 * w) {
            int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int64_t x = lo, y = mid, k = lo;
            while (x < mid && y < hi)
                tmp[k++] = cmp_tensor_name(pt, pt->by_name[x], pt->by_name[y]) <= 0 ? pt->by_name[x++]
                                                                                     : pt->by_name[y++];
            while (x < mid)
                tmp[k++] = pt->by_name[x++];
            while (y < hi)
                tmp[k++] = pt->by_name[y++];
        }
        memcpy(pt->by_name, tmp, (size_t)n * sizeof *tmp);
    }
    free(tmp);
    for (i = 1; i < n; i++) {
        const qf_pt_tensor *a = &pt->tensors[pt->by_name[i - 1]], *b = &pt->tensors[pt->by_name[i]];
        if (strcmp(a->name, b->name) == 0) {
            char nm[4 * QF_ERR_SHOW + 8];
            qf_err_show(nm, sizeof nm, b->name, strlen(b->name));
            if (a->file == b->file)
                return qf_err_set(err, QF_EFORMAT, "%s: duplicate tensor \"%s\"",
                                  pt->files[b->file].path, nm);
            return qf_err_set(err, QF_EFORMAT, "%s: tensor \"%s\" is also in %s",
                              pt->files[b->file].path, nm, pt->files[a->file].path);
        }
    }
    for (i = 0; i < n; i++) {
        const qf_pt_tensor *t = &pt->tensors[i];
        qf_st_tensor *s = &pt->st[i];
        uint32_t d;
        s->name = t->name;
        s->dtype = t->dtype;
        s->n_dims = t->n_dims;
        for (d = 0; d < t->n_dims && d < QF_ST_MAX_DIMS; d++)
            s->shape[d] = t->shape[d];
        s->n_elements = t->n_elements;
        s->nbytes = t->nbytes;
        s->file = t->file;
        s->offset = t->offset;
        s->data = t->data;
    }
    return 0;
}

static int map_file(qf_pt *pt, const char *path, uint32_t *fi, qf_err *err)
{
    int k = add_file(pt, path, err);
    pt_file *f;

    if (k < 0)
        return k;
    f = &pt->files[k];
    if ((k = qf_map_open(path, &f->map, err)) != 0)
        return k;
    f->base = qf_map_data(f->map);
    f->size = qf_map_size(f->map);
    *fi = pt->n_files - 1;
    return 0;
}

static int open_single(const char *path, qf_pt **out, qf_err *err)
{
    qf_pt *pt = calloc(1, sizeof *pt);
    uint32_t fi;
    int rc;

    if (!pt)
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
    if ((rc = map_file(pt, path, &fi, err)) != 0 || (rc = parse_file(pt, fi, err)) != 0)
        goto done;
    rc = finish(pt, err);
done:
    if (rc != 0) {
        qf_pt_close(pt);
        pt = NULL;
    }
    *out = pt;
    return rc;
}

int qf_pt_open_buffer(const void *buf, uint64_t size, const char *name, qf_pt **out, qf_err *err)
{
    qf_pt *pt;
    int rc;

    if (!name)
        name = "<buffer>";
    if (!out)
        return qf_err_set(err, QF_EINVAL, "%s: no output handle", name);
    *out = NULL;
    if (!buf && size > 0)
        return qf_err_set(err, QF_EINVAL, "%s: NULL buffer", name);
    pt = calloc(1, sizeof *pt);
    if (!pt)
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", name);
    if ((rc = add_file(pt, name, err)) < 0)
        goto done;
    pt->files[0].base = buf;
    pt->files[0].size = size;
    if ((rc = parse_file(pt, 0, err)) != 0)
        goto done;
    rc = finish(pt, err);
done:
    if (rc != 0) {
        qf_pt_close(pt);
        pt = NULL;
    }
    *out = pt;
    return rc;
}

/* ---- sharded -------------------------------------------------------- */

static int open_index(const char *index_path, qf_pt **out, qf_err *err)
{
    qf_pt *pt = NULL;
    qf_map *im = NULL;
    char *text = NULL;
    cJSON *root = NULL;
    qf_shard_index *ix = NULL;
    size_t i;
    uint64_t size;
    int rc = 0;

    *out = NULL;
    pt = calloc(1, sizeof *pt);
    if (!pt || !(pt->index_path = strdup(index_path))) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", index_path);
        goto done;
    }
    if ((rc = qf_map_open(index_path, &im, err)) != 0)
        goto done;
    size = qf_map_size(im);
    if (size > MAX_INDEX) {
        rc = qf_err_set(err, QF_ELIMIT, "%s: %" PRIu64 " bytes, over the %u-byte limit for an index",
                        index_path, size, MAX_INDEX);
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
    if (memchr(text, '\0', (size_t)size)) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: holds a NUL byte", index_path);
        goto done;
    }
    root = cJSON_ParseWithLength(text, (size_t)size);
    if (!root || !cJSON_IsObject(root)) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: not a JSON object", index_path);
        goto done;
    }
    if ((rc = qf_shard_index_build(index_path, root, &ix, err)) != 0)
        goto done;
    for (i = 0; i < qf_shard_index_count(ix); i++) {
        uint32_t fi;
        int64_t k, first = pt->n_tensors;

        if ((rc = map_file(pt, qf_shard_index_path(ix, i), &fi, err)) != 0 ||
            (rc = parse_file(pt, fi, err)) != 0)
            goto done;
        for (k = first; k < pt->n_tensors; k++)
            if ((rc = qf_shard_index_claim(ix, pt->tensors[k].name, i, err)) != 0)
                goto done;
    }
    if ((rc = qf_shard_index_check_all(ix, err)) != 0)
        goto done;
    rc = finish(pt, err);
done:
    if (rc != 0) {
        qf_pt_close(pt);
        pt = NULL;
    }
    *out = pt;
    qf_shard_index_free(ix);
    cJSON_Delete(root);
    free(text);
    qf_map_close(im);
    return rc;
}

/* ---- folders -------------------------------------------------------- */

/* A trainer's side file, never the model. */
static int side_file(const char *name)
{
    return strcmp(name, "training_args.bin") == 0 || strcmp(name, "optimizer.pt") == 0 ||
           strcmp(name, "scheduler.pt") == 0 || strcmp(name, "scaler.pt") == 0 ||
           strncmp(name, "rng_state", 9) == 0;
}

static int open_folder(const char *dir, qf_pt **out, qf_err *err)
{
    static const char *const idx_suffix[] = { ".bin.index.json" };
    static const char *const ck_suffix[] = { ".bin", ".pt", ".pth" };
    char **idx = NULL, **files = NULL, *path = NULL;
    size_t n_idx = 0, n_files = 0;
    char list[QF_ERR_MSG_MAX / 2];
    int rc;

    *out = NULL;
    if (!(path = qf_path_join(dir, QF_PT_INDEX_NAME)))
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", dir);
    if (qf_path_is_regular(path)) {
        rc = open_index(path, out, err);
        goto done;
    }
    free(path);
    path = NULL;
    if ((rc = qf_folder_list(dir, idx_suffix, 1, NULL, &idx, &n_idx, err)) != 0)
        goto done;
    if (n_idx > 1) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: %zu index files and no " QF_PT_INDEX_NAME ": %s", dir,
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
    if (!(path = qf_path_join(dir, "pytorch_model.bin"))) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", dir);
        goto done;
    }
    if (qf_path_is_regular(path)) {
        rc = open_single(path, out, err);
        goto done;
    }
    free(path);
    path = NULL;
    if ((rc = qf_folder_list(dir, ck_suffix, 3, side_file, &files, &n_files, err)) != 0)
        goto done;
    if (n_files == 0) {
        rc = qf_err_set(err, QF_ENOTFOUND, "%s: no PyTorch checkpoint (.bin, .pt, .pth)", dir);
        goto done;
    }
    if (n_files > 1) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: %zu checkpoint files and no " QF_PT_INDEX_NAME ": %s",
                        dir, n_files, qf_folder_names_join(list, sizeof list, files, n_files));
        goto done;
    }
    if (!(path = qf_path_join(dir, files[0]))) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", dir);
        goto done;
    }
    rc = open_single(path, out, err);
done:
    free(path);
    qf_folder_names_free(idx, n_idx);
    qf_folder_names_free(files, n_files);
    return rc;
}

int qf_pt_open(const char *path, qf_pt **out, qf_err *err)
{
    struct stat sb;

    if (!out)
        return qf_err_set(err, QF_EINVAL, "qf_pt_open: no output handle");
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

/* =====================================================================
 * Accessors
 * ===================================================================== */

int64_t qf_pt_tensor_count(const qf_pt *pt) { return pt ? pt->n_tensors : 0; }

const qf_pt_tensor *qf_pt_tensor_at(const qf_pt *pt, int64_t i)
{
    return pt && i >= 0 && i < pt->n_tensors ? &pt->tensors[i] : NULL;
}

const qf_st_tensor *qf_pt_tensor_st(const qf_pt *pt, int64_t i)
{
    return pt && i >= 0 && i < pt->n_tensors ? &pt->st[i] : NULL;
}

int64_t qf_pt_find(const qf_pt *pt, const char *name)
{
    int64_t lo = 0, hi;

    if (!pt || !name)
        return -1;
    hi = pt->n_tensors;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int r = strcmp(pt->tensors[pt->by_name[mid]].name, name);
        if (r == 0)
            return pt->by_name[mid];
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

uint32_t qf_pt_file_count(const qf_pt *pt) { return pt ? pt->n_files : 0; }

const char *qf_pt_file_path(const qf_pt *pt, uint32_t file)
{
    return pt && file < pt->n_files ? pt->files[file].path : NULL;
}

uint64_t qf_pt_file_size(const qf_pt *pt, uint32_t file)
{
    return pt && file < pt->n_files ? pt->files[file].size : 0;
}

const char *qf_pt_index_path(const qf_pt *pt) { return pt ? pt->index_path : NULL; }

const char *qf_pt_file_root(const qf_pt *pt, uint32_t file)
{
    return pt && file < pt->n_files ? pt->files[file].root : NULL;
}

const char *qf_pt_file_dict_path(const qf_pt *pt, uint32_t file)
{
    return pt && file < pt->n_files ? pt->files[file].dict_path : NULL;
}

int qf_pt_file_protocol(const qf_pt *pt, uint32_t file)
{
    return pt && file < pt->n_files ? pt->files[file].protocol : 0;
}

int qf_pt_file_version(const qf_pt *pt, uint32_t file)
{
    return pt && file < pt->n_files ? pt->files[file].version : 0;
}

uint64_t qf_pt_file_skipped(const qf_pt *pt, uint32_t file)
{
    return pt && file < pt->n_files ? pt->files[file].skipped : 0;
}

int64_t qf_pt_global_count(const qf_pt *pt) { return pt ? pt->n_globals : 0; }

const qf_pt_global *qf_pt_global_at(const qf_pt *pt, int64_t i)
{
    return pt && i >= 0 && i < pt->n_globals ? &pt->globals[i] : NULL;
}

int qf_pt_verify(const qf_pt *pt, qf_err *err)
{
    uint32_t f, s;
    int rc;

    if (!pt)
        return qf_err_set(err, QF_EINVAL, "qf_pt_verify: no reader");
    for (f = 0; f < pt->n_files; f++)
        for (s = 0; s < pt->files[f].n_storages; s++)
            if (pt->files[f].storages[s].used &&
                (rc = qf_zip_check_crc(pt->files[f].zip, pt->files[f].storages[s].entry, err)) != 0)
                return rc;
    return 0;
}

const qf_pkl_allow *qf_pt_allow_list(size_t *n)
{
    if (n)
        *n = N_ALLOW;
    return ALLOW;
}

void qf_pt_release_tensor(const qf_pt *pt, int64_t i)
{
    qf_pt_release_range(pt, i, 0, UINT64_MAX);
}

void qf_pt_release_range(const qf_pt *pt, int64_t i, uint64_t off, uint64_t len)
{
    const qf_pt_tensor *t = qf_pt_tensor_at(pt, i);

    if (!t || t->materialized || !pt->files[t->file].map || off >= t->nbytes)
        return;
    if (len > t->nbytes - off)
        len = t->nbytes - off;
    qf_map_release(pt->files[t->file].map, t->offset + off, len);
}
