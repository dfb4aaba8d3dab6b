/*
 * test_attachments.c - procedures[].mapping.attachments end to end: the real producer
 * and worker against the DS emulator (its files served at their signed URLs, with their
 * checksums, scans and expiry) and the Grist emulator (POST /attachments), a real
 * redis-server and the Kafka mock broker.
 *
 *   copies   a safe file lands as a Grist attachment whose bytes are DS's file, in the
 *            champ's Attachments cell ["L", id]; the same file in a second dossier is
 *            uploaded once (same id); a pending and an oversized file are not copied and
 *            the text cell says why, so does a download whose bytes are not DS's checksum; a changed file (new checksum) is copied once, and a
 *            later version with the same file copies nothing; an expired URL (403) still
 *            writes the dossier, with the reason and no attachment, and the next version
 *            copies the file
 *   no_wait  a slow download (the DS emulator's fileLatencyMs) holds up only its own
 *            batch: another document's dossier is written meanwhile
 *   budget   worker.attachment_budget_bytes reached: the next file is not copied, its
 *            text cell says so, the dossier is written
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds2grist/clock.h"
#include "stack.h"

#define TOKEN D2G_STACK_DS_TOKEN
#define GKEY D2G_STACK_GRIST_KEY
#define PROC 1401

static const char *PROCS =
    "[{\"number\": 1401, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docA\","
    " \"table_prefix\": \"Pieces\", \"mapping\": {\"attachments\": true}}]";

/* The champDescriptorId of the procedure's first PieceJustificative champ. */
static char pj[128];

static json_int_t create(d2g_testenv_t *env, const char *files) {
    char body[1024];
    snprintf(body, sizeof(body), "{\"champs\": {\"%s\": %s}}", pj, files);
    json_t *r = d2g_stack_ds_do(env, "POST", "/admin/procedures/1401/dossiers", body);
    json_int_t n = json_integer_value(json_object_get(r, "number"));
    json_decref(r);
    return n;
}

static void patch(d2g_testenv_t *env, json_int_t num, const char *files) {
    char body[1024], path[128];
    snprintf(body, sizeof(body), "{\"champs\": {\"%s\": %s}}", pj, files);
    snprintf(path, sizeof(path), "/admin/procedures/1401/dossiers/%lld", (long long)num);
    json_decref(d2g_stack_ds_do(env, "PATCH", path, body));
}

/* The row of dossier num, or NULL (new reference). */
static json_t *row_of(d2g_testenv_t *env, json_int_t num) {
    json_t *rows = d2g_stack_grist_rows(env, "docA", "Pieces"), *r, *out = NULL;
    size_t i;
    json_array_foreach(rows, i, r) if (json_integer_value(d2g_stack_field(r, "numero")) == num) out =
        json_incref(r);
    json_decref(rows);
    return out;
}

/* The row's cell of the Attachments column (<champ>_fichiers) and of its text column. */
static json_t *cell(json_t *row, int text) {
    json_t *f = json_object_get(row, "fields");
    const char *k;
    json_t *v;
    json_object_foreach(f ? f : row, k, v) {
        size_t n = strlen(k);
        if (n > 9 && !strcmp(k + n - 9, "_fichiers")) {
            if (!text)
                return v;
            char base[128];
            snprintf(base, sizeof(base), "%.*s", (int)(n - 9), k);
            return d2g_stack_field(row, base);
        }
    }
    return NULL;
}

/* The document's attachments, through Grist's API (GET /attachments). */
static size_t n_attachments(d2g_testenv_t *env) {
    char url[256], *body = NULL;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/docs/docA/attachments", env->grist_port);
    assert_int_equal(d2g_test_http("GET", url, GKEY, NULL, &body), 200);
    json_t *a = json_loads(body, 0, NULL);
    free(body);
    size_t n = json_array_size(json_object_get(a, "records"));
    json_decref(a);
    return n;
}

/* Waits until dossier num's row holds a written version satisfying want. */
static json_t *wait_row(d2g_testenv_t *env, json_int_t num, int (*want)(json_t *row, const void *arg),
                        const void *arg) {
    int64_t end = d2g_clock_mono_ms() + 60000;
    for (;;) {
        json_t *r = row_of(env, num);
        if (r && want(r, arg))
            return r;
        if (d2g_clock_mono_ms() >= end) {
            char *t = r ? json_dumps(r, JSON_COMPACT) : NULL;
            printf("# dossier %lld: %s\n", (long long)num, t ? t : "no row");
            free(t);
        }
        json_decref(r);
        assert_true(d2g_clock_mono_ms() < end);
        d2g_test_sleep_ms(300);
    }
}

static int has_ids(json_t *row, const void *arg) {
    json_t *c = cell(row, 0);
    return json_is_array(c) && json_array_size(c) == (size_t)(intptr_t)arg;
}
static int text_has(json_t *row, const void *arg) {
    const char *t = json_string_value(cell(row, 1));
    return t && strstr(t, arg);
}
static int id_other_than(json_t *row, const void *arg) {
    json_t *c = cell(row, 0);
    return json_array_size(c) == 2 && json_integer_value(json_array_get(c, 1)) != *(const json_int_t *)arg;
}

static int written_after(json_t *row, const void *arg) {
    return json_integer_value(d2g_stack_field(row, "date_derniere_modification")) > *(const json_int_t *)arg;
}

/* The bytes of Grist attachment id, through Grist's API. */
static char *download(d2g_testenv_t *env, json_int_t id) {
    char url[256], *body = NULL;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/docs/docA/attachments/%lld/download",
             env->grist_port, (long long)id);
    assert_int_equal(d2g_test_http("GET", url, GKEY, NULL, &body), 200);
    return body;
}

static void start_stack(d2g_testenv_t *env) {
    assert_int_equal(d2g_testenv_start_ds(env, "{\"seed\": 5, \"fileBaseUrl\": \"self\", \"procedures\":"
                                               " [{\"number\": 1401, \"dossiers\": 0}], \"tokens\": [{\"name\":"
                                               " \"main\", \"secret\": \"" TOKEN "\", \"procedures\": \"*\"}]}"),
                     0);
    assert_int_equal(d2g_testenv_start_grist(env, "{\"docs\": [{\"id\": \"docA\", \"keys\": [\"" GKEY "\"]}]}"), 0);
    /* the form's PieceJustificative champ, from a first dossier */
    json_t *r = d2g_stack_ds_do(env, "POST", "/admin/procedures/1401/dossiers", "{}");
    json_t *full = d2g_stack_ds_get(env, PROC, json_integer_value(json_object_get(r, "number")));
    json_decref(r);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(full, "champs"), i, c) if (!pj[0] && !strcmp(json_string_value(json_object_get(c, "__typename")), "PieceJustificativeChamp"))
        snprintf(pj, sizeof(pj), "%s", json_string_value(json_object_get(c, "champDescriptorId")));
    json_decref(full);
    assert_true(pj[0]);
}

static void test_copies(void **state) {
    d2g_testenv_t *env = *state;
    char cfg[600];
    d2g_test_proc_t producer, worker;
    start_stack(env);

    json_int_t a = create(env, "[{\"key\": \"a\", \"filename\": \"devis.pdf\", \"content\": \"le devis de A\","
                               " \"virusScanResult\": \"safe\"}]");
    json_int_t b = create(env, "[{\"key\": \"b\", \"filename\": \"devis-copie.pdf\", \"content\": \"le devis de A\","
                               " \"virusScanResult\": \"safe\"}]");
    json_int_t cc = create(env, "[{\"key\": \"c1\", \"filename\": \"scan.pdf\", \"content\": \"pas encore vu\","
                                " \"virusScanResult\": \"pending\"},"
                                " {\"key\": \"c2\", \"filename\": \"gros.pdf\", \"size\": 6000, \"virusScanResult\": \"safe\"},"
                                " {\"key\": \"c3\", \"filename\": \"faux.pdf\", \"content\": \"autre chose\","
                                "  \"checksum\": \"AAAAAAAAAAAAAAAAAAAAAA==\", \"virusScanResult\": \"safe\"}]");
    const char *extra = "\"defaults\": {\"poll_interval_s\": 1}, \"worker\": {\"attachment_max_bytes\": 5000}";
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", PROCS, 400, 8, extra, cfg, sizeof(cfg)), 0);
    d2g_stack_spawn(env, &producer, D2G_PRODUCER_BIN, "producer", cfg);
    d2g_stack_spawn(env, &worker, D2G_WORKER_BIN, "worker", cfg);
    assert_int_equal(d2g_stack_wait_synced(env, "docA", "Pieces", PROC, 90), 4);

    /* A's file is in Grist, byte for byte; B's (the same checksum) is the same attachment */
    json_t *ra = wait_row(env, a, has_ids, (void *)(intptr_t)2);
    json_int_t id_a = json_integer_value(json_array_get(cell(ra, 0), 1));
    char *bytes = download(env, id_a);
    assert_string_equal(bytes, "le devis de A");
    free(bytes);
    json_t *rb = wait_row(env, b, has_ids, (void *)(intptr_t)2);
    assert_int_equal(json_integer_value(json_array_get(cell(rb, 0), 1)), id_a);
    assert_int_equal(n_attachments(env), 1);
    char url[256], *meta = NULL;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/docs/docA/tables/_grist_Attachments/records",
             env->grist_port);
    assert_int_equal(d2g_test_http("GET", url, GKEY, NULL, &meta), 200);
    json_t *m = json_loads(meta, 0, NULL), *m0 = json_object_get(json_array_get(json_object_get(m, "records"), 0), "fields");
    const char *fname = json_string_value(json_object_get(m0, "fileName"));
    assert_true(!strcmp(fname, "devis.pdf") || !strcmp(fname, "devis-copie.pdf")); /* the first one's name */
    assert_int_equal(json_integer_value(json_object_get(m0, "fileSize")), 13); /* DS's byteSizeBigInt */
    json_decref(m);
    free(meta);
    /* C: nothing copied, and the text says why, per file */
    json_t *rc = wait_row(env, cc, text_has, "analyse antivirus");
    assert_true(json_array_size(cell(rc, 0)) <= 1); /* ["L"], which Grist keeps as null */
    assert_non_null(strstr(json_string_value(cell(rc, 1)), "gros.pdf : non copié : plus grand"));
    /* bytes that are not the file DS describes (its checksum) are not kept */
    assert_non_null(strstr(json_string_value(cell(rc, 1)), "faux.pdf : non copié : le fichier reçu ne correspond pas"));
    printf("# copies: 1 upload for 2 dossiers; C's text:\n#   %s\n", json_string_value(cell(rc, 1)));
    json_decref(ra);
    json_decref(rb);
    json_decref(rc);

    /* A's file changed in DS: copied once; a later version with the same file: nothing */
    patch(env, a, "[{\"key\": \"a\", \"filename\": \"devis.pdf\", \"content\": \"le devis de A, v2\","
                  " \"virusScanResult\": \"safe\"}]");
    ra = wait_row(env, a, id_other_than, &id_a);
    json_int_t id_a2 = json_integer_value(json_array_get(cell(ra, 0), 1));
    bytes = download(env, id_a2);
    assert_string_equal(bytes, "le devis de A, v2");
    free(bytes);
    assert_int_equal(n_attachments(env), 2);
    json_int_t seen = json_integer_value(d2g_stack_field(ra, "date_derniere_modification"));
    json_decref(ra);
    d2g_test_sleep_ms(1100); /* a later second: the next version's date differs */
    patch(env, a, "[{\"key\": \"a\", \"filename\": \"devis.pdf\", \"content\": \"le devis de A, v2\","
                  " \"virusScanResult\": \"safe\"}]");
    ra = wait_row(env, a, written_after, &seen);
    assert_int_equal(json_integer_value(json_array_get(cell(ra, 0), 1)), id_a2);
    json_decref(ra);
    assert_int_equal(n_attachments(env), 2);

    /* DS's URLs expire before the worker downloads: B is written, its file not copied */
    json_decref(d2g_stack_ds_do(env, "POST", "/admin/config", "{\"fileUrlTtlS\": -10}"));
    patch(env, b, "[{\"key\": \"b\", \"filename\": \"devis-b.pdf\", \"content\": \"le devis propre de B\","
                  " \"virusScanResult\": \"safe\"}]");
    rb = wait_row(env, b, text_has, "lien expiré");
    assert_true(json_array_size(cell(rb, 0)) <= 1);
    assert_int_equal(n_attachments(env), 2);
    json_decref(rb);
    /* ... and the next version copies it */
    json_decref(d2g_stack_ds_do(env, "POST", "/admin/config", "{\"fileUrlTtlS\": 3600}"));
    patch(env, b, "[{\"key\": \"b\", \"filename\": \"devis-b.pdf\", \"content\": \"le devis propre de B\","
                  " \"virusScanResult\": \"safe\"}]");
    rb = wait_row(env, b, has_ids, (void *)(intptr_t)2);
    bytes = download(env, json_integer_value(json_array_get(cell(rb, 0), 1)));
    assert_string_equal(bytes, "le devis propre de B");
    free(bytes);
    json_decref(rb);
    assert_int_equal(n_attachments(env), 3);

    /* An agent removes the attachments no cell uses any more (Grist's "remove unused
     * attachments"): A's first file, which only the worker's memory of copies still names.
     * A new dossier with that same file gets a copy that is in the document, not the
     * forgotten id (a broken attachment in the agent's cell). */
    char *rm = NULL;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/docs/docA/attachments/removeUnused?expiredonly=0",
             env->grist_port);
    assert_int_equal(d2g_test_http("POST", url, GKEY, NULL, &rm), 200);
    free(rm);
    assert_int_equal(n_attachments(env), 2);
    json_int_t dd = create(env, "[{\"key\": \"d\", \"filename\": \"devis-d.pdf\", \"content\": \"le devis de A\","
                                " \"virusScanResult\": \"safe\"}]");
    json_t *rd = wait_row(env, dd, has_ids, (void *)(intptr_t)2);
    json_int_t id_d = json_integer_value(json_array_get(cell(rd, 0), 1));
    printf("# copies: A's first copy (%lld) removed by the agent; the same file in a new dossier: %lld\n",
           (long long)id_a, (long long)id_d);
    assert_true(id_d != id_a);
    bytes = download(env, id_d);
    assert_string_equal(bytes, "le devis de A");
    free(bytes);
    json_decref(rd);
    assert_int_equal(n_attachments(env), 3);

    /* the signed URLs never reach a log */
    char path[600], *log = NULL;
    snprintf(path, sizeof(path), "%s/worker.log", env->dir);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    rewind(fp);
    log = calloc(1, (size_t)len + 1);
    assert_int_equal(fread(log, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    assert_null(strstr(log, "X-Amz-Signature"));
    assert_non_null(strstr(log, "attachment_download_failed"));
    free(log);
    assert_int_equal(d2g_test_proc_stop(&worker), 0);
    assert_int_equal(d2g_test_proc_stop(&producer), 0);
}

static void test_budget(void **state) {
    d2g_testenv_t *env = *state;
    char cfg[600];
    d2g_test_proc_t producer, worker;
    start_stack(env);
    json_int_t x = create(env, "[{\"key\": \"x\", \"filename\": \"x.pdf\", \"content\": \"fichier de X.\","
                               " \"virusScanResult\": \"safe\"}]");
    const char *extra = "\"defaults\": {\"poll_interval_s\": 1}, \"worker\": {\"attachment_budget_bytes\": 20}";
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", PROCS, 400, 8, extra, cfg, sizeof(cfg)), 0);
    d2g_stack_spawn(env, &producer, D2G_PRODUCER_BIN, "producer", cfg);
    d2g_stack_spawn(env, &worker, D2G_WORKER_BIN, "worker", cfg);
    json_decref(wait_row(env, x, has_ids, (void *)(intptr_t)2)); /* 13 bytes of 20 */
    json_int_t y = create(env, "[{\"key\": \"y\", \"filename\": \"y.pdf\", \"content\": \"fichier de Y.\","
                               " \"virusScanResult\": \"safe\"}]");
    json_t *ry = wait_row(env, y, text_has, "budget de pièces jointes du document atteint");
    assert_true(json_array_size(cell(ry, 0)) <= 1);
    json_decref(ry);
    assert_int_equal(n_attachments(env), 1);
    assert_int_equal(d2g_test_proc_stop(&worker), 0);
    assert_int_equal(d2g_test_proc_stop(&producer), 0);
}

static void test_no_wait(void **state) {
    d2g_testenv_t *env = *state;
    char cfg[900];
    d2g_test_proc_t producer, worker;
    start_stack(env);
    json_decref(d2g_testenv_grist_admin(env, "POST", "/docs", "{\"id\": \"docB\", \"keys\": [\"" GKEY "\"]}"));
    json_decref(d2g_stack_ds_do(env, "POST", "/admin/procedures", "{\"number\": 1402, \"dossiers\": 0}"));
    const char *procs =
        "[{\"number\": 1401, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docA\","
        " \"table_prefix\": \"Pieces\", \"mapping\": {\"attachments\": true}},"
        " {\"number\": 1402, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docB\","
        " \"table_prefix\": \"Autres\"}]";
    const char *extra = "\"defaults\": {\"poll_interval_s\": 1}";
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", procs, 400, 8, extra, cfg, sizeof(cfg)), 0);
    d2g_stack_spawn(env, &producer, D2G_PRODUCER_BIN, "producer", cfg);
    d2g_stack_spawn(env, &worker, D2G_WORKER_BIN, "worker", cfg);
    assert_int_equal(d2g_stack_wait_synced(env, "docA", "Pieces", PROC, 90), 1); /* start_stack's dossier */
    json_decref(d2g_stack_ds_do(env, "POST", "/admin/config", "{\"fileLatencyMs\": 15000}"));
    json_int_t a = create(env, "[{\"key\": \"lent\", \"filename\": \"lent.pdf\", \"content\": \"servi lentement\","
                               " \"virusScanResult\": \"safe\"}]");
    d2g_test_sleep_ms(1500); /* polled: its download has begun */
    int64_t t0 = d2g_clock_mono_ms();
    json_decref(d2g_stack_ds_do(env, "POST", "/admin/procedures/1402/dossiers", "{}"));
    size_t n = d2g_stack_wait_synced(env, "docB", "Autres", 1402, 30);
    int64_t took = d2g_clock_mono_ms() - t0;
    assert_int_equal(n, 1);
    json_t *ra = row_of(env, a);
    printf("# no_wait: docB's dossier written in %lld ms while docA's file downloads (%s)\n",
           (long long)took, ra ? "docA written already" : "docA not written yet");
    assert_null(ra); /* its batch still waits for the file */
    assert_true(took < 12000);
    ra = wait_row(env, a, has_ids, (void *)(intptr_t)2);
    json_decref(ra);
    assert_int_equal(d2g_test_proc_stop(&worker), 0);
    assert_int_equal(d2g_test_proc_stop(&producer), 0);
}

int main(void) {
    d2g_test_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_copies, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_budget, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_no_wait, d2g_stack_setup_kafka, d2g_stack_teardown),
    };
    return cmocka_run_group_tests_name("attachments", tests, NULL, NULL);
}
