/* echo_server: a thread-pool TCP server linked with brisk.
 *
 * The shape of many real servers: one thread accepts connections and puts
 * them on a queue, a fixed pool of worker threads takes them off and serves
 * them, and every request allocates and frees heap memory of all sizes on
 * whichever worker serves it.  That is the load a thread-caching allocator
 * is built for, and the only thing this program does to get brisk is to
 * link it (-lbrisk, or brisk::brisk in CMake): malloc, calloc, realloc and
 * free below are brisk's.  The one brisk-specific call is brisk_stats(), to
 * show at start-up that malloc() really is served by brisk, and at exit
 * what the heap looks like.
 *
 *   echo_server [-t THREADS] [-v] PORT
 *
 * Listens on 127.0.0.1:PORT (0: a free port, printed).  Protocol: see
 * echo_proto.h.  A request "<n> <seed>" makes the server build the n bytes
 * of the seed's stream in a list of heap buffers of varying sizes (malloc,
 * calloc, realloc up and down), checksum them, free them and answer
 * "ok <checksum>".  SIGTERM, SIGINT or a "quit" request shut it down: it
 * stops accepting, lets each worker finish the request in hand, joins the
 * workers, frees everything and exits with status 0. */
#define _POSIX_C_SOURCE 200809L

#include <brisk.h>

#include "echo_proto.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_WORKERS 4
#define MAX_WORKERS 256
#define QUEUE_CAPACITY 128 /* accepted connections waiting for a worker */

/* ---- shutdown ----------------------------------------------------------
 *
 * One pipe, written to when the server must stop and never read: once a
 * byte is in it, its read end stays readable, so every thread that polls it
 * (the acceptor and each worker waiting for a request) wakes up and sees
 * the same answer.  write() is async-signal-safe, so the signal handler can
 * use it too. */
static int stop_pipe[2] = { -1, -1 };
static volatile sig_atomic_t stop_signal; /* the signal that stopped us, or 0 */

static void request_stop(void)
{
    const char byte = 1;
    /* Non-blocking: a full pipe means the stop was requested already. */
    ssize_t ignored = write(stop_pipe[1], &byte, 1);
    (void)ignored;
}

static void on_stop_signal(int sig)
{
    int saved_errno = errno;
    stop_signal = sig;
    request_stop();
    errno = saved_errno;
}

/* ---- the connection queue -------------------------------------------- */

struct conn_queue {
    pthread_mutex_t lock;
    pthread_cond_t nonempty;
    int fds[QUEUE_CAPACITY];
    size_t head, count;
    bool closed; /* no more connections: workers exit */
};

static void queue_init(struct conn_queue *q)
{
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->nonempty, NULL);
    q->head = q->count = 0;
    q->closed = false;
}

/* False when the queue is full (the caller turns the client away). */
static bool queue_push(struct conn_queue *q, int fd)
{
    pthread_mutex_lock(&q->lock);
    bool ok = q->count < QUEUE_CAPACITY;
    if (ok) {
        q->fds[(q->head + q->count) % QUEUE_CAPACITY] = fd;
        q->count++;
        pthread_cond_signal(&q->nonempty);
    }
    pthread_mutex_unlock(&q->lock);
    return ok;
}

/* The next connection, or -1 once the queue is closed. */
static int queue_pop(struct conn_queue *q)
{
    int fd = -1;
    pthread_mutex_lock(&q->lock);
    while (q->count == 0 && !q->closed)
        pthread_cond_wait(&q->nonempty, &q->lock);
    if (!q->closed) {
        fd = q->fds[q->head];
        q->head = (q->head + 1) % QUEUE_CAPACITY;
        q->count--;
    }
    pthread_mutex_unlock(&q->lock);
    return fd;
}

static void queue_close(struct conn_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = true;
    pthread_cond_broadcast(&q->nonempty);
    pthread_mutex_unlock(&q->lock);
}

/* After the workers are gone: close the connections nobody served. */
static void queue_destroy(struct conn_queue *q)
{
    for (; q->count > 0; q->count--) {
        close(q->fds[q->head]);
        q->head = (q->head + 1) % QUEUE_CAPACITY;
    }
    pthread_cond_destroy(&q->nonempty);
    pthread_mutex_destroy(&q->lock);
}

/* ---- the server ------------------------------------------------------- */

struct server {
    int listen_fd;
    struct conn_queue queue;
    atomic_uint_fast64_t connections;
    atomic_uint_fast64_t requests;
    atomic_uint_fast64_t failed;   /* requests answered with "err" */
    atomic_uint_fast64_t bytes;    /* response bytes built */
    atomic_bool calloc_dirty;      /* calloc() ever returned non-zero memory */
};

static void count(atomic_uint_fast64_t *counter, uint64_t n)
{
    atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

/* ---- building a response: where the allocations happen ---------------
 *
 * A response is a list of chunks whose concatenation is the n bytes of the
 * seed's stream.  The chunk sizes come from a second generator (so that the
 * bytes do not depend on how they are cut up) and are mixed like a real
 * server's buffers: mostly small, often a few KiB, now and then hundreds of
 * KiB.  Each chunk is made one of four ways, to exercise the whole malloc
 * family: malloc; calloc (checked to come back zeroed); malloc of half and
 * realloc up to the full size; malloc of too much and realloc down. */

struct chunk {
    unsigned char *data;
    size_t len;
};

struct response {
    struct chunk *chunks;
    size_t count, capacity;
};

static void response_free(struct response *r)
{
    for (size_t i = 0; i < r->count; i++)
        free(r->chunks[i].data);
    free(r->chunks);
    r->chunks = NULL;
    r->count = r->capacity = 0;
}

static bool response_append(struct response *r, unsigned char *data, size_t len)
{
    if (r->count == r->capacity) {
        size_t capacity = r->capacity ? 2 * r->capacity : 4;
        struct chunk *grown = realloc(r->chunks, capacity * sizeof *grown);
        if (!grown)
            return false;
        r->chunks = grown;
        r->capacity = capacity;
    }
    r->chunks[r->count++] = (struct chunk){ .data = data, .len = len };
    return true;
}

/* The length of the next chunk (at most `remaining`) and how to make it. */
static size_t next_chunk(uint64_t *shape, size_t remaining, unsigned *how)
{
    uint64_t r = echo_splitmix64(shape);
    size_t len;
    switch (r & 7) {
    case 0: case 1: case 2: case 3:           /* 1 B .. 256 B */
        len = 1 + (size_t)((r >> 8) % 256);
        break;
    case 4: case 5: case 6:                   /* 257 B .. 8 KiB */
        len = 257 + (size_t)((r >> 8) % 8192);
        break;
    default:                                  /* 8 KiB .. 264 KiB */
        len = 8449 + (size_t)((r >> 8) % (256 * 1024));
        break;
    }
    *how = (unsigned)(r >> 40) & 3;
    return len < remaining ? len : remaining;
}

/* A chunk of len (> 0) bytes holding the next len bytes of the stream, or
 * NULL when out of memory. */
static unsigned char *make_chunk(struct server *srv, struct echo_stream *bytes,
                                 size_t len, unsigned how)
{
    unsigned char *p, *q;
    size_t half = len / 2;

    switch (how) {
    case 0: /* malloc */
        p = malloc(len);
        if (p)
            echo_stream_read(bytes, p, len);
        return p;
    case 1: /* calloc: zeroed, or the allocator is broken */
        p = calloc(len, 1);
        if (!p)
            return NULL;
        for (size_t i = 0; i < len; i++) {
            if (p[i] != 0) {
                atomic_store(&srv->calloc_dirty, true);
                break;
            }
        }
        echo_stream_read(bytes, p, len);
        return p;
    case 2: /* grow: the first half, realloc, the rest (the first half must survive the move) */
        p = malloc(half > 0 ? half : 1);
        if (!p)
            return NULL;
        echo_stream_read(bytes, p, half);
        q = realloc(p, len);
        if (!q) {
            free(p);
            return NULL;
        }
        echo_stream_read(bytes, q + half, len - half);
        return q;
    default: /* shrink: too much, filled, realloc down to len */
        p = malloc(len + half + 64);
        if (!p)
            return NULL;
        echo_stream_read(bytes, p, len);
        q = realloc(p, len);
        return q ? q : p; /* a failed shrink leaves p intact and big enough */
    }
}

/* Serve "<n> <seed>": the checksum, or false when out of memory or when
 * calloc misbehaved (the caller answers "err"). */
static bool build_response(struct server *srv, uint64_t n, uint64_t seed, uint64_t *checksum)
{
    struct response r = { 0 };
    struct echo_stream bytes;
    uint64_t shape = seed ^ UINT64_C(0x5851f42d4c957f2d);
    bool ok = true;

    echo_stream_init(&bytes, seed);
    for (size_t done = 0; ok && done < n;) {
        unsigned how;
        size_t len = next_chunk(&shape, (size_t)(n - done), &how);
        unsigned char *data = make_chunk(srv, &bytes, len, how);
        if (!data || !response_append(&r, data, len)) {
            free(data);
            ok = false;
        }
        done += len;
    }

    /* The whole response is in memory now, as it would be before a
     * server writes it out.  Checksum it in order, then let it go. */
    uint64_t hash = ECHO_FNV_INIT;
    for (size_t i = 0; ok && i < r.count; i++)
        hash = echo_fnv1a(hash, r.chunks[i].data, r.chunks[i].len);
    response_free(&r);

    *checksum = hash;
    if (ok)
        count(&srv->bytes, n);
    return ok && !atomic_load(&srv->calloc_dirty);
}

/* ---- a connection ------------------------------------------------------ */

static bool send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

struct line_reader {
    char buf[ECHO_MAX_LINE];
    size_t len;
};

enum read_result { READ_LINE, READ_EOF, READ_STOP, READ_TOO_LONG, READ_ERROR };

/* The next line from fd, without its '\n' (and '\r', for telnet), into
 * line[ECHO_MAX_LINE].  Waits for it unless the server is stopping. */
static enum read_result read_line(int fd, struct line_reader *rd, char *line)
{
    for (;;) {
        char *nl = memchr(rd->buf, '\n', rd->len);
        if (nl) {
            size_t n = (size_t)(nl - rd->buf);
            memcpy(line, rd->buf, n);
            line[n] = '\0';
            if (n > 0 && line[n - 1] == '\r')
                line[n - 1] = '\0';
            rd->len -= n + 1;
            memmove(rd->buf, nl + 1, rd->len);
            return READ_LINE;
        }
        if (rd->len == sizeof rd->buf)
            return READ_TOO_LONG;

        struct pollfd p[2] = {
            { .fd = fd, .events = POLLIN },
            { .fd = stop_pipe[0], .events = POLLIN },
        };
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return READ_ERROR;
        }
        if (p[1].revents)
            return READ_STOP;
        ssize_t got = recv(fd, rd->buf + rd->len, sizeof rd->buf - rd->len, 0);
        if (got == 0)
            return READ_EOF;
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return READ_ERROR;
        }
        rd->len += (size_t)got;
    }
}

/* "<n> <seed>", both decimal, nothing else. */
static bool parse_request(const char *line, uint64_t *n, uint64_t *seed)
{
    char *end;
    unsigned long long a, b;

    if (!isdigit((unsigned char)line[0]))
        return false;
    errno = 0;
    a = strtoull(line, &end, 10);
    if (errno != 0 || *end != ' ' || !isdigit((unsigned char)end[1]))
        return false;
    b = strtoull(end + 1, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *n = a;
    *seed = b;
    return true;
}

static void serve_connection(struct server *srv, int fd)
{
    struct line_reader rd = { .len = 0 };
    char line[ECHO_MAX_LINE];
    char reply[64];

    count(&srv->connections, 1);
    for (;;) {
        enum read_result got = read_line(fd, &rd, line);
        if (got == READ_TOO_LONG)
            send_all(fd, "err line too long\n", 18);
        if (got != READ_LINE)
            return;

        if (strcmp(line, "quit") == 0) {
            send_all(fd, "bye\n", 4);
            request_stop();
            return;
        }

        uint64_t n, seed, checksum;
        count(&srv->requests, 1);
        if (!parse_request(line, &n, &seed)) {
            snprintf(reply, sizeof reply, "err expected \"<n> <seed>\"\n");
            count(&srv->failed, 1);
        } else if (n > ECHO_MAX_BYTES) {
            snprintf(reply, sizeof reply, "err n above %" PRIu64 "\n", ECHO_MAX_BYTES);
            count(&srv->failed, 1);
        } else if (!build_response(srv, n, seed, &checksum)) {
            snprintf(reply, sizeof reply, "err %s\n",
                     atomic_load(&srv->calloc_dirty) ? "calloc returned non-zeroed memory"
                                                     : "out of memory");
            count(&srv->failed, 1);
        } else {
            snprintf(reply, sizeof reply, "ok %016" PRIx64 "\n", checksum);
        }
        if (!send_all(fd, reply, strlen(reply)))
            return;
    }
}

static void *worker_main(void *arg)
{
    struct server *srv = arg;
    int fd;
    while ((fd = queue_pop(&srv->queue)) >= 0) {
        serve_connection(srv, fd);
        close(fd);
    }
    return NULL;
}

/* ---- start-up and shut-down ------------------------------------------- */

/* Say which allocator we run with, and check it rather than assume it:
 * brisk_stats() reports brisk's heap, so a block taken with plain malloc()
 * must show up in it.  (If another allocator were interposed, say with
 * LD_PRELOAD, malloc() would not be brisk's and the count would not move.) */
static void report_allocator(void)
{
    static struct brisk_stats before, after; /* ~5 KiB each: not on the stack */
    const size_t probe = 1 << 20;

    brisk_stats(&before);
    void *volatile block = malloc(probe); /* volatile: not optimized away */
    brisk_stats(&after);
    bool got = block != NULL;
    free(block);

    size_t grew = after.allocated - before.allocated;
    printf("echo_server: allocator: brisk (brisk.h %d.%d.%d), %zu size classes\n",
           BRISK_VERSION_MAJOR, BRISK_VERSION_MINOR, BRISK_VERSION_PATCH, after.nclasses);
    if (got && grew >= probe)
        printf("echo_server: malloc() is served by brisk: a %zu-byte malloc() raised "
               "brisk_stats().allocated by %zu bytes\n", probe, grew);
    else
        printf("echo_server: WARNING: brisk is linked but malloc() is not served by it "
               "(brisk_stats().allocated moved by %zu bytes for a %zu-byte malloc())\n",
               grew, probe);
}

static size_t allocated_now(void)
{
    static struct brisk_stats st;
    brisk_stats(&st);
    return st.allocated;
}

/* At exit, after everything the server allocated has been freed, the heap
 * holds what it held when the server became ready: the C library's and the
 * C++ runtime's own blocks (stdio buffers, thread descriptors, ...). */
static void report_heap(size_t allocated_when_ready, bool verbose)
{
    static struct brisk_stats st;
    brisk_stats(&st);
    printf("echo_server: brisk heap at exit: %zu bytes allocated (%zu when ready), %zu KiB mapped, "
           "%zu KiB released to the kernel, %zu thread caches\n",
           st.allocated, allocated_when_ready, st.mapped / 1024, st.released / 1024,
           st.thread_caches);
    if (verbose)
        brisk_stats_print(stdout, 0);
}

static int make_stop_pipe(void)
{
    if (pipe(stop_pipe) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        if (fcntl(stop_pipe[i], F_SETFL, O_NONBLOCK) != 0 ||
            fcntl(stop_pipe[i], F_SETFD, FD_CLOEXEC) != 0)
            return -1;
    }
    return 0;
}

static int listen_on(unsigned port, unsigned *bound_port)
{
    struct sockaddr_in addr = {
        .sin_family = AF_INET,
        .sin_port = htons((uint16_t)port),
        .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
    };
    socklen_t addr_len = sizeof addr;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0) {
        perror("echo_server: socket");
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(fd, 128) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &addr_len) != 0) {
        fprintf(stderr, "echo_server: cannot listen on 127.0.0.1:%u: %s\n", port, strerror(errno));
        close(fd);
        return -1;
    }
    *bound_port = ntohs(addr.sin_port);
    return fd;
}

/* Accept until told to stop.  Returns 0, or -1 on an unexpected error. */
static int accept_loop(struct server *srv)
{
    for (;;) {
        struct pollfd p[2] = {
            { .fd = srv->listen_fd, .events = POLLIN },
            { .fd = stop_pipe[0], .events = POLLIN },
        };
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue; /* a signal: the stop pipe says whether to stop */
            perror("echo_server: poll");
            return -1;
        }
        if (p[1].revents)
            return 0;
        if (!p[0].revents)
            continue;

        int fd = accept(srv->listen_fd, NULL, NULL);
        if (fd < 0) {
            switch (errno) {
            case EINTR: case ECONNABORTED: case EAGAIN: case EPROTO:
                continue; /* the client went away first, or a signal */
            case EMFILE: case ENFILE: case ENOBUFS: case ENOMEM:
                perror("echo_server: accept"); /* overloaded: back off a little */
                poll(NULL, 0, 100);
                continue;
            default:
                perror("echo_server: accept");
                return -1;
            }
        }
        if (!queue_push(&srv->queue, fd)) {
            send_all(fd, "err busy\n", 9);
            close(fd);
        }
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: echo_server [-t THREADS] [-v] PORT\n"
                    "  PORT        TCP port on 127.0.0.1 (0: pick a free one and print it)\n"
                    "  -t THREADS  worker threads (default %d)\n"
                    "  -v          print brisk's full statistics at exit\n",
            DEFAULT_WORKERS);
    exit(2);
}

int main(int argc, char **argv)
{
    static struct server srv; /* static: zero-initialized, outlives the workers */
    pthread_t workers[MAX_WORKERS];
    unsigned nworkers = DEFAULT_WORKERS, started = 0, port, bound_port = 0;
    size_t allocated_when_ready = 0;
    bool verbose = false;
    int opt, status = 0;
    char *end;

    setvbuf(stdout, NULL, _IOLBF, 0); /* line by line, also into a log file */

    while ((opt = getopt(argc, argv, "t:v")) != -1) {
        switch (opt) {
        case 't':
            nworkers = (unsigned)strtoul(optarg, &end, 10);
            if (*end != '\0' || nworkers < 1 || nworkers > MAX_WORKERS)
                usage();
            break;
        case 'v':
            verbose = true;
            break;
        default:
            usage();
        }
    }
    if (optind != argc - 1)
        usage();
    port = (unsigned)strtoul(argv[optind], &end, 10);
    if (*end != '\0' || argv[optind][0] == '\0' || port > 65535)
        usage();

    report_allocator();

    /* Signals: SIGTERM and SIGINT stop the server through the stop pipe;
     * a client that hangs up must not kill us with SIGPIPE. */
    if (make_stop_pipe() != 0) {
        perror("echo_server: pipe");
        return 1;
    }
    struct sigaction sa = { .sa_handler = on_stop_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    srv.listen_fd = listen_on(port, &bound_port);
    if (srv.listen_fd < 0)
        return 1;
    queue_init(&srv.queue);

    /* The workers start with SIGTERM and SIGINT blocked, so that the
     * signals go to this thread, which restores its mask afterwards. */
    sigset_t stop_signals, saved_mask;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, &saved_mask);
    for (; started < nworkers; started++) {
        int err = pthread_create(&workers[started], NULL, worker_main, &srv);
        if (err != 0) {
            fprintf(stderr, "echo_server: pthread_create: %s\n", strerror(err));
            status = 1;
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);

    if (status == 0) {
        printf("echo_server: listening on 127.0.0.1:%u with %u worker threads (pid %ld)\n",
               bound_port, nworkers, (long)getpid());
        allocated_when_ready = allocated_now();
        status = accept_loop(&srv) == 0 ? 0 : 1;
        if (stop_signal == SIGTERM)
            printf("echo_server: stopping (SIGTERM)\n");
        else if (stop_signal == SIGINT)
            printf("echo_server: stopping (SIGINT)\n");
        else if (status == 0)
            printf("echo_server: stopping (quit request)\n");
    }

    /* Shut down: no new connections, workers finish the request in hand
     * and exit, then everything they and we allocated is freed. */
    close(srv.listen_fd);
    request_stop();
    queue_close(&srv.queue);
    for (unsigned i = 0; i < started; i++)
        pthread_join(workers[i], NULL);
    queue_destroy(&srv.queue);
    /* A late signal must not write into a closed (or reused) descriptor:
     * block them for the little that is left. */
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    close(stop_pipe[0]);
    close(stop_pipe[1]);

    printf("echo_server: served %" PRIuFAST64 " requests (%" PRIuFAST64 " failed) on %" PRIuFAST64
           " connections, %.1f MB of responses built\n",
           atomic_load(&srv.requests), atomic_load(&srv.failed), atomic_load(&srv.connections),
           (double)atomic_load(&srv.bytes) / 1e6);
    if (atomic_load(&srv.calloc_dirty)) {
        printf("echo_server: ERROR: calloc() returned memory that was not zeroed\n");
        status = 1;
    }
    report_heap(allocated_when_ready, verbose);
    return status;
}
