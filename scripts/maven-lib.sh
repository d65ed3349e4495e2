# shellcheck shell=bash
# Shared by kafka-local.sh and kafka-connect.sh (sourced, not run): Java
# checks and fetching a pom's runtime jars with Maven. Uses the caller's
# `say`, `die` and its CACHE, LIB, LOGS and POM.

# check_java WHAT: Java 17+ on PATH, or die naming WHAT (e.g. "Kafka 4").
check_java() {
  local what=$1 out major
  command -v java >/dev/null 2>&1 || die "java not found on PATH ($what needs Java 17+)"
  out=$(java -version 2>&1) || die "'java -version' failed: $out"
  [[ $out =~ version\ \"([0-9]+)(\.([0-9]+))? ]] || die "cannot parse 'java -version' output: $out"
  major=${BASH_REMATCH[1]}
  [[ $major == 1 ]] && major=${BASH_REMATCH[3]}
  ((major >= 17)) || die "$what needs Java 17 or newer, found Java $major"
}

jars_cached() { [[ -f $LIB/.complete ]]; }

# fetch_maven_jars WHAT VERSIONS REQUIRED...: copies the runtime dependencies of
# $POM into $LIB for the first of the (space-separated) VERSIONS Maven can
# resolve, checking that each REQUIRED artifact (name without "-VERSION.jar")
# came along; $LIB/.complete then holds the version. The registry may not
# serve the newest release yet, hence the fallbacks.
fetch_maven_jars() {
  local what=$1 versions=$2 v tmp="$CACHE/lib.tmp.$$" t0=$SECONDS jar ok
  shift 2
  command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH (needed once to fetch the $what jars)"
  [[ -f $POM ]] || die "missing $POM"
  mkdir -p "$CACHE" "$LOGS"
  for v in $versions; do
    say "fetching $what $v jars with Maven into $LIB ..."
    rm -rf "$tmp"
    if (cd "$CACHE" && mvn -B -q -Dstyle.color=never -f "$POM" \
      -Dkafka.version="$v" -DincludeScope=runtime -DoutputDirectory="$tmp" \
      dependency:copy-dependencies) >"$LOGS/mvn.log" 2>&1; then
      ok=1
      for jar in "$@"; do
        [[ -f $tmp/$jar-$v.jar ]] || ok=0
      done
      if ((ok)); then
        printf '%s\n' "$v" >"$tmp/.complete"
        rm -rf "$LIB"
        mv "$tmp" "$LIB"
        say "fetched $what $v ($(find "$LIB" -name '*.jar' | wc -l) jars) in $((SECONDS - t0))s"
        return 0
      fi
    fi
    rm -rf "$tmp"
    say "fetching $what $v failed; Maven said:"
    tail -n 20 "$LOGS/mvn.log" | sed 's/\x1b\[[0-9;]*m//g' >&2 || true
  done
  die "could not fetch the $what jars (full Maven output: $LOGS/mvn.log)"
}
