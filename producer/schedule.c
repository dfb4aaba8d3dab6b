/* schedule.c - adaptive intervals, batches, ownership, see schedule.h. */
#include "schedule.h"

#include <stdlib.h>

int64_t d2g_sched_interval_ms(int64_t min_ms, int64_t max_ms, int64_t quiet_ms) {
    if (max_ms < min_ms)
        max_ms = min_ms;
    if (quiet_ms < 0)
        return max_ms;
    int64_t v = quiet_ms / D2G_SCHED_QUIET_RATIO;
    return v < min_ms ? min_ms : v > max_ms ? max_ms : v;
}

int64_t d2g_sched_spread(unsigned *rng, int64_t interval_ms) {
    int64_t j = interval_ms / 10;
    return j > 0 ? interval_ms - (int64_t)(rand_r(rng) % (unsigned)(j + 1)) : interval_ms;
}

static int before(const d2g_sched_item_t *a, const d2g_sched_item_t *b) {
    return a->due < b->due || (a->due == b->due && a->index < b->index);
}

size_t d2g_sched_pick(d2g_sched_item_t *items, size_t n, int64_t now, size_t max, size_t *out) {
    /* Keep the best `max` due items at the front, sorted (insertion: max is small). */
    size_t k = 0;
    for (size_t i = 0; i < n && max > 0; i++) {
        if (items[i].due > now)
            continue;
        d2g_sched_item_t it = items[i];
        if (k == max && !before(&it, &items[k - 1]))
            continue;
        size_t j = k < max ? k++ : k - 1;
        /* items[j] is free (j == i or a slot already copied) or the worst, dropped. */
        while (j > 0 && before(&it, &items[j - 1])) {
            items[j] = items[j - 1];
            j--;
        }
        items[j] = it;
    }
    for (size_t i = 0; i < k; i++)
        out[i] = items[i].index;
    return k;
}

int d2g_sched_batch_after(int current, int max, int refused, int *streak) {
    if (refused) {
        *streak = 0;
        return current / 2 > 1 ? current / 2 : 1;
    }
    if (current >= max)
        return max;
    if (++*streak >= 3) {
        *streak = 0;
        return current * 2 < max ? current * 2 : max;
    }
    return current;
}

/* splitmix64's finaliser: a good mix of 64 bits. */
static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

size_t d2g_sched_owner(const char *const *ids, size_t n, int64_t number) {
    size_t best = 0;
    uint64_t best_h = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t h = 1469598103934665603ULL; /* FNV-1a of the id */
        for (const unsigned char *s = (const unsigned char *)ids[i]; *s; s++)
            h = (h ^ *s) * 1099511628211ULL;
        h = mix(h ^ mix((uint64_t)number));
        if (i == 0 || h > best_h) {
            best = i;
            best_h = h;
        }
    }
    return best;
}
