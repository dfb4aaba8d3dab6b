/*
 * mapping_kinds.c - THE table of champ kinds: for each DS champ kind, the Grist type of
 * its column, how its cell is read, and its typed sub-columns (see mapping_int.h,
 * docs/mapping.md has the same table for readers).
 *
 * Sub-columns come from explicit rules where they add something (codes of a commune,
 * the parts of an address, a SIRET's company...), read from the champ's typed fields
 * the producer's query selects. Every other kind, including one DS adds later, takes
 * its sub-columns from the champ's own `columns` (DS's typed breakdown: TextColumn,
 * IntegerColumn, ...), so it is still split and typed without a new rule here.
 */
#include "mapping_int.h"

#include <stdlib.h>
#include <string.h>

/* --- cells of the champ's own column ---------------------------------------- */

static const char *sv(json_t *champ) { return d2g_map_jstr(champ, "stringValue"); }

static json_t *c_text(json_t *ch, col_b *c, const d2g_cellenv_t *e) {
    (void)c, (void)e;
    return d2g_map_str_or_null(sv(ch));
}
static json_t *c_date(json_t *ch, col_b *c, const d2g_cellenv_t *e) {
    (void)c, (void)e;
    const char *v = d2g_map_jstr(ch, "date");
    return d2g_cell_date(v ? v : sv(ch), 0);
}
static json_t *c_datetime(json_t *ch, col_b *c, const d2g_cellenv_t *e) {
    (void)c, (void)e;
    const char *v = d2g_map_jstr(ch, "datetime");
    return d2g_cell_date(v ? v : sv(ch), 1);
}
static json_t *c_int(json_t *ch, col_b *c, const d2g_cellenv_t *e) {
    (void)c, (void)e;
    return d2g_cell_int(json_object_get(ch, "integerNumber"), sv(ch));
}
static json_t *c_numeric(json_t *ch, col_b *c, const d2g_cellenv_t *e) {
    (void)c, (void)e;
    return d2g_cell_numeric(json_object_get(ch, "decimalNumber"), sv(ch));
}
static json_t *c_checkbox(json_t *ch, col_b *c, const d2g_cellenv_t *e) {
    (void)c, (void)e;
    return d2g_cell_bool(json_object_get(ch, "checked"), sv(ch), 1);
}
static json_t *c_yesno(json_t *ch, col_b *c, const d2g_cellenv_t *e) {
    (void)c, (void)e;
    return d2g_cell_bool(json_object_get(ch, "yesNo"), sv(ch), 0);
}
static json_t *c_choice(json_t *ch, col_b *c, const d2g_cellenv_t *e) {
    (void)e;
    const char *v = d2g_map_jstr(ch, "dropDownValue");
    if (!v)
        v = d2g_map_jstr(ch, "value");
    if (!v)
        v = sv(ch);
    if (!v || !*v)
        return json_null();
    d2g_mb_see_choice(c, v);
    return json_string(v);
}
static json_t *c_choicelist(json_t *ch, col_b *c, const d2g_cellenv_t *e) {
    (void)e;
    json_t *values = json_object_get(ch, "values"), *l = json_array(), *v;
    const char *s = sv(ch);
    size_t i;
    json_array_append_new(l, json_string("L"));
    if (json_is_array(values)) {
        json_array_foreach(values, i, v) {
            if (json_is_string(v) && json_string_length(v)) {
                json_array_append(l, v);
                d2g_mb_see_choice(c, json_string_value(v));
            }
        }
    } else if (s) {
        /* DS's text is the values joined by ", " */
        for (const char *p = s; *p;) {
            const char *sep = strstr(p, ", ");
            size_t n = sep ? (size_t)(sep - p) : strlen(p);
            if (n) {
                json_t *one = json_stringn(p, n);
                json_array_append_new(l, one);
                d2g_mb_see_choice(c, json_string_value(one));
            }
            p += n;
            if (*p)
                p += 2;
        }
    }
    if (json_array_size(l) == 1) {
        json_decref(l);
        return json_null();
    }
    return l;
}
json_t *d2g_kind_files_cell(json_t *ch, col_b *c, const d2g_cellenv_t *e) {
    (void)c;
    json_t *files = json_object_get(ch, "files");
    if (json_is_array(files))
        return d2g_cell_files(files, e ? e->page : NULL);
    return d2g_map_str_or_null(sv(ch));
}
static json_t *c_dossier_link(json_t *ch, col_b *c, const d2g_cellenv_t *e) {
    (void)c, (void)e;
    json_t *n = json_object_get(json_object_get(ch, "dossier"), "number");
    return d2g_cell_int64(json_is_integer(n) ? n : NULL, sv(ch));
}
static json_t *c_number_text(json_t *ch, col_b *c, const d2g_cellenv_t *e) {
    (void)c, (void)e;
    return d2g_cell_numeric(NULL, sv(ch));
}

/* --- explicit sub-columns ------------------------------------------------------ */

#define T "Text"
static const d2g_subcol_t commune[] = {
    {"nom", "nom", T, "commune.name", CV_TEXT},
    {"code_insee", "code INSEE", T, "commune.code", CV_TEXT},
    {"code_postal", "code postal", T, "commune.postalCode", CV_TEXT},
    {"departement_code", "code du département", T, "departement.code", CV_TEXT},
    {"departement", "département", T, "departement.name", CV_TEXT},
    {NULL, NULL, NULL, NULL, 0}};
static const d2g_subcol_t address[] = {
    {"voie", "voie", T, "address.streetAddress", CV_TEXT},
    {"code_postal", "code postal", T, "address.postalCode", CV_TEXT},
    {"commune", "commune", T, "address.cityName", CV_TEXT},
    {"code_insee", "code INSEE", T, "address.cityCode", CV_TEXT},
    {"departement_code", "code du département", T, "address.departmentCode", CV_TEXT},
    {"departement", "département", T, "address.departmentName", CV_TEXT},
    {"region_code", "code de la région", T, "address.regionCode", CV_TEXT},
    {"region", "région", T, "address.regionName", CV_TEXT},
    {"pays_code", "code du pays", T, "address.countryCode", CV_TEXT},
    {"longitude", "longitude", "Numeric", "address.geometry.coordinates.0", CV_NUMERIC},
    {"latitude", "latitude", "Numeric", "address.geometry.coordinates.1", CV_NUMERIC},
    {NULL, NULL, NULL, NULL, 0}};
static const d2g_subcol_t pays[] = {
    {"code", "code ISO", T, "pays.code", CV_TEXT}, {NULL, NULL, NULL, NULL, 0}};
static const d2g_subcol_t region[] = {
    {"code", "code", T, "region.code", CV_TEXT}, {NULL, NULL, NULL, NULL, 0}};
static const d2g_subcol_t departement[] = {
    {"code", "code", T, "departement.code", CV_TEXT}, {NULL, NULL, NULL, NULL, 0}};
static const d2g_subcol_t epci[] = {
    {"code", "code SIREN", T, "epci.code", CV_TEXT},
    {"departement_code", "code du département", T, "departement.code", CV_TEXT},
    {NULL, NULL, NULL, NULL, 0}};
static const d2g_subcol_t siret[] = {
    {"raison_sociale", "raison sociale", T, "etablissement.entreprise.raisonSociale", CV_TEXT},
    {"siren", "SIREN", T, "etablissement.entreprise.siren", CV_TEXT},
    {"naf", "code NAF", T, "etablissement.naf", CV_TEXT},
    {"libelle_naf", "libellé NAF", T, "etablissement.libelleNaf", CV_TEXT},
    {"adresse", "adresse", T, "etablissement.address.label", CV_TEXT},
    {"code_insee", "code INSEE", T, "etablissement.address.cityCode", CV_TEXT},
    {NULL, NULL, NULL, NULL, 0}};
static const d2g_subcol_t rna[] = {
    {"titre", "titre", T, "rna.title", CV_TEXT},
    {"commune", "commune", T, "commune.name", CV_TEXT},
    {"code_insee", "code INSEE", T, "commune.code", CV_TEXT},
    {"departement_code", "code du département", T, "departement.code", CV_TEXT},
    {NULL, NULL, NULL, NULL, 0}};
static const d2g_subcol_t rnf[] = {
    {"titre", "titre", T, "rnf.title", CV_TEXT},
    {"commune", "commune", T, "commune.name", CV_TEXT},
    {"code_insee", "code INSEE", T, "commune.code", CV_TEXT},
    {"departement_code", "code du département", T, "departement.code", CV_TEXT},
    {NULL, NULL, NULL, NULL, 0}};
static const d2g_subcol_t linked[] = {
    {"principal", "choix principal", T, "primaryValue", CV_TEXT},
    {"secondaire", "choix secondaire", T, "secondaryValue", CV_TEXT},
    {NULL, NULL, NULL, NULL, 0}};
static const d2g_subcol_t engagement[] = {
    {"montant_engage", "montant engagé", "Numeric", "engagementJuridique.montantEngage", CV_NUMERIC},
    {"montant_paye", "montant payé", "Numeric", "engagementJuridique.montantPaye", CV_NUMERIC},
    {NULL, NULL, NULL, NULL, 0}};
#undef T

/* --- the table ------------------------------------------------------------------ */

#define DT "DateTime:Europe/Paris"
/* name: the kind without "Champ"/"ChampDescriptor". A descriptor-only kind (Number,
 * Formatted, Email...) arrives as a champ of another kind; the form's kind decides. */
static const d2g_kind_t kinds[] = {
    {"Text", KC_VALUE, "Text", c_text, NULL, 0, 0, 0},
    {"Textarea", KC_VALUE, "Text", c_text, NULL, 0, 0, 0},
    {"Email", KC_VALUE, "Text", c_text, NULL, 0, 0, 0},
    {"Phone", KC_VALUE, "Text", c_text, NULL, 0, 0, 0},
    {"Iban", KC_VALUE, "Text", c_text, NULL, 0, 0, 0},
    {"Civilite", KC_VALUE, "Text", c_text, NULL, 0, 0, 0},
    {"Formatted", KC_VALUE, "Text", c_text, NULL, 0, 0, 0},
    {"Number", KC_VALUE, "Numeric", c_number_text, NULL, 0, 0, 0},
    {"Date", KC_VALUE, "Date", c_date, NULL, 0, 0, 0},
    {"Datetime", KC_VALUE, DT, c_datetime, NULL, 0, 0, 0},
    {"IntegerNumber", KC_VALUE, "Int", c_int, NULL, 0, 0, 0},
    {"DecimalNumber", KC_VALUE, "Numeric", c_numeric, NULL, 0, 0, 0},
    {"Checkbox", KC_VALUE, "Bool", c_checkbox, NULL, 0, 0, 0},
    {"YesNo", KC_VALUE, "Bool", c_yesno, NULL, 0, 0, 0},
    {"DropDownList", KC_VALUE, "Choice", c_choice, NULL, 0, 1, 0},
    {"MultipleDropDownList", KC_VALUE, "ChoiceList", c_choicelist, NULL, 0, 1, 0},
    {"LinkedDropDownList", KC_VALUE, "Text", c_text, linked, 0, 0, 0},
    {"PieceJustificative", KC_VALUE, "Text", d2g_kind_files_cell, NULL, 0, 0, 0},
    {"TitreIdentite", KC_VALUE, "Text", c_text, NULL, 0, 0, 0},
    {"Commune", KC_VALUE, "Text", c_text, commune, 0, 0, 0},
    {"Address", KC_VALUE, "Text", c_text, address, 0, 0, 0},
    {"Pays", KC_VALUE, "Text", c_text, pays, 0, 0, 0},
    {"Region", KC_VALUE, "Text", c_text, region, 0, 0, 0},
    {"Departement", KC_VALUE, "Text", c_text, departement, 0, 0, 0},
    {"Epci", KC_VALUE, "Text", c_text, epci, 0, 0, 0},
    {"Siret", KC_VALUE, "Text", c_text, siret, 0, 0, 0},
    {"RNA", KC_VALUE, "Text", c_text, rna, 0, 0, 0},
    {"RNF", KC_VALUE, "Text", c_text, rnf, 0, 0, 0},
    {"EngagementJuridique", KC_VALUE, "Text", c_text, engagement, 0, 0, 0},
    {"DossierLink", KC_VALUE, "Int", c_dossier_link, NULL, 0, 0, 0},
    {"Carte", KC_VALUE, "Text", c_text, NULL, 0, 0, 1},
    {"Referentiel", KC_VALUE, "Text", c_text, NULL, 1, 0, 0},
    {"Repetition", KC_REPETITION, NULL, NULL, NULL, 0, 0, 0},
    {"HeaderSection", KC_NONE, NULL, NULL, NULL, 0, 0, 0},
    {"Explication", KC_NONE, NULL, NULL, NULL, 0, 0, 0},
};
static const d2g_kind_t unknown = {"", KC_VALUE, "Text", c_text, NULL, 1, 0, 0};

const d2g_kind_t *d2g_kind_table(size_t *n) {
    *n = sizeof(kinds) / sizeof(kinds[0]);
    return kinds;
}

const d2g_kind_t *d2g_kind_of(const char *typename, int descriptor) {
    const char *suffix = descriptor ? "ChampDescriptor" : "Champ";
    size_t n = strlen(typename), sl = strlen(suffix);
    if (n <= sl || strcmp(typename + n - sl, suffix) != 0)
        return &unknown;
    n -= sl;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strlen(kinds[i].name) == n && strncmp(kinds[i].name, typename, n) == 0)
            return &kinds[i];
    return &unknown;
}

/* --- reading sub-columns ---------------------------------------------------------- */

json_t *d2g_kind_path(json_t *champ, const char *path) {
    json_t *v = champ;
    char part[64];
    while (v && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof(part))
            return NULL;
        memcpy(part, path, n);
        part[n] = 0;
        path += n + (path[n] == '.');
        if (json_is_array(v)) {
            char *end;
            long i = strtol(part, &end, 10);
            v = (*end || i < 0) ? NULL : json_array_get(v, (size_t)i);
        } else {
            v = json_object_get(v, part);
        }
    }
    return v;
}

static json_t *convert(enum d2g_conv conv, json_t *v) {
    const char *s = json_string_value(v);
    switch (conv) {
    case CV_INT: return d2g_cell_int(v, NULL);
    case CV_INT64: return d2g_cell_int64(v, NULL);
    case CV_NUMERIC: return json_is_number(v) || s ? d2g_cell_numeric(v, NULL) : json_null();
    case CV_BOOL: return json_is_boolean(v) || s ? d2g_cell_bool(v, NULL, 0) : json_null();
    case CV_DATE: return d2g_cell_date(s, 0);
    case CV_DATETIME: return d2g_cell_date(s, 1);
    case CV_JSON: return d2g_cell_json(v);
    default: return d2g_cell_text(v);
    }
}

json_t *d2g_kind_subcell(const d2g_subcol_t *s, json_t *champ) {
    return convert(s->conv, d2g_kind_path(champ, s->path));
}

/* DS's typed columns: their __typename, the alias the producer's query gives their
 * `value` (GraphQL forbids one response name with two types), the Grist type. */
static const struct {
    const char *typename, *alias, *type;
    enum d2g_conv conv;
} column_kinds[] = {
    {"TextColumn", "stringValue", "Text", CV_TEXT}, /* value == stringValue */
    {"EnumColumn", "stringValue", "Text", CV_TEXT},
    {"IntegerColumn", "integerValue", "Int", CV_INT},
    {"DecimalColumn", "decimalValue", "Numeric", CV_NUMERIC},
    {"BooleanColumn", "booleanValue", "Bool", CV_BOOL},
    {"DateColumn", "dateValue", "Date", CV_DATE},
    {"DateTimeColumn", "datetimeValue", DT, CV_DATETIME},
};

static int column_kind(json_t *column) {
    const char *t = d2g_map_jstr(column, "__typename");
    for (size_t i = 0; t && i < sizeof(column_kinds) / sizeof(column_kinds[0]); i++)
        if (strcmp(column_kinds[i].typename, t) == 0)
            return (int)i;
    return -1;
}

const char *d2g_kind_column_type(json_t *column) {
    int k = column_kind(column);
    return k < 0 ? "Text" : column_kinds[k].type;
}

json_t *d2g_kind_column_cell(json_t *column) {
    int k = column_kind(column);
    if (k < 0) /* EnumsColumn, AttachmentsColumn, a later one: DS's text */
        return d2g_map_str_or_null(d2g_map_jstr(column, "stringValue"));
    json_t *v = json_object_get(column, column_kinds[k].alias);
    if (!v)
        v = json_object_get(column, "value");
    if (!v || json_is_null(v))
        return json_null();
    return convert(column_kinds[k].conv, v);
}
