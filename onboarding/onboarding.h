/*
 * onboarding.h - the self-service onboarding service: the HTTP API the Grist
 * widget calls (docs/onboarding-api.md) and the widget's static files.
 *
 * Runs in the producer process on its own port (onboarding.listen), served
 * by libmicrohttpd's threads. Every action is checked before anything is
 * stored (checks.h), rate-limited per document and per client address
 * (Redis budgets shared by replicas), audit-logged (document, procedure,
 * action, address, outcome: never a token) and answered with a clear
 * message. Registry changes go through registry.h; DS tokens are sealed with
 * sealbox.h before they leave this module and are never answered back.
 */
#ifndef D2G_ONBOARDING_H
#define D2G_ONBOARDING_H

#include <stddef.h>

#include "ds2grist/config.h"

typedef struct d2g_onboarding d2g_onboarding_t;

/* Starts serving cfg->onboarding.listen; cfg is borrowed and must outlive
 * the service. NULL with err (bad address, port in use, Redis, bad key). */
d2g_onboarding_t *d2g_onboarding_start(const d2g_config_t *cfg, char *err, size_t errlen);
/* Waits for requests in progress, then frees; NULL is a no-op. */
void d2g_onboarding_stop(d2g_onboarding_t *ob);
/* The port actually bound (for "host:0"). */
int d2g_onboarding_port(const d2g_onboarding_t *ob);

#endif
