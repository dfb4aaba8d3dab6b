/*
 * test_onboarding.c - self-service onboarding end to end, as an agent's
 * widget and an operator use it: the real producer (with its onboarding
 * port) and worker, the DS and Grist emulators (Grist access tokens minted
 * as grist-core does), a real redis-server and the Kafka mock broker.
 *
 *   refusals     forged, expired, read-only and other-document Grist access
 *                tokens; a baseUrl on a server not listed (and that server
 *                never called); a DS token that cannot read the procedure;
 *                a document the platform's account can only view; a token in
 *                the URL; a procedure of the file; nothing stored by any
 *   lifecycle    connect (dry run first) -> rows in Grist; status; pause ->
 *                a new dossier does not arrive; resume -> it does; resync;
 *                disconnect -> the entry gone, the next dossier does not arrive
 *   options      connect with {"mapping": {"avis": true}, "filter": {"states":
 *                ["accepte"]}} -> an avis table, only accepted dossiers unmarked
 *                (the others marked hors_filtre); bad options refused naming the
 *                key (API and CLI); a filter change through the API -> a full
 *                resync, the dossiers of the new filter unmarked
 *   rate_limit   per address (X-Forwarded-For) and per document: the budget
 *                holds, then 429 with Retry-After
 *   rebuild      Redis restarted empty: the registry comes back from the Kafka
 *                topic (CLI list, API status), options included; the sync goes on
 *   cli          registry list/pause/resume/remove; self-service off
 *   no_leak      the agent's DS token and every Grist access token appear in
 *                no API answer, log line, CLI output, Redis value or Kafka
 *                message; no dead letter (run last)
 * The tests run in this order and build on each other (one stack).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ds2grist/clock.h"
#include "stack.h"

#define AGENT_DS_TOKEN "agent-DS-tok-3e9d7c1b5a"
#define OTHER_DS_TOKEN "other-DS-tok-8a7b6c5d4e"
#define AGENT_KEY "agent-user-key"   /* the agent's own Grist account (mints access tokens) */
#define VIEWER_KEY "viewer-user-key" /* an agent who can only view docA */
#define ENC_KEY "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define PROC 2001    /* the agent's procedure */
#define PROC_NO 2002 /* one the agent's DS token cannot read */
#define PROC_FILE 2003
#define PROC_OPT 2004 /* connected with mapping options and a filter */

typedef struct fixture {
    d2g_testenv_t env;
    char config[600], config_off[600];
    int port;
    d2g_test_proc_t producer, worker, other_grist;
    int other_grist_port;
    char widget_dir[400];
    json_t *tokens;     /* every Grist access token minted (strings) */
    char *transcript;   /* every API answer and CLI output */
    size_t transcript_len;
} fixture_t;

static fixture_t *F;

static void record(const char *s) {
    size_t n = strlen(s);
    F->transcript = realloc(F->transcript, F->transcript_len + n + 2);
    memcpy(F->transcript + F->transcript_len, s, n);
    F->transcript_len += n;
    F->transcript[F->transcript_len++] = '\n';
    F->transcript[F->transcript_len] = '\0';
}

/* ---- HTTP ------------------------------------------------------------------------------- */

typedef struct answer {
    long status;
    json_t *json;
    char body[16384];
    char retry_after[32];
    char content_type[128];
} answer_t;

static size_t on_body(char *d, size_t s, size_t n, void *ud) {
    answer_t *a = ud;
    size_t have = strlen(a->body), add = s * n;
    if (have + add < sizeof(a->body)) {
        memcpy(a->body + have, d, add);
        a->body[have + add] = '\0';
    }
    return s * n;
}

static size_t on_header(char *d, size_t s, size_t n, void *ud) {
    answer_t *a = ud;
    size_t len = s * n;
    if (len > 13 && !strncasecmp(d, "Retry-After: ", 13))
        snprintf(a->retry_after, sizeof(a->retry_after), "%.*s", (int)(len - 15), d + 13);
    if (len > 14 && !strncasecmp(d, "Content-Type: ", 14))
        snprintf(a->content_type, sizeof(a->content_type), "%.*s", (int)(len - 16), d + 14);
    return len;
}

/* A request to the onboarding port; token/base NULL: not sent. */
static answer_t *call(const char *method, const char *path, const char *token, const char *base,
                      const char *body, const char *xff) {
    answer_t *a = calloc(1, sizeof(*a));
    char url[1024], h1[4200], h2[1200], h3[200];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", F->port, path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
    if (token) {
        snprintf(h1, sizeof(h1), "X-Grist-Access-Token: %s", token);
        h = curl_slist_append(h, h1);
    }
    if (base) {
        snprintf(h2, sizeof(h2), "X-Grist-Base-Url: %s", base);
        h = curl_slist_append(h, h2);
    }
    snprintf(h3, sizeof(h3), "X-Forwarded-For: %s", xff ? xff : "10.0.0.1");
    h = curl_slist_append(h, h3);
    if (body) {
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    a->json = json_loads(a->body, 0, NULL);
    record(a->body);
    return a;
}

static void answer_free(answer_t *a) {
    json_decref(a->json);
    free(a);
}

static const char *code_of(const answer_t *a) {
    return json_string_value(json_object_get(a->json, "code"));
}

/* Expects status and code, frees. */
static void expect(answer_t *a, long status, const char *code) {
    if (a->status != status || (code && (!code_of(a) || strcmp(code_of(a), code)))) {
        fprintf(stderr, "expected %ld %s, got %ld %s\n", status, code ? code : "", a->status,
                a->body);
        fail();
    }
    answer_free(a);
}

/* A Grist access token from the emulator, as getAccessToken gives it. */
static char *mint(const char *doc, const char *key, int read_only, long ttl_ms, char *base,
                  size_t baselen) {
    char body[256];
    snprintf(body, sizeof(body), "{\"doc\": \"%s\", \"key\": \"%s\", \"readOnly\": %s, \"ttlMs\": %ld}",
             doc, key, read_only ? "true" : "false", ttl_ms);
    json_t *r = d2g_testenv_grist_admin(&F->env, "POST", "/access-token", body);
    assert_non_null(r);
    const char *t = json_string_value(json_object_get(r, "token"));
    assert_non_null(t);
    char *tok = strdup(t);
    if (base)
        snprintf(base, baselen, "%s", json_string_value(json_object_get(r, "baseUrl")));
    json_array_append_new(F->tokens, json_string(tok));
    json_decref(r);
    return tok;
}

/* ---- the CLI ---------------------------------------------------------------------------- */

static char *cli_argv(int *status, char **argv);

static char *cli(int *status, const char *config, const char *a1, const char *a2, const char *a3) {
    char *argv[] = {D2G_CLI_BIN, "--config", (char *)config, (char *)a1, (char *)a2,
                    (char *)a3, NULL};
    return cli_argv(status, argv);
}

/* argv: the whole command line, NULL-terminated. */
static char *cli_argv(int *status, char **argv) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        execv(D2G_CLI_BIN, argv);
        _exit(127);
    }
    close(fds[1]);
    size_t cap = 65536, len = 0;
    char *out = malloc(cap);
    ssize_t r;
    while ((r = read(fds[0], out + len, cap - len - 1)) > 0) {
        len += (size_t)r;
        if (len + 1 >= cap)
            out = realloc(out, cap *= 2);
    }
    out[len] = '\0';
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    record(out);
    return out;
}

/* ---- the stack -------------------------------------------------------------------------- */

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

static void write_config(const char *name, int self_service, char *path, size_t pathlen) {
    char extra[2048];
    snprintf(extra, sizeof(extra),
             "\"defaults\": {\"poll_interval_s\": 1},"
             " \"registry\": {\"encryption_key\": {\"env\": \"D2G_TEST_ENC_KEY\"}},"
             " \"onboarding\": {\"listen\": \"127.0.0.1:%d\", \"static_dir\": \"%s\","
             "   \"self_service\": %s, \"platform_account\": \"ds2grist@example.fr\","
             "   \"per_document_per_minute\": 20, \"per_address_per_minute\": 30,"
             "   \"trust_forwarded_for\": true}",
             F->port, F->widget_dir, self_service ? "true" : "false");
    char procs[256];
    snprintf(procs, sizeof(procs),
             "[{\"number\": %d, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docF\"}]",
             PROC_FILE);
    assert_int_equal(d2g_test_write_config(&F->env, name, procs, 400, 8, extra, path, pathlen), 0);
}

static int setup(void **state) {
    F = calloc(1, sizeof(*F));
    *state = F;
    F->tokens = json_array();
    setenv("D2G_TEST_DS_TOKEN", D2G_STACK_DS_TOKEN, 1);
    setenv("D2G_TEST_GRIST_KEY", D2G_STACK_GRIST_KEY, 1);
    setenv("D2G_TEST_ENC_KEY", ENC_KEY, 1);
    unsetenv("DS2GRIST_CONFIG");
    if (d2g_testenv_init(&F->env) || d2g_testenv_start_redis(&F->env) ||
        d2g_testenv_start_kafka(&F->env, 4))
        return -1;
    char ds[1024];
    snprintf(ds, sizeof(ds),
             "{\"seed\": 3, \"procedures\": [{\"number\": %d, \"dossiers\": 12},"
             " {\"number\": %d, \"dossiers\": 3}, {\"number\": %d, \"dossiers\": 3},"
             " {\"number\": %d, \"dossiers\": 8}],"
             " \"tokens\": [{\"name\": \"main\", \"secret\": \"" D2G_STACK_DS_TOKEN "\", \"procedures\": \"*\"},"
             "  {\"name\": \"agent\", \"secret\": \"" AGENT_DS_TOKEN "\", \"procedures\": [%d, %d]},"
             "  {\"name\": \"other\", \"secret\": \"" OTHER_DS_TOKEN "\", \"procedures\": [%d]}]}",
             PROC, PROC_NO, PROC_FILE, PROC_OPT, PROC, PROC_OPT, PROC_NO);
    if (d2g_testenv_start_ds(&F->env, ds))
        return -1;
    const char *grist =
        "{\"docs\": [{\"id\": \"docA\", \"keys\": [\"" D2G_STACK_GRIST_KEY "\"]},"
        " {\"id\": \"docC\", \"keys\": [\"" D2G_STACK_GRIST_KEY "\"]},"
        " {\"id\": \"docR\", \"keys\": [\"" D2G_STACK_GRIST_KEY "\"]},"
        " {\"id\": \"docF\", \"keys\": [\"" D2G_STACK_GRIST_KEY "\"]},"
        " {\"id\": \"docO\", \"keys\": [\"" D2G_STACK_GRIST_KEY "\"]},"
        " {\"id\": \"docV\", \"keys\": []}],"
        " \"users\": [{\"key\": \"" AGENT_KEY "\", \"docs\": [{\"id\": \"docA\", \"access\": \"editors\"},"
        "   {\"id\": \"docC\", \"access\": \"editors\"}, {\"id\": \"docV\", \"access\": \"owners\"},"
        "   {\"id\": \"docR\", \"access\": \"editors\"}, {\"id\": \"docO\", \"access\": \"editors\"},"
        "   {\"id\": \"docF\", \"access\": \"editors\"}]},"
        "  {\"key\": \"" VIEWER_KEY "\", \"docs\": [{\"id\": \"docA\", \"access\": \"viewers\"}]},"
        "  {\"key\": \"" D2G_STACK_GRIST_KEY "\", \"docs\": [{\"id\": \"docV\", \"access\": \"viewers\"}]}]}";
    if (d2g_testenv_start_grist(&F->env, grist))
        return -1;
    /* A second Grist server, not in the configuration: it must never be called. */
    char portfile[400], port[32];
    snprintf(portfile, sizeof(portfile), "%s/other-grist.port", F->env.dir);
    char *argv[] = {"node", D2G_SOURCE_DIR "/tests/grist-emulator/server.js", "--doc", "docA",
                    "--key", AGENT_KEY, "--port-file", portfile, NULL};
    if (d2g_test_proc_spawn(&F->env, &F->other_grist, "other-grist", argv))
        return -1;
    for (int i = 0; i < 100; i++) {
        FILE *f = fopen(portfile, "r");
        if (f && fgets(port, sizeof(port), f)) {
            fclose(f);
            F->other_grist_port = atoi(port);
            break;
        }
        if (f)
            fclose(f);
        d2g_test_sleep_ms(100);
    }
    if (!F->other_grist_port)
        return -1;
    snprintf(F->widget_dir, sizeof(F->widget_dir), "%s/widget", F->env.dir);
    mkdir(F->widget_dir, 0755);
    char idx[500];
    snprintf(idx, sizeof(idx), "%s/index.html", F->widget_dir);
    FILE *f = fopen(idx, "w");
    fputs("<!doctype html><title>ds2grist</title>\n", f);
    fclose(f);
    snprintf(idx, sizeof(idx), "%s/secret.conf", F->env.dir);
    f = fopen(idx, "w");
    fputs("not for the web\n", f);
    fclose(f);
    F->port = free_port();
    write_config("config.json", 1, F->config, sizeof(F->config));
    write_config("config-off.json", 0, F->config_off, sizeof(F->config_off));
    char *pargv[] = {D2G_PRODUCER_BIN, "--config", F->config, NULL};
    char *wargv[] = {D2G_WORKER_BIN, "--config", F->config, NULL};
    if (d2g_test_proc_spawn(&F->env, &F->producer, "producer", pargv) ||
        d2g_test_proc_spawn(&F->env, &F->worker, "worker", wargv))
        return -1;
    /* Wait for the onboarding port. */
    for (int i = 0; i < 100; i++) {
        char url[128], *resp = NULL;
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/info", F->port);
        int st = d2g_test_http("GET", url, NULL, NULL, &resp);
        free(resp);
        if (st == 200)
            return 0;
        d2g_test_sleep_ms(100);
    }
    fprintf(stderr, "onboarding port did not answer; see %s/producer.log\n", F->env.dir);
    return -1;
}

static int teardown(void **state) {
    (void)state;
    d2g_testenv_stop(&F->env);
    json_decref(F->tokens);
    free(F->transcript);
    free(F);
    F = NULL;
    return 0;
}

static size_t grist_count(const char *doc, const char *table) {
    json_t *rows = d2g_stack_grist_rows(&F->env, doc, table);
    size_t n = json_array_size(rows);
    json_decref(rows);
    return n;
}

static size_t wait_count(const char *doc, const char *table, size_t want, int timeout_s) {
    int64_t end = d2g_clock_mono_ms() + timeout_s * 1000LL;
    size_t n;
    while ((n = grist_count(doc, table)) != want && d2g_clock_mono_ms() < end)
        d2g_test_sleep_ms(250);
    return n;
}

static void ds_new_dossier(int procedure) {
    char path[128];
    snprintf(path, sizeof(path), "/admin/procedures/%d/dossiers", procedure);
    json_t *r = d2g_stack_ds_do(&F->env, "POST", path, "{}");
    assert_non_null(r);
    json_decref(r);
}

/* ---- tests ------------------------------------------------------------------------------ */

static char connect_body[256];

static void test_refusals(void **state) {
    (void)state;
    char base[256], other[256], body[256];
    snprintf(connect_body, sizeof(connect_body), "{\"procedure\": %d, \"ds_token\": \"%s\"}",
             PROC, AGENT_DS_TOKEN);

    /* No token at all; a token in the URL. */
    expect(call("POST", "/api/v1/procedures", NULL, NULL, connect_body, "10.1.0.1"), 401,
           "grist_token_missing");
    expect(call("GET", "/api/v1/procedures?auth=abc", "x", "y", NULL, "10.1.0.1"), 400,
           "token_in_url");

    /* Forged: signed with another secret (a token of the other Grist server for the same
     * document id), expired, read-only, for another document. */
    char *good = mint("docA", AGENT_KEY, 0, 900000, base, sizeof(base));
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/admin/access-token", F->other_grist_port);
    json_t *o = d2g_test_json("POST", url, "{\"doc\": \"docA\", \"key\": \"" AGENT_KEY "\"}");
    assert_non_null(o);
    char *forged = strdup(json_string_value(json_object_get(o, "token")));
    snprintf(other, sizeof(other), "%s", json_string_value(json_object_get(o, "baseUrl")));
    json_array_append_new(F->tokens, json_string(forged));
    json_decref(o);
    expect(call("POST", "/api/v1/procedures", forged, base, connect_body, "10.1.0.1"), 401,
           "grist_token_invalid");
    char *expired = mint("docA", AGENT_KEY, 0, 0, NULL, 0);
    expect(call("POST", "/api/v1/procedures", expired, base, connect_body, "10.1.0.1"), 401,
           "grist_token_expired");
    char *ro = mint("docA", AGENT_KEY, 1, 900000, NULL, 0);
    expect(call("POST", "/api/v1/procedures", ro, base, connect_body, "10.1.0.1"), 403,
           "grist_read_only");
    char *viewer = mint("docA", VIEWER_KEY, 0, 900000, NULL, 0);
    expect(call("POST", "/api/v1/procedures", viewer, base, connect_body, "10.1.0.1"), 403,
           "grist_read_only");
    /* A read-only token may read the status list. */
    expect(call("GET", "/api/v1/procedures", ro, base, NULL, "10.1.0.1"), 200, NULL);
    char base_c[256];
    char *tok_c = mint("docC", AGENT_KEY, 0, 900000, base_c, sizeof(base_c));
    expect(call("POST", "/api/v1/procedures", tok_c, base, connect_body, "10.1.0.1"), 401,
           "grist_token_invalid");

    /* A baseUrl on a server that is not listed: refused, and that server never called. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/admin/stats", F->other_grist_port);
    json_t *s0 = d2g_test_json("GET", url, NULL);
    expect(call("POST", "/api/v1/procedures", forged, other, connect_body, "10.1.0.1"), 403,
           "grist_server_not_allowed");
    char sneaky[400];
    snprintf(sneaky, sizeof(sneaky), "%s.evil.example/api/docs/docA", F->env.grist_url);
    expect(call("POST", "/api/v1/procedures", good, sneaky, connect_body, "10.1.0.1"), 403,
           "grist_server_not_allowed");
    snprintf(sneaky, sizeof(sneaky), "%s/api/docs/docA/../../admin", F->env.grist_url);
    expect(call("POST", "/api/v1/procedures", good, sneaky, connect_body, "10.1.0.1"), 403,
           "grist_server_not_allowed");
    json_t *s1 = d2g_test_json("GET", url, NULL);
    char *d0 = json_dumps(json_object_get(s0, "requests"), JSON_SORT_KEYS);
    char *d1 = json_dumps(json_object_get(s1, "requests"), JSON_SORT_KEYS);
    assert_string_equal(d0, d1); /* the unlisted server saw no request from us */
    free(d0);
    free(d1);
    json_decref(s0);
    json_decref(s1);

    /* The DS token cannot read this procedure; DS has no such procedure. */
    snprintf(body, sizeof(body), "{\"procedure\": %d, \"ds_token\": \"%s\"}", PROC_NO,
             AGENT_DS_TOKEN);
    expect(call("POST", "/api/v1/procedures", good, base, body, "10.1.0.2"), 403,
           "ds_token_refused");
    snprintf(body, sizeof(body), "{\"procedure\": %d, \"ds_token\": \"not-a-token\"}", PROC);
    expect(call("POST", "/api/v1/procedures", good, base, body, "10.1.0.2"), 403,
           "ds_token_refused");
    /* The platform's account can only view docV. */
    char base_v[256];
    char *tok_v = mint("docV", AGENT_KEY, 0, 900000, base_v, sizeof(base_v));
    answer_t *a = call("POST", "/api/v1/procedures", tok_v, base_v, connect_body, "10.1.0.2");
    assert_non_null(strstr(json_string_value(json_object_get(a->json, "error")),
                           "ds2grist@example.fr"));
    expect(a, 403, "platform_no_access");
    /* A procedure of the configuration file. */
    snprintf(body, sizeof(body), "{\"procedure\": %d, \"ds_token\": \"%s\"}", PROC_FILE,
             AGENT_DS_TOKEN);
    expect(call("POST", "/api/v1/procedures", good, base, body, "10.1.0.2"), 409,
           "already_connected");
    /* Bad bodies. */
    expect(call("POST", "/api/v1/procedures", good, base, "{\"procedure\": \"x\"}", "10.1.0.3"),
           400, "bad_request");
    expect(call("POST", "/api/v1/procedures", good, base, "[1]", "10.1.0.3"), 400, "bad_request");

    /* Nothing was stored by any of them. */
    int st;
    char *out = cli(&st, F->config, "registry", "list", "--json");
    assert_int_equal(st, 0);
    json_t *l = json_loads(out, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(l, "entries")), 0);
    json_decref(l);
    free(out);

    /* The widget's files; nothing outside its directory. */
    answer_t *w = call("GET", "/widget/", NULL, NULL, NULL, "10.1.0.4");
    assert_int_equal(w->status, 200);
    assert_non_null(strstr(w->body, "ds2grist"));
    assert_non_null(strstr(w->content_type, "text/html"));
    answer_free(w);
    w = call("GET", "/widget/..%2fsecret.conf", NULL, NULL, NULL, "10.1.0.4");
    assert_int_equal(w->status, 404);
    answer_free(w);
    w = call("GET", "/widget/../secret.conf", NULL, NULL, NULL, "10.1.0.4");
    assert_int_equal(w->status, 404);
    answer_free(w);
    free(good);
    free(forged);
    free(expired);
    free(ro);
    free(viewer);
    free(tok_c);
    free(tok_v);
}

static void test_lifecycle(void **state) {
    (void)state;
    char base[256], path[128];
    char *tok = mint("docA", AGENT_KEY, 0, 900000, base, sizeof(base));
    char body[256];
    snprintf(body, sizeof(body), "{\"procedure\": %d, \"ds_token\": \"%s\", \"dry_run\": true}",
             PROC, AGENT_DS_TOKEN);
    answer_t *a = call("POST", "/api/v1/procedures", tok, base, body, "10.2.0.1");
    assert_int_equal(a->status, 200);
    assert_true(json_is_true(json_object_get(a->json, "dry_run")));
    json_t *tables = json_object_get(a->json, "tables");
    assert_true(json_array_size(tables) >= 2); /* the dossiers table and a repetition block */
    assert_string_equal(json_string_value(json_array_get(tables, 0)), "D2001");
    answer_free(a);
    assert_int_equal(grist_count("docA", "D2001"), 0);

    a = call("POST", "/api/v1/procedures", tok, base, connect_body, "10.2.0.1");
    assert_int_equal(a->status, 201);
    assert_string_equal(json_string_value(json_object_get(a->json, "state")), "active");
    assert_string_equal(json_string_value(json_object_get(a->json, "document")), "docA");
    answer_free(a);
    /* Twice: refused. */
    expect(call("POST", "/api/v1/procedures", tok, base, connect_body, "10.2.0.1"), 409,
           "already_connected");

    /* Rows appear in Grist. */
    assert_int_equal(d2g_stack_wait_synced(&F->env, "docA", "D2001", PROC, 60), 12);
    snprintf(path, sizeof(path), "/api/v1/procedures/%d", PROC);
    int64_t end = d2g_clock_mono_ms() + 20000;
    for (;;) {
        a = call("GET", path, tok, base, NULL, "10.2.0.2");
        assert_int_equal(a->status, 200);
        json_t *sync = json_object_get(a->json, "sync");
        if (json_integer_value(json_object_get(sync, "dossiers")) >= 12 &&
            json_is_string(json_object_get(sync, "last_sync_at"))) {
            assert_string_equal(json_string_value(json_object_get(a->json, "source")), "registry");
            answer_free(a);
            break;
        }
        answer_free(a);
        assert_true(d2g_clock_mono_ms() < end);
        d2g_test_sleep_ms(300);
    }
    a = call("GET", "/api/v1/procedures", tok, base, NULL, "10.2.0.2");
    assert_int_equal(json_array_size(json_object_get(a->json, "procedures")), 1);
    answer_free(a);

    /* Pause: a new dossier does not arrive. */
    snprintf(path, sizeof(path), "/api/v1/procedures/%d/pause", PROC);
    a = call("POST", path, tok, base, "{}", "10.2.0.3");
    assert_int_equal(a->status, 200);
    assert_string_equal(json_string_value(json_object_get(a->json, "state")), "paused");
    answer_free(a);
    d2g_test_sleep_ms(4000); /* the runs restart on the change */
    ds_new_dossier(PROC);
    d2g_test_sleep_ms(6000);
    assert_int_equal(grist_count("docA", "D2001"), 12);

    /* Resume: it does. */
    snprintf(path, sizeof(path), "/api/v1/procedures/%d/resume", PROC);
    expect(call("POST", path, tok, base, NULL, "10.2.0.3"), 200, NULL);
    assert_int_equal(wait_count("docA", "D2001", 13, 60), 13);

    /* Resync: accepted, the rows stay (upserts). */
    snprintf(path, sizeof(path), "/api/v1/procedures/%d/resync", PROC);
    expect(call("POST", path, tok, base, NULL, "10.2.0.3"), 200, NULL);

    /* Actions on another document's procedure, and on the file's. */
    char base_c[256];
    char *tok_c = mint("docC", AGENT_KEY, 0, 900000, base_c, sizeof(base_c));
    snprintf(path, sizeof(path), "/api/v1/procedures/%d", PROC);
    expect(call("DELETE", path, tok_c, base_c, NULL, "10.2.0.4"), 404, "not_connected");
    char base_f[256];
    char *tok_f = mint("docF", AGENT_KEY, 0, 900000, base_f, sizeof(base_f));
    snprintf(path, sizeof(path), "/api/v1/procedures/%d/pause", PROC_FILE);
    expect(call("POST", path, tok_f, base_f, NULL, "10.2.0.4"), 409, "managed_by_operator");
    free(tok_c);
    free(tok_f);
    free(tok);
}

/* Every DS dossier of proc has one row in doc's table, unmarked exactly when its state
 * is one of states (a NULL-terminated list), else marked hors_filtre (mark mode). */
static int options_synced(int proc, const char *doc, const char *table, const char *const *states) {
    json_t *list = d2g_stack_ds_get(&F->env, proc, 0);
    json_t *rows = d2g_stack_grist_rows(&F->env, doc, table);
    json_t *by_num = json_object();
    size_t i;
    json_t *r, *d;
    json_array_foreach(rows, i, r) {
        char n[24];
        snprintf(n, sizeof(n), "%lld", (long long)json_integer_value(d2g_stack_field(r, "numero")));
        json_object_set(by_num, n, r);
    }
    json_t *dossiers = json_object_get(list, "dossiers");
    int same = json_array_size(dossiers) > 0 && json_object_size(by_num) == json_array_size(rows) &&
               json_array_size(rows) == json_array_size(dossiers);
    json_array_foreach(dossiers, i, d) {
        char n[24];
        snprintf(n, sizeof(n), "%lld", (long long)json_integer_value(json_object_get(d, "number")));
        const char *st = json_string_value(json_object_get(d, "state"));
        int in = 0;
        for (const char *const *s = states; *s; s++)
            in |= st && !strcmp(st, *s);
        json_t *row = json_object_get(by_num, n), *motif = d2g_stack_field(row, "motif_suppression");
        if (!row || json_is_true(d2g_stack_field(row, "supprime")) == in ||
            (!in && (!json_is_string(motif) || strcmp(json_string_value(motif), "hors_filtre"))))
            same = 0;
    }
    json_decref(by_num);
    json_decref(rows);
    json_decref(list);
    return same;
}

static void wait_options(int proc, const char *doc, const char *table, const char *const *states,
                         int timeout_s) {
    int64_t end = d2g_clock_mono_ms() + timeout_s * 1000LL;
    while (!options_synced(proc, doc, table, states)) {
        if (d2g_clock_mono_ms() > end)
            fail_msg("%s/%s never matched DS's dossiers through the filter; see %s", doc, table,
                     F->env.dir);
        d2g_test_sleep_ms(300);
    }
}

/* A dossier of proc (the first whose number is not `not`) set to state, with extra fields. */
static json_int_t ds_set_dossier(int proc, json_int_t not, const char *state, const char *extra) {
    json_t *list = d2g_stack_ds_get(&F->env, proc, 0);
    json_int_t num = 0;
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(list, "dossiers"), i, d) {
        json_int_t n = json_integer_value(json_object_get(d, "number"));
        if (!num && n != not)
            num = n;
    }
    json_decref(list);
    assert_true(num > 0);
    char path[128], body[512];
    snprintf(path, sizeof(path), "/admin/procedures/%d/dossiers/%lld", proc, (long long)num);
    snprintf(body, sizeof(body), "{\"state\": \"%s\"%s}", state, extra);
    json_decref(d2g_stack_ds_do(&F->env, "PATCH", path, body));
    return num;
}

/* 400 bad_request whose message starts with want (the key at fault). */
static void expect_key(answer_t *a, const char *want) {
    const char *msg = json_string_value(json_object_get(a->json, "error"));
    if (a->status != 400 || !msg || strncmp(msg, want, strlen(want))) {
        fprintf(stderr, "expected 400 \"%s...\", got %ld %s\n", want, a->status, a->body);
        fail();
    }
    expect(a, 400, "bad_request");
}

static void test_options(void **state) {
    (void)state;
    char base[256], path[128], body[512];
    char *tok = mint("docO", AGENT_KEY, 0, 900000, base, sizeof(base));
    /* One dossier accepted with an avis, one in instruction: both matter below. */
    json_int_t acc = ds_set_dossier(PROC_OPT, 0, "accepte",
                                    ", \"avis\": [{\"id\": \"avis-opt\", \"question\": \"Budget ?\","
                                    " \"reponse\": \"Favorable\"}]");
    ds_set_dossier(PROC_OPT, acc, "en_instruction", "");

    /* Bad options: refused with the key at fault, nothing stored. */
    snprintf(body, sizeof(body), "{\"procedure\": %d, \"ds_token\": \"%s\", \"mapping\":"
             " {\"messages\": \"yes\"}}", PROC_OPT, AGENT_DS_TOKEN);
    expect_key(call("POST", "/api/v1/procedures", tok, base, body, "10.6.0.1"),
               "mapping.messages: must be true or false");
    snprintf(body, sizeof(body), "{\"procedure\": %d, \"ds_token\": \"%s\", \"filter\":"
             " {\"states\": [\"accepte\", \"brouillon\"]}}", PROC_OPT, AGENT_DS_TOKEN);
    expect_key(call("POST", "/api/v1/procedures", tok, base, body, "10.6.0.1"),
               "filter.states[1]: not a DS state");
    snprintf(path, sizeof(path), "/api/v1/procedures/%d", PROC_OPT);
    expect(call("GET", path, tok, base, NULL, "10.6.0.1"), 404, "not_connected");

    /* Connected with options: the reply shows them; the avis table; only accepted
     * dossiers unmarked. */
    snprintf(body, sizeof(body), "{\"procedure\": %d, \"ds_token\": \"%s\", \"mapping\":"
             " {\"avis\": true}, \"filter\": {\"states\": [\"accepte\"]}}", PROC_OPT, AGENT_DS_TOKEN);
    answer_t *a = call("POST", "/api/v1/procedures", tok, base, body, "10.6.0.2");
    assert_int_equal(a->status, 201);
    assert_true(json_is_true(json_object_get(json_object_get(a->json, "mapping"), "avis")));
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(json_object_get(a->json, "filter"), "states"), 0)),
                        "accepte");
    answer_free(a);
    const char *accepted[] = {"accepte", NULL};
    wait_options(PROC_OPT, "docO", "D2004", accepted, 60);
    int64_t end = d2g_clock_mono_ms() + 20000;
    while (d2g_stack_count(&F->env, "docO", "D2004_Avis", "dossier", acc) != 1) {
        assert_true(d2g_clock_mono_ms() < end);
        d2g_test_sleep_ms(300);
    }
    a = call("GET", path, tok, base, NULL, "10.6.0.3");
    assert_int_equal(a->status, 200);
    assert_true(json_is_true(json_object_get(json_object_get(a->json, "mapping"), "avis")));
    assert_non_null(json_object_get(json_object_get(a->json, "filter"), "states"));
    answer_free(a);

    /* Changed through the API: a bad value names its key; a new filter asks for a full
     * resync, after which the dossiers in instruction are unmarked too (unchanged in DS). */
    snprintf(path, sizeof(path), "/api/v1/procedures/%d/options", PROC_OPT);
    expect_key(call("POST", path, tok, base, "{\"mapping\": {\"avis\": 1}}", "10.6.0.4"),
               "mapping.avis: must be true or false");
    expect(call("POST", path, tok, base, "{\"ds_token\": \"x\"}", "10.6.0.4"), 400, "bad_request");
    a = call("POST", path, tok, base,
             "{\"filter\": {\"states\": [\"accepte\", \"en_instruction\"]}}", "10.6.0.4");
    assert_int_equal(a->status, 200);
    assert_true(json_is_true(json_object_get(a->json, "resync_requested")));
    assert_int_equal(json_array_size(json_object_get(json_object_get(a->json, "filter"), "states")), 2);
    assert_true(json_is_true(json_object_get(json_object_get(a->json, "mapping"), "avis"))); /* kept */
    answer_free(a);
    const char *wider[] = {"accepte", "en_instruction", NULL};
    wait_options(PROC_OPT, "docO", "D2004", wider, 60);

    /* The CLI shows them, refuses a bad value naming its key, sets the mapping alone
     * (no resync). */
    int st;
    char num[16];
    snprintf(num, sizeof(num), "%d", PROC_OPT);
    char *show[] = {D2G_CLI_BIN, "--config", F->config, "registry", "options", num, "--json", NULL};
    char *out = cli_argv(&st, show);
    assert_int_equal(st, 0);
    json_t *o = json_loads(out, 0, NULL);
    assert_true(json_is_true(json_object_get(json_object_get(o, "mapping"), "avis")));
    assert_int_equal(json_array_size(json_object_get(json_object_get(o, "filter"), "states")), 2);
    json_decref(o);
    free(out);
    char *bad[] = {D2G_CLI_BIN, "--config", F->config, "registry", "options", num, "--mapping",
                   "{\"geo_areas\": 1}", NULL};
    out = cli_argv(&st, bad);
    assert_int_equal(st, 2);
    assert_non_null(strstr(out, "mapping.geo_areas: must be true or false"));
    free(out);
    char *set[] = {D2G_CLI_BIN, "--config", F->config, "registry", "options", num, "--mapping",
                   "{\"avis\": true, \"geo_areas\": true}", "--json", NULL};
    out = cli_argv(&st, set);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "action=options outcome=done by=cli")); /* the audit line */
    o = strstr(out, "{\n") ? json_loads(strstr(out, "{\n"), 0, NULL) : NULL; /* after it */
    assert_true(json_is_true(json_object_get(json_object_get(o, "mapping"), "geo_areas")));
    assert_false(json_is_true(json_object_get(o, "resync_requested")));
    json_decref(o);
    free(out);
    free(tok);
}

static void test_rebuild(void **state) {
    (void)state;
    char base[256], path[128];
    char *tok = mint("docA", AGENT_KEY, 0, 900000, base, sizeof(base));
    assert_int_equal(d2g_testenv_redis_restart_empty(&F->env), 0);
    int st;
    char *out = cli(&st, F->config, "registry", "list", "--json");
    assert_int_equal(st, 0);
    json_t *l = json_loads(out, 0, NULL);
    json_t *e = json_array_get(json_object_get(l, "entries"), 0);
    assert_int_equal(json_integer_value(json_object_get(e, "procedure")), PROC);
    assert_string_equal(json_string_value(json_object_get(e, "state")), "active");
    assert_null(json_object_get(e, "ds_token")); /* never shown, even sealed */
    assert_true(json_is_null(json_object_get(e, "filter")));  /* connected without options */
    e = json_array_get(json_object_get(l, "entries"), 1);
    assert_int_equal(json_integer_value(json_object_get(e, "procedure")), PROC_OPT);
    assert_int_equal(json_array_size(json_object_get(json_object_get(e, "filter"), "states")), 2);
    assert_true(json_is_true(json_object_get(json_object_get(e, "mapping"), "geo_areas")));
    json_decref(l);
    free(out);
    snprintf(path, sizeof(path), "/api/v1/procedures/%d", PROC);
    expect(call("GET", path, tok, base, NULL, "10.3.0.1"), 200, NULL);
    /* The sync goes on after the Redis loss. */
    size_t before = grist_count("docA", "D2001");
    ds_new_dossier(PROC);
    assert_int_equal(wait_count("docA", "D2001", before + 1, 60), before + 1);
    free(tok);
}

static void test_rate_limit(void **state) {
    (void)state;
    /* Per address: 30 per minute. */
    int ok = 0;
    answer_t *a = NULL;
    for (int i = 0; i < 31; i++) {
        a = call("GET", "/api/v1/info", NULL, NULL, NULL, "10.9.9.9");
        if (a->status == 200)
            ok++;
        if (i < 30)
            answer_free(a);
    }
    assert_int_equal(ok, 30);
    assert_int_equal(a->status, 429);
    assert_string_equal(code_of(a), "rate_limited");
    assert_true(atoi(a->retry_after) >= 1);
    answer_free(a);
    /* Another address is not affected. */
    expect(call("GET", "/api/v1/info", NULL, NULL, NULL, "10.9.9.10"), 200, NULL);

    /* Per document: 20 actions per minute on docR, whatever the address. */
    char base[256], ip[32];
    char *tok = mint("docR", AGENT_KEY, 0, 900000, base, sizeof(base));
    int refused = 0, answered = 0;
    for (int i = 0; i < 21; i++) {
        snprintf(ip, sizeof(ip), "10.8.0.%d", i + 1);
        a = call("POST", "/api/v1/procedures/4242/pause", tok, base, NULL, ip);
        if (a->status == 429) {
            refused++;
            assert_true(atoi(a->retry_after) >= 1);
        } else {
            assert_int_equal(a->status, 404); /* checked, and not connected here */
            answered++;
        }
        answer_free(a);
    }
    assert_int_equal(answered, 20);
    assert_int_equal(refused, 1);
    free(tok);
}

static void test_cli_and_off(void **state) {
    (void)state;
    int st;
    char pstr[16];
    snprintf(pstr, sizeof(pstr), "%d", PROC);
    char *out = cli(&st, F->config, "registry", "pause", pstr);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "paused"));
    free(out);
    out = cli(&st, F->config, "registry", "list", NULL);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "paused"));
    free(out);
    out = cli(&st, F->config, "registry", "resume", pstr);
    assert_int_equal(st, 0);
    free(out);
    out = cli(&st, F->config, "registry", "pause", "99999");
    assert_int_equal(st, 2);
    free(out);
    snprintf(pstr, sizeof(pstr), "%d", PROC_OPT);
    out = cli(&st, F->config, "registry", "remove", pstr);
    assert_int_equal(st, 0);
    free(out);

    /* Disconnect from the widget: the entry goes, the next dossier does not arrive. */
    char base[256], path[128];
    char *tok = mint("docA", AGENT_KEY, 0, 900000, base, sizeof(base));
    snprintf(path, sizeof(path), "/api/v1/procedures/%d", PROC);
    answer_t *a = call("DELETE", path, tok, base, NULL, "10.4.0.1");
    assert_int_equal(a->status, 200);
    assert_true(json_is_true(json_object_get(a->json, "disconnected")));
    answer_free(a);
    expect(call("GET", path, tok, base, NULL, "10.4.0.1"), 404, "not_connected");
    d2g_test_sleep_ms(4000);
    size_t before = grist_count("docA", "D2001");
    ds_new_dossier(PROC);
    d2g_test_sleep_ms(6000);
    assert_int_equal(grist_count("docA", "D2001"), before);
    out = cli(&st, F->config, "registry", "list", "--json");
    json_t *l = json_loads(out, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(l, "entries")), 0);
    json_decref(l);
    free(out);

    /* Self-service off: a second producer on that configuration refuses actions. */
    d2g_test_proc_t off;
    assert_int_equal(d2g_test_proc_stop(&F->producer), 0);
    char *pargv[] = {D2G_PRODUCER_BIN, "--config", F->config_off, NULL};
    assert_int_equal(d2g_test_proc_spawn(&F->env, &off, "producer-off", pargv), 0);
    int up = 0;
    for (int i = 0; i < 100 && !up; i++) {
        char url[128], *resp = NULL;
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/info", F->port);
        up = d2g_test_http("GET", url, NULL, NULL, &resp) == 200 && strstr(resp, "\"self_service\":false");
        free(resp);
        if (!up)
            d2g_test_sleep_ms(100);
    }
    assert_true(up);
    expect(call("POST", "/api/v1/procedures", tok, base, connect_body, "10.5.0.1"), 403,
           "self_service_off");
    expect(call("GET", "/api/v1/procedures", tok, base, NULL, "10.5.0.1"), 200, NULL);
    free(tok);
}

/* Every byte of a directory's files. */
static char *slurp_dir(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *de;
    char *all = strdup("");
    size_t len = 0;
    while (d && (de = readdir(d))) {
        char p[700];
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        if (!strstr(de->d_name, ".log"))
            continue;
        FILE *f = fopen(p, "r");
        if (!f)
            continue;
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
            all = realloc(all, len + n + 1);
            memcpy(all + len, buf, n);
            len += n;
            all[len] = '\0';
        }
        fclose(f);
    }
    if (d)
        closedir(d);
    return all;
}

/* Every value in Redis, as text. */
static char *redis_dump(void) {
    redisContext *c = redisConnect("127.0.0.1", F->env.redis_port);
    assert_non_null(c);
    char *all = strdup("");
    size_t len = 0;
    redisReply *keys = redisCommand(c, "KEYS *");
    for (size_t i = 0; keys && i < keys->elements; i++) {
        const char *k = keys->element[i]->str;
        redisReply *t = redisCommand(c, "TYPE %s", k);
        redisReply *v = NULL;
        if (!strcmp(t->str, "string"))
            v = redisCommand(c, "GET %s", k);
        else if (!strcmp(t->str, "hash"))
            v = redisCommand(c, "HGETALL %s", k);
        else if (!strcmp(t->str, "zset"))
            v = redisCommand(c, "ZRANGE %s 0 -1", k);
        else if (!strcmp(t->str, "list"))
            v = redisCommand(c, "LRANGE %s 0 -1", k);
        else if (!strcmp(t->str, "set"))
            v = redisCommand(c, "SMEMBERS %s", k);
        freeReplyObject(t);
        if (!v)
            continue;
        for (size_t j = 0; j < (v->type == REDIS_REPLY_ARRAY ? v->elements : 1); j++) {
            redisReply *e = v->type == REDIS_REPLY_ARRAY ? v->element[j] : v;
            if (e->type != REDIS_REPLY_STRING)
                continue;
            all = realloc(all, len + e->len + strlen(k) + 3);
            memcpy(all + len, k, strlen(k));
            len += strlen(k);
            all[len++] = '=';
            memcpy(all + len, e->str, e->len);
            len += e->len;
            all[len++] = '\n';
            all[len] = '\0';
        }
        freeReplyObject(v);
    }
    freeReplyObject(keys);
    redisFree(c);
    return all;
}

static void assert_absent(const char *where, const char *text, const char *secret) {
    if (strstr(text, secret)) {
        fprintf(stderr, "a token appears in %s\n", where);
        fail();
    }
}

static void test_no_leak(void **state) {
    (void)state;
    /* Connect again, so that the registry holds the token while we look. */
    char base[256];
    char *tok = mint("docC", AGENT_KEY, 0, 900000, base, sizeof(base));
    (void)tok;
    char *logs = slurp_dir(F->env.dir);
    char *redis = redis_dump();
    int st;
    char *cli_list = cli(&st, F->config, "registry", "list", "--json");
    char *cli_status = cli(&st, F->config, "status", "--json", "--no-lag");
    d2g_test_msgs_t reg = {0}, dossiers = {0};
    assert_int_equal(d2g_test_kafka_read_all(&F->env, "ds2grist.registry", &reg), 0);
    assert_true(reg.n >= 4); /* connect, pause, resume, ..., the disconnect's tombstone */
    assert_int_equal(d2g_test_kafka_read_all(&F->env, "ds2grist.dossiers", &dossiers), 0);
    char *kafka = strdup("");
    size_t klen = 0;
    d2g_test_msgs_t *all[] = {&reg, &dossiers};
    for (int t = 0; t < 2; t++)
        for (size_t i = 0; i < all[t]->n; i++) {
            const char *v = all[t]->v[i].value ? all[t]->v[i].value : "";
            kafka = realloc(kafka, klen + strlen(v) + 2);
            memcpy(kafka + klen, v, strlen(v));
            klen += strlen(v);
            kafka[klen++] = '\n';
            kafka[klen] = '\0';
        }
    /* No dossier of the procedure connected live was dead-lettered (a worker whose reload
     * had not brought it yet sent it to the retry topic instead). */
    d2g_test_msgs_t dlq = {0};
    assert_int_equal(d2g_test_kafka_read_all(&F->env, "ds2grist.dlq", &dlq), 0);
    assert_int_equal(dlq.n, 0);
    d2g_test_msgs_free(&dlq);
    /* The registry copy holds the sealed token, not the token. */
    assert_non_null(strstr(kafka, "\"ds_token\":\"sb1:"));
    const char *secrets[] = {AGENT_DS_TOKEN, OTHER_DS_TOKEN, D2G_STACK_DS_TOKEN, ENC_KEY};
    for (size_t s = 0; s < 4; s++) {
        assert_absent("the API answers and CLI outputs", F->transcript, secrets[s]);
        assert_absent("the logs", logs, secrets[s]);
        assert_absent("Redis", redis, secrets[s]);
        assert_absent("Kafka", kafka, secrets[s]);
        assert_absent("registry list", cli_list, secrets[s]);
        assert_absent("status", cli_status, secrets[s]);
    }
    size_t i;
    json_t *t;
    json_array_foreach(F->tokens, i, t) {
        const char *g = json_string_value(t);
        assert_absent("the API answers and CLI outputs", F->transcript, g);
        assert_absent("the logs", logs, g);
        assert_absent("Redis", redis, g);
        assert_absent("Kafka", kafka, g);
    }
    /* The audit lines are there: document, procedure, action; no token. */
    assert_non_null(strstr(logs, "onboarding_audit"));
    assert_non_null(strstr(logs, "action=connect outcome=done"));
    assert_non_null(strstr(logs, "action=disconnect outcome=done"));
    assert_non_null(strstr(logs, "code=grist_token_expired"));
    d2g_test_msgs_free(&reg);
    d2g_test_msgs_free(&dossiers);
    free(kafka);
    free(cli_list);
    free(cli_status);
    free(redis);
    free(logs);
    free(tok);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    d2g_test_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),   cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_options),    cmocka_unit_test(test_rebuild),    cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_cli_and_off), cmocka_unit_test(test_no_leak),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    curl_global_cleanup();
    return rc;
}
