/*
 * test_mapping_opts.c - procedures[].mapping and procedures[].filter end to end: the
 * real producer and worker against the DS and Grist emulators, a real redis-server
 * and the Kafka mock broker. What is asserted is what Grist holds against what DS has.
 *
 *   child_tables   geo_areas, avis and messages on: <prefix>_Zones, _Avis and _Messages
 *                  hold, dossier by dossier, exactly DS's areas, avis and messages (ids
 *                  and a field each); ref_links turned on by a reload on the same document:
 *                  `dossier` becomes a Ref formula column, the numbers move to
 *                  ds_dossier_numero (old rows too) and displays the number (visibleCol);
 *                  technical columns are in raw data, not in the pages (a procedure
 *                  linked from the start too); then an avis, a message and an area
 *                  changed, and all of another dossier's removed, in DS: Grist follows;
 *                  ref_links off again: the lane parks with the cause, nothing is
 *                  dead-lettered or written, and on again the change arrives
 *   filter_out     states [en_construction, en_instruction], in remove mode and in mark
 *                  mode: only those dossiers are in the table (remove) or unmarked
 *                  (mark); a dossier whose state leaves the filter leaves the table (its
 *                  repetition rows too) or is marked hors_filtre; one that enters it is
 *                  written again whole, the removed one too when it comes back
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds2grist/clock.h"
#include "stack.h"

#define TOKEN D2G_STACK_DS_TOKEN
#define GKEY D2G_STACK_GRIST_KEY

static void start_emulators(d2g_testenv_t *env, const char *ds_procedures) {
    char cfg[1024];
    snprintf(cfg, sizeof(cfg),
             "{\"seed\": 9, \"procedures\": %s,"
             " \"tokens\": [{\"name\": \"main\", \"secret\": \"" TOKEN "\", \"procedures\": \"*\"}]}",
             ds_procedures);
    assert_int_equal(d2g_testenv_start_ds(env, cfg), 0);
    assert_int_equal(d2g_testenv_start_grist(env, "{\"docs\": [{\"id\": \"docA\", \"keys\": [\"" GKEY "\"]}]}"), 0);
}

static json_t *field(json_t *row, const char *name) {
    json_t *v = d2g_stack_field(row, name);
    return v ? v : json_null();
}

static void patch_dossier(d2g_testenv_t *env, int proc, json_int_t num, const char *body) {
    char path[128];
    snprintf(path, sizeof(path), "/admin/procedures/%d/dossiers/%lld", proc, (long long)num);
    json_decref(d2g_stack_ds_do(env, "PATCH", path, body));
}

/* --- child tables ---------------------------------------------------------------- */

/* into[<number>][<id>] = item[key] for every item of list */
static void add_items(json_t *into, json_int_t num, json_t *list, const char *key) {
    char n[24];
    snprintf(n, sizeof(n), "%lld", (long long)num);
    json_t *per = json_object_get(into, n);
    size_t i;
    json_t *it;
    json_array_foreach(list, i, it) {
        json_t *v = json_object_get(it, key);
        json_object_set(per, json_string_value(json_object_get(it, "id")), v ? v : json_null());
    }
}

/* The geo areas of a dossier's Carte champs, in blocks' rows too. */
static void add_areas(json_t *into, json_int_t num, json_t *champs) {
    size_t i;
    json_t *c;
    json_array_foreach(champs, i, c) {
        add_items(into, num, json_object_get(c, "geoAreas"), "description");
        size_t k;
        json_t *row;
        json_array_foreach(json_object_get(c, "rows"), k, row) add_areas(into, num, json_object_get(row, "champs"));
    }
}

/* What DS has: {"zones"|"avis"|"messages": {<number>: {<id>: field}}}. */
static json_t *ds_children(d2g_testenv_t *env, int proc) {
    json_t *want = json_pack("{s:{}, s:{}, s:{}}", "zones", "avis", "messages");
    json_t *list = d2g_stack_ds_get(env, proc, 0);
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(list, "dossiers"), i, d) {
        json_int_t num = json_integer_value(json_object_get(d, "number"));
        char n[24];
        snprintf(n, sizeof(n), "%lld", (long long)num);
        const char *kinds[] = {"zones", "avis", "messages"};
        for (int k = 0; k < 3; k++)
            json_object_set_new(json_object_get(want, kinds[k]), n, json_object());
        json_t *full = d2g_stack_ds_get(env, proc, num);
        add_areas(json_object_get(want, "zones"), num, json_object_get(full, "champs"));
        add_areas(json_object_get(want, "zones"), num, json_object_get(full, "annotations"));
        add_items(json_object_get(want, "avis"), num, json_object_get(full, "avis"), "reponse");
        add_items(json_object_get(want, "messages"), num, json_object_get(full, "messages"), "body");
        json_decref(full);
    }
    json_decref(list);
    return want;
}

/* What a Grist child table holds, in the same shape: rows grouped by numcol. */
static json_t *grist_children(d2g_testenv_t *env, const char *table, const char *numcol,
                              const char *col, const json_t *numbers) {
    json_t *out = json_object();
    const char *n;
    json_t *v;
    json_object_foreach((json_t *)numbers, n, v) json_object_set_new(out, n, json_object());
    json_t *rows = d2g_stack_grist_rows(env, "docA", table);
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) {
        char num[24];
        snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(field(r, numcol)));
        json_t *per = json_object_get(out, num);
        if (!per) { /* a row of no dossier DS has: never equal */
            per = json_object();
            json_object_set_new(out, num, per);
        }
        json_object_set(per, json_string_value(field(r, "ds_row_id")), field(r, col));
    }
    json_decref(rows);
    return out;
}

/* 1 when the three tables hold exactly what DS has. */
static int children_synced(d2g_testenv_t *env, int proc, const char *prefix, const char *numcol,
                           int verbose) {
    json_t *want = ds_children(env, proc);
    static const char *const kinds[][3] = {
        {"zones", "Zones", "description"}, {"avis", "Avis", "reponse"}, {"messages", "Messages", "corps"}};
    int same = 1;
    for (int k = 0; k < 3 && same; k++) {
        char table[64];
        snprintf(table, sizeof(table), "%s_%s", prefix, kinds[k][1]);
        json_t *w = json_object_get(want, kinds[k][0]);
        json_t *got = grist_children(env, table, numcol, kinds[k][2], w);
        same = json_equal(w, got);
        if (!same && verbose) {
            char *a = json_dumps(w, JSON_COMPACT | JSON_SORT_KEYS), *b = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
            printf("# %s differs\n#  DS:    %.600s\n#  Grist: %.600s\n", table, a, b);
            free(a);
            free(b);
        }
        json_decref(got);
    }
    json_decref(want);
    return same;
}

static void wait_children(d2g_testenv_t *env, int proc, const char *prefix, const char *numcol, int timeout_s) {
    int64_t end = d2g_clock_mono_ms() + timeout_s * 1000LL;
    while (!children_synced(env, proc, prefix, numcol, 0)) {
        if (d2g_clock_mono_ms() > end) {
            children_synced(env, proc, prefix, numcol, 1);
            fail_msg("child tables of %s never matched DS (by %s)", prefix, numcol);
        }
        d2g_test_sleep_ms(500);
    }
}

/* A column's fields through Grist's API, or NULL. */
static json_t *column_fields(d2g_testenv_t *env, const char *table, const char *col) {
    char url[320], *resp = NULL;
    snprintf(url, sizeof(url), "%s/api/docs/docA/tables/%s/columns", env->grist_url, table);
    assert_int_equal(d2g_test_http("GET", url, GKEY, NULL, &resp), 200);
    json_t *j = json_loads(resp, 0, NULL), *out = NULL;
    free(resp);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(j, "columns"), i, c)
        if (!strcmp(json_string_value(json_object_get(c, "id")), col))
            out = json_incref(json_object_get(c, "fields"));
    json_decref(j);
    return out;
}

static int is_ref_formula(d2g_testenv_t *env, const char *table) {
    json_t *f = column_fields(env, table, "dossier"), *n = column_fields(env, table, "ds_dossier_numero");
    int ok = f && n && json_is_true(json_object_get(f, "isFormula")) &&
             !strcmp(json_string_value(json_object_get(f, "type")), "Ref:Aides") &&
             strstr(json_string_value(json_object_get(f, "formula")), "lookupOne(numero=$ds_dossier_numero)");
    json_decref(f);
    json_decref(n);
    return ok;
}

/* 1 if the service's log (<dir>/<name>) holds text. */
static int log_has(d2g_testenv_t *env, const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", env->dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[8192];
    int found = 0;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, text) != NULL;
    fclose(f);
    return found;
}

/* The dossier's modification date as Grist holds it, and as DS has it, in whole seconds. */
static long long written_s(d2g_testenv_t *env, json_int_t num) {
    json_t *rows = d2g_stack_grist_rows(env, "docA", "Aides");
    long long s = -1;
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
        if (json_integer_value(field(r, "numero")) == num)
            s = (long long)json_number_value(field(r, "date_derniere_modification"));
    json_decref(rows);
    return s;
}

static long long ds_updated_s(d2g_testenv_t *env, json_int_t num) {
    json_t *list = d2g_stack_ds_get(env, 1301, 0);
    long long s = -2;
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(list, "dossiers"), i, d)
        if (json_integer_value(json_object_get(d, "number")) == num)
            s = (long long)(json_integer_value(json_object_get(d, "updatedAtMs")) / 1000);
    json_decref(list);
    return s;
}

/* --- what agents see: pages and Ref display ----------------------------------------- */

/* GET /api/docs/docA/<path> as the API key sees it (metadata tables included). */
static json_t *grist_get(d2g_testenv_t *env, const char *path) {
    char url[640], *resp = NULL;
    snprintf(url, sizeof(url), "%s/api/docs/docA%s", env->grist_url, path);
    assert_int_equal(d2g_test_http("GET", url, GKEY, NULL, &resp), 200);
    json_t *j = json_loads(resp, 0, NULL);
    free(resp);
    assert_non_null(j);
    return j;
}

/* The records of a metadata table whose column col is value. */
static json_t *meta_where(d2g_testenv_t *env, const char *table, const char *col, json_int_t value) {
    char path[256];
    snprintf(path, sizeof(path), "/tables/%s/records?filter=%%7B%%22%s%%22%%3A%%5B%lld%%5D%%7D", table, col,
             (long long)value);
    json_t *j = grist_get(env, path), *recs = json_incref(json_object_get(j, "records"));
    json_decref(j);
    return recs;
}

/* The table's _grist_Tables record fields (new reference). */
static json_t *table_meta(d2g_testenv_t *env, const char *table) {
    json_t *j = grist_get(env, "/tables/_grist_Tables/records"), *out = NULL;
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(j, "records"), i, r)
        if (!strcmp(json_string_value(json_object_get(json_object_get(r, "fields"), "tableId")), table))
            out = json_pack("{s:I, s:O}", "id", json_integer_value(json_object_get(r, "id")), "fields",
                            json_object_get(r, "fields"));
    json_decref(j);
    assert_non_null(out);
    return out;
}

/* {colId: true} of the fields of the table's raw section (raw) or of its page's widget. */
static json_t *shown_columns(d2g_testenv_t *env, const char *table, int raw) {
    json_t *t = table_meta(env, table), *tf = json_object_get(t, "fields");
    json_int_t section = json_integer_value(json_object_get(tf, "rawViewSectionRef"));
    if (!raw) {
        json_t *secs = meta_where(env, "_grist_Views_section", "parentId",
                                  json_integer_value(json_object_get(tf, "primaryViewId")));
        assert_int_equal(json_array_size(secs), 1);
        section = json_integer_value(json_object_get(json_array_get(secs, 0), "id"));
        json_decref(secs);
    }
    json_t *cols = meta_where(env, "_grist_Tables_column", "parentId", json_integer_value(json_object_get(t, "id")));
    json_t *fields = meta_where(env, "_grist_Views_section_field", "parentId", section), *out = json_object();
    size_t i, k;
    json_t *f, *c;
    json_array_foreach(fields, i, f) {
        json_int_t ref = json_integer_value(json_object_get(json_object_get(f, "fields"), "colRef"));
        json_array_foreach(cols, k, c) if (json_integer_value(json_object_get(c, "id")) == ref)
            json_object_set_new(out, json_string_value(json_object_get(json_object_get(c, "fields"), "colId")),
                                json_true());
    }
    json_decref(cols);
    json_decref(fields);
    json_decref(t);
    return out;
}

/* The page widget of table shows none of hidden (NULL-terminated), the raw section all. */
static void assert_hidden(d2g_testenv_t *env, const char *table, const char *const *hidden, const char *shown) {
    json_t *page = shown_columns(env, table, 0), *raw = shown_columns(env, table, 1);
    for (size_t i = 0; hidden[i]; i++) {
        if (json_object_get(page, hidden[i]))
            fail_msg("%s: the page shows the technical column %s", table, hidden[i]);
        if (!json_object_get(raw, hidden[i]))
            fail_msg("%s: raw data lacks %s", table, hidden[i]);
    }
    if (!json_object_get(page, shown) || !json_object_get(raw, shown))
        fail_msg("%s: column %s is not shown", table, shown);
    json_decref(page);
    json_decref(raw);
}

/* Grist's requests of a kind so far (admin stats). */
static long long requests_of(d2g_testenv_t *env, const char *kind) {
    json_t *s = d2g_stack_grist_do(env, "GET", "/admin/stats", NULL);
    long long n = json_integer_value(json_object_get(json_object_get(json_object_get(s, "requests"), "byKind"), kind));
    json_decref(s);
    return n;
}

/* The views work costs at most one read and one write per schema change request. */
static void assert_views_cost(d2g_testenv_t *env) {
    long long reads = requests_of(env, "POST sql"), writes = requests_of(env, "POST apply");
    long long changes = requests_of(env, "POST tables") + requests_of(env, "POST columns") +
                        requests_of(env, "PATCH columns");
    printf("# views: %lld POST /sql, %lld POST /apply for %lld schema change requests\n", reads, writes, changes);
    assert_true(reads >= 1 && writes >= 1 && writes <= reads && reads <= changes);
}

static const char *const DOSSIER_TECH[] = {"ds_id", "groupe_instructeur_id", "supprime", "date_suppression",
                                           "motif_suppression", NULL};
static const char *const ZONE_TECH[] = {"ds_row_id", "champ_id", NULL};
static const char *const AVIS_TECH[] = {"ds_row_id", NULL};
static const char *const LINKED_TECH[] = {"ds_row_id", "ds_dossier_numero", NULL};

/* The child table's `dossier` Ref shows the dossier's number: visibleCol is the
 * dossiers table's numero, its displayCol a formula $dossier.numero whose values are
 * the numbers of the rows. */
static void assert_ref_display(d2g_testenv_t *env, const char *table, const char *prefix) {
    int64_t end = d2g_clock_mono_ms() + 30000; /* set right after the column is made */
    json_t *d = column_fields(env, table, "dossier");
    while (d && !json_integer_value(json_object_get(d, "displayCol")) && d2g_clock_mono_ms() < end) {
        json_decref(d);
        d2g_test_sleep_ms(200);
        d = column_fields(env, table, "dossier");
    }
    json_t *numero = column_fields(env, prefix, "numero");
    assert_non_null(d);
    assert_non_null(numero);
    assert_int_equal(json_integer_value(json_object_get(d, "visibleCol")),
                     json_integer_value(json_object_get(numero, "colRef")));
    char path[256];
    snprintf(path, sizeof(path), "/tables/%s/columns?hidden=1", table);
    json_t *cols = grist_get(env, path), *helper = NULL;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(cols, "columns"), i, c)
        if (json_integer_value(json_object_get(json_object_get(c, "fields"), "colRef")) ==
            json_integer_value(json_object_get(d, "displayCol")))
            helper = c;
    assert_non_null(helper);
    assert_string_equal(json_string_value(json_object_get(json_object_get(helper, "fields"), "formula")),
                        "$dossier.numero");
    snprintf(path, sizeof(path), "/tables/%s/records?hidden=1", table);
    json_t *recs = grist_get(env, path);
    const char *hid = json_string_value(json_object_get(helper, "id"));
    size_t n = 0;
    json_array_foreach(json_object_get(recs, "records"), i, c) {
        json_t *f = json_object_get(c, "fields");
        assert_int_equal(json_integer_value(json_object_get(f, hid)),
                         json_integer_value(json_object_get(f, "ds_dossier_numero")));
        n++;
    }
    assert_true(n > 0);
    json_decref(recs);
    json_decref(cols);
    json_decref(d);
    json_decref(numero);
}

/* 1302: linked from the start, its block's table made with the Ref (POST /tables). */
#define PROC_OPTS(ref)                                                                                   \
    "[{\"number\": 1301, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docA\","        \
    " \"table_prefix\": \"Aides\", \"mapping\": {\"geo_areas\": true, \"avis\": true, \"messages\": true," \
    " \"ref_links\": " ref "}},"                                                                          \
    " {\"number\": 1302, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docA\","         \
    " \"table_prefix\": \"Liees\", \"mapping\": {\"ref_links\": true}}]"

/* The child tables of prefix (<prefix>_...) the document has (new reference). */
static json_t *child_tables(d2g_testenv_t *env, const char *prefix) {
    char url[320];
    snprintf(url, sizeof(url), "%s/admin/docs/docA/tables", env->grist_url);
    json_t *tl = d2g_test_json("GET", url, NULL), *out = json_array(), *t;
    const char *tid;
    json_object_foreach(json_object_get(tl, "tables"), tid, t)
        if (!strncmp(tid, prefix, strlen(prefix)) && tid[strlen(prefix)] == '_')
            json_array_append_new(out, json_string(tid));
    json_decref(tl);
    return out;
}

static void test_child_tables(void **state) {
    d2g_testenv_t *env = *state;
    char cfg[600];
    d2g_test_proc_t producer, worker;
    start_emulators(env, "[{\"number\": 1301, \"dossiers\": 24}, {\"number\": 1302, \"dossiers\": 8}]");
    const char *extra = "\"defaults\": {\"poll_interval_s\": 1},"
                        " \"worker\": {\"retry_delay_s\": 1, \"retry_max_delay_s\": 2}";
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", PROC_OPTS("false"), 400, 8, extra, cfg,
                                           sizeof(cfg)), 0);
    d2g_stack_spawn(env, &producer, D2G_PRODUCER_BIN, "producer", cfg);
    d2g_stack_spawn(env, &worker, D2G_WORKER_BIN, "worker", cfg);
    assert_int_equal(d2g_stack_wait_synced(env, "docA", "Aides", 1301, 90), 24);
    wait_children(env, 1301, "Aides", "dossier", 60);
    json_t *before = ds_children(env, 1301);
    size_t zones = 0, avis = 0;
    const char *n;
    json_t *v;
    json_object_foreach(json_object_get(before, "zones"), n, v) zones += json_object_size(v);
    json_object_foreach(json_object_get(before, "avis"), n, v) avis += json_object_size(v);
    json_decref(before);
    assert_true(zones > 0 && avis > 0); /* the emulator's form has a Carte champ; every 3rd dossier an avis */
    printf("# child tables: %zu areas, %zu avis, 24 messages, as in DS\n", zones, avis);
    assert_hidden(env, "Aides", DOSSIER_TECH, "etat");
    assert_hidden(env, "Aides_Zones", ZONE_TECH, "dossier");
    assert_hidden(env, "Aides_Avis", AVIS_TECH, "dossier");
    assert_int_equal(d2g_stack_wait_synced(env, "docA", "Liees", 1302, 60), 8);
    json_t *linked = child_tables(env, "Liees");
    assert_true(json_array_size(linked) > 0);
    for (size_t k = 0; k < json_array_size(linked); k++) {
        assert_hidden(env, json_string_value(json_array_get(linked, k)), LINKED_TECH, "dossier");
        assert_ref_display(env, json_string_value(json_array_get(linked, k)), "Liees");
    }
    json_decref(linked);
    printf("# technical columns: in raw data, not in the tables' pages; a table made linked displays the number\n");

    /* ref_links on, by a reload: the next writes migrate the tables. */
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", PROC_OPTS("true"), 400, 8, extra, cfg,
                                           sizeof(cfg)), 0);
    kill(worker.pid, SIGHUP);
    d2g_test_sleep_ms(1500);
    /* one dossier changed: its batch migrates the three tables; the other 23 dossiers'
     * rows, not written since, must keep their numbers through the rename */
    json_decref(d2g_stack_ds_do(env, "POST", "/admin/procedures/1301/touch", "{\"count\": 1}"));
    int64_t end = d2g_clock_mono_ms() + 60000;
    while (!(is_ref_formula(env, "Aides_Zones") && is_ref_formula(env, "Aides_Avis") &&
             is_ref_formula(env, "Aides_Messages"))) {
        assert_true(d2g_clock_mono_ms() < end);
        d2g_test_sleep_ms(500);
    }
    wait_children(env, 1301, "Aides", "ds_dossier_numero", 60); /* every row kept its number */
    assert_hidden(env, "Aides_Messages", LINKED_TECH, "dossier");
    assert_ref_display(env, "Aides_Zones", "Aides");
    assert_ref_display(env, "Aides_Avis", "Aides");
    assert_ref_display(env, "Aides_Messages", "Aides");
    printf("# ref_links: `dossier` displays the number (visibleCol numero), ds_dossier_numero left the page\n");
    assert_views_cost(env);

    /* In DS: dossier a's avis replaced, its message changed and a second one added, its
     * areas replaced by one; dossier b loses all of them. */
    json_t *list = d2g_stack_ds_get(env, 1301, 0);
    json_int_t a = json_integer_value(json_object_get(json_array_get(json_object_get(list, "dossiers"), 3), "number"));
    json_int_t b = json_integer_value(json_object_get(json_array_get(json_object_get(list, "dossiers"), 6), "number"));
    json_decref(list);
    json_t *full = d2g_stack_ds_get(env, 1301, a);
    const char *carte = NULL, *msg = json_string_value(json_object_get(json_array_get(json_object_get(full, "messages"), 0), "id"));
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(full, "champs"), i, c)
        if (!carte && !strcmp(json_string_value(json_object_get(c, "__typename")), "CarteChamp"))
            carte = json_string_value(json_object_get(c, "champDescriptorId"));
    assert_non_null(carte);
    assert_non_null(msg);
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"avis\": [{\"id\": \"avis-nouveau\", \"question\": \"Budget ?\", \"reponse\": \"Avis réservé\"}],"
             " \"messages\": [{\"id\": \"%s\", \"body\": \"Message corrigé\"}, {\"id\": \"msg-2\", \"body\": \"Relance\"}],"
             " \"champs\": {\"%s\": [{\"id\": \"zone-unique\", \"description\": \"Parcelle redessinée\"}]}}",
             msg, carte);
    patch_dossier(env, 1301, a, body);
    snprintf(body, sizeof(body), "{\"avis\": [], \"messages\": [], \"champs\": {\"%s\": []}}", carte);
    patch_dossier(env, 1301, b, body);
    json_decref(full);
    wait_children(env, 1301, "Aides", "ds_dossier_numero", 60);
    assert_int_equal(d2g_stack_count(env, "docA", "Aides_Messages", "ds_dossier_numero", b), 0);
    assert_int_equal(d2g_stack_count(env, "docA", "Aides_Avis", "ds_dossier_numero", a), 1);
    assert_int_equal(d2g_stack_count(env, "docA", "Aides_Zones", "ds_dossier_numero", a), 1);
    printf("# ref_links: tables migrated, rows kept their numbers; changes and removals in DS followed\n");

    /* ref_links off again: the linked tables' `dossier` is a formula column the mapping
     * would write. The lane parks with the cause (nothing dead-lettered, nothing written)
     * until the option is back on; then the change arrives. */
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", PROC_OPTS("false"), 400, 8, extra, cfg,
                                           sizeof(cfg)), 0);
    kill(worker.pid, SIGHUP);
    d2g_test_sleep_ms(1500);
    json_t *t = d2g_stack_ds_do(env, "POST", "/admin/procedures/1301/touch", "{\"count\": 1}");
    json_int_t touched = json_integer_value(json_array_get(json_object_get(t, "numbers"), 0));
    json_decref(t);
    end = d2g_clock_mono_ms() + 60000;
    /* (the form's own batch, formschema.c, may meet the conflict first, on the
     * repetition block's table: the dossier's batch names these when it comes) */
    while (!(log_has(env, "worker.log", "Aides_Zones.dossier is a formula column") ||
             log_has(env, "worker.log", "Aides_Avis.dossier is a formula column") ||
             log_has(env, "worker.log", "Aides_Messages.dossier is a formula column"))) {
        assert_true(d2g_clock_mono_ms() < end);
        d2g_test_sleep_ms(300);
    }
    assert_true(log_has(env, "worker.log", "\"event\":\"schema_conflict\""));
    assert_true(is_ref_formula(env, "Aides_Avis")); /* left as it was */
    assert_int_equal(written_s(env, touched) == ds_updated_s(env, touched), 0);
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", PROC_OPTS("true"), 400, 8, extra, cfg,
                                           sizeof(cfg)), 0);
    kill(worker.pid, SIGHUP);
    end = d2g_clock_mono_ms() + 60000;
    while (written_s(env, touched) != ds_updated_s(env, touched)) {
        assert_true(d2g_clock_mono_ms() < end);
        d2g_test_sleep_ms(300);
    }
    wait_children(env, 1301, "Aides", "ds_dossier_numero", 30);
    printf("# ref_links off on linked tables: the lane parked with the cause, nothing dead-lettered; back on: "
           "written\n");

    d2g_test_msgs_t dlq = {0};
    assert_int_equal(d2g_test_kafka_read_all(env, "ds2grist.dlq", &dlq), 0);
    assert_int_equal(dlq.n, 0);
    d2g_test_msgs_free(&dlq);
    assert_int_equal(d2g_test_proc_stop(&worker), 0);
    assert_int_equal(d2g_test_proc_stop(&producer), 0);
}

/* --- filters ----------------------------------------------------------------------- */

static int in_filter(const char *state) {
    return !strcmp(state, "en_construction") || !strcmp(state, "en_instruction");
}

/* remove mode: the table holds exactly DS's dossiers in the filter; mark mode: every
 * DS dossier, marked hors_filtre exactly when outside. */
static int filter_synced(d2g_testenv_t *env, int proc, const char *table, int mark, int verbose) {
    json_t *list = d2g_stack_ds_get(env, proc, 0);
    json_t *rows = d2g_stack_grist_rows(env, "docA", table);
    json_t *by_num = json_object(), *want_motif = json_pack("{s:s}", "m", "hors_filtre");
    size_t i, want_rows = 0;
    json_t *r, *d;
    json_array_foreach(rows, i, r) {
        char n[24];
        snprintf(n, sizeof(n), "%lld", (long long)json_integer_value(field(r, "numero")));
        json_object_set(by_num, n, r);
    }
    int same = json_object_size(by_num) == json_array_size(rows);
    json_array_foreach(json_object_get(list, "dossiers"), i, d) {
        char n[24];
        snprintf(n, sizeof(n), "%lld", (long long)json_integer_value(json_object_get(d, "number")));
        const char *st = json_string_value(json_object_get(d, "state"));
        json_t *row = json_object_get(by_num, n);
        int in = in_filter(st);
        if (!mark) {
            want_rows += in;
            if ((row != NULL) != in || (row && strcmp(json_string_value(field(row, "etat")), st)))
                same = 0;
        } else {
            want_rows++;
            if (!row || json_is_true(field(row, "supprime")) != !in ||
                (!in && !json_equal(field(row, "motif_suppression"), json_object_get(want_motif, "m"))) ||
                strcmp(json_string_value(field(row, "etat")), st) ||
                (in && !json_is_string(field(row, "usager_email"))))
                same = 0;
        }
        if (!same && verbose)
            printf("# %s: dossier %s (%s) differs\n", table, n, st), verbose = 0;
    }
    same = same && json_array_size(rows) == want_rows;
    json_decref(want_motif);
    json_decref(by_num);
    json_decref(rows);
    json_decref(list);
    return same;
}

static void wait_filter(d2g_testenv_t *env, int proc, const char *table, int mark) {
    int64_t end = d2g_clock_mono_ms() + 90000;
    while (!filter_synced(env, proc, table, mark, 0)) {
        if (d2g_clock_mono_ms() > end) {
            filter_synced(env, proc, table, mark, 1);
            fail_msg("%s never matched DS's dossiers through the filter", table);
        }
        d2g_test_sleep_ms(500);
    }
}

/* The first dossier of proc in a state (in or out of the filter) with repetition rows. */
static json_int_t pick(d2g_testenv_t *env, int proc, int in, json_int_t not) {
    json_t *list = d2g_stack_ds_get(env, proc, 0);
    json_int_t found = 0;
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(list, "dossiers"), i, d) {
        json_int_t num = json_integer_value(json_object_get(d, "number"));
        if (found || num == not || in_filter(json_string_value(json_object_get(d, "state"))) != in)
            continue;
        json_t *full = d2g_stack_ds_get(env, proc, num);
        size_t k, rows = 0;
        json_t *c;
        json_array_foreach(json_object_get(full, "champs"), k, c) rows += json_array_size(json_object_get(c, "rows"));
        json_decref(full);
        if (rows)
            found = num;
    }
    json_decref(list);
    assert_true(found > 0);
    return found;
}

/* Rows of a dossier in the procedure's repetition tables (<prefix>_*). */
static size_t child_rows(d2g_testenv_t *env, const char *prefix, json_int_t num) {
    char url[320];
    snprintf(url, sizeof(url), "%s/admin/docs/docA/tables", env->grist_url);
    json_t *tl = d2g_test_json("GET", url, NULL);
    size_t n = 0;
    const char *tid;
    json_t *t;
    json_object_foreach(json_object_get(tl, "tables"), tid, t)
        if (!strncmp(tid, prefix, strlen(prefix)) && tid[strlen(prefix)] == '_')
            n += d2g_stack_count(env, "docA", tid, "dossier", num);
    json_decref(tl);
    return n;
}

#define FILTER "\"filter\": {\"states\": [\"en_construction\", \"en_instruction\"]}"
static const char *PROCS_FILTER =
    "[{\"number\": 1401, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docA\","
    "  \"table_prefix\": \"Retirees\", \"options\": {\"deleted\": \"remove\"}, " FILTER "},"
    " {\"number\": 1402, \"ds_token\": \"main\", \"grist_server\": \"g\", \"document\": \"docA\","
    "  \"table_prefix\": \"Marquees\", " FILTER "}]";

static void test_filter_out(void **state) {
    d2g_testenv_t *env = *state;
    char cfg[900];
    d2g_test_proc_t producer, worker;
    start_emulators(env, "[{\"number\": 1401, \"dossiers\": 40}, {\"number\": 1402, \"dossiers\": 40}]");
    assert_int_equal(d2g_test_write_config(env, "ds2grist.json", PROCS_FILTER, 400, 8,
                                           "\"defaults\": {\"poll_interval_s\": 1}", cfg, sizeof(cfg)), 0);
    d2g_stack_spawn(env, &producer, D2G_PRODUCER_BIN, "producer", cfg);
    d2g_stack_spawn(env, &worker, D2G_WORKER_BIN, "worker", cfg);
    wait_filter(env, 1401, "Retirees", 0);
    wait_filter(env, 1402, "Marquees", 1);
    json_t *rows = d2g_stack_grist_rows(env, "docA", "Retirees");
    printf("# filter: %zu of 40 dossiers in the filter (remove mode)\n", json_array_size(rows));
    assert_true(json_array_size(rows) > 0 && json_array_size(rows) < 40);
    json_decref(rows);

    /* One dossier leaves the filter (accepte), one enters it (en_instruction), in each. */
    json_int_t leave_rm = pick(env, 1401, 1, 0), enter_rm = pick(env, 1401, 0, 0);
    json_int_t leave_mk = pick(env, 1402, 1, 0), enter_mk = pick(env, 1402, 0, 0);
    assert_true(child_rows(env, "Retirees", leave_rm) > 0);
    assert_int_equal(child_rows(env, "Retirees", enter_rm), 0);
    patch_dossier(env, 1401, leave_rm, "{\"state\": \"accepte\"}");
    patch_dossier(env, 1401, enter_rm, "{\"state\": \"en_instruction\"}");
    patch_dossier(env, 1402, leave_mk, "{\"state\": \"refuse\"}");
    patch_dossier(env, 1402, enter_mk, "{\"state\": \"en_instruction\"}");
    wait_filter(env, 1401, "Retirees", 0);
    wait_filter(env, 1402, "Marquees", 1);
    assert_int_equal(d2g_stack_count(env, "docA", "Retirees", "numero", leave_rm), 0);
    assert_int_equal(child_rows(env, "Retirees", leave_rm), 0); /* its repetition rows left too */
    assert_true(child_rows(env, "Retirees", enter_rm) > 0);     /* written whole */
    assert_true(child_rows(env, "Marquees", leave_mk) > 0);     /* mark mode keeps them */
    /* The removed one comes back into the filter: written again, its rows too. */
    patch_dossier(env, 1401, leave_rm, "{\"state\": \"en_construction\"}");
    wait_filter(env, 1401, "Retirees", 0);
    int64_t end = d2g_clock_mono_ms() + 30000;
    while (child_rows(env, "Retirees", leave_rm) == 0) {
        assert_true(d2g_clock_mono_ms() < end);
        d2g_test_sleep_ms(300);
    }
    printf("# filter: a dossier leaving the filter removed (remove) or marked hors_filtre (mark); one "
           "entering written whole\n");

    d2g_test_msgs_t dlq = {0};
    assert_int_equal(d2g_test_kafka_read_all(env, "ds2grist.dlq", &dlq), 0);
    assert_int_equal(dlq.n, 0);
    d2g_test_msgs_free(&dlq);
    assert_int_equal(d2g_test_proc_stop(&worker), 0);
    assert_int_equal(d2g_test_proc_stop(&producer), 0);
}

int main(void) {
    d2g_test_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_child_tables, d2g_stack_setup_kafka, d2g_stack_teardown),
        cmocka_unit_test_setup_teardown(test_filter_out, d2g_stack_setup_kafka, d2g_stack_teardown),
    };
    return cmocka_run_group_tests_name("mapping_opts", tests, NULL, NULL);
}
