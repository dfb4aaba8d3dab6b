/* md5.c - MD5 (RFC 1321), streamed; see md5.h. */
#include "ds2grist/md5.h"

#include <string.h>

static const uint32_t K[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391};
static const unsigned char R[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                    5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                                    4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                    6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};

static void block(uint32_t s[4], const unsigned char *p) {
    uint32_t w[16], a = s[0], b = s[1], c = s[2], d = s[3];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
               (uint32_t)p[4 * i + 3] << 24;
    for (int i = 0; i < 64; i++) {
        uint32_t f;
        int g;
        if (i < 16)
            f = (b & c) | (~b & d), g = i;
        else if (i < 32)
            f = (d & b) | (~d & c), g = (5 * i + 1) % 16;
        else if (i < 48)
            f = b ^ c ^ d, g = (3 * i + 5) % 16;
        else
            f = c ^ (b | ~d), g = (7 * i) % 16;
        uint32_t t = d;
        d = c;
        c = b;
        uint32_t x = a + f + K[i] + w[g];
        b = b + (x << R[i] | x >> (32 - R[i]));
        a = t;
    }
    s[0] += a, s[1] += b, s[2] += c, s[3] += d;
}

void d2g_md5_init(d2g_md5_t *m) {
    m->state[0] = 0x67452301, m->state[1] = 0xefcdab89, m->state[2] = 0x98badcfe,
    m->state[3] = 0x10325476;
    m->bytes = 0;
}

void d2g_md5_update(d2g_md5_t *m, const void *data, size_t len) {
    const unsigned char *p = data;
    size_t have = (size_t)(m->bytes % 64);
    m->bytes += len;
    if (have) {
        size_t n = 64 - have < len ? 64 - have : len;
        memcpy(m->buf + have, p, n);
        p += n, len -= n, have += n;
        if (have < 64)
            return;
        block(m->state, m->buf);
    }
    for (; len >= 64; p += 64, len -= 64)
        block(m->state, p);
    memcpy(m->buf, p, len);
}

void d2g_md5_final(d2g_md5_t *m, unsigned char out[16]) {
    uint64_t bits = m->bytes * 8;
    unsigned char pad[72] = {0x80};
    size_t have = (size_t)(m->bytes % 64), n = have < 56 ? 56 - have : 120 - have;
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(bits >> (8 * i));
    d2g_md5_update(m, pad, n);
    d2g_md5_update(m, len, 8);
    for (int i = 0; i < 16; i++)
        out[i] = (unsigned char)(m->state[i / 4] >> (8 * (i % 4)));
}

void d2g_md5_base64(d2g_md5_t *m, char out[25]) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char d[18] = {0};
    d2g_md5_final(m, d);
    for (int i = 0, o = 0; i < 18; i += 3, o += 4) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        out[o] = A[v >> 18 & 63], out[o + 1] = A[v >> 12 & 63], out[o + 2] = A[v >> 6 & 63],
        out[o + 3] = A[v & 63];
    }
    out[22] = out[23] = '='; /* 16 bytes: the last group holds one byte */
    out[24] = 0;
}
