/*
 * log.h - structured logs: one JSON object per line on stderr.
 *
 * Every line carries the time (RFC 3339, UTC, milliseconds), the level, the
 * service name and an event name; optional fields name the procedure, the
 * document and the error. Values are JSON-escaped by jansson. Callers never
 * pass secrets: messages are built from names (token names, document ids),
 * never from credentials.
 *
 * The logger is the one piece of process-wide state: it is configured once at
 * start-up (d2g_log_init) before any thread starts, and only read afterwards.
 */
#ifndef D2G_LOG_H
#define D2G_LOG_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    D2G_LOG_DEBUG = 0,
    D2G_LOG_INFO,
    D2G_LOG_WARN,
    D2G_LOG_ERROR,
} d2g_log_level_t;

/* Every secret in this list (borrowed: d2g_config_secrets, valid as long as
 * the configuration) is replaced by "***" in every field of every line.
 * Called once at start-up with the loaded configuration, like d2g_log_init. */
void d2g_log_set_secrets(const char *const *secrets, size_t n);
/* Stops using that list (d2g_config_free calls it before freeing it). */
void d2g_log_forget_secrets(const char *const *secrets);
/* service: "producer", "worker", ...; copied. */
void d2g_log_init(const char *service, d2g_log_level_t level);
/* The level alone (a configuration reload); a negative level is ignored. */
void d2g_log_set_level(d2g_log_level_t level);
/* "debug", "info", "warn", "error" -> level; -1 if unknown. */
int d2g_log_level_parse(const char *name);
int d2g_log_enabled(d2g_log_level_t level);

/*
 * Log one event. procedure (0 = none) and document (NULL = none) identify
 * what the event is about; fmt formats the human message ("msg"). The error
 * variant adds an "error" field with the cause.
 */
void d2g_log(d2g_log_level_t level, const char *event, int64_t procedure,
             const char *document, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void d2g_log_err(d2g_log_level_t level, const char *event, int64_t procedure,
                 const char *document, const char *error, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

#endif
