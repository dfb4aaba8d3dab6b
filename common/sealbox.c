/* sealbox.c - secrets encrypted at rest with crypto_secretbox_easy, see sealbox.h. */
#include "ds2grist/sealbox.h"
#include "ds2grist/alloc.h"
#include "ds2grist/err.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX "sb1:"

struct d2g_sealbox {
    unsigned char key[crypto_secretbox_KEYBYTES];
};

d2g_sealbox_t *d2g_sealbox_new(const char *hex, char *err, size_t errlen) {
    if (sodium_init() < 0) {
        d2g_err_set(err, errlen, "libsodium cannot start");
        return NULL;
    }
    d2g_sealbox_t *sb = sodium_malloc(sizeof(*sb));
    if (!sb) {
        d2g_err_set(err, errlen, "out of memory");
        return NULL;
    }
    size_t n = 0;
    const char *end = NULL;
    if (!hex || strlen(hex) != 2 * crypto_secretbox_KEYBYTES ||
        sodium_hex2bin(sb->key, sizeof(sb->key), hex, strlen(hex), NULL, &n, &end) != 0 ||
        n != sizeof(sb->key) || (end && *end)) {
        sodium_free(sb);
        d2g_err_set(err, errlen, "the encryption key must be 64 hexadecimal digits");
        return NULL;
    }
    sodium_mlock(sb, sizeof(*sb));
    return sb;
}

void d2g_sealbox_free(d2g_sealbox_t *sb) {
    if (sb)
        sodium_free(sb); /* wipes */
}

char *d2g_sealbox_seal(const d2g_sealbox_t *sb, const char *plain, char *err, size_t errlen) {
    size_t pl = strlen(plain);
    size_t bl = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + pl;
    unsigned char *box = d2g_malloc(bl);
    randombytes_buf(box, crypto_secretbox_NONCEBYTES);
    if (crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, (const unsigned char *)plain, pl,
                              box, sb->key) != 0) {
        free(box);
        d2g_err_set(err, errlen, "encryption failed");
        return NULL;
    }
    size_t el = sodium_base64_ENCODED_LEN(bl, sodium_base64_VARIANT_ORIGINAL);
    char *out = d2g_malloc(strlen(PREFIX) + el);
    memcpy(out, PREFIX, strlen(PREFIX));
    sodium_bin2base64(out + strlen(PREFIX), el, box, bl, sodium_base64_VARIANT_ORIGINAL);
    free(box);
    return out;
}

char *d2g_sealbox_open(const d2g_sealbox_t *sb, const char *sealed, char *err, size_t errlen) {
    if (!sealed || strncmp(sealed, PREFIX, strlen(PREFIX)) != 0) {
        d2g_err_set(err, errlen, "not a sealed value");
        return NULL;
    }
    const char *b64 = sealed + strlen(PREFIX);
    size_t cap = strlen(b64), bl = 0;
    unsigned char *box = d2g_malloc(cap + 1);
    if (sodium_base642bin(box, cap, b64, strlen(b64), NULL, &bl, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        bl < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES) {
        free(box);
        d2g_err_set(err, errlen, "not a sealed value");
        return NULL;
    }
    size_t pl = bl - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
    char *plain = d2g_malloc(pl + 1);
    if (crypto_secretbox_open_easy((unsigned char *)plain, box + crypto_secretbox_NONCEBYTES,
                                   bl - crypto_secretbox_NONCEBYTES, box, sb->key) != 0) {
        free(box);
        free(plain);
        d2g_err_set(err, errlen, "wrong key or altered value");
        return NULL;
    }
    free(box);
    plain[pl] = '\0';
    return plain;
}

void d2g_sealbox_tag(const d2g_sealbox_t *sb, const char *prefix, const char *secret, char *out,
                     size_t outlen) {
    unsigned char h[8];
    char hex[2 * sizeof(h) + 1];
    crypto_generichash(h, sizeof(h), (const unsigned char *)secret, strlen(secret), sb->key,
                       sizeof(sb->key));
    sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
    snprintf(out, outlen, "%s%s", prefix, hex);
}
