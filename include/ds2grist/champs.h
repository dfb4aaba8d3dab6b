/*
 * champs.h - which of a DS dossier's data the worker never reads, so that the
 * producer can leave it out of the messages.
 *
 * DS answers every champ with `columns`, its typed breakdown. The worker's
 * mapping reads them only for kinds it has no rule for (Referentiel, and any
 * kind DS adds later: worker/mapping_kinds.c, the `generic` flag); for every
 * other kind they repeat what the champ's own fields say. On the DS emulator's
 * full form they are 35% of a message, and so of the worker's parsing and
 * memory. The producer drops them from a champ when both the champ's
 * __typename and its descriptor's __typename in the form are of a kind the
 * mapping has a rule for (test_mapping checks this list against the mapping's
 * own table), and keeps them whenever it does not know the form.
 */
#ifndef D2G_CHAMPS_H
#define D2G_CHAMPS_H

#include <jansson.h>

/* 1 if typename ("TextChamp", "TextChampDescriptor"...) is of a kind whose
 * `columns` the mapping never reads. */
int d2g_champs_ruled(const char *typename);

/*
 * The descriptor ids of revision (activeRevision as DS answers it, with its
 * champ and annotation descriptors and their repetition sub-descriptors)
 * whose kind is ruled, as a JSON object {id: true}; NULL if revision is not a
 * form. New reference.
 */
json_t *d2g_champs_ruled_descriptors(json_t *revision);

/*
 * Removes `columns` from the champs and annotations of dossier (and of their
 * repetition rows) that are ruled both by __typename and by their descriptor
 * in ruled (d2g_champs_ruled_descriptors). Returns how many were removed.
 */
size_t d2g_champs_prune(json_t *dossier, json_t *ruled);

#endif
