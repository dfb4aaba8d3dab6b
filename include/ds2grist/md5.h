/*
 * md5.h - MD5 (RFC 1321), streamed: the checksum DS (ActiveStorage) gives its files,
 * base64 of the digest, which the worker checks downloads against. Not for security:
 * only to tell that the bytes received are the file DS described.
 */
#ifndef D2G_MD5_H
#define D2G_MD5_H

#include <stddef.h>
#include <stdint.h>

typedef struct d2g_md5 {
    uint32_t state[4];
    uint64_t bytes;
    unsigned char buf[64];
} d2g_md5_t;

void d2g_md5_init(d2g_md5_t *m);
void d2g_md5_update(d2g_md5_t *m, const void *data, size_t len);
/* The 16-byte digest; m is spent. */
void d2g_md5_final(d2g_md5_t *m, unsigned char out[16]);
/* The digest as standard base64 with padding (24 characters + NUL), as DS's checksum. */
void d2g_md5_base64(d2g_md5_t *m, char out[25]);

#endif
