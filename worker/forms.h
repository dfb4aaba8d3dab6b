/*
 * forms.h - each procedure's mapping context, built from its form (the
 * activeRevision the producer stores in Redis) and re-read every
 * FORMS_TTL_MS.
 *
 * When Redis does not answer, the context already built stays in use (a
 * form changes rarely); a procedure with no context yet waits (the caller
 * backs off) rather than being mapped without its form, which would give its
 * columns other types and order. Only a procedure whose form Redis does not
 * hold, or holds unreadable, is mapped from its dossiers alone.
 *
 * Each context is built with its procedure's mapping options
 * (procedures[].mapping: ref_links, geo_areas, avis, messages).
 */
#ifndef D2G_FORMS_H
#define D2G_FORMS_H

#include "mapping.h"

#include "ds2grist/config.h"
#include "ds2grist/redis.h"

typedef struct d2g_forms d2g_forms_t;

d2g_forms_t *d2g_forms_new(const d2g_config_t *cfg, d2g_redis_t *redis);
/* A procedure's mapping options (procedures[].mapping) as the mapping takes them. */
void d2g_forms_opts(const d2g_procedure_t *proc, d2g_mapping_opts_t *opts);
/* A new configuration: forms are built again on demand (a table prefix or a
 * procedure's mapping options may have changed). */
void d2g_forms_apply(d2g_forms_t *f, const d2g_config_t *cfg);
void d2g_forms_free(d2g_forms_t *f);
/* The procedure's context (borrowed, valid until the next call for the same
 * procedure), or NULL: Redis did not answer and there is none yet (err). */
const d2g_mapping_ctx_t *d2g_forms_get(d2g_forms_t *f, const d2g_procedure_t *proc, char *err,
                                       size_t errlen);
/* The id of the form the procedure's context was last built from (borrowed,
 * valid until the next call for it), or NULL: none yet, or built without a
 * form (Redis holds none). */
const char *d2g_forms_revision(d2g_forms_t *f, const d2g_procedure_t *proc);
/* The procedure's form is read again at the next d2g_forms_get (a producer
 * stored a new one). */
void d2g_forms_expire(d2g_forms_t *f, const d2g_procedure_t *proc);
/* The procedure's context is freed (built again on demand): a worker checks
 * every procedure's form (formschema.h) but keeps only those it maps. */
void d2g_forms_forget(d2g_forms_t *f, const d2g_procedure_t *proc);

#endif
