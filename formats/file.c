/*
 * formats/file.c - mapped inputs, the bounds-checked cursor, atomic outputs.
 */
#include "formats/file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* =====================================================================
 * Mapped input file
 * ===================================================================== */

struct qf_map {
    char *path;
    uint8_t *data;  /* the bytes: base, or inside base for an aliased range */
    uint64_t size;
    void *base;     /* what mmap returned (NULL when size is 0) */
    size_t map_len; /* what to munmap */
};

/* Placeholder bindings (qf_map_alias_add): a short list, searched linearly. */
typedef struct alias {
    char *placeholder, *target;
    dev_t dev;
    ino_t ino;
    uint64_t off, len;
} alias;

static pthread_mutex_t alias_lock = PTHREAD_MUTEX_INITIALIZER;
static alias *aliases;
static size_t n_aliases, cap_aliases;

int qf_map_alias_add(const char *placeholder, const char *target, uint64_t off, uint64_t len,
                     qf_err *err)
{
    struct stat st;
    alias a;
    int rc = 0;

    if (stat(placeholder, &st) != 0)
        return qf_err_set(err, QF_EIO, "%s: %s", placeholder, strerror(errno));
    a.placeholder = strdup(placeholder);
    a.target = strdup(target);
    a.dev = st.st_dev;
    a.ino = st.st_ino;
    a.off = off;
    a.len = len;
    pthread_mutex_lock(&alias_lock);
    if (n_aliases == cap_aliases) {
        size_t cap = cap_aliases ? 2 * cap_aliases : 16;
        alias *p = realloc(aliases, cap * sizeof *p);
        if (p) {
            aliases = p;
            cap_aliases = cap;
        }
    }
    if (!a.placeholder || !a.target || n_aliases == cap_aliases) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", placeholder);
    } else {
        aliases[n_aliases++] = a;
        a.placeholder = a.target = NULL;
    }
    pthread_mutex_unlock(&alias_lock);
    free(a.placeholder);
    free(a.target);
    return rc;
}

void qf_map_alias_remove(const char *placeholder)
{
    size_t i;

    pthread_mutex_lock(&alias_lock);
    for (i = 0; i < n_aliases; i++) {
        if (strcmp(aliases[i].placeholder, placeholder) == 0) {
            free(aliases[i].placeholder);
            free(aliases[i].target);
            aliases[i] = aliases[--n_aliases];
            break;
        }
    }
    if (n_aliases == 0) {
        free(aliases);
        aliases = NULL;
        cap_aliases = 0;
    }
    pthread_mutex_unlock(&alias_lock);
}

/* The binding of the file (dev, ino): 1 and a copy of target (owned by the
 * caller) with the range, or 0. -1 when out of memory. */
static int alias_find(dev_t dev, ino_t ino, char **target, uint64_t *off, uint64_t *len)
{
    size_t i;
    int found = 0;

    pthread_mutex_lock(&alias_lock);
    for (i = 0; i < n_aliases; i++) {
        if (aliases[i].dev == dev && aliases[i].ino == ino) {
            *target = strdup(aliases[i].target);
            *off = aliases[i].off;
            *len = aliases[i].len;
            found = *target ? 1 : -1;
            break;
        }
    }
    pthread_mutex_unlock(&alias_lock);
    return found;
}

int qf_map_open(const char *path, qf_map **out, qf_err *err)
{
    struct stat st;
    qf_map *m = NULL;
    char *target = NULL;
    uint64_t off = 0, len = 0, page = (uint64_t)sysconf(_SC_PAGESIZE);
    int fd = -1, rc = 0, bound;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = qf_err_set(err, QF_EIO, "%s: %s", path, strerror(errno));
        goto done;
    }
    if (fstat(fd, &st) != 0) {
        rc = qf_err_set(err, QF_EIO, "%s: %s", path, strerror(errno));
        goto done;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = qf_err_set(err, QF_EIO, "%s: is a directory", path);
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = qf_err_set(err, QF_EIO, "%s: not a regular file", path);
        goto done;
    }
    m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    m->size = (uint64_t)st.st_size;
    bound = alias_find(st.st_dev, st.st_ino, &target, &off, &len);
    if (bound < 0) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    if (bound) { /* map the bound range of the target instead */
        close(fd);
        fd = open(target, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) != 0) {
            rc = qf_err_set(err, QF_EIO, "%s: %s", target, strerror(errno));
            goto done;
        }
        if (off > (uint64_t)st.st_size || len > (uint64_t)st.st_size - off) {
            rc = qf_err_set(err, QF_ETRUNC, "%s: bytes [%llu, %llu) are past the end of %s", path,
                            (unsigned long long)off, (unsigned long long)(off + len), target);
            goto done;
        }
        m->size = len;
    }
    if (m->size > 0) {
        uint64_t lo = off / page * page;
        void *p = mmap(NULL, (size_t)(off - lo + m->size), PROT_READ, MAP_PRIVATE, fd, (off_t)lo);
        if (p == MAP_FAILED) {
            rc = qf_err_set(err, QF_EIO, "%s: mmap: %s", path, strerror(errno));
            goto done;
        }
        m->base = p;
        m->map_len = (size_t)(off - lo + m->size);
        m->data = (uint8_t *)p + (off - lo);
    }
    *out = m;
    m = NULL;
done:
    if (fd >= 0)
        close(fd);
    free(target);
    qf_map_close(m);
    return rc;
}

void qf_map_close(qf_map *m)
{
    if (!m)
        return;
    if (m->base)
        munmap(m->base, m->map_len);
    free(m->path);
    free(m);
}

const uint8_t *qf_map_data(const qf_map *m) { return m->data; }
uint64_t qf_map_size(const qf_map *m) { return m->size; }
const char *qf_map_path(const qf_map *m) { return m->path; }

/* The whole pages covering (inner: wholly inside) bytes [off, off + len) of
 * the data, clipped to the mapping. Addresses, not offsets, are rounded: the
 * data of an aliased range does not start on a page. */
static int page_range(const qf_map *m, uint64_t off, uint64_t len, int inner, uint8_t **p,
                      size_t *n)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), lo, hi, a, b, mlo, mhi;

    if (!m || !m->data || off >= m->size || len == 0)
        return 0;
    if (len > m->size - off)
        len = m->size - off;
    a = (uintptr_t)(m->data + off);
    b = a + (uintptr_t)len;
    mlo = (uintptr_t)m->base;
    mhi = mlo + m->map_len;
    if (inner) { /* only pages wholly inside the range */
        lo = (a + page - 1) / page * page;
        hi = b / page * page;
        if (off + len == m->size)
            hi = (b + page - 1) / page * page;
    } else {
        lo = a / page * page;
        hi = (b + page - 1) / page * page;
    }
    if (lo < mlo)
        lo = mlo;
    if (hi > (mhi + page - 1) / page * page)
        hi = (mhi + page - 1) / page * page;
    if (hi <= lo)
        return 0;
    *p = (uint8_t *)lo;
    *n = (size_t)(hi - lo);
    return 1;
}

void qf_map_release(const qf_map *m, uint64_t off, uint64_t len)
{
    uint8_t *p;
    size_t n;

    if (page_range(m, off, len, 1, &p, &n))
        (void)madvise(p, n, MADV_DONTNEED);
}

void qf_map_prefetch(const qf_map *m, uint64_t off, uint64_t len)
{
    uint8_t *p;
    size_t n;

    if (page_range(m, off, len, 0, &p, &n))
        (void)madvise(p, n, MADV_WILLNEED);
}

/* =====================================================================
 * Cursor
 * ===================================================================== */

int qf_cur_bytes(qf_cur *c, uint64_t n, const uint8_t **p)
{
    if (n > qf_cur_left(c))
        return QF_ETRUNC;
    if (p)
        *p = c->base + c->pos;
    c->pos += n;
    return 0;
}

int qf_cur_skip(qf_cur *c, uint64_t n) { return qf_cur_bytes(c, n, NULL); }

int qf_cur_u8(qf_cur *c, uint8_t *v)
{
    const uint8_t *p;
    int rc = qf_cur_bytes(c, 1, &p);
    if (rc == 0)
        *v = p[0];
    return rc;
}

int qf_cur_u16(qf_cur *c, uint16_t *v)
{
    const uint8_t *p;
    int rc = qf_cur_bytes(c, 2, &p);
    if (rc == 0)
        *v = qf_le16(p);
    return rc;
}

int qf_cur_u32(qf_cur *c, uint32_t *v)
{
    const uint8_t *p;
    int rc = qf_cur_bytes(c, 4, &p);
    if (rc == 0)
        *v = qf_le32(p);
    return rc;
}

int qf_cur_u64(qf_cur *c, uint64_t *v)
{
    const uint8_t *p;
    int rc = qf_cur_bytes(c, 8, &p);
    if (rc == 0)
        *v = qf_le64(p);
    return rc;
}

int qf_cur_f32(qf_cur *c, float *v)
{
    uint32_t u;
    int rc = qf_cur_u32(c, &u);
    if (rc == 0)
        memcpy(v, &u, 4);
    return rc;
}

int qf_cur_f64(qf_cur *c, double *v)
{
    uint64_t u;
    int rc = qf_cur_u64(c, &u);
    if (rc == 0)
        memcpy(v, &u, 8);
    return rc;
}

int qf_utf8_valid(const char *str, size_t len)
{
    const uint8_t *s = (const uint8_t *)str;
    size_t i = 0;

    while (i < len) {
        uint8_t c = s[i];
        uint32_t cp;
        size_t n, k;

        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1; cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2; cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3; cp = c & 0x07;
        } else {
            return 0;
        }
        if (len - i - 1 < n)
            return 0;
        for (k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* =====================================================================
 * Atomic output
 * ===================================================================== */

#define OUT_BUF (4u << 20)

struct qf_out {
    char *path;     /* target */
    char *tmp;      /* temp file in the same folder */
    int fd;
    int flags;
    uint8_t *buf;
    size_t used;
    uint64_t total;
};

static int flush_buf(qf_out *o, qf_err *err)
{
    size_t off = 0;

    while (off < o->used) {
        ssize_t w = write(o->fd, o->buf + off, o->used - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return qf_err_set(err, QF_EIO, "%s: write: %s", o->path, strerror(errno));
        }
        off += (size_t)w;
    }
    o->used = 0;
    return 0;
}

int qf_out_open(const char *path, int flags, qf_out **out, qf_err *err)
{
    qf_out *o = NULL;
    char *dcopy = NULL, *bcopy = NULL;
    struct stat st;
    size_t n;
    int rc = 0;

    *out = NULL;
    if (!path || !*path)
        return qf_err_set(err, QF_EINVAL, "empty output path");
    if (lstat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return qf_err_set(err, QF_EIO, "%s: is a directory", path);
        if (!(flags & QF_OUT_FORCE))
            return qf_err_set(err, QF_EEXIST, "%s: already exists (use --force to overwrite)", path);
    }
    o = calloc(1, sizeof *o);
    if (!o)
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
    o->fd = -1;
    o->flags = flags;
    dcopy = strdup(path);
    bcopy = strdup(path);
    o->path = strdup(path);
    o->buf = malloc(OUT_BUF);
    if (!dcopy || !bcopy || !o->path || !o->buf) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    {
        const char *d = dirname(dcopy), *b = basename(bcopy);
        n = strlen(d) + strlen(b) + 16;
        o->tmp = malloc(n);
        if (!o->tmp) {
            rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        snprintf(o->tmp, n, "%s/.%s.XXXXXX", d, b);
    }
    o->fd = mkostemp(o->tmp, O_CLOEXEC);
    if (o->fd < 0) {
        rc = qf_err_set(err, QF_EIO, "%s: cannot create a file in its folder: %s", path,
                        strerror(errno));
        free(o->tmp);
        o->tmp = NULL;
        goto done;
    }
    {   /* mkstemp makes 0600; an output is an ordinary file: 0666 less the umask */
        mode_t um = umask(022);
        umask(um);
        (void)fchmod(o->fd, 0666 & ~um);
    }
    *out = o;
    o = NULL;
done:
    free(dcopy);
    free(bcopy);
    qf_out_close(o);
    return rc;
}

int qf_out_write(qf_out *o, const void *buf, size_t n, qf_err *err)
{
    const uint8_t *p = buf;

    if (o->used + n <= OUT_BUF) {
        memcpy(o->buf + o->used, p, n);
        o->used += n;
        o->total += n;
        return 0;
    }
    if (flush_buf(o, err) != 0)
        return QF_EIO;
    if (n >= OUT_BUF) { /* large writes bypass the buffer */
        size_t off = 0;
        while (off < n) {
            ssize_t w = write(o->fd, p + off, n - off);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                return qf_err_set(err, QF_EIO, "%s: write: %s", o->path, strerror(errno));
            }
            off += (size_t)w;
        }
        o->total += n;
        return 0;
    }
    memcpy(o->buf, p, n);
    o->used = n;
    o->total += n;
    return 0;
}

int qf_out_zeros(qf_out *o, uint64_t n, qf_err *err)
{
    static const uint8_t zero[4096];

    while (n > 0) {
        size_t k = n > sizeof zero ? sizeof zero : (size_t)n;
        if (qf_out_write(o, zero, k, err) != 0)
            return QF_EIO;
        n -= k;
    }
    return 0;
}

int qf_out_pwrite(qf_out *o, uint64_t off, const void *buf, size_t n, qf_err *err)
{
    const uint8_t *p = buf;
    size_t done = 0;

    if (off > o->total || n > o->total - off)
        return qf_err_set(err, QF_EINVAL, "%s: write at %llu past the end", o->path,
                          (unsigned long long)off);
    if (flush_buf(o, err) != 0)
        return QF_EIO;
    while (done < n) {
        ssize_t w = pwrite(o->fd, p + done, n - done, (off_t)(off + done));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return qf_err_set(err, QF_EIO, "%s: write: %s", o->path, strerror(errno));
        }
        done += (size_t)w;
    }
    return 0;
}

uint64_t qf_out_tell(const qf_out *o) { return o->total; }
const char *qf_out_path(const qf_out *o) { return o->path; }

static void fsync_dir_of(const char *path)
{
    char *copy = strdup(path);
    int fd;

    if (!copy)
        return;
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(copy);
}

int qf_out_commit(qf_out *o, qf_err *err)
{
    int rc = 0;

    if (!o)
        return qf_err_set(err, QF_EINVAL, "commit of a closed output");
    if ((rc = flush_buf(o, err)) != 0)
        goto done;
    if (fsync(o->fd) != 0) {
        rc = qf_err_set(err, QF_EIO, "%s: fsync: %s", o->path, strerror(errno));
        goto done;
    }
    if (close(o->fd) != 0) {
        o->fd = -1;
        rc = qf_err_set(err, QF_EIO, "%s: close: %s", o->path, strerror(errno));
        goto done;
    }
    o->fd = -1;
    if (o->flags & QF_OUT_FORCE) {
        if (rename(o->tmp, o->path) != 0) {
            rc = qf_err_set(err, QF_EIO, "%s: rename: %s", o->path, strerror(errno));
            goto done;
        }
    } else {
        /* link() fails if the target appeared meanwhile: never clobber it. */
        if (link(o->tmp, o->path) != 0) {
            if (errno == EEXIST)
                rc = qf_err_set(err, QF_EEXIST, "%s: already exists (use --force to overwrite)",
                                o->path);
            else if (rename(o->tmp, o->path) != 0) /* e.g. a filesystem without hard links */
                rc = qf_err_set(err, QF_EIO, "%s: rename: %s", o->path, strerror(errno));
            else
                goto renamed;
            goto done;
        }
        (void)unlink(o->tmp);
    }
renamed:
    free(o->tmp);
    o->tmp = NULL;
    fsync_dir_of(o->path);
done:
    qf_out_close(o);
    return rc;
}

void qf_out_close(qf_out *o)
{
    if (!o)
        return;
    if (o->fd >= 0)
        close(o->fd);
    if (o->tmp)
        (void)unlink(o->tmp);
    free(o->tmp);
    free(o->path);
    free(o->buf);
    free(o);
}
