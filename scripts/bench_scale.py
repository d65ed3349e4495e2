#!/usr/bin/env python3
"""Drain driver of scripts/bench-scale.sh (run by it; settings come from its environment).

For each topic (realistic ~2 KB frames, minimal frames), drains the same input with:
  baseline  the previous single-instance `distinctly run` (BASELINE_BIN), one instance;
  one       this `distinctly run`, one instance (split, count and sum in one process);
  two       this `distinctly run`, two instances in one group, started together.
Every run gets a fresh group and compacted output topic, `exact`, no metrics exporter, and
DISTINCTLY_IDLE_PARTITION_SECONDS=1. A run ends when the output's last record per window equals
the generator's truth (polled every 0.25 s): the drain time, from start to correct output. Before
the instances are stopped, the CPU time of each of their threads is read from /proc and grouped
by thread name (split, count, sum, librdkafka's rdk:*, the rest); the broker's CPU is read too.
For the one-instance run the shard topic is read back: records, payload bytes per event.
"""
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict

E = os.environ
BOOTSTRAP = E["BOOTSTRAP"]
KAFKA = E["KAFKA"]
BIN = E["BIN"]
BASELINE = E["BASELINE_BIN"]
OUT = E["OUT"]
PREFIX = E["PREFIX"]
PARTITIONS = int(E["BENCH_PARTITIONS"])
TIMEOUT = float(E.get("BENCH_TIMEOUT", "900"))
HZ = os.sysconf("SC_CLK_TCK")
KINDS = {"real": ("realistic ~2 KB", E["REAL_FILE"]), "mini": ("minimal ~45 B", E["MINI_FILE"])}


def say(msg):
    print(f"== {msg}", file=sys.stderr, flush=True)


def truth_of(path):
    got = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            got[r["start_ts"]] = (r["unique_users"], r["events"])
    return got


def output(topic):
    """start_ts -> (unique_users, events) of the last record per window."""
    r = subprocess.run(["kcat", "-C", "-b", BOOTSTRAP, "-t", topic, "-e", "-o", "beginning", "-q",
                        "-f", "%s\n"], capture_output=True, text=True, check=False)
    got = {}
    for line in r.stdout.splitlines():
        if line.strip():
            v = json.loads(line)
            got[v["start_ts"]] = (v["unique_users"], v["events"])
    return got


def thread_cpu(pid):
    """Thread name -> CPU seconds (user + system) of process `pid`."""
    cpu = defaultdict(float)
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
            stat = open(f"/proc/{pid}/task/{tid}/stat").read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        seconds = (int(fields[11]) + int(fields[12])) / HZ
        group = "librdkafka" if name.startswith("rdk:") else name if name in (
            "split", "count", "sum") else "other"
        cpu[group] += seconds
    return cpu


def broker_cpu():
    r = subprocess.run([KAFKA, "status"], capture_output=True, text=True, check=False)
    try:
        pid = r.stdout.split("(pid ")[1].split(")")[0]
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / HZ
    except (IndexError, OSError):
        return float("nan")


def topic_create(name, partitions, *config):
    subprocess.run([KAFKA, "topic-create", name, str(partitions), *config], check=True,
                   capture_output=True)


def drain(name, kind, binary, instances, truth):
    input_topic = f"{PREFIX}-{kind}"
    out = f"{PREFIX}-out-{name}"
    group = f"{PREFIX}-group-{name}"
    topic_create(out, 1, "cleanup.policy=compact")
    env = {k: v for k, v in E.items() if not k.startswith(("DISTINCTLY_", "KAFKA_SERVICE_"))}
    env.update(KAFKA_SERVICE_INTERNAL_HOST=BOOTSTRAP, KAFKA_SERVICE_INPUT_TOPIC=input_topic,
               KAFKA_SERVICE_OUTPUT_TOPIC=out, KAFKA_SERVICE_GROUP_ID=group,
               DISTINCTLY_COUNTER="exact", DISTINCTLY_METRICS_ADDR="",
               DISTINCTLY_IDLE_PARTITION_SECONDS="1")
    say(f"{name}: {instances} instance(s) of {binary} on {input_topic}")
    b0 = broker_cpu()
    t0 = time.monotonic()
    procs = []
    for i in range(instances):
        log = open(f"{OUT}/{name}.{i}.log", "w")
        procs.append(subprocess.Popen([binary, "run"], env=env, stdout=subprocess.DEVNULL,
                                      stderr=log))
    done = None
    while time.monotonic() - t0 < TIMEOUT:
        if any(p.poll() is not None for p in procs):
            break
        if output(out) == truth:
            done = time.monotonic() - t0
            break
        time.sleep(0.25)
    cpu = defaultdict(float)
    for p in procs:
        if p.poll() is None:
            for k, v in thread_cpu(p.pid).items():
                cpu[k] += v
    b1 = broker_cpu()
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
    if done is None:
        sys.exit(f"bench-scale: {name} did not reach the truth within {TIMEOUT:.0f} s "
                 f"(logs: {OUT}/{name}.*.log)")
    return {"seconds": done, "cpu": dict(cpu), "broker_cpu": b1 - b0, "group": group}


def shard_topic_bytes(group):
    """(records, payload bytes) of the group's shard topic."""
    r = subprocess.run(["kcat", "-C", "-b", BOOTSTRAP, "-t", f"{group}-shards", "-e", "-o",
                        "beginning", "-q", "-f", "%S\n"], capture_output=True, text=True,
                       check=True)
    sizes = [int(x) for x in r.stdout.split()]
    return len(sizes), sum(sizes)


def main():
    results = {}
    for kind, (label, path) in KINDS.items():
        truth = truth_of(E[f"{kind.upper()}_TRUTH"])
        events = sum(e for _, e in truth.values())
        frames = sum(1 for _ in open(path, "rb"))
        runs = {}
        for name, binary, n in (("baseline", BASELINE, 1), ("one", BIN, 1), ("two", BIN, 2)):
            runs[name] = drain(f"{name}.{kind}", kind, binary, n, truth)
        records, payload = shard_topic_bytes(runs["one"]["group"])
        results[kind] = {"label": label, "frames": frames, "events": events, "runs": runs,
                         "shard_records": records, "shard_bytes": payload}
    json.dump(results, open(f"{OUT}/results.json", "w"), indent=1)
    report(results)


def report(results):
    print("## Scale-out: one and two instances against the single-instance version\n")
    print(f"{PARTITIONS} input partitions; shards = input partitions; exact counter; "
          f"time from start until the output equals the truth; one run each.\n")
    print("| topic | run | events/s | ratio vs baseline | instance CPU s | broker CPU s |")
    print("|---|---|---:|---:|---:|---:|")
    for r in results.values():
        base = r["runs"]["baseline"]["seconds"]
        for name, label in (("baseline", "single-instance version"), ("one", "1 instance"),
                            ("two", "2 instances")):
            run = r["runs"][name]
            print(f"| {r['label']} | {label} | {r['events'] / run['seconds']:,.0f} | "
                  f"{base / run['seconds']:.2f} | {sum(run['cpu'].values()):.1f} | "
                  f"{run['broker_cpu']:.1f} |")
    print("\nCPU per million events, by stage (1 instance; threads named split, count, sum; "
          "librdkafka's own threads; the rest):\n")
    print("| topic | split | count | sum | librdkafka | other | broker | shard bytes/event | "
          "shard records |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results.values():
        run = r["runs"]["one"]
        per = 1e6 / r["events"]
        c = run["cpu"]
        print(f"| {r['label']} | {c.get('split', 0) * per:.2f} | {c.get('count', 0) * per:.2f} | "
              f"{c.get('sum', 0) * per:.3f} | {c.get('librdkafka', 0) * per:.2f} | "
              f"{c.get('other', 0) * per:.2f} | {run['broker_cpu'] * per:.2f} | "
              f"{r['shard_bytes'] / r['events']:.1f} | {r['shard_records']:,} |")


if __name__ == "__main__":
    main()
