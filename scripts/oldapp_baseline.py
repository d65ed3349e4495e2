#!/usr/bin/env python3
"""The old app's logic over a JSON-lines file, as a baseline of scripts/bench-count.sh.

usage: scripts/oldapp_baseline.py FILE [WINDOW_SECONDS]

orjson.loads of every line, then one Python set of uids per window of `ts` (what the app this
project replaces did per Kafka message, without the Kafka client). Times the loop alone, not the
interpreter start or the imports. Per-window counts go to stdout as
{"start_ts":N,"unique_users":N,"events":N} lines in window order; the summary goes to stderr as
one JSON object with bytes, messages, rejected, elapsed_seconds and cpu_seconds.
"""

import json
import os
import sys
import time
from collections import defaultdict

try:
    import orjson
except ImportError:
    sys.exit("oldapp_baseline.py: the orjson module is missing (pip install orjson)")


def main() -> int:
    path = sys.argv[1]
    w = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    users = defaultdict(set)
    events = defaultdict(int)
    messages = rejected = 0
    cpu0, started = os.times(), time.perf_counter()
    with open(path, "rb") as f:
        for line in f:
            messages += 1
            try:
                d = orjson.loads(line)
                ts, uid = d["ts"], d["uid"]
                start = int(ts // w * w)
            except (orjson.JSONDecodeError, KeyError, TypeError):
                rejected += 1
                continue
            users[start].add(uid)
            events[start] += 1
    elapsed, cpu1 = time.perf_counter() - started, os.times()
    out = sys.stdout
    for start in sorted(users):
        out.write(f'{{"start_ts":{start},"unique_users":{len(users[start])},"events":{events[start]}}}\n')
    summary = {
        "bytes": os.path.getsize(path),
        "messages": messages,
        "rejected": rejected,
        "elapsed_seconds": elapsed,
        "cpu_seconds": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
    }
    print(json.dumps(summary), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
