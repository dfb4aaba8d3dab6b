/*
 * testenv.h - the real servers a test talks to, started and stopped per test.
 *
 * A test environment is a temporary directory and up to four child
 * processes: a throwaway redis-server on a free port, the Kafka mock broker
 * (tests/kafka-mock), the DS emulator and the Grist emulator (Node, under
 * tests/). Each one publishes its address (a port file or a bootstrap file)
 * that start_* waits for. d2g_testenv_stop kills what was started (SIGTERM,
 * then SIGKILL) and removes the directory, so a failed test leaves nothing
 * behind.
 */
#ifndef D2G_TESTENV_H
#define D2G_TESTENV_H

#include <stddef.h>
#include <sys/types.h>

typedef struct d2g_test_proc {
    pid_t pid; /* 0 = not running */
    char name[32];
} d2g_test_proc_t;

typedef struct d2g_testenv {
    char dir[256];
    d2g_test_proc_t redis, kafka, ds, grist;
    int redis_port;
    char kafka_bootstrap[256];
    int ds_port;
    int grist_port;
    char ds_url[128];    /* http://127.0.0.1:PORT/api/v2/graphql */
    char grist_url[128]; /* http://127.0.0.1:PORT */
    pid_t spawned[64];   /* every d2g_test_proc_spawn: stopped with the env if still running */
    int n_spawned;
    d2g_test_proc_t ds2; /* a second DS instance (d2g_testenv_start_ds2) */
    int ds2_port;
    char ds2_url[128];
} d2g_testenv_t;

int d2g_testenv_init(d2g_testenv_t *env);
int d2g_testenv_start_redis(d2g_testenv_t *env);
/* Kills redis-server (SIGKILL: nothing saved), and starts a new, empty one on
 * the same port: a Redis pod lost and rescheduled. */
void d2g_testenv_redis_kill(d2g_testenv_t *env);
int d2g_testenv_redis_restart_empty(d2g_testenv_t *env);
int d2g_testenv_start_kafka(d2g_testenv_t *env, int partitions);
/* The next 2 produce requests (per broker) are acknowledged 3 s late: messages
 * are readable before their producer hears they are written (SIGUSR1 to the mock). */
int d2g_testenv_kafka_slow_acks(d2g_testenv_t *env);
/* Every broker of the mock goes down (connections closed, new ones refused),
 * or, called again, comes back up (SIGWINCH to the mock). */
int d2g_testenv_kafka_toggle_brokers(d2g_testenv_t *env);
/* The next 3 produce requests to the mock are refused (SIGHUP to the mock). */
int d2g_testenv_kafka_refuse_produce(d2g_testenv_t *env);
/* config_json: the emulator's configuration (see its README), or NULL. */
int d2g_testenv_start_ds(d2g_testenv_t *env, const char *config_json);
int d2g_testenv_start_grist(d2g_testenv_t *env, const char *config_json);
/* A second DS emulator (another DS instance: its own tokens and procedures). */
int d2g_testenv_start_ds2(d2g_testenv_t *env, const char *config_json);
void d2g_testenv_stop(d2g_testenv_t *env);

/* Starts argv[0] (searched in PATH) with stdout/stderr appended to
 * <env->dir>/<name>.log. Returns 0 and fills proc. */
int d2g_test_proc_spawn(d2g_testenv_t *env, d2g_test_proc_t *proc, const char *name,
                        char *const argv[]);
/* SIGTERM, wait up to 30 s, then SIGKILL. Returns the exit status (or -1). */
int d2g_test_proc_stop(d2g_test_proc_t *proc);
/* SIGKILL at once (crash tests). */
void d2g_test_proc_kill(d2g_test_proc_t *proc);

void d2g_test_sleep_ms(long ms);

/* Runs only the tests whose name matches $D2G_TEST_FILTER (a cmocka pattern,
 * e.g. "test_crash*"), when it is set, and skips those matching $D2G_TEST_SKIP.
 * Call first thing in main. */
void d2g_test_filter_from_env(void);

/* The whole file at path, NUL-terminated (caller frees); NULL if it cannot be read. */
char *d2g_test_read_text(const char *path);

/* Writes text to <env->dir>/<name>; path receives the full path. */
int d2g_testenv_write_file(d2g_testenv_t *env, const char *name, const char *text, char *path,
                           size_t pathlen);

/* Minimal HTTP for tests (libcurl): body may be NULL. Returns the status, or
 * -1 on a transport error; *resp (malloc'ed, caller frees) holds the body. */
int d2g_test_http(const char *method, const char *url, const char *bearer, const char *body,
                  char **resp);

/* ---- Kafka: read back what was produced ---- */

typedef struct d2g_test_msg {
    char *key;
    char *value;
    int partition;
    long long offset;
    size_t n_headers;
    char **header_names, **header_values; /* in order, values NUL-terminated */
} d2g_test_msg_t;

typedef struct d2g_test_msgs {
    d2g_test_msg_t *v;
    size_t n, cap;
} d2g_test_msgs_t;

/* Reads every message of topic (all partitions, from the beginning, no
 * consumer group) into out (appended). Returns 0 or -1. */
int d2g_test_kafka_read_all(d2g_testenv_t *env, const char *topic, d2g_test_msgs_t *out);
void d2g_test_msgs_free(d2g_test_msgs_t *m);
/* The last value of header name in m, or NULL. */
const char *d2g_test_msg_header(const d2g_test_msg_t *m, const char *name);

/* ---- JSON over HTTP, for the emulators' admin APIs ---- */

/* method url [body]: fails the test on a transport error or a non-2xx
 * answer; returns the parsed body (caller decrefs). */
struct json_t;
struct json_t *d2g_test_json(const char *method, const char *url, const char *body);

/* The Grist emulator's admin API (tests/grist-emulator/README.md): a path under /admin, e.g.
 * d2g_testenv_grist_admin(env, "POST", "/docs/docA/mode", "{\"mode\": \"revoked\"}"),
 * "/faults", "/stats". Same contract as d2g_test_json. */
struct json_t *d2g_testenv_grist_admin(d2g_testenv_t *env, const char *method, const char *path,
                                       const char *body);

/* ---- the ds2grist configuration for a test stack ---- */

/*
 * Writes <dir>/<name>: Kafka, Redis, DS and Grist of env (tokens read from
 * D2G_TEST_DS_TOKEN and D2G_TEST_GRIST_KEY), the procedures JSON array, and
 * extra top-level members (e.g. "\"producer\": {...}, \"worker\": {...}", or
 * "" for none). path receives the file's path.
 */
int d2g_test_write_config(d2g_testenv_t *env, const char *name, const char *procedures_json,
                          int ds_budget, int grist_permits, const char *extra, char *path,
                          size_t pathlen);

#endif
