/* testenv.c - real servers for tests, see testenv.h. */
#include "testenv.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef D2G_SOURCE_DIR
#error "D2G_SOURCE_DIR must be defined by the build"
#endif
#ifndef D2G_KAFKA_MOCK_BIN
#error "D2G_KAFKA_MOCK_BIN must be defined by the build"
#endif

void d2g_test_sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int d2g_testenv_init(d2g_testenv_t *env) {
    memset(env, 0, sizeof(*env));
    const char *tmp = getenv("TMPDIR");
    snprintf(env->dir, sizeof(env->dir), "%s/d2g-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(env->dir)) {
        fprintf(stderr, "testenv: mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

int d2g_test_proc_spawn(d2g_testenv_t *env, d2g_test_proc_t *proc, const char *name,
                        char *const argv[]) {
    char log[512];
    snprintf(log, sizeof(log), "%s/%s.log", env->dir, name);
    snprintf(proc->name, sizeof(proc->name), "%s", name);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        /* Own process group: a test killing it kills its children too. */
        setpgid(0, 0);
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    proc->pid = pid;
    if (env->n_spawned < (int)(sizeof(env->spawned) / sizeof(env->spawned[0])))
        env->spawned[env->n_spawned++] = pid;
    return 0;
}

int d2g_test_proc_stop(d2g_test_proc_t *proc) {
    int status = -1;
    if (proc->pid <= 0)
        return -1;
    kill(proc->pid, SIGTERM);
    for (int i = 0; i < 3000; i++) { /* 30 s: a service's grace period */
        pid_t r = waitpid(proc->pid, &status, WNOHANG);
        if (r == proc->pid) {
            proc->pid = 0;
            return status;
        }
        if (r < 0) { /* not our child any more: reaped elsewhere */
            proc->pid = 0;
            return -1;
        }
        d2g_test_sleep_ms(10);
    }
    kill(-proc->pid, SIGKILL);
    kill(proc->pid, SIGKILL);
    waitpid(proc->pid, &status, 0);
    proc->pid = 0;
    return -1;
}

void d2g_test_proc_kill(d2g_test_proc_t *proc) {
    int status;
    if (proc->pid <= 0)
        return;
    kill(proc->pid, SIGKILL);
    waitpid(proc->pid, &status, 0);
    proc->pid = 0;
}

/* Waits until path exists and holds a line; the process must stay alive. */
static int wait_file(d2g_testenv_t *env, d2g_test_proc_t *proc, const char *path, char *buf,
                     size_t buflen) {
    for (int i = 0; i < 3000; i++) { /* 30 s: npm-installed Node starts in < 1 s */
        FILE *f = fopen(path, "r");
        if (f) {
            char *ok = fgets(buf, (int)buflen, f);
            fclose(f);
            if (ok) {
                buf[strcspn(buf, "\r\n")] = '\0';
                return 0;
            }
        }
        int status;
        if (waitpid(proc->pid, &status, WNOHANG) == proc->pid) {
            fprintf(stderr, "testenv: %s exited before it was ready; see %s/%s.log\n",
                    proc->name, env->dir, proc->name);
            proc->pid = 0;
            return -1;
        }
        d2g_test_sleep_ms(10);
    }
    fprintf(stderr, "testenv: %s did not publish %s in 30 s\n", proc->name, path);
    return -1;
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || getsockname(fd, (struct sockaddr *)&a, &len)) {
        close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static int tcp_accepts(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

int d2g_testenv_start_redis(d2g_testenv_t *env) {
    /* The port is free when chosen; another process may take it before
     * redis-server binds, so try a few ports. */
    for (int attempt = 0; attempt < 5; attempt++) {
        char port[16], dir[300];
        int p = free_port();
        if (p < 0)
            return -1;
        snprintf(port, sizeof(port), "%d", p);
        snprintf(dir, sizeof(dir), "%s", env->dir);
        char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no", "--dir", dir, NULL};
        if (d2g_test_proc_spawn(env, &env->redis, "redis", argv))
            return -1;
        for (int i = 0; i < 500; i++) {
            if (tcp_accepts(p)) {
                env->redis_port = p;
                return 0;
            }
            int status;
            if (waitpid(env->redis.pid, &status, WNOHANG) == env->redis.pid) {
                env->redis.pid = 0;
                break;
            }
            d2g_test_sleep_ms(10);
        }
        d2g_test_proc_stop(&env->redis);
    }
    fprintf(stderr, "testenv: redis-server did not start; see %s/redis.log\n", env->dir);
    return -1;
}

void d2g_testenv_redis_kill(d2g_testenv_t *env) { d2g_test_proc_kill(&env->redis); }

int d2g_testenv_redis_restart_empty(d2g_testenv_t *env) {
    char port[16], dir[300];
    d2g_test_proc_kill(&env->redis);
    snprintf(port, sizeof(port), "%d", env->redis_port);
    snprintf(dir, sizeof(dir), "%s", env->dir);
    char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", dir, NULL};
    for (int attempt = 0; attempt < 50; attempt++) { /* the port may linger a moment */
        if (d2g_test_proc_spawn(env, &env->redis, "redis", argv))
            return -1;
        for (int i = 0; i < 200; i++) {
            if (tcp_accepts(env->redis_port))
                return 0;
            int status;
            if (waitpid(env->redis.pid, &status, WNOHANG) == env->redis.pid) {
                env->redis.pid = 0;
                break;
            }
            d2g_test_sleep_ms(10);
        }
        d2g_test_proc_stop(&env->redis);
        d2g_test_sleep_ms(100);
    }
    return -1;
}

int d2g_testenv_start_kafka(d2g_testenv_t *env, int partitions) {
    char file[300], parts[16];
    snprintf(file, sizeof(file), "%s/kafka.bootstrap", env->dir);
    snprintf(parts, sizeof(parts), "%d", partitions);
    char *argv[] = {D2G_KAFKA_MOCK_BIN, "--partitions", parts, "--bootstrap-file", file,
                    "--slow-acks-count", "2", "--slow-acks-ms", "3000", NULL};
    if (d2g_test_proc_spawn(env, &env->kafka, "kafka", argv))
        return -1;
    return wait_file(env, &env->kafka, file, env->kafka_bootstrap, sizeof(env->kafka_bootstrap));
}

void d2g_test_filter_from_env(void) {
    const char *pattern = getenv("D2G_TEST_FILTER");
    if (pattern && *pattern)
        cmocka_set_test_filter(pattern);
    const char *skip = getenv("D2G_TEST_SKIP");
    if (skip && *skip)
        cmocka_set_skip_filter(skip);
}

int d2g_testenv_kafka_slow_acks(d2g_testenv_t *env) {
    if (!env->kafka.pid || kill(env->kafka.pid, SIGUSR1))
        return -1;
    d2g_test_sleep_ms(100); /* the mock has pushed the delays before anyone produces */
    return 0;
}

int d2g_testenv_kafka_toggle_brokers(d2g_testenv_t *env) {
    if (!env->kafka.pid || kill(env->kafka.pid, SIGWINCH))
        return -1;
    d2g_test_sleep_ms(100);
    return 0;
}

int d2g_testenv_kafka_refuse_produce(d2g_testenv_t *env) {
    if (!env->kafka.pid || kill(env->kafka.pid, SIGHUP))
        return -1;
    d2g_test_sleep_ms(100);
    return 0;
}

char *d2g_test_read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *s = NULL;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        s = malloc((size_t)n + 1);
        if (s && fread(s, 1, (size_t)n, f) == (size_t)n) {
            s[n] = 0;
        } else {
            free(s);
            s = NULL;
        }
    }
    fclose(f);
    return s;
}

int d2g_testenv_write_file(d2g_testenv_t *env, const char *name, const char *text, char *path,
                           size_t pathlen) {
    snprintf(path, pathlen, "%s/%s", env->dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static int start_node(d2g_testenv_t *env, d2g_test_proc_t *proc, const char *name,
                      const char *script, const char *config_json, int *port) {
    char portfile[600], cfgpath[600], line[64], scriptpath[600];
    snprintf(portfile, sizeof(portfile), "%s/%s.port", env->dir, name);
    snprintf(scriptpath, sizeof(scriptpath), "%s/tests/%s", D2G_SOURCE_DIR, script);
    char *argv[] = {"node", scriptpath, "--port", "0", "--port-file", portfile, NULL, NULL, NULL};
    if (config_json) {
        char cfgname[40];
        snprintf(cfgname, sizeof(cfgname), "%s.json", name);
        if (d2g_testenv_write_file(env, cfgname, config_json, cfgpath, sizeof(cfgpath)))
            return -1;
        argv[6] = "--config";
        argv[7] = cfgpath;
    }
    if (d2g_test_proc_spawn(env, proc, name, argv) ||
        wait_file(env, proc, portfile, line, sizeof(line)))
        return -1;
    *port = atoi(line);
    return *port > 0 ? 0 : -1;
}

int d2g_testenv_start_ds(d2g_testenv_t *env, const char *config_json) {
    if (start_node(env, &env->ds, "ds-emulator", "ds-emulator/server.js", config_json, &env->ds_port))
        return -1;
    snprintf(env->ds_url, sizeof(env->ds_url), "http://127.0.0.1:%d/api/v2/graphql", env->ds_port);
    return 0;
}

int d2g_testenv_start_ds2(d2g_testenv_t *env, const char *config_json) {
    if (start_node(env, &env->ds2, "ds-emulator-2", "ds-emulator/server.js", config_json,
                   &env->ds2_port))
        return -1;
    snprintf(env->ds2_url, sizeof(env->ds2_url), "http://127.0.0.1:%d/api/v2/graphql", env->ds2_port);
    return 0;
}

int d2g_testenv_start_grist(d2g_testenv_t *env, const char *config_json) {
    if (start_node(env, &env->grist, "grist-emulator", "grist-emulator/server.js", config_json,
                   &env->grist_port))
        return -1;
    snprintf(env->grist_url, sizeof(env->grist_url), "http://127.0.0.1:%d", env->grist_port);
    return 0;
}

void d2g_testenv_stop(d2g_testenv_t *env) {
    d2g_test_proc_stop(&env->grist);
    d2g_test_proc_stop(&env->ds2);
    d2g_test_proc_stop(&env->ds);
    d2g_test_proc_stop(&env->kafka);
    d2g_test_proc_stop(&env->redis);
    /* Then the services a failed test left running (its assertion skipped
     * their stop): only children not reaped yet, so a reused pid is never
     * touched (the servers above are reaped already). */
    for (int i = 0; i < env->n_spawned; i++) {
        if (waitpid(env->spawned[i], NULL, WNOHANG) == 0) {
            kill(-env->spawned[i], SIGKILL);
            kill(env->spawned[i], SIGKILL);
            waitpid(env->spawned[i], NULL, 0);
        }
    }
    env->n_spawned = 0;
    if (env->dir[0] && !getenv("D2G_KEEP_TEST_DIR")) {
        char cmd[400];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", env->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "testenv: could not remove %s\n", env->dir);
    }
    env->dir[0] = '\0';
}

struct buf {
    char *data;
    size_t len;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    struct buf *b = ud;
    char *d = realloc(b->data, b->len + size * n + 1);
    if (!d)
        return 0;
    memcpy(d + b->len, p, size * n);
    b->len += size * n;
    d[b->len] = '\0';
    b->data = d;
    return size * n;
}

int d2g_test_http(const char *method, const char *url, const char *bearer, const char *body,
                  char **resp) {
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    struct buf b = {calloc(1, 1), 0};
    char auth[512];
    long status = -1;

    h = curl_slist_append(h, "Content-Type: application/json");
    if (bearer) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer);
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (resp)
        *resp = b.data;
    else
        free(b.data);
    return (int)status;
}

#include <librdkafka/rdkafka.h>

static void msgs_push(d2g_test_msgs_t *m, const rd_kafka_message_t *km) {
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 256;
        m->v = realloc(m->v, m->cap * sizeof(*m->v));
    }
    d2g_test_msg_t *t = &m->v[m->n++];
    t->key = km->key ? strndup(km->key, km->key_len) : strdup("");
    t->value = km->payload ? strndup(km->payload, km->len) : strdup("");
    t->partition = km->partition;
    t->offset = (long long)km->offset;
    t->n_headers = 0;
    t->header_names = t->header_values = NULL;
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(km, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h) {
        size_t n = rd_kafka_header_cnt(h);
        t->header_names = calloc(n + 1, sizeof(char *));
        t->header_values = calloc(n + 1, sizeof(char *));
        const char *name;
        const void *v;
        size_t len;
        for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &v, &len) == RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
            t->header_names[t->n_headers] = strdup(name);
            t->header_values[t->n_headers] = v ? strndup(v, len) : strdup("");
            t->n_headers++;
        }
    }
}

const char *d2g_test_msg_header(const d2g_test_msg_t *m, const char *name) {
    const char *found = NULL;
    for (size_t i = 0; i < m->n_headers; i++)
        if (!strcmp(m->header_names[i], name))
            found = m->header_values[i];
    return found;
}

void d2g_test_msgs_free(d2g_test_msgs_t *m) {
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].key);
        free(m->v[i].value);
        for (size_t k = 0; k < m->v[i].n_headers; k++) {
            free(m->v[i].header_names[k]);
            free(m->v[i].header_values[k]);
        }
        free(m->v[i].header_names);
        free(m->v[i].header_values);
    }
    free(m->v);
    memset(m, 0, sizeof(*m));
}

int d2g_test_kafka_read_all(d2g_testenv_t *env, const char *topic, d2g_test_msgs_t *out) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", env->kafka_bootstrap, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", "d2g-test-reader", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk)
        return -1;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    if (rd_kafka_metadata(rk, 0, t, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1) {
        rd_kafka_topic_destroy(t);
        rd_kafka_destroy(rk);
        return -1;
    }
    int parts = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(parts);
    for (int i = 0; i < parts; i++)
        rd_kafka_topic_partition_list_add(tp, topic, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, tp);
    rd_kafka_topic_partition_list_destroy(tp);
    int eof = 0, idle = 0;
    while (eof < parts && idle < 100) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) {
            idle++;
            continue;
        }
        idle = 0;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            eof++;
        else if (!m->err)
            msgs_push(out, m);
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return eof == parts ? 0 : -1;
}

#include <jansson.h>

json_t *d2g_test_json(const char *method, const char *url, const char *body) {
    char *resp = NULL;
    int st = d2g_test_http(method, url, NULL, body, &resp);
    if (st < 200 || st >= 300) {
        fprintf(stderr, "testenv: %s %s -> %d %s\n", method, url, st, resp ? resp : "");
        free(resp);
        return NULL;
    }
    json_t *j = json_loads(resp, JSON_DECODE_ANY, NULL);
    free(resp);
    return j;
}

json_t *d2g_testenv_grist_admin(d2g_testenv_t *env, const char *method, const char *path,
                                const char *body) {
    char url[1024];
    snprintf(url, sizeof(url), "%s/admin%s", env->grist_url, path);
    return d2g_test_json(method, url, body);
}

int d2g_test_write_config(d2g_testenv_t *env, const char *name, const char *procedures_json,
                          int ds_budget, int grist_permits, const char *extra, char *path,
                          size_t pathlen) {
    size_t cap = strlen(procedures_json) + strlen(extra) + 4096;
    char *text = malloc(cap);
    snprintf(text, cap,
             "{\"kafka\": {\"properties\": {\"bootstrap.servers\": \"%s\", \"session.timeout.ms\": \"6000\"}},"
             " \"redis\": {\"url\": \"redis://127.0.0.1:%d\"},"
             " \"ds\": {\"endpoint\": \"%s\", \"timeout_s\": 10, \"tokens\": {\"main\":"
             "   {\"secret\": {\"env\": \"D2G_TEST_DS_TOKEN\"}, \"requests_per_minute\": %d}}},"
             " \"grist\": {\"timeout_s\": 20, \"servers\": {\"g\": {\"url\": \"%s\","
             "   \"api_key\": {\"env\": \"D2G_TEST_GRIST_KEY\"}, \"permits_per_document\": %d}}},"
             " \"procedures\": %s%s%s}",
             env->kafka_bootstrap, env->redis_port, env->ds_url[0] ? env->ds_url : "http://127.0.0.1:1",
             ds_budget, env->grist_url[0] ? env->grist_url : "http://127.0.0.1:1", grist_permits,
             procedures_json, *extra ? ", " : "", extra);
    int rc = d2g_testenv_write_file(env, name, text, path, pathlen);
    free(text);
    return rc;
}
