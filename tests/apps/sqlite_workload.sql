-- apps.sqlite: the sqlite3 shell's workload, run plainly and under brisk;
-- the outputs must be identical (sqlite.sh also checks known lines).
-- Deterministic: rows come from a linear congruential generator in a
-- recursive CTE, values of 0 to 40,000 bytes.
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -20000;
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, name TEXT, payload TEXT);

-- Bulk insert, one transaction.
BEGIN;
WITH RECURSIVE g(i, x) AS (
    SELECT 1, 12345
    UNION ALL
    SELECT i + 1, (x * 1103515245 + 12345) % 2147483648 FROM g WHERE i < 200000
)
INSERT INTO t(id, k, name, payload)
SELECT i, x % 50000,
       printf('%08x-%s', x, substr(hex(x * 7919), 1, 1 + x % 30)),
       printf('%.*c', CASE WHEN x % 500 = 0 THEN 10000 + x % 30000 ELSE x % 300 END, char(97 + x % 26))
FROM g;
COMMIT;
SELECT 'rows', count(*), sum(length(payload)), sum(k), sum(length(name)) FROM t;

CREATE INDEX t_k ON t(k);
CREATE INDEX t_name ON t(name);

-- Indexed queries.
SELECT 'range', count(*), sum(length(name)), sum(length(payload)) FROM t WHERE k BETWEEN 1000 AND 1999;
SELECT 'point', id, name, length(payload) FROM t WHERE k = 4242 ORDER BY id;
SELECT 'prefix', count(*) FROM t WHERE name >= '10000000' AND name < '20000000';
SELECT 'first names', group_concat(name, ',') FROM (SELECT name FROM t ORDER BY name LIMIT 5);
SELECT 'join', count(*), sum(a.k + b.k) FROM t a JOIN t b ON b.k = a.k + 1 WHERE a.id <= 20000;

-- Large sorts, not in any index order: checksums of the whole results.
SELECT 'sort', hex(sha3_query('SELECT id, substr(name, 6), length(payload) FROM t ORDER BY substr(name, 6) DESC, length(payload), id'));
SELECT 'sort payload', hex(sha3_query('SELECT id, payload FROM t WHERE id % 7 = 0 ORDER BY payload, id'));
SELECT 'group', hex(sha3_query('SELECT k % 1000, count(*), sum(length(payload)), max(name) FROM t GROUP BY 1 ORDER BY 1'));
SELECT 'distinct', count(DISTINCT substr(name, 1, 4)) FROM t;

-- Grow, shrink and delete.
BEGIN;
UPDATE t SET payload = payload || payload || 'grown' WHERE id % 10 = 1;
UPDATE t SET payload = substr(payload, 1, length(payload) / 3), name = name || '.x' WHERE id % 10 = 2;
DELETE FROM t WHERE id % 20 = 0;
COMMIT;
SELECT 'after', count(*), sum(length(payload)), sum(length(name)) FROM t;
SELECT 'table', hex(sha3_query('SELECT * FROM t ORDER BY id'));
PRAGMA integrity_check;
