/* attach_task.c - one DS file's copy: looked up in the document's copies, downloaded
 * into a temporary file (its MD5 checked), uploaded under a permit; see attach.h. */
#include "attach_int.h"

#include "ds2grist/alloc.h"
#include "ds2grist/err.h"
#include "ds2grist/log.h"
#include "ds2grist/permits.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void d2g_attach_task_end(task_t *t) {
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

void d2g_attach_task_done(task_t *t, const char *outcome, const char *reason) {
    d2g_attach_task_end(t);
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
    d2g_attach_count(t->job->a, outcome);
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
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) /* an error page (an expired URL's 403): not the file, not kept */
        return n;
    /* more than DS said (a server without Content-Length): stopped, not stored */
    if (t->got + (long long)n > t->size)
        return 0;
    t->got += (long long)n;
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

int d2g_attach_task_download(task_t *t) {
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

int d2g_attach_task_upload(task_t *t) {
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
void d2g_attach_task_decide(task_t *t) {
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
            if (t->id > 0) { /* reused once the probe finds it still in the document */
                t->state = T_CHECK_WAIT;
                return;
            }
            rep = NULL;
        }
        if (rep && rep->element[1]->type == REDIS_REPLY_STRING)
            used = strtoll(rep->element[1]->str, NULL, 10);
    }
    if (rep)
        freeReplyObject(rep);
    else
        return d2g_attach_task_done(t, "download_failed", "non copié : Redis indisponible, nouvel essai à la "
                                               "prochaine version du dossier");
    if (t->size > j->max_file) {
        snprintf(why, sizeof(why), "non copié : plus grand que la limite (%lld octets)", j->max_file);
        return d2g_attach_task_done(t, "too_large", why);
    }
    if (used + j->reserved + t->size > j->budget)
        return d2g_attach_task_done(t, "over_budget", "non copié : budget de pièces jointes du document atteint");
    j->reserved += t->size;
    t->state = T_DL_WAIT;
}

void d2g_attach_task_downloaded(task_t *t, CURLcode code, long status) {
    d2g_attach_job_t *j = t->job;
    char why[200];
    j->a->downloads--;
    d2g_attach_task_end(t);
    long long got = t->tmp ? (long long)ftello(t->tmp) : -1;
    char sum[25];
    d2g_md5_base64(&t->md5, sum);
    int same = !strcmp(sum, t->checksum);
    if (code == CURLE_OK && status == 200 && got == t->size && same && !t->write_failed) {
        t->state = T_UP_WAIT;
        return;
    }
    j->reserved -= t->size;
    if ((code == CURLE_OK || code == CURLE_WRITE_ERROR) && status == 200 && got != t->size)
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
    d2g_attach_task_done(t, "download_failed", why);
}

/* A request to Grist (an upload, the probe) ended: its permit given back as the outcome
 * says (grist.h), its handles freed; its answer parsed if it is a 200 (NULL otherwise). */
static json_t *grist_request_end(task_t *t, CURLcode code, long status) {
    d2g_attach_job_t *j = t->job;
    curl_off_t ct = 0;
    if (t->easy)
        curl_easy_getinfo(t->easy, CURLINFO_CONNECT_TIME_T, &ct);
    d2g_http_response_t resp = {.curl_code = (int)code, .status = code ? 0 : status,
                                .body = t->answer ? t->answer : "", .retry_after = "",
                                .connected = ct > 0 || status > 0};
    d2g_grist_end(j->a->redis, j->doc, t->holder, &resp);
    d2g_attach_task_end(t);
    return code == CURLE_OK && status == 200 && t->answer ? json_loads(t->answer, 0, NULL) : NULL;
}

void d2g_attach_task_uploaded(task_t *t, CURLcode code, long status, int64_t now) {
    d2g_attach_job_t *j = t->job;
    d2g_attach_t *a = j->a;
    char err[D2G_ERRLEN], why[200];
    json_t *ans = grist_request_end(t, code, status);
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
        return d2g_attach_task_done(t, "copied", NULL);
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
    d2g_attach_task_done(t, "upload_failed", why);
}


/* --- the probe: remembered copies still in the document? ------------------------------ */

void d2g_attach_probe_step(d2g_attach_job_t *j, int64_t now) {
    d2g_attach_t *a = j->a;
    task_t *p = &j->probe;
    char err[D2G_ERRLEN];
    if (p->state == T_CHECK || p->not_before > now)
        return;
    json_t *ids = json_array();
    for (size_t i = 0; i < j->n_tasks && json_array_size(ids) < PROBE_MAX_IDS; i++)
        if (j->tasks[i].state == T_CHECK_WAIT)
            json_array_append_new(ids, json_integer(j->tasks[i].id));
    if (!json_array_size(ids)) {
        json_decref(ids);
        return;
    }
    int64_t wait = 0;
    snprintf(p->holder, sizeof(p->holder), "%s:a%" PRIu64, a->worker_id, ++a->seq);
    int rc = d2g_grist_begin(a->redis, j->doc, p->holder, j->timeout_s, &wait, err, sizeof(err));
    if (rc != 0) { /* no permit now (or Redis): again soon */
        p->not_before = now + (rc > 0 && wait < 50 ? wait : 50);
        json_decref(ids);
        return;
    }
    json_t *filter = json_pack("{s:o}", "id", ids);
    char *ftext = json_dumps(filter, JSON_COMPACT);
    json_decref(filter);
    char *esc = curl_easy_escape(NULL, ftext, 0);
    free(ftext);
    size_t ulen = strlen(j->doc->base) + (esc ? strlen(esc) : 0) + 32;
    char *url = d2g_malloc(ulen), auth[1024];
    snprintf(url, ulen, "%s/attachments?filter=%s", j->doc->base, esc ? esc : "");
    curl_free(esc);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
             j->doc->srv->api_key ? j->doc->srv->api_key : "");
    free(p->answer);
    p->answer = NULL;
    p->answer_len = 0;
    if (!(p->easy = curl_easy_init())) {
        explicit_bzero(auth, sizeof(auth));
        free(url);
        d2g_permits_release(a->redis, j->doc->permit_key, p->holder, err, sizeof(err));
        p->not_before = now + 1000;
        return;
    }
    p->headers = curl_slist_append(NULL, auth);
    explicit_bzero(auth, sizeof(auth));
    curl_easy_setopt(p->easy, CURLOPT_URL, url);
    curl_easy_setopt(p->easy, CURLOPT_HTTPHEADER, p->headers);
    curl_easy_setopt(p->easy, CURLOPT_WRITEFUNCTION, on_answer);
    curl_easy_setopt(p->easy, CURLOPT_WRITEDATA, p);
    curl_easy_setopt(p->easy, CURLOPT_TIMEOUT, j->timeout_s);
    curl_easy_setopt(p->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(p->easy, CURLOPT_PRIVATE, p);
    free(url);
    if (curl_multi_add_handle(a->multi, p->easy) != CURLM_OK) {
        d2g_attach_task_end(p);
        d2g_permits_release(a->redis, j->doc->permit_key, p->holder, err, sizeof(err));
        p->not_before = now + 1000;
        return;
    }
    p->state = T_CHECK;
    for (size_t i = 0; i < j->n_tasks; i++) /* those asked about: the probe answers for them */
        if (j->tasks[i].state == T_CHECK_WAIT)
            j->tasks[i].state = T_CHECK;
}

/* A remembered copy is gone from the document: forgotten, and copied again. */
static void forget_copy(task_t *t) {
    d2g_attach_job_t *j = t->job;
    char err[D2G_ERRLEN], ids[32], size[32];
    snprintf(ids, sizeof(ids), "%" JSON_INTEGER_FORMAT, t->id);
    snprintf(size, sizeof(size), "%lld", -t->size);
    /* only if it still names that copy (another worker may have copied it again meanwhile) */
    const char *script = "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then "
                         "redis.call('HDEL', KEYS[1], ARGV[1]); "
                         "redis.call('HINCRBY', KEYS[1], 'bytes', ARGV[3]) end return 0";
    const char *argv[] = {"EVAL", script, "1", j->store_key, t->checksum, ids, size};
    redisReply *rep = d2g_redis_argv(j->a->redis, 7, argv, NULL, err, sizeof(err));
    if (rep)
        freeReplyObject(rep);
    d2g_log(D2G_LOG_INFO, "attachment_gone", 0, j->doc->label,
            "[attach] dossier %" PRId64 ": file \"%s\" no longer in the document (attachment %"
            JSON_INTEGER_FORMAT "): copied again", t->number, t->filename, t->id);
    t->id = 0;
    t->state = T_NEW;
}

void d2g_attach_probe_done(task_t *p, CURLcode code, long status) {
    d2g_attach_job_t *j = p->job;
    json_t *ans = grist_request_end(p, code, status);
    p->state = T_DONE;
    json_t *recs = json_object_get(ans, "records");
    json_t *found = json_object(); /* id (text) -> true */
    size_t i;
    json_t *r;
    json_array_foreach(recs, i, r) {
        char k[32];
        snprintf(k, sizeof(k), "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(r, "id")));
        json_object_set_new(found, k, json_true());
    }
    if (!json_is_array(recs))
        d2g_log(D2G_LOG_WARN, "attachment_probe_failed", 0, j->doc->label,
                "[attach] remembered copies not confirmed (%s %ld): reused as they are",
                code ? "curl" : "HTTP", code ? (long)code : status);
    for (i = 0; i < j->n_tasks; i++) {
        task_t *t = &j->tasks[i];
        if (t->state != T_CHECK)
            continue;
        char k[32];
        snprintf(k, sizeof(k), "%" JSON_INTEGER_FORMAT, t->id);
        if (!json_is_array(recs) || json_object_get(found, k))
            d2g_attach_task_done(t, "reused", NULL);
        else
            forget_copy(t);
    }
    json_decref(found);
    json_decref(ans);
    free(p->answer);
    p->answer = NULL;
    p->answer_len = 0;
}
