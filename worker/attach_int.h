/*
 * attach_int.h - what attach.c (the engine and the jobs) and attach_task.c (one file's
 * life: looked up, downloaded, uploaded) share; not an API (attach.h is).
 */
#ifndef D2G_ATTACH_INT_H
#define D2G_ATTACH_INT_H

#include "attach.h"

#include "ds2grist/keys.h"
#include "ds2grist/md5.h"

#include <curl/curl.h>
#include <stdio.h>

/* A download may take this long at most (DS's object storage). */
#define DOWNLOAD_TIMEOUT_S 300
/* Uploads answered 429, 5xx or not at all are tried this many times. */
#define UPLOAD_TRIES 5
/* Grist's answer to an upload: a JSON array of ids. */
#define ANSWER_MAX 65536

/* T_CHECK_WAIT: a copy is remembered (its id), to be confirmed in Grist by the job's probe;
 * T_CHECK: the probe's own state while its request is in flight. */
typedef enum { T_NEW, T_CHECK_WAIT, T_CHECK, T_DL_WAIT, T_DL, T_UP_WAIT, T_UP, T_DONE } tstate_t;
/* Remembered copies confirmed by one probe request at most. */
#define PROBE_MAX_IDS 200

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
    long long got; /* bytes downloaded */
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
    /* One GET /attachments?filter={"id": [...]} that confirms the remembered copies are
     * still in the document (an agent may have removed them: "remove unused
     * attachments"); its own transfer, under the document's permit. */
    task_t probe;
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

/* Counts one file of an attachment cell in ds2grist_attachments_total{outcome}. */
void d2g_attach_count(d2g_attach_t *a, const char *outcome);

/* A task's transfer handles are freed (the API key wiped). */
void d2g_attach_task_end(task_t *t);
/* The task is over: counted, its reason (NULL: none) kept, its file closed. */
void d2g_attach_task_done(task_t *t, const char *outcome, const char *reason);
/* T_NEW: known in the document (reused), unfit (size, budget), or to download. */
void d2g_attach_task_decide(task_t *t);
/* T_DL_WAIT -> T_DL; -1 if it cannot start. */
int d2g_attach_task_download(task_t *t);
/* T_UP_WAIT with a permit -> T_UP; -1 if it cannot start. */
int d2g_attach_task_upload(task_t *t);
/* A transfer of the engine's multi ended. */
void d2g_attach_task_downloaded(task_t *t, CURLcode code, long status);
void d2g_attach_task_uploaded(task_t *t, CURLcode code, long status, int64_t now);
/* Starts the job's probe for its T_CHECK_WAIT tasks if none is in flight (under a permit,
 * retried later when none is free). */
void d2g_attach_probe_step(d2g_attach_job_t *j, int64_t now);
/* The probe's answer: the copies found are reused, the others copied again (their
 * memory in Redis forgotten); when Grist cannot say, they are reused as before. */
void d2g_attach_probe_done(task_t *probe, CURLcode code, long status);

#endif
