#!/usr/bin/env bash
# Install what is missing, build brisk, and run the headline job: a real
# program (sqlite3 building, indexing and sorting 300k rows) run under
# LD_PRELOAD=libbrisk.so, with brisk's statistics printed at exit.
# (The side-by-side benchmark against glibc, jemalloc, tcmalloc and mimalloc
# replaces this demonstration when it lands.)
set -euo pipefail
cd "$(dirname "$0")/.."
"$(pwd)/scripts/deps.sh"

cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"
lib="$(pwd)/build/release/libbrisk.so"

sql="
create table t(id integer primary key, k text, v blob);
with recursive c(x) as (select 1 union all select x + 1 from c limit 300000)
insert into t(k, v) select hex(randomblob(12)), randomblob(abs(random() % 400)) from c;
create index t_k on t(k);
select count(*), count(distinct substr(k, 1, 4)) from t;
select k from t order by v limit 1 offset 1000;
"
echo "== sqlite3 under brisk (LD_PRELOAD=$lib)"
start=$(date +%s.%N)
BRISK_CONF=stats_print=1 LD_PRELOAD="$lib" sqlite3 :memory: "$sql" >/dev/null
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" 'BEGIN { printf "== wall time: %.2f s\n", e - s }'
