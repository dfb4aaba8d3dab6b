/*
 * formschema.h - a procedure's tables and columns created from its form,
 * before any dossier (issue #13): the dossiers table with its fixed columns,
 * a column per champ and annotation of the published revision (descriptions
 * included) and the repetition blocks' child tables, so that agents can build
 * their views on an empty table; a new revision adds its new columns the
 * same way.
 *
 * When. Every configured procedure is checked at start-up and after every
 * configuration change (file reload, registry: d2g_formschema_apply), when a
 * producer stores a revision that differs from the one before (it records the
 * procedure in the fleet's sorted set <ns>:{fleet}:forms, scored by the
 * counter <ns>:{fleet}:formsgen, which every worker reads every
 * FORMSCHEMA_POLL_MS), and again every FORMSCHEMA_RECHECK_MS.
 *
 * Who. The form's version (its revision id, the table prefix and the mapping
 * options) applied to a document is kept in Redis (<ns>:{doc:S/D}:forms,
 * procedure -> version), so a check costs a worker one HGET and nothing when
 * the document already has it. Otherwise the worker takes the document's
 * claim (<ns>:{doc:S/D}:formclaim, a lease of FORMSCHEMA_CLAIM_MS): one worker
 * of the fleet does the work, the others look again later. Its lane then runs
 * a schema-only batch (flush.h, d2g_flush_new_form): no record, the stages
 * prepare (the form mapped, d2g_mapping_map_form, with the lane's column map)
 * and schema (read, lock, merge the column map with the fleet's, create what
 * is missing), every request under the document's permit and schema lock,
 * exactly as a dossier's batch would, so the columns are those the dossiers
 * will use. Then the version is recorded and the claim released. It runs on
 * an idle lane only, and gives way to dossiers that come meanwhile (their
 * batches declare the whole form too): it is tried again once they are written.
 *
 * Failures. A lane that is not active is never given a job (it is looked at
 * again after FORMSCHEMA_BUSY_MS); a job whose lane parks, or whose change
 * Grist refuses, is dropped without recording anything, and its worker keeps
 * the document's claim for FORMSCHEMA_HOLD_MS (the other workers do not each
 * open a lane on a document in trouble): a failing document costs one attempt
 * per FORMSCHEMA_BUSY_MS at most, on top of the lane's own probes, from one
 * worker. Nothing here waits: a step looks at no more than FORMSCHEMA_PER_STEP
 * procedures.
 */
#ifndef D2G_FORMSCHEMA_H
#define D2G_FORMSCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "ds2grist/config.h"

#define FORMSCHEMA_POLL_MS 2000
#define FORMSCHEMA_RECHECK_MS 600000
#define FORMSCHEMA_CLAIM_MS 120000
#define FORMSCHEMA_BUSY_MS 60000
#define FORMSCHEMA_HOLD_MS 600000
#define FORMSCHEMA_PER_STEP 32

struct d2g_writer;
struct d2g_lane;
typedef struct d2g_formschema d2g_formschema_t;
/* One lane's procedures whose form is to be applied. */
typedef struct d2g_form_job d2g_form_job_t;

d2g_formschema_t *d2g_formschema_new(const d2g_config_t *cfg);
void d2g_formschema_free(d2g_formschema_t *fs);
/* A new configuration: every procedure of it is checked again. */
void d2g_formschema_apply(d2g_formschema_t *fs, const d2g_config_t *cfg);
/* Checks the procedures due (at most FORMSCHEMA_PER_STEP) and queues the jobs. */
void d2g_formschema_step(struct d2g_writer *w, int64_t now);
/* When d2g_formschema_step has something to do next (mono ms). */
int64_t d2g_formschema_next_due(const d2g_formschema_t *fs);

/* The job waiting for the lane (the caller owns it now), or NULL. */
d2g_form_job_t *d2g_formschema_take(d2g_formschema_t *fs, const struct d2g_lane *l);
size_t d2g_form_job_count(const d2g_form_job_t *j);
const d2g_procedure_t *d2g_form_job_proc(const d2g_form_job_t *j, size_t i);
/* How a job ended. */
#define D2G_FORM_APPLIED 1 /* its versions are recorded in the document's hash */
#define D2G_FORM_FAILED 0  /* checked again after FORMSCHEMA_BUSY_MS, the claim kept */
#define D2G_FORM_YIELDED 2 /* dossiers came (their batches make the same columns): again soon */
/* The job is over (D2G_FORM_*). Frees it. */
void d2g_formschema_done(struct d2g_writer *w, struct d2g_lane *l, d2g_form_job_t *j, int how);
/* Frees a job that never ended (its lane is freed). */
void d2g_form_job_free(d2g_form_job_t *j);

#endif
