/*
 * bench_pipeline.c - the worker's CPU per dossier for decode + mapping + batching, on
 * the DS emulator's own dossiers (the full form: every champ kind, typed columns,
 * repetition rows, geo areas), on one core, stage by stage. Printed figures only.
 *
 *   bench_pipeline [--dossiers N] [--batch N]
 *
 * The dossiers come from the producer's own query (producer/queries/dossiers.graphql)
 * against the DS emulator, wrapped in envelopes as the producer emits them (without
 * the `columns` the mapping never reads, champs.h). Then, as a
 * worker's batch does (worker/flush.c), per batch of --batch dossiers: decode each
 * message (d2g_envelope_decode), map it with the form (d2g_mapping_map_dossier), the
 * schema needs (d2g_plan_need), the upsert bodies (d2g_plan_puts_diff, first write:
 * full rows), the row digests kept for the next write (d2g_cells_of), then an update
 * of the same dossiers with nothing changed (diffed against those digests: nothing to
 * send), and everything freed. CPU time (CLOCK_PROCESS_CPUTIME_ID) per stage.
 *
 * The target is 5,000 dossiers/s per core (0.2 ms per dossier); the figure for
 * jansson's json_loadb alone on the same messages is printed beside it, as the floor
 * of a worker that parses every message once.
 */
#include "cells.h"
#include "ds2grist/alloc.h"
#include "ds2grist/champs.h"
#include "ds2grist/envelope.h"
#include "mapping.h"
#include "plan.h"
#include "testenv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "bench_pipeline: %s\n", what);
    exit(1);
}

static char *read_text(const char *path) {
    char *s = d2g_test_read_text(path);
    if (!s)
        die("cannot read the producer's query");
    return s;
}

enum { ST_DECODE, ST_MAP, ST_NEED, ST_PUTS, ST_CELLS, ST_DIFF, ST_FREE, ST_N };
static const char *const stage_names[ST_N] = {
    "decode (envelope + dossier JSON)", "mapping", "schema needs", "upsert bodies (full rows)",
    "row digests", "unchanged update (diff)", "free"};

int main(int argc, char **argv) {
    int dossiers = 2000, batch = 200, page = 100;
    d2g_alloc_init(); /* as the worker: jansson through d2g_malloc, glibc tuned */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dossiers") && i + 1 < argc)
            dossiers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_pipeline [--dossiers N] [--batch N]\n");
            return 2;
        }
    }
    if (dossiers < 1 || batch < 1)
        die("--dossiers and --batch must be positive");

    /* The messages: the DS emulator's dossiers, a page at a time, as the producer fetches them. */
    d2g_testenv_t env;
    memset(&env, 0, sizeof(env));
    if (d2g_testenv_init(&env))
        die("test environment");
    char cfgtext[256];
    snprintf(cfgtext, sizeof(cfgtext),
             "{\"seed\": 5, \"procedures\": [{\"number\": 1001, \"dossiers\": %d}],"
             " \"tokens\": [{\"name\": \"t\", \"secret\": \"s3cret\", \"procedures\": \"*\"}]}",
             dossiers);
    if (d2g_testenv_start_ds(&env, cfgtext))
        die("DS emulator");
    char *query = read_text(D2G_SOURCE_DIR "/producer/queries/dossiers.graphql");
    char **msgs = calloc((size_t)dossiers, sizeof(char *));
    size_t *lens = calloc((size_t)dossiers, sizeof(size_t));
    size_t n = 0, bytes = 0;
    json_t *rev = NULL, *after = json_null(), *ruled = NULL;
    char err[512];
    while ((int)n < dossiers) {
        json_t *req = json_pack("{s:s, s:s, s:{s:i, s:i, s:O, s:b}}", "query", query, "operationName",
                                "getDossiers", "variables", "demarcheNumber", 1001, "first", page,
                                "after", after, "withRevision", rev == NULL);
        char *body = json_dumps(req, JSON_COMPACT), *resp = NULL;
        json_decref(req);
        if (d2g_test_http("POST", env.ds_url, "s3cret", body, &resp) != 200)
            die("DS query refused");
        free(body);
        json_t *j = json_loads(resp, 0, NULL);
        free(resp);
        json_t *dem = json_object_get(json_object_get(j, "data"), "demarche");
        json_t *conn = json_object_get(dem, "dossiers");
        if (!rev) {
            rev = json_incref(json_object_get(dem, "activeRevision"));
            ruled = d2g_champs_ruled_descriptors(rev);
        }
        json_t *nodes = json_object_get(conn, "nodes");
        size_t k;
        json_t *node;
        json_array_foreach(nodes, k, node) {
            if ((int)n == dossiers)
                break;
            d2g_champs_prune(node, ruled); /* as the producer does (champs.h) */
            msgs[n] = d2g_envelope_encode(D2G_ENVELOPE_UPSERT, 0, 1001, node, 0, &lens[n], err, sizeof(err));
            if (!msgs[n])
                die(err);
            bytes += lens[n++];
        }
        json_t *info = json_object_get(conn, "pageInfo");
        json_decref(after);
        after = json_incref(json_object_get(info, "endCursor"));
        int more = json_is_true(json_object_get(info, "hasNextPage"));
        json_decref(j);
        if (!more)
            break;
    }
    json_decref(after);
    json_decref(ruled);
    free(query);
    d2g_testenv_stop(&env);
    if (!n || !rev)
        die("no dossiers from the DS emulator");

    d2g_mapping_ctx_t *ctx;
    d2g_mapping_opts_t opts;
    d2g_mapping_opts_default(&opts);
    if (d2g_mapping_ctx_new_opts(1001, "Subventions", "https://ds.example", rev, &opts, &ctx, err, sizeof(err)))
        die(err);
    d2g_colmap_t *colmap = d2g_colmap_new();

    /* jansson alone: the floor of parsing each message once. */
    double t0 = cpu_s();
    for (size_t i = 0; i < n; i++)
        json_decref(json_loadb(msgs[i], lens[i], 0, NULL));
    double parse_only = cpu_s() - t0;

    double spent[ST_N] = {0};
    size_t records = 0, cells_sent = 0, body_bytes = 0, puts = 0;
    d2g_envelope_t *envs = calloc((size_t)batch, sizeof(*envs));
    d2g_mapped_t *mapped = calloc((size_t)batch, sizeof(*mapped));
    d2g_mapped_t **v = calloc((size_t)batch, sizeof(*v));
    d2g_cells_t *cells = calloc((size_t)batch, sizeof(*cells));
    const d2g_cells_t **prior = calloc((size_t)batch, sizeof(*prior));
    int *too_big = calloc((size_t)batch, sizeof(int)), *sends = calloc((size_t)batch, sizeof(int));
    for (size_t start = 0; start < n; start += (size_t)batch) {
        size_t m = n - start < (size_t)batch ? n - start : (size_t)batch;
        double t = cpu_s(), u;
        for (size_t i = 0; i < m; i++)
            if (d2g_envelope_decode(msgs[start + i], lens[start + i], &envs[i], err, sizeof(err)))
                die(err);
        spent[ST_DECODE] += (u = cpu_s()) - t;
        for (size_t i = 0; i < m; i++) {
            if (d2g_mapping_map_dossier(ctx, envs[i].dossier, 0, colmap, &mapped[i], err, sizeof(err)))
                die(err);
            v[i] = &mapped[i];
            records += mapped[i].n_records;
        }
        spent[ST_MAP] += (t = cpu_s()) - u;
        d2g_need_free(d2g_plan_need(v, m));
        spent[ST_NEED] += (u = cpu_s()) - t;
        d2g_ops_t ops = {0};
        d2g_plan_puts_diff(v, m, 900000, NULL, &ops, too_big, sends);
        for (size_t k = 0; k < ops.n; k++)
            body_bytes += strlen(ops.v[k].body);
        puts += ops.n;
        d2g_ops_clear(&ops);
        spent[ST_PUTS] += (t = cpu_s()) - u;
        for (size_t i = 0; i < m; i++) {
            d2g_cells_of(&mapped[i], &cells[i]);
            prior[i] = &cells[i];
        }
        spent[ST_CELLS] += (u = cpu_s()) - t;
        d2g_plan_puts_diff(v, m, 900000, prior, &ops, too_big, sends);
        for (size_t k = 0; k < ops.n; k++)
            cells_sent += strlen(ops.v[k].body);
        d2g_ops_clear(&ops);
        spent[ST_DIFF] += (t = cpu_s()) - u;
        for (size_t i = 0; i < m; i++) {
            d2g_cells_clear(&cells[i]);
            d2g_mapped_clear(&mapped[i]);
            d2g_envelope_clear(&envs[i]);
        }
        spent[ST_FREE] += cpu_s() - t;
    }
    double total = 0, worker = 0;
    for (int s = 0; s < ST_N; s++) {
        total += spent[s];
        if (s != ST_CELLS && s != ST_DIFF)
            worker += spent[s];
    }
    printf("# bench_pipeline: %zu dossiers of the DS emulator's full form, %.1f kB of message each, "
           "batches of %d, one core\n", n, (double)bytes / (double)n / 1000.0, batch);
    for (int s = 0; s < ST_N; s++)
        printf("#   %-34s %7.3f ms per dossier (%4.1f%%)\n", stage_names[s], spent[s] * 1000.0 / (double)n,
               100.0 * spent[s] / total);
    printf("# a first write (decode, mapping, needs, bodies, digests, free): %.3f ms per dossier, "
           "%.0f dossiers/s per core (target 5,000: %.2f of it)\n",
           (worker + spent[ST_CELLS]) * 1000.0 / (double)n, (double)n / (worker + spent[ST_CELLS]),
           (double)n / (worker + spent[ST_CELLS]) / 5000.0);
    printf("# jansson's json_loadb alone on the same messages: %.3f ms per dossier (%.0f MB/s)\n",
           parse_only * 1000.0 / (double)n, (double)bytes / parse_only / 1e6);
    printf("# %zu records, %zu PUT bodies, %.1f kB of body per dossier; the unchanged update sent %zu bytes\n",
           records, puts, (double)body_bytes / (double)n / 1000.0, cells_sent);
    printf("RESULT dossiers=%zu message_kB=%.1f ms_per_dossier=%.3f dossiers_s=%.0f parse_ms=%.3f "
           "decode_ms=%.3f map_ms=%.3f bodies_ms=%.3f free_ms=%.3f\n",
           n, (double)bytes / (double)n / 1000.0, (worker + spent[ST_CELLS]) * 1000.0 / (double)n,
           (double)n / (worker + spent[ST_CELLS]), parse_only * 1000.0 / (double)n,
           spent[ST_DECODE] * 1000.0 / (double)n, spent[ST_MAP] * 1000.0 / (double)n,
           spent[ST_PUTS] * 1000.0 / (double)n, spent[ST_FREE] * 1000.0 / (double)n);
    free(envs);
    free(mapped);
    free(v);
    free(cells);
    free(prior);
    free(too_big);
    free(sends);
    for (size_t i = 0; i < n; i++)
        free(msgs[i]);
    free(msgs);
    free(lens);
    d2g_colmap_free(colmap);
    d2g_mapping_ctx_free(ctx);
    json_decref(rev);
    return 0;
}
