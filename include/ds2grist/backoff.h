/*
 * backoff.h - waiting before a retry: exponential backoff with jitter.
 *
 * Jitter spreads retries of many replicas and procedures so that they never
 * move in lockstep (a fleet retrying at the same instant is a load spike).
 * The random state is the caller's (rand_r), one per loop, no global.
 */
#ifndef D2G_BACKOFF_H
#define D2G_BACKOFF_H

#include <stdint.h>

/* ms give or take 20 %. */
int64_t d2g_backoff_jitter(unsigned *rng, int64_t ms);
/* The n-th retry's delay (n >= 1): base doubled n-1 times, at most max, jittered. */
int64_t d2g_backoff_delay(unsigned *rng, int64_t base_ms, int64_t max_ms, int n);

#endif
