/*
 * sealbox.h - secrets encrypted at rest: the DS tokens agents give through
 * the onboarding API, stored in the registry (Redis and its Kafka copy).
 *
 * libsodium's crypto_secretbox_easy (XSalsa20-Poly1305) with a 32-byte key
 * from registry.encryption_key (64 hex digits, a Kubernetes Secret), a random
 * nonce per value. A sealed value is "sb1:" + base64(nonce || ciphertext):
 * text, safe to put in JSON. Opening checks the MAC, so a value altered in
 * Redis or Kafka is refused rather than decrypted to garbage. The key lives in
 * sodium_malloc'ed, locked memory, wiped on free. Errors never hold a secret.
 */
#ifndef D2G_SEALBOX_H
#define D2G_SEALBOX_H

#include <stddef.h>

typedef struct d2g_sealbox d2g_sealbox_t;

/* hex: 64 hexadecimal digits. NULL with err on a bad key or libsodium failure. */
d2g_sealbox_t *d2g_sealbox_new(const char *hex, char *err, size_t errlen);
void d2g_sealbox_free(d2g_sealbox_t *sb);
/* A malloc'ed "sb1:..." text (free()), or NULL with err. */
char *d2g_sealbox_seal(const d2g_sealbox_t *sb, const char *plain, char *err, size_t errlen);
/* The plaintext, malloc'ed (free with d2g_secret_free), or NULL with err
 * ("not a sealed value", "wrong key or altered value"). */
char *d2g_sealbox_open(const d2g_sealbox_t *sb, const char *sealed, char *err, size_t errlen);
/* A stable, non-reversible name for a secret: "<prefix>" + 16 hex digits of a
 * BLAKE2b keyed with the box's key (so the same DS token always gets the same
 * name, and its budget is shared, without the name revealing it). out gets
 * at most outlen bytes. */
void d2g_sealbox_tag(const d2g_sealbox_t *sb, const char *prefix, const char *secret, char *out,
                     size_t outlen);

#endif
