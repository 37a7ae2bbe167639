/* SQLite through its C API, for the apps.sqlite test: run once plainly and
 * once with LD_PRELOAD=libbrisk.so, and the two outputs must be identical.
 *
 *   sqlite_capi DB [ROWS]
 *
 * Bulk inserts of rows with text and blobs of varying sizes in one
 * transaction (prepared statement), two indexes, indexed point queries
 * (from the main thread and from two reader threads with their own
 * connections), a large ORDER BY through the sorter, a GROUP BY, updates
 * that grow and shrink blobs, deletes, and an integrity check.  Every
 * result set is folded into a checksum that is printed; counts that are
 * known in advance are checked here.  On stderr it says whether libbrisk
 * is mapped in its own process (/proc/self/maps). */
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(sqlite3 *db, const char *what)
{
    fprintf(stderr, "sqlite_capi: %s: %s\n", what, db ? sqlite3_errmsg(db) : "?");
    exit(1);
}

static void exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "sqlite_capi: %s: %s\n", sql, err ? err : "?");
        exit(1);
    }
}

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        die(db, sql);
    return st;
}

/* Deterministic pseudo-random numbers (64-bit LCG, high bits). */
static uint32_t next(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 33);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ c[i]) * 1099511628211ull;
    return h;
}

#define FNV0 14695981039346656037ull

/* Fold every column of the current row into h. */
static uint64_t fold_row(uint64_t h, sqlite3_stmt *st)
{
    int n = sqlite3_column_count(st);
    for (int i = 0; i < n; i++) {
        int type = sqlite3_column_type(st, i);
        h = fnv(h, &type, sizeof type);
        if (type == SQLITE_INTEGER) {
            sqlite3_int64 v = sqlite3_column_int64(st, i);
            h = fnv(h, &v, sizeof v);
        } else if (type == SQLITE_FLOAT) {
            double v = sqlite3_column_double(st, i);
            h = fnv(h, &v, sizeof v);
        } else if (type != SQLITE_NULL) {
            const void *b = sqlite3_column_blob(st, i);
            h = fnv(h, b, (size_t)sqlite3_column_bytes(st, i));
        }
    }
    return h;
}

/* Run a query, fold all rows; returns the row count. */
static long query(sqlite3 *db, const char *sql, uint64_t *h)
{
    sqlite3_stmt *st = prepare(db, sql);
    long rows = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *h = fold_row(*h, st);
        rows++;
    }
    if (rc != SQLITE_DONE)
        die(db, sql);
    sqlite3_finalize(st);
    return rows;
}

static void make_text(uint64_t *s, char *buf, size_t len)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    for (size_t i = 0; i < len; i++)
        buf[i] = alphabet[next(s) % 36];
    buf[len] = '\0';
}

/* Point queries on the k index: lookups [first, first + count) of the
 * sequence seeded by `seed`; returns the sum of per-lookup hashes (order
 * independent, so threads may split the work). */
static uint64_t point_queries(sqlite3 *db, uint64_t seed, long first, long count, long *hits)
{
    uint64_t s = seed, sum = 0;
    for (long i = 0; i < first; i++)
        next(&s);
    sqlite3_stmt *st = prepare(db, "SELECT count(*), sum(length(payload)), min(name), max(id) "
                                   "FROM t WHERE k = ?1");
    for (long i = 0; i < count; i++) {
        sqlite3_bind_int(st, 1, (int)(next(&s) % 50000));
        if (sqlite3_step(st) != SQLITE_ROW)
            die(db, "point query");
        *hits += sqlite3_column_int(st, 0);
        sum += fold_row(FNV0, st);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return sum;
}

struct reader {
    const char *path;
    long first, count, hits;
    uint64_t sum;
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    sqlite3 *db;
    if (sqlite3_open_v2(r->path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
        die(db, "open (reader)");
    r->sum = point_queries(db, 42, r->first, r->count, &r->hits);
    sqlite3_close(db);
    return NULL;
}

static void report_brisk(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096];
    int mapped = 0;
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, "libbrisk"))
            mapped = 1;
    if (f)
        fclose(f);
    fprintf(stderr, "sqlite_capi: libbrisk %s\n", mapped ? "mapped" : "not mapped");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: sqlite_capi DB [ROWS]\n");
        return 2;
    }
    const char *path = argv[1];
    long rows = argc > 2 ? atol(argv[2]) : 200000;
    if (rows < 1000)
        rows = 1000;
    remove(path);
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        die(db, "open");
    exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA cache_size=-32000;");
    exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, name TEXT, payload BLOB, score REAL)");

    /* Bulk insert in one transaction. */
    uint64_t s = 1, h;
    static char text[200];
    static unsigned char blob[70000];
    exec(db, "BEGIN");
    sqlite3_stmt *ins = prepare(db, "INSERT INTO t(id, k, name, payload, score) VALUES (?1, ?2, ?3, ?4, ?5)");
    for (long id = 1; id <= rows; id++) {
        uint32_t r = next(&s);
        size_t tlen = 8 + r % 120;
        /* Mostly small blobs, some of a few KiB, a few of tens of KiB
         * (overflow pages). */
        size_t blen = r % 100 < 90 ? next(&s) % 300 : r % 100 < 99 ? next(&s) % 6000 : next(&s) % 70000;
        make_text(&s, text, tlen);
        for (size_t i = 0; i < blen; i++)
            blob[i] = (unsigned char)(id + i * 7);
        sqlite3_bind_int64(ins, 1, id);
        sqlite3_bind_int(ins, 2, (int)(next(&s) % 50000));
        sqlite3_bind_text(ins, 3, text, (int)tlen, SQLITE_TRANSIENT);
        sqlite3_bind_blob(ins, 4, blob, (int)blen, SQLITE_TRANSIENT);
        sqlite3_bind_double(ins, 5, (double)(r % 100000) / 7.0);
        if (sqlite3_step(ins) != SQLITE_DONE)
            die(db, "insert");
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    exec(db, "COMMIT");
    exec(db, "CREATE INDEX t_k ON t(k); CREATE INDEX t_name ON t(name)");

    h = FNV0;
    long n = query(db, "SELECT count(*), sum(length(payload)), sum(length(name)), total(score) FROM t", &h);
    printf("inserted: %ld rows, summary %016llx\n", rows, (unsigned long long)h);
    (void)n;

    /* Indexed point queries: the main thread does all of them, two reader
     * threads split the same lookups; the sums must agree. */
    long lookups = rows / 10, hits = 0;
    uint64_t main_sum = point_queries(db, 42, 0, lookups, &hits);
    struct reader rd[2] = { { path, 0, lookups / 2, 0, 0 }, { path, lookups / 2, lookups - lookups / 2, 0, 0 } };
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&th[i], NULL, reader_main, &rd[i]))
            die(NULL, "pthread_create");
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    if (rd[0].sum + rd[1].sum != main_sum || rd[0].hits + rd[1].hits != hits) {
        fprintf(stderr, "sqlite_capi: reader threads disagree with the main thread\n");
        return 1;
    }
    printf("point queries: %ld lookups, %ld hits, sum %016llx\n", lookups, hits, (unsigned long long)main_sum);

    /* A large sort (not an index order), and a GROUP BY. */
    h = FNV0;
    n = query(db, "SELECT id, name, length(payload) FROM t ORDER BY length(payload) DESC, substr(name, 3), id", &h);
    if (n != rows) {
        fprintf(stderr, "sqlite_capi: ORDER BY returned %ld rows, expected %ld\n", n, rows);
        return 1;
    }
    printf("order by: %ld rows, checksum %016llx\n", n, (unsigned long long)h);
    h = FNV0;
    n = query(db, "SELECT k % 997 AS g, count(*), sum(length(payload)), group_concat(substr(name, 1, 2), '') "
                  "FROM t GROUP BY g ORDER BY g", &h);
    printf("group by: %ld groups, checksum %016llx\n", n, (unsigned long long)h);

    /* Grow and shrink blobs, delete every 20th row. */
    exec(db, "BEGIN");
    exec(db, "UPDATE t SET payload = zeroblob(length(payload) * 3 + 10) WHERE id % 10 = 1");
    exec(db, "UPDATE t SET payload = substr(payload, 1, length(payload) / 4), name = name || 'x' WHERE id % 10 = 2");
    exec(db, "DELETE FROM t WHERE id % 20 = 0");
    exec(db, "COMMIT");
    h = FNV0;
    query(db, "SELECT count(*), sum(length(payload)), sum(length(name)) FROM t", &h);
    sqlite3_stmt *c = prepare(db, "SELECT count(*) FROM t");
    if (sqlite3_step(c) != SQLITE_ROW)
        die(db, "count");
    long left = sqlite3_column_int(c, 0);
    sqlite3_finalize(c);
    if (left != rows - rows / 20) {
        fprintf(stderr, "sqlite_capi: %ld rows left, expected %ld\n", left, rows - rows / 20);
        return 1;
    }
    printf("after updates: %ld rows, checksum %016llx\n", left, (unsigned long long)h);

    h = FNV0;
    sqlite3_stmt *ic = prepare(db, "PRAGMA integrity_check");
    if (sqlite3_step(ic) != SQLITE_ROW || strcmp((const char *)sqlite3_column_text(ic, 0), "ok") != 0) {
        fprintf(stderr, "sqlite_capi: integrity_check: %s\n", sqlite3_column_text(ic, 0));
        return 1;
    }
    sqlite3_finalize(ic);
    printf("integrity_check: ok\n");
    report_brisk();
    if (sqlite3_close(db) != SQLITE_OK)
        die(db, "close");
    return 0;
}
