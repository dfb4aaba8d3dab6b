/* cells.c - per-row cell digests, see cells.h. */
#include "cells.h"

#include "ds2grist/alloc.h"

#include <stdlib.h>
#include <string.h>

#define FNV_BASIS 14695981039346656037ULL
#define FNV_PRIME 1099511628211ULL

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= FNV_PRIME;
    }
    return h;
}

static uint64_t fnv_u64(uint64_t h, uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    return fnv(h, b, 8);
}

/* A JSON value's type and content; objects in their order (the mapping's own). */
static uint64_t hash_json(uint64_t h, const json_t *v) {
    char tag = (char)('0' + (v ? (int)json_typeof(v) : 9));
    h = fnv(h, &tag, 1);
    if (!v)
        return h;
    switch (json_typeof(v)) {
    case JSON_STRING:
        h = fnv_u64(h, json_string_length(v));
        return fnv(h, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return fnv_u64(h, (uint64_t)json_integer_value(v));
    case JSON_REAL: {
        double d = json_real_value(v);
        uint64_t bits;
        memcpy(&bits, &d, sizeof(bits));
        return fnv_u64(h, bits);
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *e;
        h = fnv_u64(h, json_array_size(v));
        json_array_foreach(v, i, e) h = hash_json(h, e);
        return h;
    }
    case JSON_OBJECT: {
        const char *k;
        json_t *e;
        h = fnv_u64(h, json_object_size(v));
        json_object_foreach((json_t *)v, k, e) {
            h = fnv(h, k, strlen(k) + 1);
            h = hash_json(h, e);
        }
        return h;
    }
    default: /* true, false, null: the tag says it all */
        return h;
    }
}

static uint32_t fold(uint64_t h) { return (uint32_t)(h ^ (h >> 32)); }

uint32_t d2g_cells_value(const json_t *v) { return fold(hash_json(FNV_BASIS, v)); }

uint64_t d2g_cells_key(const d2g_record_t *r) {
    uint64_t h = fnv(FNV_BASIS, r->table, strlen(r->table) + 1);
    return hash_json(h, r->require);
}

uint32_t d2g_cells_colset(const d2g_record_t *r) {
    uint64_t h = FNV_BASIS;
    const char *k;
    json_t *e;
    json_object_foreach(r->fields, k, e) h = fnv(h, k, strlen(k) + 1);
    return fold(h);
}

void d2g_cells_clear(d2g_cells_t *c) {
    for (size_t i = 0; i < c->n; i++)
        free(c->v[i].h);
    free(c->v);
    c->v = NULL;
    c->n = 0;
}

void d2g_cells_of(const d2g_mapped_t *m, d2g_cells_t *out) {
    d2g_cells_clear(out);
    if (!m->n_records)
        return;
    out->v = d2g_calloc(m->n_records, sizeof(d2g_cells_row_t));
    for (size_t r = 0; r < m->n_records; r++) {
        const d2g_record_t *rec = &m->records[r];
        d2g_cells_row_t *row = &out->v[out->n++];
        row->key = d2g_cells_key(rec);
        row->colset = d2g_cells_colset(rec);
        row->n = (uint32_t)json_object_size(rec->fields);
        row->h = d2g_malloc((row->n + 1) * sizeof(uint32_t));
        size_t k = 0;
        const char *name;
        json_t *val;
        json_object_foreach(rec->fields, name, val) row->h[k++] = d2g_cells_value(val);
    }
}

const d2g_cells_row_t *d2g_cells_find(const d2g_cells_t *c, uint64_t key) {
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].key == key)
            return &c->v[i];
    return NULL;
}

static void put_le(unsigned char *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

char *d2g_cells_encode(const d2g_cells_t *c, size_t *len) {
    size_t size = 2;
    for (size_t i = 0; i < c->n; i++)
        size += 14 + 4 * (size_t)c->v[i].n;
    unsigned char *b = d2g_malloc(size + 1);
    *len = 0;
    if (!c->n)
        return (char *)b;
    b[0] = 'c';
    b[1] = 1;
    size_t o = 2;
    for (size_t i = 0; i < c->n; i++) {
        const d2g_cells_row_t *row = &c->v[i];
        uint32_t n = row->n > 0xffff ? 0 : row->n; /* a row that wide is not kept: written in full */
        put_le(b + o, row->key, 8);
        put_le(b + o + 8, n == row->n ? row->colset : 0, 4);
        put_le(b + o + 12, n, 2);
        o += 14;
        for (uint32_t k = 0; k < n; k++, o += 4)
            put_le(b + o, row->h[k], 4);
    }
    *len = o;
    return (char *)b;
}

int d2g_cells_decode(const char *s, size_t len, d2g_cells_t *out) {
    d2g_cells_clear(out);
    const unsigned char *b = (const unsigned char *)s;
    if (len == 0)
        return 0;
    if (len < 2 || b[0] != 'c' || b[1] != 1)
        return -1;
    size_t o = 2, rows = 0;
    /* Count and check first, then fill. */
    while (o < len) {
        if (len - o < 14)
            return -1;
        size_t n = (size_t)get_le(b + o + 12, 2);
        if (len - o - 14 < 4 * n)
            return -1;
        o += 14 + 4 * n;
        rows++;
    }
    out->v = d2g_calloc(rows, sizeof(d2g_cells_row_t));
    for (o = 2; o < len;) {
        d2g_cells_row_t *row = &out->v[out->n++];
        row->key = get_le(b + o, 8);
        row->colset = (uint32_t)get_le(b + o + 8, 4);
        row->n = (uint32_t)get_le(b + o + 12, 2);
        o += 14;
        row->h = d2g_malloc(((size_t)row->n + 1) * sizeof(uint32_t));
        for (uint32_t k = 0; k < row->n; k++, o += 4)
            row->h[k] = (uint32_t)get_le(b + o, 4);
    }
    return 0;
}

long d2g_cells_diff(const d2g_record_t *r, const d2g_cells_row_t *prior, const char *const *keep,
                    unsigned char *send) {
    size_t n = json_object_size(r->fields), k = 0;
    long changed = 0;
    const char *name;
    json_t *val;
    if (!prior || prior->n != n || n == 0 || prior->colset != d2g_cells_colset(r)) {
        memset(send, 1, n);
        return -1;
    }
    json_object_foreach(r->fields, name, val) {
        send[k] = prior->h[k] != d2g_cells_value(val);
        changed += send[k];
        k++;
    }
    if (!changed)
        return 0;
    k = 0;
    json_object_foreach(r->fields, name, val) {
        for (size_t j = 0; keep && keep[j] && !send[k]; j++)
            if (!strcmp(keep[j], name)) {
                send[k] = 1;
                changed++;
            }
        k++;
    }
    return changed;
}
