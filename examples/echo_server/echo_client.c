/* echo_client: load generator and verifier for echo_server.
 *
 *   echo_client [-c CONNECTIONS] [-n REQUESTS] [-m MAX_BYTES] [-s SEED] [-a ADDR] PORT
 *   echo_client -q [-a ADDR] PORT
 *
 * Opens CONNECTIONS connections (default 8), one thread each, and sends
 * REQUESTS requests (default 200) on each, one at a time: "<n> <seed>" with
 * n spread over every scale from 0 to MAX_BYTES (default 65536) and a
 * random seed.  Each answer's checksum is checked against the client's own
 * computation of the same bytes (echo_proto.h), made without the heap.
 * Prints the request rate; exits 0 when every answer was right, 1 if any
 * was wrong or missing, 2 on a usage error.
 *
 * -q sends "quit" instead, which shuts the server down; exits 0 when the
 * server said "bye".
 *
 * The client does not link brisk: it checks the server's allocator, so it
 * keeps the C library's own. */
#define _POSIX_C_SOURCE 200809L

#include "echo_proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 1024
#define REPLY_TIMEOUT_S 30 /* a server that does not answer for this long has failed */

static struct sockaddr_in server_addr;

/* ---- one connection ----------------------------------------------------- */

struct conn {
    int fd;
    char buf[ECHO_MAX_LINE];
    size_t len;
};

static int conn_open(struct conn *c)
{
    struct timeval timeout = { .tv_sec = REPLY_TIMEOUT_S };
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        return -1;
    if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) != 0 ||
        connect(c->fd, (const struct sockaddr *)&server_addr, sizeof server_addr) != 0) {
        int saved = errno;
        close(c->fd);
        errno = saved;
        return -1;
    }
    return 0;
}

static int conn_send(struct conn *c, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The next line, without its '\n', into line[ECHO_MAX_LINE]; -1 on error,
 * end of file or timeout (errno says which, 0 for end of file). */
static int conn_read_line(struct conn *c, char *line)
{
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl) {
            size_t n = (size_t)(nl - c->buf);
            memcpy(line, c->buf, n);
            line[n] = '\0';
            c->len -= n + 1;
            memmove(c->buf, nl + 1, c->len);
            return 0;
        }
        if (c->len == sizeof c->buf) {
            errno = EMSGSIZE;
            return -1;
        }
        ssize_t got = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (got == 0) {
            errno = 0;
            return -1;
        }
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        c->len += (size_t)got;
    }
}

/* ---- the expected answer --------------------------------------------------- */

static uint64_t expected_checksum(uint64_t n, uint64_t seed)
{
    unsigned char block[4096];
    struct echo_stream bytes;
    uint64_t hash = ECHO_FNV_INIT;

    echo_stream_init(&bytes, seed);
    while (n > 0) {
        size_t len = n < sizeof block ? (size_t)n : sizeof block;
        echo_stream_read(&bytes, block, len);
        hash = echo_fnv1a(hash, block, len);
        n -= len;
    }
    return hash;
}

/* A request size: a bit length from 0 to that of max, then a size of at most
 * that many bits, so that 10-byte and 50-KiB requests are equally common. */
static uint64_t pick_size(uint64_t *rng, uint64_t max)
{
    unsigned bits = 0;
    while (bits < 64 && (max >> bits) != 0)
        bits++;
    unsigned k = (unsigned)(echo_splitmix64(rng) % (bits + 1));
    uint64_t n = k == 0 ? 0 : echo_splitmix64(rng) >> (64 - k);
    return n < max ? n : max;
}

/* ---- the load threads ------------------------------------------------------ */

struct worker {
    pthread_t thread;
    unsigned index;
    unsigned requests;
    uint64_t max_bytes;
    uint64_t rng;
    /* results */
    unsigned verified, mismatches, errors;
    uint64_t bytes;
    char problem[512]; /* the first thing that went wrong */
};

#define PROBLEM(w, ...)                                           \
    do {                                                          \
        if ((w)->problem[0] == '\0')                              \
            snprintf((w)->problem, sizeof (w)->problem, __VA_ARGS__); \
    } while (0)

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct conn c;
    char request[64], reply[ECHO_MAX_LINE];

    if (conn_open(&c) != 0) {
        PROBLEM(w, "connection %u: connect: %s", w->index, strerror(errno));
        w->errors = w->requests;
        return NULL;
    }
    for (unsigned i = 0; i < w->requests; i++) {
        uint64_t n = pick_size(&w->rng, w->max_bytes);
        uint64_t seed = echo_splitmix64(&w->rng);
        int len = snprintf(request, sizeof request, "%" PRIu64 " %" PRIu64 "\n", n, seed);

        if (conn_send(&c, request, (size_t)len) != 0 || conn_read_line(&c, reply) != 0) {
            PROBLEM(w, "connection %u, request %u: %s", w->index, i,
                    errno == 0 ? "the server closed the connection"
                    : errno == EAGAIN || errno == EWOULDBLOCK ? "no answer in time"
                    : strerror(errno));
            w->errors += w->requests - i; /* this one and those not sent */
            break;
        }

        char want[32];
        snprintf(want, sizeof want, "ok %016" PRIx64, expected_checksum(n, seed));
        if (strcmp(reply, want) == 0) {
            w->verified++;
            w->bytes += n;
        } else if (strncmp(reply, "ok ", 3) == 0) {
            w->mismatches++;
            PROBLEM(w, "connection %u, request \"%" PRIu64 " %" PRIu64 "\": got \"%s\", expected \"%s\"",
                    w->index, n, seed, reply, want);
        } else {
            w->errors++;
            PROBLEM(w, "connection %u, request \"%" PRIu64 " %" PRIu64 "\": got \"%s\"",
                    w->index, n, seed, reply);
        }
    }
    close(c.fd);
    return NULL;
}

/* ---- main ------------------------------------------------------------------ */

static int send_quit(void)
{
    struct conn c;
    char reply[ECHO_MAX_LINE];

    if (conn_open(&c) != 0) {
        fprintf(stderr, "echo_client: connect: %s\n", strerror(errno));
        return 1;
    }
    int rc = conn_send(&c, "quit\n", 5) == 0 && conn_read_line(&c, reply) == 0 &&
                     strcmp(reply, "bye") == 0
                 ? 0
                 : 1;
    close(c.fd);
    printf("echo_client: quit: %s\n", rc == 0 ? "the server said bye" : "no \"bye\" from the server");
    return rc;
}

static unsigned long parse_number(const char *s, unsigned long min, unsigned long max)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || s[0] == '\0' || v < min || v > max) {
        fprintf(stderr, "echo_client: bad number '%s' (%lu .. %lu)\n", s, min, max);
        exit(2);
    }
    return v;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: echo_client [-c CONNECTIONS] [-n REQUESTS] [-m MAX_BYTES] [-s SEED] [-a ADDR] PORT\n"
            "       echo_client -q [-a ADDR] PORT\n"
            "  -c  connections, one thread each (default 8)\n"
            "  -n  requests per connection (default 200)\n"
            "  -m  largest response a request asks for, in bytes (default 65536)\n"
            "  -s  seed of the request sizes and seeds (default 1)\n"
            "  -a  server address (default 127.0.0.1)\n"
            "  -q  ask the server to shut down\n");
    exit(2);
}

int main(int argc, char **argv)
{
    unsigned connections = 8, requests = 200;
    uint64_t max_bytes = 65536, seed = 1;
    const char *addr = "127.0.0.1";
    bool quit = false;
    int opt;

    while ((opt = getopt(argc, argv, "c:n:m:s:a:q")) != -1) {
        switch (opt) {
        case 'c': connections = (unsigned)parse_number(optarg, 1, MAX_CONNECTIONS); break;
        case 'n': requests = (unsigned)parse_number(optarg, 1, 10000000); break;
        case 'm': max_bytes = parse_number(optarg, 0, ECHO_MAX_BYTES); break;
        case 's': seed = parse_number(optarg, 0, (unsigned long)-1); break;
        case 'a': addr = optarg; break;
        case 'q': quit = true; break;
        default: usage();
        }
    }
    if (optind != argc - 1)
        usage();
    server_addr.sin_family = AF_INET;
    server_addr.sin_port = htons((uint16_t)parse_number(argv[optind], 1, 65535));
    if (inet_pton(AF_INET, addr, &server_addr.sin_addr) != 1) {
        fprintf(stderr, "echo_client: bad IPv4 address '%s'\n", addr);
        return 2;
    }
    if (quit)
        return send_quit();

    struct worker *workers = calloc(connections, sizeof *workers);
    if (!workers) {
        perror("echo_client: calloc");
        return 1;
    }
    printf("echo_client: %u connections x %u requests to %s:%s, responses of 0 .. %" PRIu64 " bytes\n",
           connections, requests, addr, argv[optind], max_bytes);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned started = 0;
    for (; started < connections; started++) {
        struct worker *w = &workers[started];
        w->index = started;
        w->requests = requests;
        w->max_bytes = max_bytes;
        w->rng = seed + UINT64_C(0x632be59bd9b4e019) * (started + 1);
        int err = pthread_create(&w->thread, NULL, worker_main, w);
        if (err != 0) {
            fprintf(stderr, "echo_client: pthread_create: %s\n", strerror(err));
            break;
        }
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(workers[i].thread, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);

    uint64_t verified = 0, mismatches = 0, errors = 0, bytes = 0;
    for (unsigned i = 0; i < connections; i++) {
        struct worker *w = &workers[i];
        if (i >= started)
            w->errors = requests; /* never ran */
        verified += w->verified;
        mismatches += w->mismatches;
        errors += w->errors;
        bytes += w->bytes;
        if (w->problem[0] != '\0')
            fprintf(stderr, "echo_client: %s\n", w->problem);
    }
    free(workers);

    double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    uint64_t total = (uint64_t)connections * requests;
    printf("echo_client: %" PRIu64 " requests in %.3f s: %.0f requests/s, %.1f MB/s of responses checked\n",
           verified + mismatches, seconds, (double)(verified + mismatches) / seconds,
           (double)bytes / 1e6 / seconds);
    if (verified == total) {
        printf("echo_client: OK: all %" PRIu64 " checksums verified\n", total);
        return 0;
    }
    printf("echo_client: FAILED: %" PRIu64 " of %" PRIu64 " verified, %" PRIu64 " wrong checksums, "
           "%" PRIu64 " errors\n", verified, total, mismatches, errors);
    return 1;
}
