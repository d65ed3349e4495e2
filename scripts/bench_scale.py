#!/usr/bin/env python3
"""Drain driver of scripts/bench-scale.sh (run by it; settings come from its environment).

For each topic (realistic ~2 KB frames, minimal frames), drains the same input with:
  baseline  the previous single-instance `distinctly run` (BASELINE_BIN), one instance;
  one       this `distinctly run`, one instance (split, count and sum in one process);
  two       this `distinctly run`, two instances in one group, started together.
Every run gets a fresh group and compacted output topic, `exact`,
DISTINCTLY_IDLE_PARTITION_SECONDS=1 and a metrics exporter per instance. A run ends when the
output's last record per window equals the generator's truth (polled every ~0.1 s): the wall
time, from start to correct output. Its steady rate is the input read per second between 10 %
and 90 % of the topic, from the instances' `distinctly_messages_total` sampled alongside: the
drain rate without start-up and end, which is what the ratios compare. BENCH_REPS rounds
(default 3) run every configuration in turn; medians are reported. Each configuration also
drains a tiny topic (the first 100 realistic frames; its truth from `distinctly count`): the
time of start-up and end alone (group joins, the idle second, the last emission). Before the
instances are stopped, the CPU time of each of their threads is read from /proc and grouped by
thread name (split, count, sum, librdkafka's rdk:*, the rest); the broker's CPU is read too. For
the one-instance run the shard topic is read back: records, payload bytes per event.
"""
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
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
REPS = int(E.get("BENCH_REPS", "3"))
HZ = os.sysconf("SC_CLK_TCK")
KINDS = {"real": ("realistic ~2 KB", E["REAL_FILE"]), "mini": ("minimal ~45 B", E["MINI_FILE"])}
CONFIGS = (("baseline", BASELINE, 1), ("one", BIN, 1), ("two", BIN, 2))


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
        pid = r.stdout.split("(pid ")[1].split(")")[0].split(",")[0]
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / HZ
    except (IndexError, OSError):
        return float("nan")


def topic_create(name, partitions, *config):
    subprocess.run([KAFKA, "topic-create", name, str(partitions), *config], check=True,
                   capture_output=True)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def messages_read(port):
    """`distinctly_messages_total` of the instance serving metrics on `port` (0 if not yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("distinctly_messages_total"):
                    return float(line.split()[-1])
    except OSError:
        pass
    return 0.0


def steady_rate(samples, total, lo=0.1, hi=0.9):
    """Messages per second between reading `lo` and `hi` of `total`, interpolated from the
    (seconds, messages read) samples: the drain rate without start-up and end."""
    def crossing(level):
        for (t0, m0), (t1, m1) in zip(samples, samples[1:]):
            if m0 < level <= m1:
                return t0 + (t1 - t0) * (level - m0) / (m1 - m0)
        return None
    a, b = crossing(lo * total), crossing(hi * total)
    return (hi - lo) * total / (b - a) if a is not None and b is not None and b > a else None


def drain(name, kind, binary, instances, truth, frames=None):
    input_topic = f"{PREFIX}-{kind}"
    out = f"{PREFIX}-out-{name}"
    group = f"{PREFIX}-group-{name}"
    topic_create(out, 1, "cleanup.policy=compact")
    env = {k: v for k, v in E.items() if not k.startswith(("DISTINCTLY_", "KAFKA_SERVICE_"))}
    env.update(KAFKA_SERVICE_INTERNAL_HOST=BOOTSTRAP, KAFKA_SERVICE_INPUT_TOPIC=input_topic,
               KAFKA_SERVICE_OUTPUT_TOPIC=out, KAFKA_SERVICE_GROUP_ID=group,
               DISTINCTLY_COUNTER="exact", DISTINCTLY_IDLE_PARTITION_SECONDS="1")
    say(f"{name}: {instances} instance(s) of {binary} on {input_topic}")
    b0 = broker_cpu()
    t0 = time.monotonic()
    procs, ports, samples = [], [], []
    for i in range(instances):
        log = open(f"{OUT}/{name}.{i}.log", "w")
        ports.append(free_port())
        metrics = f"127.0.0.1:{ports[-1]}"
        procs.append(subprocess.Popen([binary, "run"], stdout=subprocess.DEVNULL, stderr=log,
                                      env=dict(env, DISTINCTLY_METRICS_ADDR=metrics)))
    done = None
    while time.monotonic() - t0 < TIMEOUT:
        if any(p.poll() is not None for p in procs):
            break
        samples.append((time.monotonic() - t0, sum(messages_read(port) for port in ports)))
        if output(out) == truth:
            done = time.monotonic() - t0
            break
        time.sleep(0.1)
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
    rate = steady_rate(samples, frames) if frames else None
    return {"seconds": done, "cpu": dict(cpu), "broker_cpu": b1 - b0, "group": group,
            "steady": rate}


def shard_topic_bytes(group):
    """(records, payload bytes) of the group's shard topic."""
    r = subprocess.run(["kcat", "-C", "-b", BOOTSTRAP, "-t", f"{group}-shards", "-e", "-o",
                        "beginning", "-q", "-f", "%S\n"], capture_output=True, text=True,
                       check=True)
    sizes = [int(x) for x in r.stdout.split()]
    return len(sizes), sum(sizes)


def count_truth(path):
    """start_ts -> (unique_users, events) as `distinctly count` finds them in `path`."""
    r = subprocess.run([BIN, "count", path], capture_output=True, text=True, check=True)
    got = {}
    for line in r.stdout.splitlines():
        v = json.loads(line)
        got[v["start_ts"]] = (v["unique_users"], v["events"])
    return got


def main():
    tiny = count_truth(E["TINY_FILE"])
    # Repetitions interleave the configurations, so a slow spell of the shared machine
    # touches all of them alike.
    fixed = defaultdict(list)
    for rep in range(REPS):
        for name, binary, n in CONFIGS:
            fixed[name].append(drain(f"{name}.tiny.{rep}", "tiny", binary, n, tiny)["seconds"])
    results = {"fixed": {name: statistics.median(t) for name, t in fixed.items()}}
    for kind, (label, path) in KINDS.items():
        truth = truth_of(E[f"{kind.upper()}_TRUTH"])
        events = sum(e for _, e in truth.values())
        frames = sum(1 for _ in open(path, "rb"))
        runs = defaultdict(list)
        for rep in range(REPS):
            for name, binary, n in CONFIGS:
                runs[name].append(drain(f"{name}.{kind}.{rep}", kind, binary, n, truth, frames))
        records, payload = shard_topic_bytes(runs["one"][0]["group"])
        results[kind] = {"label": label, "frames": frames, "events": events, "runs": runs,
                         "shard_records": records, "shard_bytes": payload}
    json.dump(results, open(f"{OUT}/results.json", "w"), indent=1)
    report(results)


def median_run(runs):
    """The run of median drain time (the lower middle one for an even count)."""
    return sorted(runs, key=lambda r: r["seconds"])[(len(runs) - 1) // 2]


def report(results):
    fixed = results.pop("fixed")
    print("## Scale-out: one and two instances against the single-instance version\n")
    print(f"{PARTITIONS} input partitions; shards = input partitions; exact counter; median of "
          f"{REPS} rounds, each running every configuration in turn. Steady = input messages "
          "read per second between 10 % and 90 % of the topic (from each instance's "
          "`distinctly_messages_total`, sampled every ~0.1 s), as events/s: the drain rate "
          "without start-up and end. Wall = events over the time from start until the output "
          "equals the truth. The range is over the rounds, each against the baseline of its "
          "round. Start-up and end alone (the median drain of a 100-message topic): "
          + ", ".join(f"{n} {t:.2f} s" for n, t in fixed.items()) + ".\n")
    print("| topic | run | steady events/s | steady ratio | range | wall events/s | "
          "wall ratio | instance CPU s | broker CPU s |")
    print("|---|---|---:|---:|---|---:|---:|---:|---:|")
    for r in results.values():
        per_frame = r["events"] / r["frames"]
        base = r["runs"]["baseline"]
        for name, label in (("baseline", "single-instance version"), ("one", "1 instance"),
                            ("two", "2 instances")):
            runs = r["runs"][name]
            steady = [run["steady"] * per_frame for run in runs if run["steady"]]
            ratios = [run["steady"] / b["steady"] for run, b in zip(runs, base)
                      if run["steady"] and b["steady"]]
            base_steady = statistics.median(b["steady"] * per_frame for b in base
                                            if b["steady"])
            mid = median_run(runs)
            wall = r["events"] / mid["seconds"]
            base_wall = r["events"] / median_run(base)["seconds"]
            print(f"| {r['label']} | {label} | {statistics.median(steady):,.0f} | "
                  f"{statistics.median(steady) / base_steady:.2f} | "
                  f"{min(ratios):.2f}–{max(ratios):.2f} | {wall:,.0f} | {wall / base_wall:.2f} | "
                  f"{sum(mid['cpu'].values()):.1f} | {mid['broker_cpu']:.1f} |")
    print("\nCPU seconds per million events, by thread (the baseline's loop is in `other`), "
          "of the median runs, and the shard topic of the 1-instance run:\n")
    print("| topic | run | split | count | sum | librdkafka | other | broker | "
          "shard bytes/event | shard records |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results.values():
        per = 1e6 / r["events"]
        for name in ("baseline", "one"):
            run = median_run(r["runs"][name])
            c = run["cpu"]
            shard = (f"{r['shard_bytes'] / r['events']:.1f} | {r['shard_records']:,}"
                     if name == "one" else "– | –")
            print(f"| {r['label']} | {name} | {c.get('split', 0) * per:.2f} | "
                  f"{c.get('count', 0) * per:.2f} | {c.get('sum', 0) * per:.3f} | "
                  f"{c.get('librdkafka', 0) * per:.2f} | {c.get('other', 0) * per:.2f} | "
                  f"{run['broker_cpu'] * per:.2f} | {shard} |")

if __name__ == "__main__":
    main()
