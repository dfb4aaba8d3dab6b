/*
 * writer_int.h - the writer's state, shared by its stages (writer.c drives
 * the lanes, flush.c writes one lane's batch). Not for other modules.
 */
#ifndef D2G_WRITER_INT_H
#define D2G_WRITER_INT_H

#include "formschema.h"
#include "forms.h"
#include "lane.h"
#include "writer.h"

#include "ds2grist/http.h"

struct d2g_writer {
    const d2g_config_t *cfg;
    d2g_redis_t *redis;
    d2g_http_t *http;
    d2g_forms_t *forms;
    d2g_formschema_t *formschema; /* schemas from the forms, before any dossier */
    struct d2g_attach *attach; /* files copied into Grist attachments (attach.h) */
    d2g_writer_hooks_t hooks;
    char worker_id[128];
    const char *const *secrets;
    size_t n_secrets;
    uint64_t seq;
    unsigned rng;
    d2g_lane_t **lanes;
    size_t n_lanes, cap_lanes;
    json_t *lane_index; /* "<server>/<doc>" -> index in lanes */
    int flush_all;
    int all_lanes; /* every configured document has its lane (syncstat.h) */
    d2g_writer_stats_t stats;
    d2g_metric_t *m_requests, *m_429, *m_retries, *m_written, *m_batch_rows, *m_permit_wait,
        *m_permits, *m_lanes, *m_errors, *m_superseded;
};

/* Hands items back (failure NULL: written) and frees them; NULL entries skipped. */
void d2g_writer_finish(d2g_writer_t *w, d2g_item_t **items, size_t n, const char *failure);
/* The lane of proc's document, or NULL if there is none yet; _lane creates it. */
d2g_lane_t *d2g_writer_find_lane(const d2g_writer_t *w, const d2g_procedure_t *proc);
d2g_lane_t *d2g_writer_lane(d2g_writer_t *w, const d2g_procedure_t *proc);
/* Sends the items to the retry topic (their lane is parked) and frees them. */
void d2g_writer_shed_items(d2g_writer_t *w, d2g_lane_t *l, d2g_item_t **items, size_t n);

#endif
