/*
 * quantize/budget.h - choose one candidate per item so that the summed error
 * is smallest while the summed size stays within a budget (a multiple-choice
 * knapsack). The items are abstract: for quantization an item is a tensor and
 * a candidate one ggml type it may take, with its size in bytes and its
 * measured error (convert/quantize_budget.h makes those lists).
 *
 * The solver, in this order:
 *
 *   1. Pareto frontier per item: candidates sorted by size (ties: error,
 *      then index); one that is not strictly better than every smaller one
 *      is dropped (it can never be part of an optimum).
 *   2. Lagrangian sweep: the lower convex hull of each frontier gives
 *      segments with a price (error saved per byte). Starting from every
 *      item's smallest candidate, segments are taken in order of price
 *      (ties: item index, then size) while they fit; an item whose next
 *      segment does not fit takes no more segments of the sweep. Without the
 *      budget cut this is the optimum of every Lagrangian relaxation.
 *   3. Exact dynamic programming over the bytes above the minimum, in units
 *      of the greatest common divisor of the size steps when the slack holds
 *      at most QF_BUDGET_DP_CELLS of them (then the result is the true
 *      optimum), otherwise in coarse units with every step rounded up (so a
 *      coarse solution always fits).
 *   4. Each of the two solutions is then filled greedily: while some item
 *      can move to a larger candidate of its frontier within the slack, the
 *      move with the most error saved per byte is made (ties: item index,
 *      then candidate).
 *   The solution with the lower error wins (ties: the sweep's).
 *
 * Deterministic: the result depends only on the inputs, never on memory
 * layout or threads. Cost: O(n k log(n k)) for the sweep, O(n k B) for the
 * programme with B <= QF_BUDGET_DP_CELLS cells, n k at a time for each greedy
 * move (k candidates per item).
 */
#ifndef QF_BUDGET_H
#define QF_BUDGET_H

#include <stdint.h>

#include "formats/error.h"

/* Most byte cells the dynamic programme uses (its table holds one byte per
 * item and cell; it is shrunk so that the table stays under 64 MiB). */
#define QF_BUDGET_DP_CELLS (1 << 17)

/* Most candidates of one item. */
#define QF_BUDGET_MAX_CAND 64

/* One item: n candidates (plain value struct; the arrays are borrowed). */
typedef struct qf_budget_item {
    int n;                  /* 1..QF_BUDGET_MAX_CAND */
    const uint64_t *bytes;  /* n sizes */
    const double *err;      /* n errors: finite, >= 0 */
} qf_budget_item;

/* What the solver found (plain value struct). */
typedef struct qf_budget_result {
    uint64_t bytes;      /* summed size of the choice */
    double err;          /* summed error of the choice */
    uint64_t min_bytes;  /* the smallest reachable total (each item's smallest candidate) */
    uint64_t max_bytes;  /* the total of every item's least-error candidate */
    int exact;           /* 1: the programme ran in exact units: `err` is the optimum */
} qf_budget_result;

/*
 * Choose choice[i] in [0, items[i].n) for the n items, minimizing the summed
 * error subject to the summed bytes <= budget. `choice` is the caller's
 * buffer of n ints. Returns 0 and fills *res (may be NULL); QF_ELIMIT with
 * "budget B bytes is below the smallest reachable size M bytes" (res->min_bytes
 * set, choice untouched) when no choice fits; QF_EINVAL for bad items (no
 * candidates, too many, negative or non-finite errors); QF_ENOMEM.
 */
int qf_budget_solve(const qf_budget_item *items, int64_t n, uint64_t budget, int *choice,
                    qf_budget_result *res, qf_err *err);

#endif /* QF_BUDGET_H */
