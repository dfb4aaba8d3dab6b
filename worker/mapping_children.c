/*
 * mapping_children.c - the child tables that are not repetition blocks: the geo areas
 * of Carte champs (<prefix>_Zones), the avis (<prefix>_Avis) and, for procedures that
 * opt in, the messages (<prefix>_Messages). See mapping_int.h and docs/mapping.md.
 *
 * Like a block's table, each is keyed by ds_row_id (here DS's id of the area, avis or
 * message) and carries a row set per dossier, so an area, avis or message removed in
 * DS leaves Grist too. A row set is given only when the dossier holds the list (the
 * query selected it): an older query never empties a table.
 */
#include "mapping_int.h"
#include "ds2grist/alloc.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define DT "DateTime:Europe/Paris"

static const d2g_fixed_col_t zone_cols[] = {
    {"champ", "Champ", "Text", NULL, 0},
    {"source", "Source", "Text", NULL, 0},
    {"description", "Description", "Text", NULL, 0},
    {"type_geometrie", "Type de géométrie", "Text", NULL, 0},
    {"surface_m2", "Surface (m²)", "Numeric", NULL, 0},
    {"commune", "Commune (code INSEE)", "Text", NULL, 0},
    {"prefixe", "Préfixe", "Text", NULL, 0},
    {"section", "Section", "Text", NULL, 0},
    {"numero", "Numéro de parcelle", "Text", NULL, 0},
    {"surface_parcelle", "Surface de la parcelle (m²)", "Numeric", NULL, 0},
    {"geometrie", "Géométrie (GeoJSON)", "Text", NULL, 0},
    {"champ_id", "ID du champ DS", "Text", NULL, D2G_FIXED_TAIL},
};
static const d2g_fixed_col_t avis_cols[] = {
    {"question", "Question", "Text", NULL, 0},
    {"question_oui_non", "Question oui/non", "Text", NULL, 0},
    {"reponse_oui_non", "Réponse oui/non", "Bool", NULL, 0},
    {"reponse", "Réponse", "Text", NULL, 0},
    {"demandeur_email", "Demandé par", "Text", NULL, 0},
    {"expert_email", "Expert", "Text", NULL, 0},
    {"date_question", "Date de la question", DT, NULL, 0},
    {"date_reponse", "Date de la réponse", DT, NULL, 0},
    {"pieces_jointes", "Pièces jointes", "Text", NULL, 0},
};
static const d2g_fixed_col_t message_cols[] = {
    {"email", "Auteur", "Text", NULL, 0},
    {"corps", "Message", "Text", NULL, 0},
    {"date", "Date", DT, NULL, 0},
    {"supprime", "Supprimé", "Bool", NULL, 0},
    {"date_suppression", "Date de suppression", DT, NULL, 0},
    {"pieces_jointes", "Pièces jointes", "Text", NULL, 0},
};
static const d2g_fixed_col_t link_int[] = {{"dossier", "Dossier", "Int", NULL, 0}};
static const d2g_fixed_col_t link_ref[] = {{"dossier", "Dossier", NULL, NULL, 0}};
static const d2g_fixed_col_t keys[] = {
    {"ds_row_id", "ID DS", "Text", NULL, D2G_FIXED_TAIL},
    {"ds_dossier_numero", "Numéro du dossier", "Int", NULL, D2G_FIXED_TAIL},
};

/* The table (pseudo: its key in the procedure's table map, "#zones"...), created with
 * the dossier link first, cols, then the technical keys; its row set started. */
static table_b *other_table(builder_t *b, const char *pseudo, const char *suffix,
                            const d2g_fixed_col_t *cols, size_t n) {
    const d2g_mapping_ctx_t *ctx = b->ctx;
    char id[D2G_COLID_BUFLEN + 256];
    int created;
    if (d2g_colid_table(ctx->prefix, suffix, id, sizeof(id)) ||
        d2g_colmap_reserve(b->map, ctx->tables_scope, ctx->prefix)) {
        d2g_mb_oom(b);
        return NULL;
    }
    const char *tid = d2g_colmap_assign_id(b->map, ctx->tables_scope, pseudo, id);
    if (!tid) {
        d2g_mb_oom(b);
        return NULL;
    }
    table_b *t = d2g_mb_table(b, tid, "ds_row_id", d2g_mapping_dossier_key(ctx), &created);
    if (created && (d2g_mb_fixed(b, t, ctx->opts.ref_links ? link_ref : link_int, 1) ||
                    d2g_mb_fixed(b, t, cols, n) ||
                    d2g_mb_fixed(b, t, keys, ctx->opts.ref_links ? 2 : 1)))
        return NULL;
    if (created && ctx->opts.ref_links)
        d2g_mapping_link_column(b, t);
    if (!t->row_ids)
        t->row_ids = json_array();
    return t;
}

/* One row: fields (taken) completed with the dossier link. */
static int add_row(builder_t *b, table_b *t, const char *rid, json_t *fields) {
    if (d2g_mapping_link_cells(b, t, fields)) {
        json_decref(fields);
        return -1;
    }
    json_array_append_new(t->row_ids, json_string(rid));
    return d2g_mb_record(b, t->index, json_pack("{s:s}", "ds_row_id", rid), fields);
}

/* --- geo areas -------------------------------------------------------------------- */

/* Area of a lon/lat ring in m² on a sphere of the WGS84 mean radius (the spherical
 * excess formula GIS tools use for GeoJSON). */
static double ring_area(json_t *ring) {
    const double r = 6371008.8, rad = 3.14159265358979323846 / 180;
    size_t n = json_array_size(ring);
    double sum = 0;
    if (n < 3)
        return 0;
    for (size_t i = 0; i < n; i++) {
        json_t *p1 = json_array_get(ring, i), *p2 = json_array_get(ring, (i + 1) % n);
        json_t *p3 = json_array_get(ring, (i + 2) % n);
        sum += (json_number_value(json_array_get(p3, 0)) - json_number_value(json_array_get(p1, 0))) *
               rad * sin(json_number_value(json_array_get(p2, 1)) * rad);
    }
    return fabs(sum * r * r / 2);
}

static double polygon_area(json_t *rings) {
    size_t i;
    json_t *ring;
    double a = 0;
    json_array_foreach(rings, i, ring) a += i == 0 ? ring_area(ring) : -ring_area(ring);
    return a;
}

/* m² of a Polygon or MultiPolygon, null for other geometries. */
static json_t *area_cell(json_t *geometry) {
    const char *type = d2g_map_jstr(geometry, "type");
    json_t *coords = json_object_get(geometry, "coordinates"), *p;
    size_t i;
    double a = 0;
    if (type && strcmp(type, "Polygon") == 0)
        a = polygon_area(coords);
    else if (type && strcmp(type, "MultiPolygon") == 0)
        json_array_foreach(coords, i, p) a += polygon_area(p);
    else
        return json_null();
    return json_real(round(a * 100) / 100);
}

int d2g_mapping_geo_areas(builder_t *b, json_t *champ, const char *desc_id, const char *label) {
    json_t *areas = json_object_get(champ, "geoAreas"), *g;
    size_t i;
    if (!b->ctx->opts.geo_areas || !json_is_array(areas))
        return 0;
    table_b *t = other_table(b, "#zones", "Zones", zone_cols,
                             sizeof(zone_cols) / sizeof(zone_cols[0]));
    if (!t)
        return -1;
    json_array_foreach(areas, i, g) {
        const char *rid = d2g_map_jstr(g, "id");
        json_t *geom = json_object_get(g, "geometry");
        if (!rid || !*rid)
            continue; /* DS always gives one: nothing to key the row on otherwise */
        json_t *f = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                              "champ", label, "champ_id", desc_id, "source",
                              d2g_cell_text(json_object_get(g, "source")), "description",
                              d2g_cell_text(json_object_get(g, "description")), "type_geometrie",
                              d2g_cell_text(json_object_get(geom, "type")), "surface_m2",
                              area_cell(geom), "commune", d2g_cell_text(json_object_get(g, "commune")),
                              "prefixe", d2g_cell_text(json_object_get(g, "prefixe")), "section",
                              d2g_cell_text(json_object_get(g, "section")), "numero",
                              d2g_cell_text(json_object_get(g, "numero")), "surface_parcelle",
                              json_object_get(g, "surface")
                                  ? d2g_cell_numeric(json_object_get(g, "surface"), NULL)
                                  : json_null(),
                              "geometrie", d2g_cell_json(geom));
        if (add_row(b, t, rid, f))
            return -1;
    }
    return 0;
}

/* --- avis and messages --------------------------------------------------------------- */

static json_t *email_of(json_t *profile) {
    return d2g_map_str_or_null(d2g_map_jstr(profile, "email"));
}

static json_t *files_of(builder_t *b, json_t *files) {
    return json_is_array(files) ? d2g_cell_files(files, b->page) : json_null();
}

int d2g_mapping_avis_messages(builder_t *b, json_t *dossier) {
    json_t *avis = json_object_get(dossier, "avis"), *msgs = json_object_get(dossier, "messages");
    json_t *a;
    size_t i;
    if (b->ctx->opts.avis && json_is_array(avis)) {
        table_b *t = other_table(b, "#avis", "Avis", avis_cols,
                                 sizeof(avis_cols) / sizeof(avis_cols[0]));
        if (!t)
            return -1;
        json_array_foreach(avis, i, a) {
            const char *rid = d2g_map_jstr(a, "id");
            json_t *yes = json_object_get(a, "questionAnswer");
            if (!rid || !*rid)
                continue;
            json_t *f = json_pack(
                "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "question",
                d2g_cell_text(json_object_get(a, "question")), "question_oui_non",
                d2g_cell_text(json_object_get(a, "questionLabel")), "reponse_oui_non",
                json_is_boolean(yes) ? json_boolean(json_is_true(yes)) : json_null(), "reponse",
                d2g_cell_text(json_object_get(a, "reponse")), "demandeur_email",
                email_of(json_object_get(a, "claimant")), "expert_email",
                email_of(json_object_get(a, "expert")), "date_question",
                d2g_cell_date(d2g_map_jstr(a, "dateQuestion"), 1), "date_reponse",
                d2g_cell_date(d2g_map_jstr(a, "dateReponse"), 1), "pieces_jointes",
                files_of(b, json_object_get(a, "attachments")));
            if (add_row(b, t, rid, f))
                return -1;
        }
    }
    if (b->ctx->opts.messages && json_is_array(msgs)) {
        table_b *t = other_table(b, "#messages", "Messages", message_cols,
                                 sizeof(message_cols) / sizeof(message_cols[0]));
        if (!t)
            return -1;
        json_array_foreach(msgs, i, a) {
            const char *rid = d2g_map_jstr(a, "id"), *gone = d2g_map_jstr(a, "discardedAt");
            if (!rid || !*rid)
                continue;
            json_t *f = json_pack("{s:o, s:o, s:o, s:b, s:o, s:o}", "email",
                                  d2g_cell_text(json_object_get(a, "email")), "corps",
                                  d2g_cell_text(json_object_get(a, "body")), "date",
                                  d2g_cell_date(d2g_map_jstr(a, "createdAt"), 1), "supprime",
                                  gone != NULL, "date_suppression", d2g_cell_date(gone, 1),
                                  "pieces_jointes", files_of(b, json_object_get(a, "attachments")));
            if (add_row(b, t, rid, f))
                return -1;
        }
    }
    return 0;
}
