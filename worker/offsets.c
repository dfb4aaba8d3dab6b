/* offsets.c - contiguous low-water mark of done messages, see offsets.h. */
#include "offsets.h"

#include "ds2grist/alloc.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry {
    int64_t offset;
    int done;
} entry_t;

/* A ring buffer of entries in offset order: done ones leave from the head. */
struct d2g_offsets {
    entry_t *v;
    size_t cap, head, len;
    uint32_t epoch;
};

d2g_offsets_t *d2g_offsets_new(void) { return d2g_calloc(1, sizeof(d2g_offsets_t)); }

void d2g_offsets_free(d2g_offsets_t *t) {
    if (t)
        free(t->v);
    free(t);
}

uint32_t d2g_offsets_reset(d2g_offsets_t *t) {
    t->head = t->len = 0;
    return ++t->epoch;
}

uint32_t d2g_offsets_epoch(const d2g_offsets_t *t) { return t->epoch; }

static entry_t *at(d2g_offsets_t *t, size_t i) { return &t->v[(t->head + i) % t->cap]; }

int d2g_offsets_add(d2g_offsets_t *t, int64_t offset) {
    if (t->len > 0 && at(t, t->len - 1)->offset >= offset)
        return -1;
    if (t->len == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        entry_t *v = d2g_malloc(cap * sizeof(entry_t));
        for (size_t i = 0; i < t->len; i++)
            v[i] = *at(t, i);
        free(t->v);
        t->v = v;
        t->cap = cap;
        t->head = 0;
    }
    entry_t *e = &t->v[(t->head + t->len) % t->cap];
    e->offset = offset;
    e->done = 0;
    t->len++;
    return 0;
}

int64_t d2g_offsets_done(d2g_offsets_t *t, uint32_t epoch, int64_t offset) {
    if (epoch != t->epoch || t->len == 0)
        return -1;
    /* Binary search: offsets increase along the ring. */
    size_t lo = 0, hi = t->len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (at(t, mid)->offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == t->len || at(t, lo)->offset != offset)
        return -1;
    at(t, lo)->done = 1;
    int64_t store = -1;
    while (t->len > 0 && at(t, 0)->done) {
        store = at(t, 0)->offset + 1;
        t->head = (t->head + 1) % t->cap;
        t->len--;
    }
    return store;
}

size_t d2g_offsets_pending(const d2g_offsets_t *t) { return t->len; }
