/* keys.c - Redis key names, see keys.h. */
#include "ds2grist/keys.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char *const proc_names[] = {"cursor", "status", "lease", "fence", "labels",
                                         "revision", NULL};
static const char *const doc_names[] = {"permits", "permitgen", "rate", "schemalock", "versions", "lane",
                                        "colmap", "recent429", "syncturn", "syncerr", "forms", "formclaim",
                                        "attachments",
                                        NULL};
static const char *const doc_proc_names[] = {"present", NULL};
static const char *const token_names[] = {"budget", NULL};
static const char *const fleet_names[] = {"producers", "config", "resync", "forms", "formsgen", NULL};
static const char *const registry_names[] = {"entries", "loaded", "version", NULL};

static int known(const char *const *names, const char *name) {
    for (size_t i = 0; names[i]; i++)
        if (strcmp(names[i], name) == 0)
            return 1;
    return 0;
}

static int fit(int n, char *buf, size_t buflen) {
    if (n < 0 || (size_t)n >= buflen) {
        if (buflen)
            buf[0] = '\0';
        return -1;
    }
    return 0;
}

int d2g_keys_proc(const char *ns, char *buf, size_t buflen, int64_t procedure, const char *name) {
    if (!known(proc_names, name))
        return fit(-1, buf, buflen);
    return fit(snprintf(buf, buflen, "%s:{proc:%" PRId64 "}:%s", ns, procedure, name), buf, buflen);
}

int d2g_keys_doc(const char *ns, char *buf, size_t buflen, const char *server,
                 const char *document, const char *name) {
    if (!known(doc_names, name))
        return fit(-1, buf, buflen);
    return fit(snprintf(buf, buflen, "%s:{doc:%s/%s}:%s", ns, server, document, name), buf,
               buflen);
}

int d2g_keys_doc_proc(const char *ns, char *buf, size_t buflen, const char *server,
                      const char *document, const char *name, int64_t procedure) {
    if (!known(doc_proc_names, name))
        return fit(-1, buf, buflen);
    return fit(snprintf(buf, buflen, "%s:{doc:%s/%s}:%s:%" PRId64, ns, server, document, name,
                        procedure),
               buf, buflen);
}

int d2g_keys_dstoken(const char *ns, char *buf, size_t buflen, const char *token,
                     const char *name) {
    if (!known(token_names, name))
        return fit(-1, buf, buflen);
    return fit(snprintf(buf, buflen, "%s:{dstoken:%s}:%s", ns, token, name), buf, buflen);
}

int d2g_keys_fleet(const char *ns, char *buf, size_t buflen, const char *name) {
    if (!known(fleet_names, name))
        return fit(-1, buf, buflen);
    return fit(snprintf(buf, buflen, "%s:{fleet}:%s", ns, name), buf, buflen);
}

int d2g_keys_registry(const char *ns, char *buf, size_t buflen, const char *name) {
    if (!known(registry_names, name))
        return fit(-1, buf, buflen);
    return fit(snprintf(buf, buflen, "%s:{registry}:%s", ns, name), buf, buflen);
}

int d2g_keys_onboard(const char *ns, char *buf, size_t buflen, const char *kind, const char *id) {
    if (strcmp(kind, "doc") != 0 && strcmp(kind, "addr") != 0)
        return fit(-1, buf, buflen);
    return fit(snprintf(buf, buflen, "%s:{onboard:%s:%s}:rate", ns, kind, id), buf, buflen);
}
