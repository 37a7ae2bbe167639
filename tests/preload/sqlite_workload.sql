-- The preload sqlite3 test: 100k-row inserts, indexes, joins, window
-- functions, updates, deletes, VACUUM and an integrity check.  The output
-- of a plain run and a run under LD_PRELOAD=libbrisk.so must be identical.
PRAGMA journal_mode = WAL;
PRAGMA cache_size = -16000;
.headers off
.mode list

CREATE TABLE person (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city INTEGER,
                     score REAL, note TEXT);
CREATE TABLE city (id INTEGER PRIMARY KEY, name TEXT UNIQUE);

BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
INSERT INTO city (id, name) SELECT i, 'city-' || printf('%04d', (i * 7919) % 10007) FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
INSERT INTO person (id, name, city, score, note)
SELECT i,
       'p' || printf('%08x', i * 2654435761 % 4294967296),
       1 + (i * 31) % 200,
       ((i * 7621) % 10000) / 100.0,
       substr('lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod', 1 + i % 40, 10 + i % 30)
FROM n;
COMMIT;

CREATE INDEX person_city ON person (city, score);
CREATE INDEX person_name ON person (name);

SELECT 'rows', count(*), sum(city), round(sum(score), 2) FROM person;
SELECT 'top cities', c.name, count(*), round(avg(p.score), 3)
  FROM person p JOIN city c ON c.id = p.city
 GROUP BY c.id ORDER BY count(*) DESC, c.name LIMIT 5;
SELECT 'name range', count(*) FROM person WHERE name BETWEEN 'p1' AND 'p3';
SELECT 'like', count(*) FROM person WHERE note LIKE '%dolor%';
SELECT 'window', id, score, rank() OVER (PARTITION BY city ORDER BY score DESC, id)
  FROM person WHERE city = 17 ORDER BY score DESC, id LIMIT 5;
SELECT 'median-ish', score FROM person ORDER BY score, id LIMIT 1 OFFSET 50000;
SELECT 'distinct notes', count(DISTINCT note) FROM person;
SELECT 'group_concat', length(group_concat(name, ',')) FROM (SELECT name FROM person ORDER BY name LIMIT 5000);

BEGIN;
UPDATE person SET score = score * 1.5, note = upper(note) WHERE id % 3 = 0;
DELETE FROM person WHERE id % 10 = 7;
INSERT INTO person (name, city, score, note)
SELECT name || '-copy', city, score / 2, note || note FROM person WHERE id % 50 = 1;
COMMIT;

SELECT 'after update', count(*), round(sum(score), 2), sum(length(note)) FROM person;
SELECT 'json', json_group_array(json_object('id', id, 'name', name))
  FROM (SELECT id, name FROM person ORDER BY id LIMIT 3);
CREATE TEMP TABLE agg AS SELECT city, count(*) AS n, max(score) AS top FROM person GROUP BY city;
SELECT 'agg', count(*), sum(n), round(max(top), 2) FROM agg;
SELECT 'cte', count(*) FROM (
  WITH RECURSIVE chain(id, depth) AS (SELECT 1, 0 UNION ALL
    SELECT (id * 17 + 3) % 100000 + 1, depth + 1 FROM chain WHERE depth < 5000)
  SELECT * FROM chain);
PRAGMA wal_checkpoint(TRUNCATE);
VACUUM;
PRAGMA integrity_check;
SELECT 'final', count(*), (SELECT count(*) FROM city) FROM person;
