/* server: request-scoped allocation, the pattern of a request/response
 * server (or of any program with a per-task arena that it frees at once).
 *
 * T threads each handle their share of REQUESTS requests.  A request:
 *   - callocs its context (256 bytes) and a 64-bucket hash table, and
 *     checks they are zero;
 *   - makes 50..500 allocations: N/2 nodes (48 bytes) each owning a payload
 *     of mixed size (60% 16..128 bytes, 30% up to 1 KiB, 9% up to 8 KiB,
 *     1% up to 32 KiB), filled with a pattern and linked into a random
 *     bucket; every 8th node also mallocs, fills, verifies and frees a
 *     short-lived scratch buffer;
 *   - appends a 24-byte record per node to a response buffer that starts
 *     at 256 bytes and grows by realloc (doubling);
 *   - at the end, verifies the response and every payload and frees
 *     everything: the whole structure dies at once, in an order unrelated
 *     to the allocation order (bucket by bucket). */
#include "wl.h"

#include <string.h>

#define NBUCKETS 64
#define RECORD 24
#define SALT 0x5e77e70000000006ULL

typedef struct node {
  struct node *next;
  void *payload;
  size_t size;
  uint64_t id;
  uint64_t pad[2]; /* 48 bytes */
} node_t;

typedef struct {
  node_t **buckets;
  unsigned char *resp;
  size_t resp_len, resp_cap;
  uint64_t request_id;
  unsigned char rest[216]; /* 256 bytes in all */
} request_t;

typedef struct {
  int id;
  uint64_t seed, requests;
  uint64_t ops; /* out */
} server_arg_t;

static size_t payload_size(wl_rng_t *rng) {
  uint64_t r = wl_below(rng, 100);
  if (r < 60) return (size_t)wl_range(rng, 16, 128);
  if (r < 90) return (size_t)wl_range(rng, 129, 1024);
  if (r < 99) return (size_t)wl_range(rng, 1025, 8192);
  return (size_t)wl_range(rng, 8193, 32768);
}

static inline unsigned char resp_byte(uint64_t rid, size_t j) {
  return (unsigned char)(rid * 31 + j * 13 + (j >> 8));
}

static void *server_thread(void *argp) {
  server_arg_t *a = argp;
  wl_rng_t rng;
  wl_rng_seed(&rng, a->seed, (uint64_t)a->id);
  wl_live_t live = {0};
  uint64_t ops = 0;

  for (uint64_t q = 0; q < a->requests; q++) {
    request_t *req = wl_calloc(1, sizeof *req);
    req->buckets = wl_calloc(NBUCKETS, sizeof *req->buckets);
    req->request_id = ((uint64_t)a->id << 40) | q;
    req->resp_cap = 256;
    req->resp = wl_malloc(req->resp_cap);
    ops += 3;
    int64_t bytes = (int64_t)(sizeof *req + NBUCKETS * sizeof(node_t *) + req->resp_cap);

    uint64_t nodes = wl_range(&rng, 50, 500) / 2;
    for (uint64_t i = 0; i < nodes; i++) {
      node_t *nd = wl_malloc(sizeof *nd);
      size_t n = payload_size(&rng);
      nd->payload = wl_malloc(n);
      nd->size = n;
      nd->id = i;
      wl_fill(nd->payload, n, wl_key(nd->payload, n, SALT));
      node_t **b = &req->buckets[wl_below(&rng, NBUCKETS)];
      nd->next = *b;
      *b = nd;
      ops += 2;
      bytes += (int64_t)(sizeof *nd + n);

      if (req->resp_len + RECORD > req->resp_cap) {
        bytes -= (int64_t)req->resp_cap;
        req->resp_cap *= 2;
        req->resp = wl_realloc(req->resp, req->resp_cap);
        bytes += (int64_t)req->resp_cap;
        ops++;
      }
      for (size_t j = 0; j < RECORD; j++, req->resp_len++)
        req->resp[req->resp_len] = resp_byte(req->request_id, req->resp_len);

      if ((i & 7) == 7) {
        size_t tn = (size_t)wl_range(&rng, 16, 512);
        void *t = wl_malloc(tn);
        wl_fill(t, tn, wl_key(t, tn, SALT ^ 1));
        wl_verify(t, tn, wl_key(t, tn, SALT ^ 1), "server_scratch");
        free(t);
        ops += 2;
      }
    }
    wl_live_add(&live, bytes);

    for (size_t j = 0; j < req->resp_len; j++)
      if (req->resp[j] != resp_byte(req->request_id, j))
        wl_fail("corrupt_server_response ptr=%p size=%zu offset=%zu", (void *)req->resp,
                req->resp_len, j);
    uint64_t seen = 0;
    for (int k = 0; k < NBUCKETS; k++) {
      node_t *nd = req->buckets[k];
      while (nd) {
        node_t *next = nd->next;
        wl_verify(nd->payload, nd->size, wl_key(nd->payload, nd->size, SALT), "server");
        free(nd->payload);
        free(nd);
        seen++;
        nd = next;
      }
    }
    if (seen != nodes)
      wl_fail("corrupt_server_structure nodes=%llu found=%llu", (unsigned long long)nodes,
              (unsigned long long)seen);
    ops += 2 * seen;
    free(req->resp);
    free(req->buckets);
    free(req);
    ops += 3;
    wl_live_add(&live, -bytes);
  }
  wl_live_flush(&live);
  a->ops = ops;
  return NULL;
}

void wl_run_server(const wl_config_t *cfg, wl_result_t *res) {
  int T = cfg->threads;
  uint64_t requests = wl_pick(cfg, 2000, 60000, 300000);
  size_t stride = WL_STRIDE(server_arg_t);
  char *args = wl_thread_args(T, stride);
  for (int i = 0; i < T; i++) {
    server_arg_t *a = (server_arg_t *)(args + (size_t)i * stride);
    a->id = i;
    a->seed = cfg->seed;
    a->requests = wl_share(requests, T, i);
  }
  wl_run_threads(T, server_thread, args, stride);

  uint64_t ops = 0;
  for (int i = 0; i < T; i++) ops += ((server_arg_t *)(args + (size_t)i * stride))->ops;
  free(args);
  res->ops = ops;
  wl_extra(res, "requests=%llu", (unsigned long long)requests);
}
