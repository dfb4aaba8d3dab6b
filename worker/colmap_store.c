/* colmap_store.c - column maps in Redis, see colmap_store.h. */
#include "colmap_store.h"

#include <jansson.h>
#include <stdlib.h>

static int read_into(d2g_redis_t *r, const char *key, d2g_colmap_t *map, char *err, size_t errlen) {
    redisReply *rep = d2g_redis_cmd(r, err, errlen, "GET %s", key);
    if (!rep)
        return -1;
    if (rep->type == REDIS_REPLY_STRING) {
        json_t *j = json_loads(rep->str, 0, NULL);
        if (j)
            d2g_colmap_merge_json(map, j, NULL, err, errlen);
        json_decref(j);
    }
    freeReplyObject(rep);
    return 0;
}

int d2g_colmap_store_load(d2g_redis_t *r, const char *key, d2g_colmap_t *map, char *err,
                          size_t errlen) {
    return read_into(r, key, map, err, errlen);
}

int d2g_colmap_store_sync(d2g_redis_t *r, const char *key, d2g_colmap_t **map, size_t *moved,
                          char *err, size_t errlen) {
    d2g_colmap_t *fresh = d2g_colmap_new();
    *moved = 0;
    if (read_into(r, key, fresh, err, errlen)) {
        d2g_colmap_free(fresh);
        return -1;
    }
    json_t *mine = d2g_colmap_to_json(*map);
    d2g_colmap_merge_json(fresh, mine, moved, err, errlen);
    json_decref(mine);
    json_t *all = d2g_colmap_to_json(fresh);
    char *text = json_dumps(all, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(all);
    const char *argv[] = {"SET", key, text};
    redisReply *rep = d2g_redis_argv(r, 3, argv, NULL, err, errlen);
    free(text);
    if (!rep) {
        d2g_colmap_free(fresh);
        return -1;
    }
    freeReplyObject(rep);
    d2g_colmap_free(*map);
    *map = fresh;
    return 0;
}
