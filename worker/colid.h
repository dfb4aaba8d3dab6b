/*
 * colid.h - readable, unique and stable Grist identifiers for DS fields.
 *
 * Column ids are derived from the French labels of DS champs ("Nom de
 * l'établissement" -> "nom_de_l_etablissement"): accents folded to ASCII,
 * snake_case, at most D2G_COLID_MAXLEN characters cut on a word boundary,
 * never a Grist reserved id. Table ids are a procedure's table prefix plus a
 * label-derived suffix ("Subventions_Repetition_Beneficiaires").
 *
 * A label is not a stable key (administrators rename champs, two champs can
 * share a label), so the id of a champ is decided once per champDescriptorId
 * and remembered in a d2g_colmap_t: a renamed champ keeps its column, and
 * duplicates get "_2", "_3"... in the order they are first seen. The worker
 * persists the map (d2g_colmap_to_json) and several workers merge theirs
 * (d2g_colmap_merge_json), an existing assignment always winning.
 * docs/mapping.md describes the rules and the persisted format.
 *
 * Uniqueness is case-insensitive, as Grist's (SQLite's) is. A map is not
 * thread-safe: one per thread, or a lock around it.
 */
#ifndef D2G_COLID_H
#define D2G_COLID_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Derived words are cut to this length (before a "c_" prefix or a "_N" suffix). */
#define D2G_COLID_MAXLEN 48
/* A buffer that holds any column id this module produces, suffixes included. */
#define D2G_COLID_BUFLEN 72

/*
 * The Grist column id for a label: lower-case ASCII words joined by "_",
 * "c_" in front if it starts with a digit or is reserved (d2g_colid_is_reserved),
 * "champ" if nothing is left. label is UTF-8 (NULL is taken as ""); invalid
 * bytes separate words. Returns 0, or -1 if outlen < D2G_COLID_BUFLEN.
 */
int d2g_colid_from_label(const char *label, char *out, size_t outlen);

/*
 * A Grist table id: prefix (a valid table id: its first letter is upper-cased,
 * other characters outside [A-Za-z0-9_] become "_"), then, if suffix has any
 * word, "_" and suffix's words folded like labels with each word capitalised:
 * ("Subventions", "Répétition bénéficiaires") -> "Subventions_Repetition_Beneficiaires".
 * Without a prefix the suffix alone, "T_" in front if it starts with a digit;
 * "Table" if both are empty. Returns 0, or -1 if out is too small.
 */
int d2g_colid_table(const char *prefix, const char *suffix, char *out, size_t outlen);

/* 1 if Grist would refuse or rename id as a column id: "id", "manualSort",
 * "gristHelper_*", Python keywords (compared case-insensitively). */
int d2g_colid_is_reserved(const char *id);

/* --- the persisted descriptor -> id map -------------------------------- */

typedef struct d2g_colmap d2g_colmap_t;

d2g_colmap_t *d2g_colmap_new(void); /* NULL on out of memory */
void d2g_colmap_free(d2g_colmap_t *map);

/*
 * Marks id as used in table without a descriptor (the fixed columns of a
 * table, the table ids of a procedure): assign will never hand it out.
 * Idempotent. Returns -1 if id is already assigned to a descriptor there (a
 * reserved id must be reserved before any assignment) or on out of memory.
 */
int d2g_colmap_reserve(d2g_colmap_t *map, const char *table, const char *id);

/*
 * The column id of descriptor_id in table: the recorded one if the
 * descriptor is known (whatever label says now), else one derived from label
 * (d2g_colid_from_label), made unique in the table with "_2", "_3"...,
 * recorded, and the generation bumped. The string belongs to the map and
 * lives as long as it. NULL only on out of memory or a NULL argument.
 */
const char *d2g_colmap_assign(d2g_colmap_t *map, const char *table, const char *descriptor_id,
                              const char *label);
/* Same with the wanted id given (already a valid identifier), e.g. a table id
 * from d2g_colid_table; it is de-duplicated the same way. */
const char *d2g_colmap_assign_id(d2g_colmap_t *map, const char *table,
                                 const char *descriptor_id, const char *wanted);
/* The recorded id, or NULL. */
const char *d2g_colmap_lookup(const d2g_colmap_t *map, const char *table,
                              const char *descriptor_id);

/* Calls fn for each descriptor -> id of table, in descriptor id order; stops
 * at (and returns) the first non-zero return of fn. 0 for an unknown table. */
int d2g_colmap_foreach(const d2g_colmap_t *map, const char *table,
                       int (*fn)(const char *descriptor_id, const char *id, void *arg),
                       void *arg);

/*
 * Bumped by every new assignment (assign, merge), never by reserve: the
 * caller persists the map when it differs from the generation it last saved.
 */
uint64_t d2g_colmap_generation(const d2g_colmap_t *map);

/*
 * {"v": 1, "tables": {"<table>": {"columns": {"<descriptor id>": "<id>", ...},
 *                                 "reserved": ["<id>", ...]}, ...}}
 * New reference (caller decrefs); NULL on out of memory. Dump it with
 * JSON_SORT_KEYS for a byte-stable text.
 */
json_t *d2g_colmap_to_json(const d2g_colmap_t *map);

/*
 * Adds the assignments of json (d2g_colmap_to_json's format) that map does
 * not have. Deterministic: tables and descriptors are taken in sorted order;
 * a descriptor map already knows keeps its id; an incoming id already used in
 * map by another descriptor is de-duplicated like a new assignment, and
 * counted in *moved (may be NULL). To let a persisted copy win over local
 * work, merge the persisted copy into a new map first, then the local one.
 * A malformed json changes nothing and fails with its path in err.
 */
int d2g_colmap_merge_json(d2g_colmap_t *map, json_t *json, size_t *moved, char *err,
                          size_t errlen);

#endif
