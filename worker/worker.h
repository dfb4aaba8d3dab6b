/*
 * worker.h - the worker's loop: Kafka messages in, Grist writes out, offsets
 * stored only for what is safely done.
 *
 * A consumer of the dossier topic and of the retry topic in the workers'
 * group (cooperative-sticky assignor). Each message is decoded and handed to
 * the writer (writer.h); a message that cannot be decoded, or whose
 * procedure this worker does not know, goes to the dead-letter topic with
 * the reason. A message for a document whose lane is parked is forwarded to
 * the retry topic as it is, without decoding (its key names the procedure),
 * with a not-before time; the writer sheds a parked lane's queue there too.
 * A retry message is held (its partition paused) until its not-before time,
 * then handled like any other. An offset is stored (per topic and partition,
 * enable.auto.offset.store=false) only once every earlier message of its
 * partition is written to Grist or acknowledged by the dead-letter or retry
 * topic (offsets.h), and committed by librdkafka's auto-commit. A copy Kafka
 * refuses is produced again with backoff, the worker not ready meanwhile.
 *
 * When partitions are revoked, what was only queued or held for them is
 * dropped (the new owner reads it again), the writes in flight for them may
 * finish until worker.revoke_deadline_s and are then abandoned to the new
 * owner, and the stored offsets are committed before the partitions go. A
 * document that falls behind (active, not parked) pauses the partitions
 * feeding it, keeping what was fetched. SIGTERM: stop fetching, write what
 * is in hand, commit, leave the group, all within worker.shutdown_grace_s.
 * The health heartbeat beats through every wait.
 */
#ifndef D2G_WORKER_H
#define D2G_WORKER_H

#include <signal.h>
#include <stddef.h>

#include "ds2grist/config.h"
#include "ds2grist/reload.h"
#include "ds2grist/service.h"

typedef struct d2g_worker d2g_worker_t;

/* Starts with live's current configuration, reloaded between steps (see
 * reload.h, d2g_writer_apply); live and svc (metrics, health) must outlive
 * the worker. Kafka's topics and group and Redis stay those it started with. */
d2g_worker_t *d2g_worker_new(d2g_reload_t *live, d2g_service_t *svc, char *err, size_t errlen);
/* Runs until *stop, then shuts down cleanly; returns 0. */
/* A message for a procedure this worker's configuration does not have yet:
 * called before it is dead-lettered. Returning 1 ("a procedure source such
 * as the registry has it: the next reload brings it", registry.h) sends the
 * message to the retry topic instead, to be read again after its delay. */
typedef int (*d2g_worker_unknown_cb)(void *ud, int64_t procedure);
void d2g_worker_set_unknown_hook(d2g_worker_t *w, d2g_worker_unknown_cb cb, void *ud);
int d2g_worker_run(d2g_worker_t *w, volatile sig_atomic_t *stop);
void d2g_worker_free(d2g_worker_t *w);

#endif
