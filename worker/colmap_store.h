/*
 * colmap_store.h - a document's column map (colid.h) kept in Redis, so that
 * every worker gives a champ the same column id.
 *
 * A lane starts from the persisted map. When mapping assigned ids the store
 * has not seen, the lane merges under the document's schema lock: the
 * persisted assignments win, ours are added after them, the union is written
 * back. If one of our ids moved, the batch is mapped again.
 */
#ifndef D2G_COLMAP_STORE_H
#define D2G_COLMAP_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "colid.h"

#include "ds2grist/redis.h"

/* Merges the persisted map into map (at lane start). -1 if Redis failed. */
int d2g_colmap_store_load(d2g_redis_t *r, const char *key, d2g_colmap_t *map, char *err,
                          size_t errlen);
/* Under the schema lock: merges map with the persisted one, writes the
 * union back, and replaces *map by it. *moved gets the number of our ids
 * that changed. -1 if Redis failed (*map untouched). */
int d2g_colmap_store_sync(d2g_redis_t *r, const char *key, d2g_colmap_t **map, size_t *moved,
                          char *err, size_t errlen);

#endif
