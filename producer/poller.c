/* poller.c - the producer's loop, see poller.h. */
#include "poller.h"
#include "checker.h"
#include "ds_client.h"
#include "emitter.h"
#include "gql_queries.h"
#include "members.h"
#include "schedule.h"

#include "ds2grist/keys.h"
#include "ds2grist/alloc.h"
#include "ds2grist/backoff.h"
#include "ds2grist/champs.h"
#include "ds2grist/clock.h"
#include "ds2grist/cursor.h"
#include "ds2grist/envelope.h"
#include "ds2grist/err.h"
#include "ds2grist/lease.h"
#include "ds2grist/log.h"
#include "ds2grist/ratelimit.h"
#include "ds2grist/redis.h"
#include "ds2grist/reload.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* DS counts requests per minute; our window is one second longer so that the
 * time a request spends in transit cannot put 401 in one of DS's windows. */
#define DS_WINDOW_MS 61000
/* Backoff after transient failures: 1 s doubling up to 5 min, with jitter. */
#define BACKOFF_BASE_MS 1000
#define BACKOFF_MAX_MS (5 * 60 * 1000)
/* A procedure that failed for a reason a retry cannot fix (token, GraphQL
 * error) is tried again after at least this long. */
#define FAILED_RETRY_MS (5 * 60 * 1000)

typedef enum { PASS_DOSSIERS, PASS_DELETED, PASS_LABELS } pass_t;
typedef enum { ST_IDLE, ST_REQUEST, ST_ACKS } state_t;

typedef struct token_state {
    const d2g_ds_token_t *cfg;
    d2g_config_t *held;    /* the configuration cfg points into (a reference) */
    int64_t blocked_until; /* mono ms: budget exhausted or 429 */
    int batch;             /* procedures per check now (halves when DS refuses a batch) */
    int batch_streak;
    int removed;           /* no longer configured: freed once nothing uses it */
} token_state_t;

struct proc;
/* What a DS request is for: one procedure's page, or a check of many (opaque of ds_client). */
typedef struct request {
    struct proc *proc;        /* a page of this procedure, or NULL */
    struct check_batch *batch; /* a check, or NULL */
} request_t;

typedef struct proc {
    const d2g_procedure_t *cfg;
    d2g_config_t *held; /* the configuration cfg points into (a reference) */
    int removed;        /* removed by a reload: no new request; freed once idle */
    token_state_t *token;
    state_t state;
    pass_t pass;
    int in_run;         /* lease held and cursor loaded */
    int64_t due;        /* mono ms when it may make its next request */
    uint64_t served;    /* turn at which it was last served (fairness) */
    int page_size;
    int ok_streak;
    int backoff;        /* consecutive transient failures */
    d2g_cursor_t cursor;
    int want_revision;  /* first page of a run asks for activeRevision */
    char *labels_after; /* label pass position (memory only) */
    /* The page waiting for its Kafka acknowledgements. */
    d2g_delivery_t dv;
    char *page_after;
    int page_has_next;
    char *page_max_modified;
    json_t *page_labels; /* number -> label digest, to record after the acks */
    char *page_revision;
    /* The form's descriptors whose champs' `columns` the worker never reads
     * (champs.h): left out of the messages. NULL until a run brought the form. */
    json_t *ruled;
    char *revision_id;  /* the form last stored or seen by a check; NULL: unknown */
    int page_emitted;
    int64_t last_complete_ms; /* wall ms of the last complete run, 0 = unknown */
    /* The run's lease token (lease.h): every cursor write is fenced by it. */
    char run_token[200];
    int64_t renewed_ms; /* mono ms of the last lease renewal */
    /* The last cursor this replica wrote, kept across runs: if Redis comes
     * back empty, the run restores it instead of starting over (see
     * docs/producer.md, "When Redis loses the cursors"). */
    d2g_cursor_t known;
    int has_known;
    char label[24];           /* the procedure number, as a metric label */
    /* Between runs a procedure waits for its check (checker.h, schedule.h). */
    request_t req;     /* opaque of its page requests */
    int owned;         /* this replica's share of the procedures (members.h) */
    int want_run;      /* a check (or a missing cursor, or the label pass) asks for a run */
    int labels_only;   /* ... for the label pass alone */
    int in_check;      /* in a check request in flight */
    int64_t check_due; /* mono ms of its next check */
    int64_t active_ms; /* wall ms of its last change seen (adaptive interval), 0 = unknown */
    /* Full resync (an agent's request, <ns>:{fleet}:resync): the request's
     * time, taken at the next run's start; full: this run's dossiers pass is
     * a full pass (its upserts are marked D2G_ENVELOPE_FULL). */
    int64_t resync_req;
    int full;
} proc_t;

/* A check request in flight: the procedures it is about, in alias order. */
typedef struct check_batch {
    request_t req;
    struct check_batch *prev, *next; /* the poller's list of checks in flight */
    token_state_t *token;
    size_t n;
    proc_t **procs;
    int *labels_due; /* the procedure's label pass is due */
} check_batch_t;

struct d2g_poller {
    d2g_reload_t *live;
    const d2g_config_t *cfg; /* the configuration applied last (held, below) */
    d2g_config_t *cfg_held;
    d2g_redis_t *redis;
    d2g_ds_client_t *ds;
    d2g_emitter_t *em;
    proc_t **procs; /* sorted by number; removed ones stay until they are idle */
    size_t n_procs;
    token_state_t **tokens;
    size_t n_tokens;
    int sweep; /* removed procedures or tokens wait to be freed */
    char replica[128]; /* lease owner id: host:pid:random */
    uint64_t turn;
    uint64_t holder_seq;
    unsigned rng;
    int stopping;
    d2g_service_t *svc;
    d2g_metric_t *m_emitted, *m_requests, *m_cursor_age, *m_page_size, *m_failed;
    d2g_metric_t *m_checked, *m_batch, *m_owned, *m_endpoint;
    int64_t last_gauges_ms;
    d2g_members_t members; /* live replicas, as of the last beat */
    int64_t members_at;    /* mono ms of the last beat */
    int64_t resync_at;     /* mono ms of the last look at the resync requests */
    d2g_sched_item_t *scratch;
    size_t *picked;
    check_batch_t *checks; /* in flight (freed with the poller if still there) */
    int n_checks;
};

/* --- helpers ------------------------------------------------------------- */

static int64_t jitter(d2g_poller_t *p, int64_t ms) { return d2g_backoff_jitter(&p->rng, ms); }

static int64_t backoff_ms(d2g_poller_t *p, int n) {
    return d2g_backoff_delay(&p->rng, BACKOFF_BASE_MS, BACKOFF_MAX_MS, n);
}

static void proc_key(d2g_poller_t *p, const proc_t *pr, const char *what, char *buf, size_t len) {
    d2g_keys_proc(d2g_redis_namespace(p->redis), buf, len, pr->cfg->number, what);
}

static int64_t lease_ms(const d2g_poller_t *p) { return (int64_t)p->cfg->producer.lease_s * 1000; }

/* Takes or renews the run's lease; D2G_LEASE_OTHER on a Redis error too. */
static d2g_lease_state_t take_lease(d2g_poller_t *p, proc_t *pr, int renew_only, char *err,
                                    size_t errlen) {
    char kl[256], kf[256];
    d2g_lease_state_t st = D2G_LEASE_OTHER;
    proc_key(p, pr, "lease", kl, sizeof(kl));
    proc_key(p, pr, "fence", kf, sizeof(kf));
    if (d2g_lease_take(p->redis, kl, kf, pr->run_token, lease_ms(p), renew_only, &st, err,
                       errlen))
        return D2G_LEASE_OTHER;
    err[0] = '\0';
    pr->renewed_ms = d2g_clock_mono_ms();
    return st;
}

/* A cursor write fenced by the run's lease: 0 written, -1 Redis error (err
 * set), 1 refused because the lease moved on (err set). On success the
 * in-memory cursor (already updated by the caller) becomes the known copy. */
static int cursor_write(d2g_poller_t *p, proc_t *pr, const char *const *pairs, char *err,
                        size_t errlen) {
    int written = 0;
    if (d2g_cursor_set_fenced(p->redis, pr->cfg->number, pr->run_token, lease_ms(p), pairs, &written,
                              err, errlen))
        return -1;
    if (!written) {
        d2g_err_set(err, errlen, "the lease moved on to another run: cursor not written");
        return 1;
    }
    return 0;
}

static void remember_cursor(proc_t *pr) {
    d2g_cursor_copy(&pr->known, &pr->cursor);
    pr->has_known = 1;
}

static void page_clear(proc_t *pr) {
    free(pr->page_after);
    free(pr->page_max_modified);
    free(pr->page_revision);
    json_decref(pr->page_labels);
    pr->page_after = pr->page_max_modified = pr->page_revision = NULL;
    pr->page_labels = NULL;
    pr->page_has_next = 0;
    pr->page_emitted = 0;
    memset(&pr->dv, 0, sizeof(pr->dv));
}

/* When a procedure is checked next (schedule.h): sooner the more recently it changed. */
static int64_t next_check_ms(const proc_t *pr, int64_t wall) {
    return d2g_sched_interval_ms((int64_t)pr->cfg->poll_interval_s * 1000,
                                 (int64_t)pr->cfg->poll_interval_max_s * 1000,
                                 pr->active_ms > 0 ? wall - pr->active_ms : -1);
}

/* --- runs ---------------------------------------------------------------- */

/* Ends a run: complete = the run went through every pass (its poll time is
 * recorded), else it was cut short and the next run resumes from the cursor. */
static void end_run(d2g_poller_t *p, proc_t *pr, int complete, int64_t next_in_ms) {
    char err[D2G_ERRLEN], k[256], now[24], next[24];
    int64_t wall = d2g_clock_wall_ms();
    /* When it is looked at next (the sync-status table shows it); a run cut
     * short by a stop leaves the last one recorded. */
    snprintf(next, sizeof(next), "%" PRId64, wall + next_in_ms);
    if (complete) {
        pr->last_complete_ms = wall;
        snprintf(now, sizeof(now), "%" PRId64, pr->last_complete_ms);
        const char *pairs[] = {"last_poll_ms", now, "next_poll_ms", next, NULL};
        if (cursor_write(p, pr, pairs, err, sizeof(err)))
            d2g_log_err(D2G_LOG_WARN, "cursor_save_failed", pr->cfg->number, NULL, err,
                        "could not record the poll time");
    } else if (!p->stopping && pr->in_run) {
        const char *pairs[] = {"next_poll_ms", next, NULL};
        if (cursor_write(p, pr, pairs, err, sizeof(err)) < 0)
            d2g_log_err(D2G_LOG_WARN, "cursor_save_failed", pr->cfg->number, NULL, err,
                        "could not record the next poll time");
    }
    proc_key(p, pr, "lease", k, sizeof(k));
    if (d2g_lease_release(p->redis, k, pr->run_token, err, sizeof(err)))
        d2g_log_err(D2G_LOG_WARN, "lease_release_failed", pr->cfg->number, NULL, err,
                    "lease will expire by itself");
    d2g_cursor_clear(&pr->cursor);
    free(pr->labels_after);
    pr->labels_after = NULL;
    pr->in_run = 0;
    pr->full = 0;
    pr->state = ST_IDLE;
    pr->due = d2g_clock_mono_ms() + next_in_ms;
    pr->want_run = pr->labels_only = 0;
    pr->check_due = pr->due; /* what comes next is a check */
}

/* The cursor hash is missing (Redis restarted empty, or a new procedure):
 * if this replica wrote one before, put it back (an older position only
 * re-sends messages, never skips any). Returns 0, or -1 on a Redis error. */
static int restore_cursor(d2g_poller_t *p, proc_t *pr) {
    char err[D2G_ERRLEN], la[24];
    if (!pr->has_known)
        return 0;
    const d2g_cursor_t *c = &pr->known;
    char rs[24], rd[24];
    snprintf(la, sizeof(la), "%" PRId64, c->labels_at_ms);
    snprintf(rs, sizeof(rs), "%" PRId64, c->resync_started_ms);
    snprintf(rd, sizeof(rd), "%" PRId64, c->resync_done_ms);
    const char *pairs[20];
    int n = 0;
    pairs[n++] = "updated_since", pairs[n++] = c->updated_since;
    if (c->after)
        pairs[n++] = "after", pairs[n++] = c->after;
    if (c->deleted_since)
        pairs[n++] = "deleted_since", pairs[n++] = c->deleted_since;
    if (c->deleted_after)
        pairs[n++] = "deleted_after", pairs[n++] = c->deleted_after;
    if (c->max_modified)
        pairs[n++] = "max_modified", pairs[n++] = c->max_modified;
    pairs[n++] = "labels_at_ms", pairs[n++] = la;
    if (c->resync_started_ms)
        pairs[n++] = "resync_started_ms", pairs[n++] = rs, pairs[n++] = "resync_done_ms", pairs[n++] = rd;
    pairs[n] = NULL;
    /* last_poll_ms is not restored: poll at once, the loss may have hidden changes. */
    if (cursor_write(p, pr, pairs, err, sizeof(err))) {
        d2g_log_err(D2G_LOG_WARN, "cursor_restore_failed", pr->cfg->number, NULL, err,
                    "will try again");
        return -1;
    }
    d2g_cursor_copy(&pr->cursor, c);
    pr->cursor.last_poll_ms = 0;
    pr->cursor.found = 1;
    d2g_log(D2G_LOG_WARN, "cursor_restored", pr->cfg->number, NULL,
            "the cursor was missing from Redis; restored this replica's last copy "
            "(dossiers from %s, deletions from %s)", c->updated_since,
            c->deleted_since ? c->deleted_since : "-");
    return 0;
}

/*
 * An agent asked for a full resync (the request's time in pr->resync_req):
 * the dossiers pass starts again from the epoch, as `resync` does, but in
 * the run holding the lease (a fenced write, so no other run's cursor write
 * mixes with it), and marked in the cursor until it ends. Its pages are sent
 * with D2G_ENVELOPE_FULL. The deletions pass reads again at least the last
 * producer.deleted_lookback_s (from the earlier of its date and that, from
 * its start: it can only re-send deletions, never skip one), so that recent
 * deletions are repaired too. The request leaves the fleet's set once the
 * cursor says so. 0, or -1 (Redis, or the lease moved on).
 */
static int start_full_pass(d2g_poller_t *p, proc_t *pr) {
    char err[D2G_ERRLEN], rq[24], k[D2G_KEYLEN], member[24];
    int fresh = pr->resync_req > pr->cursor.resync_started_ms; /* else: honoured already */
    char since[D2G_TIME_BUFLEN];
    double have = 0;
    int is_int;
    int64_t back = d2g_clock_wall_ms() - (int64_t)p->cfg->producer.deleted_lookback_s * 1000;
    if (pr->cursor.deleted_since && d2g_clock_parse_iso(pr->cursor.deleted_since, &have, &is_int) == 0 &&
        (int64_t)(have * 1000) < back)
        snprintf(since, sizeof(since), "%s", pr->cursor.deleted_since);
    else
        d2g_clock_format_ms(back, since);
    snprintf(rq, sizeof(rq), "%" PRId64, pr->resync_req);
    const char *pairs[] = {"updated_since", D2G_CURSOR_EPOCH, "after", "", "deleted_since", since,
                           "deleted_after", "", "resync_started_ms", rq, NULL};
    if (fresh && cursor_write(p, pr, pairs, err, sizeof(err))) {
        d2g_log_err(D2G_LOG_WARN, "cursor_save_failed", pr->cfg->number, NULL, err,
                    "cannot start the requested resync");
        return -1;
    }
    if (fresh) {
        free(pr->cursor.updated_since);
        free(pr->cursor.after);
        free(pr->cursor.deleted_since);
        free(pr->cursor.deleted_after);
        pr->cursor.updated_since = d2g_strdup(D2G_CURSOR_EPOCH);
        pr->cursor.after = NULL;
        pr->cursor.deleted_since = d2g_strdup(since);
        pr->cursor.deleted_after = NULL;
        pr->cursor.resync_started_ms = pr->resync_req;
    }
    d2g_keys_fleet(d2g_redis_namespace(p->redis), k, sizeof(k), "resync");
    snprintf(member, sizeof(member), "%" PRId64, pr->cfg->number);
    const char *zrem[] = {"ZREM", k, member};
    redisReply *rep = d2g_redis_argv(p->redis, 3, zrem, NULL, err, sizeof(err));
    if (rep)
        freeReplyObject(rep);
    else /* seen again at the next look: the pass starts over, nothing lost */
        d2g_log_err(D2G_LOG_WARN, "redis_error", pr->cfg->number, NULL, err, "resync request not removed");
    if (fresh)
        d2g_log(D2G_LOG_INFO, "resync_started", pr->cfg->number, NULL,
                "full resync asked from the document: every dossier is sent again");
    return 0;
}

/* Begins a run if this replica may: lease, cursor, interval. Returns 1 if the
 * run started, 0 if the procedure was rescheduled. */
static int begin_run(d2g_poller_t *p, proc_t *pr, int64_t now) {
    char err[D2G_ERRLEN], k[256];
    int64_t interval = (int64_t)pr->cfg->poll_interval_s * 1000;

    /* A new token for every run: a run that lost its lease can never write again. */
    snprintf(pr->run_token, sizeof(pr->run_token), "%s#%" PRIu64, p->replica, ++p->holder_seq);
    proc_key(p, pr, "lease", k, sizeof(k));
    d2g_lease_state_t st = take_lease(p, pr, 0, err, sizeof(err));
    if (err[0]) {
        d2g_log_err(D2G_LOG_WARN, "redis_error", pr->cfg->number, NULL, err, "cannot take the lease");
        pr->due = now + backoff_ms(p, 3);
        return 0;
    }
    if (st == D2G_LEASE_OTHER) { /* another replica polls it; look again later */
        pr->due = now + jitter(p, interval < 15000 ? interval : 15000);
        return 0;
    }
    if (d2g_cursor_load(p->redis, pr->cfg->number, &pr->cursor, err, sizeof(err))) {
        d2g_log_err(D2G_LOG_WARN, "redis_error", pr->cfg->number, NULL, err, "cannot read the cursor");
        d2g_lease_release(p->redis, k, pr->run_token, err, sizeof(err));
        pr->due = now + backoff_ms(p, 3);
        return 0;
    }
    if (!pr->cursor.found && restore_cursor(p, pr)) {
        d2g_cursor_clear(&pr->cursor);
        d2g_lease_release(p->redis, k, pr->run_token, err, sizeof(err));
        pr->due = now + backoff_ms(p, 3);
        return 0;
    }
    int64_t wall = d2g_clock_wall_ms();
    if (pr->cursor.last_poll_ms > pr->last_complete_ms)
        pr->last_complete_ms = pr->cursor.last_poll_ms; /* another replica's run counts */
    /* A run comes after a check that saw a change (or a missing cursor, or a
     * due label pass): it goes on however recently the procedure was looked at. */
    if (!pr->cursor.deleted_since) {
        /* No deletion position (a new procedure, or Redis lost it and this
         * replica has no copy): start producer.deleted_lookback_s back, so
         * that deletions made before or during a Redis loss are not skipped. */
        char since[D2G_TIME_BUFLEN];
        d2g_clock_format_ms(wall - (int64_t)p->cfg->producer.deleted_lookback_s * 1000, since);
        /* ... and the updatedSince the runs keep, recorded for operators (status). */
        const char *pairs[] = {"deleted_since", since, "updated_since", pr->cursor.updated_since, NULL};
        if (cursor_write(p, pr, pairs, err, sizeof(err))) {
            d2g_log_err(D2G_LOG_WARN, "cursor_save_failed", pr->cfg->number, NULL, err,
                        "cannot start the run");
            d2g_cursor_clear(&pr->cursor);
            d2g_lease_release(p->redis, k, pr->run_token, err, sizeof(err));
            pr->due = now + backoff_ms(p, 3);
            return 0;
        }
        pr->cursor.deleted_since = d2g_strdup(since);
        d2g_log(D2G_LOG_INFO, "cursor_created", pr->cfg->number, NULL,
                "no cursor in Redis: dossiers from %s, deletions from %s", pr->cursor.updated_since,
                since);
    }
    if (pr->resync_req && start_full_pass(p, pr)) {
        d2g_cursor_clear(&pr->cursor);
        d2g_lease_release(p->redis, k, pr->run_token, err, sizeof(err));
        pr->due = now + backoff_ms(p, 3);
        return 0;
    }
    pr->resync_req = 0;
    pr->full = pr->cursor.resync_started_ms > pr->cursor.resync_done_ms;
    remember_cursor(pr);
    pr->in_run = 1;
    pr->pass = pr->full                                             ? PASS_DOSSIERS
               : pr->labels_only && pr->cursor.labels_at_ms > 0 ? PASS_LABELS
                                                                 : PASS_DOSSIERS;
    pr->want_revision = 1;
    d2g_log(D2G_LOG_DEBUG, "run_started", pr->cfg->number, NULL, "from %s after %s",
            pr->cursor.updated_since, pr->cursor.after ? "stored cursor" : "the start");
    return 1;
}

/* Starts the next request of a procedure's run. */
static void start_request(d2g_poller_t *p, proc_t *pr, int64_t now) {
    char err[D2G_ERRLEN], k[256], holder[160];
    int64_t wait = 0;

    if (!pr->in_run && !begin_run(p, pr, now)) {
        pr->want_run = 0; /* not now: back to checks */
        pr->check_due = pr->due;
        return;
    }
    if (pr->token->blocked_until > now) {
        pr->due = pr->token->blocked_until;
        return;
    }
    /* Keep the lease while the run goes on; if another run took it in
     * between (even one that ended since), what this run knows is stale. */
    if (take_lease(p, pr, 1, err, sizeof(err)) != D2G_LEASE_KEPT) {
        d2g_log_err(D2G_LOG_WARN, "lease_lost", pr->cfg->number, NULL, err[0] ? err : "taken over",
                    "lease lost during the run; another replica will go on");
        end_run(p, pr, 0, backoff_ms(p, 3));
        return;
    }
    d2g_keys_dstoken(d2g_redis_namespace(p->redis), k, sizeof(k), pr->token->cfg->name, "budget");
    snprintf(holder, sizeof(holder), "%s:%" PRIu64, p->replica, ++p->holder_seq);
    if (d2g_ratelimit_take(p->redis, k, pr->token->cfg->requests_per_minute, DS_WINDOW_MS, holder,
                           &wait, err, sizeof(err))) {
        d2g_log_err(D2G_LOG_WARN, "redis_error", pr->cfg->number, NULL, err, "cannot take from the DS budget");
        pr->due = now + backoff_ms(p, 3);
        return;
    }
    if (wait > 0) {
        pr->token->blocked_until = now + wait;
        pr->due = now + wait;
        return;
    }

    json_t *vars = json_pack("{s:I, s:i}", "demarcheNumber", (json_int_t)pr->cfg->number,
                             "first", pr->page_size);
    const char *op, *query;
    switch (pr->pass) {
    case PASS_DOSSIERS:
        op = "getDossiers", query = d2g_gql_dossiers;
        json_object_set_new(vars, "updatedSince", json_string(pr->cursor.updated_since));
        json_object_set_new(vars, "after", pr->cursor.after ? json_string(pr->cursor.after) : json_null());
        json_object_set_new(vars, "withRevision", json_boolean(pr->want_revision));
        /* messages hold personal data: only for procedures that map them */
        json_object_set_new(vars, "withMessages", json_boolean(pr->cfg->mapping.messages));
        break;
    case PASS_DELETED:
        op = "getDeletedDossiers", query = d2g_gql_deleted;
        json_object_set_new(vars, "deletedSince", json_string(pr->cursor.deleted_since));
        json_object_set_new(vars, "after", pr->cursor.deleted_after ? json_string(pr->cursor.deleted_after) : json_null());
        break;
    default:
        op = "getLabels", query = d2g_gql_labels;
        /* The label pass reads few fields: the largest page always fits. */
        json_object_set_new(vars, "first", json_integer(p->cfg->producer.page_size));
        json_object_set_new(vars, "after", pr->labels_after ? json_string(pr->labels_after) : json_null());
        break;
    }
    int rc = d2g_ds_client_start(p->ds, pr->token->cfg->endpoint, pr->token->cfg->secret, op,
                                 query, vars, &pr->req, err, sizeof(err));
    json_decref(vars);
    if (rc) {
        d2g_log_err(D2G_LOG_ERROR, "ds_request_failed", pr->cfg->number, NULL, err, "cannot start");
        end_run(p, pr, 0, backoff_ms(p, 3));
        return;
    }
    pr->state = ST_REQUEST;
    pr->served = ++p->turn;
}

/* Sends one dossier message; returns 0, or -1 if this dossier cannot be sent. */
static int emit(d2g_poller_t *p, proc_t *pr, d2g_envelope_kind_t kind, int flags, json_t *node,
                int64_t fetched) {
    char err[D2G_ERRLEN], key[64];
    size_t len;
    if (kind == D2G_ENVELOPE_UPSERT)
        d2g_champs_prune(node, pr->ruled);
    char *msg = d2g_envelope_encode(kind, flags, pr->cfg->number, node, fetched, &len, err, sizeof(err));
    if (!msg) {
        /* A node DS sent without number or date: nothing a worker could use. */
        d2g_log_err(D2G_LOG_ERROR, "dossier_unusable", pr->cfg->number, NULL, err,
                    "dossier skipped");
        return -1;
    }
    int klen = d2g_envelope_key(pr->cfg->number, json_integer_value(json_object_get(node, "number")),
                                key, sizeof(key));
    int rc = d2g_emitter_send(p->em, key, (size_t)klen, msg, len, &pr->dv, err, sizeof(err));
    if (rc == -2) {
        /* Retrying cannot help, and failing the page would stall the procedure:
         * the dossier is reported (logs, status) and the others go on. */
        free(msg);
        d2g_log_err(D2G_LOG_ERROR, "dossier_too_large", pr->cfg->number, NULL, err,
                    "dossier %s skipped; raise message.max.bytes (producer and brokers)", key);
        char cause[D2G_ERRLEN];
        d2g_cursor_status_error(p->redis, pr->cfg->number, d2g_clock_wall_ms(), 0, err, cause,
                                sizeof(cause));
        return -1;
    }
    if (rc) {
        free(msg);
        if (!pr->dv.failed)
            snprintf(pr->dv.error, sizeof(pr->dv.error), "%s", err);
        pr->dv.failed++;
        return -1;
    }
    pr->page_emitted++;
    const char *lv[] = {pr->label};
    d2g_metric_inc(p->m_emitted, lv, 1);
    return 0;
}

/* The label pass: which of these dossiers' labels changed since last emitted? */
static void emit_label_changes(d2g_poller_t *p, proc_t *pr, json_t *nodes, int64_t fetched) {
    char err[D2G_ERRLEN], k[256];
    size_t n = json_array_size(nodes);
    if (n == 0)
        return;
    proc_key(p, pr, "labels", k, sizeof(k));
    const char **argv = d2g_calloc(n + 2, sizeof(char *));
    char (*nums)[24] = d2g_calloc(n, 24);
    argv[0] = "HMGET";
    argv[1] = k;
    for (size_t i = 0; i < n; i++) {
        snprintf(nums[i], 24, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(json_array_get(nodes, i), "number")));
        argv[i + 2] = nums[i];
    }
    redisReply *rep = d2g_redis_argv(p->redis, (int)n + 2, argv, NULL, err, sizeof(err));
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != n) {
        if (!pr->dv.failed)
            snprintf(pr->dv.error, sizeof(pr->dv.error), "label pass: %s", rep ? "bad reply" : err);
        pr->dv.failed++;
    } else {
        for (size_t i = 0; i < n; i++) {
            json_t *node = json_array_get(nodes, i);
            char *digest = d2g_checker_label_digest(json_object_get(node, "labels"));
            redisReply *old = rep->element[i];
            int changed = old->type != REDIS_REPLY_STRING || strcmp(old->str, digest) != 0;
            if (changed && emit(p, pr, D2G_ENVELOPE_UPSERT, D2G_ENVELOPE_PARTIAL, node, fetched) == 0)
                json_object_set_new(pr->page_labels, nums[i], json_string(digest));
            free(digest);
        }
    }
    if (rep)
        freeReplyObject(rep);
    free(argv);
    free(nums);
}

/* A page arrived: send its messages; the cursor moves when they are acknowledged. */
static void handle_page(d2g_poller_t *p, proc_t *pr, json_t *data) {
    json_t *demarche = json_object_get(data, "demarche");
    const char *field = pr->pass == PASS_DELETED ? "deletedDossiers" : "dossiers";
    json_t *conn = json_object_get(demarche, field);
    json_t *nodes = json_object_get(conn, "nodes");
    json_t *info = json_object_get(conn, "pageInfo");
    int64_t fetched = d2g_clock_wall_ms();

    page_clear(pr);
    pr->page_labels = json_object();
    pr->state = ST_ACKS;
    if (!json_is_array(nodes) || !json_is_object(info)) {
        snprintf(pr->dv.error, sizeof(pr->dv.error), "answer without %s.nodes and pageInfo", field);
        pr->dv.failed = 1;
        return;
    }
    if (pr->pass == PASS_DOSSIERS && pr->want_revision) {
        json_t *rev = json_object_get(demarche, "activeRevision");
        if (json_is_object(rev)) {
            pr->page_revision = json_dumps(rev, JSON_COMPACT);
            json_decref(pr->ruled);
            pr->ruled = d2g_champs_ruled_descriptors(rev);
        }
    }
    size_t i;
    json_t *node;
    if (pr->pass == PASS_LABELS) {
        emit_label_changes(p, pr, nodes, fetched);
    } else {
        json_array_foreach(nodes, i, node) {
            d2g_envelope_kind_t kind = pr->pass == PASS_DOSSIERS ? D2G_ENVELOPE_UPSERT : D2G_ENVELOPE_DELETE;
            int flags = pr->pass == PASS_DOSSIERS && pr->full ? D2G_ENVELOPE_FULL : 0;
            if (emit(p, pr, kind, flags, node, fetched))
                continue;
            if (pr->pass == PASS_DOSSIERS) {
                char num[24];
                const char *mod = json_string_value(json_object_get(node, "dateDerniereModification"));
                snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                         json_integer_value(json_object_get(node, "number")));
                char *digest = d2g_checker_label_digest(json_object_get(node, "labels"));
                json_object_set_new(pr->page_labels, num, json_string(digest));
                free(digest);
                if (mod && (!pr->page_max_modified || strcmp(mod, pr->page_max_modified) > 0)) {
                    free(pr->page_max_modified);
                    pr->page_max_modified = d2g_strdup(mod);
                }
            }
        }
    }
    /* An empty page's endCursor is null: it never replaces the stored one. */
    const char *end = json_string_value(json_object_get(info, "endCursor"));
    if (end && json_array_size(nodes) > 0)
        pr->page_after = d2g_strdup(end);
    pr->page_has_next = json_is_true(json_object_get(info, "hasNextPage"));
}

/* The workers create a new form's columns before any dossier (worker/formschema.h). */
static const d2g_redis_script_t forms_changed_script = {
    "forms_changed",
    "local g = redis.call('INCR', KEYS[2])\n"
    "redis.call('ZADD', KEYS[1], g, ARGV[1])\n"
    "redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -10001)\n"
    "return g\n",
};

static void forms_changed(d2g_poller_t *p, proc_t *pr) {
    char err[D2G_ERRLEN], fk[D2G_KEYLEN], gk[D2G_KEYLEN], num[24];
    const char *ns = d2g_redis_namespace(p->redis);
    if (d2g_keys_fleet(ns, fk, sizeof(fk), "forms") || d2g_keys_fleet(ns, gk, sizeof(gk), "formsgen"))
        return;
    snprintf(num, sizeof(num), "%" PRId64, pr->cfg->number);
    const char *keys[] = {fk, gk}, *args[] = {num};
    redisReply *rep = d2g_redis_eval(p->redis, &forms_changed_script, 2, keys, 1, args, err, sizeof(err));
    if (!rep) {
        d2g_log_err(D2G_LOG_WARN, "redis_error", pr->cfg->number, NULL, err,
                    "new form not announced: the workers see it within their recheck");
        return;
    }
    freeReplyObject(rep);
    d2g_log(D2G_LOG_INFO, "form_changed", pr->cfg->number, NULL, "new form %s stored",
            pr->revision_id ? pr->revision_id : "(no id)");
}

/* Every message of the page is acknowledged (or failed): persist, go on. */
static void finish_page(d2g_poller_t *p, proc_t *pr) {
    char err[D2G_ERRLEN], k[256];
    int64_t now = d2g_clock_mono_ms(), wall = d2g_clock_wall_ms();
    int rc = 0;

    if (pr->dv.failed) {
        d2g_log_err(D2G_LOG_ERROR, "page_not_delivered", pr->cfg->number, NULL, pr->dv.error,
                    "%d of the page's messages failed; the page will be read again", pr->dv.failed);
        d2g_cursor_status_error(p->redis, pr->cfg->number, wall, 0, pr->dv.error, err, sizeof(err));
        pr->backoff++;
        page_clear(pr);
        end_run(p, pr, 0, backoff_ms(p, pr->backoff));
        return;
    }
    /* Side state first, the cursor last: a crash in between re-emits the page. */
    if (pr->page_revision) {
        proc_key(p, pr, "revision", k, sizeof(k));
        const char *argv[] = {"SET", k, pr->page_revision, "GET"};
        redisReply *rep = d2g_redis_argv(p->redis, 4, argv, NULL, err, sizeof(err));
        rc |= rep ? 0 : -1;
        if (rep) {
            int changed = rep->type != REDIS_REPLY_STRING || strcmp(rep->str, pr->page_revision);
            freeReplyObject(rep);
            json_t *rev = json_loads(pr->page_revision, 0, NULL);
            const char *id = json_string_value(json_object_get(rev, "id"));
            if (id) {
                free(pr->revision_id);
                pr->revision_id = d2g_strdup(id);
            }
            json_decref(rev);
            if (changed)
                forms_changed(p, pr);
        }
    }
    if (!rc && json_object_size(pr->page_labels) > 0) {
        size_t n = json_object_size(pr->page_labels), argc = 2;
        const char **argv = d2g_calloc(2 * n + 2, sizeof(char *));
        const char *num;
        json_t *digest;
        proc_key(p, pr, "labels", k, sizeof(k));
        argv[0] = "HSET";
        argv[1] = k;
        json_object_foreach(pr->page_labels, num, digest) {
            argv[argc++] = num;
            argv[argc++] = json_string_value(digest);
        }
        redisReply *rep = d2g_redis_argv(p->redis, (int)argc, argv, NULL, err, sizeof(err));
        rc |= rep ? 0 : -1;
        if (rep)
            freeReplyObject(rep);
        free(argv);
    }
    if (!rc && pr->page_after) {
        if (pr->pass == PASS_DOSSIERS) {
            const char *pairs[] = {"after", pr->page_after, "max_modified",
                                   pr->page_max_modified ? pr->page_max_modified
                                   : pr->cursor.max_modified ? pr->cursor.max_modified : "",
                                   NULL};
            rc = cursor_write(p, pr, pairs, err, sizeof(err));
            free(pr->cursor.after);
            pr->cursor.after = d2g_strdup(pr->page_after);
        } else if (pr->pass == PASS_DELETED) {
            const char *pairs[] = {"deleted_after", pr->page_after, NULL};
            rc = cursor_write(p, pr, pairs, err, sizeof(err));
            free(pr->cursor.deleted_after);
            pr->cursor.deleted_after = d2g_strdup(pr->page_after);
        } else {
            free(pr->labels_after);
            pr->labels_after = d2g_strdup(pr->page_after);
        }
    }
    if (rc == 1) {
        /* Fenced: this run was paused past its lease and another took over. */
        d2g_log_err(D2G_LOG_WARN, "cursor_write_refused", pr->cfg->number, NULL, err,
                    "this run stops; the replica holding the lease goes on");
        page_clear(pr);
        end_run(p, pr, 0, backoff_ms(p, 3));
        return;
    }
    if (rc) {
        d2g_log_err(D2G_LOG_ERROR, "cursor_save_failed", pr->cfg->number, NULL, err,
                    "the page will be read again");
        pr->backoff++;
        page_clear(pr);
        end_run(p, pr, 0, backoff_ms(p, pr->backoff));
        return;
    }
    remember_cursor(pr);
    d2g_cursor_status_ok(p->redis, pr->cfg->number, wall, pr->page_emitted, err, sizeof(err));
    const char *pl[] = {pr->label};
    d2g_metric_set(p->m_failed, pl, 0);
    d2g_metric_set(p->m_page_size, pl, pr->page_size);
    if (pr->page_emitted)
        pr->active_ms = wall;
    if (pr->page_emitted)
        d2g_log(D2G_LOG_INFO, "page_emitted", pr->cfg->number, NULL, "%s: %d messages (page size %d)",
                pr->pass == PASS_DOSSIERS ? "dossiers" : pr->pass == PASS_DELETED ? "deleted" : "labels",
                pr->page_emitted, pr->page_size);
    pr->backoff = 0;
    pr->want_revision = 0;
    if (pr->pass != PASS_LABELS && ++pr->ok_streak >= 3 && pr->page_size < p->cfg->producer.page_size) {
        pr->page_size = pr->page_size * 2 < p->cfg->producer.page_size ? pr->page_size * 2
                                                                       : p->cfg->producer.page_size;
        pr->ok_streak = 0;
    }
    int has_next = pr->page_has_next;
    page_clear(pr);
    pr->state = ST_IDLE;
    pr->due = now; /* behind everything already due: one page per turn */
    if (p->stopping) {
        end_run(p, pr, 0, 0);
        return;
    }
    if (has_next)
        return;
    int labels_due = p->cfg->producer.labels_interval_s > 0 &&
                     wall - pr->cursor.labels_at_ms >= (int64_t)p->cfg->producer.labels_interval_s * 1000;
    if (pr->pass == PASS_DOSSIERS) {
        if (pr->full) {
            char at[24];
            snprintf(at, sizeof(at), "%" PRId64, wall);
            const char *pairs[] = {"resync_done_ms", at, NULL};
            if (cursor_write(p, pr, pairs, err, sizeof(err)) == 0) {
                pr->cursor.resync_done_ms = wall;
                pr->full = 0;
                remember_cursor(pr);
                d2g_log(D2G_LOG_INFO, "resync_done", pr->cfg->number, NULL,
                        "full resync: every dossier sent again");
            }
        }
        pr->pass = PASS_DELETED;
    } else if (pr->pass == PASS_DELETED && labels_due && pr->cursor.labels_at_ms > 0) {
        pr->pass = PASS_LABELS;
    } else {
        if (pr->pass == PASS_LABELS || pr->cursor.labels_at_ms == 0) {
            /* The first run's dossiers pass recorded every dossier's labels:
             * it counts as a label pass. */
            char at[24];
            snprintf(at, sizeof(at), "%" PRId64, wall);
            const char *pairs[] = {"labels_at_ms", at, NULL};
            if (cursor_write(p, pr, pairs, err, sizeof(err)) == 0) {
                pr->cursor.labels_at_ms = wall;
                remember_cursor(pr);
            }
        }
        end_run(p, pr, 1, d2g_sched_spread(&p->rng, next_check_ms(pr, wall)));
    }
}

/* A DS answer arrived for procedure opaque. */
static void on_ds_done(void *opaque, const d2g_ds_result_t *res, void *ud) {
    d2g_poller_t *p = ud;
    proc_t *pr = opaque;
    char err[D2G_ERRLEN];
    int64_t now = d2g_clock_mono_ms(), wall = d2g_clock_wall_ms();

    pr->state = ST_IDLE;
    const char *lv[] = {pr->token->cfg->name, d2g_ds_status_name(res->status)};
    d2g_metric_inc(p->m_requests, lv, 1);
    switch (res->status) {
    case D2G_DS_OK:
        if (!json_is_object(json_object_get(res->data, "demarche"))) {
            d2g_ds_result_t fake = *res;
            fake.status = D2G_DS_GRAPHQL;
            snprintf(fake.error, sizeof(fake.error), "demarche %" PRId64 " not found", pr->cfg->number);
            on_ds_done(opaque, &fake, ud);
            return;
        }
        handle_page(p, pr, res->data);
        return;
    case D2G_DS_RATE_LIMITED:
        d2g_log_err(D2G_LOG_WARN, "ds_rate_limited", pr->cfg->number, NULL, res->error,
                    "token %s paused", pr->token->cfg->name);
        pr->token->blocked_until = now + res->retry_after_ms;
        pr->due = pr->token->blocked_until;
        return;
    case D2G_DS_TOO_BIG:
        if (pr->pass != PASS_LABELS && pr->page_size > p->cfg->producer.page_size_min) {
            int before = pr->page_size;
            pr->page_size = pr->page_size / 2 > p->cfg->producer.page_size_min
                                ? pr->page_size / 2 : p->cfg->producer.page_size_min;
            pr->ok_streak = 0;
            d2g_log_err(D2G_LOG_WARN, "ds_page_shrunk", pr->cfg->number, NULL, res->error,
                        "page size %d -> %d", before, pr->page_size);
            pr->due = now;
            return;
        }
        /* Already at the floor: retry with backoff. */
        __attribute__((fallthrough));
    case D2G_DS_RETRY:
    case D2G_DS_BAD_RESPONSE:
        pr->backoff++;
        d2g_log_err(D2G_LOG_WARN, "ds_retry", pr->cfg->number, NULL, res->error,
                    "retry %d", pr->backoff);
        d2g_cursor_status_error(p->redis, pr->cfg->number, wall, 0, res->error, err, sizeof(err));
        if (backoff_ms(p, pr->backoff) > (int64_t)p->cfg->producer.lease_s * 500)
            end_run(p, pr, 0, backoff_ms(p, pr->backoff));
        else
            pr->due = now + backoff_ms(p, pr->backoff);
        return;
    case D2G_DS_AUTH:
    case D2G_DS_GRAPHQL:
        d2g_log_err(D2G_LOG_ERROR, "procedure_failed", pr->cfg->number, NULL, res->error,
                    "token %s; the other procedures go on", pr->token->cfg->name);
        d2g_cursor_status_error(p->redis, pr->cfg->number, wall, 1, res->error, err, sizeof(err));
        {
            const char *fl[] = {pr->label};
            d2g_metric_set(p->m_failed, fl, 1);
            int64_t interval = (int64_t)pr->cfg->poll_interval_s * 1000;
            end_run(p, pr, 0, jitter(p, interval > FAILED_RETRY_MS ? interval : FAILED_RETRY_MS));
        }
        return;
    }
}

/* --- checks (checker.h) ------------------------------------------------- */

/* May this procedure go into a check now? due_by: its check must be due by then. */
static int check_candidate(const proc_t *pr, int64_t now, int64_t due_by) {
    return pr->owned && !pr->removed && !pr->in_run && !pr->want_run && !pr->in_check && pr->state == ST_IDLE &&
           pr->check_due <= due_by && pr->token->blocked_until <= now;
}

/* How early a procedure may be checked to fill a batch that one due procedure
 * starts: half its shortest interval. Checked together, procedures stay
 * together: a token's checks settle into full batches. */
static int64_t check_early_ms(const proc_t *pr) { return (int64_t)pr->cfg->poll_interval_s * 500; }

static void check_batch_free(check_batch_t *b) {
    if (!b)
        return;
    free(b->procs);
    free(b->labels_due);
    free(b);
}

/* A run is wanted at once (a change, a failed check, a first run, a label pass). */
static void want_run(proc_t *pr, int64_t now, int labels_only) {
    pr->want_run = 1;
    pr->labels_only = labels_only;
    pr->due = now;
}

/* Starts one check request: the due procedures of the token whose oldest due
 * check is the oldest, up to its batch size. Returns 1 if it did something
 * (a request, or procedures moved on), 0 if no check is due. */
static int start_check(d2g_poller_t *p, int64_t now) {
    char err[D2G_ERRLEN], k[D2G_KEYLEN], holder[160];
    proc_t *first = NULL;
    for (size_t i = 0; i < p->n_procs; i++) {
        proc_t *pr = p->procs[i];
        if (check_candidate(pr, now, now) && (!first || pr->check_due < first->check_due))
            first = pr;
    }
    if (!first)
        return 0;
    token_state_t *tok = first->token;
    size_t nc = 0;
    for (size_t i = 0; i < p->n_procs; i++)
        if (p->procs[i]->token == tok &&
            check_candidate(p->procs[i], now, now + check_early_ms(p->procs[i])))
            p->scratch[nc++] = (d2g_sched_item_t){p->procs[i]->check_due, i};
    /* The due ones first, then those due soonest. */
    size_t n = d2g_sched_pick(p->scratch, nc, INT64_MAX, (size_t)tok->batch, p->picked);

    int64_t *numbers = d2g_calloc(n + 1, sizeof(int64_t));
    d2g_cursor_t *cursors = d2g_calloc(n + 1, sizeof(d2g_cursor_t));
    for (size_t i = 0; i < n; i++)
        numbers[i] = p->procs[p->picked[i]]->cfg->number;
    if (d2g_checker_load_cursors(p->redis, numbers, n, cursors, err, sizeof(err))) {
        d2g_log_err(D2G_LOG_WARN, "redis_error", 0, NULL, err, "cannot read cursors for a check");
        for (size_t i = 0; i < n; i++)
            p->procs[p->picked[i]]->check_due = now + backoff_ms(p, 3);
        free(numbers);
        free(cursors);
        return 1;
    }
    check_batch_t *b = d2g_calloc(1, sizeof(*b));
    b->req.batch = b;
    b->token = tok;
    b->procs = d2g_calloc(n + 1, sizeof(proc_t *));
    b->labels_due = d2g_calloc(n + 1, sizeof(int));
    d2g_check_item_t *items = d2g_calloc(n + 1, sizeof(d2g_check_item_t));
    int64_t wall = d2g_clock_wall_ms();
    int64_t labels_ms = (int64_t)p->cfg->producer.labels_interval_s * 1000;
    for (size_t i = 0; i < n; i++) {
        proc_t *pr = p->procs[p->picked[i]];
        d2g_cursor_t *cu = &cursors[i];
        if (!cu->deleted_since || /* never ran: a first run, no check */
            cu->resync_started_ms > cu->resync_done_ms) { /* a full resync to finish */
            want_run(pr, now, 0);
            continue;
        }
        double at;
        int is_int;
        if (pr->active_ms == 0 && cu->max_modified && /* its last change, at startup */
            d2g_clock_parse_iso(cu->max_modified, &at, &is_int) == 0)
            pr->active_ms = (int64_t)(at * 1000);
        b->labels_due[b->n] = labels_ms > 0 && wall - cu->labels_at_ms >= labels_ms;
        items[b->n] = (d2g_check_item_t){pr->cfg->number, cu->updated_since, cu->after,
                                         cu->deleted_since, cu->deleted_after};
        b->procs[b->n++] = pr;
    }
    int rc = 0;
    int64_t wait = 0;
    if (b->n > 0) {
        d2g_keys_dstoken(d2g_redis_namespace(p->redis), k, sizeof(k), tok->cfg->name, "budget");
        snprintf(holder, sizeof(holder), "%s:%" PRIu64, p->replica, ++p->holder_seq);
        rc = d2g_ratelimit_take(p->redis, k, tok->cfg->requests_per_minute, DS_WINDOW_MS, holder,
                                &wait, err, sizeof(err));
        if (rc)
            d2g_log_err(D2G_LOG_WARN, "redis_error", 0, NULL, err, "cannot take from the DS budget");
        else if (wait > 0)
            tok->blocked_until = now + wait; /* the procedures wait with their token */
    }
    if (b->n > 0 && !rc && wait == 0) {
        char *query = d2g_checker_query(b->labels_due, b->n);
        json_t *vars = d2g_checker_variables(items, b->n);
        rc = d2g_ds_client_start(p->ds, tok->cfg->endpoint, tok->cfg->secret, D2G_CHECK_OPERATION,
                                 query, vars, &b->req, err, sizeof(err));
        free(query);
        json_decref(vars);
        if (rc)
            d2g_log_err(D2G_LOG_ERROR, "ds_request_failed", 0, NULL, err, "cannot start a check");
        else {
            for (size_t i = 0; i < b->n; i++)
                b->procs[i]->in_check = 1;
            b->next = p->checks;
            if (p->checks)
                p->checks->prev = b;
            p->checks = b;
            p->n_checks++;
            b = NULL; /* in flight: on_check_done frees it */
        }
    }
    if (b && rc)
        for (size_t i = 0; i < b->n; i++)
            b->procs[i]->check_due = now + backoff_ms(p, 3);
    for (size_t i = 0; i < n; i++)
        d2g_cursor_clear(&cursors[i]);
    free(cursors);
    free(items);
    free(numbers);
    check_batch_free(b);
    return 1;
}

/* A check answer arrived. */
static void on_check_done(d2g_poller_t *p, check_batch_t *b, const d2g_ds_result_t *res) {
    char err[D2G_ERRLEN];
    int64_t now = d2g_clock_mono_ms(), wall = d2g_clock_wall_ms();
    token_state_t *tok = b->token;
    if (b->prev)
        b->prev->next = b->next;
    else
        p->checks = b->next;
    if (b->next)
        b->next->prev = b->prev;
    p->n_checks--;
    const char *lv[] = {tok->cfg->name, d2g_ds_status_name(res->status)};
    d2g_metric_inc(p->m_requests, lv, 1);
    for (size_t i = 0; i < b->n; i++)
        b->procs[i]->in_check = 0;

    d2g_check_outcome_t *out = d2g_calloc(b->n + 1, sizeof(*out));
    int parsed = -1;
    if (res->status == D2G_DS_OK || res->status == D2G_DS_GRAPHQL)
        parsed = d2g_checker_parse(res->status == D2G_DS_OK ? res->data : res->partial,
                                   res->errors, b->n, out, err, sizeof(err));
    /* Refused as too big: complexity, timeout, a request DS (or its proxy) finds too large,
     * or an error about the whole request. Smaller batches at once. */
    int refused = res->status == D2G_DS_TOO_BIG || res->http_status == 413 ||
                  res->http_status == 414 || (res->status == D2G_DS_GRAPHQL && parsed != 0);
    if (parsed == 0) {
        int64_t *quiet = d2g_calloc(b->n + 1, sizeof(int64_t));
        int64_t *next_at = d2g_calloc(b->n + 1, sizeof(int64_t));
        int *labels_done = d2g_calloc(b->n + 1, sizeof(int));
        size_t nq = 0;
        /* Quiet procedures whose label pass is due: done here if their label page
         * was complete and equal to what was last emitted. */
        json_t *data = res->status == D2G_DS_OK ? res->data : res->partial;
        json_t **pages = d2g_calloc(b->n + 1, sizeof(json_t *));
        int64_t *lnum = d2g_calloc(b->n + 1, sizeof(int64_t));
        int *same = d2g_calloc(b->n + 1, sizeof(int)), *lat = d2g_calloc(b->n + 1, sizeof(int));
        size_t nl = 0;
        for (size_t i = 0; i < b->n; i++)
            if (out[i] == D2G_CHECK_QUIET && b->labels_due[i] &&
                (pages[nl] = d2g_checker_label_page(data, i))) {
                lnum[nl] = b->procs[i]->cfg->number;
                lat[i] = (int)nl + 1;
                nl++;
            }
        if (nl && d2g_checker_labels_same(p->redis, lnum, pages, nl, same, err, sizeof(err))) {
            d2g_log_err(D2G_LOG_WARN, "redis_error", 0, NULL, err, "cannot compare labels");
            memset(same, 0, (nl + 1) * sizeof(int));
        }
        for (size_t i = 0; i < b->n; i++) {
            proc_t *pr = b->procs[i];
            /* A new form without any dossier changed: a run stores it (its first page). */
            const char *rid = d2g_checker_revision(data, i);
            if (rid && pr->revision_id && strcmp(rid, pr->revision_id) && out[i] == D2G_CHECK_QUIET &&
                !b->labels_due[i]) {
                d2g_log(D2G_LOG_INFO, "form_published", pr->cfg->number, NULL,
                        "form %s replaces %s: a run stores it", rid, pr->revision_id);
                out[i] = D2G_CHECK_CHANGED;
            }
            if (rid && !pr->revision_id)
                pr->revision_id = d2g_strdup(rid);
            if (out[i] == D2G_CHECK_QUIET && b->labels_due[i]) {
                if (lat[i] && same[lat[i] - 1])
                    labels_done[nq] = 1; /* the label pass is done: quiet */
                else {
                    want_run(pr, now, 1);
                    continue;
                }
            }
            if (out[i] == D2G_CHECK_CHANGED || out[i] == D2G_CHECK_DELETED) {
                pr->active_ms = wall;
                want_run(pr, now, 0);
            } else if (out[i] == D2G_CHECK_FAILED) {
                want_run(pr, now, 0); /* its run meets the error and reports it */
            } else if (out[i] == D2G_CHECK_UNKNOWN) {
                pr->check_due = now; /* again at once, without the failed ones */
            } else {
                pr->check_due = now + d2g_sched_spread(&p->rng, next_check_ms(pr, wall));
                pr->last_complete_ms = wall;
                next_at[nq] = wall + (pr->check_due - now);
                quiet[nq++] = pr->cfg->number;
            }
        }
        if (nq && d2g_checker_mark_polled(p->redis, quiet, labels_done, next_at, nq, wall, err, sizeof(err)))
            d2g_log_err(D2G_LOG_WARN, "cursor_save_failed", 0, NULL, err, "could not record check times");
        const char *cl[] = {tok->cfg->name};
        d2g_metric_inc(p->m_checked, cl, (double)b->n);
        free(quiet);
        free(next_at);
        free(labels_done);
        free(pages);
        free(lnum);
        free(same);
        free(lat);
        tok->batch = d2g_sched_batch_after(tok->batch, p->cfg->producer.check_batch_size, 0,
                                           &tok->batch_streak);
    } else if (refused && b->n > 1) {
        int before = tok->batch;
        int cur = tok->batch < (int)b->n ? tok->batch : (int)b->n;
        tok->batch = d2g_sched_batch_after(cur, p->cfg->producer.check_batch_size, 1,
                                           &tok->batch_streak);
        d2g_log_err(D2G_LOG_WARN, "ds_check_shrunk", 0, NULL, parsed ? res->error : err,
                    "token %s: check batch %d -> %d", tok->cfg->name, before, tok->batch);
        for (size_t i = 0; i < b->n; i++)
            b->procs[i]->check_due = now;
    } else if (res->status == D2G_DS_RATE_LIMITED) {
        d2g_log_err(D2G_LOG_WARN, "ds_rate_limited", 0, NULL, res->error, "token %s paused",
                    tok->cfg->name);
        tok->blocked_until = now + res->retry_after_ms;
        for (size_t i = 0; i < b->n; i++)
            b->procs[i]->check_due = tok->blocked_until;
    } else if (res->status == D2G_DS_RETRY || res->status == D2G_DS_BAD_RESPONSE) {
        d2g_log_err(D2G_LOG_WARN, "ds_retry", 0, NULL, res->error, "check of %zu procedures",
                    b->n);
        for (size_t i = 0; i < b->n; i++)
            b->procs[i]->check_due = now + backoff_ms(p, 2);
    } else {
        /* A token refused (AUTH), or one procedure alone that cannot be checked:
         * their runs meet the error and report it for each procedure. */
        for (size_t i = 0; i < b->n; i++)
            want_run(b->procs[i], now, 0);
    }
    const char *bl[] = {tok->cfg->name};
    d2g_metric_set(p->m_batch, bl, tok->batch);
    free(out);
    check_batch_free(b);
}

/* This replica's share of the configured procedures among the live replicas
 * (schedule.h): after a change of replicas, and after a reload. Returns it. */
static size_t assign_owners(d2g_poller_t *p, int64_t now) {
    size_t owned = 0;
    for (size_t i = 0; i < p->n_procs; i++) {
        proc_t *pr = p->procs[i];
        int mine = !pr->removed && p->members.n > 0 &&
                   !strcmp(p->members.ids[d2g_sched_owner((const char *const *)p->members.ids,
                                                          p->members.n, pr->cfg->number)],
                           p->replica);
        if (mine && !pr->owned) /* new to us: check it soon, spread over a second */
            pr->check_due = now + (int64_t)(rand_r(&p->rng) % 1000);
        pr->owned = mine;
        owned += (size_t)mine;
    }
    d2g_metric_set(p->m_owned, NULL, (double)owned);
    return owned;
}

/* Every few seconds: renew this replica's registration, read who else lives,
 * and take this replica's share of the procedures (schedule.h). */
static void beat(d2g_poller_t *p, int64_t now) {
    char err[D2G_ERRLEN];
    int64_t lease = (int64_t)p->cfg->producer.lease_s * 1000;
    int64_t every = lease / 4 < 5000 ? lease / 4 : 5000;
    if (p->members_at && now - p->members_at < every)
        return;
    p->members_at = now;
    d2g_members_t m = {0};
    /* Registered for 3/4 of a lease: a dead replica's procedures move within one lease. */
    if (d2g_members_beat(p->redis, p->replica, lease * 3 / 4, &m, err, sizeof(err))) {
        d2g_log_err(D2G_LOG_WARN, "redis_error", 0, NULL, err, "cannot renew the replica's registration");
        return;
    }
    if (d2g_members_equal(&m, &p->members)) {
        d2g_members_clear(&m);
        return;
    }
    d2g_members_clear(&p->members);
    p->members = m;
    size_t owned = assign_owners(p, now);
    d2g_log(D2G_LOG_INFO, "replicas_changed", 0, NULL, "%zu live replicas; this one checks %zu of %zu procedures",
            p->members.n, owned, p->cfg->n_procedures);
}

/* Every 2 s: the full resyncs agents asked for (<ns>:{fleet}:resync, one
 * ZRANGE), once their time has come (a registry entry's filter change asks
 * for one a few seconds ahead). A request for one of this replica's
 * procedures makes it run at once (even a failed one: the agent may have
 * fixed its token); the run
 * takes the request (start_full_pass). Requests for procedures no longer
 * configured are dropped. */
static void poll_resync(d2g_poller_t *p, int64_t now) {
    char err[D2G_ERRLEN], k[D2G_KEYLEN];
    if (p->resync_at && now - p->resync_at < 2000)
        return;
    p->resync_at = now;
    d2g_keys_fleet(d2g_redis_namespace(p->redis), k, sizeof(k), "resync");
    const char *argv[] = {"ZRANGE", k, "0", "999", "WITHSCORES"};
    redisReply *rep = d2g_redis_argv(p->redis, 5, argv, NULL, err, sizeof(err));
    if (!rep) {
        d2g_log_err(D2G_LOG_WARN, "redis_error", 0, NULL, err, "cannot read the resync requests");
        return;
    }
    int64_t wall = d2g_clock_wall_ms();
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i + 1 < rep->elements; i += 2) {
        if (rep->element[i]->type != REDIS_REPLY_STRING || rep->element[i + 1]->type != REDIS_REPLY_STRING)
            continue;
        int64_t number = strtoll(rep->element[i]->str, NULL, 10);
        int64_t at = (int64_t)strtod(rep->element[i + 1]->str, NULL);
        proc_t *pr = NULL;
        for (size_t lo = 0, hi = p->n_procs; lo < hi && !pr;) {
            size_t mid = (lo + hi) / 2;
            if (p->procs[mid]->cfg->number == number)
                pr = p->procs[mid];
            else if (p->procs[mid]->cfg->number < number)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (!pr && !p->sweep) {
            const char *zrem[] = {"ZREM", k, rep->element[i]->str};
            redisReply *z = d2g_redis_argv(p->redis, 3, zrem, NULL, err, sizeof(err));
            if (z)
                freeReplyObject(z);
            continue;
        }
        if (!pr || !pr->owned || pr->removed)
            continue;
        if (at > wall) /* asked for later (a registry entry's filter change, registry.h) */
            continue;
        if (at > pr->resync_req)
            pr->resync_req = at;
        if (!pr->in_run && !pr->want_run)
            want_run(pr, now, 0);
    }
    freeReplyObject(rep);
}

/* A DS answer: a page of one procedure, or a check. */
static void on_ds_answer(void *opaque, const d2g_ds_result_t *res, void *ud) {
    request_t *rq = opaque;
    if (rq->batch)
        on_check_done(ud, rq->batch, res);
    else
        on_ds_done(rq->proc, res, ud);
}

/* --- the loop ------------------------------------------------------------ */

/* Kafka may take long to acknowledge a page (a broker restarting): keep the
 * lease meanwhile, so another replica does not take over a healthy run. If it
 * is lost anyway, the fenced cursor write will refuse this page. */
static void renew_while_waiting(d2g_poller_t *p, proc_t *pr) {
    char err[D2G_ERRLEN];
    d2g_lease_state_t st = take_lease(p, pr, 1, err, sizeof(err));
    if (st != D2G_LEASE_KEPT)
        d2g_log_err(D2G_LOG_WARN, "lease_lost", pr->cfg->number, NULL, err[0] ? err : "taken over",
                    "lease lost while waiting for Kafka; this page's cursor will not be written");
    pr->renewed_ms = d2g_clock_mono_ms(); /* at most one try per third of the lease */
}

/* Once a second: cursor ages, and whether Redis answers (readiness). */
static void update_gauges(d2g_poller_t *p, int64_t now) {
    char err[D2G_ERRLEN];
    if (now - p->last_gauges_ms < 1000)
        return;
    p->last_gauges_ms = now;
    int64_t wall = d2g_clock_wall_ms();
    for (size_t i = 0; i < p->n_procs; i++) {
        proc_t *pr = p->procs[i];
        if (pr->last_complete_ms > 0) {
            const char *lv[] = {pr->label};
            d2g_metric_set(p->m_cursor_age, lv, (double)(wall - pr->last_complete_ms) / 1000.0);
        }
    }
    for (size_t i = 0; i < p->n_tokens; i++) {
        const char *lv[] = {p->tokens[i]->cfg->name, p->tokens[i]->cfg->endpoint};
        d2g_metric_set(p->m_endpoint, lv, p->tokens[i]->removed ? 0 : 1);
    }
    redisReply *rep = d2g_redis_cmd(p->redis, err, sizeof(err), "PING");
    d2g_service_redis(p->svc, rep != NULL, err);
    d2g_service_kafka_recheck(p->svc, d2g_emitter_handle(p->em), now);
    if (rep)
        freeReplyObject(rep);
}

/* The due idle procedure that has waited longest (earliest due, then least
 * recently served); NULL if none. */
static proc_t *next_due(d2g_poller_t *p, int64_t now) {
    proc_t *best = NULL;
    for (size_t i = 0; i < p->n_procs; i++) {
        proc_t *pr = p->procs[i];
        if (pr->removed || pr->state != ST_IDLE || pr->due > now ||
            !(pr->in_run || (pr->want_run && pr->owned)))
            continue;
        if (!best || pr->due < best->due || (pr->due == best->due && pr->served < best->served))
            best = pr;
    }
    return best;
}

/* --- the configuration, live (reload.h) ------------------------------------ */

/* *slot holds a reference to cfg (and no longer to what it held). */
static void hold(d2g_config_t **slot, const d2g_config_t *cfg) {
    if (*slot == cfg)
        return;
    d2g_config_t *old = *slot;
    *slot = d2g_config_ref(cfg);
    d2g_config_free(old);
}

/* The state of a configured token (by name: its budget, batch and pause
 * survive a reload), pointed at its entry in cfg. */
static token_state_t *token_for(d2g_poller_t *p, const d2g_config_t *cfg, const d2g_ds_token_t *t) {
    for (size_t i = 0; i < p->n_tokens; i++)
        if (!strcmp(p->tokens[i]->cfg->name, t->name)) {
            token_state_t *ts = p->tokens[i];
            if (ts->removed || ts->cfg != t) {
                ts->cfg = t;
                hold(&ts->held, cfg);
            }
            ts->removed = 0;
            return ts;
        }
    token_state_t *ts = d2g_calloc(1, sizeof(*ts));
    ts->cfg = t;
    hold(&ts->held, cfg);
    ts->batch = cfg->producer.check_batch_size;
    p->tokens = d2g_realloc(p->tokens, (p->n_tokens + 1) * sizeof(*p->tokens));
    p->tokens[p->n_tokens++] = ts;
    return ts;
}

static proc_t *proc_new(d2g_poller_t *p, const d2g_config_t *cfg, const d2g_procedure_t *pc,
                        token_state_t *tok, int64_t now) {
    proc_t *pr = d2g_calloc(1, sizeof(*pr));
    pr->cfg = pc;
    hold(&pr->held, cfg);
    pr->token = tok;
    pr->page_size = cfg->producer.page_size;
    pr->req.proc = pr;
    snprintf(pr->label, sizeof(pr->label), "%" PRId64, pc->number);
    /* Spread the first checks over a second so replicas do not collide. */
    pr->due = pr->check_due = now + (int64_t)(rand_r(&p->rng) % 1000);
    return pr;
}

static void proc_free(proc_t *pr) {
    free(pr->revision_id);
    page_clear(pr);
    d2g_cursor_clear(&pr->cursor);
    d2g_cursor_clear(&pr->known);
    free(pr->labels_after);
    json_decref(pr->ruled);
    d2g_config_free(pr->held);
    free(pr);
}

/* The keys of these procedures stay (ttl_s <= 0) or expire in ttl_s. */
static void set_ttl(d2g_poller_t *p, const int64_t *numbers, size_t n, int ttl_s) {
    char err[D2G_ERRLEN];
    if (n && d2g_checker_set_ttl(p->redis, numbers, n, ttl_s, err, sizeof(err)))
        d2g_log_err(D2G_LOG_WARN, "redis_error", n == 1 ? numbers[0] : 0, NULL, err,
                    ttl_s > 0 ? "cannot set the removed procedure's cursor to expire"
                              : "cannot keep the cursors of added procedures");
}

/*
 * The new configuration, at a safe point of the loop: the procedures (both
 * lists sorted) are matched by number. A kept one points at its new entry
 * (its options, token and interval apply to its next request); a new one is
 * checked within a second if this replica owns it; a removed one makes no
 * new request and leaves once idle (sweep), its cursor kept in Redis for
 * producer.removed_cursor_ttl_s. Owners are computed again: every replica
 * with the same configuration takes the same share, so leases rebalance by
 * themselves.
 */
static void apply_config(d2g_poller_t *p, const d2g_config_t *cfg, int64_t now) {
    p->cfg = cfg;
    hold(&p->cfg_held, cfg);
    for (size_t i = 0; i < p->n_tokens; i++)
        p->tokens[i]->removed = 1;
    token_state_t **tmap = d2g_calloc(cfg->ds.n_tokens + 1, sizeof(*tmap));
    for (size_t i = 0; i < cfg->ds.n_tokens; i++)
        tmap[i] = token_for(p, cfg, &cfg->ds.tokens[i]);
    size_t cap = p->n_procs + cfg->n_procedures + 1, n = 0, i = 0, j = 0;
    size_t added = 0, removed = 0;
    proc_t **out = d2g_calloc(cap, sizeof(*out));
    int64_t *fresh = d2g_calloc(cfg->n_procedures + 1, sizeof(int64_t));
    while (i < p->n_procs || j < cfg->n_procedures) {
        proc_t *pr = i < p->n_procs ? p->procs[i] : NULL;
        const d2g_procedure_t *pc = j < cfg->n_procedures ? &cfg->procedures[j] : NULL;
        if (pr && (!pc || pr->cfg->number < pc->number)) {
            if (!pr->removed) {
                pr->removed = 1;
                pr->owned = 0;
                removed++;
                d2g_log(D2G_LOG_INFO, "procedure_removed", pr->cfg->number, NULL,
                        "no longer configured: it stops once its page in hand is done");
            }
            out[n++] = pr;
            i++;
        } else if (pc && (!pr || pc->number < pr->cfg->number)) {
            out[n++] = proc_new(p, cfg, pc, tmap[pc->ds_token - cfg->ds.tokens], now);
            fresh[added++] = pc->number;
            j++;
        } else {
            if (pr->removed) {
                fresh[added++] = pc->number;
                d2g_log(D2G_LOG_INFO, "procedure_added", pc->number, NULL,
                        "configured again: it resumes from its cursor");
            }
            pr->removed = 0;
            pr->cfg = pc;
            hold(&pr->held, cfg);
            pr->token = tmap[pc->ds_token - cfg->ds.tokens];
            if (pr->page_size > cfg->producer.page_size)
                pr->page_size = cfg->producer.page_size;
            out[n++] = pr;
            i++, j++;
        }
    }
    free(p->procs);
    p->procs = out;
    p->n_procs = n;
    free(p->scratch);
    free(p->picked);
    p->scratch = d2g_calloc(n + 1, sizeof(d2g_sched_item_t));
    p->picked = d2g_calloc(n + 1, sizeof(size_t));
    /* Added (or added back): their keys no longer expire. */
    set_ttl(p, fresh, added, 0);
    for (size_t k = 0; k < added; k++)
        d2g_log(D2G_LOG_INFO, "procedure_added", fresh[k], NULL, "polled from now on");
    free(fresh);
    free(tmap);
    size_t owned = p->members.n ? assign_owners(p, now) : 0;
    p->sweep = 1;
    d2g_log(D2G_LOG_INFO, "config_applied", 0, NULL,
            "generation %" PRIu64 ": %zu procedures (%zu added, %zu removed); this replica "
            "checks %zu", cfg->generation, cfg->n_procedures, added, removed, owned);
}

/* Removed procedures leave once idle (their run ended, the lease given back,
 * their keys set to expire); removed tokens once nothing uses them. */
static void sweep(d2g_poller_t *p) {
    if (!p->sweep)
        return;
    int pending = 0;
    size_t n = 0;
    for (size_t i = 0; i < p->n_procs; i++) {
        proc_t *pr = p->procs[i];
        if (pr->removed && pr->state == ST_IDLE && pr->in_run)
            end_run(p, pr, 0, 0);
        if (pr->removed && pr->state == ST_IDLE && !pr->in_run && !pr->in_check) {
            int ttl = p->cfg->producer.removed_cursor_ttl_s;
            if (ttl > 0)
                set_ttl(p, &pr->cfg->number, 1, ttl);
            d2g_log(D2G_LOG_INFO, "procedure_stopped", pr->cfg->number, NULL,
                    "removed: its cursor is kept %s", ttl > 0 ? "for producer.removed_cursor_ttl_s"
                                                               : "for ever");
            const char *lv[] = {pr->label};
            d2g_metric_set(p->m_cursor_age, lv, 0);
            proc_free(pr);
            continue;
        }
        pending += pr->removed;
        p->procs[n++] = pr;
    }
    p->n_procs = n;
    size_t nt = 0;
    for (size_t t = 0; t < p->n_tokens; t++) {
        token_state_t *ts = p->tokens[t];
        int used = !ts->removed;
        for (size_t i = 0; i < p->n_procs && !used; i++)
            used = p->procs[i]->token == ts;
        for (check_batch_t *b = p->checks; b && !used; b = b->next)
            used = b->token == ts;
        if (!used) {
            d2g_config_free(ts->held);
            free(ts);
            continue;
        }
        pending += ts->removed;
        p->tokens[nt++] = ts;
    }
    p->n_tokens = nt;
    p->sweep = pending > 0;
}

/* A reload (SIGHUP, the file, the fleet's generation) at the top of a turn. */
static void reload_tick(d2g_poller_t *p, int64_t now) {
    /* Also a reload made outside the tick (d2g_reload_add_source). */
    if (p->live && (d2g_reload_tick(p->live, now) || d2g_reload_current(p->live) != p->cfg))
        apply_config(p, d2g_reload_current(p->live), now);
    sweep(p);
}

int d2g_poller_run(d2g_poller_t *p, volatile sig_atomic_t *stop) {
    int64_t deadline = 0;
    for (;;) {
        int64_t now = d2g_clock_mono_ms();
        if (*stop && !p->stopping) {
            p->stopping = 1;
            deadline = now + (int64_t)p->cfg->producer.shutdown_grace_s * 1000;
            d2g_log(D2G_LOG_INFO, "stopping", 0, NULL, "finishing the pages in hand");
        }
        d2g_emitter_poll(p->em, 0);
        if (d2g_emitter_fatal(p->em)) {
            /* Nothing in hand is finished: no cursor moves, leases go back, and
             * the process ends so that a new producer instance starts clean. */
            int abandoned = 0;
            for (size_t i = 0; i < p->n_procs; i++) {
                proc_t *pr = p->procs[i];
                abandoned += pr->state != ST_IDLE;
                page_clear(pr);
                if (pr->in_run)
                    end_run(p, pr, 0, 0);
            }
            d2g_log_err(D2G_LOG_ERROR, "stopping_on_kafka_fatal", 0, NULL, d2g_emitter_fatal(p->em),
                        "Kafka producer unusable: exiting without moving any cursor (%d pages "
                        "abandoned; they will be read again)", abandoned);
            return 3;
        }
        d2g_service_heartbeat(p->svc);
        if (!p->stopping)
            reload_tick(p, now);
        update_gauges(p, now);
        if (!p->stopping) {
            beat(p, now);
            poll_resync(p, now);
        }

        int busy = 0;
        for (size_t i = 0; i < p->n_procs; i++) {
            proc_t *pr = p->procs[i];
            if (pr->state == ST_ACKS && pr->dv.pending == 0)
                finish_page(p, pr);
            else if (pr->state == ST_ACKS && now - pr->renewed_ms >= lease_ms(p) / 3)
                renew_while_waiting(p, pr);
            if (pr->state != ST_IDLE)
                busy++;
            else if (p->stopping && pr->in_run)
                end_run(p, pr, 0, 0);
        }
        busy += p->n_checks; /* checks in flight are answered before leaving */
        if (p->stopping && (busy == 0 || now >= deadline)) {
            if (busy)
                d2g_log(D2G_LOG_WARN, "stop_deadline", 0, NULL,
                        "%d pages abandoned; they will be read again", busy);
            char err[D2G_ERRLEN]; /* the others take our procedures over at once */
            if (d2g_members_leave(p->redis, p->replica, err, sizeof(err)))
                d2g_log_err(D2G_LOG_WARN, "redis_error", 0, NULL, err, "registration left to expire");
            return 0;
        }

        int64_t wait = 100;
        if (!p->stopping) {
            proc_t *pr;
            /* Checks first: however busy a procedure is, the others' checks go on. */
            while (d2g_ds_client_in_flight(p->ds) < p->cfg->producer.concurrency &&
                   start_check(p, now))
                ;
            while (d2g_ds_client_in_flight(p->ds) < p->cfg->producer.concurrency &&
                   (pr = next_due(p, now)))
                start_request(p, pr, now);
            /* A due procedure matters only if a request slot is free: otherwise
             * wait for an answer (no busy loop while every slot is taken). */
            if (d2g_ds_client_in_flight(p->ds) < p->cfg->producer.concurrency)
                for (size_t i = 0; i < p->n_procs; i++) {
                    const proc_t *q = p->procs[i];
                    if (q->state != ST_IDLE || !q->owned || q->in_check || q->removed)
                        continue;
                    int64_t at = q->in_run || q->want_run ? q->due : q->check_due;
                    if (!q->in_run && !q->want_run && q->token->blocked_until > at)
                        at = q->token->blocked_until;
                    if (at - now < wait)
                        wait = at - now;
                }
        }
        for (size_t i = 0; i < p->n_procs; i++)
            if (p->procs[i]->state == ST_ACKS)
                wait = wait > 5 ? 5 : wait; /* delivery reports come through rd_kafka_poll */
        if (wait < 0)
            wait = 0;
        if (d2g_ds_client_in_flight(p->ds) > 0)
            d2g_ds_client_poll(p->ds, (int)wait, on_ds_answer, p);
        else if (wait > 0)
            d2g_emitter_poll(p->em, (int)wait);
    }
}

d2g_poller_t *d2g_poller_new(d2g_reload_t *live, d2g_service_t *svc, char *err, size_t errlen) {
    d2g_poller_t *p = d2g_calloc(1, sizeof(*p));
    char host[64] = "host";
    const d2g_config_t *cfg = d2g_reload_current(live);
    p->live = live;
    p->cfg = cfg;
    hold(&p->cfg_held, cfg);
    p->svc = svc;
    static const char *const by_proc[] = {"procedure"};
    static const char *const by_token[] = {"token", "status"};
    p->m_emitted = d2g_metrics_counter(svc->metrics, "ds2grist_dossiers_emitted_total",
                                       "Messages emitted to Kafka (changed, deleted, relabelled dossiers)", 1, by_proc);
    p->m_requests = d2g_metrics_counter(svc->metrics, "ds2grist_ds_requests_total",
                                        "DS API requests by token name and outcome", 2, by_token);
    p->m_cursor_age = d2g_metrics_gauge(svc->metrics, "ds2grist_cursor_age_seconds",
                                        "Time since the procedure's last complete poll", 1, by_proc);
    p->m_page_size = d2g_metrics_gauge(svc->metrics, "ds2grist_ds_page_size",
                                       "Current page size of the procedure (shrinks on timeouts)", 1, by_proc);
    p->m_failed = d2g_metrics_gauge(svc->metrics, "ds2grist_procedure_failed",
                                    "1 while the procedure fails for a reason retries cannot fix", 1, by_proc);
    static const char *const by_tok[] = {"token"};
    p->m_checked = d2g_metrics_counter(svc->metrics, "ds2grist_procedures_checked_total",
                                       "Procedures checked for changes by batched check requests", 1, by_tok);
    p->m_batch = d2g_metrics_gauge(svc->metrics, "ds2grist_check_batch_size",
                                   "Procedures per check request now (halves when DS refuses a batch)", 1, by_tok);
    p->m_owned = d2g_metrics_gauge(svc->metrics, "ds2grist_procedures_owned",
                                   "Procedures this replica checks (its share among the live replicas)", 0, NULL);
    static const char *const by_endpoint[] = {"token", "endpoint"};
    p->m_endpoint = d2g_metrics_gauge(svc->metrics, "ds2grist_ds_token_info",
                                      "1 for each configured DS token, with the DS endpoint it "
                                      "is used on", 2, by_endpoint);
    gethostname(host, sizeof(host) - 1);
    p->rng = (unsigned)(d2g_clock_wall_ms() ^ (getpid() << 16));
    snprintf(p->replica, sizeof(p->replica), "%s:%d:%08x", host, (int)getpid(), rand_r(&p->rng));
    if (d2g_redis_connect(cfg->redis.url, cfg->redis.username, cfg->redis.password,
                          cfg->redis.namespace, 5000, &p->redis, err, errlen))
        goto fail;
    if (!(p->ds = d2g_ds_client_new(cfg->ds.timeout_s, err, errlen)) ||
        !(p->em = d2g_emitter_new(cfg, svc, err, errlen)))
        goto fail;
    d2g_reload_watch_redis(live, p->redis);
    int64_t now = d2g_clock_mono_ms();
    p->procs = d2g_calloc(cfg->n_procedures + 1, sizeof(*p->procs));
    int64_t *numbers = d2g_calloc(cfg->n_procedures + 1, sizeof(int64_t));
    for (size_t i = 0; i < cfg->n_procedures; i++) {
        const d2g_procedure_t *pc = &cfg->procedures[i];
        p->procs[i] = proc_new(p, cfg, pc, token_for(p, cfg, pc->ds_token), now);
        numbers[i] = pc->number;
    }
    p->n_procs = cfg->n_procedures;
    for (size_t i = 0; i < cfg->ds.n_tokens; i++)
        token_for(p, cfg, &cfg->ds.tokens[i]);
    /* Configured: their keys do not expire (a removal by an earlier run may have set a TTL). */
    set_ttl(p, numbers, cfg->n_procedures, 0);
    free(numbers);
    p->scratch = d2g_calloc(cfg->n_procedures + 1, sizeof(d2g_sched_item_t));
    p->picked = d2g_calloc(cfg->n_procedures + 1, sizeof(size_t));
    return p;
fail:
    d2g_poller_free(p);
    return NULL;
}

void d2g_poller_free(d2g_poller_t *p) {
    if (!p)
        return;
    for (size_t i = 0; i < p->n_procs; i++)
        proc_free(p->procs[i]);
    d2g_ds_client_free(p->ds);
    d2g_emitter_free(p->em, 10000);
    d2g_redis_free(p->redis);
    free(p->procs);
    for (size_t i = 0; i < p->n_tokens; i++) {
        d2g_config_free(p->tokens[i]->held);
        free(p->tokens[i]);
    }
    free(p->tokens);
    free(p->scratch);
    free(p->picked);
    while (p->checks) { /* abandoned at the stop deadline */
        check_batch_t *b = p->checks;
        p->checks = b->next;
        check_batch_free(b);
    }
    d2g_members_clear(&p->members);
    d2g_config_free(p->cfg_held);
    free(p);
}
