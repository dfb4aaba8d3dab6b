/*
 * err.h - the error convention shared by every ds2grist module.
 *
 * A function that can fail returns 0 on success and -1 on failure, and writes
 * a one-line, human-readable cause into a caller-supplied buffer (err, errlen).
 * The cause names what failed and why ("procedures[3].document: must be a
 * non-empty string"); it never contains a secret.
 */
#ifndef D2G_ERR_H
#define D2G_ERR_H

#include <stddef.h>

/* A buffer size that fits every message this project writes. */
#define D2G_ERRLEN 512

/* snprintf into err (if err is not NULL), cut at a UTF-8 boundary, invalid
 * bytes and control characters replaced (d2g_text_copy); always returns -1 so that
 * `return d2g_err_set(err, errlen, ...);` reads naturally. */
int d2g_err_set(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
