/*
 * colid.c - Grist identifiers from DS labels, and the descriptor -> id map,
 * see colid.h.
 *
 * The map is a jansson object (a hash table) per table:
 *   "c": {descriptor id: column id}        the assignments
 *   "u": {lower-cased id: descriptor | ""} every id in use ("" = reserved)
 *   "r": {id: true}                        the reserved ids, as given
 *   "n": {lower-cased wanted id: N}        the last "_N" handed out for it
 * so that assign and lookup are two or three hash lookups.
 */
#include "colid.h"
#include "ds2grist/alloc.h"
#include "ds2grist/err.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --- UTF-8 and accent folding ------------------------------------------ */

/* U+00C0..U+00FF, lower-case ASCII; "" = a separator (× ÷). */
static const char *const latin1[64] = {
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
    "d", "n", "o", "o", "o", "o", "o", "",  "o", "u", "u", "u", "u", "y", "th", "ss",
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
    "d", "n", "o", "o", "o", "o", "o", "",  "o", "u", "u", "u", "u", "y", "th", "y",
};

/* Latin Extended-A (U+0100..U+017F) and a few others, by range. */
static const struct {
    unsigned lo, hi;
    const char *ascii;
} ranges[] = {
    {0x00AA, 0x00AA, "a"},  {0x00BA, 0x00BA, "o"},  {0x0100, 0x0105, "a"},
    {0x0106, 0x010D, "c"},  {0x010E, 0x0111, "d"},  {0x0112, 0x011B, "e"},
    {0x011C, 0x0123, "g"},  {0x0124, 0x0127, "h"},  {0x0128, 0x0131, "i"},
    {0x0132, 0x0133, "ij"}, {0x0134, 0x0135, "j"},  {0x0136, 0x0138, "k"},
    {0x0139, 0x0142, "l"},  {0x0143, 0x014B, "n"},  {0x014C, 0x0151, "o"},
    {0x0152, 0x0153, "oe"}, {0x0154, 0x0159, "r"},  {0x015A, 0x0161, "s"},
    {0x0162, 0x0167, "t"},  {0x0168, 0x0173, "u"},  {0x0174, 0x0175, "w"},
    {0x0176, 0x0178, "y"},  {0x0179, 0x017E, "z"},  {0x017F, 0x017F, "s"},
    {0x0192, 0x0192, "f"},  {0x0218, 0x0219, "s"},  {0x021A, 0x021B, "t"},
    {0xFB00, 0xFB00, "ff"}, {0xFB01, 0xFB01, "fi"}, {0xFB02, 0xFB02, "fl"},
    {0xFB03, 0xFB03, "ffi"}, {0xFB04, 0xFB04, "ffl"}, {0xFB05, 0xFB06, "st"},
};

/* Decodes one UTF-8 sequence at s; returns its length (>= 1), the code point
 * in *cp, or 0xFFFD for an invalid byte (length 1). */
static size_t utf8_next(const unsigned char *s, unsigned *cp) {
    unsigned c = s[0], n, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF)
        n = 1, min = 0x80, c &= 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 2, min = 0x800, c &= 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 3, min = 0x10000, c &= 0x07;
    else {
        *cp = 0xFFFD;
        return 1;
    }
    for (unsigned i = 1; i <= n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
        *cp = 0xFFFD;
        return 1;
    }
    *cp = c;
    return n + 1;
}

/* The lower-case ASCII letters/digits a code point folds to; "" for a
 * separator; NULL for a combining mark (ignored: "e\u0301" is "e"). */
static const char *fold(unsigned cp, char one[2]) {
    if (cp < 0x80) {
        if (isalnum((int)cp)) {
            one[0] = (char)tolower((int)cp);
            one[1] = 0;
            return one;
        }
        return "";
    }
    if (cp >= 0x0300 && cp <= 0x036F)
        return NULL;
    if (cp >= 0xC0 && cp <= 0xFF)
        return latin1[cp - 0xC0];
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
        if (cp >= ranges[i].lo && cp <= ranges[i].hi)
            return ranges[i].ascii;
    return "";
}

/*
 * Folds label into words of [a-z0-9] joined by "_" (capitalised words if
 * title), at most max characters, cut on a word boundary when it can (a cut
 * in the first half of max is a hard cut instead). Returns the length.
 */
static size_t fold_words(const char *label, int title, char *out, size_t max) {
    const unsigned char *s = (const unsigned char *)(label ? label : "");
    char buf[D2G_COLID_MAXLEN * 2 + 8], one[2];
    size_t len = 0, cap = max + 1; /* one more than max tells "cut" from "fits" */
    int sep = 0;

    if (cap > sizeof(buf) - 4)
        cap = sizeof(buf) - 4;
    while (*s && len <= cap) {
        unsigned cp;
        s += utf8_next(s, &cp);
        const char *f = fold(cp, one);
        if (!f)
            continue;
        if (!*f) {
            sep = len > 0;
            continue;
        }
        if (sep) {
            buf[len++] = '_';
            sep = 0;
        }
        int word_start = len == 0 || buf[len - 1] == '_';
        for (; *f && len < sizeof(buf) - 1; f++, word_start = 0)
            buf[len++] = (title && word_start) ? (char)toupper((unsigned char)*f) : *f;
    }
    if (len > max) {
        size_t cut = max;
        if (buf[max] != '_') {
            while (cut > 0 && buf[cut] != '_')
                cut--;
            if (cut < max / 2)
                cut = max;
        }
        len = cut;
        while (len > 0 && buf[len - 1] == '_')
            len--;
    }
    memcpy(out, buf, len);
    out[len] = 0;
    return len;
}

/* --- column and table ids ---------------------------------------------- */

static const char *const reserved_ids[] = {
    /* Grist */
    "id", "manualsort",
    /* Python 3 keywords, their capitalised constants, and Python 2's extra ones */
    "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del",
    "elif", "else", "except", "false", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "none", "nonlocal", "not", "or", "pass", "raise", "return", "true",
    "try", "while", "with", "yield", "exec", "print", NULL};

int d2g_colid_is_reserved(const char *id) {
    if (!id)
        return 0;
    if (strncasecmp(id, "gristHelper_", 12) == 0)
        return 1;
    for (const char *const *r = reserved_ids; *r; r++)
        if (strcasecmp(id, *r) == 0)
            return 1;
    return 0;
}

int d2g_colid_from_label(const char *label, char *out, size_t outlen) {
    char words[D2G_COLID_MAXLEN + 1];
    if (!out || outlen < D2G_COLID_BUFLEN) {
        if (out && outlen)
            out[0] = 0;
        return -1;
    }
    size_t n = fold_words(label, 0, words, D2G_COLID_MAXLEN);
    if (n == 0)
        snprintf(out, outlen, "champ");
    else if (isdigit((unsigned char)words[0]) || d2g_colid_is_reserved(words))
        snprintf(out, outlen, "c_%s", words);
    else
        snprintf(out, outlen, "%s", words);
    return 0;
}

int d2g_colid_table(const char *prefix, const char *suffix, char *out, size_t outlen) {
    char words[D2G_COLID_MAXLEN + 1];
    size_t plen = prefix ? strlen(prefix) : 0, n = fold_words(suffix, 1, words, D2G_COLID_MAXLEN);
    size_t need = plen + 2 /* "T" */ + 1 + n + 3 /* "T_" */ + 1;

    if (!out || outlen < need) {
        if (out && outlen)
            out[0] = 0;
        return -1;
    }
    size_t len = 0;
    if (plen) {
        if (!isalpha((unsigned char)prefix[0]))
            out[len++] = 'T';
        for (size_t i = 0; i < plen; i++) {
            unsigned char c = (unsigned char)prefix[i];
            out[len++] = (c < 0x80 && (isalnum(c) || c == '_')) ? (char)c : '_';
        }
        out[0] = (char)toupper((unsigned char)out[0]);
        if (n)
            out[len++] = '_';
    } else if (n && !isalpha((unsigned char)words[0])) {
        out[len++] = 'T';
        out[len++] = '_';
    } else if (!n) {
        memcpy(out + len, "Table", 5);
        len += 5;
    }
    memcpy(out + len, words, n);
    len += n;
    out[len] = 0;
    return 0;
}

/* --- the map ------------------------------------------------------------ */

struct d2g_colmap {
    json_t *tables; /* {table: {"c": {...}, "u": {...}, "r": {...}}} */
    uint64_t generation;
};

d2g_colmap_t *d2g_colmap_new(void) {
    d2g_colmap_t *map = d2g_calloc(1, sizeof(*map));
    if (!(map->tables = json_object())) {
        free(map);
        return NULL;
    }
    return map;
}

void d2g_colmap_free(d2g_colmap_t *map) {
    if (!map)
        return;
    json_decref(map->tables);
    free(map);
}

uint64_t d2g_colmap_generation(const d2g_colmap_t *map) { return map->generation; }

static json_t *scope_get(const d2g_colmap_t *map, const char *table, int create) {
    json_t *s = json_object_get(map->tables, table);
    if (s || !create)
        return s;
    s = json_pack("{s:o, s:o, s:o, s:o}", "c", json_object(), "u", json_object(), "r", json_object(),
                  "n", json_object());
    if (!s || json_object_set_new(map->tables, table, s))
        return NULL;
    return s;
}

/* A lower-cased copy of id in buf (or malloc'ed if longer; *heap says so). */
static char *lower_key(const char *id, char *buf, size_t buflen, char **heap) {
    size_t n = strlen(id);
    char *k = buf;
    *heap = NULL;
    if (n >= buflen)
        k = *heap = d2g_malloc(n + 1);
    for (size_t i = 0; i <= n; i++)
        k[i] = (char)tolower((unsigned char)id[i]);
    return k;
}

static int id_used(json_t *scope, const char *id) {
    char buf[128], *heap;
    char *k = lower_key(id, buf, sizeof(buf), &heap);
    int used = json_object_get(json_object_get(scope, "u"), k) != NULL;
    free(heap);
    return used;
}

static int mark_used(json_t *scope, const char *id, const char *descriptor) {
    char buf[128], *heap;
    char *k = lower_key(id, buf, sizeof(buf), &heap);
    int rc = json_object_set_new(json_object_get(scope, "u"), k, json_string(descriptor));
    free(heap);
    return rc ? -1 : 0;
}

int d2g_colmap_reserve(d2g_colmap_t *map, const char *table, const char *id) {
    if (!map || !table || !id || !*id)
        return -1;
    json_t *s = scope_get(map, table, 1);
    if (!s)
        return -1;
    char buf[128], *heap;
    char *k = lower_key(id, buf, sizeof(buf), &heap);
    json_t *owner = json_object_get(json_object_get(s, "u"), k);
    free(heap);
    if (owner)
        return json_string_length(owner) == 0 ? 0 : -1;
    if (mark_used(s, id, "") || json_object_set_new(json_object_get(s, "r"), id, json_true()))
        return -1;
    return 0;
}

const char *d2g_colmap_lookup(const d2g_colmap_t *map, const char *table,
                              const char *descriptor_id) {
    if (!map || !table || !descriptor_id)
        return NULL;
    json_t *s = scope_get(map, table, 0);
    return json_string_value(json_object_get(json_object_get(s, "c"), descriptor_id));
}

/* Records descriptor -> the first free one of wanted, wanted_2, wanted_3... */
static const char *record_unique(d2g_colmap_t *map, json_t *s, const char *descriptor,
                                 const char *wanted) {
    size_t wlen = strlen(wanted), cap = wlen + 24;
    char stackbuf[D2G_COLID_BUFLEN + 24];
    char *cand = cap <= sizeof(stackbuf) ? stackbuf : d2g_malloc(cap);
    const char *res = NULL;
    /* "n" remembers the last suffix tried for a wanted id, so that many
     * champs with one label cost one probe each, not one per sibling */
    char kbuf[128], *heap;
    char *key = lower_key(wanted, kbuf, sizeof(kbuf), &heap);
    json_t *last = json_object_get(json_object_get(s, "n"), key);
    unsigned long n = last ? (unsigned long)json_integer_value(last) + 1 : 2;
    snprintf(cand, cap, "%s", wanted);
    if (id_used(s, cand))
        for (snprintf(cand, cap, "%s_%lu", wanted, n); id_used(s, cand); n++)
            snprintf(cand, cap, "%s_%lu", wanted, n + 1);
    if (strcmp(cand, wanted) != 0)
        json_object_set_new(json_object_get(s, "n"), key, json_integer((json_int_t)n));
    free(heap);
    json_t *c = json_object_get(s, "c");
    if (json_object_set_new(c, descriptor, json_string(cand)) == 0 &&
        mark_used(s, cand, descriptor) == 0) {
        map->generation++;
        res = json_string_value(json_object_get(c, descriptor));
    }
    if (cand != stackbuf)
        free(cand);
    return res;
}

const char *d2g_colmap_assign_id(d2g_colmap_t *map, const char *table,
                                 const char *descriptor_id, const char *wanted) {
    if (!map || !table || !descriptor_id || !wanted || !*wanted)
        return NULL;
    json_t *s = scope_get(map, table, 1);
    if (!s)
        return NULL;
    const char *known = json_string_value(json_object_get(json_object_get(s, "c"), descriptor_id));
    if (known)
        return known;
    return record_unique(map, s, descriptor_id, wanted);
}

const char *d2g_colmap_assign(d2g_colmap_t *map, const char *table, const char *descriptor_id,
                              const char *label) {
    if (!map || !table || !descriptor_id)
        return NULL;
    const char *known = d2g_colmap_lookup(map, table, descriptor_id);
    if (known)
        return known;
    char id[D2G_COLID_BUFLEN];
    d2g_colid_from_label(label, id, sizeof(id));
    return d2g_colmap_assign_id(map, table, descriptor_id, id);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of obj, sorted; *n their count. Caller frees the array (not the
 * strings, which belong to obj). NULL with *n = 0 for an empty object. */
static const char **sorted_keys(json_t *obj, size_t *n) {
    const char *key;
    json_t *v;
    size_t i = 0;
    *n = json_object_size(obj);
    if (*n == 0)
        return NULL;
    const char **keys = d2g_malloc(*n * sizeof(*keys));
    json_object_foreach(obj, key, v) keys[i++] = key;
    qsort(keys, *n, sizeof(*keys), cmp_str);
    return keys;
}

int d2g_colmap_foreach(const d2g_colmap_t *map, const char *table,
                       int (*fn)(const char *descriptor_id, const char *id, void *arg),
                       void *arg) {
    json_t *c = json_object_get(scope_get(map, table, 0), "c");
    size_t n;
    int rc = 0;
    const char **keys = sorted_keys(c, &n);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = fn(keys[i], json_string_value(json_object_get(c, keys[i])), arg);
    free(keys);
    return rc;
}

json_t *d2g_colmap_to_json(const d2g_colmap_t *map) {
    json_t *tables = json_object(), *root = json_pack("{s:i, s:o}", "v", 1, "tables", tables);
    const char *table;
    json_t *s;
    if (!root)
        return NULL;
    json_object_foreach(map->tables, table, s) {
        size_t n;
        json_t *reserved = json_array();
        json_t *t = json_pack("{s:o, s:o}", "columns", json_deep_copy(json_object_get(s, "c")),
                              "reserved", reserved);
        const char **keys = sorted_keys(json_object_get(s, "r"), &n);
        if (!t || json_object_set_new(tables, table, t)) {
            free(keys);
            json_decref(root);
            return NULL;
        }
        for (size_t i = 0; i < n; i++)
            json_array_append_new(reserved, json_string(keys[i]));
        free(keys);
    }
    return root;
}

/* An identifier as Grist takes it: [A-Za-z_][A-Za-z0-9_]*, not too long. */
static int valid_ident(const char *s) {
    if (!s || !(isalpha((unsigned char)s[0]) || s[0] == '_') || strlen(s) > 255)
        return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_') || (unsigned char)*s >= 0x80)
            return 0;
    return 1;
}

static int validate_json(json_t *json, char *err, size_t errlen) {
    json_t *tables = json_object_get(json, "tables"), *t, *v;
    const char *table, *key;
    if (!json_is_object(json))
        return d2g_err_set(err, errlen, "column map: not a JSON object");
    if (!json_is_integer(json_object_get(json, "v")) ||
        json_integer_value(json_object_get(json, "v")) != 1)
        return d2g_err_set(err, errlen, "column map: unsupported version (want v=1)");
    if (!json_is_object(tables))
        return d2g_err_set(err, errlen, "column map: \"tables\" must be an object");
    json_object_foreach(tables, table, t) {
        json_t *cols = json_object_get(t, "columns"), *res = json_object_get(t, "reserved");
        size_t i;
        if (!json_is_object(t))
            return d2g_err_set(err, errlen, "column map: tables.%s: must be an object", table);
        if (cols && !json_is_object(cols))
            return d2g_err_set(err, errlen, "column map: tables.%s.columns: must be an object", table);
        if (res && !json_is_array(res))
            return d2g_err_set(err, errlen, "column map: tables.%s.reserved: must be an array", table);
        json_object_foreach(cols, key, v) {
            if (!valid_ident(json_string_value(v)))
                return d2g_err_set(err, errlen,
                                   "column map: tables.%s.columns.%s: must be an identifier",
                                   table, key);
        }
        json_array_foreach(res, i, v) {
            if (!valid_ident(json_string_value(v)))
                return d2g_err_set(err, errlen,
                                   "column map: tables.%s.reserved[%zu]: must be an identifier",
                                   table, i);
        }
    }
    return 0;
}

int d2g_colmap_merge_json(d2g_colmap_t *map, json_t *json, size_t *moved, char *err,
                          size_t errlen) {
    size_t nt, nmoved = 0;
    int rc = 0;
    if (moved)
        *moved = 0;
    if (validate_json(json, err, errlen))
        return -1;
    json_t *tables = json_object_get(json, "tables");
    const char **tkeys = sorted_keys(tables, &nt);
    for (size_t i = 0; i < nt && rc == 0; i++) {
        json_t *t = json_object_get(tables, tkeys[i]), *v;
        json_t *cols = json_object_get(t, "columns"), *s = scope_get(map, tkeys[i], 1);
        size_t j, nc;
        if (!s) {
            rc = -1;
            break;
        }
        /* a reserved id already assigned here stays assigned: ours wins */
        json_array_foreach(json_object_get(t, "reserved"), j, v) {
            const char *id = json_string_value(v);
            if (!id_used(s, id) && d2g_colmap_reserve(map, tkeys[i], id))
                rc = -1;
        }
        const char **ckeys = sorted_keys(cols, &nc);
        for (j = 0; j < nc && rc == 0; j++) {
            const char *want = json_string_value(json_object_get(cols, ckeys[j]));
            const char *got = d2g_colmap_assign_id(map, tkeys[i], ckeys[j], want);
            if (!got)
                rc = -1;
            else if (strcmp(got, want) != 0)
                nmoved++;
        }
        free(ckeys);
    }
    free(tkeys);
    if (moved)
        *moved = nmoved;
    if (rc)
        return d2g_err_set(err, errlen, "out of memory");
    return 0;
}
