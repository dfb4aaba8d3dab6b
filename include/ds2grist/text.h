/*
 * text.h - text that is safe to put in a log line, an error buffer or JSON.
 *
 * Error texts come from everywhere: DS and Grist answers, librdkafka,
 * hiredis, file names, configuration values. Cut with snprintf they can end
 * in the middle of a UTF-8 character, and jansson then refuses the whole
 * string (a log line or a JSON field disappears). d2g_text_copy is the one
 * way this project copies such a text into a bounded buffer: the result is
 * always valid UTF-8 without control characters. d2g_text_scrub removes
 * configured secrets from a text before it goes anywhere.
 */
#ifndef D2G_TEXT_H
#define D2G_TEXT_H

#include <stddef.h>

/*
 * Copies at most srclen bytes of src ((size_t)-1: up to its NUL) into dst
 * (dstlen bytes with the NUL), cut at a UTF-8 character boundary, every
 * invalid byte replaced by '?', control characters except \t by ' '; returns
 * the bytes written (without the NUL). dst is always NUL-terminated when
 * dstlen > 0. src NULL copies nothing. A NUL byte inside srclen ends the copy.
 * dst and src must not overlap, except dst == src (in-place cleaning).
 */
size_t d2g_text_copy(char *dst, size_t dstlen, const char *src, size_t srclen);

/* 1 if the n bytes of s are valid UTF-8 (no overlong forms, no surrogates,
 * nothing above U+10FFFF), else 0. */
int d2g_text_valid_utf8(const char *s, size_t n);

/*
 * Replaces in place every occurrence of each secret (those of 4 bytes or
 * more; NULL entries and shorter ones skipped) in the NUL-terminated s by
 * "***". s can only shrink or stay the same length.
 */
void d2g_text_scrub(char *s, const char *const *secrets, size_t n_secrets);

/* A JSON string of s cleaned by d2g_text_copy (whole, whatever its length);
 * NULL s gives JSON null. Never NULL: a field is never silently dropped. */
struct json_t;
struct json_t *d2g_text_json(const char *s);

/* The length of the longest prefix of the NUL-terminated s of at most max
 * bytes that ends at a UTF-8 character boundary (for cutting a valid text). */
size_t d2g_text_prefix(const char *s, size_t max);

#endif
