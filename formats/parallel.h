/*
 * formats/parallel.h - run a function over a range of items on N threads.
 *
 * Items are handed out in contiguous chunks from a shared counter, so the
 * split adapts to uneven work; callers that need results independent of the
 * thread count make each item's work independent of the others (every
 * qforge user does: rows of a tensor, tensors of a file).
 */
#ifndef QF_PARALLEL_H
#define QF_PARALLEL_H

#include <stdint.h>

/* Work on items [begin, end); `worker` is 0..n_threads-1. Returns 0 or a
 * negative code; the first failure stops the hand-out of further chunks. */
typedef int (*qf_range_fn)(void *ctx, int64_t begin, int64_t end, int worker);

/*
 * Call fn over [0, n) in chunks of `chunk` items (>= 1) on up to n_threads
 * threads (the caller's thread is one of them). Returns 0, the first negative
 * value fn returned, or QF_ENOMEM if threads could not be made and the work
 * could not be done on the caller's thread either (it always can: threads
 * that fail to start are simply not used).
 */
int qf_parallel_for(int n_threads, int64_t n, int64_t chunk, qf_range_fn fn, void *ctx);

#endif /* QF_PARALLEL_H */
