/* err.c - see include/ds2grist/err.h. */
#include "ds2grist/err.h"
#include "ds2grist/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int d2g_err_set(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen)
        return -1;
    /* Formatted whole, then copied cut at a UTF-8 boundary without controls:
     * an error text always fits in a log line or a JSON string. */
    char small[1024], *buf = small;
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(small) && (buf = malloc((size_t)n + 1)) != NULL)
        vsnprintf(buf, (size_t)n + 1, fmt, ap2);
    else if (n >= (int)sizeof(small))
        buf = small;
    va_end(ap2);
    if (n < 0)
        small[0] = '\0';
    d2g_text_copy(err, errlen, buf, (size_t)-1);
    if (buf != small)
        free(buf);
    return -1;
}
