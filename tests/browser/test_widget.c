/*
 * test_widget.c - the onboarding widget (widget/) in a real browser, against the real service.
 *
 * Starts what an agent's widget talks to, as the other integration tests do (tests/support): a real
 * redis-server, the Kafka mock broker, the DS emulator (the agent's procedure, readable with the
 * agent's DS token only; a procedure of the configuration file, read with the platform's token), the
 * Grist emulator (one document: the platform's key owns it, the agent edits it, a colleague views it;
 * it also serves the harness standing in for Grist's page, tests/browser/harness), then
 * ds2grist-producer with its onboarding listener serving the widget's files from the source tree, and a
 * ds2grist-worker. Then runs tests/browser/widget.test.js (headless Chromium driven by playwright-core,
 * its steps listed in its header) with the addresses in its environment, and afterwards checks that
 * the agent's DS tokens appear in no output of any process (service logs, emulators, the browser
 * test's own output). The browser test saves its screenshot in the build tree
 * (tests/browser/onboarding-widget.png beside this test's binary), copied by hand to
 * docs/onboarding-widget.png.
 */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stack.h"

/* The agent's secrets, distinctive so that every output can be searched for them. */
#define AGENT_DS_TOKEN "agent-ds-TOKEN-9c41e7"
#define BAD_DS_TOKEN "wrong-ds-TOKEN-0b77aa"
#define AGENT_KEY "agent-grist-key-31d8"
#define VIEWER_KEY "viewer-grist-key-77ab"
#define REGISTRY_KEY "4f1c0d2e9b8a7766554433221100ffeeddccbbaa99887766554433221100abcd"
#define PROCEDURE 4101
#define FILE_PROCEDURE 4102

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int port = -1;
    if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
        !getsockname(fd, (struct sockaddr *)&a, &len))
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* 1 if the file holds needle. */
static int file_contains(const char *path, const char *needle) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t cap = 1 << 20, n = 0, k = strlen(needle);
    char *buf = malloc(cap + 1);
    int found = 0;
    size_t got;
    /* Chunks overlapping by the needle's length, so no occurrence is cut in two. */
    while (!found && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        buf[n] = '\0';
        found = memmem(buf, n, needle, k) != NULL;
        if (n > k) {
            memmove(buf, buf + n - k, k);
            n = k;
        }
    }
    free(buf);
    fclose(f);
    return found;
}

static void print_file(const char *path) {
    FILE *f = fopen(path, "r");
    char line[4096];
    if (!f)
        return;
    while (fgets(line, sizeof(line), f))
        fputs(line, stdout);
    fclose(f);
    fflush(stdout);
}

static void test_widget_in_browser(void **state) {
    d2g_testenv_t *env = *state;
    char cfg[600], path[1200], url[256], *resp = NULL;

    assert_int_equal(
        d2g_testenv_start_ds(env, "{\"procedures\": ["
                                  "{\"number\": 4101, \"dossiers\": 40, \"title\": \"Aides à la rénovation énergétique\"},"
                                  "{\"number\": 4102, \"dossiers\": 6, \"title\": \"Subventions culture\"}],"
                                  " \"tokens\": ["
                                  "{\"name\": \"platform\", \"secret\": \"" D2G_STACK_DS_TOKEN "\", \"procedures\": [4102]},"
                                  "{\"name\": \"agent\", \"secret\": \"" AGENT_DS_TOKEN "\", \"procedures\": [4101]}]}"),
        0);
    char grist_cfg[1024];
    snprintf(grist_cfg, sizeof(grist_cfg),
             "{\"docs\": [{\"id\": \"docA\", \"keys\": [\"" D2G_STACK_GRIST_KEY "\"]}],"
             " \"users\": [{\"key\": \"" AGENT_KEY "\", \"docs\": [{\"id\": \"docA\", \"access\": \"editors\"}]},"
             "            {\"key\": \"" VIEWER_KEY "\", \"docs\": [{\"id\": \"docA\", \"access\": \"viewers\"}]}],"
             " \"staticDir\": \"%s/tests/browser/harness\"}",
             D2G_SOURCE_DIR);
    assert_int_equal(d2g_testenv_start_grist(env, grist_cfg), 0);

    int port = free_port();
    assert_true(port > 0);
    setenv("D2G_TEST_REGISTRY_KEY", REGISTRY_KEY, 1);
    char extra[1024];
    snprintf(extra, sizeof(extra),
             "\"defaults\": {\"poll_interval_s\": 1},"
             " \"registry\": {\"encryption_key\": {\"env\": \"D2G_TEST_REGISTRY_KEY\"}},"
             " \"onboarding\": {\"listen\": \"127.0.0.1:%d\", \"static_dir\": \"%s/widget\","
             "   \"platform_account\": \"ds2grist@plateforme.example.fr\","
             "   \"per_document_per_minute\": 200, \"per_address_per_minute\": 5000}",
             port, D2G_SOURCE_DIR);
    assert_int_equal(d2g_test_write_config(env, "config.json",
                                           "[{\"number\": 4102, \"ds_token\": \"main\", \"grist_server\": \"g\","
                                           "  \"document\": \"docA\", \"table_prefix\": \"Culture\"}]",
                                           400, 8, extra, cfg, sizeof(cfg)),
                     0);
    d2g_test_proc_t producer = {0}, worker = {0}, browser = {0};
    d2g_stack_spawn(env, &producer, D2G_PRODUCER_BIN, "producer", cfg);
    d2g_stack_spawn(env, &worker, D2G_WORKER_BIN, "worker", cfg);

    /* The listener answers once the producer has started. */
    char onboarding[64];
    snprintf(onboarding, sizeof(onboarding), "http://127.0.0.1:%d", port);
    snprintf(url, sizeof(url), "%s/api/v1/info", onboarding);
    int st = -1;
    for (int i = 0; i < 300 && st != 200; i++) {
        free(resp);
        resp = NULL;
        st = d2g_test_http("GET", url, NULL, NULL, &resp);
        if (st != 200)
            d2g_test_sleep_ms(100);
    }
    free(resp);
    assert_int_equal(st, 200);

    char ds_admin[64], procedure[16], file_procedure[16];
    snprintf(ds_admin, sizeof(ds_admin), "http://127.0.0.1:%d", env->ds_port);
    snprintf(procedure, sizeof(procedure), "%d", PROCEDURE);
    snprintf(file_procedure, sizeof(file_procedure), "%d", FILE_PROCEDURE);
    setenv("D2G_ONBOARDING_URL", onboarding, 1);
    setenv("D2G_GRIST_URL", env->grist_url, 1);
    setenv("D2G_DS_ADMIN_URL", ds_admin, 1);
    setenv("D2G_GRIST_DOC", "docA", 1);
    setenv("D2G_AGENT_KEY", AGENT_KEY, 1);
    setenv("D2G_VIEWER_KEY", VIEWER_KEY, 1);
    setenv("D2G_PROCEDURE", procedure, 1);
    setenv("D2G_TABLE_PREFIX", "Renovation", 1);
    setenv("D2G_FILE_PROCEDURE", file_procedure, 1);
    setenv("D2G_DS_TOKEN_GOOD", AGENT_DS_TOKEN, 1);
    setenv("D2G_DS_TOKEN_BAD", BAD_DS_TOKEN, 1);
    setenv("D2G_ARTIFACTS", D2G_ARTIFACTS_DIR, 1);
    snprintf(path, sizeof(path), "%s/tests/browser/widget.test.js", D2G_SOURCE_DIR);
    char *argv[] = {"node", path, NULL};
    assert_int_equal(d2g_test_proc_spawn(env, &browser, "browser", argv), 0);
    int status = -1;
    pid_t r = waitpid(browser.pid, &status, 0);
    browser.pid = 0;
    snprintf(path, sizeof(path), "%s/browser.log", env->dir);
    print_file(path);
    assert_int_equal(r > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);

    /* The services stopped (their last words written), no DS token of the agent in any output. */
    d2g_test_proc_stop(&worker);
    d2g_test_proc_stop(&producer);
    DIR *d = opendir(env->dir);
    assert_non_null(d);
    struct dirent *de;
    int files = 0;
    while ((de = readdir(d))) {
        if (!strstr(de->d_name, ".log"))
            continue;
        snprintf(path, sizeof(path), "%s/%s", env->dir, de->d_name);
        files++;
        if (file_contains(path, AGENT_DS_TOKEN) || file_contains(path, BAD_DS_TOKEN))
            fail_msg("a DS token of the agent in %s", de->d_name);
    }
    closedir(d);
    printf("# %d process outputs searched for the agent's DS tokens: none\n", files);
    assert_true(files >= 5); /* redis, kafka, the two emulators, producer, worker, browser */
}

int main(void) {
    d2g_test_filter_from_env();
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_widget_in_browser),
    };
    return cmocka_run_group_tests(tests, d2g_stack_setup_kafka, d2g_stack_teardown);
}
