/*
 * poller.h - the producer's loop: every configured procedure polled for
 * changed, deleted and relabelled dossiers, one Kafka message per dossier.
 *
 * One thread, one loop: DS requests of several procedures in flight at once
 * (libcurl multi, producer.concurrency), Kafka delivery reports served in the
 * same loop, Redis for what replicas share.
 *
 * Between runs, procedures are checked in batches (checker.h): one request
 * asks whether any of up to producer.check_batch_size procedures of a token
 * changed since its cursor; only those that did get a run. Each procedure is
 * checked again after its adaptive interval (schedule.h), by the replica the
 * procedures' split gives it (members.h). Per procedure, a run is:
 *
 *   1. take the procedure's lease in Redis (else another replica has it)
 *   2. dossiers(updatedSince fixed, after = stored cursor, first = page size),
 *      page by page; each page's messages are sent, and the cursor moves only
 *      once Kafka acknowledged all of them
 *   3. deletedDossiers(deletedSince, after), the same way
 *   4. every labels_interval_s, the label pass (number and labels only):
 *      an upsert for each dossier whose labels differ from those last emitted
 *   5. record the poll time, release the lease, come back after the interval
 *
 * Fairness: checks go before pages, and a procedure gets one page per turn,
 * then waits behind every procedure that became due before it, so a
 * 100,000-dossier backfill starves neither the others' checks nor their
 * pages. Every DS request first takes one unit of its token's budget
 * (ratelimit.h, shared by all replicas).
 */
#ifndef D2G_POLLER_H
#define D2G_POLLER_H

#include <signal.h>
#include <stddef.h>

#include "ds2grist/config.h"
#include "ds2grist/reload.h"
#include "ds2grist/service.h"

typedef struct d2g_poller d2g_poller_t;

/* Connects to Redis and Kafka with live's current configuration; live (the
 * configuration, reloaded at the top of each turn: procedures added, changed
 * and removed, see docs/configuration.md) and svc (metrics, health) must
 * outlive the poller. */
d2g_poller_t *d2g_poller_new(d2g_reload_t *live, d2g_service_t *svc, char *err, size_t errlen);
/* Runs until *stop becomes non-zero, then finishes the pages in hand (up to
 * producer.shutdown_grace_s), persists cursors and returns 0. */
/* Runs until *stop (returns 0 once the pages in hand are finished), or until
 * librdkafka raises a fatal error (returns 3 at once, no cursor moved for
 * any page not fully acknowledged). */
int d2g_poller_run(d2g_poller_t *p, volatile sig_atomic_t *stop);
void d2g_poller_free(d2g_poller_t *p);

#endif
