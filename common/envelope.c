/* envelope.c - the producer-to-worker message, see envelope.h. */
#include "ds2grist/envelope.h"
#include "ds2grist/clock.h"
#include "ds2grist/err.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char *kind_names[] = {"upsert", "delete"};

int d2g_envelope_key(int64_t procedure, int64_t number, char *buf, size_t buflen) {
    return snprintf(buf, buflen, "%" PRId64 ":%" PRId64, procedure, number);
}

static const char *date_field(d2g_envelope_kind_t kind) {
    return kind == D2G_ENVELOPE_UPSERT ? "dateDerniereModification" : "dateSupression";
}

char *d2g_envelope_encode(d2g_envelope_kind_t kind, int flags, int64_t procedure,
                          json_t *dossier, int64_t fetched_at_ms, size_t *len, char *err,
                          size_t errlen) {
    char fetched[D2G_TIME_BUFLEN];
    json_t *num = json_object_get(dossier, "number");
    json_t *date = json_object_get(dossier, date_field(kind));

    if (!json_is_object(dossier) || !json_is_integer(num) || json_integer_value(num) <= 0) {
        d2g_err_set(err, errlen, "dossier has no positive integer \"number\"");
        return NULL;
    }
    if (!json_is_string(date)) {
        d2g_err_set(err, errlen, "dossier %" PRId64 " has no \"%s\"", (int64_t)json_integer_value(num),
                    date_field(kind));
        return NULL;
    }
    d2g_clock_format_ms(fetched_at_ms, fetched);
    json_t *o = json_pack("{s:i, s:s, s:I, s:I, s:O, s:s, s:O}", "v", D2G_ENVELOPE_VERSION,
                          "kind", kind_names[kind], "procedure", (json_int_t)procedure,
                          "number", json_integer_value(num), "modified", date,
                          "fetched_at", fetched, "dossier", dossier);
    if (!o) {
        d2g_err_set(err, errlen, "out of memory");
        return NULL;
    }
    if (flags & D2G_ENVELOPE_PARTIAL)
        json_object_set_new(o, "partial", json_true());
    if (flags & D2G_ENVELOPE_FULL)
        json_object_set_new(o, "full", json_true());
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!s) {
        d2g_err_set(err, errlen, "cannot serialise dossier (invalid UTF-8?)");
        return NULL;
    }
    *len = strlen(s);
    return s;
}

int d2g_envelope_decode(const char *buf, size_t len, d2g_envelope_t *env, char *err,
                        size_t errlen) {
    json_error_t jerr;
    memset(env, 0, sizeof(*env));
    /* Duplicate keys are refused: a message with two "procedure" fields must
     * not be read as whichever comes last. */
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (json_error_code(&jerr) == json_error_duplicate_key)
            return d2g_err_set(err, errlen, "duplicate key in the message: %s (position %d)",
                               jerr.text, jerr.position);
        if (json_error_code(&jerr) == json_error_numeric_overflow)
            return d2g_err_set(err, errlen, "a number does not fit in 64 bits: %s (position %d)",
                               jerr.text, jerr.position);
        return d2g_err_set(err, errlen, "message is not JSON: %s (position %d)", jerr.text,
                           jerr.position);
    }
    json_t *v = json_object_get(root, "v"), *kind = json_object_get(root, "kind");
    json_t *proc = json_object_get(root, "procedure"), *num = json_object_get(root, "number");
    json_t *mod = json_object_get(root, "modified"), *fetched = json_object_get(root, "fetched_at");
    json_t *dossier = json_object_get(root, "dossier");
    const char *k = json_string_value(kind);
    int rc = 0;

    if (!json_is_integer(v) || json_integer_value(v) != D2G_ENVELOPE_VERSION)
        rc = d2g_err_set(err, errlen, "unsupported envelope version (want v=%d)", D2G_ENVELOPE_VERSION);
    else if (!k || (strcmp(k, "upsert") && strcmp(k, "delete")))
        rc = d2g_err_set(err, errlen, "\"kind\" must be \"upsert\" or \"delete\"");
    else if (!json_is_integer(proc) || json_integer_value(proc) <= 0)
        rc = d2g_err_set(err, errlen, "\"procedure\" must be a positive integer");
    else if (!json_is_integer(num) || json_integer_value(num) <= 0)
        rc = d2g_err_set(err, errlen, "\"number\" must be a positive integer");
    else if (!json_is_string(mod) || !json_is_string(fetched))
        rc = d2g_err_set(err, errlen, "\"modified\" and \"fetched_at\" must be strings");
    else if (!json_is_object(dossier))
        rc = d2g_err_set(err, errlen, "\"dossier\" must be an object");
    else if (!json_equal(json_object_get(dossier, "number"), num))
        rc = d2g_err_set(err, errlen, "\"dossier.number\" differs from \"number\"");
    if (rc) {
        json_decref(root);
        return rc;
    }
    env->kind = strcmp(k, "upsert") == 0 ? D2G_ENVELOPE_UPSERT : D2G_ENVELOPE_DELETE;
    env->partial = json_is_true(json_object_get(root, "partial"));
    env->full = json_is_true(json_object_get(root, "full"));
    env->procedure = json_integer_value(proc);
    env->number = json_integer_value(num);
    env->modified = json_string_value(mod);
    env->fetched_at = json_string_value(fetched);
    env->dossier = dossier;
    env->root = root;
    return 0;
}

void d2g_envelope_clear(d2g_envelope_t *env) {
    json_decref(env->root);
    memset(env, 0, sizeof(*env));
}

int d2g_envelope_older(const d2g_envelope_t *incoming, const d2g_envelope_t *queued) {
    double a, b;
    int is_int;
    return incoming->kind == D2G_ENVELOPE_UPSERT && queued->kind == D2G_ENVELOPE_UPSERT &&
           d2g_clock_parse_iso(incoming->modified, &a, &is_int) == 0 &&
           d2g_clock_parse_iso(queued->modified, &b, &is_int) == 0 && a < b;
}
