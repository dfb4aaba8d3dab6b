/* test_mapping.c - column ids (colid) and the dossier -> Grist rows mapping. */
#include "ds2grist/clock.h"
#include "ds2grist/champs.h"
#include "mapping_int.h"
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "colid.h"
#include "ds2grist/err.h"
#include "mapping.h"

/* Fixtures are JSON with ` for " (labels are full of apostrophes). */
static json_t *J(const char *text) {
    char *s = strdup(text);
    json_error_t jerr;
    for (char *p = s; *p; p++)
        if (*p == '`')
            *p = '"';
    json_t *v = json_loads(s, JSON_DECODE_ANY, &jerr);
    if (!v)
        fail_msg("fixture: %s (line %d col %d)", jerr.text, jerr.line, jerr.column);
    free(s);
    return v;
}

static const char *from_label(const char *label) {
    static char buf[D2G_COLID_BUFLEN];
    assert_int_equal(d2g_colid_from_label(label, buf, sizeof(buf)), 0);
    return buf;
}

/* --- fixtures: a dossier and its revision, as the DS API returns them ------- */

static const char REVISION[] = "{`id`: `UHJvY2VkdXJlUmV2aXNpb24tMQ==`,"
    "`champDescriptors`: ["
    " {`__typename`: `HeaderSectionChampDescriptor`, `id`: `D-hs`, `label`: `Identité`, `required`: false},"
    " {`__typename`: `TextChampDescriptor`, `id`: `D-nom`, `label`: `Nom de l'établissement`, `required`: true,"
    "  `description`: `Tel qu'il figure au répertoire SIRENE`},"
    " {`__typename`: `TextChampDescriptor`, `id`: `D-nom2`, `label`: `Nom`, `required`: false},"
    " {`__typename`: `TextChampDescriptor`, `id`: `D-nom3`, `label`: `Nom`, `required`: false},"
    " {`__typename`: `ExplicationChampDescriptor`, `id`: `D-expl`, `label`: `À lire`, `required`: false},"
    " {`__typename`: `DateChampDescriptor`, `id`: `D-date`, `label`: `Date de début`, `required`: true},"
    " {`__typename`: `DatetimeChampDescriptor`, `id`: `D-dt`, `label`: `Rendez-vous`, `required`: false},"
    " {`__typename`: `IntegerNumberChampDescriptor`, `id`: `D-int`, `label`: `Nombre d'élèves`, `required`: false},"
    " {`__typename`: `DecimalNumberChampDescriptor`, `id`: `D-dec`, `label`: `Montant demandé (€)`, `required`: false},"
    " {`__typename`: `CheckboxChampDescriptor`, `id`: `D-cb`, `label`: `J'accepte les conditions`, `required`: false},"
    " {`__typename`: `YesNoChampDescriptor`, `id`: `D-yn`, `label`: `Déjà financé ?`, `required`: false},"
    " {`__typename`: `DropDownListChampDescriptor`, `id`: `D-dd`, `label`: `Type de structure`, `required`: false,"
    "  `options`: [`École`, `Collège`, `Lycée`], `otherOption`: false},"
    " {`__typename`: `MultipleDropDownListChampDescriptor`, `id`: `D-mdd`, `label`: `Niveaux`, `required`: false,"
    "  `options`: [`6e`, `5e`, `4e`, `3e`]},"
    " {`__typename`: `PieceJustificativeChampDescriptor`, `id`: `D-pj`, `label`: `Justificatifs`, `required`: false},"
    " {`__typename`: `AddressChampDescriptor`, `id`: `D-adr`, `label`: `Adresse`, `required`: false},"
    " {`__typename`: `SiretChampDescriptor`, `id`: `D-siret`, `label`: `SIRET`, `required`: false},"
    " {`__typename`: `TextareaChampDescriptor`, `id`: `D-new`, `label`: `Commentaire`, `required`: false},"
    " {`__typename`: `RepetitionChampDescriptor`, `id`: `D-rep`, `label`: `Bénéficiaires`, `required`: false,"
    "  `champDescriptors`: ["
    "   {`__typename`: `TextChampDescriptor`, `id`: `D-rep-nom`, `label`: `Nom`, `required`: true},"
    "   {`__typename`: `IntegerNumberChampDescriptor`, `id`: `D-rep-age`, `label`: `Âge`, `required`: false},"
    "   {`__typename`: `DropDownListChampDescriptor`, `id`: `D-rep-niv`, `label`: `Niveau`, `required`: false,"
    "    `options`: [`CP`, `CE1`]}]}],"
    "`annotationDescriptors`: ["
    " {`__typename`: `TextChampDescriptor`, `id`: `D-a1`, `label`: `Avis du service`, `required`: false},"
    " {`__typename`: `CheckboxChampDescriptor`, `id`: `D-a2`, `label`: `Nom`, `required`: false}]}";

static const char DOSSIER[] = "{`id`: `RG9zc2llci00Mg==`, `number`: 42, `state`: `accepte`, `archived`: false,"
    "`dateDepot`: `2026-01-02T10:00:00+01:00`,"
    "`dateDerniereModification`: `2026-03-14T15:06:26+01:00`,"
    "`dateDerniereModificationChamps`: `2026-03-14T15:06:26+01:00`,"
    "`dateDerniereModificationAnnotations`: `2026-03-14T15:06:26+01:00`,"
    "`datePassageEnConstruction`: `2026-01-02T10:00:00+01:00`,"
    "`datePassageEnInstruction`: `2026-01-03T09:30:00+01:00`,"
    "`dateTraitement`: `2026-01-05T16:00:00+01:00`, `dateExpiration`: null,"
    "`dateSuppressionParUsager`: null, `dateSuppressionParAdministration`: null,"
    "`motivation`: `Dossier complet`, `usager`: {`email`: `usager@example.org`},"
    "`demandeur`: {`__typename`: `PersonnePhysique`, `civilite`: `Mme`, `nom`: `Dupont`,"
    "  `prenom`: `Élise`, `email`: `elise@example.org`, `dateDeNaissance`: null},"
    "`groupeInstructeur`: {`id`: `R3JvdXBl`, `number`: 7, `label`: `Bretagne`, `closed`: false},"
    "`instructeurs`: [{`id`: `1`, `email`: `a@gouv.fr`}, {`id`: `2`, `email`: `b@gouv.fr`}],"
    "`labels`: [{`id`: `L1`, `name`: `Urgent`, `color`: `red`}, {`id`: `L2`, `name`: `Complet`, `color`: `green`}],"
    "`traitements`: ["
    " {`state`: `en_construction`, `dateTraitement`: `2026-01-02T10:00:00+01:00`, `emailAgentTraitant`: null, `motivation`: null},"
    " {`state`: `en_instruction`, `dateTraitement`: `2026-01-03T09:30:00+01:00`, `emailAgentTraitant`: `a@gouv.fr`, `motivation`: null},"
    " {`state`: `accepte`, `dateTraitement`: `2026-01-05T16:00:00+01:00`, `emailAgentTraitant`: `a@gouv.fr`,"
    "  `motivation`: `Dossier\\ncomplet`}],"
    "`champs`: ["
    " {`__typename`: `HeaderSectionChamp`, `id`: `C0`, `champDescriptorId`: `D-hs`, `label`: `Identité`,"
    "  `stringValue`: ``, `updatedAt`: `2026-01-02T10:00:00+01:00`, `prefilled`: false},"
    " {`__typename`: `TextChamp`, `id`: `C1`, `champDescriptorId`: `D-nom`, `label`: `Nom de l'établissement`,"
    "  `stringValue`: `École Jules Ferry`, `updatedAt`: `2026-01-02T10:00:00+01:00`, `prefilled`: false},"
    " {`__typename`: `TextChamp`, `id`: `C2`, `champDescriptorId`: `D-nom2`, `label`: `Nom`, `stringValue`: `A`},"
    " {`__typename`: `TextChamp`, `id`: `C3`, `champDescriptorId`: `D-nom3`, `label`: `Nom`, `stringValue`: `B`},"
    " {`__typename`: `ExplicationChamp`, `id`: `C4`, `champDescriptorId`: `D-expl`, `label`: `À lire`, `stringValue`: null},"
    " {`__typename`: `DateChamp`, `id`: `C5`, `champDescriptorId`: `D-date`, `label`: `Date de début`,"
    "  `stringValue`: `14 mars 2026`, `date`: `2026-03-14`},"
    " {`__typename`: `DatetimeChamp`, `id`: `C6`, `champDescriptorId`: `D-dt`, `label`: `Rendez-vous`,"
    "  `stringValue`: `14 mars 2026 15:06`, `datetime`: `2026-03-14T15:06:26+01:00`},"
    " {`__typename`: `IntegerNumberChamp`, `id`: `C7`, `champDescriptorId`: `D-int`, `label`: `Nombre d'élèves`,"
    "  `stringValue`: `1200`, `integerNumber`: `1200`},"
    " {`__typename`: `DecimalNumberChamp`, `id`: `C8`, `champDescriptorId`: `D-dec`, `label`: `Montant demandé (€)`,"
    "  `stringValue`: `1500.5`, `decimalNumber`: 1500.5},"
    " {`__typename`: `CheckboxChamp`, `id`: `C9`, `champDescriptorId`: `D-cb`, `label`: `J'accepte les conditions`,"
    "  `stringValue`: `true`, `checked`: true},"
    " {`__typename`: `YesNoChamp`, `id`: `C10`, `champDescriptorId`: `D-yn`, `label`: `Déjà financé ?`,"
    "  `stringValue`: `false`, `yesNo`: false},"
    " {`__typename`: `DropDownListChamp`, `id`: `C11`, `champDescriptorId`: `D-dd`, `label`: `Type de structure`,"
    "  `stringValue`: `Collège`},"
    " {`__typename`: `MultipleDropDownListChamp`, `id`: `C12`, `champDescriptorId`: `D-mdd`, `label`: `Niveaux`,"
    "  `stringValue`: `6e, 5e`, `values`: [`6e`, `5e`]},"
    " {`__typename`: `PieceJustificativeChamp`, `id`: `C13`, `champDescriptorId`: `D-pj`, `label`: `Justificatifs`,"
    "  `stringValue`: `facture.pdf devis.pdf`, `files`: ["
    "   {`filename`: `facture.pdf`, `contentType`: `application/pdf`, `checksum`: `abc`, `byteSizeBigInt`: `1024`,"
    "    `url`: `https://ds.example/f/1?sig=a`, `createdAt`: `2026-01-02T10:00:00+01:00`},"
    "   {`filename`: `devis.pdf`, `contentType`: `application/pdf`, `checksum`: `def`, `byteSizeBigInt`: `2048`,"
    "    `url`: `https://ds.example/f/2?sig=b`, `createdAt`: `2026-01-02T10:00:00+01:00`}]},"
    " {`__typename`: `AddressChamp`, `id`: `C14`, `champDescriptorId`: `D-adr`, `label`: `Adresse`,"
    "  `stringValue`: `1 rue de la Paix 75002 Paris`, `address`: {`label`: `1 rue de la Paix 75002 Paris`,"
    "  `postalCode`: `75002`, `cityName`: `Paris`, `cityCode`: `75102`}},"
    " {`__typename`: `SiretChamp`, `id`: `C15`, `champDescriptorId`: `D-siret`, `label`: `SIRET`,"
    "  `stringValue`: `13002526500013`, `etablissement`: {`siret`: `13002526500013`}},"
    " {`__typename`: `RepetitionChamp`, `id`: `C16`, `champDescriptorId`: `D-rep`, `label`: `Bénéficiaires`,"
    "  `stringValue`: ``, `rows`: ["
    "   {`id`: `Um93LTE=`, `champs`: ["
    "     {`__typename`: `TextChamp`, `id`: `C16a`, `champDescriptorId`: `D-rep-nom`, `label`: `Nom`, `stringValue`: `Martin`},"
    "     {`__typename`: `IntegerNumberChamp`, `id`: `C16b`, `champDescriptorId`: `D-rep-age`, `label`: `Âge`,"
    "      `stringValue`: `12`, `integerNumber`: `12`}]},"
    "   {`id`: `Um93LTI=`, `champs`: ["
    "     {`__typename`: `TextChamp`, `id`: `C16c`, `champDescriptorId`: `D-rep-nom`, `label`: `Nom`, `stringValue`: `Durand`},"
    "     {`__typename`: `IntegerNumberChamp`, `id`: `C16d`, `champDescriptorId`: `D-rep-age`, `label`: `Âge`,"
    "      `stringValue`: null, `integerNumber`: null},"
    "     {`__typename`: `DropDownListChamp`, `id`: `C16e`, `champDescriptorId`: `D-rep-niv`, `label`: `Niveau`,"
    "      `stringValue`: `CE1`}]}]}],"
    "`annotations`: ["
    " {`__typename`: `TextChamp`, `id`: `A1`, `champDescriptorId`: `D-a1`, `label`: `Avis du service`, `stringValue`: `Favorable`},"
    " {`__typename`: `CheckboxChamp`, `id`: `A2`, `champDescriptorId`: `D-a2`, `label`: `Nom`, `stringValue`: `false`,"
    "  `checked`: false}]}";

/* --- helpers over a d2g_mapped_t ------------------------------------------ */

static const d2g_table_t *table(const d2g_mapped_t *m, const char *id) {
    for (size_t i = 0; i < m->n_tables; i++)
        if (strcmp(m->tables[i].id, id) == 0)
            return &m->tables[i];
    fail_msg("no table %s", id);
    return NULL;
}

static const d2g_column_t *column(const d2g_table_t *t, const char *id) {
    for (size_t i = 0; i < t->n_columns; i++)
        if (strcmp(t->columns[i].id, id) == 0)
            return &t->columns[i];
    return NULL;
}

static size_t column_index(const d2g_table_t *t, const char *id) {
    for (size_t i = 0; i < t->n_columns; i++)
        if (strcmp(t->columns[i].id, id) == 0)
            return i;
    fail_msg("no column %s in %s", id, t->id);
    return 0;
}

static const char *type_of(const d2g_table_t *t, const char *id) {
    const d2g_column_t *c = column(t, id);
    if (!c)
        fail_msg("no column %s in %s", id, t->id);
    return c->type;
}

/* The record of table whose require[key] equals the JSON text want. */
static json_t *record(const d2g_mapped_t *m, const char *tid, const char *want) {
    json_t *w = J(want);
    for (size_t i = 0; i < m->n_records; i++) {
        if (strcmp(m->records[i].table, tid) == 0 && json_equal(m->records[i].require, w)) {
            json_decref(w);
            return m->records[i].fields;
        }
    }
    fail_msg("no record %s in %s", want, tid);
    return NULL;
}

static void assert_cell(json_t *fields, const char *col, const char *want_json) {
    json_t *w = J(want_json), *got = json_object_get(fields, col);
    if (!got || !json_equal(got, w)) {
        char *g = got ? json_dumps(got, JSON_ENCODE_ANY) : strdup("(absent)");
        fprintf(stderr, "cell %s: got %s, want %s\n", col, g, want_json);
        free(g);
        json_decref(w);
        fail();
    }
    json_decref(w);
}

typedef struct {
    d2g_mapping_ctx_t *ctx;
    d2g_colmap_t *map;
    d2g_mapped_t out;
    char err[D2G_ERRLEN];
} fx_t;

static void fx_init(fx_t *f, const char *revision) {
    json_t *rev = revision ? J(revision) : NULL;
    memset(f, 0, sizeof(*f));
    assert_int_equal(d2g_mapping_ctx_new(4242, "Subventions", "https://www.demarches-simplifiees.fr/",
                                         rev, &f->ctx, f->err, sizeof(f->err)),
                     0);
    json_decref(rev); /* the context keeps its own reference */
    assert_non_null(f->map = d2g_colmap_new());
}

static void fx_map(fx_t *f, const char *dossier, int flags) {
    json_t *d = J(dossier);
    d2g_mapped_clear(&f->out);
    int rc = d2g_mapping_map_dossier(f->ctx, d, flags, f->map, &f->out, f->err, sizeof(f->err));
    if (rc)
        fail_msg("map_dossier: %s", f->err);
    json_decref(d);
}

static void fx_free(fx_t *f) {
    d2g_mapped_clear(&f->out);
    d2g_mapping_ctx_free(f->ctx);
    d2g_colmap_free(f->map);
}

/* --- colid ----------------------------------------------------------------- */

static void test_colid_from_label(void **state) {
    (void)state;
    assert_string_equal(from_label("Nom de l'établissement"), "nom_de_l_etablissement");
    assert_string_equal(from_label("Œuvre à déclarer"), "oeuvre_a_declarer");
    assert_string_equal(from_label("2e adresse"), "c_2e_adresse");
    assert_string_equal(from_label("id"), "c_id");
    assert_string_equal(from_label("ID"), "c_id");
    assert_string_equal(from_label("class"), "c_class");
    assert_string_equal(from_label("manualSort"), "c_manualsort");
    assert_string_equal(from_label("gristHelper_Display"), "c_gristhelper_display");
    assert_string_equal(from_label("Identifiant"), "identifiant");
    assert_string_equal(from_label("  Numéro   SIRET ! "), "numero_siret");
    assert_string_equal(from_label("Montant demandé (€)"), "montant_demande");
    assert_string_equal(from_label("Æsthétique & Straße ÇA"), "aesthetique_strasse_ca");
    assert_string_equal(from_label("Łódź, Škoda, Ørsted, Ÿvelines"), "lodz_skoda_orsted_yvelines");
    assert_string_equal(from_label("e\xcc\x81te\xcc\x81"), "ete"); /* combining accents (NFD) */
    assert_string_equal(from_label("ﬁn du ﬂux"), "fin_du_flux");
    assert_string_equal(from_label("N° de dossier"), "n_de_dossier");
    assert_string_equal(from_label("bad\xff\xfe" "bytes"), "bad_bytes");
    assert_string_equal(from_label(""), "champ");
    assert_string_equal(from_label("?!…"), "champ");
    assert_string_equal(from_label(NULL), "champ");
    /* 48 characters at most, cut on a word boundary */
    const char *id = from_label("Veuillez indiquer le montant total des dépenses éligibles prévues "
                                "pour l'année en cours");
    assert_true(strlen(id) <= D2G_COLID_MAXLEN);
    assert_string_equal(id, "veuillez_indiquer_le_montant_total_des_depenses");
    /* one long word: a hard cut */
    id = from_label("Anticonstitutionnellementanticonstitutionnellementanticonstitutionnellement");
    assert_int_equal(strlen(id), D2G_COLID_MAXLEN);
    char small[8];
    assert_int_equal(d2g_colid_from_label("Nom", small, sizeof(small)), -1);
}

static void test_colid_table(void **state) {
    (void)state;
    char out[128];
    assert_int_equal(d2g_colid_table("Subventions", "Répétition bénéficiaires", out, sizeof(out)), 0);
    assert_string_equal(out, "Subventions_Repetition_Beneficiaires");
    assert_int_equal(d2g_colid_table("Subventions", "Bénéficiaires", out, sizeof(out)), 0);
    assert_string_equal(out, "Subventions_Beneficiaires");
    assert_int_equal(d2g_colid_table("Subventions", NULL, out, sizeof(out)), 0);
    assert_string_equal(out, "Subventions");
    assert_int_equal(d2g_colid_table("subventions 2026", "", out, sizeof(out)), 0);
    assert_string_equal(out, "Subventions_2026");
    assert_int_equal(d2g_colid_table(NULL, "2e bloc", out, sizeof(out)), 0);
    assert_string_equal(out, "T_2e_Bloc");
    assert_int_equal(d2g_colid_table(NULL, "", out, sizeof(out)), 0);
    assert_string_equal(out, "Table");
    assert_int_equal(d2g_colid_table("Subventions", "Bénéficiaires", out, 12), -1);
}

static void test_colmap_dedup_and_stability(void **state) {
    (void)state;
    d2g_colmap_t *m = d2g_colmap_new();
    assert_int_equal(d2g_colmap_reserve(m, "T", "numero"), 0);
    assert_int_equal(d2g_colmap_reserve(m, "T", "numero"), 0); /* idempotent */
    assert_int_equal(d2g_colmap_generation(m), 0);
    assert_string_equal(d2g_colmap_assign(m, "T", "D1", "Nom"), "nom");
    assert_string_equal(d2g_colmap_assign(m, "T", "D2", "Nom"), "nom_2");
    assert_string_equal(d2g_colmap_assign(m, "T", "D3", "Nom"), "nom_3");
    assert_string_equal(d2g_colmap_assign(m, "T", "D4", "Numéro"), "numero_2"); /* fixed column */
    assert_string_equal(d2g_colmap_assign(m, "T", "D5", "Nom 2"), "nom_2_2");
    assert_int_equal(d2g_colmap_generation(m), 5);
    /* renamed: same id, no new assignment */
    assert_string_equal(d2g_colmap_assign(m, "T", "D1", "Nom de famille"), "nom");
    assert_string_equal(d2g_colmap_assign(m, "T", "D2", "Prénom"), "nom_2");
    assert_int_equal(d2g_colmap_generation(m), 5);
    /* another table is another namespace */
    assert_string_equal(d2g_colmap_assign(m, "U", "D9", "Nom"), "nom");
    assert_string_equal(d2g_colmap_lookup(m, "T", "D4"), "numero_2");
    assert_null(d2g_colmap_lookup(m, "T", "D9"));
    assert_null(d2g_colmap_lookup(m, "V", "D1"));
    /* case-insensitive, as Grist is */
    assert_string_equal(d2g_colmap_assign_id(m, "T", "D6", "NOM"), "NOM_4");
    /* a reserved id cannot be one a descriptor already has */
    assert_int_equal(d2g_colmap_reserve(m, "T", "nom"), -1);
    d2g_colmap_free(m);
}

static void test_colmap_json_merge(void **state) {
    (void)state;
    char err[D2G_ERRLEN];
    size_t moved = 99;
    d2g_colmap_t *a = d2g_colmap_new();
    d2g_colmap_reserve(a, "T", "numero");
    d2g_colmap_assign(a, "T", "D1", "Nom");
    d2g_colmap_assign(a, "T", "D2", "Nom");
    d2g_colmap_assign(a, "T", "D3", "Numéro");
    d2g_colmap_assign(a, "U", "D1", "Âge");

    /* persisted as text and read back by another worker: the same ids */
    json_t *j = d2g_colmap_to_json(a);
    char *text = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(text, "{\"tables\":{\"T\":{\"columns\":{\"D1\":\"nom\",\"D2\":\"nom_2\","
                              "\"D3\":\"numero_2\"},\"reserved\":[\"numero\"]},\"U\":{\"columns\":"
                              "{\"D1\":\"age\"},\"reserved\":[]}},\"v\":1}");
    json_decref(j);
    j = json_loads(text, 0, NULL);
    d2g_colmap_t *b = d2g_colmap_new();
    assert_int_equal(d2g_colmap_merge_json(b, j, &moved, err, sizeof(err)), 0);
    assert_int_equal(moved, 0);
    assert_true(d2g_colmap_generation(b) > 0);
    assert_string_equal(d2g_colmap_lookup(b, "T", "D1"), "nom");
    assert_string_equal(d2g_colmap_lookup(b, "T", "D2"), "nom_2");
    assert_string_equal(d2g_colmap_lookup(b, "T", "D3"), "numero_2");
    assert_string_equal(d2g_colmap_lookup(b, "U", "D1"), "age");
    assert_int_equal(d2g_colmap_reserve(b, "T", "numero"), 0);
    /* new champs continue the sequence, never reuse an id */
    assert_string_equal(d2g_colmap_assign(b, "T", "D7", "Nom"), "nom_3");
    assert_string_equal(d2g_colmap_assign(b, "T", "D8", "Numéro"), "numero_3");
    /* merging again changes nothing */
    uint64_t gen = d2g_colmap_generation(b);
    assert_int_equal(d2g_colmap_merge_json(b, j, &moved, err, sizeof(err)), 0);
    assert_int_equal(moved, 0);
    assert_int_equal(d2g_colmap_generation(b), gen);

    /* a worker that assigned "nom" to another descriptor meanwhile: its
     * assignment wins, the incoming one is de-duplicated and reported */
    d2g_colmap_t *c = d2g_colmap_new();
    d2g_colmap_assign(c, "T", "D9", "Nom");
    d2g_colmap_assign_id(c, "T", "D2", "mon_nom"); /* D2 known here: keeps its id */
    assert_int_equal(d2g_colmap_merge_json(c, j, &moved, err, sizeof(err)), 0);
    assert_int_equal(moved, 2); /* D1 (nom taken by D9) and D2 (kept mon_nom) */
    assert_string_equal(d2g_colmap_lookup(c, "T", "D9"), "nom");
    assert_string_equal(d2g_colmap_lookup(c, "T", "D2"), "mon_nom");
    assert_string_equal(d2g_colmap_lookup(c, "T", "D1"), "nom_2");
    assert_string_equal(d2g_colmap_lookup(c, "T", "D3"), "numero_2");

    /* deterministic: the same merges in the same order give the same map */
    d2g_colmap_t *c2 = d2g_colmap_new();
    d2g_colmap_assign(c2, "T", "D9", "Nom");
    d2g_colmap_assign_id(c2, "T", "D2", "mon_nom");
    assert_int_equal(d2g_colmap_merge_json(c2, j, NULL, err, sizeof(err)), 0);
    json_t *jc = d2g_colmap_to_json(c), *jc2 = d2g_colmap_to_json(c2);
    assert_true(json_equal(jc, jc2));
    json_decref(jc);
    json_decref(jc2);

    /* malformed maps change nothing and say where */
    json_t *bad = J("{`v`: 1, `tables`: {`T`: {`columns`: {`D1`: `nom de famille`}}}}");
    assert_int_equal(d2g_colmap_merge_json(c, bad, NULL, err, sizeof(err)), -1);
    assert_string_equal(err, "column map: tables.T.columns.D1: must be an identifier");
    json_decref(bad);
    bad = J("{`tables`: {}}");
    assert_int_equal(d2g_colmap_merge_json(c, bad, NULL, err, sizeof(err)), -1);
    assert_string_equal(err, "column map: unsupported version (want v=1)");
    json_decref(bad);
    bad = J("{`v`: 1, `tables`: {`T`: {`reserved`: [`ok`, 3]}}}");
    assert_int_equal(d2g_colmap_merge_json(c, bad, NULL, err, sizeof(err)), -1);
    assert_string_equal(err, "column map: tables.T.reserved[1]: must be an identifier");
    json_decref(bad);

    free(text);
    json_decref(j);
    d2g_colmap_free(a);
    d2g_colmap_free(b);
    d2g_colmap_free(c);
    d2g_colmap_free(c2);
}

/* --- dates ------------------------------------------------------------------- */

static void test_parse_iso(void **state) {
    (void)state;
    double e;
    int is_int;
    assert_int_equal(d2g_clock_parse_iso("2026-03-14", &e, &is_int), 0);
    assert_true(e == 1773446400.0 && is_int);
    assert_int_equal(d2g_clock_parse_iso("2026-03-14T15:06:26+01:00", &e, &is_int), 0);
    assert_true(e == 1773497186.0);
    assert_int_equal(d2g_clock_parse_iso("2026-03-14T14:06:26Z", &e, &is_int), 0);
    assert_true(e == 1773497186.0);
    assert_int_equal(d2g_clock_parse_iso("2026-03-14T14:06:26.5Z", &e, &is_int), 0);
    assert_true(e == 1773497186.5 && !is_int);
    assert_int_equal(d2g_clock_parse_iso("2026-07-14T15:06:00+0200", &e, &is_int), 0);
    assert_true(e == 1784034360.0);
    assert_int_equal(d2g_clock_parse_iso("1969-12-31T23:00:00-01:00", &e, &is_int), 0);
    assert_true(e == 0.0);
    assert_int_equal(d2g_clock_parse_iso("2026-02-30", &e, &is_int), -1);
    assert_int_equal(d2g_clock_parse_iso("14/03/2026", &e, &is_int), -1);
    assert_int_equal(d2g_clock_parse_iso("2026-03-14T25:00:00Z", &e, &is_int), -1);
    assert_int_equal(d2g_clock_parse_iso("2026-03-14T10:00:00+01:00x", &e, &is_int), -1);
}

/* --- the dossiers table and champs ----------------------------------------- */

static void test_fixed_columns(void **state) {
    (void)state;
    fx_t f;
    fx_init(&f, REVISION);
    fx_map(&f, DOSSIER, 0);
    assert_int_equal(f.out.number, 42);
    const d2g_table_t *t = &f.out.tables[0];
    assert_string_equal(t->id, "Subventions");
    assert_string_equal(t->key, "numero");
    assert_null(t->dossier_col);
    /* the fixed columns first, in order, but the technical ones (DS id, deletion) last */
    static const char *const technical[] = {"ds_id", "groupe_instructeur_id", "supprime",
                                            "date_suppression", "motif_suppression"};
    size_t nfixed = 0, at = 0;
    for (size_t i = 0; d2g_mapping_fixed_columns[i]; i++, nfixed++) {
        int tech = 0;
        for (size_t k = 0; k < 5; k++)
            tech |= strcmp(d2g_mapping_fixed_columns[i], technical[k]) == 0;
        if (!tech)
            assert_string_equal(t->columns[at++].id, d2g_mapping_fixed_columns[i]);
    }
    assert_int_equal(nfixed, 32);
    for (size_t k = 0; k < 5; k++)
        assert_string_equal(t->columns[t->n_columns - 5 + k].id, technical[k]);
    assert_string_equal(type_of(t, "numero"), "Int");
    assert_string_equal(type_of(t, "etat"), "Choice");
    assert_string_equal(column(t, "etat")->widget_options,
                        "{\"choices\":[\"en_construction\",\"en_instruction\",\"accepte\",\"refuse\","
                        "\"sans_suite\"]}");
    assert_string_equal(type_of(t, "archive"), "Bool");
    assert_string_equal(type_of(t, "date_depot"), "DateTime:Europe/Paris");
    assert_string_equal(type_of(t, "date_expiration"), "DateTime:Europe/Paris");
    assert_string_equal(type_of(t, "demandeur_type"), "Choice");
    assert_string_equal(type_of(t, "groupe_instructeur_numero"), "Int");
    assert_string_equal(type_of(t, "labels"), "ChoiceList");
    assert_string_equal(column(t, "labels")->widget_options, "{\"choices\":[\"Urgent\",\"Complet\"]}");
    assert_string_equal(type_of(t, "supprime"), "Bool");
    assert_string_equal(column(t, "numero")->label, "Numéro");
    assert_true(json_is_true(json_object_get(column(t, "numero")->fields, "untieColIdFromLabel")));

    assert_string_equal(f.out.records[0].table, "Subventions");
    json_t *r = record(&f.out, "Subventions", "{`numero`: 42}");
    assert_cell(r, "numero", "42");
    assert_cell(r, "ds_id", "`RG9zc2llci00Mg==`");
    assert_cell(r, "etat", "`accepte`");
    assert_cell(r, "archive", "false");
    assert_cell(r, "date_depot", "1767344400");
    assert_cell(r, "date_derniere_modification", "1773497186");
    assert_cell(r, "date_passage_en_construction", "1767344400");
    assert_cell(r, "date_passage_en_instruction", "1767429000");
    assert_cell(r, "date_traitement", "1767625200");
    assert_cell(r, "date_expiration", "null");
    assert_cell(r, "usager_email", "`usager@example.org`");
    assert_cell(r, "groupe_instructeur", "`Bretagne`");
    assert_cell(r, "groupe_instructeur_numero", "7");
    assert_cell(r, "groupe_instructeur_id", "`R3JvdXBl`");
    assert_cell(r, "instructeurs", "`a@gouv.fr, b@gouv.fr`");
    assert_cell(r, "labels", "[`L`, `Urgent`, `Complet`]");
    assert_cell(r, "motivation", "`Dossier complet`");
    assert_cell(r, "traitements", "`2026-01-02 en_construction\\n2026-01-03 en_instruction par a@gouv.fr\\n"
                                  "2026-01-05 accepte par a@gouv.fr : Dossier complet`");
    assert_cell(r, "lien_ds", "`https://www.demarches-simplifiees.fr/procedures/4242/dossiers/42`");
    assert_cell(r, "supprime", "false");
    assert_cell(r, "date_suppression", "null");
    assert_cell(r, "motif_suppression", "null");
    fx_free(&f);
}

static void check_champ_columns(const d2g_mapped_t *out, int with_revision) {
    const d2g_table_t *t = table(out, "Subventions");
    json_t *r = record(out, "Subventions", "{`numero`: 42}");

    assert_string_equal(type_of(t, "nom_de_l_etablissement"), "Text");
    assert_string_equal(column(t, "nom_de_l_etablissement")->label, "Nom de l'établissement");
    assert_cell(r, "nom_de_l_etablissement", "`École Jules Ferry`");
    /* two champs labelled "Nom" */
    assert_cell(r, "nom", "`A`");
    assert_cell(r, "nom_2", "`B`");
    /* Date: UTC midnight; DateTime: the instant */
    assert_string_equal(type_of(t, "date_de_debut"), "Date");
    assert_cell(r, "date_de_debut", "1773446400");
    assert_string_equal(type_of(t, "rendez_vous"), "DateTime:Europe/Paris");
    assert_cell(r, "rendez_vous", "1773497186");
    /* Int from DS's BigInt string; Numeric */
    assert_string_equal(type_of(t, "nombre_d_eleves"), "Int");
    assert_cell(r, "nombre_d_eleves", "1200");
    assert_string_equal(type_of(t, "montant_demande"), "Numeric");
    assert_cell(r, "montant_demande", "1500.5");
    /* Bool, checkbox and yes/no */
    assert_string_equal(type_of(t, "j_accepte_les_conditions"), "Bool");
    assert_cell(r, "j_accepte_les_conditions", "true");
    assert_string_equal(type_of(t, "deja_finance"), "Bool");
    assert_cell(r, "deja_finance", "false");
    /* Choice, ChoiceList */
    assert_string_equal(type_of(t, "type_de_structure"), "Choice");
    assert_cell(r, "type_de_structure", "`Collège`");
    assert_string_equal(type_of(t, "niveaux"), "ChoiceList");
    assert_cell(r, "niveaux", "[`L`, `6e`, `5e`]");
    if (with_revision) {
        assert_string_equal(column(t, "type_de_structure")->widget_options,
                            "{\"choices\":[\"École\",\"Collège\",\"Lycée\"]}");
        assert_string_equal(column(t, "niveaux")->widget_options,
                            "{\"choices\":[\"6e\",\"5e\",\"4e\",\"3e\"]}");
    } else {
        assert_string_equal(column(t, "type_de_structure")->widget_options,
                            "{\"choices\":[\"Collège\"]}");
        assert_string_equal(column(t, "niveaux")->widget_options, "{\"choices\":[\"6e\",\"5e\"]}");
    }
    /* attachments: "name (type, size)" a line, then the dossier's stable page; never
     * DS's signed URL, which expires */
    assert_string_equal(type_of(t, "justificatifs"), "Text");
    assert_cell(r, "justificatifs",
                "`facture.pdf (application/pdf, 1,0 Ko)\\ndevis.pdf (application/pdf, 2,0 Ko)\\n"
                "https://www.demarches-simplifiees.fr/procedures/4242/dossiers/42`");
    /* everything else: stringValue */
    assert_string_equal(type_of(t, "adresse"), "Text");
    assert_cell(r, "adresse", "`1 rue de la Paix 75002 Paris`");
    assert_cell(r, "siret", "`13002526500013`");
    /* no column for sections, explanations and blocks */
    assert_null(column(t, "identite"));
    assert_null(column(t, "a_lire"));
    assert_null(column(t, "beneficiaires"));
    assert_null(json_object_get(r, "identite"));
    /* annotations, after the champs, prefixed */
    assert_string_equal(type_of(t, "annotation_avis_du_service"), "Text");
    assert_string_equal(column(t, "annotation_avis_du_service")->label, "Annotation : Avis du service");
    assert_cell(r, "annotation_avis_du_service", "`Favorable`");
    assert_string_equal(type_of(t, "annotation_nom"), "Bool");
    assert_cell(r, "annotation_nom", "false");
    assert_true(column_index(t, "annotation_avis_du_service") > column_index(t, "siret"));
    assert_true(column_index(t, "nom_de_l_etablissement") > column_index(t, "lien_ds"));
    assert_true(column_index(t, "nom_de_l_etablissement") < column_index(t, "ds_id"));
}

static void test_champs_with_revision(void **state) {
    (void)state;
    fx_t f;
    fx_init(&f, REVISION);
    fx_map(&f, DOSSIER, 0);
    check_champ_columns(&f.out, 1);
    const d2g_table_t *t = table(&f.out, "Subventions");
    /* the form's help text is the column's description */
    assert_string_equal(json_string_value(json_object_get(column(t, "nom_de_l_etablissement")->fields,
                                                          "description")),
                        "Tel qu'il figure au répertoire SIRENE");
    assert_null(json_object_get(column(t, "nom")->fields, "description"));
    /* a champ of the form that the dossier lacks: its column, a null cell */
    assert_string_equal(type_of(t, "commentaire"), "Text");
    assert_cell(record(&f.out, "Subventions", "{`numero`: 42}"), "commentaire", "null");
    /* form order */
    assert_true(column_index(t, "nom_de_l_etablissement") < column_index(t, "nom"));
    assert_true(column_index(t, "siret") < column_index(t, "commentaire"));
    fx_free(&f);
}

/* The form alone (the schema before the first dossier): tables and columns, no
 * record; the dossier mapped afterwards with the same map uses those very columns,
 * with the ids, types and descriptions a dossier mapped first would have had. */
static void test_form_alone(void **state) {
    (void)state;
    fx_t f, g;
    fx_init(&f, REVISION);
    fx_init(&g, REVISION);
    d2g_mapped_t form = {0};
    assert_int_equal(d2g_mapping_map_form(f.ctx, f.map, &form, f.err, sizeof(f.err)), 0);
    assert_int_equal(form.n_records, 0);
    assert_true(form.n_tables >= 2); /* the dossiers table and the block's child table */
    const d2g_table_t *t = table(&form, "Subventions");
    assert_string_equal(type_of(t, "commentaire"), "Text");
    assert_string_equal(json_string_value(json_object_get(column(t, "nom_de_l_etablissement")->fields,
                                                          "description")),
                        "Tel qu'il figure au répertoire SIRENE");
    assert_non_null(column(t, "numero"));
    fx_map(&f, DOSSIER, 0); /* after the form, with its map */
    fx_map(&g, DOSSIER, 0); /* first, on a fresh map */
    for (size_t k = 0; k < form.n_tables; k++) {
        const d2g_table_t *ft = &form.tables[k];
        const d2g_table_t *dt = table(&f.out, ft->id), *gt = table(&g.out, ft->id);
        assert_non_null(dt);
        assert_non_null(gt);
        for (size_t c = 0; c < ft->n_columns; c++) {
            const d2g_column_t *fc = &ft->columns[c];
            const d2g_column_t *dc = column(dt, fc->id), *gc = column(gt, fc->id);
            if (!dc || !gc)
                fail_msg("%s.%s: declared by the form, not by the dossier", ft->id, fc->id);
            assert_string_equal(fc->type, dc->type);
            assert_string_equal(fc->type, gc->type);
            assert_string_equal(fc->label, gc->label);
        }
    }
    d2g_mapped_clear(&form);
    fx_free(&f);
    fx_free(&g);
}

static void test_champs_without_revision(void **state) {
    (void)state;
    fx_t f;
    fx_init(&f, NULL);
    fx_map(&f, DOSSIER, 0);
    check_champ_columns(&f.out, 0);
    assert_null(column(table(&f.out, "Subventions"), "commentaire"));
    /* choices seen accumulate in a column, the writer unions them */
    fx_free(&f);
}

static void test_cell_fallbacks(void **state) {
    (void)state;
    fx_t f;
    fx_init(&f, NULL);
    fx_map(&f,
           "{`id`: `X`, `number`: 7, `champs`: ["
           " {`__typename`: `DateChamp`, `id`: `1`, `champDescriptorId`: `d1`, `label`: `Date`, `stringValue`: `1er mars 2026`},"
           " {`__typename`: `DatetimeChamp`, `id`: `2`, `champDescriptorId`: `d2`, `label`: `Heure hiver`,"
           "  `stringValue`: `14 mars 2026 15:06`},"
           " {`__typename`: `DatetimeChamp`, `id`: `3`, `champDescriptorId`: `d3`, `label`: `Heure été`,"
           "  `stringValue`: `14 juillet 2026 à 15h06`},"
           " {`__typename`: `DateChamp`, `id`: `4`, `champDescriptorId`: `d4`, `label`: `Illisible`, `stringValue`: `bientôt`},"
           " {`__typename`: `DateChamp`, `id`: `5`, `champDescriptorId`: `d5`, `label`: `Vide`, `stringValue`: null, `date`: null},"
           " {`__typename`: `IntegerNumberChamp`, `id`: `6`, `champDescriptorId`: `d6`, `label`: `Grand`,"
           "  `stringValue`: `9007199254740993`, `integerNumber`: `9007199254740993`},"
           " {`__typename`: `IntegerNumberChamp`, `id`: `7`, `champDescriptorId`: `d7`, `label`: `Espaces`, `stringValue`: `1 200`},"
           " {`__typename`: `IntegerNumberChamp`, `id`: `8`, `champDescriptorId`: `d8`, `label`: `Négatif`, `integerNumber`: -5},"
           " {`__typename`: `DecimalNumberChamp`, `id`: `9`, `champDescriptorId`: `d9`, `label`: `Virgule`, `stringValue`: `12,5`},"
           " {`__typename`: `DecimalNumberChamp`, `id`: `10`, `champDescriptorId`: `d10`, `label`: `Chaîne`,"
           "  `stringValue`: `3.25`, `decimalNumber`: `3.25`},"
           " {`__typename`: `CheckboxChamp`, `id`: `11`, `champDescriptorId`: `d11`, `label`: `Case`, `stringValue`: `Oui`},"
           " {`__typename`: `CheckboxChamp`, `id`: `12`, `champDescriptorId`: `d12`, `label`: `Case vide`, `stringValue`: null},"
           " {`__typename`: `YesNoChamp`, `id`: `13`, `champDescriptorId`: `d13`, `label`: `Oui non vide`, `stringValue`: ``, `yesNo`: null},"
           " {`__typename`: `YesNoChamp`, `id`: `14`, `champDescriptorId`: `d14`, `label`: `Oui non`, `stringValue`: `Oui`},"
           " {`__typename`: `MultipleDropDownListChamp`, `id`: `15`, `champDescriptorId`: `d15`, `label`: `Multi texte`,"
           "  `stringValue`: `a, b`},"
           " {`__typename`: `MultipleDropDownListChamp`, `id`: `16`, `champDescriptorId`: `d16`, `label`: `Multi vide`,"
           "  `stringValue`: ``, `values`: []},"
           " {`__typename`: `PieceJustificativeChamp`, `id`: `17`, `champDescriptorId`: `d17`, `label`: `PJ vide`,"
           "  `stringValue`: ``, `files`: []},"
           " {`__typename`: `TitreIdentiteChamp`, `id`: `18`, `champDescriptorId`: `d18`, `label`: `Titre`,"
           "  `stringValue`: `Titre d'identité versé`, `filled`: true, `grantType`: `piece_justificative`},"
           " {`__typename`: `DropDownListChamp`, `id`: `19`, `champDescriptorId`: `d19`, `label`: `Liste`,"
           "  `stringValue`: `x`, `dropDownValue`: `Autre choix`},"
           " {`__typename`: `LinkedDropDownListChamp`, `id`: `20`, `champDescriptorId`: `d20`, `label`: `Liée`,"
           "  `stringValue`: `Fruits / Pomme`, `primaryValue`: `Fruits`, `secondaryValue`: `Pomme`},"
           " {`__typename`: `SomeFutureChamp`, `id`: `21`, `champDescriptorId`: `d21`, `label`: `Futur`, `stringValue`: `?`},"
           " {`__typename`: `TextChamp`, `id`: `22`, `champDescriptorId`: `d22`, `label`: `Texte nul`, `stringValue`: null}"
           "]}",
           0);
    const d2g_table_t *t = table(&f.out, "Subventions");
    json_t *r = record(&f.out, "Subventions", "{`numero`: 7}");
    assert_cell(r, "date", "1772323200");           /* 2026-03-01 */
    assert_cell(r, "heure_hiver", "1773497160");    /* 15:06 CET = 14:06Z */
    assert_cell(r, "heure_ete", "1784034360");      /* 15:06 CEST = 13:06Z */
    assert_cell(r, "illisible", "`bientôt`");       /* kept, never lost */
    assert_cell(r, "vide", "null");
    assert_cell(r, "grand", "`9007199254740993`");  /* beyond Grist's 32-bit Int */
    assert_cell(r, "espaces", "1200");
    assert_cell(r, "negatif", "-5");
    assert_cell(r, "virgule", "12.5");
    assert_cell(r, "chaine", "3.25");
    assert_cell(r, "case", "true");
    assert_cell(r, "case_vide", "false");
    assert_cell(r, "oui_non_vide", "null");
    assert_cell(r, "oui_non", "true");
    assert_cell(r, "multi_texte", "[`L`, `a`, `b`]");
    assert_cell(r, "multi_vide", "null");
    assert_cell(r, "pj_vide", "null");
    assert_string_equal(type_of(t, "titre"), "Text");
    assert_cell(r, "titre", "`Titre d'identité versé`");
    assert_cell(r, "liste", "`Autre choix`");
    assert_string_equal(column(t, "liste")->widget_options, "{\"choices\":[\"Autre choix\"]}");
    assert_cell(r, "liee", "`Fruits / Pomme`");
    assert_string_equal(type_of(t, "futur"), "Text");
    assert_cell(r, "futur", "`?`");
    assert_cell(r, "texte_nul", "null");
    fx_free(&f);
}

static void test_repetition(void **state) {
    (void)state;
    fx_t f;
    fx_init(&f, REVISION);
    fx_map(&f, DOSSIER, 0);
    const d2g_table_t *t = table(&f.out, "Subventions_Beneficiaires");
    assert_string_equal(t->key, "ds_row_id");
    assert_string_equal(t->dossier_col, "dossier");
    assert_string_equal(t->columns[0].id, "ds_row_id");
    assert_string_equal(t->columns[0].type, "Text");
    assert_string_equal(t->columns[1].id, "dossier");
    assert_string_equal(t->columns[1].type, "Int");
    assert_string_equal(t->columns[2].id, "numero_ligne");
    assert_string_equal(t->columns[2].type, "Int");
    assert_string_equal(t->columns[3].id, "nom");
    assert_string_equal(t->columns[4].id, "age");
    assert_string_equal(t->columns[4].type, "Int");
    assert_string_equal(t->columns[5].id, "niveau");
    assert_string_equal(t->columns[5].widget_options, "{\"choices\":[\"CP\",\"CE1\"]}");

    json_t *r1 = record(&f.out, "Subventions_Beneficiaires", "{`ds_row_id`: `Um93LTE=`}");
    assert_cell(r1, "dossier", "42");
    assert_cell(r1, "numero_ligne", "1");
    assert_cell(r1, "nom", "`Martin`");
    assert_cell(r1, "age", "12");
    assert_cell(r1, "niveau", "null"); /* absent from the row: cleared */
    json_t *r2 = record(&f.out, "Subventions_Beneficiaires", "{`ds_row_id`: `Um93LTI=`}");
    assert_cell(r2, "numero_ligne", "2");
    assert_cell(r2, "nom", "`Durand`");
    assert_cell(r2, "age", "null");
    assert_cell(r2, "niveau", "`CE1`");
    assert_int_equal(f.out.n_records, 3);
    assert_string_equal(f.out.records[0].table, "Subventions"); /* the dossier's row first */

    /* the complete set of rows, for the writer to delete the others */
    assert_int_equal(f.out.n_rowsets, 1);
    assert_string_equal(f.out.rowsets[0].table, "Subventions_Beneficiaires");
    assert_int_equal(f.out.rowsets[0].dossier, 42);
    json_t *want = J("[`Um93LTE=`, `Um93LTI=`]");
    assert_true(json_equal(f.out.rowsets[0].row_ids, want));
    json_decref(want);

    /* the first row removed in DS: one record, a row set without it */
    json_t *d = J(DOSSIER), *rows = NULL;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(d, "champs"), i, c) {
        if (strcmp(json_string_value(json_object_get(c, "__typename")), "RepetitionChamp") == 0)
            rows = json_object_get(c, "rows");
    }
    json_array_remove(rows, 0);
    d2g_mapped_clear(&f.out);
    assert_int_equal(d2g_mapping_map_dossier(f.ctx, d, 0, f.map, &f.out, f.err, sizeof(f.err)), 0);
    want = J("[`Um93LTI=`]");
    assert_true(json_equal(f.out.rowsets[0].row_ids, want));
    json_decref(want);
    r2 = record(&f.out, "Subventions_Beneficiaires", "{`ds_row_id`: `Um93LTI=`}");
    assert_cell(r2, "numero_ligne", "1");

    /* no rows at all (or the block hidden): an empty set, the writer deletes them all */
    json_array_clear(rows);
    d2g_mapped_clear(&f.out);
    assert_int_equal(d2g_mapping_map_dossier(f.ctx, d, 0, f.map, &f.out, f.err, sizeof(f.err)), 0);
    assert_int_equal(f.out.n_rowsets, 1);
    assert_int_equal(json_array_size(f.out.rowsets[0].row_ids), 0);
    assert_int_equal(f.out.n_records, 1);
    json_decref(d);
    fx_free(&f);
}

static void test_repetition_without_revision(void **state) {
    (void)state;
    fx_t f;
    fx_init(&f, NULL);
    fx_map(&f, DOSSIER, 0);
    const d2g_table_t *t = table(&f.out, "Subventions_Beneficiaires");
    assert_string_equal(type_of(t, "nom"), "Text");
    assert_string_equal(type_of(t, "age"), "Int");
    assert_string_equal(type_of(t, "niveau"), "Choice");
    json_t *r1 = record(&f.out, "Subventions_Beneficiaires", "{`ds_row_id`: `Um93LTE=`}");
    assert_null(json_object_get(r1, "niveau")); /* not known without the form */
    fx_free(&f);
}

static void test_stable_ids_across_renames(void **state) {
    (void)state;
    fx_t f;
    fx_init(&f, NULL);
    fx_map(&f,
           "{`number`: 1, `champs`: [{`__typename`: `TextChamp`, `id`: `c`, `champDescriptorId`: `dX`,"
           " `label`: `Nom`, `stringValue`: `a`}]}",
           0);
    uint64_t gen = d2g_colmap_generation(f.map);
    assert_true(gen > 0);
    fx_map(&f,
           "{`number`: 2, `champs`: [{`__typename`: `TextChamp`, `id`: `c`, `champDescriptorId`: `dX`,"
           " `label`: `Nom de famille`, `stringValue`: `b`},"
           " {`__typename`: `TextChamp`, `id`: `c2`, `champDescriptorId`: `dY`, `label`: `Nom`, `stringValue`: `c`}]}",
           0);
    const d2g_table_t *t = table(&f.out, "Subventions");
    assert_string_equal(column(t, "nom")->label, "Nom de famille"); /* the writer updates labels */
    assert_string_equal(column(t, "nom_2")->label, "Nom");         /* new champ, old label */
    assert_cell(record(&f.out, "Subventions", "{`numero`: 2}"), "nom", "`b`");
    assert_cell(record(&f.out, "Subventions", "{`numero`: 2}"), "nom_2", "`c`");
    assert_true(d2g_colmap_generation(f.map) > gen);

    /* a worker that loads the persisted map maps the same way */
    json_t *j = d2g_colmap_to_json(f.map);
    d2g_colmap_t *other = d2g_colmap_new();
    assert_int_equal(d2g_colmap_merge_json(other, j, NULL, f.err, sizeof(f.err)), 0);
    d2g_colmap_free(f.map);
    f.map = other;
    gen = d2g_colmap_generation(f.map);
    fx_map(&f,
           "{`number`: 3, `champs`: ["
           " {`__typename`: `TextChamp`, `id`: `c2`, `champDescriptorId`: `dY`, `label`: `Nom`, `stringValue`: `y`},"
           " {`__typename`: `TextChamp`, `id`: `c`, `champDescriptorId`: `dX`, `label`: `Nom`, `stringValue`: `x`}]}",
           0);
    assert_cell(record(&f.out, "Subventions", "{`numero`: 3}"), "nom", "`x`");
    assert_cell(record(&f.out, "Subventions", "{`numero`: 3}"), "nom_2", "`y`");
    assert_int_equal(d2g_colmap_generation(f.map), gen); /* nothing new to persist */
    json_decref(j);
    fx_free(&f);
}

static void test_demandeur(void **state) {
    (void)state;
    fx_t f;
    fx_init(&f, NULL);
    fx_map(&f, DOSSIER, 0);
    json_t *r = record(&f.out, "Subventions", "{`numero`: 42}");
    assert_cell(r, "demandeur_type", "`physique`");
    assert_cell(r, "demandeur_civilite", "`Mme`");
    assert_cell(r, "demandeur_nom", "`Dupont`");
    assert_cell(r, "demandeur_prenom", "`Élise`");
    assert_cell(r, "demandeur_email", "`elise@example.org`");
    assert_cell(r, "demandeur_siret", "null");
    assert_cell(r, "demandeur_raison_sociale", "null");

    fx_map(&f,
           "{`number`: 43, `champs`: [], `demandeur`: {`__typename`: `PersonneMorale`,"
           " `siret`: `13002526500013`, `naf`: `8411Z`, `libelleNaf`: `Administration publique générale`,"
           " `siegeSocial`: true, `address`: {`label`: `20 avenue de Ségur 75007 Paris`, `postalCode`: `75007`},"
           " `entreprise`: {`siren`: `130025265`, `raisonSociale`: `DINUM`, `nomCommercial`: ``},"
           " `association`: null}}",
           0);
    r = record(&f.out, "Subventions", "{`numero`: 43}");
    assert_cell(r, "demandeur_type", "`morale`");
    assert_cell(r, "demandeur_siret", "`13002526500013`");
    assert_cell(r, "demandeur_raison_sociale", "`DINUM`");
    assert_cell(r, "demandeur_naf", "`8411Z`");
    assert_cell(r, "demandeur_libelle_naf", "`Administration publique générale`");
    assert_cell(r, "demandeur_adresse", "`20 avenue de Ségur 75007 Paris`");
    assert_cell(r, "demandeur_nom", "null");
    assert_cell(r, "demandeur_civilite", "null");

    fx_map(&f,
           "{`number`: 44, `champs`: [], `demandeur`: {`__typename`: `PersonneMorale`, `siret`: `1`,"
           " `entreprise`: null, `association`: {`rna`: `W123`, `titre`: `Les Amis du Parc`}}}",
           0);
    assert_cell(record(&f.out, "Subventions", "{`numero`: 44}"), "demandeur_raison_sociale",
                "`Les Amis du Parc`");

    fx_map(&f, "{`number`: 45, `champs`: [], `demandeur`: {`__typename`: `PersonneMoraleIncomplete`, `siret`: `2`}}", 0);
    r = record(&f.out, "Subventions", "{`numero`: 45}");
    assert_cell(r, "demandeur_type", "`morale_incomplete`");
    assert_cell(r, "demandeur_siret", "`2`");
    fx_free(&f);
}

static void test_partial_labels(void **state) {
    (void)state;
    fx_t f;
    fx_init(&f, REVISION);
    fx_map(&f,
           "{`id`: `RG9zc2llci00Mg==`, `number`: 42, `dateDerniereModification`: `2026-03-14T15:06:26+01:00`,"
           " `labels`: [{`id`: `L3`, `name`: `À relancer`, `color`: `blue`}]}",
           D2G_MAPPING_PARTIAL);
    assert_int_equal(f.out.n_records, 1);
    assert_int_equal(f.out.n_rowsets, 0);
    json_t *want = J("{`numero`: 42, `ds_id`: `RG9zc2llci00Mg==`, `date_derniere_modification`: 1773497186,"
                     " `labels`: [`L`, `À relancer`],"
                     " `lien_ds`: `https://www.demarches-simplifiees.fr/procedures/4242/dossiers/42`}");
    assert_true(json_equal(f.out.records[0].fields, want));
    json_decref(want);
    /* labels all removed: the cell is cleared */
    fx_map(&f, "{`number`: 42, `labels`: []}", D2G_MAPPING_PARTIAL);
    assert_cell(f.out.records[0].fields, "labels", "null");
    assert_null(json_object_get(f.out.records[0].fields, "etat"));
    fx_free(&f);
}

static void test_deleted(void **state) {
    (void)state;
    fx_t f;
    fx_init(&f, REVISION);
    json_t *node = J("{`id`: `RG9zc2llci00Mg==`, `number`: 42, `dateSupression`: `2026-04-01T12:00:00+02:00`,"
                     " `state`: `refuse`, `reason`: `user_request`}");
    assert_int_equal(d2g_mapping_map_deleted(f.ctx, node, D2G_DELETED_MARK, f.map, &f.out, f.err,
                                             sizeof(f.err)),
                     0);
    assert_int_equal(f.out.n_tables, 1);
    assert_string_equal(f.out.tables[0].id, "Subventions");
    assert_int_equal(f.out.n_records, 1);
    json_t *want = J("{`supprime`: true, `date_suppression`: 1775037600, `motif_suppression`: `user_request`,"
                     " `etat`: `refuse`, `ds_id`: `RG9zc2llci00Mg==`}");
    assert_true(json_equal(f.out.records[0].fields, want));
    json_decref(want);
    want = J("{`numero`: 42}");
    assert_true(json_equal(f.out.records[0].require, want));
    json_decref(want);
    assert_int_equal(f.out.n_removals, 0);
    d2g_mapped_clear(&f.out);

    /* remove: the dossier's row and its rows in every child table */
    assert_int_equal(d2g_mapping_map_deleted(f.ctx, node, D2G_DELETED_REMOVE, f.map, &f.out, f.err,
                                             sizeof(f.err)),
                     0);
    assert_int_equal(f.out.n_tables, 0);
    assert_int_equal(f.out.n_records, 0);
    assert_int_equal(f.out.n_removals, 2);
    assert_string_equal(f.out.removals[0].table, "Subventions");
    assert_string_equal(f.out.removals[0].column, "numero");
    assert_int_equal(f.out.removals[0].value, 42);
    assert_string_equal(f.out.removals[1].table, "Subventions_Beneficiaires");
    assert_string_equal(f.out.removals[1].column, "dossier");
    assert_int_equal(f.out.removals[1].value, 42);
    json_decref(node);

    node = J("{`id`: `x`, `dateSupression`: `2026-04-01T12:00:00+02:00`}");
    d2g_mapped_clear(&f.out);
    assert_int_equal(d2g_mapping_map_deleted(f.ctx, node, D2G_DELETED_MARK, f.map, &f.out, f.err,
                                             sizeof(f.err)),
                     -1);
    assert_string_equal(f.err, "deleted dossier: no positive integer \"number\"");
    json_decref(node);
    fx_free(&f);
}

static void expect_rejected(fx_t *f, const char *dossier, const char *reason) {
    json_t *d = J(dossier);
    d2g_mapped_clear(&f->out);
    assert_int_equal(d2g_mapping_map_dossier(f->ctx, d, 0, f->map, &f->out, f->err, sizeof(f->err)), -1);
    assert_string_equal(f->err, reason);
    assert_int_equal(f->out.n_tables, 0);
    assert_int_equal(f->out.n_records, 0);
    json_decref(d);
}

static void test_malformed(void **state) {
    (void)state;
    fx_t f;
    fx_init(&f, NULL);
    expect_rejected(&f, "{`id`: `x`, `champs`: []}", "dossier: no positive integer \"number\"");
    expect_rejected(&f, "{`number`: `12`, `champs`: []}", "dossier: no positive integer \"number\"");
    expect_rejected(&f, "[1]", "dossier: not a JSON object");
    expect_rejected(&f, "{`number`: 12}", "dossier 12: \"champs\" is missing");
    expect_rejected(&f, "{`number`: 12, `champs`: {}}", "dossier 12: \"champs\" is not an array");
    expect_rejected(&f, "{`number`: 12, `champs`: [], `annotations`: 3}",
                    "dossier 12: \"annotations\" is not an array");
    expect_rejected(&f, "{`number`: 12, `champs`: [{`__typename`: `TextChamp`, `id`: `a`, `label`: `A`}]}",
                    "dossier 12: champs[0]: no champDescriptorId");
    expect_rejected(&f, "{`number`: 12, `champs`: [{`id`: `a`, `champDescriptorId`: `dA`, `label`: `A`}]}",
                    "dossier 12: champs[0] (dA): no __typename");
    expect_rejected(&f, "{`number`: 12, `champs`: [7]}", "dossier 12: champs[0]: not an object");
    expect_rejected(&f, "{`number`: 12, `champs`: [], `annotations`: [{`__typename`: `TextChamp`}]}",
                    "dossier 12: annotations[0]: no champDescriptorId");
    expect_rejected(&f,
                    "{`number`: 12, `champs`: [{`__typename`: `RepetitionChamp`, `champDescriptorId`: `dR`,"
                    " `label`: `Bloc`, `rows`: [{`champs`: []}]}]}",
                    "dossier 12: champs[0].rows[0]: no id");
    expect_rejected(&f,
                    "{`number`: 12, `champs`: [{`__typename`: `RepetitionChamp`, `champDescriptorId`: `dR`,"
                    " `label`: `Bloc`}]}",
                    "dossier 12: champs[0] (dR): rows is not an array");
    expect_rejected(&f,
                    "{`number`: 12, `champs`: [{`__typename`: `RepetitionChamp`, `champDescriptorId`: `dR`,"
                    " `label`: `Bloc`, `rows`: [{`id`: `r1`, `champs`: [{`__typename`: `TextChamp`}]}]}]}",
                    "dossier 12: champs[0].rows[0].champs[0]: no champDescriptorId");
    fx_free(&f);

    /* contexts */
    d2g_mapping_ctx_t *ctx;
    char err[D2G_ERRLEN];
    json_t *rev = J("{`champDescriptors`: [{`__typename`: `TextChampDescriptor`, `label`: `A`}]}");
    assert_int_equal(d2g_mapping_ctx_new(1, "Subventions", "https://x", rev, &ctx, err, sizeof(err)), -1);
    assert_string_equal(err, "revision.champDescriptors[0]: no id");
    json_decref(rev);
    rev = J("{`champDescriptors`: [{`__typename`: `RepetitionChampDescriptor`, `id`: `r`, `label`: `R`,"
            " `champDescriptors`: [{`id`: `s`, `label`: `S`}]}]}");
    assert_int_equal(d2g_mapping_ctx_new(1, "Subventions", "https://x", rev, &ctx, err, sizeof(err)), -1);
    assert_string_equal(err, "revision.champDescriptors[0].champDescriptors[0] (s): no __typename");
    json_decref(rev);
    rev = J("{`annotationDescriptors`: []}");
    assert_int_equal(d2g_mapping_ctx_new(1, "Subventions", "https://x", rev, &ctx, err, sizeof(err)), -1);
    assert_string_equal(err, "revision.champDescriptors: not an array");
    json_decref(rev);
    assert_int_equal(d2g_mapping_ctx_new(1, "subventions", "https://x", NULL, &ctx, err, sizeof(err)), -1);
    assert_int_equal(d2g_mapping_ctx_new(1, "Sub-ventions", "https://x", NULL, &ctx, err, sizeof(err)), -1);
    assert_int_equal(d2g_mapping_ctx_new(1, "Subventions", "", NULL, &ctx, err, sizeof(err)), -1);
}

/* Not a benchmark: a guard against accidental quadratic work per dossier. */
static void test_many_champs(void **state) {
    (void)state;
    fx_t f;
    fx_init(&f, NULL);
    json_t *d = json_pack("{s:i, s:[]}", "number", 9, "champs");
    json_t *champs = json_object_get(d, "champs");
    for (int i = 0; i < 3000; i++) {
        char id[32];
        snprintf(id, sizeof(id), "desc-%d", i);
        json_array_append_new(champs, json_pack("{s:s, s:s, s:s, s:s, s:s}", "__typename", "TextChamp",
                                                "id", id, "champDescriptorId", id, "label",
                                                "Même libellé", "stringValue", "v"));
    }
    assert_int_equal(d2g_mapping_map_dossier(f.ctx, d, 0, f.map, &f.out, f.err, sizeof(f.err)), 0);
    assert_int_equal(f.out.tables[0].n_columns, 32 + 3000);
    assert_string_equal(d2g_colmap_lookup(f.map, "Subventions", "desc-2999"), "meme_libelle_3000");
    json_decref(d);
    fx_free(&f);
}


/* --- composite kinds: typed sub-columns ------------------------------------- */

static const char COMPOSITES[] = "{`id`: `RG9zc2llci03`, `number`: 7, `champs`: ["
    " {`__typename`: `CommuneChamp`, `id`: `1`, `champDescriptorId`: `dCom`, `label`: `Commune`,"
    "  `stringValue`: `Quimper (29000)`, `commune`: {`name`: `Quimper`, `code`: `29232`, `postalCode`: `29000`},"
    "  `departement`: {`code`: `29`, `name`: `Finistère`}},"
    " {`__typename`: `AddressChamp`, `id`: `2`, `champDescriptorId`: `dAdr`, `label`: `Adresse`,"
    "  `stringValue`: `1 rue de la Paix 29000 Quimper`, `address`: {`label`: `1 rue de la Paix 29000 Quimper`,"
    "  `streetAddress`: `1 rue de la Paix`, `postalCode`: `29000`, `cityName`: `Quimper`, `cityCode`: `29232`,"
    "  `departmentCode`: `29`, `departmentName`: `Finistère`, `regionCode`: `53`, `regionName`: `Bretagne`,"
    "  `countryCode`: `FR`, `geometry`: {`type`: `Point`, `coordinates`: [-4.1, 48.0]}}},"
    " {`__typename`: `PaysChamp`, `id`: `3`, `champDescriptorId`: `dPays`, `label`: `Pays`,"
    "  `stringValue`: `Belgique`, `pays`: {`code`: `BE`, `name`: `Belgique`}},"
    " {`__typename`: `RegionChamp`, `id`: `4`, `champDescriptorId`: `dReg`, `label`: `Région`,"
    "  `stringValue`: `Bretagne`, `region`: {`code`: `53`, `name`: `Bretagne`}},"
    " {`__typename`: `DepartementChamp`, `id`: `5`, `champDescriptorId`: `dDep`, `label`: `Département`,"
    "  `stringValue`: `29 – Finistère`, `departement`: {`code`: `29`, `name`: `Finistère`}},"
    " {`__typename`: `EpciChamp`, `id`: `6`, `champDescriptorId`: `dEpci`, `label`: `EPCI`,"
    "  `stringValue`: `Quimper Bretagne Occidentale`, `epci`: {`code`: `242900314`, `name`: `QBO`},"
    "  `departement`: {`code`: `29`, `name`: `Finistère`}},"
    " {`__typename`: `SiretChamp`, `id`: `7`, `champDescriptorId`: `dSiret`, `label`: `SIRET`,"
    "  `stringValue`: `13002526500013`, `etablissement`: {`siret`: `13002526500013`, `naf`: `8411Z`,"
    "  `libelleNaf`: `Administration publique générale`, `address`: {`label`: `20 avenue de Ségur 75007 Paris`,"
    "  `cityCode`: `75107`}, `entreprise`: {`siren`: `130025265`, `raisonSociale`: `DINUM`}}},"
    " {`__typename`: `RNAChamp`, `id`: `8`, `champDescriptorId`: `dRna`, `label`: `RNA`,"
    "  `stringValue`: `W123456789`, `rna`: {`id`: `W123456789`, `title`: `Les Amis du Parc`},"
    "  `commune`: {`name`: `Quimper`, `code`: `29232`}, `departement`: {`code`: `29`}},"
    " {`__typename`: `RNFChamp`, `id`: `9`, `champDescriptorId`: `dRnf`, `label`: `RNF`,"
    "  `stringValue`: `029-FDD-00001-01`, `rnf`: {`id`: `029-FDD-00001-01`, `title`: `Fondation X`},"
    "  `commune`: null, `departement`: null},"
    " {`__typename`: `LinkedDropDownListChamp`, `id`: `10`, `champDescriptorId`: `dLdd`, `label`: `Thème`,"
    "  `stringValue`: `Nature / Jardin`, `primaryValue`: `Nature`, `secondaryValue`: `Jardin`},"
    " {`__typename`: `DossierLinkChamp`, `id`: `11`, `champDescriptorId`: `dLink`, `label`: `Dossier lié`,"
    "  `stringValue`: `8589934592`, `dossier`: {`number`: 8589934592}},"
    " {`__typename`: `DossierLinkChamp`, `id`: `11b`, `champDescriptorId`: `dLink2`, `label`: `Autre dossier`,"
    "  `stringValue`: `12`, `dossier`: null},"
    " {`__typename`: `EngagementJuridiqueChamp`, `id`: `12`, `champDescriptorId`: `dEj`, `label`: `EJ`,"
    "  `stringValue`: `1300000001`, `engagementJuridique`: {`montantEngage`: `12000.50`, `montantPaye`: `0`}},"
    " {`__typename`: `TextChamp`, `id`: `13`, `champDescriptorId`: `dNum`, `label`: `Nombre`, `stringValue`: `12,5`},"
    " {`__typename`: `TextChamp`, `id`: `14`, `champDescriptorId`: `dRef`, `label`: `Référentiel`,"
    "  `stringValue`: `ABC`, `columns`: ["
    "   {`__typename`: `TextColumn`, `id`: `c-ref-1`, `label`: `Référentiel`, `stringValue`: `ABC`},"
    "   {`__typename`: `IntegerColumn`, `id`: `c-ref-2`, `label`: `Référentiel – Effectif`, `stringValue`: `42`,"
    "    `integerValue`: `42`},"
    "   {`__typename`: `DateColumn`, `id`: `c-ref-3`, `label`: `Date d'ouverture`, `stringValue`: `1 mars 2026`,"
    "    `dateValue`: `2026-03-01`}]},"
    " {`__typename`: `SomeFutureChamp`, `id`: `15`, `champDescriptorId`: `dFut`, `label`: `Futur`,"
    "  `stringValue`: `x; 3`, `columns`: ["
    "   {`__typename`: `TextColumn`, `id`: `c-f-1`, `label`: `Futur – Code`, `stringValue`: `x`, `value`: `x`},"
    "   {`__typename`: `DecimalColumn`, `id`: `c-f-2`, `label`: `Futur – Taux`, `stringValue`: `3`, `value`: 3},"
    "   {`__typename`: `BooleanColumn`, `id`: `c-f-3`, `label`: `Futur – Actif`, `stringValue`: `Oui`, `value`: true},"
    "   {`__typename`: `EnumsColumn`, `id`: `c-f-4`, `label`: `Futur – Options`, `stringValue`: `a, b`,"
    "    `value`: [`a`, `b`]}]},"
    " {`__typename`: `CommuneChamp`, `id`: `16`, `champDescriptorId`: `dCom2`, `label`: `Commune vide`,"
    "  `stringValue`: null, `commune`: null, `departement`: null}"
    "]}";

static const char COMPOSITES_REVISION[] = "{`id`: `rev`, `champDescriptors`: ["
    " {`__typename`: `CommuneChampDescriptor`, `id`: `dCom`, `label`: `Commune`},"
    " {`__typename`: `AddressChampDescriptor`, `id`: `dAdr`, `label`: `Adresse`},"
    " {`__typename`: `NumberChampDescriptor`, `id`: `dNum`, `label`: `Nombre`},"
    " {`__typename`: `ReferentielChampDescriptor`, `id`: `dRef`, `label`: `Référentiel`},"
    " {`__typename`: `AnnuaireEducationChampDescriptor`, `id`: `dAnn`, `label`: `Établissement scolaire`},"
    " {`__typename`: `SiretChampDescriptor`, `id`: `dSiretForm`, `label`: `SIRET du partenaire`}]}";

static void test_composite_kinds(void **state) {
    (void)state;
    fx_t f;
    fx_init(&f, NULL);
    fx_map(&f, COMPOSITES, 0);
    const d2g_table_t *t = table(&f.out, "Subventions");
    json_t *r = record(&f.out, "Subventions", "{`numero`: 7}");
    /* Commune: the text, then its codes, each a column "Commune — ..." */
    assert_cell(r, "commune", "`Quimper (29000)`");
    assert_cell(r, "commune_nom", "`Quimper`");
    assert_cell(r, "commune_code_insee", "`29232`");
    assert_string_equal(column(t, "commune_code_insee")->label, "Commune \xe2\x80\x94 code INSEE");
    assert_string_equal(type_of(t, "commune_code_insee"), "Text");
    assert_cell(r, "commune_code_postal", "`29000`");
    assert_cell(r, "commune_departement_code", "`29`");
    assert_cell(r, "commune_departement", "`Finistère`");
    assert_true(column_index(t, "commune_code_insee") == column_index(t, "commune") + 2);
    /* Address */
    assert_cell(r, "adresse_voie", "`1 rue de la Paix`");
    assert_cell(r, "adresse_code_postal", "`29000`");
    assert_cell(r, "adresse_commune", "`Quimper`");
    assert_cell(r, "adresse_code_insee", "`29232`");
    assert_cell(r, "adresse_departement_code", "`29`");
    assert_cell(r, "adresse_region_code", "`53`");
    assert_cell(r, "adresse_region", "`Bretagne`");
    assert_cell(r, "adresse_pays_code", "`FR`");
    assert_string_equal(type_of(t, "adresse_longitude"), "Numeric");
    assert_cell(r, "adresse_longitude", "-4.1");
    assert_cell(r, "adresse_latitude", "48.0");
    /* Pays, Région, Département, EPCI: their codes */
    assert_cell(r, "pays_code", "`BE`");
    assert_cell(r, "region_code", "`53`");
    assert_cell(r, "departement_code", "`29`");
    assert_cell(r, "epci_code", "`242900314`");
    assert_cell(r, "epci_departement_code", "`29`");
    /* SIRET: the company */
    assert_cell(r, "siret", "`13002526500013`");
    assert_cell(r, "siret_raison_sociale", "`DINUM`");
    assert_cell(r, "siret_siren", "`130025265`");
    assert_cell(r, "siret_naf", "`8411Z`");
    assert_cell(r, "siret_libelle_naf", "`Administration publique générale`");
    assert_cell(r, "siret_adresse", "`20 avenue de Ségur 75007 Paris`");
    assert_cell(r, "siret_code_insee", "`75107`");
    /* RNA, RNF */
    assert_cell(r, "rna", "`W123456789`");
    assert_cell(r, "rna_titre", "`Les Amis du Parc`");
    assert_cell(r, "rna_code_insee", "`29232`");
    assert_cell(r, "rnf_titre", "`Fondation X`");
    assert_cell(r, "rnf_commune", "null");
    /* LinkedDropDownList */
    assert_cell(r, "theme", "`Nature / Jardin`");
    assert_cell(r, "theme_principal", "`Nature`");
    assert_cell(r, "theme_secondaire", "`Jardin`");
    /* DossierLink: the number, Int, exact beyond 32 bits; from the text when unresolved */
    assert_string_equal(type_of(t, "dossier_lie"), "Int");
    assert_cell(r, "dossier_lie", "8589934592");
    assert_cell(r, "autre_dossier", "12");
    /* EngagementJuridique: amounts */
    assert_string_equal(type_of(t, "ej_montant_engage"), "Numeric");
    assert_cell(r, "ej_montant_engage", "12000.5");
    assert_cell(r, "ej_montant_paye", "0.0");
    /* a kind without rules: DS's own typed columns (generic), the value's own skipped */
    assert_cell(r, "futur", "`x; 3`");
    assert_cell(r, "futur_code", "`x`");
    assert_string_equal(column(t, "futur_code")->label, "Futur \xe2\x80\x94 Code");
    assert_string_equal(type_of(t, "futur_taux"), "Numeric");
    assert_cell(r, "futur_taux", "3.0");
    assert_string_equal(type_of(t, "futur_actif"), "Bool");
    assert_cell(r, "futur_actif", "true");
    assert_cell(r, "futur_options", "`a, b`");
    /* an empty composite: every sub-column null */
    assert_cell(r, "commune_vide", "null");
    assert_cell(r, "commune_vide_code_insee", "null");
    /* the sub-columns are recorded by descriptor: stable across renames */
    assert_string_equal(d2g_colmap_lookup(f.map, "Subventions", "dCom/code_insee"), "commune_code_insee");
    assert_string_equal(d2g_colmap_lookup(f.map, "Subventions", "dFut/c:c-f-2"), "futur_taux");
    fx_map(&f,
           "{`number`: 8, `champs`: [{`__typename`: `CommuneChamp`, `id`: `1`, `champDescriptorId`: `dCom`,"
           " `label`: `Commune de résidence`, `stringValue`: `Orléans (45000)`,"
           " `commune`: {`name`: `Orléans`, `code`: `45234`, `postalCode`: `45000`}}]}",
           0);
    r = record(&f.out, "Subventions", "{`numero`: 8}");
    assert_cell(r, "commune_code_insee", "`45234`");
    assert_string_equal(column(table(&f.out, "Subventions"), "commune_code_insee")->label,
                        "Commune de résidence \xe2\x80\x94 code INSEE");
    fx_free(&f);
}

static void test_composite_kinds_with_revision(void **state) {
    (void)state;
    fx_t f;
    fx_init(&f, COMPOSITES_REVISION);
    fx_map(&f, COMPOSITES, 0);
    const d2g_table_t *t = table(&f.out, "Subventions");
    json_t *r = record(&f.out, "Subventions", "{`numero`: 7}");
    /* the form's kind decides: a Number descriptor is Numeric though its champ is text */
    assert_string_equal(type_of(t, "nombre"), "Numeric");
    assert_cell(r, "nombre", "12.5");
    /* Referentiel: DS's columns; a label starting with the champ's is cut after it */
    assert_string_equal(type_of(t, "referentiel_effectif"), "Int");
    assert_cell(r, "referentiel_effectif", "42");
    assert_string_equal(type_of(t, "referentiel_date_d_ouverture"), "Date");
    assert_cell(r, "referentiel_date_d_ouverture", "1772323200");
    assert_null(column(t, "referentiel_referentiel"));
    /* a form kind this version does not know: a text column, the champ's own kind if any */
    assert_string_equal(type_of(t, "etablissement_scolaire"), "Text");
    /* a form champ the dossier lacks has its sub-columns already, null */
    assert_string_equal(type_of(t, "siret_du_partenaire_raison_sociale"), "Text");
    assert_cell(r, "siret_du_partenaire_raison_sociale", "null");
    fx_free(&f);
}

/* Dossier numbers beyond 32 bits are kept exactly everywhere. */
static void test_big_numbers(void **state) {
    (void)state;
    fx_t f;
    fx_init(&f, REVISION);
    json_t *d = J(DOSSIER);
    json_object_set_new(d, "number", json_integer(3000000000LL));
    d2g_mapped_clear(&f.out);
    assert_int_equal(d2g_mapping_map_dossier(f.ctx, d, 0, f.map, &f.out, f.err, sizeof(f.err)), 0);
    assert_true(f.out.number == 3000000000LL);
    /* Above grist-core's 32-bit Int the number goes as its digits: what grist-core
     * stores (AltText), so the next upsert's require finds the row again. */
    json_t *r = record(&f.out, "Subventions", "{`numero`: `3000000000`}");
    assert_cell(r, "numero", "`3000000000`");
    assert_cell(r, "lien_ds", "`https://www.demarches-simplifiees.fr/procedures/4242/dossiers/3000000000`");
    assert_cell(record(&f.out, "Subventions_Beneficiaires", "{`ds_row_id`: `Um93LTE=`}"), "dossier",
                "`3000000000`");
    assert_true(f.out.rowsets[0].dossier == 3000000000LL);
    json_decref(d);
    d2g_mapped_clear(&f.out);
    json_t *node = J("{`id`: `x`, `number`: 4294967297, `dateSupression`: null}");
    assert_int_equal(d2g_mapping_map_deleted(f.ctx, node, D2G_DELETED_REMOVE, f.map, &f.out, f.err,
                                             sizeof(f.err)),
                     0);
    assert_true(f.out.removals[0].value == 4294967297LL);
    assert_true(f.out.removals[1].value == 4294967297LL);
    json_decref(node);
    fx_free(&f);
}

/* Child tables linked the Grist way: `dossier` a Ref formula, the number in ds_dossier_numero. */
static void test_ref_links(void **state) {
    (void)state;
    fx_t f;
    memset(&f, 0, sizeof(f));
    d2g_mapping_opts_t o;
    d2g_mapping_opts_default(&o);
    assert_int_equal(o.ref_links, 0);
    assert_int_equal(o.geo_areas, 0);
    assert_int_equal(o.avis, 0);
    assert_int_equal(o.messages, 0);
    o.ref_links = 1;
    json_t *rev = J(REVISION);
    assert_int_equal(d2g_mapping_ctx_new_opts(4242, "Subventions", "https://ds.example", rev, &o,
                                              &f.ctx, f.err, sizeof(f.err)),
                     0);
    json_decref(rev);
    f.map = d2g_colmap_new();
    fx_map(&f, DOSSIER, 0);
    const d2g_table_t *t = table(&f.out, "Subventions_Beneficiaires");
    assert_string_equal(t->dossier_col, "ds_dossier_numero");
    const d2g_column_t *c = column(t, "dossier");
    assert_string_equal(c->type, "Ref:Subventions");
    assert_string_equal(c->formula, "Subventions.lookupOne(numero=$ds_dossier_numero)");
    assert_true(json_is_true(json_object_get(c->fields, "isFormula")));
    assert_string_equal(t->columns[0].id, "dossier");
    assert_string_equal(t->columns[t->n_columns - 2].id, "ds_row_id");
    assert_string_equal(t->columns[t->n_columns - 1].id, "ds_dossier_numero");
    assert_string_equal(type_of(t, "ds_dossier_numero"), "Int");
    assert_null(column(table(&f.out, "Subventions"), "dossier"));
    json_t *r1 = record(&f.out, "Subventions_Beneficiaires", "{`ds_row_id`: `Um93LTE=`}");
    assert_null(json_object_get(r1, "dossier")); /* a formula: never written */
    assert_cell(r1, "ds_dossier_numero", "42");
    assert_null(column(table(&f.out, "Subventions"), "ds_dossier_numero"));
    assert_null(table(&f.out, "Subventions")->columns[0].formula);
    d2g_mapped_clear(&f.out);
    json_t *node = J("{`id`: `x`, `number`: 42}");
    assert_int_equal(d2g_mapping_map_deleted(f.ctx, node, D2G_DELETED_REMOVE, f.map, &f.out, f.err,
                                             sizeof(f.err)),
                     0);
    assert_string_equal(f.out.removals[1].column, "ds_dossier_numero");
    json_decref(node);
    fx_free(&f);
}

/* Geo areas, avis and messages: child tables keyed by DS's ids, with row sets. */
static const char WITH_CHILDREN[] = "{`id`: `RG9zc2llci05`, `number`: 9, `champs`: ["
    " {`__typename`: `CarteChamp`, `id`: `c1`, `champDescriptorId`: `dCarte`, `label`: `Emprise`,"
    "  `stringValue`: `2 zones`, `geoAreas`: ["
    "   {`__typename`: `SelectionUtilisateur`, `id`: `geo-1`, `source`: `selection_utilisateur`,"
    "    `description`: `Zone d'intervention`, `geometry`: {`type`: `Polygon`,"
    "    `coordinates`: [[[2.0, 45.0], [2.01, 45.0], [2.01, 45.01], [2.0, 45.01], [2.0, 45.0]]]}},"
    "   {`__typename`: `ParcelleCadastrale`, `id`: `geo-2`, `source`: `cadastre`, `description`: null,"
    "    `geometry`: {`type`: `Point`, `coordinates`: [2.0, 45.0]}, `commune`: `69383`, `prefixe`: `000`,"
    "    `section`: `AB`, `numero`: `12`, `surface`: `1234`}]}],"
    "`avis`: [{`id`: `avis-1`, `question`: `Budget cohérent ?`, `questionLabel`: `Favorable ?`,"
    "  `questionAnswer`: true, `reponse`: `Oui, cohérent.`, `dateQuestion`: `2026-01-03T10:00:00+01:00`,"
    "  `dateReponse`: null, `claimant`: {`email`: `a@gouv.fr`}, `expert`: {`email`: `e@ddfip.gouv.fr`},"
    "  `attachments`: [{`filename`: `avis.pdf`, `contentType`: `application/pdf`, `byteSizeBigInt`: `2048`,"
    "   `url`: `https://x/expiring?sig=1`}]}],"
    "`messages`: [{`id`: `msg-1`, `email`: `usager@example.org`, `body`: `Bonjour`,"
    "  `createdAt`: `2026-01-02T10:01:00+01:00`, `discardedAt`: null, `attachments`: []}]}";

static void fx_init_opts(fx_t *f, const d2g_mapping_opts_t *o) {
    memset(f, 0, sizeof(*f));
    assert_int_equal(d2g_mapping_ctx_new_opts(4242, "Subventions", "https://www.demarches-simplifiees.fr",
                                              NULL, o, &f->ctx, f->err, sizeof(f->err)),
                     0);
    f->map = d2g_colmap_new();
}

/* opts.attachments: PieceJustificative champs get an Attachments column, ["L"] until the
 * worker copies the files, and the files to copy are listed with their cells. */
static void test_attachments(void **state) {
    (void)state;
    fx_t f;
    fx_init(&f, REVISION);
    fx_map(&f, DOSSIER, 0);
    assert_null(f.out.attachments); /* off by default */
    fx_free(&f);

    d2g_mapping_opts_t o;
    d2g_mapping_opts_default(&o);
    o.attachments = 1;
    fx_init_opts(&f, &o);
    fx_map(&f, DOSSIER, 0);
    assert_string_equal(type_of(&f.out.tables[0], "justificatifs_fichiers"), "Attachments");
    json_t *rec = record(&f.out, "Subventions", "{`numero`: 42}");
    assert_cell(rec, "justificatifs_fichiers", "[`L`]");
    assert_int_equal(json_array_size(f.out.attachments), 1);
    json_t *a = json_array_get(f.out.attachments, 0);
    assert_ptr_equal(json_object_get(a, "fields"), rec); /* the record's own cells */
    assert_string_equal(json_string_value(json_object_get(a, "column")), "justificatifs_fichiers");
    assert_string_equal(json_string_value(json_object_get(a, "text")), "justificatifs");
    assert_int_equal(json_array_size(json_object_get(a, "files")), 2);
    fx_free(&f);
}

static void test_geo_avis_messages(void **state) {
    (void)state;
    fx_t f;
    /* off by default: no child table but the blocks' */
    fx_init(&f, NULL);
    fx_map(&f, WITH_CHILDREN, 0);
    assert_int_equal(f.out.n_tables, 1);
    assert_int_equal(f.out.n_rowsets, 0);
    fx_free(&f);

    d2g_mapping_opts_t o;
    d2g_mapping_opts_default(&o);
    o.geo_areas = o.avis = 1;
    fx_init_opts(&f, &o);
    fx_map(&f, WITH_CHILDREN, 0);
    const d2g_table_t *z = table(&f.out, "Subventions_Zones");
    assert_string_equal(z->key, "ds_row_id");
    assert_string_equal(z->dossier_col, "dossier");
    assert_string_equal(z->columns[0].id, "dossier");
    assert_string_equal(z->columns[z->n_columns - 1].id, "ds_row_id");
    json_t *g1 = record(&f.out, "Subventions_Zones", "{`ds_row_id`: `geo-1`}");
    assert_cell(g1, "dossier", "9");
    assert_cell(g1, "champ", "`Emprise`");
    assert_cell(g1, "champ_id", "`dCarte`");
    assert_cell(g1, "source", "`selection_utilisateur`");
    assert_cell(g1, "type_geometrie", "`Polygon`");
    /* 0.01° x 0.01° at 45°N: about 1,112 m x 786 m */
    double area = json_real_value(json_object_get(g1, "surface_m2"));
    assert_true(area > 870000 && area < 880000);
    assert_cell(g1, "geometrie", "`{\\`type\\`:\\`Polygon\\`,\\`coordinates\\`:[[[2.0,45.0],[2.01,45.0],[2.01,45.01],[2.0,45.01],[2.0,45.0]]]}`");
    assert_cell(g1, "section", "null");
    json_t *g2 = record(&f.out, "Subventions_Zones", "{`ds_row_id`: `geo-2`}");
    assert_cell(g2, "section", "`AB`");
    assert_cell(g2, "numero", "`12`");
    assert_cell(g2, "commune", "`69383`");
    assert_cell(g2, "surface_parcelle", "1234.0");
    assert_cell(g2, "surface_m2", "null");
    /* the Carte champ keeps its text column */
    assert_cell(record(&f.out, "Subventions", "{`numero`: 9}"), "emprise", "`2 zones`");

    json_t *a = record(&f.out, "Subventions_Avis", "{`ds_row_id`: `avis-1`}");
    assert_cell(a, "question", "`Budget cohérent ?`");
    assert_cell(a, "question_oui_non", "`Favorable ?`");
    assert_cell(a, "reponse_oui_non", "true");
    assert_cell(a, "reponse", "`Oui, cohérent.`");
    assert_cell(a, "demandeur_email", "`a@gouv.fr`");
    assert_cell(a, "expert_email", "`e@ddfip.gouv.fr`");
    assert_cell(a, "date_question", "1767430800");
    assert_cell(a, "date_reponse", "null");
    assert_cell(a, "pieces_jointes",
                "`avis.pdf (application/pdf, 2,0 Ko)\\nhttps://www.demarches-simplifiees.fr/procedures/4242/dossiers/9`");
    /* messages are opt-in: none by default */
    for (size_t i = 0; i < f.out.n_tables; i++)
        assert_string_not_equal(f.out.tables[i].id, "Subventions_Messages");
    /* row sets: the complete lists */
    int seen = 0;
    for (size_t i = 0; i < f.out.n_rowsets; i++) {
        json_t *want = NULL;
        if (!strcmp(f.out.rowsets[i].table, "Subventions_Zones"))
            want = J("[`geo-1`, `geo-2`]");
        else if (!strcmp(f.out.rowsets[i].table, "Subventions_Avis"))
            want = J("[`avis-1`]");
        if (want) {
            assert_true(json_equal(f.out.rowsets[i].row_ids, want));
            json_decref(want);
            seen++;
        }
    }
    assert_int_equal(seen, 2);
    /* an area removed in DS: the row set says so */
    fx_map(&f,
           "{`number`: 9, `champs`: [{`__typename`: `CarteChamp`, `id`: `c1`, `champDescriptorId`: `dCarte`,"
           " `label`: `Emprise`, `stringValue`: ``, `geoAreas`: []}], `avis`: []}",
           0);
    assert_int_equal(f.out.n_rowsets, 2);
    assert_int_equal(json_array_size(f.out.rowsets[0].row_ids), 0);
    assert_int_equal(json_array_size(f.out.rowsets[1].row_ids), 0);
    /* a dossier without the lists (an older query): no row set, nothing deleted */
    fx_map(&f, "{`number`: 9, `champs`: [{`__typename`: `CarteChamp`, `id`: `c1`,"
               " `champDescriptorId`: `dCarte`, `label`: `Emprise`, `stringValue`: ``}]}", 0);
    assert_int_equal(f.out.n_rowsets, 0);
    fx_free(&f);

    /* messages when the procedure opts in, linked by Ref */
    d2g_mapping_opts_default(&o);
    o.messages = 1;
    o.ref_links = 1;
    memset(&f, 0, sizeof(f));
    assert_int_equal(d2g_mapping_ctx_new_opts(4242, "Subventions", "https://ds.example", NULL, &o,
                                              &f.ctx, f.err, sizeof(f.err)),
                     0);
    f.map = d2g_colmap_new();
    fx_map(&f, WITH_CHILDREN, 0);
    const d2g_table_t *m = table(&f.out, "Subventions_Messages");
    assert_string_equal(m->dossier_col, "ds_dossier_numero");
    assert_string_equal(column(m, "dossier")->type, "Ref:Subventions");
    json_t *r = record(&f.out, "Subventions_Messages", "{`ds_row_id`: `msg-1`}");
    assert_cell(r, "email", "`usager@example.org`");
    assert_cell(r, "corps", "`Bonjour`");
    assert_cell(r, "date", "1767344460");
    assert_cell(r, "supprime", "false");
    assert_cell(r, "pieces_jointes", "null");
    assert_cell(r, "ds_dossier_numero", "9");
    assert_null(json_object_get(r, "dossier"));
    /* a dossier with no message: the table's `dossier` is the Ref formula all the same
     * (the writer creates columns from the first definition it sees) */
    fx_map(&f, "{`number`: 10, `champs`: [], `messages`: []}", 0);
    m = table(&f.out, "Subventions_Messages");
    assert_string_equal(column(m, "dossier")->type, "Ref:Subventions");
    assert_non_null(column(m, "dossier")->formula);
    /* partial (label) updates touch no child table */
    fx_map(&f, "{`number`: 9, `labels`: [], `avis`: [], `messages`: []}", D2G_MAPPING_PARTIAL);
    assert_int_equal(f.out.n_rowsets, 0);
    assert_int_equal(f.out.n_tables, 1);
    fx_free(&f);
}

/* The README's mapping figure: how many of the fixture dossier (champs of every
 * kind, a repetition block, annotations) one core maps per second. Printed, not
 * asserted (a timed assertion would fail on a loaded machine). */
static void test_mapping_rate(void **state) {
    (void)state;
    fx_t f;
    fx_init(&f, REVISION);
    json_t *d = J(DOSSIER);
    struct timespec t0, t1;
    long n = 0;
    double elapsed = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        for (int i = 0; i < 200; i++, n++) {
            d2g_mapped_clear(&f.out);
            assert_int_equal(d2g_mapping_map_dossier(f.ctx, d, 0, f.map, &f.out, f.err, sizeof(f.err)), 0);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        elapsed = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    } while (elapsed < 1.0);
    printf("# mapping: %.0f dossiers/s on one core (%ld dossiers of the fixture in %.2f s, %s build)\n",
           (double)n / elapsed, n, elapsed,
#ifdef NDEBUG
           "release"
#else
           "debug"
#endif
    );
    json_decref(d);
    fx_free(&f);
}

/* The producer's list of kinds whose `columns` it leaves out (common/champs.c) is
 * exactly the mapping's kinds with a rule: a generic kind in it would lose its
 * sub-columns, a ruled kind missing from it would only cost bytes. */
static void test_champs_ruled_matches_kinds(void **state) {
    (void)state;
    size_t n;
    const d2g_kind_t *k = d2g_kind_table(&n);
    for (size_t i = 0; i < n; i++) {
        char champ[96], desc[96];
        snprintf(champ, sizeof(champ), "%sChamp", k[i].name);
        snprintf(desc, sizeof(desc), "%sChampDescriptor", k[i].name);
        if (d2g_champs_ruled(champ) != !k[i].generic || d2g_champs_ruled(desc) != !k[i].generic)
            fail_msg("%s: ruled %d, generic %d", k[i].name, d2g_champs_ruled(champ), k[i].generic);
    }
    assert_int_equal(d2g_champs_ruled("FooBarChamp"), 0); /* a kind DS adds later */
    assert_int_equal(d2g_champs_ruled("Text"), 0);
    assert_int_equal(d2g_champs_ruled(NULL), 0);
    /* pruning: only ruled champs whose descriptor the form says is ruled, rows included */
    json_t *rev = json_loads("{\"champDescriptors\": [{\"__typename\": \"TextChampDescriptor\", \"id\": \"a\"},"
                             " {\"__typename\": \"ReferentielChampDescriptor\", \"id\": \"b\"},"
                             " {\"__typename\": \"RepetitionChampDescriptor\", \"id\": \"r\", \"champDescriptors\":"
                             "   [{\"__typename\": \"DateChampDescriptor\", \"id\": \"c\"}]}]}", 0, NULL);
    json_t *ruled = d2g_champs_ruled_descriptors(rev);
    json_t *d = json_loads("{\"champs\": [{\"__typename\": \"TextChamp\", \"champDescriptorId\": \"a\", \"columns\": []},"
                           " {\"__typename\": \"ReferentielChamp\", \"champDescriptorId\": \"b\", \"columns\": []},"
                           " {\"__typename\": \"TextChamp\", \"champDescriptorId\": \"z\", \"columns\": []},"
                           " {\"__typename\": \"RepetitionChamp\", \"champDescriptorId\": \"r\", \"rows\": [{\"champs\":"
                           "   [{\"__typename\": \"DateChamp\", \"champDescriptorId\": \"c\", \"columns\": []}]}]}]}",
                           0, NULL);
    assert_int_equal(d2g_champs_prune(d, ruled), 2);
    json_t *ch = json_object_get(d, "champs");
    assert_null(json_object_get(json_array_get(ch, 0), "columns"));
    assert_non_null(json_object_get(json_array_get(ch, 1), "columns")); /* generic: read */
    assert_non_null(json_object_get(json_array_get(ch, 2), "columns")); /* not in the form */
    assert_int_equal(d2g_champs_prune(d, NULL), 0);                      /* no form: keep all */
    json_decref(d);
    json_decref(ruled);
    json_decref(rev);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_champs_ruled_matches_kinds),
        cmocka_unit_test(test_colid_from_label),
        cmocka_unit_test(test_colid_table),
        cmocka_unit_test(test_colmap_dedup_and_stability),
        cmocka_unit_test(test_colmap_json_merge),
        cmocka_unit_test(test_parse_iso),
        cmocka_unit_test(test_fixed_columns),
        cmocka_unit_test(test_champs_with_revision),
        cmocka_unit_test(test_form_alone),
        cmocka_unit_test(test_champs_without_revision),
        cmocka_unit_test(test_cell_fallbacks),
        cmocka_unit_test(test_repetition),
        cmocka_unit_test(test_repetition_without_revision),
        cmocka_unit_test(test_stable_ids_across_renames),
        cmocka_unit_test(test_demandeur),
        cmocka_unit_test(test_partial_labels),
        cmocka_unit_test(test_deleted),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_many_champs),
        cmocka_unit_test(test_composite_kinds),
        cmocka_unit_test(test_composite_kinds_with_revision),
        cmocka_unit_test(test_big_numbers),
        cmocka_unit_test(test_ref_links),
        cmocka_unit_test(test_geo_avis_messages),
        cmocka_unit_test(test_attachments),
        cmocka_unit_test(test_mapping_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
