/*
 * worker.h - the worker's loop: Kafka messages in, Grist writes out, offsets
 * stored only for what is safely done.
 *
 * A consumer of the dossier topic in the workers' group (cooperative-sticky
 * assignor). Each message is decoded and handed to the writer (writer.h); a
 * message that cannot be decoded, or whose procedure this worker does not
 * know, goes to the dead-letter topic with the reason. An offset is stored
 * (enable.auto.offset.store=false) only once every earlier message of its
 * partition is written to Grist or acknowledged by the dead-letter topic
 * (offsets.h), and committed by librdkafka's auto-commit.
 *
 * When partitions are revoked, the writes in flight for them are finished
 * first (a new owner must not race an older write of the same dossier), what
 * was only queued is dropped (the new owner reads it again), and the stored
 * offsets are committed before the partitions go. A document that falls
 * behind pauses the partitions feeding it, keeping what was fetched.
 * SIGTERM: stop fetching, write what is in hand (up to
 * worker.shutdown_grace_s), commit, leave the group.
 */
#ifndef D2G_WORKER_H
#define D2G_WORKER_H

#include <signal.h>
#include <stddef.h>

#include "ds2grist/config.h"
#include "ds2grist/service.h"

typedef struct d2g_worker d2g_worker_t;

/* cfg and svc (metrics, health) must outlive the worker. */
d2g_worker_t *d2g_worker_new(const d2g_config_t *cfg, d2g_service_t *svc, char *err,
                             size_t errlen);
/* Runs until *stop, then shuts down cleanly; returns 0. */
int d2g_worker_run(d2g_worker_t *w, volatile sig_atomic_t *stop);
void d2g_worker_free(d2g_worker_t *w);

#endif
