#!/usr/bin/env python3
"""Reference DataSketches images for tests/sketch_interop.rs (tests/golden/).

usage: scripts/golden-sketches.py [--out DIR]     (default DIR: tests/golden)

Requires Python >= 3.8 and, exactly:
    pip install datasketches==5.2.0 xxhash      # xxhash >= 3 (XXH3); tested with 4.1.0

`datasketches` is the official Python binding of Apache DataSketches C++ 5.2.0;
its CPC and HLL_4 images are the reference that `cpc` and `hll4` claim to merge
with. The script refuses to run with another datasketches version (the images
would still be valid, but the pinned estimates in the manifest could move).

What it writes, all deterministic (running it twice gives identical files):
  <family>-lgk<K>-n<N>.bin   serialized reference sketch (CPC image, or the
                             compact HLL_4 image) of the uids "user-0" .. "user-(N-1)"
  <family>-lgk11-probe.bin   sketches updated with 8-byte strings (see PROBES)
  cpc-lgk14-n200000-signed-trap.bin
                             the sketch the bug report measured (see TRAP)
  sketches.json              manifest: per image its file, family, lg_k, n,
                             the reference estimate and the reference union of
                             the image with itself (what a union with an
                             identical sketch of ours must give), each as a
                             decimal and as the IEEE-754 bits (exact)

How a uid reaches the sketch, identical to src/counter/{cpc,hll4}.rs:
  h = XXH3-64(uid UTF-8 bytes, seed 0x64697374696e6374)   (src/hash.rs)
  the sketch hashes the 8 little-endian bytes of h with MurmurHash3_x64_128,
  seed 9001 (the DataSketches default).

The C++ library's update(uint64_t) and update(int64_t) both hash exactly those
8 bytes. The trap is in the Python binding's overloads (nanobind):
  cpc_sketch.update(int) is bound to update(uint64_t),
  hll_sketch.update(int) is bound to update(int64_t),
and both also have an update(float) overload. A Python int outside the bound
type's range (a negative int for CPC, an int >= 2**63 for HLL) is not an
error: nanobind converts it to float and the library hashes the 8 bytes of a
double instead. So h must be passed unsigned to cpc_sketch and as the signed
two's-complement reinterpretation to hll_sketch. feed_cpc/feed_hll below do
that, and check_int_paths() proves on each run, through the string overload
(which hashes raw UTF-8 bytes), that the int path hashes the 8 little-endian
bytes for high-bit-clear and high-bit-set values alike.

TRAP: feeding CPC the signed reinterpretation (what the bug report did, "as
int64") silently routes the ~50 % of hashes >= 2**63 through the float
overload: that sketch is not ours, and its union with ours reads ~1.5 n. The
image is kept so the Rust test pins that number to the reference library's own
union, not to a defect of ours.
"""

import argparse
import json
import os
import struct
import sys
from importlib.metadata import PackageNotFoundError, version

REQUIRED_DATASKETCHES = "5.2.0"

try:
    import datasketches as ds
    import xxhash
except ImportError as e:
    sys.exit(f"golden-sketches.py: {e.name} is missing "
             f"(pip install datasketches=={REQUIRED_DATASKETCHES} xxhash)")

UID_HASH_SEED = 0x6469_7374_696E_6374  # b"distinct", src/hash.rs

# src/hash.rs `hash_is_pinned`: the uid hash must be the crate's, bit for bit.
PINNED = [
    (b"", 0xA37A2E94AF1F9F6D),
    (b"u1", 0x835050E69D03624E),
    ("пользователь-3".encode(), 0xE53031F26EA64647),
    (b"0123456789abcdef0123456789abcdef", 0x0212F50B51E10531),
    (b"x" * 300, 0x2946057DCA797D81),
]

# (family, lg_k, n): both families at lgK 11 through their modes (CPC:
# empty, sparse, hybrid, pinned, sliding; HLL: empty, list, set, HLL_4 with
# and without exceptions), and the production default lgK 14 at the size of
# the bug report.
CASES = [
    (family, lg_k, n)
    for family in ("cpc", "hll4")
    for lg_k, n in [(11, 0), (11, 10), (11, 100), (11, 1000), (11, 5000),
                    (11, 20000), (11, 1000000), (14, 200000)]
]

# 8-byte UTF-8 strings: the string overload hashes exactly these bytes, so a
# sketch of them equals a sketch of the u64 they spell in little-endian order.
# The second has its top bit set (the last byte is 0xa9).
PROBES = ["abcdefgh", "abcdefé"]

TRAP = ("cpc", 14, 200000)


def uid_hash(uid: bytes) -> int:
    return xxhash.xxh3_64_intdigest(uid, seed=UID_HASH_SEED)


def uids(n: int):
    return (f"user-{i}".encode() for i in range(n))


def signed(h: int) -> int:
    return h - (1 << 64) if h >= 1 << 63 else h


def feed_cpc(sketch, h: int) -> None:
    assert 0 <= h < 1 << 64
    sketch.update(h)  # uint64_t overload: the 8 LE bytes of h


def feed_hll(sketch, h: int) -> None:
    sketch.update(signed(h))  # int64_t overload: the same 8 LE bytes


def new_sketch(family: str, lg_k: int):
    if family == "cpc":
        return ds.cpc_sketch(lg_k)
    return ds.hll_sketch(lg_k, ds.tgt_hll_type.HLL_4)


def image(family: str, sketch) -> bytes:
    return sketch.serialize() if family == "cpc" else sketch.serialize_compact()


def union_with_self(family: str, lg_k: int, img: bytes) -> float:
    return union_of(family, lg_k, img, img)


def union_of(family: str, lg_k: int, a: bytes, b: bytes) -> float:
    if family == "cpc":
        u = ds.cpc_union(lg_k)
        u.update(ds.cpc_sketch.deserialize(a))
        u.update(ds.cpc_sketch.deserialize(b))
        return u.get_result().get_estimate()
    u = ds.hll_union(lg_k)
    u.update(ds.hll_sketch.deserialize(a))
    u.update(ds.hll_sketch.deserialize(b))
    return u.get_result(ds.tgt_hll_type.HLL_4).get_estimate()


def check_int_paths() -> None:
    """The int overloads we use hash the 8 little-endian bytes of the value."""
    for probe in PROBES:
        raw = probe.encode()
        assert len(raw) == 8, probe
        h = int.from_bytes(raw, "little")
        for family, feed in (("cpc", feed_cpc), ("hll4", feed_hll)):
            by_int, by_str = new_sketch(family, 11), new_sketch(family, 11)
            feed(by_int, h)
            by_str.update(probe)
            if image(family, by_int) != image(family, by_str):
                sys.exit(f"golden-sketches.py: {family} update(int) does not hash "
                         f"the 8 little-endian bytes of {h:#x}; wrong datasketches?")
    # The trap itself, so that this script documents it by running it.
    h = int.from_bytes(PROBES[1].encode(), "little")
    by_str, wrong = ds.cpc_sketch(11), ds.cpc_sketch(11)
    by_str.update(PROBES[1])
    wrong.update(signed(h))  # negative int: goes through update(double)
    assert wrong.serialize() != by_str.serialize()


def bits(x: float) -> str:
    return f"{struct.unpack('<Q', struct.pack('<d', x))[0]:016x}"


def entry(name: str, family: str, lg_k: int, n, img: bytes, **extra) -> dict:
    est = (ds.cpc_sketch if family == "cpc" else ds.hll_sketch).deserialize(img).get_estimate()
    u = union_with_self(family, lg_k, img)
    e = {"file": name, "family": family, "lg_k": lg_k, "n": n,
         "bytes": len(img),
         "estimate": est, "estimate_bits": bits(est),
         "union_with_self": u, "union_with_self_bits": bits(u)}
    e.update(extra)
    return e


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--out", default=os.path.join(root, "tests", "golden"))
    args = ap.parse_args()

    try:
        have = version("datasketches")
    except PackageNotFoundError:
        have = "unknown"
    if have != REQUIRED_DATASKETCHES:
        sys.exit(f"golden-sketches.py: datasketches {have} installed, "
                 f"{REQUIRED_DATASKETCHES} required (pip install "
                 f"datasketches=={REQUIRED_DATASKETCHES})")
    for data, want in PINNED:
        got = uid_hash(data)
        if got != want:
            sys.exit(f"golden-sketches.py: xxh3 {data[:16]!r} = {got:#x}, want {want:#x}")
    check_int_paths()

    os.makedirs(args.out, exist_ok=True)
    images = {}
    manifest = []

    def write(name: str, img: bytes) -> None:
        with open(os.path.join(args.out, name), "wb") as f:
            f.write(img)

    hashes = [uid_hash(u) for u in uids(max(n for _, _, n in CASES))]
    for family, lg_k, n in CASES:
        sketch = new_sketch(family, lg_k)
        feed = feed_cpc if family == "cpc" else feed_hll
        for h in hashes[:n]:
            feed(sketch, h)
        img = image(family, sketch)
        name = f"{family}-lgk{lg_k}-n{n}.bin"
        write(name, img)
        images[(family, lg_k, n)] = img
        manifest.append(entry(name, family, lg_k, n, img))

    for family in ("cpc", "hll4"):
        sketch = new_sketch(family, 11)
        for probe in PROBES:
            sketch.update(probe)
        img = image(family, sketch)
        name = f"{family}-lgk11-probe.bin"
        write(name, img)
        manifest.append(entry(name, family, 11, None, img, probes=PROBES))

    family, lg_k, n = TRAP
    sketch = ds.cpc_sketch(lg_k)
    for h in hashes[:n]:
        sketch.update(signed(h))  # the bug report's feeding: wrong for CPC
    img = image(family, sketch)
    name = f"{family}-lgk{lg_k}-n{n}-signed-trap.bin"
    write(name, img)
    u = union_of(family, lg_k, images[TRAP], img)
    manifest.append(entry(name, family, lg_k, n, img,
                          union_with_correct=u, union_with_correct_bits=bits(u)))

    doc = {
        "generator": "scripts/golden-sketches.py",
        "datasketches": have,
        "uids": "user-0 .. user-(n-1), XXH3-64 seed 0x64697374696e6374, "
                "fed as the 8 little-endian bytes of the hash",
        "images": manifest,
    }
    with open(os.path.join(args.out, "sketches.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    for e in manifest:
        print(f"{e['file']:40} {e['bytes']:6} B  estimate {e['estimate']:.6f}  "
              f"union with self {e['union_with_self']:.6f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
