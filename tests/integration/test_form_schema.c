/*
 * test_form_schema.c - the schema before the first dossier (issue #13), against
 * the real producer and worker, the DS and Grist emulators, a real redis-server
 * and the Kafka mock broker.
 *
 *   empty_procedure  a procedure with no dossier in DS: after start its document
 *                    holds the dossiers table with a column per champ and
 *                    annotation of the form (its type, its description) and a
 *                    child table per repetition block, and no row
 *   form_change      a champ published in a new revision becomes a column while
 *                    DS still has no dossier
 *   dossiers_land    then dossiers arrive: their cells land in those same columns
 *                    and child tables, none is made twice
 *   parked_document  a document refusing the key: its lane parks, no retry loop,
 *                    another document syncs meanwhile; the schema once it works
 *   added_live       a procedure added by a configuration reload gets its table
 *   refused_change   Grist refuses the form's table: not recorded, tried again a
 *                    minute later, made once Grist takes it
 *
 * The three run in one stack (one test function): each step needs the last.
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
#define PROC 1301

static const char *PROCS =
    "[{\"number\": 1301, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docA\", "
    "\"table_prefix\": \"Aides\"}]";

/* GET /api/docs/docA/<path>: the answer, NULL on a non-200. */
static json_t *grist_api(d2g_testenv_t *env, const char *path) {
    char url[400];
    snprintf(url, sizeof(url), "%s/api/docs/docA%s", env->grist_url, path);
    char *resp = NULL;
    int st = d2g_test_http("GET", url, GKEY, NULL, &resp);
    json_t *j = st == 200 && resp ? json_loads(resp, 0, NULL) : NULL;
    free(resp);
    return j;
}

/* The table's columns ({id, fields}), NULL if it does not exist. */
static json_t *columns(d2g_testenv_t *env, const char *table) {
    char path[200];
    snprintf(path, sizeof(path), "/tables/%s/columns", table);
    json_t *j = grist_api(env, path);
    json_t *c = j ? json_incref(json_object_get(j, "columns")) : NULL;
    json_decref(j);
    return c;
}

static json_t *column_labelled(json_t *cols, const char *label) {
    size_t i;
    json_t *c;
    json_array_foreach(cols, i, c) {
        const char *l = json_string_value(json_object_get(json_object_get(c, "fields"), "label"));
        if (l && !strcmp(l, label))
            return c;
    }
    return NULL;
}

static const char *col_field(json_t *c, const char *name) {
    return json_string_value(json_object_get(json_object_get(c, "fields"), name));
}

/* The child tables of Aides, sorted ids (an array of strings). */
static json_t *child_tables(d2g_testenv_t *env) {
    json_t *j = grist_api(env, "/tables"), *out = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(j, "tables"), i, t) {
        const char *id = json_string_value(json_object_get(t, "id"));
        if (id && !strncmp(id, "Aides_", 6))
            json_array_append_new(out, json_string(id));
    }
    json_decref(j);
    return out;
}

/* The procedure's published form, as DS's API gives it. */
static json_t *ds_revision(d2g_testenv_t *env) {
    char body[1200];
    snprintf(body, sizeof(body),
             "{\"query\": \"query { demarche(number: %d) { activeRevision { id"
             " champDescriptors { __typename id label description ... on RepetitionChampDescriptor"
             " { champDescriptors { __typename id label description } } }"
             " annotationDescriptors { __typename id label description ... on RepetitionChampDescriptor"
             " { champDescriptors { __typename id label description } } } } } }\"}",
             PROC);
    char *resp = NULL;
    assert_int_equal(d2g_test_http("POST", env->ds_url, TOKEN, body, &resp), 200);
    json_t *j = json_loads(resp, 0, NULL);
    free(resp);
    json_t *rev = json_incref(json_object_get(json_object_get(json_object_get(j, "data"), "demarche"),
                                              "activeRevision"));
    json_decref(j);
    assert_non_null(rev);
    return rev;
}

static int no_column(const char *typename) {
    return !strcmp(typename, "HeaderSectionChampDescriptor") || !strcmp(typename, "ExplicationChampDescriptor");
}

/* The Grist type of the kinds whose type is certain (the others: Text and variants). */
static const char *expected_type(const char *typename) {
    static const char *const t[][2] = {
        {"DateChampDescriptor", "Date"}, {"DatetimeChampDescriptor", "DateTime:Europe/Paris"},
        {"IntegerNumberChampDescriptor", "Int"}, {"DecimalNumberChampDescriptor", "Numeric"},
        {"CheckboxChampDescriptor", "Bool"}, {"YesNoChampDescriptor", "Bool"},
        {"DropDownListChampDescriptor", "Choice"},
        {"MultipleDropDownListChampDescriptor", "ChoiceList"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (!strcmp(t[i][0], typename))
            return t[i][1];
    return NULL;
}

/* A champ renamed in DS keeps its column and the column its label (the writer
 * never relabels): its new label is looked for under its old one. */
static const char *renamed_old, *renamed_new;

/* 1 if the document holds every column and child table of the form (asserts
 * types and descriptions of those it holds when final). */
static int holds_form(d2g_testenv_t *env, json_t *rev, int final) {
    json_t *cols = columns(env, "Aides");
    json_t *kids = child_tables(env);
    int ok = cols != NULL;
    size_t blocks = 0;
    for (int annot = 0; ok && annot < 2; annot++) {
        size_t i;
        json_t *d;
        json_array_foreach(json_object_get(rev, annot ? "annotationDescriptors" : "champDescriptors"), i, d) {
            const char *tn = json_string_value(json_object_get(d, "__typename"));
            const char *label = json_string_value(json_object_get(d, "label"));
            if (renamed_new && !strcmp(label, renamed_new))
                label = renamed_old;
            if (no_column(tn))
                continue;
            if (!strcmp(tn, "RepetitionChampDescriptor")) {
                blocks++;
                continue;
            }
            char full[300];
            snprintf(full, sizeof(full), "%s%s", annot ? "Annotation : " : "", label);
            json_t *c = column_labelled(cols, full);
            if (!c) {
                if (final)
                    fail_msg("no column for %s (%s)", full, tn);
                ok = 0;
                break;
            }
            const char *want = expected_type(tn), *desc = json_string_value(json_object_get(d, "description"));
            if (final && want)
                assert_string_equal(col_field(c, "type"), want);
            if (final && desc && *desc)
                assert_string_equal(col_field(c, "description"), desc);
        }
    }
    ok = ok && json_array_size(kids) == blocks;
    if (ok && final) {
        size_t i, j;
        json_t *d, *s;
        for (int annot = 0; annot < 2; annot++)
            json_array_foreach(json_object_get(rev, annot ? "annotationDescriptors" : "champDescriptors"), i, d) {
                if (strcmp(json_string_value(json_object_get(d, "__typename")), "RepetitionChampDescriptor"))
                    continue;
                /* some child table holds each of its sub-champs */
                json_array_foreach(json_object_get(d, "champDescriptors"), j, s) {
                    const char *tn = json_string_value(json_object_get(s, "__typename"));
                    if (no_column(tn))
                        continue;
                    int found = 0;
                    for (size_t k = 0; !found && k < json_array_size(kids); k++) {
                        json_t *kc = columns(env, json_string_value(json_array_get(kids, k)));
                        json_t *c = column_labelled(kc, json_string_value(json_object_get(s, "label")));
                        if (c && expected_type(tn))
                            assert_string_equal(col_field(c, "type"), expected_type(tn));
                        found = c != NULL;
                        json_decref(kc);
                    }
                    if (!found)
                        fail_msg("no child column for %s", json_string_value(json_object_get(s, "label")));
                }
            }
    }
    json_decref(cols);
    json_decref(kids);
    return ok;
}

static int wait_form(d2g_testenv_t *env, json_t *rev, int timeout_s) {
    int64_t end = d2g_clock_mono_ms() + timeout_s * 1000LL;
    while (!holds_form(env, rev, 0)) {
        if (d2g_clock_mono_ms() > end)
            return 0;
        d2g_test_sleep_ms(300);
    }
    holds_form(env, rev, 1);
    return 1;
}

/* Column id -> "label|type" of a table. */
static json_t *column_set(d2g_testenv_t *env, const char *table) {
    json_t *cols = columns(env, table), *out = json_object();
    size_t i;
    json_t *c;
    json_array_foreach(cols, i, c) {
        char v[400];
        snprintf(v, sizeof(v), "%s|%s", col_field(c, "label"), col_field(c, "type"));
        json_object_set_new(out, json_string_value(json_object_get(c, "id")), json_string(v));
    }
    json_decref(cols);
    return out;
}

static void assert_no_duplicate_labels(d2g_testenv_t *env, const char *table) {
    json_t *cols = columns(env, table), *seen = json_object();
    size_t i;
    json_t *c;
    json_array_foreach(cols, i, c) {
        const char *l = col_field(c, "label");
        if (!l || !*l)
            continue;
        if (json_object_get(seen, l))
            fail_msg("%s: two columns labelled %s", table, l);
        json_object_set_new(seen, l, json_true());
    }
    json_decref(seen);
    json_decref(cols);
}

/* Requests Grist received for a document (any status). */
static long long doc_requests(d2g_testenv_t *env, const char *doc) {
    char url[320];
    snprintf(url, sizeof(url), "%s/admin/stats", env->grist_url);
    json_t *j = d2g_test_json("GET", url, NULL);
    long long n = json_integer_value(json_object_get(json_object_get(json_object_get(j, "docs"), doc), "requests"));
    json_decref(j);
    return n;
}

/* Lines of the log holding needle. */
static int log_count(d2g_testenv_t *env, const char *name, const char *needle) {
    char path[400], line[4096];
    snprintf(path, sizeof(path), "%s/%s.log", env->dir, name);
    FILE *f = fopen(path, "r");
    int n = 0;
    while (f && fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return n;
}

static void test_schema_before_first_dossier(void **state) {
    d2g_testenv_t *env = *state;
    char cfg[600], body[400];
    d2g_test_proc_t producer, worker, worker2;
    assert_int_equal(d2g_testenv_start_ds(env, "{\"seed\": 7, \"procedures\": [{\"number\": 1301, \"dossiers\": 0}],"
                                               " \"tokens\": [{\"name\": \"main\", \"secret\": \"" TOKEN "\", \"procedures\": \"*\"}]}"), 0);
    assert_int_equal(d2g_testenv_start_grist(env, "{\"docs\": [{\"id\": \"docA\", \"keys\": [\"" GKEY "\"]}]}"), 0);
    /* a champ with a help text: its column's description */
    json_decref(d2g_stack_ds_do(env, "POST", "/admin/procedures/1301/champ-descriptors",
                                "{\"type\": \"TextChampDescriptor\", \"label\": \"Objet de la demande\","
                                " \"description\": \"En deux lignes au plus\"}"));
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", PROCS, 400, 8,
                                           "\"defaults\": {\"poll_interval_s\": 1}", cfg, sizeof(cfg)), 0);
    d2g_stack_spawn(env, &producer, D2G_PRODUCER_BIN, "producer", cfg);
    d2g_stack_spawn(env, &worker, D2G_WORKER_BIN, "worker", cfg);
    d2g_stack_spawn(env, &worker2, D2G_WORKER_BIN, "worker2", cfg);

    /* (1) no dossier in DS: the form's tables and columns, and no row; made by one
     * of the two workers */
    json_t *rev = ds_revision(env);
    assert_true(wait_form(env, rev, 60));
    d2g_test_sleep_ms(1000);
    int by1 = log_count(env, "worker", "\"form_schema_applied\""), by2 = log_count(env, "worker2", "\"form_schema_applied\"");
    print_message("# the form applied by worker 1: %d, worker 2: %d\n", by1, by2);
    assert_int_equal(by1 + by2, 1);
    json_t *rows = d2g_stack_grist_rows(env, "docA", "Aides");
    assert_int_equal(json_array_size(rows), 0);
    json_decref(rows);

    /* (2) new revisions: a champ added becomes a column, a champ renamed keeps its
     * column (no second one), DS still without a dossier */
    json_t *cols1 = column_set(env, "Aides");
    const char *tid = NULL;
    size_t di;
    json_t *dd;
    json_array_foreach(json_object_get(rev, "champDescriptors"), di, dd)
        if (!tid && !strcmp(json_string_value(json_object_get(dd, "__typename")), "TextChampDescriptor")) {
            tid = json_string_value(json_object_get(dd, "id"));
            renamed_old = json_string_value(json_object_get(dd, "label"));
        }
    assert_non_null(tid);
    renamed_new = "Intitulé du projet (libellé revu)";
    char rpath[200];
    snprintf(rpath, sizeof(rpath), "/admin/procedures/1301/champ-descriptors/%s", tid);
    snprintf(body, sizeof(body), "{\"label\": \"%s\"}", renamed_new);
    json_decref(d2g_stack_ds_do(env, "PATCH", rpath, body));
    json_t *added = d2g_stack_ds_do(env, "POST", "/admin/procedures/1301/champ-descriptors",
                                    "{\"type\": \"IntegerNumberChampDescriptor\", \"label\": \"Nombre de bénévoles\","
                                    " \"description\": \"Au 1er janvier\"}");
    const char *added_id = json_string_value(json_object_get(added, "id"));
    assert_non_null(added_id);
    json_t *rev1 = rev; /* renamed_old points into it */
    rev = ds_revision(env);
    int64_t t0 = d2g_clock_mono_ms();
    assert_true(wait_form(env, rev, 60));
    print_message("# new champ's column %.1f s after its revision was published\n",
                  (double)(d2g_clock_mono_ms() - t0) / 1000.0);
    json_t *cols = columns(env, "Aides");
    json_t *nc = column_labelled(cols, "Nombre de bénévoles");
    assert_non_null(nc);
    char *new_col = strdup(json_string_value(json_object_get(nc, "id")));
    assert_string_equal(col_field(nc, "type"), "Int");
    assert_string_equal(col_field(nc, "description"), "Au 1er janvier");
    json_decref(cols);
    json_t *cols2 = column_set(env, "Aides");
    const char *cid;
    json_t *cv;
    json_object_foreach(cols1, cid, cv) assert_non_null(json_object_get(cols2, cid));
    assert_int_equal(json_object_size(cols2), json_object_size(cols1) + 1);
    json_decref(cols1);
    json_decref(cols2);
    json_t *ds = d2g_stack_ds_get(env, PROC, 0);
    assert_int_equal(json_array_size(json_object_get(ds, "dossiers")), 0);
    json_decref(ds);

    /* (3) dossiers arrive: the same columns and child tables, none twice */
    json_t *before = column_set(env, "Aides"), *kids_before = child_tables(env);
    for (int i = 0; i < 5; i++) {
        snprintf(body, sizeof(body), "{\"state\": \"en_construction\", \"champs\": {\"%s\": \"%d\"}}", added_id, 10 + i);
        json_decref(d2g_stack_ds_do(env, "POST", "/admin/procedures/1301/dossiers", body));
    }
    assert_int_equal(d2g_stack_wait_synced(env, "docA", "Aides", PROC, 60), 5);
    json_t *after = column_set(env, "Aides"), *kids_after = child_tables(env);
    const char *id;
    json_t *v;
    json_object_foreach(before, id, v) {
        json_t *now = json_object_get(after, id);
        if (!now)
            fail_msg("column %s gone", id);
        assert_string_equal(json_string_value(now), json_string_value(v));
    }
    assert_true(json_equal(kids_before, kids_after));
    assert_no_duplicate_labels(env, "Aides");
    size_t rows_in_children = 0;
    for (size_t k = 0; k < json_array_size(kids_after); k++) {
        const char *t = json_string_value(json_array_get(kids_after, k));
        assert_no_duplicate_labels(env, t);
        json_t *r = d2g_stack_grist_rows(env, "docA", t);
        rows_in_children += json_array_size(r);
        json_decref(r);
    }
    print_message("# %zu columns before the dossiers, %zu after; %zu child tables, %zu child rows\n",
                  json_object_size(before), json_object_size(after), json_array_size(kids_after), rows_in_children);
    rows = d2g_stack_grist_rows(env, "docA", "Aides");
    size_t i;
    json_t *r;
    int found = 0;
    json_array_foreach(rows, i, r) {
        json_int_t val = json_integer_value(d2g_stack_field(r, new_col));
        found += val >= 10 && val < 15;
    }
    assert_int_equal(found, 5);
    json_decref(rows);
    free(new_col);
    json_decref(before);
    json_decref(after);
    json_decref(kids_before);
    json_decref(kids_after);
    json_decref(added);
    json_decref(rev);
    json_decref(rev1);
    /* a clean exit (LeakSanitizer included) */
    assert_int_equal(d2g_test_proc_stop(&worker), 0);
    assert_int_equal(d2g_test_proc_stop(&worker2), 0);
    assert_int_equal(d2g_test_proc_stop(&producer), 0);
}

/* A document that refuses the key while its procedure has no dossier: its lane
 * parks, the form is not retried in a loop, another document syncs meanwhile;
 * once the key works again the form's schema is made. */
static void test_parked_document(void **state) {
    d2g_testenv_t *env = *state;
    char cfg[900];
    d2g_test_proc_t producer, worker;
    assert_int_equal(d2g_testenv_start_ds(env, "{\"seed\": 7, \"procedures\": [{\"number\": 1301, \"dossiers\": 0},"
                                               " {\"number\": 1302, \"dossiers\": 60}],"
                                               " \"tokens\": [{\"name\": \"main\", \"secret\": \"" TOKEN "\", \"procedures\": \"*\"}]}"), 0);
    assert_int_equal(d2g_testenv_start_grist(env, "{\"docs\": [{\"id\": \"docA\", \"keys\": [\"" GKEY "\"]},"
                                                  " {\"id\": \"docB\", \"keys\": [\"" GKEY "\"]}]}"), 0);
    json_decref(d2g_stack_grist_do(env, "POST", "/admin/faults",
                                   "{\"doc\": \"docA\", \"status\": 401, \"count\": 100000, \"error\": \"invalid API key\"}"));
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json",
                                           "[{\"number\": 1301, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docA\", \"table_prefix\": \"Aides\"},"
                                           " {\"number\": 1302, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docB\", \"table_prefix\": \"Autres\"}]",
                                           400, 8, "\"defaults\": {\"poll_interval_s\": 1}", cfg, sizeof(cfg)), 0);
    d2g_stack_spawn(env, &producer, D2G_PRODUCER_BIN, "producer", cfg);
    d2g_stack_spawn(env, &worker, D2G_WORKER_BIN, "worker", cfg);
    int64_t t0 = d2g_clock_mono_ms();
    /* the other document is not held up */
    assert_int_equal(d2g_stack_wait_synced(env, "docB", "Autres", 1302, 60), 60);
    double other_s = (double)(d2g_clock_mono_ms() - t0) / 1000.0;
    int64_t wait = 20000 - (d2g_clock_mono_ms() - t0);
    if (wait > 0)
        d2g_test_sleep_ms(wait);
    long long refused = doc_requests(env, "docA");
    int attempts = log_count(env, "worker", "\"form_schema_queued\",\"procedure\":1301");
    print_message("# refused document: %lld requests in %.0f s, %d form attempts; the other document synced in %.1f s\n",
                  refused, (double)(d2g_clock_mono_ms() - t0) / 1000.0, attempts, other_s);
    /* the lane's probes (200 ms doubling) and one form attempt, not a loop */
    assert_true(refused <= 15);
    assert_true(attempts <= 1);
    /* the key works again: the form's schema is made */
    json_decref(d2g_stack_grist_do(env, "DELETE", "/admin/faults", NULL));
    int64_t t1 = d2g_clock_mono_ms();
    json_t *rev = ds_revision(env);
    assert_true(wait_form(env, rev, 120));
    print_message("# key restored: the form's schema %.1f s later\n", (double)(d2g_clock_mono_ms() - t1) / 1000.0);
    json_decref(rev);
    assert_int_equal(d2g_test_proc_stop(&worker), 0); /* clean, LeakSanitizer included */
    assert_int_equal(d2g_test_proc_stop(&producer), 0);
}

/* Grist refuses the form's new table (400): not recorded as applied, tried again
 * a minute later (no loop), made once Grist takes it. */
static void test_refused_change(void **state) {
    d2g_testenv_t *env = *state;
    char cfg[900];
    d2g_test_proc_t producer, worker;
    assert_int_equal(d2g_testenv_start_ds(env, "{\"seed\": 7, \"procedures\": [{\"number\": 1301, \"dossiers\": 0}],"
                                               " \"tokens\": [{\"name\": \"main\", \"secret\": \"" TOKEN "\", \"procedures\": \"*\"}]}"), 0);
    assert_int_equal(d2g_testenv_start_grist(env, "{\"docs\": [{\"id\": \"docA\", \"keys\": [\"" GKEY "\"]}]}"), 0);
    json_decref(d2g_stack_grist_do(env, "POST", "/admin/faults",
                                   "{\"doc\": \"docA\", \"method\": \"POST\", \"pattern\": \"^/tables$\", \"status\": 400,"
                                   " \"count\": -1, \"error\": \"Invalid table id\"}"));
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", PROCS, 400, 8,
                                           "\"defaults\": {\"poll_interval_s\": 1}", cfg, sizeof(cfg)), 0);
    d2g_stack_spawn(env, &producer, D2G_PRODUCER_BIN, "producer", cfg);
    d2g_stack_spawn(env, &worker, D2G_WORKER_BIN, "worker", cfg);
    d2g_test_sleep_ms(25000); /* the first checks come 15 s after start-up */
    int refused = log_count(env, "worker", "\"form_schema_refused\"");
    int applied = log_count(env, "worker", "\"form_schema_applied\"");
    long long requests = doc_requests(env, "docA");
    print_message("# refused table: %d refusals, %lld requests in 25 s\n", refused, requests);
    assert_int_equal(refused, 1);
    assert_int_equal(applied, 0);
    assert_true(requests <= 8);
    json_decref(d2g_stack_grist_do(env, "DELETE", "/admin/faults", NULL));
    int64_t t1 = d2g_clock_mono_ms();
    json_t *rev = ds_revision(env);
    assert_true(wait_form(env, rev, 120));
    print_message("# Grist takes it again: the form's schema %.1f s later\n", (double)(d2g_clock_mono_ms() - t1) / 1000.0);
    json_decref(rev);
    assert_int_equal(d2g_test_proc_stop(&worker), 0);
    assert_int_equal(d2g_test_proc_stop(&producer), 0);
}

/* A procedure added by a live reload of the configuration file: its document gets
 * the form's tables and columns without a restart and without a dossier. */
static void test_procedure_added_live(void **state) {
    d2g_testenv_t *env = *state;
    char cfg[900];
    d2g_test_proc_t producer, worker;
    assert_int_equal(d2g_testenv_start_ds(env, "{\"seed\": 7, \"procedures\": [{\"number\": 1301, \"dossiers\": 0},"
                                               " {\"number\": 1303, \"dossiers\": 0}],"
                                               " \"tokens\": [{\"name\": \"main\", \"secret\": \"" TOKEN "\", \"procedures\": \"*\"}]}"), 0);
    assert_int_equal(d2g_testenv_start_grist(env, "{\"docs\": [{\"id\": \"docA\", \"keys\": [\"" GKEY "\"]}]}"), 0);
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", PROCS, 400, 8,
                                           "\"defaults\": {\"poll_interval_s\": 1}", cfg, sizeof(cfg)), 0);
    d2g_stack_spawn(env, &producer, D2G_PRODUCER_BIN, "producer", cfg);
    d2g_stack_spawn(env, &worker, D2G_WORKER_BIN, "worker", cfg);
    json_t *rev = ds_revision(env);
    assert_true(wait_form(env, rev, 60));
    json_decref(rev);
    /* 1303 joins the file (same document, its own prefix) */
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json",
                                           "[{\"number\": 1301, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docA\", \"table_prefix\": \"Aides\"},"
                                           " {\"number\": 1303, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docA\", \"table_prefix\": \"Bourses\"}]",
                                           400, 8, "\"defaults\": {\"poll_interval_s\": 1}", cfg, sizeof(cfg)), 0);
    int64_t t0 = d2g_clock_mono_ms(), end = t0 + 60000;
    json_t *cols = NULL;
    while (!(cols = columns(env, "Bourses")) || json_array_size(cols) < 20) {
        json_decref(cols);
        cols = NULL;
        assert_true(d2g_clock_mono_ms() < end);
        d2g_test_sleep_ms(300);
    }
    print_message("# procedure added live: its table with %zu columns %.1f s after the file changed\n",
                  json_array_size(cols), (double)(d2g_clock_mono_ms() - t0) / 1000.0);
    json_decref(cols);
    json_t *rows = d2g_stack_grist_rows(env, "docA", "Bourses");
    assert_int_equal(json_array_size(rows), 0);
    json_decref(rows);
    assert_int_equal(d2g_test_proc_stop(&worker), 0);
    assert_int_equal(d2g_test_proc_stop(&producer), 0);
}

int main(void) {
    d2g_test_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schema_before_first_dossier, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_parked_document, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_procedure_added_live, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_refused_change, d2g_stack_setup_kafka, d2g_stack_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
