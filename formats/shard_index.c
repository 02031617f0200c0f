#include "formats/shard_index.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    const char *name;  /* borrowed from the cJSON tree */
    const char *shard;
    int seen;
} wm_entry;

struct qf_shard_index {
    const char *index_path;
    wm_entry *wm;      /* sorted by name */
    size_t n_wm;
    const char **names; /* distinct shard names, sorted */
    char **paths;       /* beside the index */
    size_t n_shards;
};

static int cmp_wm(const void *a, const void *b)
{
    return strcmp(((const wm_entry *)a)->name, ((const wm_entry *)b)->name);
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int bad_shard_name(const char *s)
{
    return !*s || strchr(s, '/') || strchr(s, '\\') || strcmp(s, ".") == 0 || strcmp(s, "..") == 0;
}

void qf_shard_index_free(qf_shard_index *ix)
{
    size_t i;
    if (!ix)
        return;
    for (i = 0; ix->paths && i < ix->n_shards; i++)
        free(ix->paths[i]);
    free(ix->paths);
    free(ix->names);
    free(ix->wm);
    free(ix);
}

int qf_shard_index_build(const char *index_path, const cJSON *root, qf_shard_index **out,
                         qf_err *err)
{
    qf_shard_index *ix = calloc(1, sizeof *ix);
    const cJSON *wmap, *c;
    const char *slash = strrchr(index_path, '/');
    size_t dirlen = slash ? (size_t)(slash - index_path) : 1, i;
    int rc = 0;

    *out = NULL;
    if (!ix)
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", index_path);
    ix->index_path = index_path;
    wmap = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wmap)) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: no \"weight_map\" object", index_path);
        goto done;
    }
    for (c = wmap->child; c; c = c->next)
        ix->n_wm++;
    if (ix->n_wm == 0) {
        rc = qf_err_set(err, QF_EFORMAT, "%s: \"weight_map\" is empty", index_path);
        goto done;
    }
    ix->wm = calloc(ix->n_wm, sizeof *ix->wm);
    ix->names = calloc(ix->n_wm, sizeof *ix->names);
    if (!ix->wm || !ix->names) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", index_path);
        goto done;
    }
    for (i = 0, c = wmap->child; c; c = c->next, i++) {
        if (!cJSON_IsString(c) || !c->valuestring) {
            rc = qf_err_set(err, QF_EFORMAT, "%s: weight_map: tensor \"%s\": shard is not a string",
                            index_path, c->string);
            goto done;
        }
        if (bad_shard_name(c->valuestring)) {
            rc = qf_err_set(err, QF_EFORMAT,
                            "%s: weight_map: tensor \"%s\": shard \"%s\" is not a plain file name "
                            "in the index's folder",
                            index_path, c->string, c->valuestring);
            goto done;
        }
        ix->wm[i].name = c->string;
        ix->wm[i].shard = c->valuestring;
        ix->names[i] = c->valuestring;
    }
    qsort(ix->wm, ix->n_wm, sizeof *ix->wm, cmp_wm);
    for (i = 1; i < ix->n_wm; i++)
        if (strcmp(ix->wm[i - 1].name, ix->wm[i].name) == 0) {
            rc = qf_err_set(err, QF_EFORMAT, "%s: weight_map: duplicate tensor \"%s\"", index_path,
                            ix->wm[i].name);
            goto done;
        }
    qsort(ix->names, ix->n_wm, sizeof *ix->names, cmp_str_ptr);
    for (i = 0; i < ix->n_wm; i++)
        if (ix->n_shards == 0 || strcmp(ix->names[ix->n_shards - 1], ix->names[i]) != 0)
            ix->names[ix->n_shards++] = ix->names[i];
    ix->paths = calloc(ix->n_shards, sizeof *ix->paths);
    if (!ix->paths) {
        rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", index_path);
        goto done;
    }
    /* Every shard must exist before any is read: a missing one is the news. */
    for (i = 0; i < ix->n_shards; i++) {
        struct stat sb;
        size_t n = dirlen + strlen(ix->names[i]) + 2;
        if (!(ix->paths[i] = malloc(n))) {
            rc = qf_err_set(err, QF_ENOMEM, "%s: out of memory", index_path);
            goto done;
        }
        snprintf(ix->paths[i], n, "%.*s/%s", (int)dirlen, slash ? index_path : ".", ix->names[i]);
        if (stat(ix->paths[i], &sb) != 0) {
            rc = qf_err_set(err, errno == ENOENT ? QF_ENOTFOUND : QF_EIO,
                            "%s: shard \"%s\" is missing (%s: %s)", index_path, ix->names[i],
                            ix->paths[i], strerror(errno));
            goto done;
        }
    }
    *out = ix;
    ix = NULL;
done:
    qf_shard_index_free(ix);
    return rc;
}

size_t qf_shard_index_count(const qf_shard_index *ix) { return ix->n_shards; }
const char *qf_shard_index_name(const qf_shard_index *ix, size_t s) { return ix->names[s]; }
const char *qf_shard_index_path(const qf_shard_index *ix, size_t s) { return ix->paths[s]; }

int qf_shard_index_claim(qf_shard_index *ix, const char *name, size_t shard, qf_err *err)
{
    wm_entry key = { name, NULL, 0 }, *w;

    w = bsearch(&key, ix->wm, ix->n_wm, sizeof *ix->wm, cmp_wm);
    if (!w)
        return qf_err_set(err, QF_EFORMAT,
                          "%s: tensor \"%s\" in shard \"%s\" is not listed in weight_map",
                          ix->index_path, name, ix->names[shard]);
    if (strcmp(w->shard, ix->names[shard]) != 0)
        return qf_err_set(err, QF_EFORMAT,
                          "%s: tensor \"%s\" is in shard \"%s\" but weight_map says \"%s\"",
                          ix->index_path, name, ix->names[shard], w->shard);
    w->seen = 1;
    return 0;
}

int qf_shard_index_check_all(const qf_shard_index *ix, qf_err *err)
{
    size_t i;
    for (i = 0; i < ix->n_wm; i++)
        if (!ix->wm[i].seen)
            return qf_err_set(err, QF_ENOTFOUND, "%s: tensor \"%s\" is not in shard \"%s\"",
                              ix->index_path, ix->wm[i].name, ix->wm[i].shard);
    return 0;
}
