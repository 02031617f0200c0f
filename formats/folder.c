/*
 * formats/folder.c - model folders: paths and listings (folder.h).
 */
#include "formats/folder.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *qf_path_join(const char *dir, const char *name)
{
    size_t d = strlen(dir), n = strlen(name);
    char *p;

    while (d > 1 && dir[d - 1] == '/')
        d--;
    p = malloc(d + n + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, d);
    if (d > 0 && dir[d - 1] != '/')
        p[d++] = '/';
    memcpy(p + d, name, n + 1);
    return p;
}

int qf_path_is_regular(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int qf_folder_list(const char *dir, const char *const *suffixes, size_t n_suffixes,
                   int (*skip)(const char *name), char ***names, size_t *count, qf_err *err)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **v = NULL, *full;
    size_t n = 0, cap = 0, s;
    int rc = 0, match, regular;

    *names = NULL;
    *count = 0;
    if (!d)
        return qf_err_set(err, QF_EIO, "%s: %s", dir, strerror(errno));
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        for (match = 0, s = 0; s < n_suffixes; s++)
            match |= ends_with(de->d_name, suffixes[s]);
        if (!match || (skip && skip(de->d_name)))
            continue;
        if (!(full = qf_path_join(dir, de->d_name))) {
            rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", dir);
            goto done;
        }
        regular = qf_path_is_regular(full);
        free(full);
        if (!regular)
            continue;
        if (n == cap) {
            char **nv;
            cap = cap ? cap * 2 : 8;
            if (!(nv = realloc(v, cap * sizeof *nv))) {
                rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", dir);
                goto done;
            }
            v = nv;
        }
        if (!(v[n] = strdup(de->d_name))) {
            rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", dir);
            goto done;
        }
        n++;
    }
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_str_ptr);
done:
    closedir(d);
    if (rc != 0) {
        qf_folder_names_free(v, n);
        return rc;
    }
    *names = v;
    *count = n;
    return 0;
}

void qf_folder_names_free(char **names, size_t n)
{
    size_t i;
    if (!names)
        return;
    for (i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

const char *qf_folder_names_join(char *buf, size_t cap, char *const *names, size_t n)
{
    size_t used = 0, i;

    buf[0] = '\0';
    for (i = 0; i < n && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", names[i]);
    return buf;
}
