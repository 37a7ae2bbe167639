/* echo_proto.h: what the echo server and its load client agree on.
 *
 * Wire protocol (text, one line per message, '\n'-terminated, over TCP):
 *
 *   client: "<n> <seed>"   n bytes (decimal, 0 .. ECHO_MAX_BYTES), seed (a
 *                          decimal 64-bit unsigned number)
 *   server: "ok <checksum>"   16 lowercase hex digits: FNV-1a 64 of the n
 *                             bytes of the stream of `seed` (below)
 *           "err <reason>"    a request the server could not serve; the
 *                             connection stays open
 *   client: "quit"         the server answers "bye" and shuts down
 *
 * The byte stream of a seed is the sequence of splitmix64 outputs for that
 * seed, each written out least significant byte first.  Both programs
 * compute it; the server does so the expensive way (in many heap buffers,
 * which is the point of the example), the client in a fixed stack buffer.
 *
 * Everything here is static inline: the header has no object file. */
#ifndef ECHO_PROTO_H
#define ECHO_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define ECHO_MAX_BYTES ((uint64_t)16 << 20) /* largest n a request may ask */
#define ECHO_MAX_LINE 128                   /* longest line, '\n' included */

/* splitmix64 (Steele, Lea, Flood 2014): small, fast, and good enough for
 * test data.  Not a cryptographic generator. */
static inline uint64_t echo_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* The byte stream of a seed, readable in pieces of any length: reading
 * 3 + 5 bytes gives the same 8 bytes as reading 8 at once. */
struct echo_stream {
    uint64_t state;
    uint64_t word;     /* the current splitmix64 output, consumed bytes shifted out */
    unsigned left;     /* bytes of `word` not consumed yet */
};

static inline void echo_stream_init(struct echo_stream *s, uint64_t seed)
{
    s->state = seed;
    s->word = 0;
    s->left = 0;
}

static inline void echo_stream_read(struct echo_stream *s, unsigned char *dst, size_t len)
{
    while (len > 0) {
        if (s->left == 0) {
            s->word = echo_splitmix64(&s->state);
            s->left = 8;
        }
        *dst++ = (unsigned char)s->word;
        s->word >>= 8;
        s->left--;
        len--;
    }
}

/* FNV-1a, 64 bits, fed incrementally: start from ECHO_FNV_INIT. */
#define ECHO_FNV_INIT UINT64_C(0xcbf29ce484222325)

static inline uint64_t echo_fnv1a(uint64_t hash, const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        hash ^= p[i];
        hash *= UINT64_C(0x100000001b3);
    }
    return hash;
}

#endif
