/*
 * filter.h - which dossiers of a procedure belong in Grist (procedures[].filter).
 *
 * Pure: no I/O. The worker asks d2g_filter_check about every dossier it is
 * about to write; a dossier outside its procedure's filter is written as a
 * deletion (d2g_filter_deleted_node, mapped with the procedure's deleted
 * mode: its row is marked or removed). A dossier that enters the filter
 * again is an ordinary upsert and is written whole.
 *
 * The filter reads the dossier as DS returns it: "state", "groupeInstructeur"
 * {"number"} and "dateDepot" (the date part of DS's Europe/Paris timestamp is
 * compared with deposited_from / deposited_to, both inclusive).
 */
#ifndef D2G_FILTER_H
#define D2G_FILTER_H

#include <jansson.h>
#include <stddef.h>

#include "ds2grist/config.h"

typedef enum {
    D2G_FILTER_IN = 0,      /* write it */
    D2G_FILTER_OUT = 1,     /* outside the filter: handle it as deleted */
    D2G_FILTER_UNKNOWN = 2, /* a field the filter needs is absent (a partial dossier) */
} d2g_filter_result_t;

/* The verdict on dossier; for OUT and UNKNOWN, why (may be NULL) says which
 * part decided ("state accepte not in filter.states"). An empty filter
 * keeps every dossier. */
d2g_filter_result_t d2g_filter_check(const d2g_proc_filter_t *f, json_t *dossier, char *why,
                                     size_t whylen);

/* The deletedDossiers-shaped node an OUT dossier is mapped as (a new
 * reference): {id, number, state, dateSupression: its
 * dateDerniereModification, reason: D2G_FILTER_REASON}. */
json_t *d2g_filter_deleted_node(json_t *dossier);

/* motif_suppression of a dossier marked because it left its filter */
#define D2G_FILTER_REASON "hors_filtre"

#endif
