/*
 * formats/archive.c - a model folder packed in an archive (see archive.h).
 *
 * One pass over the archive, through libarchive, fed from our own mapping
 * of the file: each block libarchive hands back is either a pointer into
 * that mapping (uncompressed tar, STORED zip: the member can stay in place)
 * or into its own buffers (decompressed: the member is written out). A
 * member starts "in place" and switches to "copy" at the first block that is
 * not contiguous in the mapping; the bytes seen so far are still mapped, so
 * they are written first.
 */
#include "formats/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "formats/file.h"

#define CHUNK (1u << 20)        /* bytes handed to libarchive per read of a compressed archive */
#define RATIO_SLACK (1u << 20)  /* uncompressed bytes allowed beyond the ratio */
#define NAME_MAX_LEN 4096

/* A file or folder we made, newest first (see qf_archive_remove_files). */
typedef struct made {
    struct made *next;
    int is_dir;
    char path[];
} made;

/* The root (slot 0) or a top-level folder that may be the model folder. */
typedef struct slot {
    char *name;      /* folder name in the archive ("" for the root) */
    char *dir;       /* <tmp>/<k>/<folder name>, made on first use */
    int candidate;   /* holds config.json or a weight file */
} slot;

typedef struct used {
    qf_archive_member m;
    char *name, *path;
    int slot;
} used;

struct qf_archive {
    char *path;              /* archive path or name */
    char *stem;              /* folder name for a root-level model */
    qf_archive_kind kind;
    qf_archive_limits lim;
    qf_map *map;             /* the file, or NULL over a caller's buffer */
    const uint8_t *data;
    uint64_t size;
    int file_backed;
    char *tmp_parent;        /* NULL: scan only */

    /* reading */
    uint64_t pos, consumed, chunk;
    uint64_t total;          /* uncompressed bytes of every member so far */
    uint64_t declared;       /* sizes the headers announced so far */
    uint64_t written;        /* bytes written to disk so far */
    uint64_t avail;          /* free bytes of the temp file system at start */
    uint64_t entries;

    char *tmp;               /* the temp folder, once made */
    made *volatile made_head;
    char **names;            /* every member name, for the duplicate check */
    uint64_t n_names, cap_names;
    uint32_t *depths;        /* components of each name */
    slot *slots;
    int n_slots;
    used *used;
    int64_t n_used;
    int64_t cap_used;
    int model;               /* slot of the model folder after unpack, or -1 */
    int unpacked;
};

static int ends_with_ci(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcasecmp(s + a - b, suf) == 0;
}

qf_archive_kind qf_archive_kind_of(const char *path)
{
    if (!path)
        return QF_ARCHIVE_NONE;
    if (ends_with_ci(path, ".tar"))
        return QF_ARCHIVE_TAR;
    if (ends_with_ci(path, ".tar.gz") || ends_with_ci(path, ".tgz"))
        return QF_ARCHIVE_TAR_GZ;
    if (ends_with_ci(path, ".tar.zst") || ends_with_ci(path, ".tzst"))
        return QF_ARCHIVE_TAR_ZST;
    if (ends_with_ci(path, ".zip"))
        return QF_ARCHIVE_ZIP;
    return QF_ARCHIVE_NONE;
}

void qf_archive_limits_default(qf_archive_limits *lim)
{
    lim->max_bytes = 256ull << 30;
    lim->max_ratio = 200;
    lim->max_members = 10000;
    lim->margin = 64ull << 20;
}

/* The archive's file name without its directory and archive extension. */
static char *stem_of(const char *path)
{
    static const char *const ext[] = { ".tar.gz", ".tar.zst", ".tgz", ".tzst", ".tar", ".zip" };
    const char *base = strrchr(path, '/');
    char *s;
    size_t i, n;

    base = base ? base + 1 : path;
    if (!(s = strdup(base)))
        return NULL;
    n = strlen(s);
    for (i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        size_t e = strlen(ext[i]);
        if (n > e && strcasecmp(s + n - e, ext[i]) == 0) {
            s[n - e] = '\0';
            break;
        }
    }
    if (s[0] == '\0' || s[0] == '.' || strchr(s, '\\')) {
        free(s);
        s = strdup("model");
    }
    return s;
}

static int init(qf_archive *a, const char *path, qf_archive_kind kind, const char *tmp_parent,
                const qf_archive_limits *lim, qf_err *err)
{
    a->kind = kind;
    a->model = -1;
    if (lim)
        a->lim = *lim;
    else
        qf_archive_limits_default(&a->lim);
    if (!(a->path = strdup(path)) || !(a->stem = stem_of(path)) ||
        (tmp_parent && !(a->tmp_parent = strdup(tmp_parent))))
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
    return 0;
}

int qf_archive_open(const char *path, const char *tmp_parent, const qf_archive_limits *lim,
                    qf_archive **out, qf_err *err)
{
    qf_archive *a;
    qf_archive_kind kind = qf_archive_kind_of(path);
    const char *env;
    int rc;

    *out = NULL;
    if (kind == QF_ARCHIVE_NONE)
        return qf_err_set(err, QF_EINVAL,
                          "%s: not an archive name (.tar, .tar.gz, .tgz, .tar.zst, .tzst, .zip)", path);
    if (!tmp_parent) {
        env = getenv("TMPDIR");
        tmp_parent = env && *env ? env : "/tmp";
    }
    if (!(a = calloc(1, sizeof *a)))
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
    if ((rc = init(a, path, kind, tmp_parent, lim, err)) != 0 ||
        (rc = qf_map_open(path, &a->map, err)) != 0) {
        qf_archive_close(a);
        return rc;
    }
    a->data = qf_map_data(a->map);
    a->size = qf_map_size(a->map);
    a->file_backed = 1;
    *out = a;
    return 0;
}

int qf_archive_open_buffer(const void *buf, uint64_t size, const char *name, qf_archive_kind kind,
                           const char *tmp_parent, const qf_archive_limits *lim,
                           qf_archive **out, qf_err *err)
{
    qf_archive *a;
    int rc;

    *out = NULL;
    if (kind < QF_ARCHIVE_TAR || kind > QF_ARCHIVE_ZIP || (!buf && size))
        return qf_err_set(err, QF_EINVAL, "%s: bad archive kind or buffer", name);
    if (!(a = calloc(1, sizeof *a)))
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", name);
    if ((rc = init(a, name, kind, tmp_parent, lim, err)) != 0) {
        qf_archive_close(a);
        return rc;
    }
    a->data = buf;
    a->size = size;
    *out = a;
    return 0;
}

/* ---------------------------------------------------------------------
 * What we make, and how it goes away
 * ------------------------------------------------------------------- */

/* Record `path` (before it is created, so a signal never misses it). */
static made *remember(qf_archive *a, const char *path, int is_dir)
{
    size_t n = strlen(path) + 1;
    made *m = malloc(sizeof *m + n);

    if (!m)
        return NULL;
    m->is_dir = is_dir;
    memcpy(m->path, path, n);
    m->next = a->made_head;
    __atomic_store_n(&a->made_head, m, __ATOMIC_SEQ_CST);
    return m;
}

void qf_archive_remove_files(qf_archive *a)
{
    made *m;

    if (!a)
        return;
    for (m = __atomic_load_n(&a->made_head, __ATOMIC_SEQ_CST); m; m = m->next) {
        if (m->is_dir)
            (void)rmdir(m->path);
        else
            (void)unlink(m->path);
    }
}

void qf_archive_close(qf_archive *a)
{
    made *m, *next;
    uint64_t i;
    int k;

    if (!a)
        return;
    for (i = 0; i < (uint64_t)a->n_used; i++)
        if (a->used[i].m.in_place && a->used[i].path)
            qf_map_alias_remove(a->used[i].path);
    qf_archive_remove_files(a);
    for (m = a->made_head; m; m = next) {
        next = m->next;
        free(m);
    }
    for (i = 0; i < a->n_names; i++)
        free(a->names[i]);
    free(a->names);
    free(a->depths);
    for (k = 0; k < a->n_slots; k++) {
        free(a->slots[k].name);
        free(a->slots[k].dir);
    }
    free(a->slots);
    for (i = 0; i < (uint64_t)a->n_used; i++) {
        free(a->used[i].name);
        free(a->used[i].path);
    }
    free(a->used);
    qf_map_close(a->map);
    free(a->tmp);
    free(a->tmp_parent);
    free(a->stem);
    free(a->path);
    free(a);
}

/* ---------------------------------------------------------------------
 * Getters
 * ------------------------------------------------------------------- */

const char *qf_archive_dir(const qf_archive *a)
{
    return a->unpacked && a->model >= 0 ? a->slots[a->model].dir : NULL;
}
const char *qf_archive_tmp(const qf_archive *a) { return a->tmp; }
const char *qf_archive_path(const qf_archive *a) { return a->path; }
const char *qf_archive_folder(const qf_archive *a)
{
    return a->model >= 0 ? a->slots[a->model].name : "";
}
uint64_t qf_archive_entries_seen(const qf_archive *a) { return a->entries; }

int64_t qf_archive_member_count(const qf_archive *a) { return a->unpacked ? a->n_used : 0; }

const qf_archive_member *qf_archive_member_at(const qf_archive *a, int64_t i)
{
    return a->unpacked && i >= 0 && i < a->n_used ? &a->used[i].m : NULL;
}

void qf_archive_fix_err(const qf_archive *a, qf_err *err)
{
    const char *dir = a ? qf_archive_dir(a) : NULL;
    char out[QF_ERR_MSG_MAX], repl[QF_ERR_MSG_MAX];
    const char *s, *hit;
    size_t dl, rl, o = 0, n;
    int root;

    if (!dir || !err || err->code == 0)
        return;
    dl = strlen(dir);
    root = a->slots[a->model].name[0] == '\0';
    if (root) /* "<dir>/config.json" -> "a.tar:config.json" */
        snprintf(repl, sizeof repl, "%s:", a->path);
    else      /* "<dir>/config.json" -> "a.tar:stories/config.json" */
        snprintf(repl, sizeof repl, "%s:%s", a->path, a->slots[a->model].name);
    rl = strlen(repl);
    for (s = err->msg; (hit = strstr(s, dir)) != NULL; s = hit) {
        n = (size_t)(hit - s);
        if (o + n + rl + 1 >= sizeof out)
            break;
        memcpy(out + o, s, n);
        o += n;
        hit += dl;
        if (root && *hit == '/') {
            hit++;
            memcpy(out + o, repl, rl);
            o += rl;
        } else if (root) { /* the folder itself: the archive */
            memcpy(out + o, repl, rl - 1);
            o += rl - 1;
        } else {
            memcpy(out + o, repl, rl);
            o += rl;
        }
    }
    n = strlen(s);
    if (o + n >= sizeof out)
        n = sizeof out - 1 - o;
    memcpy(out + o, s, n);
    o += n;
    out[o] = '\0';
    memcpy(err->msg, out, o + 1);
}

/* ---------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------- */

/* The name as it may be printed: printable ASCII/UTF-8 bytes as they are,
 * control bytes and quotes as \xNN, cut at 200 bytes. */
static const char *show(const char *name, char *buf, size_t cap)
{
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)name;

    for (; *p && o + 5 < cap; p++) {
        if (o >= 200) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\')
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", *p);
        else
            buf[o++] = (char)*p;
    }
    buf[o] = '\0';
    return buf;
}

static int fail(const qf_archive *a, qf_err *err, int code, const char *member, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int fail(const qf_archive *a, qf_err *err, int code, const char *member, const char *fmt, ...)
{
    char reason[QF_ERR_MSG_MAX], shown[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (member)
        return qf_err_set(err, code, "%s: member \"%s\": %s", a->path, show(member, shown, sizeof shown),
                          reason);
    return qf_err_set(err, code, "%s: %s", a->path, reason);
}

/* libarchive's message for the handle, one line. */
static const char *la_msg(struct archive *ar)
{
    const char *m = archive_error_string(ar);
    return m && *m ? m : "unreadable archive";
}

/* ---------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------- */

/*
 * Check `raw` and write its normal form (no leading "./", no trailing '/')
 * into *norm (owned by the caller). Returns 0 with the component count in
 * *ncomp (0 for the archive root itself, "./"), or a code with the reason.
 */
static int check_name(const qf_archive *a, const char *raw, char **norm, uint32_t *ncomp,
                      qf_err *err)
{
    const char *p = raw, *c;
    size_t n;
    char *s;
    uint32_t k = 0;

    *norm = NULL;
    if (strlen(raw) > NAME_MAX_LEN)
        return fail(a, err, QF_ELIMIT, raw, "name longer than %d bytes", NAME_MAX_LEN);
    if (raw[0] == '/')
        return fail(a, err, QF_EFORMAT, raw, "absolute path");
    for (c = raw; *c; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return fail(a, err, QF_EFORMAT, raw, "control character in name");
        if (*c == '\\')
            return fail(a, err, QF_EFORMAT, raw, "backslash in name");
    }
    if (raw[0] && raw[1] == ':')
        return fail(a, err, QF_EFORMAT, raw, "absolute path (drive letter)");
    while (p[0] == '.' && p[1] == '/') {
        p += 2;
        while (*p == '/')
            p++;
    }
    if (strcmp(p, ".") == 0)
        p += 1;
    if (!(s = strdup(p)))
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", a->path);
    n = strlen(s);
    if (n > 0 && s[n - 1] == '/')
        s[--n] = '\0';
    if (n > 0) {
        const char *q = s;
        for (;;) {
            const char *e = strchr(q, '/');
            size_t len = e ? (size_t)(e - q) : strlen(q);
            if (len == 2 && q[0] == '.' && q[1] == '.') {
                free(s);
                return fail(a, err, QF_EFORMAT, raw, "path traversal (\"..\" component)");
            }
            if (len == 0 || (len == 1 && q[0] == '.')) {
                free(s);
                return fail(a, err, QF_EFORMAT, raw, "empty or \".\" component in name");
            }
            k++;
            if (!e)
                break;
            q = e + 1;
        }
    }
    *norm = s;
    *ncomp = k;
    return 0;
}

static const char *base_of(const char *name)
{
    const char *b = strrchr(name, '/');
    return b ? b + 1 : name;
}

static int is_weight_file(const char *b)
{
    return ends_with_ci(b, ".safetensors") || ends_with_ci(b, ".bin") || ends_with_ci(b, ".pt") ||
           ends_with_ci(b, ".pth");
}

/* A file the model folder needs (see archive.h). */
static int wanted(const char *b)
{
    static const char *const names[] = {
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
        "tokenizer.model", "special_tokens_map.json", "added_tokens.json", "vocab.json",
        "merges.txt",
    };
    size_t i;

    if (b[0] == '.')
        return 0;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(b, names[i]) == 0)
            return 1;
    if (strcmp(b, "training_args.bin") == 0 || strncmp(b, "optimizer.", 10) == 0 ||
        strcmp(b, "scheduler.pt") == 0 || strcmp(b, "scaler.pt") == 0 ||
        (strncmp(b, "rng_state", 9) == 0 && ends_with_ci(b, ".pth")))
        return 0;
    return is_weight_file(b) || ends_with_ci(b, ".safetensors.index.json") ||
           ends_with_ci(b, ".bin.index.json");
}

/* Duplicate check: an open-addressing set of indices into a->names. */
typedef struct nameset {
    uint64_t *slot; /* index + 1, 0 = empty */
    uint64_t cap;
} nameset;

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Add a->names[i]: 1 if new, 0 if already there, -1 out of memory. */
static int nameset_add(const qf_archive *a, nameset *ns, uint64_t i)
{
    uint64_t h, k;

    if (2 * (i + 1) >= ns->cap) {
        nameset big = { NULL, ns->cap ? 2 * ns->cap : 64 };
        uint64_t j;
        if (!(big.slot = calloc((size_t)big.cap, sizeof *big.slot)))
            return -1;
        for (j = 0; j < ns->cap; j++) {
            if (!ns->slot[j])
                continue;
            for (k = fnv(a->names[ns->slot[j] - 1]) & (big.cap - 1); big.slot[k];
                 k = (k + 1) & (big.cap - 1))
                ;
            big.slot[k] = ns->slot[j];
        }
        free(ns->slot);
        *ns = big;
    }
    h = fnv(a->names[i]);
    for (k = h & (ns->cap - 1); ns->slot[k]; k = (k + 1) & (ns->cap - 1))
        if (strcmp(a->names[ns->slot[k] - 1], a->names[i]) == 0)
            return 0;
    ns->slot[k] = i + 1;
    return 1;
}

/* ---------------------------------------------------------------------
 * The temp folder
 * ------------------------------------------------------------------- */

static int ensure_tmp(qf_archive *a, qf_err *err)
{
    struct statvfs vfs;
    size_t n;
    made *m;
    char *t;

    if (a->tmp)
        return 0;
    n = strlen(a->tmp_parent) + sizeof "/qforge-XXXXXX";
    if (!(t = malloc(n)))
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", a->path);
    snprintf(t, n, "%s/qforge-XXXXXX", a->tmp_parent);
    if (!(m = remember(a, t, 1))) {
        free(t);
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", a->path);
    }
    free(t);
    if (!mkdtemp(m->path)) /* fills in the recorded path itself */
        return qf_err_set(err, QF_EIO, "%s: cannot make a temp folder in %s: %s", a->path,
                          a->tmp_parent, strerror(errno));
    if (!(a->tmp = strdup(m->path)))
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", a->path);
    if (statvfs(a->tmp, &vfs) != 0)
        return qf_err_set(err, QF_EIO, "%s: statvfs: %s", a->tmp, strerror(errno));
    a->avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    return 0;
}

/* mkdir `path` (recorded first). */
static int make_dir(qf_archive *a, const char *path, qf_err *err)
{
    if (!remember(a, path, 1))
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", a->path);
    if (mkdir(path, 0700) != 0)
        return qf_err_set(err, QF_EIO, "%s: %s", path, strerror(errno));
    return 0;
}

/* The slot for top-level folder `name` ("" for the root): its index, made
 * if new. */
static int get_slot(qf_archive *a, const char *name, int *k, qf_err *err)
{
    slot *p;
    int i;

    for (i = 0; i < a->n_slots; i++)
        if (strcmp(a->slots[i].name, name) == 0) {
            *k = i;
            return 0;
        }
    if (!(p = realloc(a->slots, (size_t)(a->n_slots + 1) * sizeof *p)))
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", a->path);
    a->slots = p;
    p = &a->slots[a->n_slots];
    memset(p, 0, sizeof *p);
    if (!(p->name = strdup(name)))
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", a->path);
    *k = a->n_slots++;
    return 0;
}

/* The folder of slot k in the temp folder: <tmp>/<k>/<name or stem>. */
static int slot_dir(qf_archive *a, int k, qf_err *err)
{
    slot *s = &a->slots[k];
    char *d1 = NULL;
    size_t n;
    int rc;

    if (s->dir)
        return 0;
    if ((rc = ensure_tmp(a, err)) != 0)
        return rc;
    n = strlen(a->tmp) + 24;
    if (!(d1 = malloc(n)))
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", a->path);
    snprintf(d1, n, "%s/%d", a->tmp, k);
    if ((rc = make_dir(a, d1, err)) == 0) {
        const char *name = s->name[0] ? s->name : a->stem;
        n = strlen(d1) + strlen(name) + 2;
        if (!(s->dir = malloc(n)))
            rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", a->path);
        else {
            snprintf(s->dir, n, "%s/%s", d1, name);
            rc = make_dir(a, s->dir, err);
        }
    }
    free(d1);
    return rc;
}

/* ---------------------------------------------------------------------
 * libarchive's input: our mapping, in chunks
 * ------------------------------------------------------------------- */

static la_ssize_t cb_read(struct archive *ar, void *ud, const void **buf)
{
    qf_archive *a = ud;
    uint64_t n = a->size - a->pos;

    (void)ar;
    if (n > a->chunk)
        n = a->chunk;
    *buf = a->data + a->pos;
    a->pos += n;
    a->consumed += n;
    return (la_ssize_t)n;
}

static la_int64_t cb_skip(struct archive *ar, void *ud, la_int64_t req)
{
    qf_archive *a = ud;
    uint64_t n = a->size - a->pos;

    (void)ar;
    if (req < 0)
        return 0;
    if ((uint64_t)req < n)
        n = (uint64_t)req;
    a->pos += n;
    a->consumed += n;
    return (la_int64_t)n;
}

static la_int64_t cb_seek(struct archive *ar, void *ud, la_int64_t off, int whence)
{
    qf_archive *a = ud;
    int64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? (int64_t)a->pos : (int64_t)a->size;

    (void)ar;
    if ((off > 0 && base > INT64_MAX - off) || base + off < 0 || (uint64_t)(base + off) > a->size)
        return ARCHIVE_FATAL;
    a->pos = (uint64_t)(base + off);
    return (la_int64_t)a->pos;
}

/* ---------------------------------------------------------------------
 * One member's data
 * ------------------------------------------------------------------- */

static int write_all(qf_archive *a, int fd, const char *path, const uint8_t *p, uint64_t n,
                     const char *member, qf_err *err)
{
    if (a->written + n + a->lim.margin > a->avail || a->written + n < a->written)
        return fail(a, err, QF_ELIMIT, member,
                    "no room to extract: %llu bytes written, %llu free in %s (keeping %llu free)",
                    (unsigned long long)a->written, (unsigned long long)a->avail, a->tmp_parent,
                    (unsigned long long)a->lim.margin);
    a->written += n;
    while (n > 0) {
        ssize_t w = write(fd, p, n > (1u << 30) ? (1u << 30) : (size_t)n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return qf_err_set(err, QF_EIO, "%s: %s", path, strerror(errno));
        }
        p += w;
        n -= (uint64_t)w;
    }
    return 0;
}

static int create_file(qf_archive *a, const char *path, int *fd, qf_err *err)
{
    if (!remember(a, path, 0))
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", a->path);
    *fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (*fd < 0)
        return qf_err_set(err, QF_EIO, "%s: %s", path, strerror(errno));
    return 0;
}

/*
 * Read the current member through. `dest`: the file to produce, or NULL to
 * only read and count. Fills u (size, in_place, offset) when dest is set.
 */
static int read_member(qf_archive *a, struct archive *ar, struct archive_entry *e, const char *name,
                       const char *dest, int want, qf_archive_member *u, qf_err *err)
{
    int64_t declared = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
    int in_place = want && a->file_backed && dest != NULL;
    uint64_t start = 0, len = 0, pos = 0;
    int fd = -1, rc = 0;

    for (;;) {
        const void *buf;
        size_t size;
        la_int64_t off;
        int r = archive_read_data_block(ar, &buf, &size, &off);
        const uint8_t *p = buf;

        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK) {
            rc = fail(a, err, QF_EFORMAT, name, "%s", la_msg(ar));
            goto done;
        }
        if (off < 0 || (uint64_t)off != pos) {
            rc = fail(a, err, QF_EUNSUPPORTED, name, "sparse member (a hole at byte %llu)",
                      (unsigned long long)pos);
            goto done;
        }
        pos += size;
        a->total += size;
        if (a->total > a->lim.max_bytes) {
            rc = fail(a, err, QF_ELIMIT, name, "more than %llu uncompressed bytes in the archive",
                      (unsigned long long)a->lim.max_bytes);
            goto done;
        }
        if (a->total > RATIO_SLACK && (a->total - RATIO_SLACK) / a->lim.max_ratio >= a->consumed) {
            rc = fail(a, err, QF_ELIMIT, name,
                      "expands more than %llu:1 (%llu bytes out of %llu read): a compression bomb?",
                      (unsigned long long)a->lim.max_ratio, (unsigned long long)a->total,
                      (unsigned long long)a->consumed);
            goto done;
        }
        if (declared >= 0 && pos > (uint64_t)declared) {
            rc = fail(a, err, QF_EFORMAT, name, "more data than its declared %lld bytes",
                      (long long)declared);
            goto done;
        }
        if (!dest || size == 0)
            continue;
        if (in_place) {
            if (len == 0 && p >= a->data && size <= a->size && p <= a->data + (a->size - size)) {
                start = (uint64_t)(p - a->data);
                len = size;
                continue;
            }
            if (len > 0 && p == a->data + start + len && size <= a->size - start - len) {
                len += size;
                continue;
            }
            /* not contiguous in the file: write what was seen, then copy */
            in_place = 0;
            if ((rc = create_file(a, dest, &fd, err)) != 0 ||
                (rc = write_all(a, fd, dest, a->data + start, len, name, err)) != 0)
                goto done;
        }
        if (fd < 0 && (rc = create_file(a, dest, &fd, err)) != 0)
            goto done;
        if ((rc = write_all(a, fd, dest, p, size, name, err)) != 0)
            goto done;
    }
    if (declared >= 0 && pos != (uint64_t)declared) {
        rc = fail(a, err, QF_ETRUNC, name, "%llu bytes, its header says %lld",
                  (unsigned long long)pos, (long long)declared);
        goto done;
    }
    if (!dest)
        goto done;
    if (fd < 0 && (rc = create_file(a, dest, &fd, err)) != 0) /* placeholder or empty file */
        goto done;
    u->size = pos;
    u->in_place = in_place && len > 0;
    u->offset = u->in_place ? start : 0;
done:
    if (fd >= 0 && close(fd) != 0 && rc == 0)
        rc = qf_err_set(err, QF_EIO, "%s: %s", dest, strerror(errno));
    return rc;
}

/* ---------------------------------------------------------------------
 * The pass
 * ------------------------------------------------------------------- */

static int add_name(qf_archive *a, nameset *ns, char *norm, uint32_t depth, qf_err *err)
{
    int k;

    if (a->n_names == a->cap_names) {
        uint64_t cap = a->cap_names ? 2 * a->cap_names : 64;
        char **n = realloc(a->names, (size_t)cap * sizeof *n);
        uint32_t *d;
        if (!n)
            return qf_err_set(err, QF_ENOMEM, "%s: out of memory", a->path);
        a->names = n;
        if (!(d = realloc(a->depths, (size_t)cap * sizeof *d)))
            return qf_err_set(err, QF_ENOMEM, "%s: out of memory", a->path);
        a->depths = d;
        a->cap_names = cap;
    }
    a->names[a->n_names] = norm;
    a->depths[a->n_names] = depth;
    k = nameset_add(a, ns, a->n_names);
    a->n_names++;
    if (k < 0)
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", a->path);
    if (k == 0)
        return fail(a, err, QF_EFORMAT, norm, "appears twice in the archive");
    return 0;
}

static int setup(qf_archive *a, struct archive *ar, qf_err *err)
{
    int r = ARCHIVE_OK;

    switch (a->kind) {
    case QF_ARCHIVE_TAR:
        r = archive_read_support_format_tar(ar);
        a->chunk = a->size ? a->size : 1; /* one block: every member's bytes stay in place */
        break;
    case QF_ARCHIVE_TAR_GZ:
        if ((r = archive_read_support_filter_gzip(ar)) == ARCHIVE_OK)
            r = archive_read_support_format_tar(ar);
        a->chunk = CHUNK;
        break;
    case QF_ARCHIVE_TAR_ZST:
        if ((r = archive_read_support_filter_zstd(ar)) == ARCHIVE_OK)
            r = archive_read_support_format_tar(ar);
        a->chunk = CHUNK;
        break;
    case QF_ARCHIVE_ZIP:
        r = archive_read_support_format_zip_seekable(ar);
        a->chunk = CHUNK;
        break;
    default:
        return qf_err_set(err, QF_EINVAL, "%s: bad archive kind", a->path);
    }
    if (r != ARCHIVE_OK)
        return qf_err_set(err, QF_EUNSUPPORTED, "%s: %s", a->path, la_msg(ar));
    archive_read_set_callback_data(ar, a);
    archive_read_set_read_callback(ar, cb_read);
    archive_read_set_skip_callback(ar, cb_skip);
    archive_read_set_seek_callback(ar, cb_seek);
    if (archive_read_open1(ar) != ARCHIVE_OK) {
        static const char *const what[] = { "", "tar", "gzip-compressed tar", "zstd-compressed tar", "zip" };
        return fail(a, err, QF_EFORMAT, NULL, "not a readable %s archive (%s)", what[a->kind], la_msg(ar));
    }
    return 0;
}

static const char *type_refused(struct archive_entry *e)
{
    if (archive_entry_hardlink(e))
        return "hard link";
    switch (archive_entry_filetype(e)) {
    case AE_IFREG:
    case AE_IFDIR:
        return NULL;
    case AE_IFLNK: return "symbolic link";
    case AE_IFCHR: return "device node (character)";
    case AE_IFBLK: return "device node (block)";
    case AE_IFIFO: return "FIFO";
    case AE_IFSOCK: return "socket";
    default: return "not a regular file or folder";
    }
}

int qf_archive_unpack(qf_archive *a, qf_err *err)
{
    struct archive *ar = NULL;
    nameset ns = { NULL, 0 };
    char *last = NULL, shown[256];
    int rc, k, model = -1;
    int64_t i, j;

    if (a->unpacked || a->entries)
        return qf_err_set(err, QF_EINVAL, "%s: already unpacked", a->path);
    if (!(ar = archive_read_new())) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", a->path);
        goto done;
    }
    if ((rc = setup(a, ar, err)) != 0)
        goto done;
    for (;;) {
        struct archive_entry *e;
        const char *raw, *why, *b;
        char *norm = NULL;
        uint32_t ncomp = 0;
        int r = archive_read_next_header(ar, &e), is_dir, want, sk = -1;
        qf_archive_member mem;
        char *dest = NULL;

        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK) {
            if (last)
                rc = fail(a, err, r == ARCHIVE_WARN ? QF_EFORMAT : QF_EFORMAT, NULL,
                          "after member \"%s\": %s", show(last, shown, sizeof shown), la_msg(ar));
            else
                rc = fail(a, err, QF_EFORMAT, NULL, "first member: %s", la_msg(ar));
            goto done;
        }
        if (++a->entries > a->lim.max_members) {
            rc = fail(a, err, QF_ELIMIT, archive_entry_pathname(e),
                      "more than %llu members", (unsigned long long)a->lim.max_members);
            goto done;
        }
        raw = archive_entry_pathname(e);
        if (!raw) {
            rc = fail(a, err, QF_EFORMAT, NULL, "member %llu has no readable name",
                      (unsigned long long)a->entries);
            goto done;
        }
        if ((rc = check_name(a, raw, &norm, &ncomp, err)) != 0)
            goto done;
        last = norm;
        if ((why = type_refused(e)) != NULL) {
            rc = fail(a, err, QF_EFORMAT, norm, "%s", why);
            free(norm);
            goto done;
        }
        if (archive_entry_is_encrypted(e)) {
            rc = fail(a, err, QF_EUNSUPPORTED, norm, "encrypted member");
            free(norm);
            goto done;
        }
        is_dir = archive_entry_filetype(e) == AE_IFDIR;
        if (ncomp == 0) { /* "./": the root itself */
            free(norm);
            last = NULL;
            if (!is_dir) {
                rc = fail(a, err, QF_EFORMAT, raw, "a file with no name");
                goto done;
            }
            continue;
        }
        if (ncomp + (uint32_t)is_dir > 3) {
            rc = fail(a, err, QF_EFORMAT, norm, "nested more than one folder below the model folder");
            free(norm);
            goto done;
        }
        if ((rc = add_name(a, &ns, norm, ncomp + (uint32_t)is_dir, err)) != 0)
            goto done;
        if (is_dir) {
            if ((rc = read_member(a, ar, e, norm, NULL, 0, NULL, err)) != 0)
                goto done;
            continue;
        }
        /* what the headers announce is checked before any byte is read */
        if (archive_entry_size_is_set(e) && archive_entry_size(e) > 0) {
            uint64_t sz = (uint64_t)archive_entry_size(e);
            a->declared = sz > UINT64_MAX - a->declared ? UINT64_MAX : a->declared + sz;
            if (a->declared > a->lim.max_bytes) {
                rc = fail(a, err, QF_ELIMIT, norm, "the members announce more than %llu bytes",
                          (unsigned long long)a->lim.max_bytes);
                goto done;
            }
            if (a->declared > RATIO_SLACK &&
                (a->declared - RATIO_SLACK) / a->lim.max_ratio >= a->size) {
                rc = fail(a, err, QF_ELIMIT, norm,
                          "announces %llu bytes in all, more than %llu x the archive's %llu: a "
                          "compression bomb?", (unsigned long long)a->declared,
                          (unsigned long long)a->lim.max_ratio, (unsigned long long)a->size);
                goto done;
            }
        }
        /* a file directly in the root or in a visible top-level folder? */
        b = base_of(norm);
        want = 0;
        if (ncomp <= 2 && norm[0] != '.') {
            char top[NAME_MAX_LEN + 1] = "";
            if (ncomp == 2)
                snprintf(top, sizeof top, "%.*s", (int)(b - norm - 1), norm);
            if ((rc = get_slot(a, top, &sk, err)) != 0)
                goto done;
            if (strcmp(b, "config.json") == 0 || is_weight_file(b))
                if (!a->slots[sk].candidate)
                    a->slots[sk].candidate = (int)a->entries; /* first candidate member */
            want = wanted(b);
        }
        if (want && a->tmp_parent) {
            size_t n;
            if ((rc = slot_dir(a, sk, err)) != 0)
                goto done;
            n = strlen(a->slots[sk].dir) + strlen(b) + 2;
            if (!(dest = malloc(n))) {
                rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", a->path);
                goto done;
            }
            snprintf(dest, n, "%s/%s", a->slots[sk].dir, b);
        }
        memset(&mem, 0, sizeof mem);
        rc = read_member(a, ar, e, norm, dest, want, &mem, err);
        if (rc == 0 && want) {
            used *u;
            if (a->n_used == a->cap_used) {
                int64_t cap = a->cap_used ? 2 * a->cap_used : 16;
                used *p = realloc(a->used, (size_t)cap * sizeof *p);
                if (!p)
                    rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", a->path);
                else {
                    a->used = p;
                    a->cap_used = cap;
                }
            }
            if (rc == 0) {
                u = &a->used[a->n_used++];
                memset(u, 0, sizeof *u);
                u->m = mem;
                u->slot = sk;
                u->path = dest;
                dest = NULL;
                if (!(u->name = strdup(norm)))
                    rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", a->path);
                u->m.name = u->name;
                u->m.path = u->path;
                if (rc == 0 && u->m.in_place)
                    rc = qf_map_alias_add(u->path, a->path, u->m.offset, u->m.size, err);
                if (rc != 0)
                    u->m.in_place = 0; /* not bound: nothing to unbind */
            }
        }
        free(dest);
        if (rc != 0)
            goto done;
    }

    /* exactly one model folder: the slots are in order of first appearance,
     * so the first two candidates are named in archive order (roughly) */
    for (k = 0; k < a->n_slots; k++) {
        if (!a->slots[k].candidate)
            continue;
        if (model < 0) {
            model = k;
            continue;
        }
        {
            int x = a->slots[model].candidate < a->slots[k].candidate ? model : k;
            int y = x == model ? k : model;
            rc = fail(a, err, QF_EFORMAT, NULL, "two model folders: \"%s\" and \"%s\"",
                      a->slots[x].name[0] ? a->slots[x].name : ".",
                      a->slots[y].name[0] ? a->slots[y].name : ".");
        }
        goto done;
    }
    if (model < 0) {
        rc = fail(a, err, QF_ENOTFOUND, NULL,
                  "no model folder (config.json or weights at the top or one folder down)");
        goto done;
    }
    if (a->slots[model].name[0] == '\0') {
        for (i = 0; i < (int64_t)a->n_names; i++)
            if (a->depths[i] > 2) {
                rc = fail(a, err, QF_EFORMAT, a->names[i],
                          "nested more than one folder below the model folder");
                goto done;
            }
    }
    /* keep the model folder's members only */
    for (i = j = 0; i < a->n_used; i++) {
        if (a->used[i].slot == model) {
            a->used[j++] = a->used[i];
            continue;
        }
        if (a->used[i].m.in_place)
            qf_map_alias_remove(a->used[i].path);
        free(a->used[i].name);
        free(a->used[i].path);
    }
    a->n_used = j;
    for (i = 0; i < a->n_used; i++) { /* the copy moved: point the view back */
        a->used[i].m.name = a->used[i].name;
        a->used[i].m.path = a->used[i].path;
    }
    if (a->tmp_parent && (rc = slot_dir(a, model, err)) != 0) /* folder with no wanted file */
        goto done;
    a->model = model;
    a->unpacked = 1;
    rc = 0;
done:
    free(ns.slot);
    if (ar)
        archive_read_free(ar);
    if (rc != 0) {
        a->model = -1;
        qf_archive_remove_files(a);
    }
    return rc;
}
