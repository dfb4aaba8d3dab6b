/* log.c - structured JSON logs, see include/ds2grist/log.h. */
#include "ds2grist/log.h"
#include "ds2grist/clock.h"
#include "ds2grist/text.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *level_names[] = {"debug", "info", "warn", "error"};

/* Set once by d2g_log_init before threads start; read-only afterwards. */
static struct {
    char service[32];
    d2g_log_level_t level;
    const char *const *secrets; /* scrubbed from every line; borrowed */
    size_t n_secrets;
} log_cfg = {"ds2grist", D2G_LOG_INFO, NULL, 0};

void d2g_log_set_secrets(const char *const *secrets, size_t n) {
    log_cfg.secrets = secrets;
    log_cfg.n_secrets = n;
}

void d2g_log_forget_secrets(const char *const *secrets) {
    if (log_cfg.secrets == secrets) {
        log_cfg.secrets = NULL;
        log_cfg.n_secrets = 0;
    }
}

/* A field's value: UTF-8-clean, controls replaced, secrets scrubbed. */
static json_t *field(const char *s) {
    size_t n = strlen(s);
    char *clean = malloc(n + 1);
    if (!clean)
        return json_string("");
    d2g_text_copy(clean, n + 1, s, n);
    d2g_text_scrub(clean, log_cfg.secrets, log_cfg.n_secrets);
    json_t *j = json_string(clean);
    free(clean);
    return j ? j : json_string("");
}

void d2g_log_set_level(d2g_log_level_t level) {
    if ((int)level >= 0)
        log_cfg.level = level;
}

void d2g_log_init(const char *service, d2g_log_level_t level) {
    snprintf(log_cfg.service, sizeof(log_cfg.service), "%s", service);
    log_cfg.level = level;
}

int d2g_log_level_parse(const char *name) {
    for (int i = 0; i < 4; i++)
        if (name && strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

int d2g_log_enabled(d2g_log_level_t level) { return level >= log_cfg.level; }

static void log_emit(d2g_log_level_t level, const char *event, int64_t procedure,
                     const char *document, const char *error, const char *fmt,
                     va_list ap) {
    char msg[1024], ts[D2G_TIME_BUFLEN];

    if (!d2g_log_enabled(level))
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    d2g_clock_format_ms(d2g_clock_wall_ms(), ts);

    json_t *o = json_object();
    json_object_set_new(o, "time", json_string(ts));
    json_object_set_new(o, "level", json_string(level_names[level]));
    json_object_set_new(o, "service", json_string(log_cfg.service));
    json_object_set_new(o, "event", json_string(event));
    if (procedure > 0)
        json_object_set_new(o, "procedure", json_integer(procedure));
    if (document)
        json_object_set_new(o, "document", field(document));
    if (msg[0])
        json_object_set_new(o, "msg", field(msg));
    if (error)
        json_object_set_new(o, "error", field(error));
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (line) {
        /* One fputs per line: stdio's stream lock keeps lines whole. */
        flockfile(stderr);
        fputs(line, stderr);
        fputc('\n', stderr);
        funlockfile(stderr);
        free(line);
    }
    json_decref(o);
}

void d2g_log(d2g_log_level_t level, const char *event, int64_t procedure,
             const char *document, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_emit(level, event, procedure, document, NULL, fmt, ap);
    va_end(ap);
}

void d2g_log_err(d2g_log_level_t level, const char *event, int64_t procedure,
                 const char *document, const char *error, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_emit(level, event, procedure, document, error, fmt, ap);
    va_end(ap);
}
