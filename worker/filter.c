/* filter.c - per-procedure dossier filters, see filter.h. */
#include "filter.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>

__attribute__((format(printf, 3, 4))) static void say(char *why, size_t whylen, const char *fmt,
                                                      ...) {
    if (!why || !whylen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

static int has_group(const d2g_proc_filter_t *f, int64_t n) {
    size_t lo = 0, hi = f->n_groups;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->groups[mid] == n)
            return 1;
        if (f->groups[mid] < n)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* "YYYY-MM-DD" at the start of s, copied into day; 0 if s does not start with one. */
static int day_of(const char *s, char day[11]) {
    if (!s || strlen(s) < 10 || s[4] != '-' || s[7] != '-')
        return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return 0;
    memcpy(day, s, 10);
    day[10] = '\0';
    return 1;
}

d2g_filter_result_t d2g_filter_check(const d2g_proc_filter_t *f, json_t *dossier, char *why,
                                     size_t whylen) {
    if (why && whylen)
        why[0] = '\0';
    if (!f || d2g_proc_filter_empty(f))
        return D2G_FILTER_IN;
    if (f->states) {
        json_t *st = json_object_get(dossier, "state");
        if (!st) {
            say(why, whylen, "no state in the dossier (filter.states)");
            return D2G_FILTER_UNKNOWN;
        }
        if (!(d2g_config_state_bit(json_string_value(st)) & f->states)) {
            say(why, whylen, "state %s not in filter.states",
                json_string_value(st) ? json_string_value(st) : "(none)");
            return D2G_FILTER_OUT;
        }
    }
    if (f->n_groups) {
        json_t *gi = json_object_get(dossier, "groupeInstructeur");
        if (!gi) {
            say(why, whylen, "no groupeInstructeur in the dossier (filter.instruction_groups)");
            return D2G_FILTER_UNKNOWN;
        }
        json_t *num = json_object_get(gi, "number");
        if (!json_is_integer(num) || !has_group(f, json_integer_value(num))) {
            char n[24] = "(none)";
            if (json_is_integer(num))
                snprintf(n, sizeof(n), "%" JSON_INTEGER_FORMAT, json_integer_value(num));
            say(why, whylen, "groupe instructeur %s not in filter.instruction_groups", n);
            return D2G_FILTER_OUT;
        }
    }
    if (f->deposited_from[0] || f->deposited_to[0]) {
        json_t *dd = json_object_get(dossier, "dateDepot");
        char day[11];
        if (!dd) {
            say(why, whylen, "no dateDepot in the dossier (filter.deposited_from/to)");
            return D2G_FILTER_UNKNOWN;
        }
        if (!day_of(json_string_value(dd), day)) {
            say(why, whylen, "no deposit date (filter.deposited_from/to)");
            return D2G_FILTER_OUT;
        }
        if (f->deposited_from[0] && strcmp(day, f->deposited_from) < 0) {
            say(why, whylen, "deposited %s, before filter.deposited_from %s", day, f->deposited_from);
            return D2G_FILTER_OUT;
        }
        if (f->deposited_to[0] && strcmp(day, f->deposited_to) > 0) {
            say(why, whylen, "deposited %s, after filter.deposited_to %s", day, f->deposited_to);
            return D2G_FILTER_OUT;
        }
    }
    return D2G_FILTER_IN;
}

json_t *d2g_filter_deleted_node(json_t *dossier) {
    json_t *node = json_object();
    const char *keys[][2] = {{"id", "id"},
                             {"number", "number"},
                             {"state", "state"},
                             {"dateDerniereModification", "dateSupression"}};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *v = json_object_get(dossier, keys[i][0]);
        if (v)
            json_object_set(node, keys[i][1], v);
    }
    json_object_set_new(node, "reason", json_string(D2G_FILTER_REASON));
    return node;
}
