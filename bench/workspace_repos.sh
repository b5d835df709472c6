#!/bin/sh
# bench/workspace_repos.sh: what workspace protection costs on a big workspace.
#
# Creates, in a temporary directory, a working directory holding 300 git
# repositories (each made by `git init`: .git/HEAD, config, hooks with git's
# samples) and an empty one, then reports the median wall time of
# `cordon -- true` in each over N runs, and the difference: the time the scan
# for protected names, the pins and the mounts add. The issue's target is
# under 50 ms for 300 repositories (srt: 2.22 s vs 0.72 s, srt-compat.md 3.14).
#
#   bench/workspace_repos.sh [-n RUNS] [-r REPOS] [CORDON]
#
# CORDON defaults to $CORDON_BIN, then build/cordon. Timing uses hyperfine
# when it is installed (as root it is installed with apt-get if missing),
# otherwise a small python3 loop that alternates the two cases. Each case is
# warmed up first. HOME and XDG_RUNTIME_DIR point into the temporary tree, so
# the embedded default policy is used and the placeholder registry is private.
# Everything it creates is removed on exit, also on ^C. Prints results only;
# it asserts nothing (exit 0 unless something fails to run).
set -eu

RUNS=30
REPOS=300
while getopts n:r:h opt; do
    case $opt in
    n) RUNS=$OPTARG ;;
    r) REPOS=$OPTARG ;;
    *) sed -n '2,20s/^# \{0,1\}//p' "$0"; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
here=$(cd "$(dirname "$0")/.." && pwd)
CORDON=${1:-${CORDON_BIN:-$here/build/cordon}}
[ -x "$CORDON" ] || { echo "workspace_repos.sh: no cordon binary at $CORDON (build it, or pass its path)" >&2; exit 2; }
CORDON=$(cd "$(dirname "$CORDON")" && pwd)/$(basename "$CORDON")
command -v git >/dev/null || { echo "workspace_repos.sh: git is needed" >&2; exit 2; }

tmp=$(mktemp -d /tmp/cordon-bench-repos.XXXXXX)
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$tmp/empty" "$tmp/repos" "$tmp/home" "$tmp/run"
chmod 700 "$tmp/run"
export HOME="$tmp/home" XDG_RUNTIME_DIR="$tmp/run"
unset XDG_CONFIG_HOME

echo "creating $REPOS repositories in $tmp/repos ..."
i=1
while [ "$i" -le "$REPOS" ]; do
    git init -q "$tmp/repos/repo-$i"
    i=$((i + 1))
done

# Sanity: both cases run, and what the plan holds for each.
for d in empty repos; do
    (cd "$tmp/$d" && "$CORDON" -- true) || { echo "cordon -- true failed in $d" >&2; exit 1; }
    n=$(cd "$tmp/$d" && { "$CORDON" -d -- true 2>&1 | grep -c '^cordon: debug: mount ' || :; })
    echo "$d: $n mounts in the plan"
done

if ! command -v hyperfine >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing hyperfine ..."
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null 2>&1 &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine >/dev/null 2>&1; } ||
        echo "(hyperfine could not be installed; using the python3 loop)"
fi

if command -v hyperfine >/dev/null 2>&1; then
    tool="hyperfine $(hyperfine --version | awk '{print $2}')"
    for d in empty repos; do
        (cd "$tmp/$d" && hyperfine -N --style none --warmup 3 --runs "$RUNS" \
            --export-json "$tmp/$d.json" "$CORDON -- true" >/dev/null)
    done
    med() { python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["results"][0]["median"] * 1000))' "$1"; }
    empty_ms=$(med "$tmp/empty.json")
    repos_ms=$(med "$tmp/repos.json")
else
    tool="python3 timing loop"
    out=$(python3 - "$CORDON" "$tmp/empty" "$tmp/repos" "$RUNS" <<'EOF'
import statistics, subprocess, sys, time
cordon, empty, repos, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
t = {empty: [], repos: []}
for i in range(runs + 3):
    for d in (empty, repos):            # alternate, so drift hits both alike
        t0 = time.perf_counter()
        subprocess.run([cordon, "--", "true"], cwd=d, check=True)
        if i >= 3:                      # 3 warm-up rounds
            t[d].append((time.perf_counter() - t0) * 1000)
print("%.2f %.2f" % (statistics.median(t[empty]), statistics.median(t[repos])))
EOF
)
    empty_ms=${out% *}
    repos_ms=${out#* }
fi

added=$(python3 -c 'import sys; print("%.2f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$empty_ms" "$repos_ms")
verdict=$(python3 -c 'import sys; print("within" if float(sys.argv[1]) < 50 else "OVER")' "$added")
echo "cordon: $CORDON"
echo "timing: $tool, median of $RUNS runs each"
printf '%-32s %8s ms\n' "empty directory:" "$empty_ms"
printf '%-32s %8s ms\n' "$REPOS git repositories:" "$repos_ms"
printf '%-32s %8s ms (%s the 50 ms target)\n' "added by $REPOS repositories:" "$added" "$verdict"
