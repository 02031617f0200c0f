#include "formats/parallel.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

typedef struct {
    qf_range_fn fn;
    void *ctx;
    int64_t n, chunk;
    _Atomic int64_t next;
    _Atomic int rc;
} job;

typedef struct {
    job *j;
    int worker;
} slot;

static void run(job *j, int worker)
{
    for (;;) {
        int64_t b, e;
        int rc;
        if (atomic_load(&j->rc) != 0)
            return;
        b = atomic_fetch_add(&j->next, j->chunk);
        if (b >= j->n)
            return;
        e = b + j->chunk < j->n ? b + j->chunk : j->n;
        rc = j->fn(j->ctx, b, e, worker);
        if (rc != 0) {
            int zero = 0;
            atomic_compare_exchange_strong(&j->rc, &zero, rc);
            return;
        }
    }
}

static void *thread_main(void *arg)
{
    slot *s = arg;
    run(s->j, s->worker);
    return NULL;
}

int qf_parallel_for(int n_threads, int64_t n, int64_t chunk, qf_range_fn fn, void *ctx)
{
    job j;
    pthread_t tid[255];
    slot slots[255];
    int t, started = 0;

    if (n <= 0)
        return 0;
    if (chunk < 1)
        chunk = 1;
    if (n_threads < 1)
        n_threads = 1;
    if (n_threads > 256)
        n_threads = 256;
    if ((int64_t)n_threads > (n + chunk - 1) / chunk)
        n_threads = (int)((n + chunk - 1) / chunk);
    j.fn = fn;
    j.ctx = ctx;
    j.n = n;
    j.chunk = chunk;
    atomic_init(&j.next, 0);
    atomic_init(&j.rc, 0);
    for (t = 1; t < n_threads; t++) {
        slots[started].j = &j;
        slots[started].worker = t;
        if (pthread_create(&tid[started], NULL, thread_main, &slots[started]) != 0)
            break;
        started++;
    }
    run(&j, 0);
    for (t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    return atomic_load(&j.rc);
}
