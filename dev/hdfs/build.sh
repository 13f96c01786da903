#!/usr/bin/env bash
# Builds the MiniDFS test helper (dev/hdfs) into the cache, once per change of its sources.
#
# Output: $MLOPS_CACHE/minidfs/run.classpath, one line: the helper's classes and every jar it needs, in
# the Maven repository $MLOPS_CACHE/m2 (outside the clone, so a surviving machine downloads ~250 MB once).
# predictor/tests/hdfs.rs reads that file. Prints the path of the file.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${MLOPS_CACHE:-/var/cache/mlops-predictor}"
out="$cache/minidfs"
mkdir -p "$out" "$cache/m2"

for tool in java mvn; do
  command -v "$tool" >/dev/null || { echo "dev/hdfs/build.sh: $tool is missing (needs JDK 17+ and Maven)" >&2; exit 1; }
done

# Two test runs may build at once; the second waits and then finds the stamp fresh.
exec 9>"$out/.lock"
flock 9

# The stamp covers everything that changes the result: the sources and the Java version.
stamp="$( { cat "$here/pom.xml"; find "$here/src" -type f -print0 | sort -z | xargs -0 cat; java -version 2>&1; } \
  | sha256sum | cut -d' ' -f1)"
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ] && [ -s "$out/run.classpath" ]; then
  echo "$out/run.classpath"
  exit 0
fi

rm -f "$out/stamp" "$out/run.classpath"
# -B: no colours or progress bars in CI logs; -q: only errors (downloads are silent).
mvn -B -q -Dstyle.color=never -f "$here/pom.xml" \
  -Dmaven.repo.local="$cache/m2" \
  -Dminidfs.out="$out/target" \
  compile >&2
printf '%s:%s\n' "$out/target/classes" "$(cat "$out/target/dependencies.classpath")" > "$out/run.classpath"
echo "$stamp" > "$out/stamp"
echo "$out/run.classpath"
