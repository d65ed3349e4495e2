#!/usr/bin/env python3
"""DuckDB baseline for `distinctly count`: distinct uids per window of a JSON-lines file.

usage: scripts/duckdb_baseline.py FILE [WINDOW_SECONDS] [--out COUNTS.jsonl]

Runs one query (read_json over the file with only the root `ts` and `uid` columns,
floor(ts / W) * W as the window, count(DISTINCT uid) per window) and times the query alone,
not the interpreter start or the `import duckdb`. DuckDB uses all cores (threads = nproc
unless DUCKDB_THREADS is set). Per-window counts go to --out (default stdout) as
{"start_ts":N,"unique_users":N,"events":N} lines in window order; the summary goes to
stderr as one JSON object with bytes, messages (events counted: lines that parsed),
elapsed_seconds, mb_per_second, events_per_second, cpu_seconds (all threads; cpu/elapsed
shows how many cores the query kept busy), threads and duckdb_version.
"""

import argparse
import json
import os
import sys
import time

try:
    import duckdb
except ImportError:
    sys.exit("duckdb_baseline.py: the duckdb module is missing (pip install duckdb)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("window_seconds", nargs="?", type=int, default=60)
    ap.add_argument("--out", default="-")
    args = ap.parse_args()

    threads = int(os.environ.get("DUCKDB_THREADS", os.cpu_count() or 1))
    con = duckdb.connect(config={"threads": threads})
    w = args.window_seconds
    # ignore_errors: unparsable lines are skipped (the bench files have none).
    # maximum_object_size: realistic frames are ~2 KB, well under the default, but be explicit.
    query = f"""
        SELECT CAST(floor(ts / {w}) * {w} AS BIGINT) AS start_ts,
               count(DISTINCT uid) AS unique_users,
               count(*) AS events
        FROM read_json(?, format = 'newline_delimited',
                       columns = {{'ts': 'DOUBLE', 'uid': 'VARCHAR'}},
                       ignore_errors = true, maximum_object_size = 16777216)
        WHERE ts IS NOT NULL AND uid IS NOT NULL AND uid <> '' AND ts >= 0
        GROUP BY 1
        ORDER BY 1
    """
    cpu0, started = os.times(), time.perf_counter()
    rows = con.execute(query, [args.file]).fetchall()
    elapsed, cpu1 = time.perf_counter() - started, os.times()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)

    out = sys.stdout if args.out == "-" else open(args.out, "w", encoding="utf-8")
    for start_ts, users, events in rows:
        out.write(f'{{"start_ts":{start_ts},"unique_users":{users},"events":{events}}}\n')
    if out is not sys.stdout:
        out.close()

    size = os.path.getsize(args.file)
    messages = sum(r[2] for r in rows)
    summary = {
        "bytes": size,
        "messages": messages,
        "windows": len(rows),
        "elapsed_seconds": elapsed,
        "mb_per_second": size / 1e6 / elapsed,
        "events_per_second": messages / elapsed,
        "cpu_seconds": cpu,
        "threads": threads,
        "duckdb_version": duckdb.__version__,
    }
    print(json.dumps(summary), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
