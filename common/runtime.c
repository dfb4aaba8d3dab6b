/* runtime.c - a service's health server, live configuration and registry, see runtime.h. */
#include "ds2grist/runtime.h"

#include "ds2grist/err.h"

#include <string.h>

/* The running configuration, for the registry source (called during a reload). */
static const d2g_config_t *current_of(void *live) { return d2g_reload_current(live); }

int d2g_runtime_start(d2g_runtime_t *rt, const char *path, d2g_config_t *cfg,
                      const d2g_runtime_opts_t *opts, char *err, size_t errlen) {
    char cause[D2G_ERRLEN];
    memset(rt, 0, sizeof(*rt));
    if (d2g_service_start(&rt->svc, cfg, cause, sizeof(cause))) {
        d2g_config_free(cfg);
        return d2g_err_set(err, errlen, "cannot serve health and metrics: %s", cause);
    }
    rt->svc_started = 1;
    rt->boot = d2g_config_ref(cfg);
    /* cfg's own reference goes to the reload context, or is freed. */
    if (!(rt->live = d2g_reload_new(path, cfg, &rt->svc, opts ? opts->sighup : NULL, cause,
                                    sizeof(cause)))) {
        d2g_config_free(cfg);
        d2g_runtime_stop(rt);
        return d2g_err_set(err, errlen, "cannot watch the configuration: %s", cause);
    }
    if (!rt->boot->registry.encryption_key)
        return 0;
    d2g_config_source_t src = {"registry", d2g_registry_source_fn, &rt->rs};
    rt->rs.include_paused = opts ? opts->registry_include_paused : 0;
    rt->rs.servers_of = current_of;
    rt->rs.servers_ud = rt->live;
    if (!(rt->sb = d2g_sealbox_new(rt->boot->registry.encryption_key, cause, sizeof(cause))) ||
        !(rt->reg = d2g_registry_new(rt->boot, cause, sizeof(cause)))) {
        d2g_runtime_stop(rt);
        return d2g_err_set(err, errlen, "cannot open the registry: %s", cause);
    }
    rt->rs.reg = rt->reg;
    rt->rs.sb = rt->sb;
    if (d2g_reload_add_source(rt->live, &src, cause, sizeof(cause))) {
        d2g_runtime_stop(rt);
        return d2g_err_set(err, errlen, "cannot read the registry: %s", cause);
    }
    return 0;
}

void d2g_runtime_stop(d2g_runtime_t *rt) {
    d2g_reload_free(rt->live); /* before the registry: a reload may read it */
    d2g_registry_free(rt->reg);
    d2g_sealbox_free(rt->sb);
    d2g_config_free(rt->boot);
    if (rt->svc_started)
        d2g_service_stop(&rt->svc);
    memset(rt, 0, sizeof(*rt));
}
