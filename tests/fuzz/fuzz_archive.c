/*
 * tests/fuzz/fuzz_archive.c - libFuzzer target for the archive checks
 * (formats/archive), scan only: nothing is written.
 *
 *   make fuzz && build-fuzz/fuzz_archive -max_len=16384 CORPUS_DIR
 *
 * The first byte picks the kind (tar, tar.gz, tar.zst, zip); the rest is
 * the archive. Seeds: fixtures/malicious/archive-* with the kind byte put
 * in front (tests/fuzz/smoke.sh does it). On success every member listed
 * must be readable and sane; on failure the message must be one line
 * starting with the name.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/archive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char name[] = "fuzz.archive";
    qf_archive_limits lim;
    qf_archive *a = NULL;
    qf_err err = { 0 };
    qf_archive_kind kind;
    uint8_t *buf;
    int64_t i, n;

    if (size < 1)
        return 0;
    kind = (qf_archive_kind)(QF_ARCHIVE_TAR + data[0] % 4);
    /* a copy of exactly the archive's bytes: ASan catches a read past them */
    buf = malloc(size - 1 ? size - 1 : 1);
    if (!buf)
        return 0;
    memcpy(buf, data + 1, size - 1);
    qf_archive_limits_default(&lim);
    lim.max_bytes = 64u << 20; /* keep runs fast; bombs are still refused by ratio */
    lim.max_members = 1000;
    if (qf_archive_open_buffer(buf, size - 1, name, kind, NULL, &lim, &a, &err) != 0)
        abort(); /* a valid kind and buffer always open */
    if (qf_archive_unpack(a, &err) != 0) {
        if (err.code == 0 || strncmp(err.msg, name, sizeof name - 1) != 0 || strchr(err.msg, '\n') ||
            qf_archive_dir(a) != NULL || qf_archive_member_count(a) != 0)
            abort();
    } else {
        n = qf_archive_member_count(a);
        for (i = 0; i < n; i++) {
            const qf_archive_member *m = qf_archive_member_at(a, i);
            if (!m || !m->name || m->path || m->in_place || strstr(m->name, "..") == m->name ||
                m->name[0] == '/')
                abort();
            sink += strlen(m->name) + m->size;
        }
        if (qf_archive_member_at(a, n) != NULL || qf_archive_tmp(a) != NULL)
            abort();
        sink += strlen(qf_archive_folder(a));
    }
    qf_archive_close(a);
    free(buf);
    return 0;
}
