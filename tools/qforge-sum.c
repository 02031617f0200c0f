/*
 * qforge-sum - SHA-256 of every tensor's bytes, and of all tensor bytes in
 * file order, as manifest lines in the format of llama.cpp's
 * `llama-gguf-hash --sha256`:
 *
 *   sha256    <64 hex>  <file>:<tensor name>      one line per tensor
 *   sha256    <64 hex>  <file>                    all tensor data, in order
 *
 * --check MANIFEST re-hashes a file and names every tensor whose bytes differ.
 * Tensors are hashed in parallel; the all-data digest, which must see the
 * bytes in order, runs beside them on its own thread. Pages of the input are
 * given back once both have passed, and neither pass runs more than
 * MAX_LEAD bytes ahead of the other (it waits), so memory stays flat on big
 * files however the two threads are scheduled.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/file.h"
#include "formats/gguf.h"
#include "formats/hash.h"
#include "formats/weights.h"
#include "tools/cli.h"
#include "tools/model_open.h"
#include "tools/qfm_tool.h"

#define CHUNK (4u << 20)
/* How far (bytes) one pass may read ahead of the other: what stays mapped. */
#define MAX_LEAD (64ull << 20)

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: qforge-sum [options] FILE...\n"
            "       qforge-sum [options] --check MANIFEST [FILE]\n"
            "       qforge-sum [options] --check FILE.qfm\n"
            "SHA-256 of every tensor and of all tensor data, one manifest line each, in\n"
            "the format of llama-gguf-hash --sha256 (the two tools check each other's\n"
            "manifests). A QFM carries its own digests: --check FILE.qfm re-hashes every\n"
            "tensor against them and checks the file digest. FILE is a .gguf, a .qfm, a .safetensors, a PyTorch .bin/.pt/.pth, an index.json\n"
            "or a model folder.\n"
            "\n"
            "Options:\n"
            "  -c, --check MANIFEST  re-hash FILE (default: the file the manifest names,\n"
            "                        beside the manifest) and report each tensor OK or\n"
            "                        MISMATCH; exit 1 on any difference\n"
            "      --file-hash       also print the SHA-256 of the whole file, as sha256sum\n"
            "  -t, --threads N       threads (default: %d, the online CPUs)\n"
            "      --json            machine-readable output\n"
            "  -q, --quiet           with --check: print only what does not match\n"
            "  -v, --verbose         more messages\n"
            "  -h, --help            this help\n"
            "      --version         print the version\n"
            "\n"
            "\n%s"
            "\nExit status: 0 done (and everything matched), 1 an error or a mismatch,\n"
            "2 usage error.\n",
            qf_cli_default_threads(), qf_tool_archive_help);
}

/* =====================================================================
 * Hashing a model's tensors
 * ===================================================================== */

typedef struct {
    const char *name;
    const uint8_t *data;
    uint64_t nbytes;
    uint8_t digest[QF_SHA256_LEN];
    /* Bytes each pass (per-tensor, all-data) has read. A pass gives back the
     * part of each chunk it reads that the other pass has read already, so
     * every byte is released by whichever pass reads it last. */
    _Atomic uint64_t progress[2];
} item;

typedef struct {
    int kind;
    qf_gguf *g;
    qf_weights *st;
    item *items;
    int64_t n;
    uint8_t all[QF_SHA256_LEN];
    _Atomic int64_t next;
    _Atomic uint64_t done[2]; /* bytes read by each pass (0 per-tensor, 1 all-data) */
    qf_progress *prog;
    _Atomic int failed; /* out of memory in a worker */
    int serial;         /* the passes run one after the other: no waiting */
} model;

static void model_close(model *m)
{
    qf_gguf_close(m->g);
    qf_weights_close(m->st);
    free(m->items);
    memset(m, 0, sizeof *m);
}

static int model_open(const char *path, model *m, qf_err *err)
{
    int64_t i;
    int kind;

    memset(m, 0, sizeof *m);
    if ((kind = qf_tool_model_path(path, &path, err)) != 0)
        return kind;
    kind = qf_tool_sniff(path, err);
    if (kind < 0)
        return kind;
    m->kind = kind;
    if (kind == QF_KIND_GGUF) {
        int rc = qf_gguf_open(path, &m->g, err);
        if (rc)
            return rc;
        m->n = qf_gguf_tensor_count(m->g);
    } else {
        int rc = qf_weights_open(path, &m->st, err);
        if (rc)
            return rc;
        m->n = qf_weights_count(m->st);
    }
    m->items = calloc((size_t)(m->n ? m->n : 1), sizeof *m->items);
    if (!m->items) {
        model_close(m);
        return qf_err_set(err, QF_ENOMEM, "%s: out of memory", path);
    }
    for (i = 0; i < m->n; i++) {
        item *it = &m->items[i];
        if (m->g) {
            const qf_gguf_tensor *t = qf_gguf_tensor_at(m->g, i);
            it->name = t->name;
            it->data = t->data;
            it->nbytes = t->nbytes;
        } else {
            const qf_st_tensor *t = qf_weights_at(m->st, i);
            it->name = t->name;
            it->data = t->data;
            it->nbytes = t->nbytes;
        }
    }
    return 0;
}

/* Give back the pages of bytes [lo, hi) of tensor i. */
static void release(model *m, int64_t i, uint64_t lo, uint64_t hi)
{
    if (hi <= lo)
        return;
    if (m->g)
        qf_gguf_release_range(m->g, i, lo, hi - lo);
    else
        qf_weights_release_range(m->st, i, lo, hi - lo);
}

/*
 * Hash tensor i with `a` (and `b` too when one pass feeds both digests),
 * as pass number `pass` (0 per-tensor, 1 all-data; `single` when it is the
 * only pass), releasing pages behind it.
 */
static void hash_tensor(model *m, int64_t i, int pass, int single, qf_sha256 *a, qf_sha256 *b)
{
    item *it = &m->items[i];
    uint64_t off = 0, n = it->nbytes;

    while (off < n) {
        size_t k = n - off > CHUNK ? CHUNK : (size_t)(n - off);
        uint64_t other;
        /* Ahead of the other pass by more than MAX_LEAD: wait for it. The pass
         * behind never waits, so both always progress. */
        while (!single && !m->serial && !m->failed &&
               atomic_load(&m->done[pass]) > atomic_load(&m->done[1 - pass]) + MAX_LEAD)
            usleep(200);
        qf_sha256_update(a, it->data + off, k);
        if (b)
            qf_sha256_update(b, it->data + off, k);
        qf_progress_add(m->prog, single ? 2 * (uint64_t)k : k);
        atomic_store(&it->progress[pass], off + k);
        atomic_fetch_add(&m->done[pass], (uint64_t)k);
        other = single ? off + k : atomic_load(&it->progress[1 - pass]);
        release(m, i, off, other < off + k ? other : off + k);
        off += k;
    }
}

static void *per_tensor_worker(void *arg)
{
    model *m = arg;
    qf_sha256 *h = qf_sha256_new();
    int64_t i;

    if (!h) {
        m->failed = 1;
        return NULL;
    }
    while ((i = atomic_fetch_add(&m->next, 1)) < m->n) {
        qf_sha256_reset(h);
        hash_tensor(m, i, 0, 0, h, NULL);
        qf_sha256_final(h, m->items[i].digest);
    }
    qf_sha256_free(h);
    return NULL;
}

static void *all_data_worker(void *arg)
{
    model *m = arg;
    qf_sha256 *h = qf_sha256_new();
    int64_t i;

    if (!h) {
        m->failed = 1;
        return NULL;
    }
    for (i = 0; i < m->n; i++)
        hash_tensor(m, i, 1, 0, h, NULL);
    qf_sha256_final(h, m->all);
    qf_sha256_free(h);
    return NULL;
}

/* Fill every item's digest and m->all. Returns 0 or QF_ENOMEM. */
static int hash_model(model *m, int threads, const char *label, qf_err *err)
{
    uint64_t total = 0;
    int64_t i;

    for (i = 0; i < m->n; i++) {
        total += m->items[i].nbytes;
        atomic_store(&m->items[i].progress[0], 0);
        atomic_store(&m->items[i].progress[1], 0);
    }
    atomic_store(&m->done[0], 0);
    atomic_store(&m->done[1], 0);
    m->serial = 0;
    m->prog = qf_progress_new(label, 2 * total);
    if (threads <= 1) {
        /* one pass: both digests fed from the same bytes while they are hot */
        qf_sha256 *all = qf_sha256_new(), *one = qf_sha256_new();
        if (!all || !one)
            m->failed = 1;
        for (i = 0; !m->failed && i < m->n; i++) {
            qf_sha256_reset(one);
            hash_tensor(m, i, 0, 1, one, all);
            qf_sha256_final(one, m->items[i].digest);
        }
        if (!m->failed)
            qf_sha256_final(all, m->all);
        qf_sha256_free(all);
        qf_sha256_free(one);
    } else {
        pthread_t tid[256];
        int t, started = 0;
        atomic_store(&m->next, 0);
        for (t = 0; t < threads && t < 256; t++) {
            if (pthread_create(&tid[t], NULL, t == 0 ? all_data_worker : per_tensor_worker, m))
                break;
            started++;
        }
        if (started < 2) { /* could not start threads: finish here */
            m->serial = started == 0;
            per_tensor_worker(m);
            if (started == 0)
                all_data_worker(m);
        }
        for (t = 0; t < started; t++)
            pthread_join(tid[t], NULL);
    }
    qf_progress_free(m->prog);
    m->prog = NULL;
    if (m->failed)
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    return 0;
}

static int file_sha256(const char *path, char hex[QF_SHA256_HEX], qf_err *err)
{
    qf_map *map = NULL;
    qf_sha256 *h = NULL;
    uint8_t d[QF_SHA256_LEN];
    uint64_t off = 0, size;
    int rc;

    if ((rc = qf_map_open(path, &map, err)) != 0)
        return rc;
    h = qf_sha256_new();
    if (!h) {
        qf_map_close(map);
        return qf_err_set(err, QF_ENOMEM, "out of memory");
    }
    size = qf_map_size(map);
    while (off < size) {
        uint64_t k = size - off > CHUNK ? CHUNK : size - off;
        qf_sha256_update(h, qf_map_data(map) + off, (size_t)k);
        qf_map_release(map, off, k);
        off += k;
    }
    qf_sha256_final(h, d);
    qf_sha256_hex(d, hex);
    qf_sha256_free(h);
    qf_map_close(map);
    return 0;
}

/* =====================================================================
 * Manifests
 * ===================================================================== */

static int print_manifest(const char *path, int threads, int file_hash, qf_json *j)
{
    model m;
    qf_err err = { 0 };
    char hex[QF_SHA256_HEX], fhex[QF_SHA256_HEX];
    int64_t i;

    if (model_open(path, &m, &err) != 0 || hash_model(&m, threads, "hashing", &err) != 0) {
        qf_cli_report(&err);
        model_close(&m);
        return QF_EXIT_FAIL;
    }
    if (file_hash && file_sha256(path, fhex, &err) != 0) {
        qf_cli_report(&err);
        model_close(&m);
        return QF_EXIT_FAIL;
    }
    if (j) {
        qf_json_obj_begin(j);
        qf_json_key(j, "file");
        qf_json_str(j, path);
        qf_json_key(j, "tensors");
        qf_json_arr_begin(j);
    }
    for (i = 0; i < m.n; i++) {
        qf_sha256_hex(m.items[i].digest, hex);
        if (j) {
            qf_json_obj_begin(j);
            qf_json_key(j, "name");
            qf_json_str(j, m.items[i].name);
            qf_json_key(j, "bytes");
            qf_json_u64(j, m.items[i].nbytes);
            qf_json_key(j, "sha256");
            qf_json_str(j, hex);
            qf_json_obj_end(j);
        } else {
            printf("sha256    %s  %s:%s\n", hex, path, m.items[i].name);
        }
    }
    qf_sha256_hex(m.all, hex);
    if (j) {
        qf_json_arr_end(j);
        qf_json_key(j, "sha256_tensor_data");
        qf_json_str(j, hex);
        if (file_hash) {
            qf_json_key(j, "sha256_file");
            qf_json_str(j, fhex);
        }
        qf_json_obj_end(j);
    } else {
        printf("sha256    %s  %s\n", hex, path);
        if (file_hash)
            printf("%s  %s\n", fhex, path);
    }
    model_close(&m);
    return 0;
}

typedef struct {
    char *rest;                   /* "<file>:<tensor>" or "<file>" */
    uint8_t digest[QF_SHA256_LEN];
    int64_t tensor;               /* index in the model, -1 for the all-data line */
    int line;
} mline;

/* Read "sha256 <hex> <rest>" lines. Other hash kinds are skipped. */
static int read_manifest(const char *path, mline **out, int *n_out, qf_err *err)
{
    FILE *f = fopen(path, "r");
    char buf[8192];
    mline *v = NULL;
    int n = 0, cap = 0, lineno = 0, rc = 0;

    *out = NULL;
    *n_out = 0;
    if (!f)
        return qf_err_set(err, QF_EIO, "%s: %s", path, strerror(errno));
    while (fgets(buf, sizeof buf, f)) {
        char *p = buf, *hex, *rest;
        size_t len = strlen(buf);
        lineno++;
        if (len && buf[len - 1] != '\n' && !feof(f)) {
            rc = qf_err_set(err, QF_EFORMAT, "%s:%d: line too long", path, lineno);
            goto done;
        }
        while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            buf[--len] = '\0';
        if (len == 0)
            continue;
        if (strncmp(p, "sha256", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
            continue; /* another hash kind (xxh64, sha1, uuid): not ours to check */
        p += 6;
        while (*p == ' ' || *p == '\t')
            p++;
        hex = p;
        if (strlen(hex) < 66 || (hex[64] != ' ' && hex[64] != '\t')) {
            rc = qf_err_set(err, QF_EFORMAT, "%s:%d: expected 'sha256 <64 hex digits>  <name>'",
                            path, lineno);
            goto done;
        }
        rest = hex + 64;
        while (*rest == ' ' || *rest == '\t')
            rest++;
        if (n == cap) {
            mline *nv;
            cap = cap ? 2 * cap : 64;
            nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv) {
                rc = qf_err_set(err, QF_ENOMEM, "out of memory");
                goto done;
            }
            v = nv;
        }
        if (qf_sha256_parse(hex, v[n].digest) != 0 || !*rest) {
            rc = qf_err_set(err, QF_EFORMAT, "%s:%d: expected 'sha256 <64 hex digits>  <name>'",
                            path, lineno);
            goto done;
        }
        v[n].rest = strdup(rest);
        v[n].tensor = -1;
        v[n].line = lineno;
        if (!v[n].rest) {
            rc = qf_err_set(err, QF_ENOMEM, "out of memory");
            goto done;
        }
        n++;
    }
    if (n == 0)
        rc = qf_err_set(err, QF_EFORMAT, "%s: no sha256 lines", path);
done:
    fclose(f);
    if (rc) {
        while (n > 0)
            free(v[--n].rest);
        free(v);
        return rc;
    }
    *out = v;
    *n_out = n;
    return 0;
}

static int64_t model_find(const model *m, const char *name)
{
    return m->g ? qf_gguf_find_tensor(m->g, name) : qf_weights_find(m->st, name);
}

/* The file a manifest is about: the name on its all-data line (the one line
 * with no tensor), as given or beside the manifest. */
static char *manifest_target(const char *manifest, const mline *v, int n)
{
    const char *name = v[n - 1].rest;
    const char *slash = strrchr(manifest, '/');
    char *path;
    size_t len;

    if (access(name, R_OK) == 0 || name[0] == '/' || !slash)
        return strdup(name);
    len = (size_t)(slash - manifest) + 1 + strlen(name) + 1;
    path = malloc(len);
    if (path)
        snprintf(path, len, "%.*s/%s", (int)(slash - manifest), manifest, name);
    return path;
}

static int check(const char *manifest, const char *file_arg, int threads, qf_json *j)
{
    mline *v = NULL;
    int nv = 0, k, rc = QF_EXIT_FAIL;
    model m;
    qf_err err = { 0 };
    char *file = NULL;
    int64_t i, bad = 0, ok = 0;
    uint8_t *seen = NULL;

    memset(&m, 0, sizeof m);
    if (read_manifest(manifest, &v, &nv, &err) != 0) {
        qf_cli_report(&err);
        goto done;
    }
    file = file_arg ? strdup(file_arg) : manifest_target(manifest, v, nv);
    if (!file) {
        qf_cli_error("out of memory");
        goto done;
    }
    if (model_open(file, &m, &err) != 0 || hash_model(&m, threads, "checking", &err) != 0) {
        qf_cli_report(&err);
        goto done;
    }
    seen = calloc((size_t)(m.n ? m.n : 1), 1);
    if (!seen) {
        qf_cli_error("out of memory");
        goto done;
    }
    /* match each line to a tensor: the name after some ':' */
    for (k = 0; k < nv; k++) {
        char *c;
        for (c = strchr(v[k].rest, ':'); c; c = strchr(c + 1, ':')) {
            int64_t t = model_find(&m, c + 1);
            if (t >= 0) {
                v[k].tensor = t;
                break;
            }
        }
    }
    if (j) {
        qf_json_obj_begin(j);
        qf_json_key(j, "manifest");
        qf_json_str(j, manifest);
        qf_json_key(j, "file");
        qf_json_str(j, file);
        qf_json_key(j, "results");
        qf_json_arr_begin(j);
    }
    for (k = 0; k < nv; k++) {
        const char *status;
        const char *what = v[k].tensor >= 0 ? m.items[v[k].tensor].name : NULL;
        if (v[k].tensor >= 0) {
            seen[v[k].tensor] = 1;
            status = memcmp(v[k].digest, m.items[v[k].tensor].digest, QF_SHA256_LEN) ? "MISMATCH"
                                                                                     : "OK";
        } else if (strchr(v[k].rest, ':') && k != nv - 1) {
            status = "MISSING"; /* names a tensor the file does not have */
        } else {
            status = memcmp(v[k].digest, m.all, QF_SHA256_LEN) ? "MISMATCH" : "OK";
        }
        if (strcmp(status, "OK") == 0)
            ok++;
        else
            bad++;
        if (j) {
            qf_json_obj_begin(j);
            qf_json_key(j, "name");
            if (what)
                qf_json_str(j, what);
            else
                qf_json_str(j, v[k].rest);
            qf_json_key(j, "status");
            qf_json_str(j, status);
            qf_json_obj_end(j);
        } else if (qf_cli_verbosity >= 1 || strcmp(status, "OK") != 0) {
            if (what)
                printf("%s:%s: %s\n", file, what, status);
            else if (strcmp(status, "MISSING") == 0)
                printf("%s: %s\n", v[k].rest, status);
            else
                printf("%s: %s (all tensor data)\n", file, status);
        }
    }
    for (i = 0; i < m.n; i++) {
        if (seen[i])
            continue;
        bad++;
        if (j) {
            qf_json_obj_begin(j);
            qf_json_key(j, "name");
            qf_json_str(j, m.items[i].name);
            qf_json_key(j, "status");
            qf_json_str(j, "NOT IN MANIFEST");
            qf_json_obj_end(j);
        } else {
            printf("%s:%s: NOT IN MANIFEST\n", file, m.items[i].name);
        }
    }
    if (j) {
        qf_json_arr_end(j);
        qf_json_key(j, "ok");
        qf_json_u64(j, (uint64_t)ok);
        qf_json_key(j, "failed");
        qf_json_u64(j, (uint64_t)bad);
        qf_json_obj_end(j);
    }
    if (bad)
        qf_cli_error("%s: %" PRId64 " of %d entries do not match %s", file, bad, nv, manifest);
    else
        qf_cli_info(1, "%s: all %d entries match", file, nv);
    rc = bad ? QF_EXIT_FAIL : 0;
done:
    for (k = 0; k < nv; k++)
        free(v[k].rest);
    free(v);
    free(seen);
    free(file);
    model_close(&m);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "check", required_argument, NULL, 'c' }, { "threads", required_argument, NULL, 't' },
        { "file-hash", no_argument, NULL, 'H' },   { "json", no_argument, NULL, 'J' },
        { "quiet", no_argument, NULL, 'q' },       { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *manifest = NULL;
    int c, threads = qf_cli_default_threads(), file_hash = 0, json = 0, rc = 0, i;
    uint64_t v;
    qf_json j;

    qf_cli_init(argv[0]);
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:t:qvh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': manifest = optarg; break;
        case 't':
            if (qf_cli_parse_u64(optarg, 1, 256, 0, &v) != 0)
                return qf_cli_usage_error("--threads: expected 1..256, got '%s'", optarg);
            threads = (int)v;
            break;
        case 'H': file_hash = 1; break;
        case 'J': json = 1; break;
        case 'q': qf_cli_verbosity = 0; break;
        case 'v': qf_cli_verbosity++; break;
        case 'h': usage(stdout); return 0;
        case 'V': qf_cli_version(); return 0;
        case ':': return qf_cli_usage_error("option '%s' needs an argument", argv[optind - 1]);
        default: return qf_cli_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (json) {
        qf_json_init(&j, stdout, 1);
        qf_json_arr_begin(&j);
    }
    if (manifest) {
        if (argc - optind > 1)
            return qf_cli_usage_error("--check takes at most one FILE");
        if (optind >= argc && qf_tool_sniff(manifest, NULL) == QF_KIND_QFM) /* a QFM checks itself */
            rc = qf_tool_qfm_check(manifest, threads, json ? &j : NULL);
        else
            rc = check(manifest, optind < argc ? argv[optind] : NULL, threads, json ? &j : NULL);
    } else {
        if (optind >= argc)
            return qf_cli_usage_error("missing FILE");
        for (i = optind; i < argc; i++)
            if (qf_tool_sniff(argv[i], NULL) == QF_KIND_QFM) {
                if (qf_tool_qfm_manifest(argv[i], threads, json ? &j : NULL) != 0)
                    rc = QF_EXIT_FAIL;
            } else if (print_manifest(argv[i], threads, file_hash, json ? &j : NULL) != 0)
                rc = QF_EXIT_FAIL;
    }
    if (json) {
        qf_json_arr_end(&j);
        qf_json_end(&j);
    }
    return rc;
}
