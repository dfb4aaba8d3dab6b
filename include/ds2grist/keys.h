/*
 * keys.h - every Redis key name of ds2grist, built in one place.
 *
 * All keys are "<namespace>:{<tag>}:<name>". The hash tag groups the keys one
 * Lua script touches together; every script of this project touches keys of
 * one tag only. (Redis Cluster is nevertheless not supported, see
 * docs/operations.md: only a single primary behind one address is tested.)
 *
 * Procedure keys, "<ns>:{proc:N}:<name>":
 *   cursor     hash, the poll position (cursor.h)
 *   status     hash, last success / error read by operators (cursor.h)
 *   lease      string, the replica polling the procedure, with a TTL (lease.h)
 *   fence      integer, the lease generation: incremented each time a new
 *              holder takes the lease; a cursor write names it and is refused
 *              once the lease moved on (cursor.h)
 *   labels     hash, dossier number -> label digest of the last label pass
 *   revision   string, the procedure's active form revision (JSON)
 * Document keys, "<ns>:{doc:<server>/<document>}:<name>":
 *   permits    sorted set, the requests in flight on the document (permits.h)
 *   permitgen  string, the permit set's generation: its absence after a Redis
 *              loss is how holders notice the set was lost (permits.h)
 *   rate       sorted set, the per-second request budget (ratelimit.h)
 *   schemalock string, the worker changing the document's schema
 *   colmap     hash, Grist column ids of the document's fields
 *   recent429  string, set while Grist answers 429 (status shows it)
 *   versions   hash, "<procedure>:<number>" -> the version last written to
 *              Grist ("u<ms>" upsert or "d<ms>" deletion): the guard that keeps
 *              an older version from overwriting a newer one (worker/versions.h)
 *   lane       hash, worker id -> its lane's state when not active (JSON:
 *              state, reason, since, error), read by `ds2grist status`
 *   syncturn   string, the worker writing the document's sync-status table
 *              this period (SET NX PX: one writer per period, syncstat.h)
 *   syncerr    hash, procedure -> the last dossier of it Grist refused (JSON:
 *              at, dossier, error; scrubbed), shown in the sync-status table
 *              until that dossier is written (syncstat.h)
 *   forms      hash, procedure -> the form version (revision id, table prefix,
 *              mapping options) whose tables and columns the document holds
 *              (worker/formschema.h)
 *   formclaim  string, the worker creating a form's schema in the document,
 *              with a TTL (lease.h)
 *   attachments hash, DS file checksum -> the Grist attachment id it was copied
 *              to, and "bytes" -> bytes copied into the document (worker/attach.h)
 * Document keys of one procedure, "<ns>:{doc:<server>/<document>}:<name>:<N>":
 *   present    set, the numbers of the procedure's dossiers written to the
 *              document (removed ones taken out): the count shown in the
 *              sync-status table
 * DS token keys, "<ns>:{dstoken:<name>}:<name>":
 *   budget     sorted set, requests per minute shared by replicas (ratelimit.h)
 * Registry keys, "<ns>:{registry}:<name>" (registry.h):
 *   entries    hash, procedure number -> the entry (JSON; its DS token sealed)
 *   loaded     string, present once the hash holds the whole registry: its
 *              absence after a Redis loss is how processes know to rebuild the
 *              hash from the Kafka topic
 *   version    integer, incremented by every change (reloads watch it)
 * Onboarding keys, "<ns>:{onboard:<kind>:<id>}:rate": the rate budgets of the
 *   onboarding API, kind "doc" (id "<server>/<document>") or "addr" (id the
 *   client address); sorted sets (ratelimit.h)
 * Fleet keys, "<ns>:{fleet}:<name>":
 *   producers  sorted set, the live producer replicas scored by the expiry of
 *              their registration (producer/members.h)
 *   resync     sorted set, procedure number -> when an agent asked for a full
 *              resync (the sync-status table's checkbox, written by a
 *              worker); the procedure's producer takes it and removes it
 *              (docs/producer.md, "Full resync")
 *   config     integer, the fleet's configuration generation: every producer
 *              and worker reloads its configuration when it changes
 *              (reload.h, d2g_reload_bump; `ds2grist config reload`)
 *   forms      sorted set, procedure -> the formsgen value when a producer
 *              stored a revision different from the one before (workers create
 *              its new columns, worker/formschema.h)
 *   formsgen   integer, incremented by each such change
 *
 * The builders return 0, or -1 if the key did not fit in buf (buf then holds
 * a truncated, unusable key) or the name is not one listed above.
 */
#ifndef D2G_KEYS_H
#define D2G_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "ds2grist/redis.h"

/* Big enough for every key of a valid configuration (names are bounded by
 * the configuration's validation). */
#define D2G_KEYLEN 512

/* "<ns>:{proc:N}:<name>" */
int d2g_keys_proc(const char *ns, char *buf, size_t buflen, int64_t procedure, const char *name);
/* "<ns>:{doc:<server>/<document>}:<name>" */
int d2g_keys_doc(const char *ns, char *buf, size_t buflen, const char *server,
                 const char *document, const char *name);
/* "<ns>:{doc:<server>/<document>}:<name>:<procedure>" */
int d2g_keys_doc_proc(const char *ns, char *buf, size_t buflen, const char *server,
                      const char *document, const char *name, int64_t procedure);
/* "<ns>:{dstoken:<token>}:<name>" */
int d2g_keys_dstoken(const char *ns, char *buf, size_t buflen, const char *token,
                     const char *name);

/* "<ns>:{registry}:<name>" */
int d2g_keys_registry(const char *ns, char *buf, size_t buflen, const char *name);
/* "<ns>:{onboard:<kind>:<id>}:rate", kind "doc" or "addr" */
int d2g_keys_onboard(const char *ns, char *buf, size_t buflen, const char *kind, const char *id);

/* "<ns>:{fleet}:<name>" */
int d2g_keys_fleet(const char *ns, char *buf, size_t buflen, const char *name);

/* The namespace of a connection (borrowed, valid as long as r), for the
 * builders above: d2g_keys_doc(d2g_redis_namespace(r), ...). */
const char *d2g_redis_namespace(const d2g_redis_t *r);

#endif
