/* err.c - see include/ds2grist/err.h. */
#include "ds2grist/err.h"

#include <stdarg.h>
#include <stdio.h>

int d2g_err_set(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}
