#!/usr/bin/env python3
"""The exact truth of unique users per window and group, computed apart
from the code under test (Python's json module, not distinctly's decoder).

Reads JSON lines on stdin and writes one JSON object per window and group
to stdout: {"window", "start_ts", "unique_users", "events"} for a window's
total, plus "group_by" and "group" for a group, with "group" as distinctly
writes it (a string, null, or a list for a `+` grouping).

    scripts/group-truth.py --group-by country,/ctx/device --windows 1m,1h < events.jsonl

The rules are those of the README: a message counts when it is a JSON
object (or a JSON string holding one) with a non-empty string `uid` of at
most 1024 UTF-8 bytes and a number `ts` >= 0 (floored), neither given
twice. A group value is a string's content, or a number, true or false as
written; null or a missing key is no group; an object, an array, a string
over 256 bytes or a key given twice on the path is no group either.
Windows are UTC and fixed (`<n>s`, `<n>m`, `<n>h`). It knows nothing of
the time guard, lateness or DISTINCTLY_MAX_GROUPS: feed it streams without
bit flips, with events late by less than the retention, and with fewer
groups than the limit.
"""

import argparse
import json
import sys
from decimal import Decimal, ROUND_FLOOR

MAX_UID_BYTES = 1024
MAX_VALUE_BYTES = 256


class Num:
    """A JSON number as written."""

    def __init__(self, text):
        self.text = text


class Duplicate:
    """A value under a key given twice."""


class Obj(dict):
    """A JSON object that remembers its duplicated keys."""

    def __init__(self, pairs):
        super().__init__()
        self.dups = set()
        for k, v in pairs:
            if k in self:
                self.dups.add(k)
            self[k] = v


def parse(text):
    def constant(name):
        raise ValueError(name)

    return json.loads(
        text,
        object_pairs_hook=Obj,
        parse_int=Num,
        parse_float=Num,
        parse_constant=constant,
    )


def event(line):
    """(ts, uid, root object), or None for a rejected line."""
    try:
        root = parse(line)
        if isinstance(root, str):
            root = parse(root)
    except (ValueError, RecursionError):
        return None
    if not isinstance(root, Obj) or {"uid", "ts"} & root.dups:
        return None
    uid, ts = root.get("uid"), root.get("ts")
    if not isinstance(uid, str) or not isinstance(ts, Num):
        return None
    try:
        uid_bytes = uid.encode("utf-8")
    except UnicodeEncodeError:
        return None
    if not uid_bytes or len(uid_bytes) > MAX_UID_BYTES:
        return None
    t = Decimal(ts.text)
    if t < 0:
        return None
    return int(t.to_integral_value(rounding=ROUND_FLOOR)), uid, root


def pointer(text):
    if not text.startswith("/"):
        return [text]
    return [s.replace("~1", "/").replace("~0", "~") for s in text[1:].split("/")]


def value(root, path):
    """A field's group value (str), or None for no group."""
    at = root
    for seg in path:
        if isinstance(at, Obj):
            if seg in at.dups:
                return None
            if seg not in at:
                return None
            at = at[seg]
        elif isinstance(at, list):
            if not seg.isdigit() or (len(seg) > 1 and seg[0] == "0"):
                return None
            i = int(seg)
            if i >= len(at):
                return None
            at = at[i]
        else:
            return None
    if isinstance(at, bool):
        v = "true" if at else "false"
    elif isinstance(at, Num):
        v = at.text
    elif isinstance(at, str):
        v = at
    else:
        return None  # null, an object or an array
    try:
        if len(v.encode("utf-8")) > MAX_VALUE_BYTES:
            return None
    except UnicodeEncodeError:
        return None
    return v


def seconds(size):
    n, unit = int(size[:-1]), size[-1]
    return n * {"s": 1, "m": 60, "h": 3600}[unit]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--group-by", required=True)
    ap.add_argument("--windows", default="1m")
    args = ap.parse_args()
    groupings = [g.strip() for g in args.group_by.split(",") if g.strip()]
    paths = {g: [pointer(p) for p in g.split("+")] for g in groupings}
    sizes = [s.strip() for s in args.windows.split(",")]
    # (size, start, grouping or None, group) -> [users, events]
    windows = {}
    for line in sys.stdin.buffer:
        line = line.rstrip(b"\n")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            continue
        e = event(text)
        if e is None:
            continue
        ts, uid, root = e
        keys = [(None, None)]
        for g in groupings:
            parts = [value(root, p) for p in paths[g]]
            if len(parts) == 1:
                keys.append((g, parts[0]))
            else:
                keys.append((g, None if all(p is None for p in parts) else tuple(parts)))
        for size in sizes:
            start = ts - ts % seconds(size)
            for key in keys:
                w = windows.setdefault((size, start) + key, [set(), 0])
                w[0].add(uid)
                w[1] += 1
    for (size, start, grouping, group), (users, events) in sorted(
        windows.items(), key=lambda kv: (sizes.index(kv[0][0]), kv[0][1], str(kv[0][2:]))
    ):
        out = {"window": size, "start_ts": start, "unique_users": len(users), "events": events}
        if grouping is not None:
            out["group_by"] = grouping
            out["group"] = list(group) if isinstance(group, tuple) else group
        print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
