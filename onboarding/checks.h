/*
 * checks.h - what the onboarding service asks Grist and DS before it stores
 * anything (docs/onboarding.md, "What is checked").
 *
 * Only URLs built from a configured Grist server's own URL are ever called:
 * the baseUrl an agent sends is matched against the allowed servers and
 * reduced to a document id, never requested as given (no SSRF). Redirects are
 * not followed. Tokens go in the Authorization header or in Grist's ?auth=
 * parameter and never into a message.
 */
#ifndef D2G_ONBOARD_CHECKS_H
#define D2G_ONBOARD_CHECKS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "ds2grist/config.h"

typedef enum {
    D2G_OB_OK = 0,
    D2G_OB_TOKEN_INVALID,  /* Grist refused the access token (forged, broken, other document) */
    D2G_OB_TOKEN_EXPIRED,
    D2G_OB_READ_ONLY,      /* the token (or the platform's account) may read, not write */
    D2G_OB_NO_ACCESS,      /* the platform's account cannot open the document */
    D2G_OB_DS_REFUSED,     /* the DS token cannot read the procedure */
    D2G_OB_DS_NOT_FOUND,   /* DS has no such procedure */
    D2G_OB_UNAVAILABLE,    /* no usable answer (transport, 5xx, garbage) */
} d2g_ob_verdict_t;

/* Is server srv allowed for self-service (onboarding.grist_servers)? */
int d2g_ob_server_allowed(const d2g_config_t *cfg, const d2g_grist_server_t *srv);
/*
 * base_url "<server url>[/o/<org>]/api/docs/<doc>" of an allowed server:
 * 0, *srv and doc (1-200 of A-Za-z0-9._-) set; -1 otherwise.
 */
int d2g_ob_parse_base_url(const d2g_config_t *cfg, const char *base_url,
                          const d2g_grist_server_t **srv, char *doc, size_t doclen);
/* The access token on the document: need_write 1 asks Grist's POST
 * /api/docs/{doc}/flush (editors only, no effect on the data), 0 a read
 * (GET /api/docs/{doc}/tables). */
d2g_ob_verdict_t d2g_ob_check_grist_token(const d2g_grist_server_t *srv, const char *doc,
                                          const char *token, int need_write, long timeout_s,
                                          char *detail, size_t detaillen);
/* The platform's API key can write the document (GET /api/docs/{doc}: access
 * owners or editors). */
d2g_ob_verdict_t d2g_ob_check_platform(const d2g_grist_server_t *srv, const char *doc,
                                       long timeout_s, char *detail, size_t detaillen);
/* A demarche(number:) query with the DS token; on OK *demarche (caller
 * decrefs) holds {number, title, state, activeRevision{champDescriptors}}. */
d2g_ob_verdict_t d2g_ob_check_ds(const char *endpoint, const char *ds_token, int64_t procedure,
                                 long timeout_s, json_t **demarche, char *detail,
                                 size_t detaillen);

#endif
