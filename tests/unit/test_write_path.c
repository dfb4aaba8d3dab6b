/*
 * test_write_path.c - the pure logic of the worker's write path: lanes
 * (queue, backoff, parking, log lines), schema needs and changes, the
 * planning of requests, and what an answer's error may show.
 *
 *   choices_20000    a repetition of 20,000 rows with 20,000 distinct drop-down
 *                    values: mapped, needs and changes in well under a second
 *                    (printed), every value among the choices once
 *   find_urls        5,000 dossiers' look-ups: no URL over the limit, every
 *                    dossier once; numbers above 2^31 exact
 *   deletes          a look-up's answer: only rows DS no longer has go
 *   finds_on_dossier_col  child rows found and read back by the table's dossier_col
 *   ref_links_migration   `dossier` renamed ds_dossier_numero before the Ref formula is
 *                    added; ref_links off on a linked table: a conflict, not a write
 *   oversized        a dossier whose row cannot fit is refused, the others planned
 *   backoff          alternating success and failure: the delay grows, and only a
 *                    batch without failure resets it; Retry-After honoured, bounded
 *   parking          401/404 park at once; repeated 5xx park after a few tries
 *   collapse         newer replaces, older is absorbed, labels merge
 *   log_repeats      100 identical errors: 1 log line
 *   error_text       a proxy's HTML page echoing the key: never shown; Grist's own
 *                    error with a secret in it: scrubbed; cut at a UTF-8 boundary
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
#include <time.h>
#include <unistd.h>

#include "lane.h"
#include "mapping.h"
#include "plan.h"
#include "schema.h"
#include "views.h"

#include "ds2grist/clock.h"
#include "ds2grist/grist.h"
#include "ds2grist/text.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A dossier with one repetition block of rows rows, each with a drop-down
 * whose value is distinct when distinct, else the same for all. */
static json_t *big_repetition(int64_t number, size_t rows, int distinct) {
    json_t *list = json_array();
    for (size_t i = 0; i < rows; i++) {
        char id[32], value[32];
        snprintf(id, sizeof(id), "row-%zu", i);
        snprintf(value, sizeof(value), "valeur %zu", distinct ? i : (size_t)0);
        json_array_append_new(list, json_pack("{s:s, s:[{s:s, s:s, s:s, s:s, s:s}]}", "id", id, "champs",
                                              "__typename", "DropDownListChamp", "id", id,
                                              "champDescriptorId", "D-niv", "label", "Niveau",
                                              "stringValue", value));
    }
    return json_pack("{s:s, s:I, s:s, s:s, s:[{s:s, s:s, s:s, s:s, s:s, s:o}], s:[]}", "id", "RG9zc2llcg==",
                     "number", (json_int_t)number, "state", "en_construction",
                     "dateDerniereModification", "2026-03-14T15:06:26+01:00", "champs", "__typename",
                     "RepetitionChamp", "id", "C1", "champDescriptorId", "D-rep", "label",
                     "Bénéficiaires", "stringValue", "", "rows", list, "annotations");
}

static const char REVISION[] =
    "{\"id\": \"rev\", \"champDescriptors\": [{\"__typename\": \"RepetitionChampDescriptor\", \"id\": \"D-rep\","
    " \"label\": \"Bénéficiaires\", \"champDescriptors\": [{\"__typename\": \"DropDownListChampDescriptor\","
    " \"id\": \"D-niv\", \"label\": \"Niveau\", \"options\": []}]}], \"annotationDescriptors\": []}";

static void test_choices_20000(void **state) {
    (void)state;
    json_t *rev = json_loads(REVISION, 0, NULL);
    assert_non_null(rev);
    d2g_mapping_ctx_t *ctx = NULL;
    char err[256];
    assert_int_equal(d2g_mapping_ctx_new(7, "Subventions", "https://ds.example", rev, &ctx, err, sizeof(err)), 0);
    for (int distinct = 0; distinct <= 1; distinct++) {
        json_t *dossier = big_repetition(1, 20000, distinct);
        d2g_colmap_t *map = d2g_colmap_new();
        d2g_mapped_t m = {0};
        double t0 = now_s();
        assert_int_equal(d2g_mapping_map_dossier(ctx, dossier, 0, map, &m, err, sizeof(err)), 0);
        double t1 = now_s();
        d2g_mapped_t *v[] = {&m};
        d2g_need_t *need = d2g_plan_need(v, 1);
        d2g_schema_t *s = d2g_schema_new();
        json_t *none = json_pack("{s:[]}", "tables");
        d2g_schema_read_tables(s, none);
        json_t *changes = d2g_schema_changes(s, need);
        double t2 = now_s();
        printf("repetition of 20,000 rows, %s drop-down values: mapped in %.3f s, schema planned in %.3f s\n",
               distinct ? "20,000 distinct" : "one", t1 - t0, t2 - t1);
        /* One POST /tables; the child table's drop-down column holds each value once. */
        assert_int_equal(json_array_size(changes), 1);
        json_t *body = json_loads(json_string_value(json_object_get(json_array_get(changes, 0), "body")), 0, NULL);
        size_t i, found = 0;
        json_t *t;
        json_array_foreach(json_object_get(body, "tables"), i, t) {
            if (strcmp(json_string_value(json_object_get(t, "id")), "Subventions_Beneficiaires"))
                continue; /* the dossiers table's own choices (etat...) */
            size_t k;
            json_t *c;
            json_array_foreach(json_object_get(t, "columns"), k, c) {
                const char *wo = json_string_value(json_object_get(json_object_get(c, "fields"), "widgetOptions"));
                json_t *opts = wo ? json_loads(wo, 0, NULL) : NULL;
                json_t *ch = json_object_get(opts, "choices");
                if (json_array_size(ch) > 0) {
                    assert_int_equal(json_array_size(ch), distinct ? 20000 : 1);
                    found++;
                }
                json_decref(opts);
            }
        }
        assert_int_equal(found, 1);
        json_decref(body);
        json_decref(changes);
        json_decref(none);
        d2g_schema_free(s);
        d2g_need_free(need);
        d2g_mapped_clear(&m);
        d2g_colmap_free(map);
        json_decref(dossier);
    }
    d2g_mapping_ctx_free(ctx);
    json_decref(rev);
}

static void test_find_urls(void **state) {
    (void)state;
    enum { N = 5000 };
    d2g_mapped_t *ms = calloc(N, sizeof(d2g_mapped_t));
    d2g_mapped_t **v = calloc(N, sizeof(*v));
    d2g_rowset_t *rs = calloc(N, sizeof(d2g_rowset_t));
    for (size_t i = 0; i < N; i++) {
        rs[i].table = "Subventions_Beneficiaires";
        rs[i].dossier = 3000000000LL + (int64_t)i; /* above 2^31 */
        rs[i].row_ids = json_pack("[s]", "r");
        ms[i].rowsets = &rs[i];
        ms[i].n_rowsets = 1;
        v[i] = &ms[i];
    }
    d2g_ops_t ops = {0};
    d2g_plan_finds(v, N, NULL, &ops);
    assert_true(ops.n > 1);
    json_t *seen = json_object();
    size_t longest = 0;
    for (size_t k = 0; k < ops.n; k++) {
        size_t len = strlen(ops.v[k].path);
        longest = len > longest ? len : longest;
        assert_true(len <= D2G_PLAN_FIND_URL_MAX + 200);
        const char *key;
        json_t *ids;
        json_object_foreach(ops.v[k].keep, key, ids) {
            assert_null(json_object_get(seen, key));
            json_object_set_new(seen, key, json_true());
        }
    }
    assert_int_equal(json_object_size(seen), N);
    assert_non_null(json_object_get(seen, "3000004999"));
    printf("%d dossiers' look-ups: %zu requests, longest path %zu bytes\n", N, ops.n, longest);
    json_decref(seen);
    d2g_ops_clear(&ops);
    for (size_t i = 0; i < N; i++)
        json_decref(rs[i].row_ids);
    free(rs);
    free(v);
    free(ms);
}

static void test_deletes(void **state) {
    (void)state;
    d2g_op_t find = {0};
    find.table = "T";
    find.keep = json_loads("{\"5\": {\"a\": true}, \"6\": {}}", 0, NULL);
    json_t *answer = json_loads("{\"records\": ["
                                "{\"id\": 1, \"fields\": {\"dossier\": 5, \"ds_row_id\": \"a\"}},"
                                "{\"id\": 2, \"fields\": {\"dossier\": 5, \"ds_row_id\": \"b\"}},"
                                "{\"id\": 3, \"fields\": {\"dossier\": 6, \"ds_row_id\": \"c\"}},"
                                "{\"id\": 4, \"fields\": {\"dossier\": 7, \"ds_row_id\": \"d\"}}]}", 0, NULL);
    d2g_ops_t ops = {0};
    assert_int_equal(d2g_plan_deletes(&find, answer, &ops), 0);
    assert_int_equal(ops.n, 1);
    assert_string_equal(ops.v[0].body, "[2,3]"); /* 5's b and 6's c; 7 was not asked about */
    assert_string_equal(ops.v[0].path, "/tables/T/data/delete");
    d2g_ops_clear(&ops);
    json_decref(answer);
    answer = json_loads("{\"error\": \"x\"}", 0, NULL);
    assert_int_equal(d2g_plan_deletes(&find, answer, &ops), -1);
    json_decref(answer);
    json_decref(find.keep);
}

/* With ref_links a child table's dossier number is in ds_dossier_numero (its
 * dossier_col): rows are found by it and read back from it, never by "dossier". */
static void test_finds_on_dossier_col(void **state) {
    (void)state;
    d2g_table_t tables[2] = {{.id = "S", .key = "numero"},
                             {.id = "S_Avis", .key = "ds_row_id", .dossier_col = "ds_dossier_numero"}};
    d2g_rowset_t rs = {.table = "S_Avis", .table_index = 1, .dossier = 5,
                       .row_ids = json_pack("[s]", "a")};
    d2g_mapped_t m = {.number = 5, .tables = tables, .n_tables = 2, .rowsets = &rs, .n_rowsets = 1};
    d2g_mapped_t *v[] = {&m};
    d2g_ops_t ops = {0};
    d2g_plan_finds(v, 1, NULL, &ops);
    assert_int_equal(ops.n, 1);
    assert_string_equal(ops.v[0].path, "/tables/S_Avis/records?filter=%7B%22ds_dossier_numero%22%3A%5B5%5D%7D");
    assert_string_equal(ops.v[0].column, "ds_dossier_numero");
    /* the dossier column holds the Ref (a Grist row id): only ds_dossier_numero tells */
    json_t *answer = json_loads("{\"records\": ["
                                "{\"id\": 1, \"fields\": {\"dossier\": 1, \"ds_dossier_numero\": 5, \"ds_row_id\": \"a\"}},"
                                "{\"id\": 2, \"fields\": {\"dossier\": 1, \"ds_dossier_numero\": 5, \"ds_row_id\": \"b\"}}]}",
                                0, NULL);
    d2g_ops_t del = {0};
    assert_int_equal(d2g_plan_deletes(&ops.v[0], answer, &del), 0);
    assert_int_equal(del.n, 1);
    assert_string_equal(del.v[0].body, "[2]");
    d2g_ops_clear(&del);
    d2g_ops_clear(&ops);
    /* without ref_links: "dossier" */
    tables[1].dossier_col = "dossier";
    d2g_plan_finds(v, 1, NULL, &ops);
    assert_string_equal(ops.v[0].column, "dossier");
    assert_non_null(strstr(ops.v[0].path, "%22dossier%22"));
    d2g_ops_clear(&ops);
    json_decref(answer);
    json_decref(rs.row_ids);
}

/* The schema of a document whose child table was made without ref_links:
 * Subventions and Subventions_Beneficiaires with `dossier` an Int data column. */
static d2g_schema_t *schema_without_ref_links(int linked) {
    d2g_schema_t *s = d2g_schema_new();
    json_t *tables = json_pack("{s:[{s:s}, {s:s}]}", "tables", "id", "Subventions", "id",
                               "Subventions_Beneficiaires");
    d2g_schema_read_tables(s, tables);
    json_decref(tables);
    json_t *cols = linked
        ? json_pack("{s:[{s:s, s:{s:s, s:b, s:s}}, {s:s, s:{s:s, s:b, s:s}}]}", "columns", "id", "dossier",
                    "fields", "type", "Ref:Subventions", "isFormula", 1, "formula",
                    "Subventions.lookupOne(numero=$ds_dossier_numero)", "id", "ds_dossier_numero", "fields",
                    "type", "Int", "isFormula", 0, "formula", "")
        : json_pack("{s:[{s:s, s:{s:s, s:b, s:s}}, {s:s, s:{s:s, s:b, s:s}}]}", "columns", "id", "dossier",
                    "fields", "type", "Int", "isFormula", 0, "formula", "", "id", "ds_row_id", "fields",
                    "type", "Text", "isFormula", 0, "formula", "");
    d2g_schema_read_columns(s, "Subventions_Beneficiaires", cols);
    json_decref(cols);
    json_t *none = json_pack("{s:[]}", "columns");
    d2g_schema_read_columns(s, "Subventions", none);
    json_decref(none);
    return s;
}

static d2g_need_t *need_of(int ref_links, d2g_mapped_t *m, d2g_colmap_t *map) {
    json_t *rev = json_loads(REVISION, 0, NULL);
    d2g_mapping_ctx_t *ctx = NULL;
    d2g_mapping_opts_t opts;
    char err[256];
    d2g_mapping_opts_default(&opts);
    opts.ref_links = ref_links;
    assert_int_equal(d2g_mapping_ctx_new_opts(7, "Subventions", "https://ds.example", rev, &opts, &ctx,
                                              err, sizeof(err)), 0);
    json_t *dossier = big_repetition(1, 2, 1);
    assert_int_equal(d2g_mapping_map_dossier(ctx, dossier, 0, map, m, err, sizeof(err)), 0);
    d2g_mapped_t *v[] = {m};
    d2g_need_t *need = d2g_plan_need(v, 1);
    json_decref(dossier);
    d2g_mapping_ctx_free(ctx);
    json_decref(rev);
    return need;
}

/* The tables a batch creates: their technical columns and the child table's Ref are
 * the views work (views.h) once Grist made them under their ids; the read names them,
 * the write removes only their fields and sets the Ref's display. */
static void test_views_planned(void **state) {
    (void)state;
    d2g_colmap_t *map = d2g_colmap_new();
    d2g_mapped_t m = {0};
    d2g_need_t *need = need_of(1, &m, map);
    d2g_schema_t *s = d2g_schema_new();
    json_t *none = json_pack("{s:[]}", "tables");
    d2g_schema_read_tables(s, none);
    json_decref(none);
    json_t *changes = d2g_schema_changes(s, need), *create = json_array_get(changes, 0);
    assert_string_equal(json_string_value(json_object_get(create, "path")), "/tables");
    json_t *hide = json_object_get(json_object_get(create, "views"), "hide");
    const char *const dossier_tech[] = {"ds_id", "groupe_instructeur_id", "supprime", "date_suppression",
                                        "motif_suppression"};
    for (size_t i = 0; i < 5; i++)
        assert_true(json_is_true(json_object_get(json_object_get(hide, "Subventions"), dossier_tech[i])));
    assert_int_equal(json_object_size(json_object_get(hide, "Subventions")), 5);
    assert_int_equal(json_object_size(json_object_get(hide, "Subventions_Beneficiaires")), 2);
    assert_null(json_object_get(json_object_get(hide, "Subventions_Beneficiaires"), "dossier"));
    /* Grist made the child table under another id: only the dossiers table is ours */
    json_t *renamed = json_pack("{s:[{s:s}, {s:s}]}", "tables", "id", "Subventions", "id", "Subventions_Beneficiaires2");
    d2g_schema_applied(s, create, renamed);
    json_decref(renamed);
    json_t *pending = d2g_schema_views(s);
    assert_non_null(pending);
    assert_null(json_object_get(json_object_get(pending, "hide"), "Subventions_Beneficiaires"));
    assert_int_equal(json_object_size(json_object_get(pending, "refs")), 0);
    d2g_schema_views_done(s);
    assert_null(d2g_schema_views(s));
    json_t *made = json_pack("{s:[{s:s}, {s:s}]}", "tables", "id", "Subventions", "id", "Subventions_Beneficiaires");
    d2g_schema_applied(s, create, made);
    json_decref(made);
    pending = d2g_schema_views(s);
    char *query = d2g_views_query(pending);
    json_t *q = json_loads(query, 0, NULL);
    const char *sql = json_string_value(json_object_get(q, "sql"));
    assert_non_null(strstr(sql, "s.id <> t.rawViewSectionRef"));
    assert_non_null(strstr(sql, " UNION ALL "));
    assert_int_equal(json_array_size(json_object_get(q, "args")), 1 + 5 + 1 + 2 + 1);
    json_decref(q);
    free(query);
    /* the answer: two fields of pending columns, one of a column an agent works with
     * (never removed), the dossiers table's number */
    json_t *answer = json_pack(
        "{s:[{s:{s:s, s:i, s:s, s:s}}, {s:{s:s, s:i, s:s, s:s}}, {s:{s:s, s:i, s:s, s:s}}, {s:{s:s, s:i, s:s, s:s}}]}",
        "records", "fields", "what", "hide", "ref", 11, "tbl", "Subventions", "col", "ds_id", "fields", "what",
        "hide", "ref", 12, "tbl", "Subventions", "col", "etat", "fields", "what", "hide", "ref", 13, "tbl",
        "Subventions_Beneficiaires", "col", "ds_row_id", "fields", "what", "visible", "ref", 2, "tbl",
        "Subventions", "col", "numero");
    char err[256];
    char *actions = d2g_views_actions(pending, answer, err, sizeof(err));
    assert_string_equal(actions, "[[\"BulkRemoveRecord\",\"_grist_Views_section_field\",[11,13]],"
                                 "[\"ModifyColumn\",\"Subventions_Beneficiaires\",\"dossier\",{\"visibleCol\":2}],"
                                 "[\"SetDisplayFormula\",\"Subventions_Beneficiaires\",null,\"dossier\","
                                 "\"$dossier.numero\"]]");
    free(actions);
    json_decref(answer);
    answer = json_pack("{s:s}", "error", "insufficient document access");
    assert_null(d2g_views_actions(pending, answer, err, sizeof(err)));
    assert_non_null(strstr(err, "no records"));
    json_decref(answer);
    json_decref(changes);
    d2g_schema_free(s);
    d2g_need_free(need);
    d2g_mapped_clear(&m);
    d2g_colmap_free(map);
}

/* ref_links turned on for a document that has child tables: `dossier` is renamed
 * ds_dossier_numero first (rows keep their numbers), then the Ref formula added. */
static void test_ref_links_migration(void **state) {
    (void)state;
    d2g_colmap_t *map = d2g_colmap_new();
    d2g_mapped_t m = {0};
    d2g_need_t *need = need_of(1, &m, map);
    d2g_schema_t *s = schema_without_ref_links(0);
    char why[256];
    assert_int_equal(d2g_schema_conflict(s, need, why, sizeof(why)), 0);
    json_t *changes = d2g_schema_changes(s, need);
    json_t *first = NULL, *add = NULL;
    size_t i;
    json_t *c;
    json_array_foreach(changes, i, c) {
        if (strcmp(json_string_value(json_object_get(c, "table")), "Subventions_Beneficiaires"))
            continue;
        if (!first)
            first = c;
        else if (!strcmp(json_string_value(json_object_get(c, "method")), "POST"))
            add = c;
    }
    assert_non_null(first);
    assert_string_equal(json_string_value(json_object_get(first, "method")), "PATCH");
    assert_string_equal(json_string_value(json_object_get(first, "body")),
                        "{\"columns\":[{\"id\":\"dossier\",\"fields\":{\"colId\":\"ds_dossier_numero\","
                        "\"label\":\"Numéro du dossier\"}}]}");
    assert_non_null(add);
    json_t *body = json_loads(json_string_value(json_object_get(add, "body")), 0, NULL);
    int saw_ref = 0;
    json_array_foreach(json_object_get(body, "columns"), i, c) {
        const char *id = json_string_value(json_object_get(c, "id"));
        assert_string_not_equal(id, "ds_dossier_numero"); /* the rename makes it */
        if (!strcmp(id, "dossier")) {
            saw_ref = 1;
            json_t *fields = json_object_get(c, "fields");
            assert_string_equal(json_string_value(json_object_get(fields, "type")), "Ref:Subventions");
            assert_true(json_is_true(json_object_get(fields, "isFormula")));
        }
    }
    assert_true(saw_ref);
    /* the renamed number leaves the pages, the new Ref gets its display (views.h) */
    json_t *views = json_object_get(add, "views");
    assert_true(json_is_true(json_object_get(json_object_get(json_object_get(views, "hide"),
                                                             "Subventions_Beneficiaires"), "ds_dossier_numero")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(views, "refs"), "Subventions_Beneficiaires")),
                        "Subventions");
    json_decref(body);
    json_decref(changes);
    d2g_schema_free(s);
    /* already linked: nothing to migrate */
    s = schema_without_ref_links(1);
    changes = d2g_schema_changes(s, need);
    json_array_foreach(changes, i, c)
        assert_null(strstr(json_string_value(json_object_get(c, "body")), "colId"));
    assert_int_equal(d2g_schema_conflict(s, need, why, sizeof(why)), 0);
    json_decref(changes);
    d2g_need_free(need);
    d2g_mapped_clear(&m);
    /* ref_links off again on the linked table: Grist would refuse every write to the
     * formula column; the writer is told so (it parks the lane) instead of writing */
    need = need_of(0, &m, map);
    assert_int_equal(d2g_schema_conflict(s, need, why, sizeof(why)), 1);
    assert_non_null(strstr(why, "Subventions_Beneficiaires.dossier is a formula column"));
    assert_non_null(strstr(why, "mapping.ref_links"));
    d2g_schema_free(s);
    d2g_need_free(need);
    d2g_mapped_clear(&m);
    d2g_colmap_free(map);
}

static void test_oversized(void **state) {
    (void)state;
    d2g_mapped_t a = {0}, b = {0};
    d2g_record_t ra = {0}, rb = {0};
    char *big = malloc(3000001);
    memset(big, 'x', 3000000);
    big[3000000] = '\0';
    ra.table = rb.table = "T";
    ra.require = json_pack("{s:i}", "numero", 1);
    ra.fields = json_pack("{s:s}", "texte", big);
    rb.require = json_pack("{s:i}", "numero", 2);
    rb.fields = json_pack("{s:s}", "texte", "petit");
    a.records = &ra;
    a.n_records = 1;
    b.records = &rb;
    b.n_records = 1;
    d2g_mapped_t *v[] = {&a, &b};
    int too_big[2];
    d2g_ops_t ops = {0};
    d2g_plan_puts(v, 2, 900000, &ops, too_big);
    assert_int_equal(too_big[0], 1);
    assert_int_equal(too_big[1], 0);
    assert_int_equal(ops.n, 1);
    assert_int_equal(ops.v[0].rows, 1);
    assert_non_null(strstr(ops.v[0].body, "petit"));
    d2g_ops_clear(&ops);
    /* The measuring check (used before the schema is made) refuses exactly what
     * d2g_plan_puts refuses, byte for byte around the limit. */
    int measured[2];
    d2g_plan_too_big(v, 2, 900000, measured);
    assert_int_equal(measured[0], 1);
    assert_int_equal(measured[1], 0);
    json_t *rec = json_pack("{s:O, s:O}", "require", rb.require, "fields", rb.fields);
    char *text = json_dumps(rec, JSON_COMPACT);
    size_t len = strlen(text);
    free(text);
    json_decref(rec);
    for (size_t limit = len + 28; limit < len + 36; limit++) {
        d2g_plan_puts(v + 1, 1, limit, &ops, too_big);
        d2g_ops_clear(&ops);
        d2g_plan_too_big(v + 1, 1, limit, measured);
        assert_int_equal(measured[0], too_big[0]);
    }
    json_decref(ra.require);
    json_decref(ra.fields);
    json_decref(rb.require);
    json_decref(rb.fields);
    free(big);
}

static void test_backoff(void **state) {
    (void)state;
    d2g_lane_t l;
    memset(&l, 0, sizeof(l));
    snprintf(l.doc.label, sizeof(l.doc.label), "main/doc");
    unsigned rng = 1;
    int64_t now = 1000000, last = 0, grew = 0;
    /* A proxy failing every other request: each batch has a failure. */
    for (int round = 0; round < 8; round++) {
        d2g_lane_failed(&l, now, D2G_GRIST_RETRY, D2G_LANE_UNAVAILABLE, -1, "HTTP 502", &rng);
        int64_t delay = l.next_try - now;
        grew += delay > last;
        last = delay;
        d2g_lane_succeeded(&l, 0); /* the retry went through; the batch was not clean */
        assert_int_equal(l.state, D2G_LANE_ACTIVE);
    }
    assert_int_equal(l.failures, 8);
    assert_true(last >= 10000); /* 200 ms doubling, with jitter: well past 10 s by the 8th */
    assert_true(grew >= 4);
    d2g_lane_succeeded(&l, 1);
    assert_int_equal(l.failures, 0);
    /* Retry-After: honoured, bounded at 5 min. */
    d2g_lane_failed(&l, now, D2G_GRIST_RETRY, D2G_LANE_UNAVAILABLE, 120000, NULL, &rng);
    assert_true(l.next_try - now >= 120000);
    d2g_lane_failed(&l, now, D2G_GRIST_RETRY, D2G_LANE_UNAVAILABLE, 365LL * 86400000, NULL, &rng);
    assert_true(l.next_try - now <= 300000);
    assert_int_equal(d2g_grist_retry_after_ms("120", 300000), 120000);
    assert_int_equal(d2g_grist_retry_after_ms("99999999999999999999", 300000), 300000);
    assert_int_equal(d2g_grist_retry_after_ms("", 300000), -1);
    assert_int_equal(d2g_grist_retry_after_ms("soon", 300000), -1);
    assert_int_equal(d2g_grist_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 300000), 0);
}

static void test_parking(void **state) {
    (void)state;
    d2g_lane_t l;
    memset(&l, 0, sizeof(l));
    unsigned rng = 1;
    int64_t until = 0;
    assert_int_equal(d2g_lane_failed(&l, 0, D2G_GRIST_DOCUMENT, D2G_LANE_AUTH, -1, "HTTP 401", &rng),
                     D2G_LANE_PARKED);
    assert_true(d2g_lane_parked(&l, 0, &until));
    assert_string_equal(l.reason, "auth");
    assert_string_equal(l.error, "HTTP 401");
    d2g_lane_succeeded(&l, 0); /* a probe went through */
    assert_false(d2g_lane_parked(&l, 0, NULL));
    d2g_lane_succeeded(&l, 1);
    int parked_at = 0;
    for (int i = 1; i <= 10 && !parked_at; i++)
        if (d2g_lane_failed(&l, 0, D2G_GRIST_RETRY, D2G_LANE_UNAVAILABLE, -1, NULL, &rng) == D2G_LANE_PARKED)
            parked_at = i;
    assert_int_equal(parked_at, 5);
}

static d2g_item_t *item(int64_t number, const char *modified, int partial, const char *labels) {
    d2g_item_t *it = calloc(1, sizeof(*it));
    char text[512];
    snprintf(text, sizeof(text),
             "{\"v\":1,\"kind\":\"upsert\",\"procedure\":7,\"number\":%lld,\"modified\":\"%s\","
             "\"fetched_at\":\"2026-01-01T00:00:00Z\",%s\"dossier\":{\"number\":%lld,\"labels\":%s}}",
             (long long)number, modified, partial ? "\"partial\":true," : "", (long long)number, labels);
    char err[256];
    assert_int_equal(d2g_envelope_decode(text, strlen(text), &it->env, err, sizeof(err)), 0);
    it->msgs = calloc(1, sizeof(d2g_msgref_t));
    it->n_msgs = it->cap_msgs = 1;
    d2g_envelope_key(7, number, it->key, sizeof(it->key));
    return it;
}

static void test_collapse(void **state) {
    (void)state;
    d2g_lane_t l;
    memset(&l, 0, sizeof(l));
    l.index = json_object();
    d2g_lane_add(&l, item(5000000000LL, "2026-03-02T00:00:00Z", 0, "[\"a\"]"));
    d2g_lane_add(&l, item(5000000000LL, "2026-03-01T00:00:00Z", 0, "[\"old\"]")); /* older: absorbed */
    assert_int_equal(l.n_queued, 1);
    assert_string_equal(l.head->env.modified, "2026-03-02T00:00:00Z");
    assert_int_equal(l.head->n_msgs, 2);
    d2g_lane_add(&l, item(5000000000LL, "2026-03-02T00:00:00Z", 1, "[\"b\"]")); /* labels: merged */
    assert_int_equal(l.n_queued, 1);
    assert_false(l.head->env.partial);
    assert_string_equal(json_string_value(json_array_get(json_object_get(l.head->env.dossier, "labels"), 0)), "b");
    d2g_lane_add(&l, item(5000000000LL, "2026-03-03T00:00:00Z", 0, "[]")); /* newer: replaces */
    assert_string_equal(l.head->env.modified, "2026-03-03T00:00:00Z");
    assert_int_equal(l.head->n_msgs, 4);
    assert_string_equal(l.head->key, "7:5000000000");
    size_t n = 0;
    d2g_item_t **items = d2g_lane_take_all(&l, &n);
    assert_int_equal(n, 1);
    d2g_item_free(items[0]);
    free(items);
    json_decref(l.index);
}

static void test_log_repeats(void **state) {
    (void)state;
    d2g_lane_t l;
    memset(&l, 0, sizeof(l));
    snprintf(l.doc.label, sizeof(l.doc.label), "main/doc");
    char path[] = "/tmp/d2g-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    for (int i = 0; i < 100; i++)
        d2g_lane_log(&l, D2G_LOG_WARN, "put", "grist_retry", "HTTP 502", "PUT /tables/T/records: retry");
    d2g_lane_log(&l, D2G_LOG_WARN, "put", "grist_retry", "HTTP 503", "PUT /tables/T/records: retry");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fdopen(fd, "r");
    rewind(f);
    char line[2048];
    int lines = 0;
    while (fgets(line, sizeof(line), f))
        lines++;
    fclose(f);
    unlink(path);
    assert_int_equal(lines, 2);
    assert_int_equal(l.repeats, 0);
}

static void test_error_text(void **state) {
    (void)state;
    const char *secrets[] = {"grist-secret-key", "ds-token-123"};
    char out[256];
    /* A proxy's page echoing the request's headers. */
    const char *html = "<html><pre>Authorization: Bearer grist-secret-key\r\nHost: x</pre></html>";
    d2g_http_response_t r = {.status = 400, .body = html, .body_len = strlen(html), .retry_after = ""};
    d2g_grist_error_text(&r, secrets, 2, out, sizeof(out));
    assert_null(strstr(out, "grist-secret-key"));
    assert_null(strstr(out, "Authorization"));
    assert_string_equal(out, "HTTP 400 (not a Grist API answer)");
    assert_int_equal(d2g_grist_classify(&r), D2G_GRIST_REFUSED);
    /* Grist's own error, with a secret in it (a URL echoed back). */
    const char *js = "{\"error\": \"bad value grist-secret-key\"}";
    r.body = js;
    r.body_len = strlen(js);
    d2g_grist_error_text(&r, secrets, 2, out, sizeof(out));
    assert_string_equal(out, "HTTP 400: bad value ***");
    /* Cut in the middle of a character: still valid UTF-8. */
    char longer[600] = "{\"error\": \"";
    for (int i = 0; i < 150; i++)
        strcat(longer, "é");
    strcat(longer, "\"}");
    r.body = longer;
    r.body_len = strlen(longer);
    char small[41];
    d2g_grist_error_text(&r, secrets, 2, small, sizeof(small));
    assert_true(d2g_text_valid_utf8(small, strlen(small)));
    assert_true(strlen(small) >= 38);
    /* 404s: Grist's own for a table, for the document, and a proxy's. */
    const char *t404 = "{\"error\": \"Table not found \\\"T\\\"\"}", *d404 = "{\"error\": \"document not found\"}";
    d2g_http_response_t n = {.status = 404, .body = t404, .body_len = strlen(t404), .retry_after = ""};
    assert_int_equal(d2g_grist_classify(&n), D2G_GRIST_MISSING);
    n.body = d404;
    n.body_len = strlen(d404);
    assert_int_equal(d2g_grist_classify(&n), D2G_GRIST_DOCUMENT);
    n.body = "<html>nope</html>";
    n.body_len = strlen(n.body);
    assert_int_equal(d2g_grist_classify(&n), D2G_GRIST_REFUSED);
    n.status = 401;
    assert_int_equal(d2g_grist_classify(&n), D2G_GRIST_DOCUMENT);
    n.status = 502;
    assert_int_equal(d2g_grist_classify(&n), D2G_GRIST_RETRY);
}

int main(void) {
    d2g_log_init("test", D2G_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_choices_20000), cmocka_unit_test(test_find_urls),
        cmocka_unit_test(test_deletes),       cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_finds_on_dossier_col), cmocka_unit_test(test_ref_links_migration),
        cmocka_unit_test(test_views_planned),
        cmocka_unit_test(test_backoff),       cmocka_unit_test(test_parking),
        cmocka_unit_test(test_collapse),      cmocka_unit_test(test_log_repeats),
        cmocka_unit_test(test_error_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
