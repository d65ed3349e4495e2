#!/usr/bin/env python3
"""Counting rate of `count --serve` while its HTTP port is under load.

Each round feeds FILE into `distinctly count --serve` on stdin and times it
from the first byte written to the summary (the whole file read and
counted), once quiet and once while `hostile` clients hold the port: 2000
idle and half-sent connections, 8 clients dripping a request a byte at a
time, and 32 clients asking /v1/status, /metrics, /v1/windows, /v1/groups
and /v1/uniques as fast as they are answered. Prints the median of ROUNDS
rounds of each and their ratio, as a markdown table.

usage: bench_http.py BIN FILE ROUNDS PORT
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

BIN, FILE, ROUNDS, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ADDR = ("127.0.0.1", PORT)
PATHS = os.environ.get("BENCH_HTTP_PATHS", "/v1/status /metrics /v1/windows?limit=60 "
                       "/v1/groups /v1/uniques?from=1767225600&to=1767229200").split()


def wait_for_port():
    for _ in range(200):
        try:
            socket.create_connection(ADDR, timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("bench-http: the port never opened")


def hostile(stop, answered):
    """Starts the load; returns its threads."""
    idle = []
    for i in range(2000):
        try:
            s = socket.create_connection(ADDR, timeout=5)
            if i % 2 == 0:
                s.sendall(b"GET /v1/info HTTP/1.1\r\nHost: x\r\n")
            idle.append(s)
        except OSError:
            pass

    def drip():
        while not stop.is_set():
            try:
                s = socket.create_connection(ADDR, timeout=5)
                for b in b"GET /v1/info HTTP/1.1\r\nHost: x\r\n\r\n":
                    if stop.is_set():
                        break
                    s.send(bytes([b]))
                    time.sleep(0.25)
                s.close()
            except OSError:
                time.sleep(0.1)

    def busy(k):
        n = 0
        while not stop.is_set():
            path = PATHS[n % len(PATHS)]
            n += 1
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{PORT}{path}", timeout=10) as r:
                    r.read()
                answered[k] += 1
            except Exception:
                time.sleep(0.01)

    threads = [threading.Thread(target=drip, daemon=True) for _ in range(8)]
    threads += [threading.Thread(target=busy, args=(k,), daemon=True) for k in range(32)]
    for t in threads:
        t.start()
    return threads, idle


def round_(loaded):
    proc = subprocess.Popen(
        [BIN, "count", "-", "--serve", f"127.0.0.1:{PORT}", "--group-by", "country",
         "--summary", "json"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_port()
    stop, answered, threads, idle = threading.Event(), [0] * 32, [], []
    if loaded:
        threads, idle = hostile(stop, answered)
        time.sleep(1)
    started = time.monotonic()
    with open(FILE, "rb") as f:
        while chunk := f.read(1 << 20):
            proc.stdin.write(chunk)
    proc.stdin.close()
    summary = None
    for line in proc.stderr:
        if line.startswith(b"{"):
            summary = json.loads(line)
            break
    took = time.monotonic() - started
    threads_cpu = {}
    for task in os.listdir(f"/proc/{proc.pid}/task"):
        with open(f"/proc/{proc.pid}/task/{task}/comm") as f:
            name = f.read().strip()
        with open(f"/proc/{proc.pid}/task/{task}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        threads_cpu[name] = threads_cpu.get(name, 0) + ticks / os.sysconf("SC_CLK_TCK")
    CPU.append((loaded, threads_cpu))
    stop.set()
    for s in idle:
        s.close()
    proc.terminate()
    proc.wait()
    if summary is None:
        sys.exit("bench-http: no summary")
    return took, summary["messages"], sum(answered)


CPU = []
quiet, loaded, answers = [], [], []
for _ in range(ROUNDS):
    quiet.append(round_(False)[0])
    took, messages, answered = round_(True)
    loaded.append(took)
    answers.append(answered / took)
q, l = statistics.median(quiet), statistics.median(loaded)
print(f"| `count --serve` of {messages:,} events | seconds (median of {ROUNDS}) | events/s |")
print("|---|---|---|")
print(f"| quiet port | {q:.2f} | {messages / q:,.0f} |")
print(f"| 2000 idle + 8 dripping + 32 busy clients ({statistics.median(answers):,.0f} answers/s) | {l:.2f} | {messages / l:,.0f} |")
print(f"| ratio loaded / quiet | {l / q:.2f}x | |")
counting = [c["distinctly"] for was_loaded, c in CPU if was_loaded]
serving = [c.get("distinctly-http", 0) for was_loaded, c in CPU if was_loaded]
print(f"| loaded rounds, CPU seconds (median): counting thread {statistics.median(counting):.2f}, "
      f"HTTP thread {statistics.median(serving):.2f} | | |")
