/*
 * mapping.c - dossier -> Grist tables, columns and rows, see mapping.h.
 *
 * A builder collects the tables (each with its columns, de-duplicated by id
 * through a jansson object used as a hash set), the records and the row sets
 * of one dossier; on success they move into the caller's d2g_mapped_t. Work
 * is linear in the size of the dossier: every lookup (descriptor by id,
 * column by id, column id by descriptor, choice already seen) is a hash
 * lookup.
 */
#include "mapping.h"
#include "ds2grist/alloc.h"
#include "ds2grist/clock.h"
#include "ds2grist/err.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h> /* isfinite (a macro: no libm needed) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --- champ kinds --------------------------------------------------------- */

enum kind {
    K_TEXT,
    K_DATE,
    K_DATETIME,
    K_INT,
    K_NUMERIC,
    K_CHECKBOX,
    K_YESNO,
    K_CHOICE,
    K_CHOICELIST,
    K_FILES,
    K_REPETITION,
    K_NONE, /* HeaderSection, Explication: no data */
};

static const struct {
    const char *name;
    enum kind kind;
} kinds[] = {
    {"DateChamp", K_DATE},
    {"DatetimeChamp", K_DATETIME},
    {"IntegerNumberChamp", K_INT},
    {"DecimalNumberChamp", K_NUMERIC},
    {"CheckboxChamp", K_CHECKBOX},
    {"YesNoChamp", K_YESNO},
    {"DropDownListChamp", K_CHOICE},
    {"MultipleDropDownListChamp", K_CHOICELIST},
    {"PieceJustificativeChamp", K_FILES},
    {"TitreIdentiteChamp", K_FILES},
    {"RepetitionChamp", K_REPETITION},
    {"HeaderSectionChamp", K_NONE},
    {"ExplicationChamp", K_NONE},
};

/* The kind of a champ's (or, with descriptor, a ChampDescriptor's) __typename;
 * every other kind, known or not, is text. */
static enum kind kind_of(const char *typename, int descriptor) {
    size_t n = strlen(typename);
    if (descriptor) {
        if (n < 10 || strcmp(typename + n - 10, "Descriptor") != 0)
            return K_TEXT;
        n -= 10;
    }
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strlen(kinds[i].name) == n && strncmp(kinds[i].name, typename, n) == 0)
            return kinds[i].kind;
    return K_TEXT;
}

static const char *grist_type(enum kind k) {
    switch (k) {
    case K_DATE: return "Date";
    case K_DATETIME: return "DateTime:Europe/Paris";
    case K_INT: return "Int";
    case K_NUMERIC: return "Numeric";
    case K_CHECKBOX:
    case K_YESNO: return "Bool";
    case K_CHOICE: return "Choice";
    case K_CHOICELIST: return "ChoiceList";
    default: return "Text";
    }
}

static int structural(enum kind k) { return k == K_REPETITION || k == K_NONE; }

/* --- dates --------------------------------------------------------------- */

/* Sunday = 0. */
static int weekday(int64_t days) { return (int)(days >= -4 ? (days + 4) % 7 : (days + 5) % 7 + 6); }

static int64_t last_sunday(int y, int m) {
    int64_t last = d2g_clock_days_from_civil(y, m, d2g_clock_days_in_month(y, m));
    return last - weekday(last);
}

/* Europe/Paris local time -> UTC: CET (+1), CEST (+2) from the last Sunday of
 * March 01:00 UTC to the last Sunday of October 01:00 UTC (EU rule since 1996). */
static int64_t paris_to_utc(int y, int64_t local) {
    int64_t start = last_sunday(y, 3) * 86400 + 3600, end = last_sunday(y, 10) * 86400 + 3600;
    int64_t guess = local - 3600;
    return (guess >= start && guess < end) ? local - 7200 : guess;
}

static const char *const months_fr[] = {"janvier", "fevrier", "mars", "avril", "mai",
                                        "juin", "juillet", "aout", "septembre", "octobre",
                                        "novembre", "decembre"};

/*
 * The French texts DS puts in stringValue: "14 mars 2026", "1er mars 2026",
 * "14/03/2026", optionally followed by " 15:06", " à 15h06". Sets *has_time.
 * Returns 0 with the local date and time.
 */
static int parse_french(const char *s, int *y, int *mo, int *d, int *h, int *mi, int *has_time) {
    char word[32], id[D2G_COLID_BUFLEN];
    const char *p = s;
    size_t n = 0;

    *h = *mi = *has_time = 0;
    for (*d = 0; isdigit((unsigned char)*p) && n < 2; p++, n++)
        *d = *d * 10 + (*p - '0');
    if (n == 0)
        return -1;
    if (*p == '/') {
        p++;
        if (d2g_clock_scan_digits(&p, 2, mo) || *p++ != '/' || d2g_clock_scan_digits(&p, 4, y))
            return -1;
    } else {
        if (p[0] == 'e' && p[1] == 'r')
            p += 2;
        if (*p != ' ')
            return -1;
        while (*p == ' ')
            p++;
        for (n = 0; *p && *p != ' ' && n < sizeof(word) - 1; p++)
            word[n++] = *p;
        word[n] = 0;
        d2g_colid_from_label(word, id, sizeof(id));
        *mo = 0;
        size_t wl = strlen(id);
        for (int i = 0; i < 12 && !*mo; i++)
            if (wl >= 3 && strncmp(months_fr[i], id, wl) == 0)
                *mo = i + 1;
        while (*p == ' ')
            p++;
        if (!*mo || d2g_clock_scan_digits(&p, 4, y))
            return -1;
    }
    while (*p == ' ')
        p++;
    if (strncmp(p, "\xc3\xa0", 2) == 0 || *p == 'a') { /* "à" */
        p += *p == 'a' ? 1 : 2;
        while (*p == ' ')
            p++;
    }
    if (*p) {
        size_t k = 0;
        for (*h = 0; isdigit((unsigned char)*p) && k < 2; p++, k++)
            *h = *h * 10 + (*p - '0');
        if (k == 0 || (*p != ':' && *p != 'h'))
            return -1;
        p++;
        if (d2g_clock_scan_digits(&p, 2, mi) || *h > 23 || *mi > 59)
            return -1;
        *has_time = 1;
        if (*p)
            return -1;
    }
    return d2g_clock_valid_date(*y, *mo, *d) ? 0 : -1;
}

/*
 * A date or date-time cell: epoch seconds (UTC midnight for a date); the
 * text itself if it cannot be read (Grist shows it as an invalid cell: never
 * silently lost); null for no value.
 */
static json_t *date_cell(const char *s, int datetime) {
    double e;
    int is_int, y, mo, d, h, mi, has_time;
    if (!s || !*s)
        return json_null();
    if (!datetime && strlen(s) >= 10) {
        char day[11];
        memcpy(day, s, 10);
        day[10] = 0;
        if (d2g_clock_parse_iso(day, &e, &is_int) == 0 && (s[10] == 0 || s[10] == 'T'))
            return json_integer((json_int_t)e);
    }
    if (datetime && d2g_clock_parse_iso(s, &e, &is_int) == 0)
        return is_int ? json_integer((json_int_t)e) : json_real(e);
    if (parse_french(s, &y, &mo, &d, &h, &mi, &has_time) == 0) {
        int64_t day = d2g_clock_days_from_civil(y, mo, d) * 86400;
        if (!datetime)
            return json_integer(day);
        return json_integer(paris_to_utc(y, day + h * 3600 + mi * 60));
    }
    return json_string(s);
}

/* --- small strings -------------------------------------------------------- */

typedef struct {
    char *s;
    size_t len, cap;
} sbuf_t;

static void sb_add(sbuf_t *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 128;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->s = d2g_realloc(b->s, cap);
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void sb_str(sbuf_t *b, const char *s) { sb_add(b, s, strlen(s)); }

/* s with every line break as one space. */
static void sb_oneline(sbuf_t *b, const char *s) {
    while (*s) {
        size_t n = strcspn(s, "\r\n");
        sb_add(b, s, n);
        s += n;
        if (*s) {
            sb_add(b, " ", 1);
            s += strspn(s, "\r\n");
        }
    }
}

/* The text as a JSON string (NULL text or empty buffer: null); frees it. */
static json_t *sb_take(sbuf_t *b) {
    json_t *v = b->len ? json_string(b->s) : json_null();
    free(b->s);
    memset(b, 0, sizeof(*b));
    return v;
}

static char *concat(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    char *s = d2g_malloc(na + nb + 1);
    memcpy(s, a, na);
    memcpy(s + na, b, nb + 1);
    return s;
}

static const char *jstr(json_t *obj, const char *key) {
    return json_string_value(json_object_get(obj, key));
}

static json_t *str_or_null(const char *s) { return s ? json_string(s) : json_null(); }

/* --- the context ---------------------------------------------------------- */

typedef struct rdesc {
    const char *id, *label; /* borrowed from the revision */
    enum kind kind;
    json_t *options; /* borrowed: array of strings, or NULL */
    size_t first_sub, n_subs;
} rdesc_t;

struct d2g_mapping_ctx {
    int64_t procedure;
    char *prefix, *base_url, *tables_scope;
    json_t *revision;
    rdesc_t *descs; /* champs [0, n_champs), annotations, then repetition sub-champs */
    size_t n_descs, n_champs, n_annots;
    json_t *index; /* {descriptor id: index in descs} */
};

static size_t count_descs(json_t *arr) {
    size_t i, n = 0;
    json_t *d;
    json_array_foreach(arr, i, d) {
        json_t *subs = json_object_get(d, "champDescriptors");
        n += 1 + (json_is_array(subs) ? json_array_size(subs) : 0);
    }
    return n;
}

static int fill_desc(d2g_mapping_ctx_t *ctx, rdesc_t *r, json_t *d, const char *path,
                     size_t i, char *err, size_t errlen) {
    const char *type = jstr(d, "__typename");
    if (!json_is_object(d))
        return d2g_err_set(err, errlen, "revision.%s[%zu]: not an object", path, i);
    if (!(r->id = jstr(d, "id")))
        return d2g_err_set(err, errlen, "revision.%s[%zu]: no id", path, i);
    if (!type)
        return d2g_err_set(err, errlen, "revision.%s[%zu] (%s): no __typename", path, i, r->id);
    r->label = jstr(d, "label") ? jstr(d, "label") : "";
    r->kind = kind_of(type, 1);
    r->options = json_is_array(json_object_get(d, "options")) ? json_object_get(d, "options") : NULL;
    if (json_object_set_new(ctx->index, r->id, json_integer((json_int_t)(r - ctx->descs))))
        return d2g_err_set(err, errlen, "out of memory");
    return 0;
}

static int load_revision(d2g_mapping_ctx_t *ctx, json_t *rev, char *err, size_t errlen) {
    json_t *champs = json_object_get(rev, "champDescriptors");
    json_t *annots = json_object_get(rev, "annotationDescriptors");
    json_t *lists[2] = {champs, annots};
    const char *names[2] = {"champDescriptors", "annotationDescriptors"};
    size_t next;

    if (!json_is_object(rev))
        return d2g_err_set(err, errlen, "revision: not an object");
    if (!json_is_array(champs))
        return d2g_err_set(err, errlen, "revision.champDescriptors: not an array");
    if (annots && !json_is_null(annots) && !json_is_array(annots))
        return d2g_err_set(err, errlen, "revision.annotationDescriptors: not an array");
    ctx->n_champs = json_array_size(champs);
    ctx->n_annots = json_array_size(annots);
    ctx->n_descs = count_descs(champs) + count_descs(annots);
    if (!(ctx->index = json_object()))
        return d2g_err_set(err, errlen, "out of memory");
    if (ctx->n_descs)
        ctx->descs = d2g_calloc(ctx->n_descs, sizeof(*ctx->descs));
    next = ctx->n_champs + ctx->n_annots;
    for (int l = 0; l < 2; l++) {
        size_t i, base = l ? ctx->n_champs : 0;
        json_t *d;
        json_array_foreach(lists[l], i, d) {
            rdesc_t *r = &ctx->descs[base + i];
            if (fill_desc(ctx, r, d, names[l], i, err, errlen))
                return -1;
            json_t *subs = json_object_get(d, "champDescriptors");
            if (r->kind != K_REPETITION || !json_is_array(subs))
                continue;
            size_t j;
            json_t *sd;
            char path[96];
            snprintf(path, sizeof(path), "%s[%zu].champDescriptors", names[l], i);
            r->first_sub = next;
            r->n_subs = json_array_size(subs);
            json_array_foreach(subs, j, sd) {
                if (fill_desc(ctx, &ctx->descs[next++], sd, path, j, err, errlen))
                    return -1;
            }
        }
    }
    ctx->n_descs = next;
    return 0;
}

int d2g_mapping_ctx_new(int64_t procedure, const char *table_prefix, const char *ds_base_url,
                        json_t *revision, d2g_mapping_ctx_t **out, char *err, size_t errlen) {
    char check[D2G_COLID_BUFLEN + 256];
    *out = NULL;
    if (procedure <= 0)
        return d2g_err_set(err, errlen, "mapping: procedure must be positive");
    if (!table_prefix || !*table_prefix || strlen(table_prefix) > 200 ||
        d2g_colid_table(table_prefix, NULL, check, sizeof(check)) ||
        strcmp(check, table_prefix) != 0)
        return d2g_err_set(err, errlen, "mapping: table prefix \"%s\" is not a Grist table id",
                           table_prefix ? table_prefix : "");
    if (!ds_base_url || !*ds_base_url)
        return d2g_err_set(err, errlen, "mapping: the DS base URL is required");
    d2g_mapping_ctx_t *ctx = d2g_calloc(1, sizeof(*ctx));
    ctx->procedure = procedure;
    ctx->prefix = d2g_strdup(table_prefix);
    ctx->base_url = d2g_strdup(ds_base_url);
    ctx->tables_scope = concat("#tables:", table_prefix);
    for (size_t n = strlen(ctx->base_url); n > 0 && ctx->base_url[n - 1] == '/'; n--)
        ctx->base_url[n - 1] = 0;
    if (revision && !json_is_null(revision)) {
        if (load_revision(ctx, revision, err, errlen)) {
            d2g_mapping_ctx_free(ctx);
            return -1;
        }
        ctx->revision = json_incref(revision);
    }
    *out = ctx;
    return 0;
}

void d2g_mapping_ctx_free(d2g_mapping_ctx_t *ctx) {
    if (!ctx)
        return;
    free(ctx->prefix);
    free(ctx->base_url);
    free(ctx->tables_scope);
    free(ctx->descs);
    json_decref(ctx->index);
    json_decref(ctx->revision);
    free(ctx);
}

static const rdesc_t *find_desc(const d2g_mapping_ctx_t *ctx, const char *id) {
    json_t *i = ctx->index ? json_object_get(ctx->index, id) : NULL;
    return i ? &ctx->descs[json_integer_value(i)] : NULL;
}

/* --- the fixed columns ---------------------------------------------------- */

static const char STATES[] =
    "{\"choices\":[\"en_construction\",\"en_instruction\",\"accepte\",\"refuse\",\"sans_suite\"]}";
static const char DEMANDEUR_TYPES[] =
    "{\"choices\":[\"physique\",\"morale\",\"morale_incomplete\"]}";
#define DT "DateTime:Europe/Paris"

static const struct fixed {
    const char *id, *label, *type, *widget;
} fixed[] = {
    {"numero", "Numéro", "Int", NULL},
    {"ds_id", "ID DS", "Text", NULL},
    {"etat", "État", "Choice", STATES},
    {"archive", "Archivé", "Bool", NULL},
    {"date_depot", "Date de dépôt", DT, NULL},
    {"date_derniere_modification", "Date de dernière modification", DT, NULL},
    {"date_passage_en_construction", "Date de passage en construction", DT, NULL},
    {"date_passage_en_instruction", "Date de passage en instruction", DT, NULL},
    {"date_traitement", "Date de traitement", DT, NULL},
    {"date_expiration", "Date d'expiration", DT, NULL},
    {"usager_email", "Email de l'usager", "Text", NULL},
    {"demandeur_type", "Type de demandeur", "Choice", DEMANDEUR_TYPES},
    {"demandeur_civilite", "Civilité du demandeur", "Text", NULL},
    {"demandeur_nom", "Nom du demandeur", "Text", NULL},
    {"demandeur_prenom", "Prénom du demandeur", "Text", NULL},
    {"demandeur_email", "Email du demandeur", "Text", NULL},
    {"demandeur_siret", "SIRET du demandeur", "Text", NULL},
    {"demandeur_raison_sociale", "Raison sociale", "Text", NULL},
    {"demandeur_naf", "Code NAF", "Text", NULL},
    {"demandeur_libelle_naf", "Libellé NAF", "Text", NULL},
    {"demandeur_adresse", "Adresse du demandeur", "Text", NULL},
    {"groupe_instructeur", "Groupe instructeur", "Text", NULL},
    {"groupe_instructeur_numero", "Numéro du groupe instructeur", "Int", NULL},
    {"instructeurs", "Instructeurs", "Text", NULL},
    {"labels", "Labels", "ChoiceList", NULL},
    {"motivation", "Motivation", "Text", NULL},
    {"traitements", "Traitements", "Text", NULL},
    {"lien_ds", "Lien DS", "Text", NULL},
    {"supprime", "Supprimé", "Bool", NULL},
    {"date_suppression", "Date de suppression", DT, NULL},
    {"motif_suppression", "Motif de suppression", "Text", NULL},
};
#define N_FIXED (sizeof(fixed) / sizeof(fixed[0]))

const char *const d2g_mapping_fixed_columns[] = {
    "numero", "ds_id", "etat", "archive", "date_depot", "date_derniere_modification",
    "date_passage_en_construction", "date_passage_en_instruction", "date_traitement",
    "date_expiration", "usager_email", "demandeur_type", "demandeur_civilite", "demandeur_nom",
    "demandeur_prenom", "demandeur_email", "demandeur_siret", "demandeur_raison_sociale",
    "demandeur_naf", "demandeur_libelle_naf", "demandeur_adresse", "groupe_instructeur",
    "groupe_instructeur_numero", "instructeurs", "labels", "motivation", "traitements",
    "lien_ds", "supprime", "date_suppression", "motif_suppression", NULL};

static const struct fixed child_fixed[] = {
    {"ds_row_id", "ID de ligne DS", "Text", NULL},
    {"dossier", "Dossier", "Int", NULL},
    {"numero_ligne", "Numéro de ligne", "Int", NULL},
};

/* --- the builder ---------------------------------------------------------- */

typedef struct col_b {
    char *id, *label;
    const char *type;
    const char *widget; /* static JSON text, or NULL */
    json_t *choices;    /* choice columns: array of the choices, in order */
    json_t *seen;       /* and the same as a set */
} col_b;

typedef struct table_b {
    char *id;
    const char *key, *dossier_col;
    col_b **cols;
    size_t n, cap;
    json_t *colset;  /* {column id: index} */
    json_t *row_ids; /* child tables: the dossier's rows, NULL if not known */
} table_b;

typedef struct rec_b {
    size_t table;
    json_t *require, *fields;
} rec_b;

typedef struct builder {
    const d2g_mapping_ctx_t *ctx;
    d2g_colmap_t *map;
    int partial;
    int64_t number;
    table_b **tables;
    size_t n_tables, cap_tables;
    json_t *tableset; /* {table id: index} */
    rec_b *recs;
    size_t n_recs, cap_recs;
    d2g_removal_t *rems;
    size_t n_rems, cap_rems;
    char *err;
    size_t errlen;
} builder_t;

static int oom(builder_t *b) { return d2g_err_set(b->err, b->errlen, "out of memory"); }

/* Grows *arr (of elem-sized items) to hold n + 1. */
static void grow(void *arr, size_t *cap, size_t n, size_t elem) {
    if (n < *cap)
        return;
    size_t ncap = *cap ? *cap * 2 : 8;
    *(void **)arr = d2g_realloc(*(void **)arr, ncap * elem);
    *cap = ncap;
}

static void col_free(col_b *c) {
    if (!c)
        return;
    free(c->id);
    free(c->label);
    json_decref(c->choices);
    json_decref(c->seen);
    free(c);
}

static void table_free(table_b *t) {
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        col_free(t->cols[i]);
    free(t->cols);
    free(t->id);
    json_decref(t->colset);
    json_decref(t->row_ids);
    free(t);
}

static void builder_free(builder_t *b) {
    for (size_t i = 0; i < b->n_tables; i++)
        table_free(b->tables[i]);
    free(b->tables);
    json_decref(b->tableset);
    for (size_t i = 0; i < b->n_recs; i++) {
        json_decref(b->recs[i].require);
        json_decref(b->recs[i].fields);
    }
    free(b->recs);
    for (size_t i = 0; i < b->n_rems; i++)
        free(b->rems[i].table);
    free(b->rems);
}

/* The table's index; *created says whether it is new. -1 on out of memory. */
static long add_table(builder_t *b, const char *id, const char *key, const char *dossier_col,
                      int *created) {
    json_t *i = json_object_get(b->tableset, id);
    *created = 0;
    if (i)
        return (long)json_integer_value(i);
    table_b *t = d2g_calloc(1, sizeof(*t));
    grow(&b->tables, &b->cap_tables, b->n_tables, sizeof(*b->tables));
    t->id = d2g_strdup(id);
    t->colset = json_object();
    t->key = key;
    t->dossier_col = dossier_col;
    if (!t->colset ||
        json_object_set_new(b->tableset, id, json_integer((json_int_t)b->n_tables))) {
        table_free(t);
        return -1;
    }
    b->tables[b->n_tables] = t;
    *created = 1;
    return (long)b->n_tables++;
}

/* Adds a string to a choice column's choices unless it has it. */
static int see_choice(col_b *c, const char *v) {
    if (!c || !c->seen || !v || !*v || json_object_get(c->seen, v))
        return 0;
    if (json_object_set_new(c->seen, v, json_true()) ||
        json_array_append_new(c->choices, json_string(v)))
        return -1;
    return 0;
}

/*
 * Declares a column of table t (the first declaration of an id wins); choice
 * columns start with options (borrowed, may be NULL). Returns it, NULL on out
 * of memory.
 */
static col_b *add_column(builder_t *b, table_b *t, const char *id, const char *label,
                         const char *type, const char *widget, json_t *options) {
    json_t *i = json_object_get(t->colset, id);
    if (i)
        return t->cols[json_integer_value(i)];
    col_b *c = d2g_calloc(1, sizeof(*c));
    grow(&t->cols, &t->cap, t->n, sizeof(*t->cols));
    c->id = d2g_strdup(id);
    c->label = d2g_strdup(label ? label : "");
    c->type = type;
    c->widget = widget;
    if (!widget && (strcmp(type, "Choice") == 0 || strcmp(type, "ChoiceList") == 0)) {
        size_t k;
        json_t *o;
        c->choices = json_array();
        c->seen = json_object();
        if (!c->choices || !c->seen) {
            col_free(c);
            return NULL;
        }
        json_array_foreach(options, k, o) {
            if (see_choice(c, json_string_value(o))) {
                col_free(c);
                return NULL;
            }
        }
    }
    if (json_object_set_new(t->colset, id, json_integer((json_int_t)t->n))) {
        col_free(c);
        return NULL;
    }
    t->cols[t->n++] = c;
    (void)b;
    return c;
}

static int add_fixed_columns(builder_t *b, table_b *t, const struct fixed *f, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (d2g_colmap_reserve(b->map, t->id, f[i].id))
            return d2g_err_set(b->err, b->errlen,
                               "column map: \"%s\" is assigned to a champ in table %s", f[i].id,
                               t->id);
        if (!add_column(b, t, f[i].id, f[i].label, f[i].type, f[i].widget, NULL))
            return oom(b);
    }
    return 0;
}

/* Takes require and fields (even on failure). */
static int add_record(builder_t *b, size_t table, json_t *require, json_t *fields) {
    if (!require || !fields) {
        json_decref(require);
        json_decref(fields);
        return oom(b);
    }
    grow(&b->recs, &b->cap_recs, b->n_recs, sizeof(*b->recs));
    b->recs[b->n_recs++] = (rec_b){table, require, fields};
    return 0;
}

static int add_removal(builder_t *b, const char *table, const char *column) {
    grow(&b->rems, &b->cap_rems, b->n_rems, sizeof(*b->rems));
    b->rems[b->n_rems++] = (d2g_removal_t){d2g_strdup(table), column, b->number};
    return 0;
}

/* Sets fields[key] = v (taking v). */
static int put(builder_t *b, json_t *fields, const char *key, json_t *v) {
    if (!v || json_object_set_new(fields, key, v))
        return oom(b);
    return 0;
}

/* --- cells ---------------------------------------------------------------- */

/* s without the spaces people and DS put in numbers (incl. U+00A0, U+202F). */
static int compact_number(const char *s, char *out, size_t outlen, int comma_is_dot) {
    size_t n = 0;
    for (; *s; s++) {
        if (*s == ' ')
            continue;
        if (strncmp(s, "\xc2\xa0", 2) == 0 || strncmp(s, "\xe2\x80\xaf", 3) == 0) {
            s += s[0] == '\xc2' ? 1 : 2;
            continue;
        }
        if (n + 1 >= outlen)
            return -1;
        out[n++] = (comma_is_dot && *s == ',') ? '.' : *s;
    }
    out[n] = 0;
    return n ? 0 : -1;
}

/* Grist's Int holds 32-bit values; larger ones are kept as their text (an
 * invalid cell in Grist, but no digit is lost). */
#define GRIST_INT_MIN (-2147483647LL - 1)
#define GRIST_INT_MAX 2147483647LL

static json_t *int_cell(json_t *typed, const char *sv) {
    char buf[64], *end;
    if (json_is_integer(typed)) {
        json_int_t v = json_integer_value(typed);
        if (v >= GRIST_INT_MIN && v <= GRIST_INT_MAX)
            return json_integer(v);
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, v);
        return json_string(buf);
    }
    if (json_is_real(typed)) {
        double v = json_real_value(typed);
        if (v >= (double)GRIST_INT_MIN && v <= (double)GRIST_INT_MAX && v == (double)(long long)v)
            return json_integer((json_int_t)v);
        return json_real(v);
    }
    const char *s = json_string_value(typed) ? json_string_value(typed) : sv;
    if (!s || !*s)
        return json_null();
    if (compact_number(s, buf, sizeof(buf), 0) == 0) {
        errno = 0;
        long long v = strtoll(buf, &end, 10);
        if (!errno && !*end && v >= GRIST_INT_MIN && v <= GRIST_INT_MAX)
            return json_integer(v);
    }
    return json_string(s);
}

static json_t *numeric_cell(json_t *typed, const char *sv) {
    char buf[128], *end;
    if (json_is_number(typed))
        return json_real(json_number_value(typed));
    const char *s = json_string_value(typed) ? json_string_value(typed) : sv;
    if (!s || !*s)
        return json_null();
    if (compact_number(s, buf, sizeof(buf), 1) == 0) {
        errno = 0;
        double v = strtod(buf, &end);
        if (!errno && !*end && isfinite(v))
            return json_real(v);
    }
    return json_string(s);
}

/* 1, 0, or -1 for a text that is not a yes/no. */
static int parse_bool(const char *s) {
    static const char *const yes[] = {"true", "oui", "on", "1", "yes", NULL};
    static const char *const no[] = {"false", "non", "off", "0", "no", NULL};
    for (int i = 0; yes[i]; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return 1;
        if (strcasecmp(s, no[i]) == 0)
            return 0;
    }
    return -1;
}

static json_t *bool_cell(json_t *typed, const char *sv, int checkbox) {
    if (json_is_boolean(typed))
        return json_boolean(json_is_true(typed));
    const char *s = json_string_value(typed) ? json_string_value(typed) : sv;
    if (!s || !*s)
        return checkbox ? json_false() : json_null();
    int v = parse_bool(s);
    return v < 0 ? json_string(s) : json_boolean(v);
}

/* "facture.pdf <url>", one file a line. */
static json_t *files_cell(json_t *files) {
    sbuf_t sb = {0};
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f) {
        const char *name = jstr(f, "filename"), *url = jstr(f, "url");
        if (!name && !url)
            continue;
        if (sb.len)
            sb_str(&sb, "\n");
        if (name)
            sb_oneline(&sb, name);
        if (name && url)
            sb_str(&sb, " ");
        if (url)
            sb_str(&sb, url);
    }
    return sb_take(&sb);
}

/* The cell of a champ for a column of kind k (c: the column, for choices). */
static json_t *cell(enum kind k, json_t *champ, col_b *c) {
    const char *sv = jstr(champ, "stringValue");
    switch (k) {
    case K_DATE:
        return date_cell(jstr(champ, "date") ? jstr(champ, "date") : sv, 0);
    case K_DATETIME:
        return date_cell(jstr(champ, "datetime") ? jstr(champ, "datetime") : sv, 1);
    case K_INT:
        return int_cell(json_object_get(champ, "integerNumber"), sv);
    case K_NUMERIC:
        return numeric_cell(json_object_get(champ, "decimalNumber"), sv);
    case K_CHECKBOX:
        return bool_cell(json_object_get(champ, "checked"), sv, 1);
    case K_YESNO:
        return bool_cell(json_object_get(champ, "yesNo"), sv, 0);
    case K_CHOICE: {
        const char *v = jstr(champ, "dropDownValue");
        if (!v)
            v = jstr(champ, "value");
        if (!v)
            v = sv;
        if (!v || !*v)
            return json_null();
        if (see_choice(c, v))
            return NULL;
        return json_string(v);
    }
    case K_CHOICELIST: {
        json_t *values = json_object_get(champ, "values"), *l = json_array(), *v;
        size_t i;
        if (!l || json_array_append_new(l, json_string("L"))) {
            json_decref(l);
            return NULL;
        }
        if (json_is_array(values)) {
            json_array_foreach(values, i, v) {
                if (json_is_string(v) && json_string_length(v) &&
                    (json_array_append(l, v) || see_choice(c, json_string_value(v)))) {
                    json_decref(l);
                    return NULL;
                }
            }
        } else if (sv) {
            /* DS's text is the values joined by ", " */
            for (const char *p = sv; *p;) {
                size_t n = strstr(p, ", ") ? (size_t)(strstr(p, ", ") - p) : strlen(p);
                char *one = d2g_strndup(p, n);
                if (n && (json_array_append_new(l, json_string(one)) || see_choice(c, one))) {
                    free(one);
                    json_decref(l);
                    return NULL;
                }
                free(one);
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
    case K_FILES: {
        json_t *files = json_object_get(champ, "files");
        if (json_is_array(files))
            return files_cell(files);
        return str_or_null(sv);
    }
    default:
        return str_or_null(sv);
    }
}

/* --- champs --------------------------------------------------------------- */

/* A champ's place in the dossier, for error messages ("champs[3].rows[0].champs[1]"). */
#define PATHLEN 128

static int map_champs(builder_t *b, table_b *t, json_t *fields, json_t *champs,
                      const char *path, int annotation, int in_row);

/* The id of the child table of a repetition descriptor. */
static const char *child_table_id(builder_t *b, const char *desc_id, const char *label,
                                  int annotation) {
    const d2g_mapping_ctx_t *ctx = b->ctx;
    size_t cap = strlen(ctx->prefix) + D2G_COLID_BUFLEN + 16;
    char *id = d2g_malloc(cap), *suffix = annotation ? concat("Annotation ", label) : NULL;
    const char *res = NULL;
    if (d2g_colid_table(ctx->prefix, annotation ? suffix : label, id, cap) == 0 &&
        d2g_colmap_reserve(b->map, ctx->tables_scope, ctx->prefix) == 0)
        res = d2g_colmap_assign_id(b->map, ctx->tables_scope, desc_id, id);
    free(id);
    free(suffix);
    return res;
}

/* Declares the column of a descriptor in t; NULL col (and 0) for no column. */
static int declare(builder_t *b, table_b *t, const char *desc_id, const char *label,
                   enum kind k, json_t *options, int annotation, col_b **col) {
    char *alabel = NULL;
    *col = NULL;
    if (structural(k))
        return 0;
    if (annotation)
        label = alabel = concat("Annotation : ", label);
    const char *id = d2g_colmap_assign(b->map, t->id, desc_id, label);
    if (id)
        *col = add_column(b, t, id, label, grist_type(k), NULL,
                          (k == K_CHOICE || k == K_CHOICELIST) ? options : NULL);
    free(alabel);
    return *col ? 0 : oom(b);
}

/* The child table of a repetition descriptor, created with its fixed columns
 * and the columns of the form's sub-champs (rd may be NULL). */
static table_b *child_table(builder_t *b, const char *desc_id, const char *label,
                            const rdesc_t *rd, int annotation) {
    int created;
    const char *tid = child_table_id(b, desc_id, label, annotation);
    long ti = tid ? add_table(b, tid, "ds_row_id", "dossier", &created) : -1;
    if (ti < 0) {
        oom(b);
        return NULL;
    }
    table_b *t = b->tables[ti];
    if (!created)
        return t;
    if (add_fixed_columns(b, t, child_fixed, 3))
        return NULL;
    for (size_t i = 0; rd && i < rd->n_subs; i++) {
        const rdesc_t *s = &b->ctx->descs[rd->first_sub + i];
        col_b *c;
        if (declare(b, t, s->id, s->label, s->kind, s->options, 0, &c))
            return NULL;
    }
    return t;
}

static int map_repetition(builder_t *b, json_t *champ, const char *desc_id, const char *label,
                          const rdesc_t *rd, int annotation, const char *path) {
    json_t *rows = json_object_get(champ, "rows"), *row;
    size_t j;
    table_b *t = child_table(b, desc_id, label, rd, annotation);
    if (!t)
        return -1;
    if (!json_is_array(rows))
        return d2g_err_set(b->err, b->errlen, "dossier %" PRId64 ": %s (%s): rows is not an array",
                           b->number, path, desc_id);
    if (!t->row_ids && !(t->row_ids = json_array()))
        return oom(b);
    size_t ti = (size_t)json_integer_value(json_object_get(b->tableset, t->id));
    json_array_foreach(rows, j, row) {
        char rpath[PATHLEN], cpath[PATHLEN];
        const char *rid = jstr(row, "id");
        json_t *champs = json_object_get(row, "champs");
        /* paths are short ("annotations[N].rows[N].champs[N]"): the precisions only
         * let the compiler prove that they fit */
        snprintf(rpath, sizeof(rpath), "%.90s.rows[%zu]", path, j);
        snprintf(cpath, sizeof(cpath), "%.110s.champs", rpath);
        if (!rid || !*rid)
            return d2g_err_set(b->err, b->errlen, "dossier %" PRId64 ": %s: no id", b->number,
                               rpath);
        if (!json_is_array(champs))
            return d2g_err_set(b->err, b->errlen,
                               "dossier %" PRId64 ": %s: champs is not an array", b->number,
                               rpath);
        json_t *fields = json_pack("{s:I, s:I}", "dossier", (json_int_t)b->number, "numero_ligne",
                                   (json_int_t)(j + 1));
        if (!fields)
            return oom(b);
        for (size_t i = 0; rd && i < rd->n_subs; i++) {
            const rdesc_t *s = &b->ctx->descs[rd->first_sub + i];
            const char *id = structural(s->kind) ? NULL : d2g_colmap_lookup(b->map, t->id, s->id);
            if (id && json_object_set_new(fields, id, json_null())) {
                json_decref(fields);
                return oom(b);
            }
        }
        if (map_champs(b, t, fields, champs, cpath, 0, 1) ||
            json_array_append_new(t->row_ids, json_string(rid))) {
            json_decref(fields);
            return -1;
        }
        if (add_record(b, ti, json_pack("{s:s}", "ds_row_id", rid), fields))
            return -1;
    }
    return 0;
}

static int map_champ(builder_t *b, table_b *t, json_t *fields, json_t *champ,
                     const char *path, int annotation, int in_row) {
    const char *desc_id = jstr(champ, "champDescriptorId"), *typename = jstr(champ, "__typename");
    if (!json_is_object(champ))
        return d2g_err_set(b->err, b->errlen, "dossier %" PRId64 ": %s: not an object",
                           b->number, path);
    if (!desc_id || !*desc_id)
        return d2g_err_set(b->err, b->errlen, "dossier %" PRId64 ": %s: no champDescriptorId",
                           b->number, path);
    if (!typename)
        return d2g_err_set(b->err, b->errlen, "dossier %" PRId64 ": %s (%s): no __typename",
                           b->number, path, desc_id);
    enum kind ck = kind_of(typename, 0), k = ck;
    const rdesc_t *rd = find_desc(b->ctx, desc_id);
    /* the form's kind decides the column (a champ of an older revision may
     * have another); structure (blocks, sections) is the champ's own */
    if (rd && !structural(ck) && !structural(rd->kind))
        k = rd->kind;
    if (k == K_NONE || (k == K_REPETITION && in_row))
        return 0;
    const char *label = rd ? rd->label : jstr(champ, "label");
    if (!label)
        label = "";
    if (k == K_REPETITION)
        return map_repetition(b, champ, desc_id, label, rd && rd->kind == K_REPETITION ? rd : NULL,
                              annotation, path);
    col_b *c;
    if (declare(b, t, desc_id, label, k, rd ? rd->options : NULL, annotation, &c))
        return -1;
    json_t *v = cell(k, champ, c);
    return put(b, fields, c->id, v);
}

static int map_champs(builder_t *b, table_b *t, json_t *fields, json_t *champs,
                      const char *path, int annotation, int in_row) {
    size_t i;
    json_t *champ;
    json_array_foreach(champs, i, champ) {
        char cpath[PATHLEN];
        snprintf(cpath, sizeof(cpath), "%.100s[%zu]", path, i);
        if (map_champ(b, t, fields, champ, cpath, annotation, in_row))
            return -1;
    }
    return 0;
}

/* Full mode with a revision: every champ of the form has its column (null
 * until the dossier's champ says otherwise) and every block its row set. */
static int declare_form(builder_t *b, table_b *main, json_t *fields, size_t from, size_t n,
                        int annotation) {
    for (size_t i = from; i < from + n; i++) {
        const rdesc_t *r = &b->ctx->descs[i];
        if (r->kind == K_REPETITION) {
            table_b *t = child_table(b, r->id, r->label, r, annotation);
            if (!t || (!t->row_ids && !(t->row_ids = json_array())))
                return t ? oom(b) : -1;
            continue;
        }
        col_b *c;
        if (declare(b, main, r->id, r->label, r->kind, r->options, annotation, &c))
            return -1;
        if (c && put(b, fields, c->id, json_null()))
            return -1;
    }
    return 0;
}

/* --- the dossier's own fields --------------------------------------------- */

static int map_demandeur(builder_t *b, json_t *fields, json_t *d) {
    const char *type = jstr(d, "__typename"), *kind = NULL;
    const char *civ = NULL, *nom = NULL, *prenom = NULL, *email = NULL, *siret = NULL;
    const char *rs = NULL, *naf = NULL, *lnaf = NULL, *adresse = NULL;
    if (type && strcmp(type, "PersonnePhysique") == 0) {
        kind = "physique";
        civ = jstr(d, "civilite");
        nom = jstr(d, "nom");
        prenom = jstr(d, "prenom");
        email = jstr(d, "email");
    } else if (type && strcmp(type, "PersonneMorale") == 0) {
        json_t *e = json_object_get(d, "entreprise"), *a = json_object_get(d, "association");
        kind = "morale";
        siret = jstr(d, "siret");
        naf = jstr(d, "naf");
        lnaf = jstr(d, "libelleNaf");
        rs = jstr(e, "raisonSociale");
        if (!rs || !*rs)
            rs = jstr(a, "titre");
        if (!rs || !*rs)
            rs = jstr(e, "nomCommercial");
        adresse = jstr(json_object_get(d, "address"), "label");
        if (!adresse)
            adresse = jstr(d, "adresse");
    } else if (type && strcmp(type, "PersonneMoraleIncomplete") == 0) {
        kind = "morale_incomplete";
        siret = jstr(d, "siret");
    }
    if (put(b, fields, "demandeur_type", str_or_null(kind)) ||
        put(b, fields, "demandeur_civilite", str_or_null(civ)) ||
        put(b, fields, "demandeur_nom", str_or_null(nom)) ||
        put(b, fields, "demandeur_prenom", str_or_null(prenom)) ||
        put(b, fields, "demandeur_email", str_or_null(email)) ||
        put(b, fields, "demandeur_siret", str_or_null(siret)) ||
        put(b, fields, "demandeur_raison_sociale", str_or_null(rs)) ||
        put(b, fields, "demandeur_naf", str_or_null(naf)) ||
        put(b, fields, "demandeur_libelle_naf", str_or_null(lnaf)) ||
        put(b, fields, "demandeur_adresse", str_or_null(adresse)))
        return -1;
    return 0;
}

/* "2026-01-03 accepte par x@y : motivation", one traitement a line. */
static json_t *traitements_text(json_t *ts) {
    sbuf_t sb = {0};
    size_t i;
    json_t *t;
    json_array_foreach(ts, i, t) {
        const char *date = jstr(t, "dateTraitement"), *state = jstr(t, "state");
        const char *email = jstr(t, "emailAgentTraitant"), *motiv = jstr(t, "motivation");
        if (!state)
            state = jstr(t, "event");
        if (sb.len)
            sb_str(&sb, "\n");
        if (date)
            sb_add(&sb, date, strlen(date) < 10 ? strlen(date) : 10);
        if (state) {
            if (date)
                sb_str(&sb, " ");
            sb_str(&sb, state);
        }
        if (email && *email) {
            sb_str(&sb, " par ");
            sb_str(&sb, email);
        }
        if (motiv && *motiv) {
            sb_str(&sb, " : ");
            sb_oneline(&sb, motiv);
        }
    }
    return sb_take(&sb);
}

static json_t *instructeurs_text(json_t *list) {
    sbuf_t sb = {0};
    size_t i;
    json_t *p;
    json_array_foreach(list, i, p) {
        const char *email = jstr(p, "email");
        if (!email || !*email)
            continue;
        if (sb.len)
            sb_str(&sb, ", ");
        sb_str(&sb, email);
    }
    return sb_take(&sb);
}

static json_t *labels_cell(json_t *labels, col_b *c) {
    json_t *l = json_array(), *lab;
    size_t i;
    if (!l || json_array_append_new(l, json_string("L"))) {
        json_decref(l);
        return NULL;
    }
    json_array_foreach(labels, i, lab) {
        const char *name = jstr(lab, "name");
        if (name && *name && (json_array_append_new(l, json_string(name)) || see_choice(c, name))) {
            json_decref(l);
            return NULL;
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

static int map_own_fields(builder_t *b, table_b *main, json_t *fields, json_t *d) {
    static const char *const dates[][2] = {
        {"date_depot", "dateDepot"},
        {"date_derniere_modification", "dateDerniereModification"},
        {"date_passage_en_construction", "datePassageEnConstruction"},
        {"date_passage_en_instruction", "datePassageEnInstruction"},
        {"date_traitement", "dateTraitement"},
        {"date_expiration", "dateExpiration"},
    };
    char link[512];
    json_t *archived = json_object_get(d, "archived");
    json_t *gi = json_object_get(d, "groupeInstructeur");

    if (HAS("id") && put(b, fields, "ds_id", str_or_null(jstr(d, "id"))))
        return -1;
    if (HAS("state") && put(b, fields, "etat", str_or_null(jstr(d, "state"))))
        return -1;
    if (HAS("archived") &&
        put(b, fields, "archive", json_is_boolean(archived) ? json_boolean(json_is_true(archived))
                                                             : json_null()))
        return -1;
    for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++)
        if (HAS(dates[i][1]) && put(b, fields, dates[i][0], date_cell(jstr(d, dates[i][1]), 1)))
            return -1;
    if (HAS("usager") &&
        put(b, fields, "usager_email", str_or_null(jstr(json_object_get(d, "usager"), "email"))))
        return -1;
    if (HAS("demandeur") && map_demandeur(b, fields, json_object_get(d, "demandeur")))
        return -1;
    if (HAS("groupeInstructeur")) {
        json_t *num = json_object_get(gi, "number");
        if (put(b, fields, "groupe_instructeur", str_or_null(jstr(gi, "label"))) ||
            put(b, fields, "groupe_instructeur_numero",
                json_is_integer(num) ? json_integer(json_integer_value(num)) : json_null()))
            return -1;
    }
    if (HAS("instructeurs") &&
        put(b, fields, "instructeurs", instructeurs_text(json_object_get(d, "instructeurs"))))
        return -1;
    if (HAS("labels")) {
        json_t *i = json_object_get(main->colset, "labels");
        if (put(b, fields, "labels",
                labels_cell(json_object_get(d, "labels"), main->cols[json_integer_value(i)])))
            return -1;
    }
    if (HAS("motivation") && put(b, fields, "motivation", str_or_null(jstr(d, "motivation"))))
        return -1;
    if (HAS("traitements") &&
        put(b, fields, "traitements", traitements_text(json_object_get(d, "traitements"))))
        return -1;
    snprintf(link, sizeof(link), "%s/procedures/%" PRId64 "/dossiers/%" PRId64,
             b->ctx->base_url, b->ctx->procedure, b->number);
    if (put(b, fields, "lien_ds", json_string(link)))
        return -1;
    if (!b->partial && (put(b, fields, "supprime", json_false()) ||
                        put(b, fields, "date_suppression", json_null()) ||
                        put(b, fields, "motif_suppression", json_null())))
        return -1;
    return 0;
}

/* --- results -------------------------------------------------------------- */

static json_t *column_fields(const col_b *c) {
    json_t *f = json_pack("{s:s, s:s, s:b}", "label", c->label, "type", c->type,
                          "untieColIdFromLabel", 1);
    if (!f)
        return NULL;
    if (c->widget) {
        if (json_object_set_new(f, "widgetOptions", json_string(c->widget))) {
            json_decref(f);
            return NULL;
        }
    } else if (c->choices) {
        json_t *w = json_pack("{s:O}", "choices", c->choices);
        char *s = w ? json_dumps(w, JSON_COMPACT) : NULL;
        json_decref(w);
        if (!s || json_object_set_new(f, "widgetOptions", json_string(s))) {
            free(s);
            json_decref(f);
            return NULL;
        }
        free(s);
    }
    return f;
}

void d2g_mapped_clear(d2g_mapped_t *out) {
    if (!out)
        return;
    for (size_t i = 0; i < out->n_tables; i++) {
        d2g_table_t *t = &out->tables[i];
        for (size_t j = 0; j < t->n_columns; j++) {
            free(t->columns[j].id);
            json_decref(t->columns[j].fields);
        }
        free(t->columns);
        free(t->id);
    }
    free(out->tables);
    for (size_t i = 0; i < out->n_records; i++) {
        json_decref(out->records[i].require);
        json_decref(out->records[i].fields);
    }
    free(out->records);
    for (size_t i = 0; i < out->n_rowsets; i++)
        json_decref(out->rowsets[i].row_ids);
    free(out->rowsets);
    for (size_t i = 0; i < out->n_removals; i++)
        free(out->removals[i].table);
    free(out->removals);
    memset(out, 0, sizeof(*out));
}

/* Moves the builder's results into out (which is empty). */
static int finish(builder_t *b, d2g_mapped_t *out) {
    size_t n_rowsets = 0;
    out->number = b->number;
    for (size_t i = 0; i < b->n_tables; i++)
        n_rowsets += b->tables[i]->row_ids != NULL;
    if (b->n_tables)
        out->tables = d2g_calloc(b->n_tables, sizeof(*out->tables));
    if (b->n_recs)
        out->records = d2g_calloc(b->n_recs, sizeof(*out->records));
    if (n_rowsets)
        out->rowsets = d2g_calloc(n_rowsets, sizeof(*out->rowsets));
    for (size_t i = 0; i < b->n_tables; i++) {
        table_b *t = b->tables[i];
        d2g_table_t *o = &out->tables[out->n_tables++];
        o->key = t->key;
        o->dossier_col = t->dossier_col;
        o->id = t->id;
        t->id = NULL;
        if (t->n)
            o->columns = d2g_calloc(t->n, sizeof(*o->columns));
        for (size_t j = 0; j < t->n; j++) {
            d2g_column_t *c = &o->columns[o->n_columns];
            if (!(c->fields = column_fields(t->cols[j])))
                goto fail;
            c->id = t->cols[j]->id;
            t->cols[j]->id = NULL;
            c->label = json_string_value(json_object_get(c->fields, "label"));
            c->type = json_string_value(json_object_get(c->fields, "type"));
            c->widget_options = json_string_value(json_object_get(c->fields, "widgetOptions"));
            o->n_columns++;
        }
        if (t->row_ids) {
            d2g_rowset_t *r = &out->rowsets[out->n_rowsets++];
            r->table_index = i;
            r->table = o->id;
            r->dossier = b->number;
            r->row_ids = t->row_ids;
            t->row_ids = NULL;
        }
    }
    for (size_t i = 0; i < b->n_recs; i++) {
        d2g_record_t *r = &out->records[out->n_records++];
        r->table_index = b->recs[i].table;
        r->table = out->tables[r->table_index].id;
        r->require = b->recs[i].require;
        r->fields = b->recs[i].fields;
    }
    b->n_recs = 0;
    out->removals = b->rems;
    out->n_removals = b->n_rems;
    b->rems = NULL;
    b->n_rems = 0;
    return 0;
fail:
    d2g_mapped_clear(out);
    return oom(b);
}

static int builder_init(builder_t *b, const d2g_mapping_ctx_t *ctx, d2g_colmap_t *map,
                        d2g_mapped_t *out, char *err, size_t errlen) {
    memset(b, 0, sizeof(*b));
    memset(out, 0, sizeof(*out));
    b->ctx = ctx;
    b->map = map;
    b->err = err;
    b->errlen = errlen;
    if (!ctx || !map)
        return d2g_err_set(err, errlen, "mapping: no context or column map");
    if (!(b->tableset = json_object()))
        return oom(b);
    return 0;
}

/* The dossiers table with its fixed columns; its index is 0. */
static table_b *main_table(builder_t *b) {
    int created;
    if (add_table(b, b->ctx->prefix, "numero", NULL, &created) != 0 ||
        d2g_colmap_reserve(b->map, b->ctx->tables_scope, b->ctx->prefix)) {
        oom(b);
        return NULL;
    }
    if (add_fixed_columns(b, b->tables[0], fixed, N_FIXED))
        return NULL;
    return b->tables[0];
}

static int64_t dossier_number(json_t *d) {
    json_t *n = json_object_get(d, "number");
    return json_is_integer(n) && json_integer_value(n) > 0 ? json_integer_value(n) : -1;
}

int d2g_mapping_map_dossier(const d2g_mapping_ctx_t *ctx, json_t *dossier, int flags,
                            d2g_colmap_t *map, d2g_mapped_t *out, char *err, size_t errlen) {
    builder_t b;
    table_b *main;
    json_t *fields = NULL;
    int rc = -1;

    if (builder_init(&b, ctx, map, out, err, errlen))
        goto done;
    b.partial = (flags & D2G_MAPPING_PARTIAL) != 0;
    if (!json_is_object(dossier)) {
        d2g_err_set(err, errlen, "dossier: not a JSON object");
        goto done;
    }
    if ((b.number = dossier_number(dossier)) < 0) {
        d2g_err_set(err, errlen, "dossier: no positive integer \"number\"");
        goto done;
    }
    json_t *champs = json_object_get(dossier, "champs");
    json_t *annots = json_object_get(dossier, "annotations");
    if (b.partial ? (champs && !json_is_array(champs)) : !json_is_array(champs)) {
        d2g_err_set(err, errlen, "dossier %" PRId64 ": \"champs\" is %s", b.number,
                    champs ? "not an array" : "missing");
        goto done;
    }
    if (annots && !json_is_null(annots) && !json_is_array(annots)) {
        d2g_err_set(err, errlen, "dossier %" PRId64 ": \"annotations\" is not an array", b.number);
        goto done;
    }
    if (!(main = main_table(&b)))
        goto done;
    if (!(fields = json_pack("{s:I}", "numero", (json_int_t)b.number))) {
        oom(&b);
        goto done;
    }
    if (map_own_fields(&b, main, fields, dossier))
        goto done;
    if (!b.partial && ctx->descs) {
        if (declare_form(&b, main, fields, 0, ctx->n_champs, 0))
            goto done;
        if (json_is_array(annots) &&
            declare_form(&b, main, fields, ctx->n_champs, ctx->n_annots, 1))
            goto done;
    }
    if (champs && map_champs(&b, main, fields, champs, "champs", 0, 0))
        goto done;
    if (json_is_array(annots) && map_champs(&b, main, fields, annots, "annotations", 1, 0))
        goto done;
    /* the dossier's own record first */
    if (add_record(&b, 0, json_pack("{s:I}", "numero", (json_int_t)b.number), fields)) {
        fields = NULL;
        goto done;
    }
    fields = NULL;
    if (b.n_recs > 1) {
        rec_b last = b.recs[b.n_recs - 1];
        memmove(b.recs + 1, b.recs, (b.n_recs - 1) * sizeof(*b.recs));
        b.recs[0] = last;
    }
    rc = finish(&b, out);
done:
    json_decref(fields);
    builder_free(&b);
    return rc;
}

static int remove_child(const char *desc_id, const char *id, void *arg) {
    (void)desc_id;
    return add_removal(arg, id, "dossier");
}

int d2g_mapping_map_deleted(const d2g_mapping_ctx_t *ctx, json_t *deleted,
                            d2g_deleted_mode_t mode, d2g_colmap_t *map, d2g_mapped_t *out,
                            char *err, size_t errlen) {
    builder_t b;
    int rc = -1;

    if (builder_init(&b, ctx, map, out, err, errlen))
        goto done;
    if (!json_is_object(deleted)) {
        d2g_err_set(err, errlen, "deleted dossier: not a JSON object");
        goto done;
    }
    if ((b.number = dossier_number(deleted)) < 0) {
        d2g_err_set(err, errlen, "deleted dossier: no positive integer \"number\"");
        goto done;
    }
    if (mode == D2G_DELETED_REMOVE) {
        /* the form's blocks too, even if no dossier was mapped yet */
        for (size_t i = 0; i < ctx->n_champs + ctx->n_annots; i++) {
            const rdesc_t *r = &ctx->descs[i];
            if (r->kind == K_REPETITION &&
                !child_table_id(&b, r->id, r->label, i >= ctx->n_champs)) {
                oom(&b);
                goto done;
            }
        }
        if (add_removal(&b, ctx->prefix, "numero") ||
            d2g_colmap_foreach(map, ctx->tables_scope, remove_child, &b))
            goto done;
    } else {
        if (!main_table(&b))
            goto done;
        json_t *fields = json_pack("{s:b, s:o, s:o, s:o, s:o}", "supprime", 1, "date_suppression",
                                   date_cell(jstr(deleted, "dateSupression"), 1),
                                   "motif_suppression", str_or_null(jstr(deleted, "reason")),
                                   "etat", str_or_null(jstr(deleted, "state")), "ds_id",
                                   str_or_null(jstr(deleted, "id")));
        if (!fields) {
            oom(&b);
            goto done;
        }
        if (add_record(&b, 0, json_pack("{s:I}", "numero", (json_int_t)b.number), fields))
            goto done;
    }
    rc = finish(&b, out);
done:
    builder_free(&b);
    return rc;
}
