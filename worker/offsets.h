/*
 * offsets.h - which offset of a partition may be stored: the contiguous
 * low-water mark of messages that are done.
 *
 * The worker finishes messages out of order (documents are written
 * independently; a dossier's older update is done when its newer one is).
 * An offset is stored only once every message before it in its partition is
 * done (written to Grist or in the dead-letter topic), so a crash re-delivers
 * everything not yet done and skips nothing.
 *
 * One tracker per assigned partition. Messages are added in offset order as
 * they are consumed. An epoch, bumped each time the partition is assigned
 * again, lets late completions of a previous assignment be ignored.
 */
#ifndef D2G_OFFSETS_H
#define D2G_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

typedef struct d2g_offsets d2g_offsets_t;

d2g_offsets_t *d2g_offsets_new(void);
void d2g_offsets_free(d2g_offsets_t *t);

/* A fresh assignment: forgets everything, returns the new epoch. */
uint32_t d2g_offsets_reset(d2g_offsets_t *t);
uint32_t d2g_offsets_epoch(const d2g_offsets_t *t);

/* Records a consumed message. Returns -1, recording nothing, for an offset
 * not above the last one recorded: a message already seen (a re-delivery). */
int d2g_offsets_add(d2g_offsets_t *t, int64_t offset);

/* Marks a message done. Returns the offset to store (the next one to
 * consume: last contiguous done + 1) if the low-water mark moved, else -1.
 * A message of another epoch, or unknown, is ignored (-1). */
int64_t d2g_offsets_done(d2g_offsets_t *t, uint32_t epoch, int64_t offset);

/* Messages added and not yet done. */
size_t d2g_offsets_pending(const d2g_offsets_t *t);

#endif
