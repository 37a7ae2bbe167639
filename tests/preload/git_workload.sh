#!/bin/sh
# The preload git test: generate ~1000 files, commit them, change some and
# commit again, repack, verify.  Author and committer are fixed, so the
# commit hashes printed must be the same with and without libbrisk.so.
# Usage: git_workload.sh DIR (created; must not exist).
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"

export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null HOME="$dir"
export GIT_AUTHOR_NAME="Brisk Test" GIT_AUTHOR_EMAIL="brisk@example.invalid"
export GIT_COMMITTER_NAME="Brisk Test" GIT_COMMITTER_EMAIL="brisk@example.invalid"
export GIT_AUTHOR_DATE="2024-01-02T03:04:05Z" GIT_COMMITTER_DATE="2024-01-02T03:04:05Z"
export TZ=UTC LC_ALL=C

# 1000 files in 25 directories, 40 lines each.
d=0
while [ $d -lt 25 ]; do
    mkdir -p "src/dir$d"
    f=0
    while [ $f -lt 40 ]; do
        i=$((d * 40 + f))
        {
            echo "/* file $i of the brisk git workload */"
            l=0
            while [ $l -lt 40 ]; do
                echo "int v${i}_$l = $((i * 131 + l * 7919));"
                l=$((l + 1))
            done
        } > "src/dir$d/file$f.c"
        f=$((f + 1))
    done
    d=$((d + 1))
done

git init -q -b main .
git config core.autocrlf false
git config gc.auto 0
git add -A
git commit -q -m "initial: 1000 generated files"
echo "commit1 $(git rev-parse HEAD)"

# Change 100 files, delete 50, add 50, rename 20.
i=0
while [ $i -lt 100 ]; do
    echo "int changed_$i = $i;" >> "src/dir$((i % 25))/file$((i / 25)).c"
    i=$((i + 1))
done
i=0
gone=
while [ $i -lt 50 ]; do
    gone="$gone src/dir$((i % 25))/file$((10 + i / 25)).c"
    {
        echo "new file $i"
        j=0
        while [ $j -le $((i * 10)) ]; do
            printf '%d ' $j
            j=$((j + 1))
        done
        echo
    } > "src/new$i.txt"
    i=$((i + 1))
done
# shellcheck disable=SC2086  # a list of paths without spaces
git rm -q $gone
git mv src/dir3 src/moved3
git add -A
GIT_COMMITTER_DATE="2024-01-03T00:00:00Z" git commit -q -m "second: change, delete, add, rename"
echo "commit2 $(git rev-parse HEAD)"
echo "tree $(git rev-parse "HEAD^{tree}")"

echo "files $(git ls-files | wc -l)"
git diff --stat HEAD~1 HEAD | tail -n 1
git diff -M HEAD~1 HEAD | git patch-id --stable | cut -c1-40
git log --format='%H %T %an %ad %s' --date=iso-strict
git grep -c 'changed_' | sort | head -n 3
git gc -q --aggressive
git count-objects -v | grep -E '^(count|in-pack|packs)'
git fsck --full --strict --no-progress && echo "fsck ok"
git archive --format=tar HEAD | cksum
