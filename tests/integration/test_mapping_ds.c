/*
 * test_mapping_ds.c - the producer's own query against the DS emulator, then the
 * mapping: every champ kind of the emulator's form gets its column with the right type
 * and its typed sub-columns filled, geo areas and avis get their tables, and no cell
 * holds an expiring attachment URL.
 *
 * The unit tests (test_mapping) pin every rule on hand-written DS-shaped JSON; this one
 * checks that what the query fetches and the emulator renders is what those rules read.
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

#include "ds2grist/champs.h"
#include "mapping.h"
#include "testenv.h"

static int setup(void **state) {
    d2g_testenv_t *env = calloc(1, sizeof(*env));
    *state = env;
    return d2g_testenv_init(env);
}

static int teardown(void **state) {
    d2g_testenv_stop(*state);
    free(*state);
    return 0;
}

static char *read_text(const char *path) {
    char *s = d2g_test_read_text(path);
    assert_non_null(s);
    return s;
}

/* The Grist type a descriptor kind must get (independent of the mapping's table). */
static const char *expected_type(const char *typename) {
    static const char *const t[][2] = {
        {"DateChampDescriptor", "Date"}, {"DatetimeChampDescriptor", "DateTime:Europe/Paris"},
        {"IntegerNumberChampDescriptor", "Int"}, {"DecimalNumberChampDescriptor", "Numeric"},
        {"CheckboxChampDescriptor", "Bool"}, {"YesNoChampDescriptor", "Bool"},
        {"DropDownListChampDescriptor", "Choice"},
        {"MultipleDropDownListChampDescriptor", "ChoiceList"},
        {"DossierLinkChampDescriptor", "Int"}, {"NumberChampDescriptor", "Numeric"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (!strcmp(t[i][0], typename))
            return t[i][1];
    return "Text";
}

/* Sub-columns (descriptor kind, key) that some dossier of the page must fill. */
static const char *const filled_subs[][2] = {
    {"CommuneChampDescriptor", "code_insee"},     {"CommuneChampDescriptor", "departement_code"},
    {"AddressChampDescriptor", "code_insee"},     {"AddressChampDescriptor", "longitude"},
    {"AddressChampDescriptor", "region_code"},    {"PaysChampDescriptor", "code"},
    {"RegionChampDescriptor", "code"},            {"DepartementChampDescriptor", "code"},
    {"EpciChampDescriptor", "code"},              {"SiretChampDescriptor", "raison_sociale"},
    {"SiretChampDescriptor", "naf"},              {"RNAChampDescriptor", "titre"},
    {"RNFChampDescriptor", "titre"},              {"LinkedDropDownListChampDescriptor", "principal"},
    {"EngagementJuridiqueChampDescriptor", "montant_engage"},
};

static const d2g_table_t *find_table(const d2g_mapped_t *m, const char *id) {
    for (size_t i = 0; i < m->n_tables; i++)
        if (!strcmp(m->tables[i].id, id))
            return &m->tables[i];
    return NULL;
}

static const char *column_type(const d2g_table_t *t, const char *id) {
    for (size_t i = 0; t && i < t->n_columns; i++)
        if (!strcmp(t->columns[i].id, id))
            return t->columns[i].type;
    return NULL;
}

/* A cell of a typed column has the JSON type the writer sends with noparse. */
static void check_cell_type(const char *type, json_t *v, const char *col) {
    if (json_is_null(v))
        return;
    int ok = 1;
    if (!strcmp(type, "Int") || !strcmp(type, "Date"))
        ok = json_is_integer(v);
    else if (!strncmp(type, "DateTime", 8) || !strcmp(type, "Numeric"))
        ok = json_is_number(v);
    else if (!strcmp(type, "Bool"))
        ok = json_is_boolean(v);
    else if (!strcmp(type, "ChoiceList"))
        ok = json_is_array(v);
    else if (!strcmp(type, "Text") || !strcmp(type, "Choice"))
        ok = json_is_string(v);
    if (!ok)
        fail_msg("column %s (%s): a cell of JSON type %d", col, type, json_typeof(v));
    if (json_is_string(v) && strstr(json_string_value(v), "Signature="))
        fail_msg("column %s holds an expiring URL: %s", col, json_string_value(v));
}

/* Two mappings of one dossier are the same: tables, columns, records. */
static void same_mapping(const d2g_mapped_t *a, const d2g_mapped_t *b, size_t dossier) {
    if (a->n_tables != b->n_tables || a->n_records != b->n_records)
        fail_msg("dossier %zu: %zu/%zu tables, %zu/%zu records", dossier, a->n_tables, b->n_tables,
                 a->n_records, b->n_records);
    for (size_t t = 0; t < a->n_tables; t++) {
        if (a->tables[t].n_columns != b->tables[t].n_columns)
            fail_msg("dossier %zu: %s: %zu/%zu columns", dossier, a->tables[t].id, a->tables[t].n_columns,
                     b->tables[t].n_columns);
        for (size_t c = 0; c < a->tables[t].n_columns; c++)
            if (strcmp(a->tables[t].columns[c].id, b->tables[t].columns[c].id) ||
                !json_equal(a->tables[t].columns[c].fields, b->tables[t].columns[c].fields))
                fail_msg("dossier %zu: column %s differs", dossier, a->tables[t].columns[c].id);
    }
    for (size_t r = 0; r < a->n_records; r++)
        if (!json_equal(a->records[r].require, b->records[r].require) ||
            !json_equal(a->records[r].fields, b->records[r].fields))
            fail_msg("dossier %zu: record %zu differs", dossier, r);
}

static void test_producer_query_then_mapping(void **state) {
    d2g_testenv_t *env = *state;
    assert_int_equal(d2g_testenv_start_ds(env,
        "{\"seed\": 3, \"procedures\": [{\"number\": 1001, \"dossiers\": 100}],"
        " \"tokens\": [{\"name\": \"t\", \"secret\": \"s3cret\", \"procedures\": \"*\"}]}"), 0);
    char *query = read_text(D2G_SOURCE_DIR "/producer/queries/dossiers.graphql");
    json_t *req = json_pack("{s:s, s:s, s:{s:i, s:i, s:b}}", "query", query, "operationName",
                            "getDossiers", "variables", "demarcheNumber", 1001, "first", 100,
                            "withRevision", 1);
    char *body = json_dumps(req, JSON_COMPACT), *resp = NULL;
    assert_int_equal(d2g_test_http("POST", env->ds_url, "s3cret", body, &resp), 200);
    json_t *j = json_loads(resp, 0, NULL);
    assert_non_null(j);
    assert_null(json_object_get(j, "errors"));
    json_t *dem = json_object_get(json_object_get(j, "data"), "demarche");
    json_t *rev = json_object_get(dem, "activeRevision");
    json_t *nodes = json_object_get(json_object_get(dem, "dossiers"), "nodes");
    assert_int_equal(json_array_size(nodes), 100);

    d2g_mapping_ctx_t *ctx;
    char err[512];
    d2g_mapping_opts_t opts;
    d2g_mapping_opts_default(&opts);
    opts.geo_areas = opts.avis = 1;
    assert_int_equal(d2g_mapping_ctx_new_opts(1001, "Subventions", "https://ds.example", rev, &opts,
                                              &ctx, err, sizeof(err)),
                     0);
    d2g_colmap_t *map = d2g_colmap_new();
    /* The producer leaves out the `columns` the mapping never reads (champs.h): the
     * mapping of a dossier so pruned must be the same, with the form and without. */
    json_t *ruled = d2g_champs_ruled_descriptors(rev);
    d2g_mapping_ctx_t *bare;
    assert_int_equal(d2g_mapping_ctx_new_opts(1001, "Subventions", "https://ds.example", NULL, &opts, &bare,
                                              err, sizeof(err)),
                     0);
    d2g_colmap_t *bare_map = d2g_colmap_new(), *bare_map2 = d2g_colmap_new();
    size_t pruned = 0, full_bytes = 0, slim_bytes = 0;
    json_t *descs = json_object_get(rev, "champDescriptors");
    size_t nsubs = sizeof(filled_subs) / sizeof(filled_subs[0]);
    int *filled = calloc(nsubs, sizeof(int));
    int zones_parcels = 0, avis_rows = 0, link_numbers = 0;
    size_t i, k;
    json_t *d, *desc;
    json_array_foreach(nodes, i, d) {
        d2g_mapped_t out;
        if (d2g_mapping_map_dossier(ctx, d, 0, map, &out, err, sizeof(err)))
            fail_msg("dossier %zu: %s", i, err);
        const d2g_table_t *main = find_table(&out, "Subventions");
        json_t *fields = out.records[0].fields;
        /* every champ of the form: its column, the type its kind says */
        json_array_foreach(descs, k, desc) {
            const char *tn = json_string_value(json_object_get(desc, "__typename"));
            const char *did = json_string_value(json_object_get(desc, "id"));
            if (strstr(tn, "Repetition") || strstr(tn, "HeaderSection") || strstr(tn, "Explication"))
                continue;
            const char *cid = d2g_colmap_lookup(map, "Subventions", did);
            if (!cid || !column_type(main, cid))
                fail_msg("no column for %s (%s)", did, tn);
            if (strcmp(column_type(main, cid), expected_type(tn)))
                fail_msg("%s: %s, want %s", tn, column_type(main, cid), expected_type(tn));
            if (!strcmp(tn, "DossierLinkChampDescriptor") &&
                json_is_integer(json_object_get(fields, cid)))
                link_numbers++;
            for (size_t s = 0; s < nsubs; s++) {
                if (strcmp(filled_subs[s][0], tn))
                    continue;
                char key[256];
                snprintf(key, sizeof(key), "%s/%s", did, filled_subs[s][1]);
                const char *sid = d2g_colmap_lookup(map, "Subventions", key);
                if (!sid || !column_type(main, sid))
                    fail_msg("no sub-column %s of %s", filled_subs[s][1], tn);
                if (!json_is_null(json_object_get(fields, sid)))
                    filled[s]++;
            }
        }
        /* every cell of every table has its column's type; no expiring URL anywhere */
        for (size_t r = 0; r < out.n_records; r++) {
            const d2g_table_t *t = &out.tables[out.records[r].table_index];
            const char *col;
            json_t *v;
            json_object_foreach(out.records[r].fields, col, v) {
                const char *type = column_type(t, col);
                if (!type)
                    fail_msg("%s: a cell for %s, which has no column", t->id, col);
                check_cell_type(type, v, col);
            }
            if (!strcmp(t->id, "Subventions_Zones") &&
                json_is_string(json_object_get(out.records[r].fields, "section")))
                zones_parcels++;
            if (!strcmp(t->id, "Subventions_Avis"))
                avis_rows++;
        }
        json_t *slim = json_deep_copy(d);
        pruned += d2g_champs_prune(slim, ruled);
        char *t1 = json_dumps(d, JSON_COMPACT), *t2 = json_dumps(slim, JSON_COMPACT);
        full_bytes += strlen(t1);
        slim_bytes += strlen(t2);
        free(t1);
        free(t2);
        d2g_mapped_t out2, bare1, bare2;
        if (d2g_mapping_map_dossier(ctx, slim, 0, map, &out2, err, sizeof(err)) ||
            d2g_mapping_map_dossier(bare, d, 0, bare_map, &bare1, err, sizeof(err)) ||
            d2g_mapping_map_dossier(bare, slim, 0, bare_map2, &bare2, err, sizeof(err)))
            fail_msg("dossier %zu pruned: %s", i, err);
        same_mapping(&out, &out2, i);
        same_mapping(&bare1, &bare2, i);
        d2g_mapped_clear(&out2);
        d2g_mapped_clear(&bare1);
        d2g_mapped_clear(&bare2);
        json_decref(slim);
        d2g_mapped_clear(&out);
    }
    assert_true(pruned > 0);
    printf("# columns left out by the producer: %zu champs, messages %.1f -> %.1f kB; the same mapping with "
           "the form and without\n", pruned, (double)full_bytes / 100 / 1000, (double)slim_bytes / 100 / 1000);
    json_decref(ruled);
    d2g_colmap_free(bare_map);
    d2g_colmap_free(bare_map2);
    d2g_mapping_ctx_free(bare);
    for (size_t s = 0; s < nsubs; s++)
        if (!filled[s])
            fail_msg("no dossier filled %s of %s", filled_subs[s][1], filled_subs[s][0]);
    assert_true(link_numbers > 0);
    assert_true(zones_parcels > 0);
    assert_true(avis_rows > 0);
    printf("# 100 dossiers of the emulator mapped: %d cadastre parcels, %d avis, %d dossier links\n",
           zones_parcels, avis_rows, link_numbers);
    free(filled);
    d2g_colmap_free(map);
    d2g_mapping_ctx_free(ctx);
    json_decref(j);
    json_decref(req);
    free(resp);
    free(body);
    free(query);
}

int main(void) {
    d2g_test_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_producer_query_then_mapping, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
