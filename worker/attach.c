/* attach.c - DS's files copied into Grist attachments, streamed and de-duplicated; see attach.h. */
#include "attach.h"

#include "ds2grist/alloc.h"
#include "ds2grist/clock.h"
#include "ds2grist/err.h"
#include "ds2grist/keys.h"
#include "ds2grist/log.h"
#include "ds2grist/md5.h"
#include "ds2grist/permits.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A download may take this long at most (DS's object storage). */
#define DOWNLOAD_TIMEOUT_S 300
/* Uploads answered 429, 5xx or not at all are tried this many times. */
#define UPLOAD_TRIES 5
/* Grist's answer to an upload: a JSON array of ids. */
#define ANSWER_MAX 65536

typedef enum { T_NEW, T_DL_WAIT, T_DL, T_UP_WAIT, T_UP, T_DONE } tstate_t;

typedef struct task {
    d2g_attach_job_t *job;
    const char *checksum, *filename, *ctype, *url; /* borrowed from the mapped files */
    long long size;
    int64_t number; /* a dossier holding it (logs) */
    tstate_t state;
    json_int_t id; /* > 0: the Grist attachment */
    char reason[200];
    CURL *easy;
    FILE *tmp; /* the downloaded bytes (unlinked at creation) */
    d2g_md5_t md5; /* of the bytes downloaded: DS's checksum is its base64 */
    int write_failed;
    curl_mime *mime;
    struct curl_slist *headers;
    char holder[200];
    char *answer;
    size_t answer_len;
    int tries;
    int64_t not_before;
} task_t;

struct d2g_attach_job {
    d2g_attach_t *a;
    const d2g_grist_doc_t *doc;
    char store_key[D2G_KEYLEN];
    json_t **cells; /* per dossier: its d2g_mapped_t.attachments, referenced (a dossier that
                     * leaves the batch keeps them alive until the job ends) */
    size_t n;
    task_t *tasks;
    size_t n_tasks;
    json_t *by_sum; /* checksum -> index in tasks */
    long long max_file, budget, reserved;
    int max_downloads;
    long timeout_s;
};

struct d2g_attach {
    CURLM *multi;
    d2g_redis_t *redis;
    char worker_id[128];
    uint64_t seq;
    int downloads; /* in flight */
    int busy;      /* tasks not done */
    d2g_metric_t *m_files;
};

static void count(d2g_attach_t *a, const char *outcome) {
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

/* --- a task's transfers ------------------------------------------------------------ */

static void transfer_end(task_t *t) {
    if (t->easy) {
        curl_multi_remove_handle(t->job->a->multi, t->easy);
        curl_easy_cleanup(t->easy);
        t->easy = NULL;
    }
    if (t->mime) {
        curl_mime_free(t->mime);
        t->mime = NULL;
    }
    for (struct curl_slist *s = t->headers; s; s = s->next) /* the API key */
        explicit_bzero(s->data, strlen(s->data));
    curl_slist_free_all(t->headers);
    t->headers = NULL;
}

static void task_done(task_t *t, const char *outcome, const char *reason) {
    transfer_end(t);
    if (t->tmp) {
        fclose(t->tmp);
        t->tmp = NULL;
    }
    free(t->answer);
    t->answer = NULL;
    if (reason)
        snprintf(t->reason, sizeof(t->reason), "%s", reason);
    if (t->state != T_DONE)
        t->job->a->busy--;
    t->state = T_DONE;
    count(t->job->a, outcome);
}

static size_t on_answer(char *p, size_t sz, size_t nm, void *ud) {
    task_t *t = ud;
    size_t n = sz * nm;
    if (t->answer_len + n > ANSWER_MAX)
        return 0;
    t->answer = d2g_realloc(t->answer, t->answer_len + n + 1);
    memcpy(t->answer + t->answer_len, p, n);
    t->answer_len += n;
    t->answer[t->answer_len] = 0;
    return n;
}

/* Download bytes: into the temporary file, and the digest. */
static size_t on_bytes(char *p, size_t sz, size_t nm, void *ud) {
    task_t *t = ud;
    size_t n = sz * nm;
    if (fwrite(p, 1, n, t->tmp) != n) {
        t->write_failed = 1;
        return 0;
    }
    d2g_md5_update(&t->md5, p, n);
    return n;
}

static size_t read_tmp(char *buf, size_t sz, size_t nm, void *ud) {
    return fread(buf, 1, sz * nm, (FILE *)ud);
}

static int seek_tmp(void *ud, curl_off_t off, int origin) {
    return fseeko((FILE *)ud, (off_t)off, origin) ? CURL_SEEKFUNC_FAIL : CURL_SEEKFUNC_OK;
}

static int start_download(task_t *t) {
    char path[] = "/tmp/d2g-attach-XXXXXX";
    const char *dir = getenv("TMPDIR");
    char buf[512];
    snprintf(buf, sizeof(buf), "%s/d2g-attach-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(dir && *dir ? buf : path);
    if (fd < 0)
        return -1;
    unlink(dir && *dir ? buf : path); /* gone with its descriptor, whatever happens */
    if (!(t->tmp = fdopen(fd, "w+b"))) {
        close(fd);
        return -1;
    }
    if (!(t->easy = curl_easy_init()))
        return -1;
    curl_easy_setopt(t->easy, CURLOPT_URL, t->url);
    curl_easy_setopt(t->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(t->easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(t->easy, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(t->easy, CURLOPT_MAXREDIRS, 3L);
    d2g_md5_init(&t->md5);
    curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, on_bytes);
    curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(t->easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)t->job->max_file);
    curl_easy_setopt(t->easy, CURLOPT_TIMEOUT, (long)DOWNLOAD_TIMEOUT_S);
    curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
    if (curl_multi_add_handle(t->job->a->multi, t->easy) != CURLM_OK)
        return -1;
    t->job->a->downloads++;
    t->state = T_DL;
    return 0;
}

static int start_upload(task_t *t) {
    const d2g_grist_doc_t *d = t->job->doc;
    char url[1200], auth[1024];
    snprintf(url, sizeof(url), "%s/attachments", d->base);
    if (!(t->easy = curl_easy_init()) || !(t->mime = curl_mime_init(t->easy)))
        return -1;
    rewind(t->tmp);
    curl_mimepart *part = curl_mime_addpart(t->mime);
    curl_mime_name(part, "upload");
    curl_mime_filename(part, t->filename);
    if (t->ctype)
        curl_mime_type(part, t->ctype);
    curl_mime_data_cb(part, (curl_off_t)t->size, read_tmp, seek_tmp, NULL, t->tmp);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", d->srv->api_key ? d->srv->api_key : "");
    t->headers = curl_slist_append(NULL, auth);
    explicit_bzero(auth, sizeof(auth));
    curl_easy_setopt(t->easy, CURLOPT_URL, url);
    curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(t->easy, CURLOPT_MIMEPOST, t->mime);
    curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, on_answer);
    curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(t->easy, CURLOPT_TIMEOUT, t->job->timeout_s);
    curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
    free(t->answer);
    t->answer = NULL;
    t->answer_len = 0;
    if (curl_multi_add_handle(t->job->a->multi, t->easy) != CURLM_OK)
        return -1;
    t->state = T_UP;
    return 0;
}

/* The file was known, or is unfit: decided without a transfer. */
static void decide(task_t *t) {
    d2g_attach_job_t *j = t->job;
    d2g_attach_t *a = j->a;
    char err[D2G_ERRLEN], why[200];
    const char *argv[] = {"HMGET", j->store_key, t->checksum, "bytes"};
    redisReply *rep = d2g_redis_argv(a->redis, 4, argv, NULL, err, sizeof(err));
    long long used = 0;
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
        if (rep->element[0]->type == REDIS_REPLY_STRING) {
            t->id = strtoll(rep->element[0]->str, NULL, 10);
            freeReplyObject(rep);
            if (t->id > 0)
                return task_done(t, "reused", NULL);
            rep = NULL;
        }
        if (rep && rep->element[1]->type == REDIS_REPLY_STRING)
            used = strtoll(rep->element[1]->str, NULL, 10);
    }
    if (rep)
        freeReplyObject(rep);
    else
        return task_done(t, "download_failed", "non copié : Redis indisponible, nouvel essai à la "
                                               "prochaine version du dossier");
    if (t->size > j->max_file) {
        snprintf(why, sizeof(why), "non copié : plus grand que la limite (%lld octets)", j->max_file);
        return task_done(t, "too_large", why);
    }
    if (used + j->reserved + t->size > j->budget)
        return task_done(t, "over_budget", "non copié : budget de pièces jointes du document atteint");
    j->reserved += t->size;
    t->state = T_DL_WAIT;
}

static void download_done(task_t *t, CURLcode code, long status) {
    d2g_attach_job_t *j = t->job;
    char why[200];
    j->a->downloads--;
    transfer_end(t);
    long long got = t->tmp ? (long long)ftello(t->tmp) : -1;
    char sum[25];
    d2g_md5_base64(&t->md5, sum);
    int same = !strcmp(sum, t->checksum);
    if (code == CURLE_OK && status == 200 && got == t->size && same && !t->write_failed) {
        t->state = T_UP_WAIT;
        return;
    }
    j->reserved -= t->size;
    if (code == CURLE_OK && status == 200 && got != t->size)
        snprintf(why, sizeof(why), "non copié : %lld octets reçus au lieu de %lld, nouvel essai à la "
                 "prochaine version du dossier", got, t->size);
    else if (code == CURLE_OK && status == 200)
        snprintf(why, sizeof(why), "non copié : le fichier reçu ne correspond pas à la somme de "
                 "contrôle de DS, nouvel essai à la prochaine version du dossier");
    else if (code == CURLE_OK)
        snprintf(why, sizeof(why), "non copié : téléchargement refusé par DS (HTTP %ld%s), nouvel "
                 "essai à la prochaine version du dossier", status,
                 status == 403 ? ", lien expiré" : "");
    else
        snprintf(why, sizeof(why), "non copié : téléchargement impossible (%s), nouvel essai à la "
                 "prochaine version du dossier", curl_easy_strerror(code));
    /* the file's name, never its URL (signed: a credential) */
    d2g_log(D2G_LOG_WARN, "attachment_download_failed", 0, j->doc->label,
            "[attach] dossier %" PRId64 ": file \"%s\" not copied: HTTP %ld%s%s", t->number,
            t->filename, status, code == CURLE_OK && status == 200 ? ", size or checksum mismatch" : "",
            code == CURLE_OK ? "" : curl_easy_strerror(code));
    task_done(t, "download_failed", why);
}

static void upload_done(task_t *t, CURLcode code, long status, int64_t now) {
    d2g_attach_job_t *j = t->job;
    d2g_attach_t *a = j->a;
    char err[D2G_ERRLEN], why[200];
    curl_off_t ct = 0;
    if (t->easy)
        curl_easy_getinfo(t->easy, CURLINFO_CONNECT_TIME_T, &ct);
    d2g_http_response_t resp = {.curl_code = (int)code, .status = code ? 0 : status,
                                .body = t->answer ? t->answer : "", .retry_after = "",
                                .connected = ct > 0 || status > 0};
    d2g_grist_end(a->redis, j->doc, t->holder, &resp);
    transfer_end(t);
    json_t *ans = code == CURLE_OK && status == 200 && t->answer ? json_loads(t->answer, 0, NULL) : NULL;
    json_t *id = json_array_get(ans, 0);
    if (json_is_integer(id) && json_integer_value(id) > 0) {
        t->id = json_integer_value(id);
        json_decref(ans);
        char ids[32], size[32];
        snprintf(ids, sizeof(ids), "%" JSON_INTEGER_FORMAT, t->id);
        snprintf(size, sizeof(size), "%lld", t->size);
        const char *set[] = {"HSET", j->store_key, t->checksum, ids};
        const char *add[] = {"HINCRBY", j->store_key, "bytes", size};
        redisReply *rep;
        if ((rep = d2g_redis_argv(a->redis, 4, set, NULL, err, sizeof(err))))
            freeReplyObject(rep);
        if ((rep = d2g_redis_argv(a->redis, 4, add, NULL, err, sizeof(err))))
            freeReplyObject(rep);
        j->reserved -= t->size;
        return task_done(t, "copied", NULL);
    }
    json_decref(ans);
    int again = code != CURLE_OK || status == 429 || status >= 500;
    if (again && ++t->tries < UPLOAD_TRIES) {
        t->state = T_UP_WAIT;
        t->not_before = now + 200 * (1 << t->tries);
        return;
    }
    j->reserved -= t->size;
    snprintf(why, sizeof(why), "non copié : Grist a refusé le fichier (%s %ld), nouvel essai à la "
             "prochaine version du dossier", code ? "transport" : "HTTP", code ? (long)code : status);
    d2g_log(D2G_LOG_WARN, "attachment_upload_failed", 0, j->doc->label,
            "[attach] dossier %" PRId64 ": file \"%s\" not uploaded (%s %ld)", t->number,
            t->filename, code ? "curl" : "HTTP", code ? (long)code : status);
    task_done(t, "upload_failed", why);
}

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
            download_done(t, code, status);
        else if (t->state == T_UP)
            upload_done(t, code, status, d2g_clock_mono_ms());
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
        transfer_end(t);
        if (t->tmp)
            fclose(t->tmp);
        free(t->answer);
    }
    free(j->tasks);
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
                    count(j->a, outcome);
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
            decide(t);
        if (t->state == T_DL_WAIT && a->downloads < j->max_downloads && start_download(t))
            task_done(t, "download_failed", "non copié : téléchargement impossible à démarrer");
        if (t->state == T_UP_WAIT && t->not_before <= now) {
            int64_t wait = 0;
            snprintf(t->holder, sizeof(t->holder), "%s:a%" PRIu64, a->worker_id, ++a->seq);
            int rc = d2g_grist_begin(a->redis, j->doc, t->holder, j->timeout_s, &wait, err, sizeof(err));
            if (rc > 0 || rc < 0)
                t->not_before = now + (rc > 0 && wait < 50 ? wait : 50);
            else if (start_upload(t)) {
                d2g_permits_release(a->redis, j->doc->permit_key, t->holder, err, sizeof(err));
                j->reserved -= t->size;
                task_done(t, "upload_failed", "non copié : envoi vers Grist impossible à démarrer");
            }
        }
        pending |= t->state != T_DONE;
    }
    if (pending)
        return 1;
    fill_cells(j);
    return 0;
}
