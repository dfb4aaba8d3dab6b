/*
 * redisbatch.c - reading many Redis keys in few round trips, for `status`
 * over thousands of procedures. See operator.h.
 *
 * d2g_redis_t (redis.h) runs one command per round trip; here commands are
 * pipelined on its connected context (d2g_redis_context). Read-only: writes
 * go through the common modules (d2g_cursor_reset), like the producer's.
 */
#include "operator.h"

#include "ds2grist/alloc.h"
#include "ds2grist/err.h"

#include <stdlib.h>
#include <string.h>

/* Commands written before their replies are read. */
#define CHUNK 1000

void d2g_op_batch_add(d2g_op_batch_t *b, int argc, const char **argv) {
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        b->cmds = d2g_realloc(b->cmds, b->cap * sizeof(char *));
        b->lens = d2g_realloc(b->lens, b->cap * sizeof(int));
        b->replies = d2g_realloc(b->replies, b->cap * sizeof(redisReply *));
    }
    b->cmds[b->n] = NULL;
    b->lens[b->n] = redisFormatCommandArgv(&b->cmds[b->n], argc, argv, NULL);
    b->replies[b->n] = NULL;
    b->n++;
}

int d2g_op_batch_run(d2g_op_batch_t *b, redisContext *c, char *err, size_t errlen) {
    for (size_t start = 0; start < b->n; start += CHUNK) {
        size_t end = start + CHUNK < b->n ? start + CHUNK : b->n;
        for (size_t i = start; i < end; i++) {
            if (b->lens[i] < 0 || redisAppendFormattedCommand(c, b->cmds[i], (size_t)b->lens[i]))
                return d2g_err_set(err, errlen, "redis: cannot queue a command");
        }
        for (size_t i = start; i < end; i++) {
            void *rep = NULL;
            if (redisGetReply(c, &rep) != REDIS_OK || !rep)
                return d2g_err_set(err, errlen, "redis: %s", c->err ? c->errstr : "no reply");
            b->replies[i] = rep;
        }
    }
    return 0;
}

void d2g_op_batch_free(d2g_op_batch_t *b) {
    for (size_t i = 0; i < b->n; i++) {
        redisFreeCommand(b->cmds[i]);
        if (b->replies[i])
            freeReplyObject(b->replies[i]);
    }
    free(b->cmds);
    free(b->lens);
    free(b->replies);
    memset(b, 0, sizeof(*b));
}
