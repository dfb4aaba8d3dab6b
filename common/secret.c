/* secret.c - credentials from the environment or files, see secret.h. */
#include "ds2grist/secret.h"
#include "ds2grist/alloc.h"
#include "ds2grist/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int d2g_secret_from_env(const char *name, char **out, char *err, size_t errlen) {
    const char *v = getenv(name);
    if (!v || !*v)
        return d2g_err_set(err, errlen, "environment variable %s is not set or empty", name);
    if (strlen(v) > D2G_SECRET_MAX)
        return d2g_err_set(err, errlen, "environment variable %s is longer than %d bytes",
                           name, D2G_SECRET_MAX);
    *out = d2g_strdup(v);
    return 0;
}

int d2g_secret_from_file(const char *path, char **out, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return d2g_err_set(err, errlen, "cannot open secret file %s: %s", path, strerror(errno));
    char *buf = d2g_malloc(D2G_SECRET_MAX + 2);
    size_t n = fread(buf, 1, D2G_SECRET_MAX + 1, f);
    int rerr = ferror(f);
    fclose(f);
    if (rerr || n > D2G_SECRET_MAX) {
        d2g_secret_free(buf);
        return d2g_err_set(err, errlen, rerr ? "cannot read secret file %s"
                                              : "secret file %s is larger than 8192 bytes", path);
    }
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    if (n == 0 || memchr(buf, '\0', n)) {
        d2g_secret_free(buf);
        return d2g_err_set(err, errlen, "secret file %s is empty or binary", path);
    }
    *out = buf;
    return 0;
}

void d2g_secret_free(char *secret) {
    if (!secret)
        return;
    /* explicit_bzero is not optimised away, unlike a plain memset. */
    explicit_bzero(secret, strlen(secret));
    free(secret);
}
