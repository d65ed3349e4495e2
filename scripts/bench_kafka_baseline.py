#!/usr/bin/env python3
"""The old app's logic as the historical baseline of scripts/bench-kafka.sh.

usage: scripts/bench_kafka_baseline.py TOPIC [GROUP_ID]   (broker: $KAFKA_SERVICE_INTERNAL_HOST)

A confluent-kafka consumer reads TOPIC from the beginning (fresh group, subscribe) until every
assigned partition is at its end (enable.partition.eof), in consume(1000, 1.0) batches;
json.loads each message and adds its uid to one Python set per minute of `ts`. Prints the
per-minute counts as {"start_ts":N,"unique_users":N,"events":N} lines on stdout and a summary
(messages, bytes, bad, elapsed_seconds) as one JSON object on stderr.
"""

import json
import os
import sys
import time
from collections import defaultdict

from confluent_kafka import Consumer, KafkaError


def main() -> int:
    topic = sys.argv[1]
    group = sys.argv[2] if len(sys.argv) > 2 else f"bench-py-{os.getpid()}-{time.time_ns()}"
    started = time.monotonic()
    consumer = Consumer({
        "bootstrap.servers": os.environ.get("KAFKA_SERVICE_INTERNAL_HOST", "127.0.0.1:9092"),
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })
    consumer.subscribe([topic])
    users = defaultdict(set)  # minute start -> uids
    events = defaultdict(int)
    at_end, messages, nbytes, bad = set(), 0, 0, 0
    while True:
        for msg in consumer.consume(num_messages=1000, timeout=1.0):
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    raise SystemExit(f"bench_kafka_baseline.py: {err}")
                at_end.add(msg.partition())
                continue
            at_end.discard(msg.partition())
            value = msg.value() or b""
            messages += 1
            nbytes += len(value)
            try:
                event = json.loads(value)
                minute = int(event["ts"]) // 60 * 60
                uid = event["uid"]
            except (ValueError, KeyError, TypeError):
                bad += 1
                continue
            users[minute].add(uid)
            events[minute] += 1
        assigned = {tp.partition for tp in consumer.assignment()}
        if assigned and assigned <= at_end:
            break
    consumer.close()
    elapsed = time.monotonic() - started
    for minute in sorted(users):
        print(json.dumps({"start_ts": minute, "unique_users": len(users[minute]),
                          "events": events[minute]}, separators=(",", ":")))
    summary = {"messages": messages, "bytes": nbytes, "bad": bad, "elapsed_seconds": round(elapsed, 3)}
    print(json.dumps(summary), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
