/*
 * operator.h - the pieces of the `ds2grist` operator CLI (common/operator/).
 *
 * main.c parses the command line and runs one command; each command returns
 * the process exit code: D2G_OP_OK, D2G_OP_FAIL (Redis or Kafka could not do
 * it: the reason is printed) or D2G_OP_USAGE (bad arguments or
 * configuration). Output goes to stdout (a human table, or one JSON document
 * with --json); diagnostics to stderr. Nothing here prints a secret: only
 * names, URLs without credentials, and counts.
 */
#ifndef D2G_OPERATOR_H
#define D2G_OPERATOR_H

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ds2grist/config.h"

enum { D2G_OP_OK = 0, D2G_OP_FAIL = 1, D2G_OP_USAGE = 2 };

/* How long a Kafka or Redis request may take before the CLI gives up. */
#define D2G_OP_TIMEOUT_MS 10000

/* --- commands (argv: the arguments after the command's name) ------------- */

/* Loads the configuration at path itself (the cause of a refusal is its output). */
int d2g_op_config_check(const char *path, int argc, char **argv);
int d2g_op_status(const d2g_config_t *cfg, int argc, char **argv);
int d2g_op_resync(const d2g_config_t *cfg, int argc, char **argv);
int d2g_op_dlq_list(const d2g_config_t *cfg, int argc, char **argv);
int d2g_op_dlq_replay(const d2g_config_t *cfg, int argc, char **argv);
/* `registry list|pause|resume|remove|rebuild` (registry.c). */
int d2g_op_registry(const d2g_config_t *cfg, int argc, char **argv);
const char *d2g_op_registry_usage(void);

/* --- output (table.c) ----------------------------------------------------- */

/* A text table: rows of strings (copied), printed with aligned columns. */
typedef struct d2g_op_table {
    size_t ncols;
    char **cells; /* row-major, the header row first */
    size_t nrows, cap;
} d2g_op_table_t;

void d2g_op_table_init(d2g_op_table_t *t, size_t ncols, const char *const *headers);
/* One row of ncols strings (NULL prints "-"). */
void d2g_op_table_add(d2g_op_table_t *t, const char *const *cells);
void d2g_op_table_print(const d2g_op_table_t *t, FILE *out);
void d2g_op_table_free(d2g_op_table_t *t);

/* "2026-03-14 14:06:26Z" (UTC, seconds) into buf; "-" for ms <= 0. */
void d2g_op_format_time(int64_t ms, char *buf, size_t buflen);
/* "45s", "3m12s", "2h05m", "3d04h" for an age in ms; "-" for ms < 0. */
void d2g_op_format_age(int64_t ms, char *buf, size_t buflen);
/* At most max characters of s (UTF-8 safe), "..." appended when cut; into buf. */
void d2g_op_shorten(const char *s, size_t max, char *buf, size_t buflen);
/* Prints j on stdout (indented, keys in insertion order) and decrefs it. */
void d2g_op_print_json(json_t *j);
/* The redis URL with any user:password@ part removed, into buf. */
void d2g_op_redis_url_public(const char *url, char *buf, size_t buflen);
/* Parses a non-negative decimal integer; 0 or -1. */
int d2g_op_parse_count(const char *s, long long *out);

/* --- Redis, pipelined (redisbatch.c) --------------------------------------- */

/*
 * A batch of commands sent in one write and answered in order. Arguments are
 * copied; replies[i] belongs to the batch until d2g_op_batch_free.
 */
typedef struct d2g_op_batch {
    size_t n, cap;
    char **cmds;   /* formatted RESP commands */
    int *lens;
    redisReply **replies;
} d2g_op_batch_t;

void d2g_op_batch_add(d2g_op_batch_t *b, int argc, const char **argv);
/* Sends every command (pipelined, in chunks) and reads every reply. An
 * error reply is kept as a reply (REDIS_REPLY_ERROR); a broken connection
 * is a failure. */
int d2g_op_batch_run(d2g_op_batch_t *b, redisContext *c, char *err, size_t errlen);
void d2g_op_batch_free(d2g_op_batch_t *b);

/* --- Kafka (kafkaops.c) ----------------------------------------------------- */

/* A consumer handle with group.id = group that never subscribes: for
 * committed offsets, watermarks and assign(). Owned by the caller
 * (d2g_op_consumer_close). */
rd_kafka_t *d2g_op_consumer_new(const d2g_config_t *cfg, const char *group, char *err,
                                size_t errlen);
void d2g_op_consumer_close(rd_kafka_t *rk);
/* The topic's partition count; -1 with err (unreachable brokers, no topic). */
int d2g_op_partition_count(rd_kafka_t *rk, const char *topic, char *err, size_t errlen);
/* Committed offsets of the handle's group for partitions [0, n) of topic:
 * a list the caller destroys (offset RD_KAFKA_OFFSET_INVALID when none). */
rd_kafka_topic_partition_list_t *d2g_op_committed(rd_kafka_t *rk, const char *topic, int n,
                                                  char *err, size_t errlen);
int d2g_op_watermarks(rd_kafka_t *rk, const char *topic, int partition, int64_t *low,
                      int64_t *high, char *err, size_t errlen);

/* --- configuration (check.c) ---------------------------------------------- */

/* A Grist document as the workers see it: its server, id and permit limit. */
typedef struct d2g_op_doc {
    const d2g_grist_server_t *srv;
    const char *document;
    int permits;         /* d2g_config_doc_permits */
    size_t n_procedures; /* how many of the given procedures write to it */
} d2g_op_doc_t;

/* The distinct documents of procs[0..n), sorted by server then document.
 * The array is the caller's (free); its strings point into the config. */
d2g_op_doc_t *d2g_op_documents(const d2g_procedure_t *const *procs, size_t n, size_t *count);

/* The dead-letter replay group: "<kafka.consumer_group>-dlq-replay" into buf. */
void d2g_op_replay_group(const d2g_config_t *cfg, char *buf, size_t buflen);

/* --- Grist (current.c) ------------------------------------------------------ */

/* What Grist holds now of one dossier. */
typedef struct d2g_op_current {
    int found;       /* the dossiers table has its row */
    int deleted;     /* the row's `supprime` is true */
    double modified; /* the row's date_derniere_modification, epoch s; NAN if empty */
    double deleted_at; /* the row's date_suppression, epoch s; NAN if empty */
} d2g_op_current_t;

/* Reads Grist for the CLI: a Redis connection for the documents' permits and
 * an HTTP client. Owned by the caller (d2g_op_grist_free). */
typedef struct d2g_op_grist d2g_op_grist_t;
d2g_op_grist_t *d2g_op_grist_new(const d2g_config_t *cfg, char *err, size_t errlen);
void d2g_op_grist_free(d2g_op_grist_t *g);
/* One GET of the procedure's dossiers table under a permit of its document
 * (and within its requests-per-second limit, if any); a missing document or
 * table is "not found". -1 with err when Grist could not answer (after
 * retries of 429, 5xx and transport errors); a document that could not
 * answer once fails at once for the rest of the run. */
int d2g_op_grist_current(d2g_op_grist_t *g, const d2g_procedure_t *p, int64_t number,
                         d2g_op_current_t *out, char *err, size_t errlen);

#endif
