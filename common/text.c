/* text.c - UTF-8-safe bounded copies and secret scrubbing, see text.h. */
#include "ds2grist/text.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned int min, cp;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

size_t d2g_text_copy(char *dst, size_t dstlen, const char *src, size_t srclen) {
    if (!dst || dstlen == 0)
        return 0;
    size_t o = 0;
    if (src) {
        const unsigned char *s = (const unsigned char *)src;
        size_t n = srclen == (size_t)-1 ? strlen(src) : strnlen(src, srclen);
        size_t i = 0;
        while (i < n) {
            size_t len = utf8_seq(s + i, n - i);
            if (len == 0) {
                if (o + 1 >= dstlen)
                    break;
                dst[o++] = '?';
                i++;
                continue;
            }
            if (o + len >= dstlen)
                break;
            if (len == 1) {
                unsigned char c = s[i];
                dst[o++] = (c < 0x20 && c != '\t') || c == 0x7F ? ' ' : (char)c;
            } else {
                /* memmove: dst == src is allowed and o <= i always holds */
                memmove(dst + o, s + i, len);
                o += len;
            }
            i += len;
        }
    }
    dst[o] = '\0';
    return o;
}

int d2g_text_valid_utf8(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq(u + i, n - i);
        if (!len)
            return 0;
        i += len;
    }
    return 1;
}

size_t d2g_text_prefix(const char *s, size_t max) {
    size_t n = strnlen(s, max);
    if (n < max)
        return n;
    /* Step back over continuation bytes to the start of the last character,
     * and drop it if it does not fit whole. */
    size_t i = n;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
        i--;
    return i;
}

void d2g_text_scrub(char *s, const char *const *secrets, size_t n_secrets) {
    if (!s || !secrets)
        return;
    for (size_t k = 0; k < n_secrets; k++) {
        const char *sec = secrets[k];
        if (!sec)
            continue;
        size_t sl = strlen(sec);
        if (sl < 4)
            continue;
        char *p = s;
        while ((p = strstr(p, sec)) != NULL) {
            memcpy(p, "***", 3);
            memmove(p + 3, p + sl, strlen(p + sl) + 1);
            p += 3;
        }
    }
}

json_t *d2g_text_json(const char *s) {
    if (!s)
        return json_null();
    size_t n = strlen(s);
    char *clean = malloc(n + 1);
    if (!clean)
        return json_string("");
    d2g_text_copy(clean, n + 1, s, n);
    json_t *j = json_string(clean);
    free(clean);
    return j ? j : json_string("");
}
