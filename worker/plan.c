/* plan.c - mapped dossiers into Grist requests, see plan.h. */
#include "plan.h"

#include "ds2grist/alloc.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *escape(const char *s) {
    char *e = curl_easy_escape(NULL, s, 0);
    char *r = d2g_strdup(e ? e : "");
    curl_free(e);
    return r;
}

/* "/tables/<escaped table><rest>" */
static char *path_of(const char *table, const char *rest) {
    char *esc = escape(table);
    size_t len = strlen(esc) + strlen(rest) + 16;
    char *p = d2g_malloc(len);
    snprintf(p, len, "/tables/%s%s", esc, rest);
    free(esc);
    return p;
}

d2g_op_t *d2g_ops_add(d2g_ops_t *ops, d2g_op_kind_t kind, const char *method, char *path, char *body,
                      const char *table) {
    if (ops->n == ops->cap) {
        ops->cap = ops->cap ? ops->cap * 2 : 8;
        ops->v = d2g_realloc(ops->v, ops->cap * sizeof(d2g_op_t));
    }
    d2g_op_t *o = &ops->v[ops->n++];
    memset(o, 0, sizeof(*o));
    o->kind = kind;
    snprintf(o->method, sizeof(o->method), "%s", method);
    o->path = path;
    o->body = body;
    o->table = table ? d2g_strdup(table) : NULL;
    return o;
}

void d2g_ops_clear(d2g_ops_t *ops) {
    for (size_t i = 0; i < ops->n; i++) {
        free(ops->v[i].path);
        free(ops->v[i].body);
        free(ops->v[i].table);
        free(ops->v[i].column);
        json_decref(ops->v[i].keep);
        json_decref(ops->v[i].change);
        free(ops->v[i].src);
    }
    free(ops->v);
    memset(ops, 0, sizeof(*ops));
}

/* --- schema needs ------------------------------------------------------------- */

d2g_need_t *d2g_plan_need(d2g_mapped_t *const *mapped, size_t n) {
    d2g_need_t *need = d2g_need_new();
    for (size_t i = 0; i < n; i++) {
        const d2g_mapped_t *m = mapped[i];
        if (!m)
            continue;
        for (size_t t = 0; t < m->n_tables; t++) {
            d2g_need_table(need, m->tables[t].id);
            for (size_t c = 0; c < m->tables[t].n_columns; c++)
                d2g_need_column(need, m->tables[t].id, &m->tables[t].columns[c]);
        }
        for (size_t r = 0; r < m->n_records; r++) {
            const char *cid;
            json_t *val;
            json_object_foreach(m->records[r].fields, cid, val)
                d2g_need_cell(need, m->records[r].table, cid, val);
        }
    }
    return need;
}

/* --- upserts ---------------------------------------------------------------------- */

/* A table's body being filled: {"records":[r1,r2,...]}; a body of changed
 * cells (diff) also keeps where each of its rows comes from. */
typedef struct body {
    char *table;
    int diff;
    char *text;
    size_t len, cap, rows;
    d2g_op_src_t *src;
    size_t cap_src;
} body_t;

static void body_flush(body_t *b, d2g_ops_t *ops) {
    if (!b->rows)
        return;
    memcpy(b->text + b->len, "]}", 3);
    d2g_op_t *o = d2g_ops_add(ops, D2G_OP_PUT, "PUT",
                              path_of(b->table, b->diff ? "/records?noparse=1&noadd=1" : "/records?noparse=1"),
                              d2g_strndup(b->text, b->len + 2), b->table);
    o->rows = b->rows;
    if (b->diff) {
        o->src = b->src;
        b->src = NULL;
        b->cap_src = 0;
    }
    b->len = 0;
    b->rows = 0;
}

static void body_add(body_t *b, const char *rec, size_t n, size_t batch_bytes, d2g_ops_t *ops,
                     size_t item, size_t record) {
    if (b->rows > 0 && b->len + n + 16 > batch_bytes)
        body_flush(b, ops);
    if (b->len + n + 16 > b->cap) {
        b->cap = (b->len + n + 16) * 2;
        b->text = d2g_realloc(b->text, b->cap);
    }
    if (b->rows == 0) {
        memcpy(b->text, "{\"records\":[", 12);
        b->len = 12;
    } else {
        b->text[b->len++] = ',';
    }
    memcpy(b->text + b->len, rec, n);
    b->len += n;
    if (b->diff) {
        if (b->rows == b->cap_src) {
            b->cap_src = b->cap_src ? b->cap_src * 2 : 64;
            b->src = d2g_realloc(b->src, b->cap_src * sizeof(d2g_op_src_t));
        }
        b->src[b->rows].item = item;
        b->src[b->rows].record = record;
    }
    b->rows++;
}

/* The bodies of one plan, by table and kind. */
typedef struct bodies {
    json_t *index; /* "<d|f><table>" -> index */
    body_t *v;
    size_t n;
} bodies_t;

static body_t *bodies_get(bodies_t *bs, const char *table, int diff) {
    size_t kl = strlen(table) + 2;
    char *k = d2g_malloc(kl);
    snprintf(k, kl, "%c%s", diff ? 'd' : 'f', table);
    json_t *slot = json_object_get(bs->index, k);
    size_t i;
    if (slot) {
        i = (size_t)json_integer_value(slot);
    } else {
        bs->v = d2g_realloc(bs->v, (bs->n + 1) * sizeof(body_t));
        memset(&bs->v[bs->n], 0, sizeof(body_t));
        bs->v[bs->n].table = d2g_strdup(table);
        bs->v[bs->n].diff = diff;
        json_object_set_new(bs->index, k, json_integer((json_int_t)bs->n));
        i = bs->n++;
    }
    free(k);
    return &bs->v[i];
}

static void bodies_done(bodies_t *bs, d2g_ops_t *ops) {
    for (size_t k = 0; k < bs->n; k++) {
        body_flush(&bs->v[k], ops);
        free(bs->v[k].text);
        free(bs->v[k].table);
        free(bs->v[k].src);
    }
    free(bs->v);
    json_decref(bs->index);
}

const char *const d2g_plan_keep_columns[] = {"date_derniere_modification", NULL};

/* A record's text: in full, or only the fields send marks. */
static char *record_text(const d2g_record_t *r, const unsigned char *send) {
    json_t *fields = r->fields;
    if (send) {
        fields = json_object();
        size_t k = 0;
        const char *name;
        json_t *val;
        json_object_foreach(r->fields, name, val) {
            if (send[k++])
                json_object_set(fields, name, val);
        }
    }
    json_t *rec = json_pack("{s:O, s:O}", "require", r->require, "fields", fields);
    char *text = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    if (send)
        json_decref(fields);
    return text;
}

void d2g_plan_puts_diff(d2g_mapped_t *const *mapped, size_t n, size_t batch_bytes,
                        const d2g_cells_t *const *prior, d2g_ops_t *ops, int *too_big, int *sends) {
    bodies_t bs = {json_object(), NULL, 0};
    unsigned char *send = NULL;
    size_t send_cap = 0;
    for (size_t i = 0; i < n; i++) {
        const d2g_mapped_t *m = mapped[i];
        const d2g_cells_t *was = prior ? prior[i] : NULL;
        too_big[i] = 0;
        if (sends)
            sends[i] = 0;
        if (!m)
            continue;
        /* Serialise the dossier's records first: one that cannot fit refuses it whole. */
        char **texts = d2g_calloc(m->n_records + 1, sizeof(char *));
        int *diff = d2g_calloc(m->n_records + 1, sizeof(int));
        for (size_t r = 0; r < m->n_records && !too_big[i]; r++) {
            const d2g_record_t *rec = &m->records[r];
            long changed = -1;
            if (was && was->n) {
                size_t nf = json_object_size(rec->fields);
                if (nf > send_cap) {
                    send_cap = nf * 2;
                    send = d2g_realloc(send, send_cap);
                }
                changed = d2g_cells_diff(rec, d2g_cells_find(was, d2g_cells_key(rec)),
                                         rec->table_index == 0 ? d2g_plan_keep_columns : NULL, send);
            }
            if (changed == 0)
                continue; /* unchanged since last written */
            diff[r] = changed > 0;
            texts[r] = record_text(rec, diff[r] ? send : NULL);
            if (!texts[r] || strlen(texts[r]) + 32 > batch_bytes)
                too_big[i] = 1;
        }
        for (size_t r = 0; r < m->n_records && !too_big[i]; r++) {
            if (!texts[r])
                continue;
            body_add(bodies_get(&bs, m->records[r].table, diff[r]), texts[r], strlen(texts[r]), batch_bytes,
                     ops, i, r);
            if (sends)
                sends[i] = 1;
        }
        for (size_t r = 0; r < m->n_records; r++)
            free(texts[r]);
        free(texts);
        free(diff);
    }
    free(send);
    bodies_done(&bs, ops);
}

void d2g_plan_too_big(d2g_mapped_t *const *mapped, size_t n, size_t batch_bytes, int *too_big) {
    for (size_t i = 0; i < n; i++) {
        const d2g_mapped_t *m = mapped[i];
        too_big[i] = 0;
        for (size_t r = 0; m && r < m->n_records && !too_big[i]; r++) {
            /* {"require":R,"fields":F}: 22 bytes around them, as record_text makes it */
            size_t len = json_dumpb(m->records[r].require, NULL, 0, JSON_COMPACT) +
                         json_dumpb(m->records[r].fields, NULL, 0, JSON_COMPACT) + 22;
            too_big[i] = len + 32 > batch_bytes;
        }
    }
}

void d2g_plan_puts(d2g_mapped_t *const *mapped, size_t n, size_t batch_bytes, d2g_ops_t *ops,
                   int *too_big) {
    d2g_plan_puts_diff(mapped, n, batch_bytes, NULL, ops, too_big, NULL);
}

void d2g_plan_refill(d2g_mapped_t *const *mapped, const d2g_op_src_t *src, size_t n, size_t batch_bytes,
                     d2g_ops_t *ops) {
    bodies_t bs = {json_object(), NULL, 0};
    for (size_t k = 0; k < n; k++) {
        const d2g_mapped_t *m = mapped[src[k].item];
        if (!m || src[k].record >= m->n_records)
            continue;
        const d2g_record_t *rec = &m->records[src[k].record];
        char *text = record_text(rec, NULL);
        if (text)
            body_add(bodies_get(&bs, rec->table, 0), text, strlen(text), batch_bytes, ops, src[k].item,
                     src[k].record);
        free(text);
    }
    bodies_done(&bs, ops);
}

d2g_op_src_t *d2g_plan_missing(const d2g_op_t *put, json_t *answer, size_t *n) {
    *n = 0;
    json_t *ids = json_object_get(answer, "recordIds");
    if (!put->src || !json_is_array(ids) || json_array_size(ids) != put->rows)
        return NULL;
    d2g_op_src_t *out = NULL;
    for (size_t k = 0; k < put->rows; k++) {
        json_t *e = json_array_get(ids, k);
        if (!json_is_array(e) || json_array_size(e) > 0)
            continue;
        out = d2g_realloc(out, (*n + 1) * sizeof(*out));
        out[(*n)++] = put->src[k];
    }
    return out;
}

/* --- rows that are gone ---------------------------------------------------------------- */

/* GETs of table's rows whose column is one of values, the lists cut so that
 * no URL exceeds the limit. keep (may be NULL) is split along. */
static void plan_find(d2g_ops_t *ops, const char *table, const char *column, json_t *values,
                      json_t *keep) {
    size_t i = 0, total = json_array_size(values);
    while (i < total) {
        json_t *chunk = json_array(), *chunk_keep = keep ? json_object() : NULL;
        size_t len = 0;
        for (; i < total && (json_array_size(chunk) == 0 || len + 24 < D2G_PLAN_FIND_URL_MAX); i++) {
            json_t *v = json_array_get(values, i);
            json_array_append(chunk, v);
            len += 20 + 3; /* a 64-bit number and its escaped comma (%2C) */
            if (keep) {
                char num[24];
                snprintf(num, sizeof(num), "%" PRId64, d2g_mapping_number_of(v));
                json_object_set(chunk_keep, num, json_object_get(keep, num));
            }
        }
        json_t *filter = json_pack("{s:O}", column, chunk);
        char *fs = json_dumps(filter, JSON_COMPACT), *fesc = escape(fs);
        size_t rl = strlen(fesc) + 32;
        char *rest = d2g_malloc(rl);
        snprintf(rest, rl, "/records?filter=%s", fesc);
        d2g_op_t *o = d2g_ops_add(ops, D2G_OP_FIND, "GET", path_of(table, rest), NULL, table);
        free(rest);
        o->keep = chunk_keep;
        o->column = d2g_strdup(column);
        free(fs);
        free(fesc);
        json_decref(filter);
        json_decref(chunk);
    }
}

static uint64_t fnv(uint64_t h, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

uint64_t d2g_plan_rowsets_digest(const d2g_mapped_t *m) {
    if (!m->n_rowsets)
        return 0;
    uint64_t h = 14695981039346656037ULL;
    for (size_t r = 0; r < m->n_rowsets; r++) {
        const d2g_rowset_t *rs = &m->rowsets[r];
        h = fnv(h, rs->table, strlen(rs->table) + 1);
        size_t k;
        json_t *v;
        json_array_foreach(rs->row_ids, k, v) {
            const char *id = json_string_value(v);
            if (id)
                h = fnv(h, id, strlen(id) + 1);
        }
        h = fnv(h, "\n", 1);
    }
    return h ? h : 1;
}

void d2g_plan_finds(d2g_mapped_t *const *mapped, size_t n, const int *skip, d2g_ops_t *ops) {
    json_t *child = json_object();   /* table -> {"nums": [...], "keep": {dossier: {id: true}}} */
    json_t *removal = json_object(); /* "table\ncol" -> [values] */
    for (size_t i = 0; i < n; i++) {
        const d2g_mapped_t *m = mapped[i];
        if (!m)
            continue;
        for (size_t r = 0; r < m->n_rowsets && !(skip && skip[i]); r++) {
            const d2g_rowset_t *rs = &m->rowsets[r];
            json_t *t = json_object_get(child, rs->table);
            if (!t) {
                const char *col = rs->table_index < m->n_tables ? m->tables[rs->table_index].dossier_col : NULL;
                t = json_pack("{s:[], s:{}, s:s}", "nums", "keep", "col", col ? col : "dossier");
                json_object_set_new(child, rs->table, t);
            }
            char num[24];
            snprintf(num, sizeof(num), "%" PRId64, rs->dossier);
            json_t *ids = json_object();
            size_t k;
            json_t *v;
            json_array_foreach(rs->row_ids, k, v) {
                if (json_is_string(v))
                    json_object_set_new(ids, json_string_value(v), json_true());
            }
            if (!json_object_get(json_object_get(t, "keep"), num))
                json_array_append_new(json_object_get(t, "nums"), d2g_mapping_number_cell(rs->dossier));
            json_object_set_new(json_object_get(t, "keep"), num, ids);
        }
        for (size_t r = 0; r < m->n_removals; r++) {
            size_t len = strlen(m->removals[r].table) + strlen(m->removals[r].column) + 2;
            char *k = d2g_malloc(len);
            snprintf(k, len, "%s\n%s", m->removals[r].table, m->removals[r].column);
            json_t *vals = json_object_get(removal, k);
            if (!vals) {
                vals = json_array();
                json_object_set_new(removal, k, vals);
            }
            json_array_append_new(vals, d2g_mapping_number_cell(m->removals[r].value));
            free(k);
        }
    }
    const char *key;
    json_t *v;
    json_object_foreach(child, key, v)
        plan_find(ops, key, json_string_value(json_object_get(v, "col")), json_object_get(v, "nums"),
                  json_object_get(v, "keep"));
    json_object_foreach(removal, key, v) {
        const char *nl = strchr(key, '\n');
        char *table = d2g_strndup(key, (size_t)(nl - key));
        plan_find(ops, table, nl + 1, v, NULL);
        free(table);
    }
    json_decref(child);
    json_decref(removal);
}

int d2g_plan_deletes(const d2g_op_t *find, json_t *answer, d2g_ops_t *ops) {
    json_t *recs = json_object_get(answer, "records");
    if (!json_is_array(recs))
        return -1;
    json_t *ids = json_array();
    size_t i;
    json_t *rec;
    json_array_foreach(recs, i, rec) {
        json_t *fields = json_object_get(rec, "fields");
        int drop = 1;
        if (find->keep) {
            char num[24];
            snprintf(num, sizeof(num), "%" PRId64,
                     d2g_mapping_number_of(json_object_get(fields, find->column ? find->column : "dossier")));
            json_t *keep = json_object_get(find->keep, num);
            const char *rid = json_string_value(json_object_get(fields, "ds_row_id"));
            /* Rows of a dossier this batch did not list, or listed as kept, stay. */
            drop = keep && !(rid && json_object_get(keep, rid));
        }
        if (drop && json_is_integer(json_object_get(rec, "id")))
            json_array_append(ids, json_object_get(rec, "id"));
    }
    if (json_array_size(ids)) {
        d2g_op_t *o = d2g_ops_add(ops, D2G_OP_DELETE, "POST", path_of(find->table, "/data/delete"),
                                  json_dumps(ids, JSON_COMPACT), find->table);
        o->rows = json_array_size(ids);
    }
    json_decref(ids);
    return 0;
}
