/*
 * schedule.h - when each procedure is checked, how many go in one check, and
 * which replica checks it. Pure functions (no I/O), unit-tested.
 *
 * Adaptive interval: a procedure is checked again after a tenth of the time it
 * has been quiet, between its minimum (poll_interval_s) and its maximum
 * (poll_interval_max_s): one that changed a minute ago is checked at the
 * minimum, one quiet for a day at the maximum.
 *
 * Batches: the due procedures of one token that have waited longest go first
 * (earliest due, then the lowest index), up to the batch size; the batch size
 * halves when DS refuses a batch (complexity, timeout, request too large) and
 * doubles back after three good answers.
 *
 * Replicas: each procedure belongs to the live replica with the highest
 * rendezvous hash of (replica id, procedure number): an even split that
 * moves only the dead replica's procedures when one disappears.
 */
#ifndef D2G_SCHEDULE_H
#define D2G_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

/* How much sooner than its quiet time a procedure is checked again. */
#define D2G_SCHED_QUIET_RATIO 10

/* The next check interval of a procedure quiet for quiet_ms (< 0: unknown,
 * treated as long quiet), within [min_ms, max_ms] (max below min means min). */
int64_t d2g_sched_interval_ms(int64_t min_ms, int64_t max_ms, int64_t quiet_ms);

/* When, within [0.9, 1] x interval_ms from now, the next check goes: a little
 * spread so that replicas and tokens do not beat in step, never later than the
 * interval (a change is seen within one interval). rng: rand_r state. */
int64_t d2g_sched_spread(unsigned *rng, int64_t interval_ms);

/* A candidate for a check: when it is due and who it is. */
typedef struct d2g_sched_item {
    int64_t due;
    size_t index;
} d2g_sched_item_t;

/* Picks up to max of the items due at now (due <= now), the earliest first
 * (ties: lowest index); writes their indexes in that order to out and returns
 * how many. Reorders items. */
size_t d2g_sched_pick(d2g_sched_item_t *items, size_t n, int64_t now, size_t max, size_t *out);

/* Batch size after an answer: refused (DS refused the batch as too big) halves
 * it (not below 1) and resets *streak; otherwise every third good answer in a
 * row doubles it, up to max. */
int d2g_sched_batch_after(int current, int max, int refused, int *streak);

/* The index in ids[0..n) of the replica that owns procedure number (n > 0). */
size_t d2g_sched_owner(const char *const *ids, size_t n, int64_t number);

#endif
