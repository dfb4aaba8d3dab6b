/* attach.c - DS's files copied into Grist attachments, streamed and de-duplicated: the
 * engine and the batches' jobs; one file's copy is in attach_task.c. See attach.h. */
#include "attach_int.h"

#include "ds2grist/alloc.h"
#include "ds2grist/clock.h"
#include "ds2grist/err.h"
#include "ds2grist/log.h"
#include "ds2grist/permits.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

void d2g_attach_count(d2g_attach_t *a, const char *outcome) {
    const char *lv[] = {outcome};
    d2g_metric_inc(a->m_files, lv, 1);
}

d2g_attach_t *d2g_attach_new(d2g_redis_t *redis, const char *worker_id, d2g_metrics_t *metrics) {
    d2g_attach_t *a = d2g_calloc(1, sizeof(*a));
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(a->multi = curl_multi_init())) {
        free(a);
        return NULL;
    }
    a->redis = redis;
    snprintf(a->worker_id, sizeof(a->worker_id), "%s", worker_id);
    if (metrics) {
        static const char *const by_outcome[] = {"outcome"};
        a->m_files = d2g_metrics_counter(metrics, "ds2grist_attachments_total",
                                         "DS files of attachment cells by outcome (copied, reused, "
                                         "unsafe, too_large, over_budget, download_failed, "
                                         "upload_failed, no_checksum)", 1, by_outcome);
    }
    return a;
}

void d2g_attach_free(d2g_attach_t *a) {
    if (!a)
        return;
    curl_multi_cleanup(a->multi);
    curl_global_cleanup();
    free(a);
}

int d2g_attach_busy(const d2g_attach_t *a) { return a && a->busy > 0; }

void d2g_attach_poll(d2g_attach_t *a) {
    int running = 0, left = 0;
    if (!a)
        return;
    curl_multi_perform(a->multi, &running);
    CURLMsg *m;
    while ((m = curl_multi_info_read(a->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        task_t *t = NULL;
        long status = 0;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        CURLcode code = m->data.result;
        if (t->state == T_DL)
            d2g_attach_task_downloaded(t, code, status);
        else if (t->state == T_UP)
            d2g_attach_task_uploaded(t, code, status, d2g_clock_mono_ms());
        else if (t->state == T_CHECK)
            d2g_attach_probe_done(t, code, status);
    }
}

/* --- jobs ------------------------------------------------------------------------------ */

static long long file_size(json_t *f) {
    json_t *b = json_object_get(f, "byteSizeBigInt");
    if (json_is_string(b))
        return strtoll(json_string_value(b), NULL, 10);
    if (json_is_integer(b))
        return (long long)json_integer_value(b);
    b = json_object_get(f, "byteSize");
    return json_is_integer(b) ? (long long)json_integer_value(b) : -1;
}

/* Why a file is not even considered, or NULL. */
static const char *unfit(json_t *f, const char **outcome) {
    const char *scan = json_string_value(json_object_get(f, "virusScanResult"));
    const char *sum = json_string_value(json_object_get(f, "checksum"));
    const char *url = json_string_value(json_object_get(f, "url"));
    if (!scan || strcmp(scan, "safe") != 0) {
        *outcome = "unsafe";
        if (!scan || !*scan)
            return "non copié : fichier pas encore analysé par l’antivirus de DS";
        if (!strcmp(scan, "pending"))
            return "non copié : analyse antivirus de DS en cours";
        if (!strcmp(scan, "infected"))
            return "non copié : fichier infecté selon l’antivirus de DS";
        return "non copié : analyse antivirus de DS non concluante";
    }
    if (!sum || !*sum || !url || !*url || file_size(f) < 0) {
        *outcome = "no_checksum";
        return "non copié : DS ne donne pas sa somme de contrôle, sa taille ou son lien";
    }
    return NULL;
}

d2g_attach_job_t *d2g_attach_start(d2g_attach_t *a, const d2g_config_t *cfg,
                                   const d2g_grist_doc_t *doc, const char *store_key,
                                   d2g_mapped_t *mapped, size_t n) {
    size_t total = 0, i, k, m;
    json_t *cell, *f;
    for (i = 0; i < n; i++)
        json_array_foreach(mapped[i].attachments, k, cell) total +=
            json_array_size(json_object_get(cell, "files"));
    if (!a || !total)
        return NULL;
    d2g_attach_job_t *j = d2g_calloc(1, sizeof(*j));
    j->a = a;
    j->doc = doc;
    snprintf(j->store_key, sizeof(j->store_key), "%s", store_key);
    j->cells = d2g_calloc(n + 1, sizeof(json_t *));
    for (i = 0; i < n; i++)
        j->cells[i] = json_incref(mapped[i].attachments);
    j->n = n;
    j->tasks = d2g_calloc(total, sizeof(task_t));
    j->by_sum = json_object();
    j->max_file = cfg->worker.attachment_max_bytes;
    j->budget = cfg->worker.attachment_budget_bytes;
    j->max_downloads = cfg->worker.attachment_downloads;
    j->timeout_s = cfg->grist.timeout_s;
    j->probe.job = j;
    j->probe.state = T_DONE; /* none in flight */
    for (i = 0; i < n; i++)
        json_array_foreach(mapped[i].attachments, k, cell) json_array_foreach(
            json_object_get(cell, "files"), m, f) {
            const char *outcome, *sum = json_string_value(json_object_get(f, "checksum"));
            if (unfit(f, &outcome) || json_object_get(j->by_sum, sum))
                continue; /* decided at the end, or the same file as an earlier one */
            task_t *t = &j->tasks[j->n_tasks];
            t->job = j;
            t->checksum = sum;
            t->filename = json_string_value(json_object_get(f, "filename"));
            if (!t->filename || !*t->filename)
                t->filename = "fichier";
            t->ctype = json_string_value(json_object_get(f, "contentType"));
            t->url = json_string_value(json_object_get(f, "url"));
            t->size = file_size(f);
            t->number = mapped[i].number;
            json_object_set_new(j->by_sum, sum, json_integer((json_int_t)j->n_tasks++));
            a->busy++;
        }
    d2g_log(D2G_LOG_DEBUG, "attachments_started", 0, doc->label,
            "[attach] %zu files of %zu dossiers, %zu to look up or copy", total, n, j->n_tasks);
    return j;
}

void d2g_attach_job_free(d2g_attach_t *a, d2g_attach_job_t *j) {
    if (!j)
        return;
    char err[D2G_ERRLEN];
    for (size_t i = 0; i < j->n_tasks; i++) {
        task_t *t = &j->tasks[i];
        if (t->state == T_DL)
            a->downloads--;
        if (t->state == T_UP)
            d2g_permits_release(a->redis, j->doc->permit_key, t->holder, err, sizeof(err));
        if (t->state != T_DONE)
            a->busy--;
        t->state = T_DONE;
        d2g_attach_task_end(t);
        if (t->tmp)
            fclose(t->tmp);
        free(t->answer);
    }
    free(j->tasks);
    if (j->probe.state == T_CHECK)
        d2g_permits_release(a->redis, j->doc->permit_key, j->probe.holder, err, sizeof(err));
    d2g_attach_task_end(&j->probe);
    free(j->probe.answer);
    for (size_t i = 0; i < j->n; i++)
        json_decref(j->cells[i]);
    free(j->cells);
    json_decref(j->by_sum);
    free(j);
}

/* Every cell of the job: the ids of its copied files, the reasons of the others. */
static void fill_cells(d2g_attach_job_t *j) {
    size_t i, k, m;
    json_t *cell, *f;
    for (i = 0; i < j->n; i++)
        json_array_foreach(j->cells[i], k, cell) {
            json_t *fields = json_object_get(cell, "fields");
            const char *col = json_string_value(json_object_get(cell, "column"));
            const char *text = json_string_value(json_object_get(cell, "text"));
            json_t *ids = json_pack("[s]", "L");
            const char *old = json_string_value(json_object_get(fields, text));
            size_t cap = (old ? strlen(old) : 0) + 1;
            char *t = d2g_malloc(cap);
            snprintf(t, cap, "%s", old ? old : "");
            json_array_foreach(json_object_get(cell, "files"), m, f) {
                const char *outcome = NULL, *why = unfit(f, &outcome);
                const char *name = json_string_value(json_object_get(f, "filename"));
                json_t *ti = why ? NULL
                                 : json_object_get(j->by_sum, json_string_value(json_object_get(f, "checksum")));
                const task_t *task = ti ? &j->tasks[json_integer_value(ti)] : NULL;
                if (why)
                    d2g_attach_count(j->a, outcome);
                else if (task && task->id > 0) {
                    int dup = 0;
                    for (size_t q = 1; q < json_array_size(ids); q++)
                        dup |= json_integer_value(json_array_get(ids, q)) == task->id;
                    if (!dup)
                        json_array_append_new(ids, json_integer(task->id));
                    continue;
                } else
                    why = task && task->reason[0] ? task->reason : "non copié";
                size_t add = strlen(why) + (name ? strlen(name) : 7) + 8;
                t = d2g_realloc(t, cap + add);
                size_t len = strlen(t);
                snprintf(t + len, add, "%s%s : %s", len ? "\n" : "", name ? name : "fichier", why);
                cap += add;
            }
            json_object_set_new(fields, col, ids);
            if (text && *t)
                json_object_set_new(fields, text, json_string(t));
            free(t);
        }
}

void d2g_attach_refill(d2g_attach_job_t *j, d2g_mapped_t *mapped, size_t n) {
    if (!j)
        return;
    for (size_t i = 0; i < j->n; i++) /* the tasks are done: they no longer read these */
        json_decref(j->cells[i]);
    free(j->cells);
    j->cells = d2g_calloc(n + 1, sizeof(json_t *));
    for (size_t i = 0; i < n; i++)
        j->cells[i] = json_incref(mapped[i].attachments);
    j->n = n;
    fill_cells(j);
}

int d2g_attach_step(d2g_attach_t *a, d2g_attach_job_t *j, int64_t now) {
    char err[D2G_ERRLEN];
    int pending = 0;
    d2g_attach_poll(a);
    for (size_t i = 0; i < j->n_tasks; i++) {
        task_t *t = &j->tasks[i];
        if (t->state == T_NEW)
            d2g_attach_task_decide(t);
        if (t->state == T_DL_WAIT && a->downloads < j->max_downloads && d2g_attach_task_download(t))
            d2g_attach_task_done(t, "download_failed", "non copié : téléchargement impossible à démarrer");
        if (t->state == T_UP_WAIT && t->not_before <= now) {
            int64_t wait = 0;
            snprintf(t->holder, sizeof(t->holder), "%s:a%" PRIu64, a->worker_id, ++a->seq);
            int rc = d2g_grist_begin(a->redis, j->doc, t->holder, j->timeout_s, &wait, err, sizeof(err));
            if (rc > 0 || rc < 0)
                t->not_before = now + (rc > 0 && wait < 50 ? wait : 50);
            else if (d2g_attach_task_upload(t)) {
                d2g_permits_release(a->redis, j->doc->permit_key, t->holder, err, sizeof(err));
                j->reserved -= t->size;
                d2g_attach_task_done(t, "upload_failed", "non copié : envoi vers Grist impossible à démarrer");
            }
        }
        pending |= t->state != T_DONE;
    }
    d2g_attach_probe_step(j, now);
    if (pending)
        return 1;
    fill_cells(j);
    return 0;
}
