/*
 * bench_mapping.c - how fast one core maps dossiers (worker/mapping), printed figures.
 *
 *   bench_mapping [--dossiers N] [--rows N]
 *
 * 1. Throughput: N typical dossiers (24 champs of every common kind, composite ones
 *    with their typed fields, 2 annotations, a block of 3 rows), with the form known,
 *    mapped one after the other as a worker does: dossiers/s on one core.
 * 2. A worst case for quadratic work: one dossier whose block has R rows, each with a
 *    drop-down value seen nowhere else (R distinct choices), mapped without the form
 *    then with it. Linear work maps 20,000 such rows well under a second.
 * Nothing is asserted (a benchmark prints, tests judge): CTest runs a small size to
 * keep it working.
 */
#include "mapping.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static json_t *champ(const char *type, const char *desc, const char *label, const char *sv) {
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "__typename", type, "id", desc,
                     "champDescriptorId", desc, "label", label, "stringValue", sv);
}

static json_t *descriptor(const char *type, const char *id, const char *label) {
    char t[96];
    snprintf(t, sizeof(t), "%sDescriptor", type);
    return json_pack("{s:s, s:s, s:s, s:b}", "__typename", t, "id", id, "label", label,
                     "required", 0);
}

/* The typical dossier and its form. */
static json_t *typical(json_t **revision) {
    static const char *const kinds[][3] = {
        {"TextChamp", "Nom du projet", "Jardin partagé"},
        {"TextChamp", "Description", "Un jardin ouvert à tous"},
        {"DateChamp", "Date de début", "2026-04-01"},
        {"DatetimeChamp", "Rendez-vous", "2026-04-01T10:00:00+02:00"},
        {"IntegerNumberChamp", "Nombre de bénévoles", "12"},
        {"DecimalNumberChamp", "Montant demandé", "2500.5"},
        {"CheckboxChamp", "J'accepte", "true"},
        {"YesNoChamp", "Déjà financé", "false"},
        {"DropDownListChamp", "Type de structure", "Association"},
        {"MultipleDropDownListChamp", "Publics", "Enfants, Seniors"},
        {"LinkedDropDownListChamp", "Thème", "Nature / Jardin"},
        {"CommuneChamp", "Commune du projet", "Quimper (29000)"},
        {"AddressChamp", "Adresse", "1 rue de la Paix 29000 Quimper"},
        {"DepartementChamp", "Département", "29 – Finistère"},
        {"RegionChamp", "Région", "Bretagne"},
        {"PaysChamp", "Pays", "France"},
        {"EpciChamp", "EPCI", "Quimper Bretagne Occidentale"},
        {"SiretChamp", "SIRET", "13002526500013"},
        {"RNAChamp", "RNA", "W123456789"},
        {"DossierLinkChamp", "Dossier lié", "41"},
        {"EngagementJuridiqueChamp", "EJ", "1300000001"},
        {"PieceJustificativeChamp", "Devis", "devis.pdf"},
        {"CarteChamp", "Zone", "1 zone"},
        {"TextChamp", "Contact", "contact@example.org"},
    };
    json_t *champs = json_array(), *descs = json_array();
    char id[32];
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        snprintf(id, sizeof(id), "D-%zu", i);
        json_t *c = champ(kinds[i][0], id, kinds[i][1], kinds[i][2]);
        if (!strcmp(kinds[i][0], "CommuneChamp"))
            json_object_set_new(c, "commune", json_pack("{s:s, s:s, s:s}", "name", "Quimper",
                                                        "code", "29232", "postalCode", "29000"));
        if (!strcmp(kinds[i][0], "AddressChamp"))
            json_object_set_new(c, "address",
                                json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s, s:[f,f]}}", "label",
                                          kinds[i][2], "postalCode", "29000", "cityName",
                                          "Quimper", "cityCode", "29232", "departmentCode", "29",
                                          "geometry", "type", "Point", "coordinates", -4.1, 48.0));
        if (!strcmp(kinds[i][0], "PieceJustificativeChamp"))
            json_object_set_new(c, "files", json_pack("[{s:s, s:s, s:s}]", "filename", "devis.pdf",
                                                      "contentType", "application/pdf",
                                                      "byteSizeBigInt", "123456"));
        if (!strcmp(kinds[i][0], "IntegerNumberChamp"))
            json_object_set_new(c, "integerNumber", json_string("12"));
        json_array_append_new(champs, c);
        json_t *d = descriptor(kinds[i][0], id, kinds[i][1]);
        if (!strcmp(kinds[i][0], "DropDownListChamp"))
            json_object_set_new(d, "options", json_pack("[s,s]", "Association", "Commune"));
        json_array_append_new(descs, d);
    }
    json_t *rows = json_array(), *subs = json_array();
    json_array_append_new(subs, descriptor("TextChamp", "D-r1", "Nom"));
    json_array_append_new(subs, descriptor("IntegerNumberChamp", "D-r2", "Âge"));
    for (int r = 0; r < 3; r++) {
        char rid[16];
        snprintf(rid, sizeof(rid), "row-%d", r);
        json_array_append_new(rows, json_pack("{s:s, s:[o, o]}", "id", rid, "champs",
                                              champ("TextChamp", "D-r1", "Nom", "Léa"),
                                              champ("IntegerNumberChamp", "D-r2", "Âge", "11")));
    }
    json_t *rep = champ("RepetitionChamp", "D-rep", "Bénéficiaires", "");
    json_object_set_new(rep, "rows", rows);
    json_array_append_new(champs, rep);
    json_t *rd = descriptor("RepetitionChamp", "D-rep", "Bénéficiaires");
    json_object_set_new(rd, "champDescriptors", subs);
    json_array_append_new(descs, rd);
    json_t *annots = json_pack("[o, o]", champ("TextChamp", "D-a1", "Avis", "Favorable"),
                               champ("CheckboxChamp", "D-a2", "Complet", "true"));
    *revision = json_pack("{s:s, s:o, s:[o, o]}", "id", "rev-1", "champDescriptors", descs,
                          "annotationDescriptors", descriptor("TextChamp", "D-a1", "Avis"),
                          descriptor("CheckboxChamp", "D-a2", "Complet"));
    return json_pack("{s:s, s:i, s:s, s:b, s:s, s:s, s:{s:s}, s:{s:s, s:s, s:s, s:s},"
                     " s:{s:i, s:s}, s:[{s:s}], s:[{s:s}], s:o, s:o}",
                     "id", "RG9zc2llci0x", "number", 1, "state", "en_instruction", "archived", 0,
                     "dateDepot", "2026-03-02T09:15:00+01:00", "dateDerniereModification",
                     "2026-03-14T15:06:26+01:00", "usager", "email", "u@example.org", "demandeur",
                     "__typename", "PersonnePhysique", "civilite", "Mme", "nom", "Martin",
                     "prenom", "Claire", "groupeInstructeur", "number", 7, "label", "Bretagne",
                     "instructeurs", "email", "agent@region.fr", "labels", "name", "Prioritaire",
                     "champs", champs, "annotations", annots);
}

static json_t *big_block(int rows) {
    json_t *list = json_array();
    for (int r = 0; r < rows; r++) {
        char rid[32], v[32];
        snprintf(rid, sizeof(rid), "row-%d", r);
        snprintf(v, sizeof(v), "Valeur %d", r);
        json_array_append_new(list, json_pack("{s:s, s:[o, o]}", "id", rid, "champs",
                                              champ("DropDownListChamp", "D-dd", "Choix", v),
                                              champ("TextChamp", "D-t", "Nom", "x")));
    }
    json_t *rep = champ("RepetitionChamp", "D-rep", "Lignes", "");
    json_object_set_new(rep, "rows", list);
    return json_pack("{s:i, s:[o]}", "number", 2, "champs", rep);
}

static int run(d2g_mapping_ctx_t *ctx, json_t *d, int n, double *secs, size_t *records) {
    d2g_colmap_t *map = d2g_colmap_new();
    d2g_mapped_t out;
    char err[256];
    double t0 = now_s();
    *records = 0;
    for (int i = 0; i < n; i++) {
        json_object_set_new(d, "number", json_integer(1 + i));
        if (d2g_mapping_map_dossier(ctx, d, 0, map, &out, err, sizeof(err))) {
            fprintf(stderr, "bench_mapping: %s\n", err);
            d2g_colmap_free(map);
            return -1;
        }
        *records += out.n_records;
        d2g_mapped_clear(&out);
    }
    *secs = now_s() - t0;
    d2g_colmap_free(map);
    return 0;
}

int main(int argc, char **argv) {
    int n = 20000, rows = 20000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--dossiers"))
            n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rows"))
            rows = atoi(argv[i + 1]);
    }
    json_t *rev, *d = typical(&rev);
    d2g_mapping_ctx_t *ctx, *bare;
    char err[256];
    double secs;
    size_t recs;
    if (d2g_mapping_ctx_new(4242, "Subventions", "https://www.demarches-simplifiees.fr", rev, &ctx,
                            err, sizeof(err)) ||
        d2g_mapping_ctx_new(4242, "Subventions", "https://www.demarches-simplifiees.fr", NULL,
                            &bare, err, sizeof(err))) {
        fprintf(stderr, "bench_mapping: %s\n", err);
        return 1;
    }
    if (run(ctx, d, n, &secs, &recs))
        return 1;
    printf("mapping: %d dossiers (25 champs, 2 annotations, 3 block rows) in %.2f s on one core:"
           " %.0f dossiers/s, %.1f us per dossier, %zu records\n",
           n, secs, n / secs, secs * 1e6 / n, recs);
    json_decref(d);

    d = big_block(rows);
    if (run(bare, d, 1, &secs, &recs))
        return 1;
    printf("mapping: one block of %d rows with %d distinct drop-down values, without the form:"
           " %.3f s\n", rows, rows, secs);
    json_t *brev = json_pack("{s:s, s:[{s:s, s:s, s:s, s:[{s:s, s:s, s:s}, {s:s, s:s, s:s}]}]}",
                             "id", "rev-2", "champDescriptors", "__typename",
                             "RepetitionChampDescriptor", "id", "D-rep", "label", "Lignes",
                             "champDescriptors", "__typename", "DropDownListChampDescriptor", "id",
                             "D-dd", "label", "Choix", "__typename", "TextChampDescriptor", "id",
                             "D-t", "label", "Nom");
    d2g_mapping_ctx_t *bctx;
    if (d2g_mapping_ctx_new(4242, "Subventions", "https://x", brev, &bctx, err, sizeof(err)) ||
        run(bctx, d, 1, &secs, &recs))
        return 1;
    printf("mapping: the same block with the form: %.3f s (%zu records)\n", secs, recs);
    json_decref(brev);
    json_decref(d);
    json_decref(rev);
    d2g_mapping_ctx_free(ctx);
    d2g_mapping_ctx_free(bare);
    d2g_mapping_ctx_free(bctx);
    return 0;
}
