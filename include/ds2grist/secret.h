/*
 * secret.h - credentials read from the environment or from files.
 *
 * A secret is configured as {"env": "NAME"} or {"file": "/path"}, never as a
 * literal in the configuration (configuration files end up in ConfigMaps,
 * repositories and tickets). The value is read once at load time; a trailing
 * newline in a file is dropped (files written by `echo` or mounted by
 * Kubernetes Secrets often end with one). Error messages name the variable or
 * file, never the value.
 */
#ifndef D2G_SECRET_H
#define D2G_SECRET_H

#include <stddef.h>

/* Largest secret accepted, in bytes. */
#define D2G_SECRET_MAX 8192

/* Reads the variable; *out is a malloc'ed copy owned by the caller (free with
 * d2g_secret_free). Fails if unset or empty. */
int d2g_secret_from_env(const char *name, char **out, char *err, size_t errlen);
/* Reads the file; same ownership and failure rules. */
int d2g_secret_from_file(const char *path, char **out, char *err, size_t errlen);
/* Overwrites then frees a secret; NULL is fine. */
void d2g_secret_free(char *secret);

#endif
