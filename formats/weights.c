#include "formats/weights.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct qf_weights {
    qf_st *st;
    qf_pt *pt;
};

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

int qf_weights_is_pytorch(const char *path)
{
    unsigned char head[4];
    ssize_t n;
    int fd;

    if (ends_with(path, ".bin") || ends_with(path, ".pt") || ends_with(path, ".pth") ||
        ends_with(path, ".bin.index.json"))
        return 1;
    if (ends_with(path, ".safetensors") || ends_with(path, ".json"))
        return 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, head, sizeof head);
    close(fd);
    return (n == 4 && memcmp(head, "PK\x03\x04", 4) == 0) || (n >= 1 && head[0] == 0x80);
}

/* What a folder holds: 1 safetensors, 2 PyTorch, 0 neither. */
static int folder_kind(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int st = 0, pt = 0;

    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (ends_with(e->d_name, ".safetensors") || strcmp(e->d_name, "model.safetensors.index.json") == 0)
            st = 1;
        else if (strcmp(e->d_name, "pytorch_model.bin") == 0 || strcmp(e->d_name, QF_PT_INDEX_NAME) == 0 ||
                 ends_with(e->d_name, ".bin") || ends_with(e->d_name, ".pt") || ends_with(e->d_name, ".pth"))
            pt = 1;
    }
    closedir(d);
    return st ? 1 : pt ? 2 : 0;
}

int qf_weights_open(const char *path, qf_weights **out, qf_err *err)
{
    qf_weights *w = calloc(1, sizeof *w);
    struct stat sb;
    int rc, pytorch;

    *out = NULL;
    if (!w)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    if (stat(path, &sb) != 0) {
        rc = qf_err_set(err, QF_EIO, "%s: %s", path, strerror(errno));
        goto done;
    }
    if (S_ISDIR(sb.st_mode)) {
        int k = folder_kind(path);
        if (k == 0) {
            rc = qf_err_set(err, QF_ENOTFOUND, "%s: no weights (*.safetensors or pytorch_model.bin)", path);
            goto done;
        }
        pytorch = k == 2;
    } else {
        pytorch = qf_weights_is_pytorch(path);
    }
    rc = pytorch ? qf_pt_open(path, &w->pt, err) : qf_st_open(path, &w->st, err);
    if (rc == 0) {
        *out = w;
        w = NULL;
    }
done:
    qf_weights_close(w);
    return rc;
}

void qf_weights_close(qf_weights *w)
{
    if (!w)
        return;
    qf_st_close(w->st);
    qf_pt_close(w->pt);
    free(w);
}

const char *qf_weights_format(const qf_weights *w) { return w->st ? "safetensors" : "pytorch"; }
const qf_st *qf_weights_st(const qf_weights *w) { return w->st; }
const qf_pt *qf_weights_pt(const qf_weights *w) { return w->pt; }

int64_t qf_weights_count(const qf_weights *w)
{
    return w->st ? qf_st_tensor_count(w->st) : qf_pt_tensor_count(w->pt);
}

const qf_st_tensor *qf_weights_at(const qf_weights *w, int64_t i)
{
    return w->st ? qf_st_tensor_at(w->st, i) : qf_pt_tensor_st(w->pt, i);
}

int64_t qf_weights_find(const qf_weights *w, const char *name)
{
    return w->st ? qf_st_find(w->st, name) : qf_pt_find(w->pt, name);
}

uint32_t qf_weights_file_count(const qf_weights *w)
{
    return w->st ? qf_st_file_count(w->st) : qf_pt_file_count(w->pt);
}

const char *qf_weights_file_path(const qf_weights *w, uint32_t file)
{
    return w->st ? qf_st_file_path(w->st, file) : qf_pt_file_path(w->pt, file);
}

const char *qf_weights_meta_get(const qf_weights *w, const char *key)
{
    return w->st ? qf_st_meta_get(w->st, key) : NULL;
}

void qf_weights_release_tensor(const qf_weights *w, int64_t i)
{
    if (w->st)
        qf_st_release_tensor(w->st, i);
    else
        qf_pt_release_tensor(w->pt, i);
}

void qf_weights_release_range(const qf_weights *w, int64_t i, uint64_t off, uint64_t len)
{
    if (w->st)
        qf_st_release_range(w->st, i, off, len);
    else
        qf_pt_release_range(w->pt, i, off, len);
}
