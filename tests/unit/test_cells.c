/*
 * test_cells.c - sending only what changed (worker/cells.c, plan.c): the
 * digests of a dossier's rows and the upserts planned against them.
 *
 *   codec         digests survive encoding; malformed bytes decode to nothing
 *   diff          one cell of 61 changed: that cell and the modification date;
 *                 nothing changed: nothing; another column set or no digest: all
 *   plan_diff     an unchanged dossier plans no request; a changed one a noadd
 *                 body with the key, the changed cell and the date (3 cells);
 *                 a new child row in full in a body without noadd; a dossier
 *                 without digest in full
 *   missing       a diff PUT's answer naming a row not found: that row written
 *                 again in full; an answer that does not tell: nothing
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

#include "cells.h"
#include "plan.h"

#define WIDE 61

/* A dossier of number with a 61-field Dossiers row (field 7 = v7) and kids
 * child rows; fields and require owned by the records (freed by clear_dossier). */
static void make_dossier(d2g_mapped_t *m, int64_t number, const char *v7, int date, size_t kids) {
    memset(m, 0, sizeof(*m));
    m->number = number;
    m->records = calloc(kids + 1, sizeof(d2g_record_t));
    d2g_record_t *r = &m->records[0];
    r->table = "Dossiers";
    r->table_index = 0;
    r->require = json_pack("{s:I}", "numero", (json_int_t)number);
    r->fields = json_object();
    json_object_set_new(r->fields, "numero", json_integer(number));
    json_object_set_new(r->fields, "date_derniere_modification", json_integer(1700000000 + date));
    for (int c = 2; c < WIDE; c++) {
        char name[16], val[32];
        snprintf(name, sizeof(name), "champ_%d", c);
        snprintf(val, sizeof(val), "valeur %d", c);
        json_object_set_new(r->fields, name, json_string(c == 7 ? v7 : val));
    }
    for (size_t k = 0; k < kids; k++) {
        d2g_record_t *c = &m->records[1 + k];
        char id[32];
        snprintf(id, sizeof(id), "row-%zu", k);
        c->table = "Dossiers_Bloc";
        c->table_index = 1;
        c->require = json_pack("{s:s}", "ds_row_id", id);
        c->fields = json_pack("{s:I, s:s, s:i}", "dossier", (json_int_t)number, "nom", id, "rang", (int)k);
    }
    m->n_records = kids + 1;
}

static void clear_dossier(d2g_mapped_t *m) {
    for (size_t r = 0; r < m->n_records; r++) {
        json_decref(m->records[r].require);
        json_decref(m->records[r].fields);
    }
    free(m->records);
    memset(m, 0, sizeof(*m));
}

static void test_codec(void **state) {
    (void)state;
    d2g_mapped_t m;
    make_dossier(&m, 42, "a", 0, 3);
    d2g_cells_t c = {0}, back = {0};
    d2g_cells_of(&m, &c);
    assert_int_equal(c.n, 4);
    assert_int_equal(c.v[0].n, WIDE);
    size_t len = 0;
    char *bytes = d2g_cells_encode(&c, &len);
    assert_int_equal(len, 2 + (14 + 4 * WIDE) + 3 * (14 + 4 * 3));
    assert_int_equal(d2g_cells_decode(bytes, len, &back), 0);
    assert_int_equal(back.n, c.n);
    for (size_t i = 0; i < c.n; i++) {
        assert_true(back.v[i].key == c.v[i].key);
        assert_int_equal(back.v[i].colset, c.v[i].colset);
        assert_int_equal(back.v[i].n, c.v[i].n);
        assert_memory_equal(back.v[i].h, c.v[i].h, 4 * c.v[i].n);
    }
    /* Cut short, or not ours: no digest (the rows are written in full). */
    assert_int_equal(d2g_cells_decode(bytes, len - 1, &back), -1);
    assert_int_equal(back.n, 0);
    assert_int_equal(d2g_cells_decode("u1234", 5, &back), -1);
    assert_int_equal(d2g_cells_decode("", 0, &back), 0);
    assert_int_equal(back.n, 0);
    free(bytes);
    d2g_cells_t none = {0};
    bytes = d2g_cells_encode(&none, &len);
    assert_int_equal(len, 0);
    free(bytes);
    /* Types count: 1 and "1" and 1.0 differ, as do [] and null. */
    json_t *a = json_integer(1), *b = json_string("1"), *d = json_real(1.0), *e = json_array(), *n = json_null();
    assert_int_not_equal(d2g_cells_value(a), d2g_cells_value(b));
    assert_int_not_equal(d2g_cells_value(a), d2g_cells_value(d));
    assert_int_not_equal(d2g_cells_value(e), d2g_cells_value(n));
    json_decref(a);
    json_decref(b);
    json_decref(d);
    json_decref(e);
    json_decref(n);
    d2g_cells_clear(&c);
    d2g_cells_clear(&back);
    clear_dossier(&m);
}

static void test_diff(void **state) {
    (void)state;
    d2g_mapped_t was, now;
    make_dossier(&was, 42, "a", 0, 0);
    d2g_cells_t c = {0};
    d2g_cells_of(&was, &c);
    unsigned char send[WIDE + 8];
    /* The same row: nothing. */
    make_dossier(&now, 42, "a", 0, 0);
    assert_int_equal(d2g_cells_diff(&now.records[0], &c.v[0], d2g_plan_keep_columns, send), 0);
    clear_dossier(&now);
    /* One cell of 61 and the date changed: those two. */
    make_dossier(&now, 42, "b", 1, 0);
    assert_int_equal(d2g_cells_diff(&now.records[0], &c.v[0], d2g_plan_keep_columns, send), 2);
    /* Only the cell changed (same date): the date is sent with it anyway. */
    clear_dossier(&now);
    make_dossier(&now, 42, "b", 0, 0);
    assert_int_equal(d2g_cells_diff(&now.records[0], &c.v[0], d2g_plan_keep_columns, send), 2);
    size_t k = 0;
    const char *name;
    json_t *v;
    json_object_foreach(now.records[0].fields, name, v) {
        int want = !strcmp(name, "champ_7") || !strcmp(name, "date_derniere_modification");
        assert_int_equal(send[k], want);
        k++;
    }
    assert_int_equal(d2g_cells_diff(&now.records[0], &c.v[0], NULL, send), 1);
    /* No digest: in full. */
    assert_int_equal(d2g_cells_diff(&now.records[0], NULL, NULL, send), -1);
    for (k = 0; k < WIDE; k++)
        assert_int_equal(send[k], 1);
    /* A column more (the form changed): in full. */
    json_object_set_new(now.records[0].fields, "champ_nouveau", json_string("x"));
    assert_int_equal(d2g_cells_diff(&now.records[0], &c.v[0], NULL, send), -1);
    clear_dossier(&now);
    d2g_cells_clear(&c);
    clear_dossier(&was);
}

/* Cells in a PUT body: require values and fields of every record. */
static size_t body_cells(const char *body) {
    json_t *b = json_loads(body, 0, NULL);
    assert_non_null(b);
    size_t n = 0, i;
    json_t *r;
    json_array_foreach(json_object_get(b, "records"), i, r)
        n += json_object_size(json_object_get(r, "require")) + json_object_size(json_object_get(r, "fields"));
    json_decref(b);
    return n;
}

static void test_plan_diff(void **state) {
    (void)state;
    d2g_mapped_t old[3], cur[3];
    d2g_cells_t cells[3] = {{0}};
    for (int i = 0; i < 3; i++) {
        make_dossier(&old[i], 100 + i, "a", 0, 2);
        d2g_cells_of(&old[i], &cells[i]);
    }
    make_dossier(&cur[0], 100, "a", 0, 2); /* unchanged */
    make_dossier(&cur[1], 101, "b", 5, 2); /* one champ changed */
    make_dossier(&cur[2], 102, "a", 0, 3); /* a new child row, the rest unchanged */
    d2g_mapped_t *v[] = {&cur[0], &cur[1], &cur[2]};
    const d2g_cells_t *prior[] = {&cells[0], &cells[1], &cells[2]};
    int too_big[3], sends[3];
    d2g_ops_t ops = {0};

    /* Unchanged alone: no request at all. */
    d2g_plan_puts_diff(v, 1, 900000, prior, &ops, too_big, sends);
    assert_int_equal(ops.n, 0);
    assert_int_equal(sends[0], 0);

    d2g_plan_puts_diff(v, 3, 900000, prior, &ops, too_big, sends);
    assert_int_equal(sends[0], 0);
    assert_int_equal(sends[1], 1);
    assert_int_equal(sends[2], 1);
    /* Dossiers: the changed one as a diff (noadd); child table: the new row in full. */
    assert_int_equal(ops.n, 2);
    const d2g_op_t *dos = NULL, *kid = NULL;
    for (size_t k = 0; k < ops.n; k++) {
        if (!strcmp(ops.v[k].table, "Dossiers"))
            dos = &ops.v[k];
        else
            kid = &ops.v[k];
    }
    assert_non_null(dos);
    assert_non_null(kid);
    assert_non_null(strstr(dos->path, "noadd=1"));
    assert_int_equal(dos->rows, 1);
    assert_non_null(dos->src);
    assert_int_equal(dos->src[0].item, 1);
    assert_int_equal(dos->src[0].record, 0);
    assert_int_equal(body_cells(dos->body), 3); /* numero (the key), champ_7, the date */
    assert_non_null(strstr(dos->body, "\"champ_7\":\"b\""));
    assert_non_null(strstr(dos->body, "date_derniere_modification"));
    assert_null(strstr(kid->path, "noadd"));
    assert_null(kid->src);
    assert_int_equal(kid->rows, 1);
    assert_non_null(strstr(kid->body, "row-2"));
    d2g_ops_clear(&ops);

    /* Without digests (Redis lost them): every row in full, none with noadd. */
    d2g_plan_puts_diff(v, 3, 900000, NULL, &ops, too_big, sends);
    size_t rows = 0;
    for (size_t k = 0; k < ops.n; k++) {
        assert_null(strstr(ops.v[k].path, "noadd"));
        rows += ops.v[k].rows;
    }
    assert_int_equal(rows, 3 + 2 + 2 + 3);
    d2g_ops_clear(&ops);
    for (int i = 0; i < 3; i++) {
        d2g_cells_clear(&cells[i]);
        clear_dossier(&old[i]);
        clear_dossier(&cur[i]);
    }
}

static void test_missing(void **state) {
    (void)state;
    d2g_mapped_t old[2], cur[2];
    d2g_cells_t cells[2] = {{0}};
    for (int i = 0; i < 2; i++) {
        make_dossier(&old[i], 200 + i, "a", 0, 0);
        d2g_cells_of(&old[i], &cells[i]);
        make_dossier(&cur[i], 200 + i, "z", 1, 0);
    }
    d2g_mapped_t *v[] = {&cur[0], &cur[1]};
    const d2g_cells_t *prior[] = {&cells[0], &cells[1]};
    int too_big[2], sends[2];
    d2g_ops_t ops = {0};
    d2g_plan_puts_diff(v, 2, 900000, prior, &ops, too_big, sends);
    assert_int_equal(ops.n, 1);
    assert_int_equal(ops.v[0].rows, 2);
    /* Grist updated the first, did not have the second (someone removed it). */
    json_t *answer = json_loads("{\"recordIds\": [[7], []], \"addRecordIds\": [], \"updateRecordIds\": [[7]]}", 0, NULL);
    size_t n = 0;
    d2g_op_src_t *miss = d2g_plan_missing(&ops.v[0], answer, &n);
    assert_int_equal(n, 1);
    assert_int_equal(miss[0].item, 1);
    d2g_ops_t refill = {0};
    d2g_plan_refill(v, miss, n, 900000, &refill);
    assert_int_equal(refill.n, 1);
    assert_null(strstr(refill.v[0].path, "noadd"));
    assert_int_equal(refill.v[0].rows, 1);
    assert_int_equal(body_cells(refill.v[0].body), 1 + WIDE);
    assert_non_null(strstr(refill.v[0].body, "\"numero\":201"));
    free(miss);
    d2g_ops_clear(&refill);
    json_decref(answer);
    /* Older servers answer null: nothing known, nothing planned. */
    answer = json_null();
    miss = d2g_plan_missing(&ops.v[0], answer, &n);
    assert_null(miss);
    assert_int_equal(n, 0);
    json_decref(answer);
    d2g_ops_clear(&ops);
    for (int i = 0; i < 2; i++) {
        d2g_cells_clear(&cells[i]);
        clear_dossier(&old[i]);
        clear_dossier(&cur[i]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec),
        cmocka_unit_test(test_diff),
        cmocka_unit_test(test_plan_diff),
        cmocka_unit_test(test_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
