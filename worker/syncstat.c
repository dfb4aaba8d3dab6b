/* syncstat.c - the rows of a document's sync-status table, see syncstat.h. */
#include "syncstat.h"
#include "versions.h"

#include "ds2grist/alloc.h"
#include "ds2grist/clock.h"
#include "ds2grist/err.h"
#include "ds2grist/keys.h"
#include "ds2grist/text.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The columns, in order: id, label (French, as the other tables), type. */
static const struct {
    const char *id, *label, *type;
} columns[] = {
    {"demarche", "Démarche", "Int"},
    {"table", "Table des dossiers", "Text"},
    {"derniere_synchro", "Dernière synchronisation", "DateTime:Europe/Paris"},
    {"prochaine_synchro", "Prochaine synchronisation", "DateTime:Europe/Paris"},
    {"dossiers", "Dossiers dans la table", "Int"},
    {"derniere_erreur", "Dernière erreur", "Text"},
    {"date_erreur", "Date de l'erreur", "DateTime:Europe/Paris"},
    {"resync", "Resynchroniser", "Bool"},
    {"resync_etat", "Resynchronisation", "Text"},
    {"derniere_resync", "Dernière resynchronisation", "DateTime:Europe/Paris"},
};
#define N_COLUMNS (sizeof(columns) / sizeof(columns[0]))

/* Shown texts are cut here (a cell, not a log). */
#define TEXT_MAX 500

uint64_t d2g_syncstat_digest(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; s && *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

int d2g_syncstat_turn(d2g_redis_t *r, const d2g_lane_t *l, const char *worker_id,
                      int64_t interval_ms, char *err, size_t errlen) {
    char px[24];
    /* A little less than the period: the next period's turn is free again. */
    snprintf(px, sizeof(px), "%" PRId64, interval_ms > 200 ? interval_ms - 100 : interval_ms);
    const char *argv[] = {"SET", l->syncturn_key, worker_id, "NX", "PX", px};
    redisReply *rep = d2g_redis_argv(r, 6, argv, NULL, err, errlen);
    if (!rep)
        return -1;
    int mine = rep->type == REDIS_REPLY_STATUS;
    freeReplyObject(rep);
    return mine;
}

/* --- reading Redis --------------------------------------------------------------- */

/* What Redis holds about one procedure. */
typedef struct {
    int64_t last_poll, next_poll, resync_started, resync_done, last_success, error_at;
    long long present;
    int pending; /* a resync request waits in the fleet's set */
    char *error;    /* the producer's last error */
    json_t *refused; /* {at, dossier, version, error} */
} reading_t;

static int64_t int_of(const redisReply *e) {
    return e && e->type == REDIS_REPLY_STRING ? strtoll(e->str, NULL, 10) : 0;
}

/* Appends the commands for one procedure: 3 replies. */
static void append_reads(redisContext *c, d2g_redis_t *r, const d2g_lane_t *l, int64_t number) {
    char k[D2G_KEYLEN];
    const char *ns = d2g_redis_namespace(r);
    d2g_keys_proc(ns, k, sizeof(k), number, "cursor");
    const char *cur[] = {"HMGET", k, "last_poll_ms", "next_poll_ms", "resync_started_ms", "resync_done_ms"};
    redisAppendCommandArgv(c, 6, cur, NULL);
    d2g_keys_proc(ns, k, sizeof(k), number, "status");
    const char *st[] = {"HMGET", k, "last_success_ms", "last_error", "last_error_ms"};
    redisAppendCommandArgv(c, 5, st, NULL);
    d2g_keys_doc_proc(ns, k, sizeof(k), l->doc.srv->name, l->doc.id, "present", number);
    const char *card[] = {"SCARD", k};
    redisAppendCommandArgv(c, 2, card, NULL);
}

static void read_replies(redisReply **rep, reading_t *rd) {
    if (rep[0]->type == REDIS_REPLY_ARRAY && rep[0]->elements == 4) {
        rd->last_poll = int_of(rep[0]->element[0]);
        rd->next_poll = int_of(rep[0]->element[1]);
        rd->resync_started = int_of(rep[0]->element[2]);
        rd->resync_done = int_of(rep[0]->element[3]);
    }
    if (rep[1]->type == REDIS_REPLY_ARRAY && rep[1]->elements == 3) {
        rd->last_success = int_of(rep[1]->element[0]);
        if (rep[1]->element[1]->type == REDIS_REPLY_STRING && rep[1]->element[1]->len)
            rd->error = d2g_strdup(rep[1]->element[1]->str);
        rd->error_at = int_of(rep[1]->element[2]);
    }
    if (rep[2]->type == REDIS_REPLY_INTEGER)
        rd->present = rep[2]->integer;
}

/* The document's lanes that are not active, in any worker ({doc}:lane): the
 * most recent one's text, or NULL. *at gets its time. */
static char *lane_trouble(d2g_redis_t *r, const d2g_lane_t *l, int64_t *at, char *err, size_t errlen) {
    /* A trouble older than this lane's last acknowledged write is over (a
     * worker that died while backing off leaves its entry for a day). */
    const char *argv[] = {"HGETALL", l->lane_key};
    redisReply *rep = d2g_redis_argv(r, 2, argv, NULL, err, errlen);
    char *text = NULL;
    *at = 0;
    if (!rep)
        return NULL;
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i + 1 < rep->elements; i += 2) {
        json_t *j = json_loads(rep->element[i + 1]->str, 0, NULL);
        const char *state = json_string_value(json_object_get(j, "state"));
        double since = 0;
        int is_int;
        if (d2g_clock_parse_iso(json_string_value(json_object_get(j, "since")), &since, &is_int))
            since = 0;
        if (state && strcmp(state, "active") && since * 1000 > (double)l->ok_wall_ms &&
            (!text || since * 1000 > (double)*at)) {
            free(text);
            const char *reason = json_string_value(json_object_get(j, "reason"));
            const char *e = json_string_value(json_object_get(j, "error"));
            size_t len = 200 + strlen(e ? e : "");
            text = d2g_malloc(len);
            snprintf(text, len, "Grist : écritures %s (%s)%s%s",
                     !strcmp(state, "parked") ? "suspendues" : "ralenties", reason ? reason : "",
                     e && *e ? " : " : "", e ? e : "");
            *at = (int64_t)(since * 1000);
        }
        json_decref(j);
    }
    freeReplyObject(rep);
    return text;
}

/* --- the rows --------------------------------------------------------------------- */

static json_t *date_or_null(int64_t ms) { return ms > 0 ? json_integer(ms / 1000) : json_null(); }

/* Scrubbed whole, then cut (a cut first could leave part of a secret). */
static json_t *shown(const char *text, const char *const *secrets, size_t n_secrets) {
    size_t len = strlen(text) + 1;
    char *all = d2g_malloc(len), buf[TEXT_MAX + 1];
    d2g_text_copy(all, len, text, (size_t)-1);
    d2g_text_scrub(all, secrets, n_secrets);
    d2g_text_copy(buf, sizeof(buf), all, (size_t)-1);
    free(all);
    return json_string(buf);
}

static void table_def(d2g_mapped_t *out) {
    out->tables = d2g_calloc(1, sizeof(d2g_table_t));
    out->n_tables = 1;
    d2g_table_t *t = &out->tables[0];
    t->id = d2g_strdup(D2G_SYNCSTAT_TABLE);
    t->key = "demarche";
    t->columns = d2g_calloc(N_COLUMNS, sizeof(d2g_column_t));
    t->n_columns = N_COLUMNS;
    for (size_t i = 0; i < N_COLUMNS; i++) {
        d2g_column_t *c = &t->columns[i];
        c->id = d2g_strdup(columns[i].id);
        c->fields = json_pack("{s:s, s:s, s:b}", "label", columns[i].label, "type", columns[i].type,
                              "untieColIdFromLabel", 1);
        c->label = json_string_value(json_object_get(c->fields, "label"));
        c->type = json_string_value(json_object_get(c->fields, "type"));
    }
}

static json_t *row_fields(const d2g_procedure_t *p, const reading_t *rd, const char *trouble,
                          int64_t trouble_at, const char *const *secrets, size_t n_secrets) {
    int64_t synced = rd->last_poll > rd->last_success ? rd->last_poll : rd->last_success;
    json_t *f = json_object();
    json_object_set_new(f, "table", json_string(p->table_prefix));
    json_object_set_new(f, "derniere_synchro", date_or_null(synced));
    json_object_set_new(f, "prochaine_synchro", date_or_null(rd->next_poll));
    json_object_set_new(f, "dossiers", json_integer(rd->present));
    /* What an agent should know now, most pressing first. */
    json_t *error = json_string(""), *at = json_null();
    if (rd->error && rd->error_at > synced) {
        size_t len = strlen(rd->error) + 8;
        char *t = d2g_malloc(len);
        snprintf(t, len, "DS : %s", rd->error);
        json_decref(error);
        error = shown(t, secrets, n_secrets);
        free(t);
        json_decref(at);
        at = date_or_null(rd->error_at);
    } else if (trouble) {
        json_decref(error);
        error = shown(trouble, secrets, n_secrets);
        json_decref(at);
        at = date_or_null(trouble_at);
    } else if (json_is_object(rd->refused)) {
        const char *e = json_string_value(json_object_get(rd->refused, "error"));
        size_t len = strlen(e ? e : "") + 64;
        char *t = d2g_malloc(len);
        snprintf(t, len, "Dossier %" JSON_INTEGER_FORMAT " non écrit : %s",
                 json_integer_value(json_object_get(rd->refused, "dossier")), e ? e : "");
        json_decref(error);
        error = shown(t, secrets, n_secrets);
        free(t);
        json_decref(at);
        at = date_or_null(json_integer_value(json_object_get(rd->refused, "at")));
    }
    json_object_set_new(f, "derniere_erreur", error);
    json_object_set_new(f, "date_erreur", at);
    const char *etat = rd->pending ? "demandée"
                       : rd->resync_started > rd->resync_done ? "en cours"
                       : rd->resync_done > 0 ? "terminée" : "";
    json_object_set_new(f, "resync_etat", json_string(etat));
    json_object_set_new(f, "derniere_resync", date_or_null(rd->resync_done));
    return f;
}

static int is_ours(const d2g_procedure_t *p, const d2g_lane_t *l) {
    return !strcmp(p->grist_server->name, l->doc.srv->name) && !strcmp(p->document, l->doc.id);
}

/* A refused dossier whose version (or a later one) was written since, by any
 * worker (the version guard's hash says so), is no longer shown: its entry
 * goes. One HMGET for the document's refused dossiers, when there are some. */
static void drop_written(d2g_redis_t *r, const d2g_lane_t *l, const d2g_procedure_t **procs,
                         reading_t *rd, size_t n) {
    char err[D2G_ERRLEN];
    const char **argv = d2g_calloc(n + 2, sizeof(char *));
    char (*fields)[48] = d2g_calloc(n, 48);
    size_t *which = d2g_calloc(n, sizeof(size_t)), m = 0;
    argv[0] = "HMGET";
    argv[1] = l->versions_key;
    for (size_t i = 0; i < n; i++)
        if (json_is_object(rd[i].refused)) {
            snprintf(fields[m], 48, "%" PRId64 ":%" JSON_INTEGER_FORMAT, procs[i]->number,
                     json_integer_value(json_object_get(rd[i].refused, "dossier")));
            argv[2 + m] = fields[m];
            which[m++] = i;
        }
    redisReply *rep = m ? d2g_redis_argv(r, (int)m + 2, argv, NULL, err, sizeof(err)) : NULL;
    for (size_t k = 0; rep && rep->type == REDIS_REPLY_ARRAY && k < rep->elements && k < m; k++) {
        const redisReply *e = rep->element[k];
        reading_t *x = &rd[which[k]];
        json_int_t refused_v = json_integer_value(json_object_get(x->refused, "version"));
        if (e->type != REDIS_REPLY_STRING || e->len < 2 || strtoll(e->str + 1, NULL, 10) < refused_v)
            continue;
        char proc[24];
        snprintf(proc, sizeof(proc), "%" PRId64, procs[which[k]]->number);
        const char *hdel[] = {"HDEL", l->syncerr_key, proc};
        redisReply *d = d2g_redis_argv(r, 3, hdel, NULL, err, sizeof(err));
        if (d)
            freeReplyObject(d);
        json_decref(x->refused);
        x->refused = NULL;
    }
    if (rep)
        freeReplyObject(rep);
    free(argv);
    free(fields);
    free(which);
}

int d2g_syncstat_collect(d2g_redis_t *r, const d2g_config_t *cfg, const d2g_lane_t *l,
                         const char *const *secrets, size_t n_secrets, d2g_mapped_t *out,
                         uint64_t *sent, char *err, size_t errlen) {
    memset(out, 0, sizeof(*out));
    *sent = 0;
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_procedures; i++)
        n += (size_t)is_ours(&cfg->procedures[i], l);
    table_def(out);
    if (!n)
        return 0;
    const d2g_procedure_t **procs = d2g_calloc(n, sizeof(*procs));
    n = 0;
    for (size_t i = 0; i < cfg->n_procedures; i++)
        if (is_ours(&cfg->procedures[i], l))
            procs[n++] = &cfg->procedures[i];
    int64_t trouble_at = 0;
    char *trouble = lane_trouble(r, l, &trouble_at, err, errlen);
    redisContext *c = d2g_redis_context(r);
    int rc = c ? 0 : d2g_err_set(err, errlen, "redis: not connected");
    reading_t *rd = d2g_calloc(n, sizeof(*rd));
    /* For the document: the refused dossiers and the rows' digest (one hash),
     * the procedures' pending resync requests (one ZMSCORE); then 3 reads per
     * procedure. One round trip. */
    char kr[D2G_KEYLEN];
    d2g_keys_fleet(d2g_redis_namespace(r), kr, sizeof(kr), "resync");
    const char **zargv = d2g_calloc(n + 2, sizeof(char *));
    char (*nums)[24] = d2g_calloc(n, 24);
    zargv[0] = "ZMSCORE";
    zargv[1] = kr;
    for (size_t i = 0; i < n; i++) {
        snprintf(nums[i], 24, "%" PRId64, procs[i]->number);
        zargv[i + 2] = nums[i];
    }
    const char *herr[] = {"HGETALL", l->syncerr_key};
    if (!rc) {
        redisAppendCommandArgv(c, 2, herr, NULL);
        redisAppendCommandArgv(c, (int)n + 2, zargv, NULL);
    }
    for (size_t i = 0; !rc && i < n; i++)
        append_reads(c, r, l, procs[i]->number);
    redisReply *doc[2] = {0};
    for (int k = 0; k < 2 && !rc; k++) {
        void *v = NULL;
        if (redisGetReply(c, &v) != REDIS_OK)
            rc = d2g_err_set(err, errlen, "redis: %s", c->errstr[0] ? c->errstr : "no reply");
        doc[k] = v;
    }
    for (size_t i = 0; !rc && i < n; i++) {
        redisReply *rep[3] = {0};
        for (int k = 0; k < 3 && !rc; k++) {
            void *v = NULL;
            if (redisGetReply(c, &v) != REDIS_OK)
                rc = d2g_err_set(err, errlen, "redis: %s", c->errstr[0] ? c->errstr : "no reply");
            rep[k] = v;
        }
        if (!rc)
            read_replies(rep, &rd[i]);
        for (int k = 0; k < 3; k++)
            if (rep[k])
                freeReplyObject(rep[k]);
    }
    if (!rc) {
        /* syncerr: "<procedure>" -> the refused dossier, "#sent" -> the rows' digest */
        for (size_t j = 0; doc[0]->type == REDIS_REPLY_ARRAY && j + 1 < doc[0]->elements; j += 2) {
            const char *f = doc[0]->element[j]->str, *v = doc[0]->element[j + 1]->str;
            if (!strcmp(f, "#sent")) {
                *sent = strtoull(v, NULL, 16);
                continue;
            }
            for (size_t i = 0; i < n; i++)
                if (!strcmp(f, nums[i]) && !rd[i].refused)
                    rd[i].refused = json_loads(v, 0, NULL);
        }
        for (size_t i = 0; doc[1]->type == REDIS_REPLY_ARRAY && i < n && i < doc[1]->elements; i++)
            rd[i].pending = doc[1]->element[i]->type == REDIS_REPLY_STRING;
    }
    for (int k = 0; k < 2; k++)
        if (doc[k])
            freeReplyObject(doc[k]);
    free(zargv);
    free(nums);
    if (!rc)
        drop_written(r, l, procs, rd, n);
    if (!rc) {
        out->records = d2g_calloc(n, sizeof(d2g_record_t));
        out->n_records = n;
        for (size_t i = 0; i < n; i++) {
            d2g_record_t *rec = &out->records[i];
            rec->table = out->tables[0].id;
            rec->require = json_pack("{s:I}", "demarche", (json_int_t)procs[i]->number);
            rec->fields = row_fields(procs[i], &rd[i], trouble, trouble_at, secrets, n_secrets);
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(rd[i].error);
        json_decref(rd[i].refused);
    }
    free(rd);
    free(trouble);
    free(procs);
    if (rc)
        d2g_mapped_clear(out);
    return rc;
}

/* --- the agents' ticks ---------------------------------------------------------- */

char *d2g_syncstat_ticks_path(void) {
    char *q = curl_easy_escape(NULL, "{\"resync\":[true]}", 0);
    size_t len = strlen(q ? q : "") + 64;
    char *path = d2g_malloc(len);
    snprintf(path, len, "/tables/%s/records?filter=%s", D2G_SYNCSTAT_TABLE, q ? q : "");
    curl_free(q);
    return path;
}

int d2g_syncstat_ticks(d2g_redis_t *r, json_t *answer, d2g_mapped_t *rows, int64_t now_wall_ms,
                       char *err, size_t errlen) {
    json_t *records = json_object_get(answer, "records");
    if (!json_is_array(records))
        return d2g_err_set(err, errlen, "the ticked rows: not a records list");
    char k[D2G_KEYLEN], at[24];
    d2g_keys_fleet(d2g_redis_namespace(r), k, sizeof(k), "resync");
    snprintf(at, sizeof(at), "%" PRId64, now_wall_ms);
    int cleared = 0;
    size_t i;
    json_t *rec;
    json_array_foreach(records, i, rec) {
        json_t *fields = json_object_get(rec, "fields");
        json_t *num = json_object_get(fields, "demarche");
        if (!json_is_true(json_object_get(fields, "resync")) || !json_is_integer(num))
            continue;
        d2g_record_t *mine = NULL;
        for (size_t j = 0; j < rows->n_records && !mine; j++)
            if (json_equal(json_object_get(rows->records[j].require, "demarche"), num))
                mine = &rows->records[j];
        if (mine) {
            char member[24];
            snprintf(member, sizeof(member), "%" JSON_INTEGER_FORMAT, json_integer_value(num));
            const char *argv[] = {"ZADD", k, at, member};
            redisReply *rep = d2g_redis_argv(r, 4, argv, NULL, err, errlen);
            if (!rep)
                return -1; /* the box stays ticked: asked again next period */
            freeReplyObject(rep);
            json_object_set_new(mine->fields, "resync_etat", json_string("demandée"));
        } else {
            /* A procedure no longer configured here: cleared, not resynced. */
            rows->records = d2g_realloc(rows->records, (rows->n_records + 1) * sizeof(d2g_record_t));
            mine = &rows->records[rows->n_records++];
            mine->table = rows->tables[0].id;
            mine->table_index = 0;
            mine->require = json_pack("{s:O}", "demarche", num);
            mine->fields = json_object();
        }
        json_object_set_new(mine->fields, "resync", json_false());
        cleared++;
    }
    return cleared;
}

/* --- what the lane wrote ----------------------------------------------------------- */

int d2g_syncstat_written(d2g_redis_t *r, d2g_lane_t *l, d2g_item_t *const *items, size_t n,
                         char *err, size_t errlen) {
    /* One SADD (and one SREM) per procedure of the batch: usually one. */
    json_t *by = json_object(); /* "<procedure>" -> [[added...], [removed...]] */
    for (size_t i = 0; i < n; i++) {
        const d2g_item_t *it = items[i];
        if (!it)
            continue;
        char proc[24], num[24];
        snprintf(proc, sizeof(proc), "%" PRId64, it->proc->number);
        snprintf(num, sizeof(num), "%" PRId64, it->env.number);
        json_t *pair = json_object_get(by, proc);
        if (!pair) {
            pair = json_pack("[[],[]]");
            json_object_set_new(by, proc, pair);
        }
        int removed = it->env.kind == D2G_ENVELOPE_DELETE && it->proc->deleted_mode == D2G_DELETED_REMOVE;
        json_array_append_new(json_array_get(pair, removed), json_string(num));
        if (l->refused && json_object_get(l->refused, it->key)) {
            /* A dossier shown as refused is in Grist now. */
            json_object_del(l->refused, it->key);
            const char *hget[] = {"HGET", l->syncerr_key, proc};
            redisReply *rep = d2g_redis_argv(r, 3, hget, NULL, err, errlen);
            json_t *j = rep && rep->type == REDIS_REPLY_STRING ? json_loads(rep->str, 0, NULL) : NULL;
            if (rep)
                freeReplyObject(rep);
            if (json_integer_value(json_object_get(j, "dossier")) == it->env.number) {
                const char *hdel[] = {"HDEL", l->syncerr_key, proc};
                if ((rep = d2g_redis_argv(r, 3, hdel, NULL, err, errlen)))
                    freeReplyObject(rep);
            }
            json_decref(j);
        }
    }
    int rc = 0;
    const char *proc;
    json_t *pair;
    json_object_foreach(by, proc, pair) {
        char k[D2G_KEYLEN];
        d2g_keys_doc_proc(d2g_redis_namespace(r), k, sizeof(k), l->doc.srv->name, l->doc.id, "present",
                          strtoll(proc, NULL, 10));
        for (int removed = 0; removed < 2 && !rc; removed++) {
            json_t *nums = json_array_get(pair, (size_t)removed);
            size_t m = json_array_size(nums);
            if (!m)
                continue;
            const char **argv = d2g_calloc(m + 2, sizeof(char *));
            argv[0] = removed ? "SREM" : "SADD";
            argv[1] = k;
            for (size_t j = 0; j < m; j++)
                argv[j + 2] = json_string_value(json_array_get(nums, j));
            redisReply *rep = d2g_redis_argv(r, (int)m + 2, argv, NULL, err, errlen);
            if (rep)
                freeReplyObject(rep);
            else
                rc = -1;
            free(argv);
        }
    }
    json_decref(by);
    return rc;
}

void d2g_syncstat_sent(d2g_redis_t *r, d2g_lane_t *l, uint64_t digest) {
    char err[D2G_ERRLEN], hex[24];
    snprintf(hex, sizeof(hex), "%" PRIx64, digest);
    const char *argv[] = {"HSET", l->syncerr_key, "#sent", hex};
    redisReply *rep = d2g_redis_argv(r, 4, argv, NULL, err, sizeof(err));
    if (rep)
        freeReplyObject(rep);
    else /* the next writer sends the same rows again: harmless */
        d2g_lane_log(l, D2G_LOG_WARN, "status", "redis_error", err, "status rows' digest not recorded");
}

void d2g_syncstat_refused(d2g_redis_t *r, d2g_lane_t *l, const d2g_item_t *item,
                          const char *reason) {
    char err[D2G_ERRLEN], proc[24], text[TEXT_MAX + 1];
    d2g_text_copy(text, sizeof(text), reason, (size_t)-1); /* scrubbed already */
    snprintf(proc, sizeof(proc), "%" PRId64, item->proc->number);
    json_t *j = json_pack("{s:I, s:I, s:I, s:s}", "at", (json_int_t)d2g_clock_wall_ms(), "dossier",
                          (json_int_t)item->env.number, "version", (json_int_t)d2g_versions_of(&item->env),
                          "error", text);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    const char *argv[] = {"HSET", l->syncerr_key, proc, s};
    redisReply *rep = d2g_redis_argv(r, 4, argv, NULL, err, sizeof(err));
    free(s);
    if (!rep) {
        d2g_lane_log(l, D2G_LOG_WARN, "status", "redis_error", err, "refused dossier not recorded for the status table");
        return;
    }
    freeReplyObject(rep);
    if (!l->refused)
        l->refused = json_object();
    json_object_set_new(l->refused, item->key, json_true());
}
