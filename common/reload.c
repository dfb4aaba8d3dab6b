/* reload.c - the live configuration, see reload.h. */
#include "ds2grist/reload.h"
#include "ds2grist/alloc.h"
#include "ds2grist/clock.h"
#include "ds2grist/err.h"
#include "ds2grist/keys.h"
#include "ds2grist/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

struct d2g_reload {
    char path[PATH_MAX];
    d2g_config_t *current;
    /* The one before: kept so that the logger can go on scrubbing its
     * secrets (a request started under it may still report an error). */
    d2g_config_t *previous;
    const char **secrets; /* current's and previous's, given to the logger */
    d2g_config_source_t sources[D2G_RELOAD_MAX_SOURCES];
    size_t n_sources;
    d2g_service_t *svc;
    d2g_metric_t *m_total, *m_last_ok, *m_generation, *m_procedures;
    volatile sig_atomic_t *sighup;
    atomic_int requested;
    int ifd;              /* inotify, -1 if unavailable */
    int64_t settle_at;    /* mono ms: read the file then (0 = no event pending) */
    int64_t polled_at;    /* mono ms of the last content comparison */
    uint64_t digest;      /* of the content last loaded or refused */
    int have_digest;
    d2g_redis_t *redis;
    int64_t redis_at;
    long long redis_gen;
    int have_redis_gen;
    d2g_reload_stats_t st;
};

/* FNV-1a of the file's content; -1 if it cannot be read (being replaced). */
static int file_digest(const char *path, uint64_t *out) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    uint64_t h = 1469598103934665603ULL;
    unsigned char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        for (size_t i = 0; i < n; i++)
            h = (h ^ buf[i]) * 1099511628211ULL;
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return -1;
    *out = h;
    return 0;
}

/* The logger scrubs the secrets of the current and the previous configuration. */
static void give_secrets(d2g_reload_t *r) {
    size_t n1 = 0, n2 = 0;
    const char *const *s1 = d2g_config_secrets(r->current, &n1);
    const char *const *s2 = r->previous ? d2g_config_secrets(r->previous, &n2) : NULL;
    const char **all = d2g_calloc(n1 + n2 + 1, sizeof(char *));
    memcpy(all, s1, n1 * sizeof(char *));
    if (n2)
        memcpy(all + n1, s2, n2 * sizeof(char *));
    const char **old = r->secrets;
    d2g_log_set_secrets(all, n1 + n2);
    r->secrets = all;
    free(old);
}

static void watch(d2g_reload_t *r) {
    char a[PATH_MAX], b[PATH_MAX], real[PATH_MAX];
    const uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                          IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;
    r->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (r->ifd < 0) {
        d2g_log(D2G_LOG_WARN, "config_watch_unavailable", 0, NULL,
                "inotify: %s; the file is compared every %d s", strerror(errno),
                D2G_RELOAD_POLL_MS / 1000);
        return;
    }
    snprintf(a, sizeof(a), "%s", r->path);
    /* The directory holding the path: a ConfigMap's ..data swap and an
     * editor's rename-replace happen there, not on the file. */
    if (inotify_add_watch(r->ifd, dirname(a), mask) < 0)
        d2g_log(D2G_LOG_WARN, "config_watch_unavailable", 0, NULL, "%s: %s", a, strerror(errno));
    /* And the directory of its final target, if a symlink leads elsewhere. */
    if (realpath(r->path, real)) {
        snprintf(b, sizeof(b), "%s", real);
        snprintf(a, sizeof(a), "%s", r->path);
        if (strcmp(dirname(b), dirname(a)) != 0) {
            snprintf(b, sizeof(b), "%s", real);
            inotify_add_watch(r->ifd, dirname(b), mask);
        }
    }
}

d2g_reload_t *d2g_reload_new(const char *path, d2g_config_t *initial, d2g_service_t *svc,
                             volatile sig_atomic_t *sighup, char *err, size_t errlen) {
    if (strlen(path) >= PATH_MAX) {
        d2g_err_set(err, errlen, "configuration path too long");
        return NULL;
    }
    d2g_reload_t *r = d2g_calloc(1, sizeof(*r));
    snprintf(r->path, sizeof(r->path), "%s", path);
    r->current = initial;
    r->current->generation = 1;
    r->svc = svc;
    r->sighup = sighup;
    r->ifd = -1;
    r->st.generation = 1;
    r->st.last_ok_wall_ms = d2g_clock_wall_ms();
    r->polled_at = d2g_clock_mono_ms();
    r->have_digest = file_digest(path, &r->digest) == 0;
    if (svc && svc->metrics) {
        static const char *const by_result[] = {"result"};
        r->m_total = d2g_metrics_counter(svc->metrics, "ds2grist_config_reload_total",
                                         "Configuration reloads by result (ok: applied; failed: "
                                         "refused, the running configuration stays)", 1, by_result);
        r->m_last_ok = d2g_metrics_gauge(svc->metrics,
                                         "ds2grist_config_last_reload_success_timestamp_seconds",
                                         "When the running configuration was loaded (start-up "
                                         "or the last successful reload)", 0, NULL);
        r->m_generation = d2g_metrics_gauge(svc->metrics, "ds2grist_config_generation",
                                            "Generation of the running configuration (1 at "
                                            "start-up, +1 per applied reload)", 0, NULL);
        static const char *const by_source[] = {"source"};
        r->m_procedures = d2g_metrics_gauge(svc->metrics, "ds2grist_config_procedures",
                                            "Procedures of the running configuration, by source "
                                            "(file, or a procedure source's name)", 1, by_source);
        const char *ok[] = {"ok"}, *failed[] = {"failed"};
        d2g_metric_inc(r->m_total, ok, 0);
        d2g_metric_inc(r->m_total, failed, 0);
        d2g_metric_set(r->m_last_ok, NULL, (double)r->st.last_ok_wall_ms / 1000.0);
        d2g_metric_set(r->m_generation, NULL, 1);
    }
    watch(r);
    give_secrets(r);
    return r;
}

void d2g_reload_free(d2g_reload_t *r) {
    if (!r)
        return;
    d2g_log_forget_secrets((const char *const *)r->secrets);
    free(r->secrets);
    if (r->ifd >= 0)
        close(r->ifd);
    d2g_config_free(r->previous);
    d2g_config_free(r->current);
    free(r);
}

const d2g_config_t *d2g_reload_current(const d2g_reload_t *r) { return r->current; }

void d2g_reload_stats(const d2g_reload_t *r, d2g_reload_stats_t *out) { *out = r->st; }

void d2g_reload_request(d2g_reload_t *r) { atomic_store(&r->requested, 1); }

void d2g_reload_watch_redis(d2g_reload_t *r, d2g_redis_t *redis) {
    r->redis = redis;
    r->redis_at = 0;
    r->have_redis_gen = 0;
}

int d2g_reload_add_source(d2g_reload_t *r, const d2g_config_source_t *src, char *err,
                          size_t errlen) {
    if (r->n_sources == D2G_RELOAD_MAX_SOURCES)
        return d2g_err_set(err, errlen, "too many procedure sources (at most %d)",
                           D2G_RELOAD_MAX_SOURCES);
    r->sources[r->n_sources++] = *src;
    char why[96];
    snprintf(why, sizeof(why), "procedure source %s added", src->name);
    return d2g_reload_now(r, why, err, errlen);
}

static int same_kv(const d2g_config_t *a, const d2g_config_t *b) {
    if (a->kafka.n_properties != b->kafka.n_properties)
        return 0;
    for (size_t i = 0; i < a->kafka.n_properties; i++)
        if (strcmp(a->kafka.properties[i].key, b->kafka.properties[i].key) ||
            strcmp(a->kafka.properties[i].value, b->kafka.properties[i].value))
            return 0;
    return 1;
}

static int same_str(const char *a, const char *b) {
    return (!a && !b) || (a && b && !strcmp(a, b));
}

/* The keys read once at start-up that the new configuration changes. */
static void restart_keys(const d2g_config_t *o, const d2g_config_t *n, char *out, size_t len) {
    out[0] = '\0';
    struct {
        int changed;
        const char *key;
    } keys[] = {
        {!same_kv(o, n), "kafka.properties/secret_properties"},
        {!same_str(o->kafka.topic, n->kafka.topic), "kafka.topic"},
        {!same_str(o->kafka.dlq_topic, n->kafka.dlq_topic), "kafka.dlq_topic"},
        {!same_str(o->kafka.retry_topic, n->kafka.retry_topic), "kafka.retry_topic"},
        {!same_str(o->kafka.consumer_group, n->kafka.consumer_group), "kafka.consumer_group"},
        {!same_str(o->redis.url, n->redis.url) || !same_str(o->redis.namespace, n->redis.namespace) ||
             !same_str(o->redis.username, n->redis.username) ||
             !same_str(o->redis.password, n->redis.password),
         "redis"},
        {o->http.port != n->http.port, "http.port"},
        {o->ds.timeout_s != n->ds.timeout_s, "ds.timeout_s"},
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (keys[i].changed) {
            size_t l = strlen(out);
            snprintf(out + l, len - l, "%s%s", l ? ", " : "", keys[i].key);
        }
}

/* Procedures added, removed and changed between two configurations (both sorted). */
static void diff_counts(const d2g_config_t *o, const d2g_config_t *n, size_t *added,
                        size_t *removed, size_t *changed) {
    size_t i = 0, j = 0;
    *added = *removed = *changed = 0;
    while (i < o->n_procedures || j < n->n_procedures) {
        const d2g_procedure_t *a = i < o->n_procedures ? &o->procedures[i] : NULL;
        const d2g_procedure_t *b = j < n->n_procedures ? &n->procedures[j] : NULL;
        if (a && (!b || a->number < b->number)) {
            (*removed)++, i++;
        } else if (b && (!a || b->number < a->number)) {
            (*added)++, j++;
        } else {
            if (strcmp(a->document, b->document) || strcmp(a->table_prefix, b->table_prefix) ||
                strcmp(a->ds_token->name, b->ds_token->name) ||
                strcmp(a->grist_server->name, b->grist_server->name) ||
                a->poll_interval_s != b->poll_interval_s ||
                a->poll_interval_max_s != b->poll_interval_max_s || a->deleted_mode != b->deleted_mode ||
                !d2g_proc_data_equal(a, b))
                (*changed)++;
            i++, j++;
        }
    }
}

static void publish_counts(d2g_reload_t *r) {
    if (!r->m_procedures)
        return;
    size_t from_file = 0;
    for (size_t i = 0; i < r->current->n_procedures; i++)
        from_file += r->current->procedures[i].source == NULL;
    const char *lf[] = {"file"};
    d2g_metric_set(r->m_procedures, lf, (double)from_file);
    for (size_t s = 0; s < r->n_sources; s++) {
        size_t k = 0;
        for (size_t i = 0; i < r->current->n_procedures; i++)
            k += r->current->procedures[i].source &&
                 !strcmp(r->current->procedures[i].source, r->sources[s].name);
        const char *ls[] = {r->sources[s].name};
        d2g_metric_set(r->m_procedures, ls, (double)k);
    }
}

int d2g_reload_now(d2g_reload_t *r, const char *why, char *err, size_t errlen) {
    d2g_config_t *cfg = NULL;
    char cause[D2G_ERRLEN];
    int64_t wall = d2g_clock_wall_ms();
    uint64_t digest = 0;
    int have = file_digest(r->path, &digest) == 0;
    if (d2g_config_load_sources(r->path, r->sources, r->n_sources, &cfg, cause, sizeof(cause))) {
        r->st.failed++;
        r->st.last_failed = 1;
        snprintf(r->st.last_error, sizeof(r->st.last_error), "%s", cause);
        if (have) { /* the same bad content is not tried again until it changes */
            r->digest = digest;
            r->have_digest = 1;
        }
        const char *lv[] = {"failed"};
        d2g_metric_inc(r->m_total, lv, 1);
        d2g_log_err(D2G_LOG_ERROR, "config_reload_failed", 0, NULL, cause,
                    "%s: the new configuration is refused; generation %" PRIu64 " keeps running",
                    why, r->st.generation);
        if (r->svc) {
            char detail[700];
            snprintf(detail, sizeof(detail), "config reload failed (generation %" PRIu64
                     " still runs): %s", r->st.generation, cause);
            d2g_service_detail(r->svc, detail);
        }
        return d2g_err_set(err, errlen, "%s", cause);
    }
    char restart[256];
    size_t added, removed, changed;
    restart_keys(r->current, cfg, restart, sizeof(restart));
    diff_counts(r->current, cfg, &added, &removed, &changed);
    cfg->generation = r->current->generation + 1;
    d2g_config_free(r->previous);
    r->previous = r->current;
    r->current = cfg;
    give_secrets(r);
    if (have) {
        r->digest = digest;
        r->have_digest = 1;
    }
    d2g_log_set_level((d2g_log_level_t)d2g_log_level_parse(cfg->log_level));
    r->st.generation = cfg->generation;
    r->st.ok++;
    r->st.last_failed = 0;
    r->st.last_error[0] = '\0';
    r->st.last_ok_wall_ms = wall;
    const char *lv[] = {"ok"};
    d2g_metric_inc(r->m_total, lv, 1);
    d2g_metric_set(r->m_last_ok, NULL, (double)wall / 1000.0);
    d2g_metric_set(r->m_generation, NULL, (double)cfg->generation);
    publish_counts(r);
    if (r->svc)
        d2g_service_detail(r->svc, NULL);
    d2g_log(D2G_LOG_INFO, "config_reloaded", 0, NULL,
            "%s: generation %" PRIu64 ": %zu procedures (%zu added, %zu removed, %zu changed%s%zu "
            "of sources left out: the file has them)", why, cfg->generation, cfg->n_procedures,
            added, removed, changed, ", ", cfg->n_shadowed);
    if (restart[0])
        d2g_log(D2G_LOG_WARN, "config_restart_needed", 0, NULL,
                "changed keys read only at start-up, kept until a restart: %s", restart);
    return 0;
}

/* Drains the inotify queue; 1 if any event came. */
static int drain_events(d2g_reload_t *r) {
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int any = 0;
    if (r->ifd < 0)
        return 0;
    for (;;) {
        ssize_t n = read(r->ifd, buf, sizeof(buf));
        if (n <= 0)
            break;
        any = 1;
    }
    return any;
}

/* The Redis generation changed since last read (the first read only records it). */
static int redis_changed(d2g_reload_t *r, int64_t now) {
    char err[D2G_ERRLEN], k[D2G_KEYLEN];
    if (!r->redis || (r->redis_at && now - r->redis_at < D2G_RELOAD_REDIS_MS))
        return 0;
    r->redis_at = now;
    if (d2g_keys_fleet(d2g_redis_namespace(r->redis), k, sizeof(k), "config"))
        return 0;
    redisReply *rep = d2g_redis_cmd(r->redis, err, sizeof(err), "GET %s", k);
    if (!rep)
        return 0; /* Redis down: readiness says so; try again later */
    long long gen = rep->type == REDIS_REPLY_STRING ? strtoll(rep->str, NULL, 10) : 0;
    freeReplyObject(rep);
    int changed = r->have_redis_gen && gen != r->redis_gen;
    r->redis_gen = gen;
    r->have_redis_gen = 1;
    return changed;
}

int d2g_reload_tick(d2g_reload_t *r, int64_t now) {
    char err[D2G_ERRLEN];
    uint64_t gen = r->st.generation;
    const char *why = NULL;
    if (r->sighup && *r->sighup) {
        *r->sighup = 0;
        why = "SIGHUP";
    } else if (atomic_exchange(&r->requested, 0)) {
        why = "requested";
    } else if (redis_changed(r, now)) {
        why = "the fleet's configuration generation changed";
    }
    if (why) {
        drain_events(r);
        r->settle_at = 0;
        r->polled_at = now;
        d2g_reload_now(r, why, err, sizeof(err));
        return r->st.generation != gen;
    }
    if (drain_events(r))
        r->settle_at = now + D2G_RELOAD_SETTLE_MS;
    int due = (r->settle_at && now >= r->settle_at) || now - r->polled_at >= D2G_RELOAD_POLL_MS;
    if (!due)
        return 0;
    r->settle_at = 0;
    r->polled_at = now;
    uint64_t digest;
    if (file_digest(r->path, &digest))
        return 0; /* mid-replacement, or gone: the next event or poll tries again */
    if (r->have_digest && digest == r->digest)
        return 0;
    d2g_reload_now(r, "the file changed", err, sizeof(err));
    return r->st.generation != gen;
}

int d2g_reload_bump(d2g_redis_t *redis, long long *generation, char *err, size_t errlen) {
    char k[D2G_KEYLEN];
    if (d2g_keys_fleet(d2g_redis_namespace(redis), k, sizeof(k), "config"))
        return d2g_err_set(err, errlen, "redis key too long");
    redisReply *rep = d2g_redis_cmd(redis, err, errlen, "INCR %s", k);
    if (!rep)
        return -1;
    if (generation)
        *generation = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
    freeReplyObject(rep);
    return 0;
}
