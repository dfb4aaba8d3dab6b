/*
 * mapping_fixed.c - the dossiers table's own columns (numero, state, dates, demandeur,
 * instruction, labels...), see mapping_int.h and docs/mapping.md.
 */
#include "mapping_int.h"
#include "ds2grist/alloc.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char STATES[] =
    "{\"choices\":[\"en_construction\",\"en_instruction\",\"accepte\",\"refuse\",\"sans_suite\"]}";
static const char DEMANDEUR_TYPES[] =
    "{\"choices\":[\"physique\",\"morale\",\"morale_incomplete\"]}";
#define DT "DateTime:Europe/Paris"

const d2g_fixed_col_t d2g_mapping_dossier_cols[] = {
    {"numero", "Numéro", "Int", NULL, 0},
    {"ds_id", "ID DS", "Text", NULL, D2G_FIXED_TAIL},
    {"etat", "État", "Choice", STATES, 0},
    {"archive", "Archivé", "Bool", NULL, 0},
    {"date_depot", "Date de dépôt", DT, NULL, 0},
    {"date_derniere_modification", "Date de dernière modification", DT, NULL, 0},
    {"date_passage_en_construction", "Date de passage en construction", DT, NULL, 0},
    {"date_passage_en_instruction", "Date de passage en instruction", DT, NULL, 0},
    {"date_traitement", "Date de traitement", DT, NULL, 0},
    {"date_expiration", "Date d'expiration", DT, NULL, 0},
    {"usager_email", "Email de l'usager", "Text", NULL, 0},
    {"demandeur_type", "Type de demandeur", "Choice", DEMANDEUR_TYPES, 0},
    {"demandeur_civilite", "Civilité du demandeur", "Text", NULL, 0},
    {"demandeur_nom", "Nom du demandeur", "Text", NULL, 0},
    {"demandeur_prenom", "Prénom du demandeur", "Text", NULL, 0},
    {"demandeur_email", "Email du demandeur", "Text", NULL, 0},
    {"demandeur_siret", "SIRET du demandeur", "Text", NULL, 0},
    {"demandeur_raison_sociale", "Raison sociale", "Text", NULL, 0},
    {"demandeur_naf", "Code NAF", "Text", NULL, 0},
    {"demandeur_libelle_naf", "Libellé NAF", "Text", NULL, 0},
    {"demandeur_adresse", "Adresse du demandeur", "Text", NULL, 0},
    {"groupe_instructeur", "Groupe instructeur", "Text", NULL, 0},
    {"groupe_instructeur_numero", "Numéro du groupe instructeur", "Int", NULL, 0},
    {"groupe_instructeur_id", "ID DS du groupe instructeur", "Text", NULL, D2G_FIXED_TAIL},
    {"instructeurs", "Instructeurs", "Text", NULL, 0},
    {"labels", "Labels", "ChoiceList", NULL, 0},
    {"motivation", "Motivation", "Text", NULL, 0},
    {"traitements", "Traitements", "Text", NULL, 0},
    {"lien_ds", "Lien DS", "Text", NULL, 0},
    {"supprime", "Supprimé", "Bool", NULL, D2G_FIXED_TAIL},
    {"date_suppression", "Date de suppression", DT, NULL, D2G_FIXED_TAIL},
    {"motif_suppression", "Motif de suppression", "Text", NULL, D2G_FIXED_TAIL},
};
const size_t d2g_mapping_n_dossier_cols = sizeof(d2g_mapping_dossier_cols) / sizeof(d2g_mapping_dossier_cols[0]);

const char *const d2g_mapping_fixed_columns[] = {
    "numero", "ds_id", "etat", "archive", "date_depot", "date_derniere_modification",
    "date_passage_en_construction", "date_passage_en_instruction", "date_traitement",
    "date_expiration", "usager_email", "demandeur_type", "demandeur_civilite", "demandeur_nom",
    "demandeur_prenom", "demandeur_email", "demandeur_siret", "demandeur_raison_sociale",
    "demandeur_naf", "demandeur_libelle_naf", "demandeur_adresse", "groupe_instructeur",
    "groupe_instructeur_numero", "groupe_instructeur_id", "instructeurs", "labels", "motivation", "traitements",
    "lien_ds", "supprime", "date_suppression", "motif_suppression", NULL};

/* Child tables. Without ref_links, as in earlier versions: ds_row_id, dossier (Int),
 * numero_ligne first. With ref_links: dossier (a Ref formula) and numero_ligne first,
 * the technical keys last. */
static const d2g_fixed_col_t child_int[] = {
    {"ds_row_id", "ID de ligne DS", "Text", NULL, D2G_FIXED_TECH}, /* first, as in earlier versions */
    {"dossier", "Dossier", "Int", NULL, 0},
    {"numero_ligne", "Numéro de ligne", "Int", NULL, 0},
};
static const d2g_fixed_col_t child_ref[] = {
    {"dossier", "Dossier", NULL, NULL, 0}, /* Ref:<prefix>, a formula: see link_column */
    {"numero_ligne", "Numéro de ligne", "Int", NULL, 0},
    {"ds_row_id", "ID de ligne DS", "Text", NULL, D2G_FIXED_TAIL},
    {"ds_dossier_numero", "Numéro du dossier", "Int", NULL, D2G_FIXED_TAIL},
};

const d2g_fixed_col_t *d2g_mapping_child_cols(const d2g_mapping_ctx_t *ctx, size_t *n) {
    *n = ctx->opts.ref_links ? 4 : 3;
    return ctx->opts.ref_links ? child_ref : child_int;
}

const char *d2g_mapping_dossier_key(const d2g_mapping_ctx_t *ctx) {
    return ctx->opts.ref_links ? "ds_dossier_numero" : "dossier";
}

/* With ref_links, `dossier` of a child table becomes Ref:<prefix>, computed by Grist from
 * the number: linked widgets and $dossier.etat work, and the writer never needs a row id. */
void d2g_mapping_link_column(builder_t *b, table_b *t) {
    json_t *i = json_object_get(t->colset, "dossier");
    col_b *c = i ? t->cols[json_integer_value(i)] : NULL;
    if (!c || c->extra)
        return;
    size_t n = strlen(b->ctx->prefix) + 64;
    char *type = d2g_malloc(n), *formula = d2g_malloc(n);
    snprintf(type, n, "Ref:%s", b->ctx->prefix);
    snprintf(formula, n, "%s.lookupOne(numero=$ds_dossier_numero)", b->ctx->prefix);
    c->extra = json_pack("{s:s, s:b, s:s}", "type", type, "isFormula", 1, "formula", formula);
    c->type = "Ref";
    free(type);
    free(formula);
}

int d2g_mapping_link_cells(builder_t *b, table_b *t, json_t *fields) {
    if (!b->ctx->opts.ref_links)
        return d2g_mb_put(b, fields, "dossier", d2g_mapping_number_cell(b->number));
    d2g_mapping_link_column(b, t);
    return d2g_mb_put(b, fields, "ds_dossier_numero", d2g_mapping_number_cell(b->number));
}

static int map_demandeur(builder_t *b, json_t *fields, json_t *d) {
    const char *type = d2g_map_jstr(d, "__typename"), *kind = NULL;
    const char *civ = NULL, *nom = NULL, *prenom = NULL, *email = NULL, *siret = NULL;
    const char *rs = NULL, *naf = NULL, *lnaf = NULL, *adresse = NULL;
    if (type && strcmp(type, "PersonnePhysique") == 0) {
        kind = "physique";
        civ = d2g_map_jstr(d, "civilite");
        nom = d2g_map_jstr(d, "nom");
        prenom = d2g_map_jstr(d, "prenom");
        email = d2g_map_jstr(d, "email");
    } else if (type && strcmp(type, "PersonneMorale") == 0) {
        json_t *e = json_object_get(d, "entreprise"), *a = json_object_get(d, "association");
        kind = "morale";
        siret = d2g_map_jstr(d, "siret");
        naf = d2g_map_jstr(d, "naf");
        lnaf = d2g_map_jstr(d, "libelleNaf");
        rs = d2g_map_jstr(e, "raisonSociale");
        if (!rs || !*rs)
            rs = d2g_map_jstr(a, "titre");
        if (!rs || !*rs)
            rs = d2g_map_jstr(e, "nomCommercial");
        adresse = d2g_map_jstr(json_object_get(d, "address"), "label");
        if (!adresse)
            adresse = d2g_map_jstr(d, "adresse");
    } else if (type && strcmp(type, "PersonneMoraleIncomplete") == 0) {
        kind = "morale_incomplete";
        siret = d2g_map_jstr(d, "siret");
    }
    if (d2g_mb_put(b, fields, "demandeur_type", d2g_map_str_or_null(kind)) ||
        d2g_mb_put(b, fields, "demandeur_civilite", d2g_map_str_or_null(civ)) ||
        d2g_mb_put(b, fields, "demandeur_nom", d2g_map_str_or_null(nom)) ||
        d2g_mb_put(b, fields, "demandeur_prenom", d2g_map_str_or_null(prenom)) ||
        d2g_mb_put(b, fields, "demandeur_email", d2g_map_str_or_null(email)) ||
        d2g_mb_put(b, fields, "demandeur_siret", d2g_map_str_or_null(siret)) ||
        d2g_mb_put(b, fields, "demandeur_raison_sociale", d2g_map_str_or_null(rs)) ||
        d2g_mb_put(b, fields, "demandeur_naf", d2g_map_str_or_null(naf)) ||
        d2g_mb_put(b, fields, "demandeur_libelle_naf", d2g_map_str_or_null(lnaf)) ||
        d2g_mb_put(b, fields, "demandeur_adresse", d2g_map_str_or_null(adresse)))
        return -1;
    return 0;
}

/* "2026-01-03 accepte par x@y : motivation", one traitement a line. */
static json_t *traitements_text(json_t *ts) {
    d2g_sbuf_t sb = {0};
    size_t i;
    json_t *t;
    json_array_foreach(ts, i, t) {
        const char *date = d2g_map_jstr(t, "dateTraitement"), *state = d2g_map_jstr(t, "state");
        const char *email = d2g_map_jstr(t, "emailAgentTraitant"), *motiv = d2g_map_jstr(t, "motivation");
        if (!state)
            state = d2g_map_jstr(t, "event");
        if (sb.len)
            d2g_sb_str(&sb, "\n");
        if (date)
            d2g_sb_add(&sb, date, strlen(date) < 10 ? strlen(date) : 10);
        if (state) {
            if (date)
                d2g_sb_str(&sb, " ");
            d2g_sb_str(&sb, state);
        }
        if (email && *email) {
            d2g_sb_str(&sb, " par ");
            d2g_sb_str(&sb, email);
        }
        if (motiv && *motiv) {
            d2g_sb_str(&sb, " : ");
            d2g_sb_oneline(&sb, motiv);
        }
    }
    return d2g_sb_take(&sb);
}

static json_t *instructeurs_text(json_t *list) {
    d2g_sbuf_t sb = {0};
    size_t i;
    json_t *p;
    json_array_foreach(list, i, p) {
        const char *email = d2g_map_jstr(p, "email");
        if (!email || !*email)
            continue;
        if (sb.len)
            d2g_sb_str(&sb, ", ");
        d2g_sb_str(&sb, email);
    }
    return d2g_sb_take(&sb);
}

static json_t *labels_cell(json_t *labels, col_b *c) {
    json_t *l = json_array(), *lab;
    size_t i;
    json_array_append_new(l, json_string("L"));
    json_array_foreach(labels, i, lab) {
        const char *name = d2g_map_jstr(lab, "name");
        if (name && *name) {
            json_array_append_new(l, json_string(name));
            d2g_mb_see_choice(c, name);
        }
    }
    if (json_array_size(l) == 1) {
        json_decref(l);
        return json_null();
    }
    return l;
}

/* In partial mode a field is written only if the dossier holds its source. */
#define HAS(key) (!b->partial || json_object_get(d, key) != NULL)

int d2g_mapping_own_fields(builder_t *b, table_b *main, json_t *fields, json_t *d) {
    static const char *const dates[][2] = {
        {"date_depot", "dateDepot"},
        {"date_derniere_modification", "dateDerniereModification"},
        {"date_passage_en_construction", "datePassageEnConstruction"},
        {"date_passage_en_instruction", "datePassageEnInstruction"},
        {"date_traitement", "dateTraitement"},
        {"date_expiration", "dateExpiration"},
    };
    json_t *archived = json_object_get(d, "archived");
    json_t *gi = json_object_get(d, "groupeInstructeur");

    if (HAS("id") && d2g_mb_put(b, fields, "ds_id", d2g_map_str_or_null(d2g_map_jstr(d, "id"))))
        return -1;
    if (HAS("state") && d2g_mb_put(b, fields, "etat", d2g_map_str_or_null(d2g_map_jstr(d, "state"))))
        return -1;
    if (HAS("archived") &&
        d2g_mb_put(b, fields, "archive", json_is_boolean(archived) ? json_boolean(json_is_true(archived))
                                                             : json_null()))
        return -1;
    for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++)
        if (HAS(dates[i][1]) && d2g_mb_put(b, fields, dates[i][0], d2g_cell_date(d2g_map_jstr(d, dates[i][1]), 1)))
            return -1;
    if (HAS("usager") &&
        d2g_mb_put(b, fields, "usager_email", d2g_map_str_or_null(d2g_map_jstr(json_object_get(d, "usager"), "email"))))
        return -1;
    if (HAS("demandeur") && map_demandeur(b, fields, json_object_get(d, "demandeur")))
        return -1;
    if (HAS("groupeInstructeur")) {
        json_t *num = json_object_get(gi, "number");
        if (d2g_mb_put(b, fields, "groupe_instructeur", d2g_map_str_or_null(d2g_map_jstr(gi, "label"))) ||
            d2g_mb_put(b, fields, "groupe_instructeur_id",
                       d2g_map_str_or_null(d2g_map_jstr(gi, "id"))) ||
            d2g_mb_put(b, fields, "groupe_instructeur_numero",
                json_is_integer(num) ? json_integer(json_integer_value(num)) : json_null()))
            return -1;
    }
    if (HAS("instructeurs") &&
        d2g_mb_put(b, fields, "instructeurs", instructeurs_text(json_object_get(d, "instructeurs"))))
        return -1;
    if (HAS("labels")) {
        json_t *i = json_object_get(main->colset, "labels");
        if (d2g_mb_put(b, fields, "labels",
                labels_cell(json_object_get(d, "labels"), main->cols[json_integer_value(i)])))
            return -1;
    }
    if (HAS("motivation") && d2g_mb_put(b, fields, "motivation", d2g_map_str_or_null(d2g_map_jstr(d, "motivation"))))
        return -1;
    if (HAS("traitements") &&
        d2g_mb_put(b, fields, "traitements", traitements_text(json_object_get(d, "traitements"))))
        return -1;
    if (d2g_mb_put(b, fields, "lien_ds", json_string(b->page)))
        return -1;
    if (!b->partial && (d2g_mb_put(b, fields, "supprime", json_false()) ||
                        d2g_mb_put(b, fields, "date_suppression", json_null()) ||
                        d2g_mb_put(b, fields, "motif_suppression", json_null())))
        return -1;
    return 0;
}

