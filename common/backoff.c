/* backoff.c - exponential backoff with jitter, see backoff.h. */
#include "ds2grist/backoff.h"

#include <stdlib.h>

int64_t d2g_backoff_jitter(unsigned *rng, int64_t ms) {
    int64_t j = ms / 5;
    return j > 0 ? ms - j + (int64_t)(rand_r(rng) % (unsigned)(2 * j + 1)) : ms;
}

int64_t d2g_backoff_delay(unsigned *rng, int64_t base_ms, int64_t max_ms, int n) {
    int64_t d = base_ms;
    for (int i = 1; i < n && d < max_ms; i++)
        d *= 2;
    return d2g_backoff_jitter(rng, d < max_ms ? d : max_ms);
}
