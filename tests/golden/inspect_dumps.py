"""qforge-inspect against gguf_dump.py: for every golden dump whose GGUF is in
the tree, the key list (order, types, offsets, scalar values, array element
types and counts) and the tensor table (order, names, types, shapes, info
offsets) must agree."""
import glob
import json
import os
import re
import subprocess
import sys

golden = os.environ["QF_GOLDEN"]
binp = os.environ["QF_BIN"]
fails = 0


def report(ok, what, why=""):
    global fails
    if ok:
        print(f"ok {what}")
    else:
        fails += 1
        print(f"not ok {what}: {why}")


def find_gguf(name):
    hits = [p for p in glob.glob(os.path.join(golden, "**", name), recursive=True)]
    return hits[0] if hits else None


def inspect(path):
    out = subprocess.run([os.path.join(binp, "qforge-inspect"), "--json", "--full", path],
                         capture_output=True, check=True)
    return json.loads(out.stdout)


def same_float(a, b):
    return a == b or (abs(a - b) <= 1e-6 * max(abs(a), abs(b)))


# --- JSON dumps --------------------------------------------------------------
for dump in sorted(glob.glob(os.path.join(golden, "dumps", "*.dump.json"))):
    name = os.path.basename(dump)[: -len(".dump.json")]
    path = find_gguf(name)
    if not path:
        continue
    ref = json.load(open(dump))
    ours = inspect(path)
    meta = ref["metadata"]
    refkeys = [k for k in sorted(meta, key=lambda k: meta[k]["index"]) if not k.startswith("GGUF.")]
    ourkeys = [m["key"] for m in ours["metadata"]]
    report(refkeys == ourkeys, f"{name}: key order", f"{refkeys[:5]} vs {ourkeys[:5]}")
    bykey = {m["key"]: m for m in ours["metadata"]}
    bad = []
    for k in refkeys:
        r, o = meta[k], bykey.get(k)
        if o is None:
            bad.append(k)
            continue
        if r["offset"] != o["offset"] or r["type"] != o["type"]:
            bad.append(f"{k} offset/type {r['offset']}/{r['type']} vs {o['offset']}/{o['type']}")
        elif r["type"] == "ARRAY":
            if r["array_types"][0] != o["array_type"]:
                bad.append(f"{k} array type")
        elif "value" in r:
            rv, ov = r["value"], o["value"]
            if isinstance(rv, float):
                if not same_float(rv, ov):
                    bad.append(f"{k} {rv} vs {ov}")
            elif rv != ov:
                bad.append(f"{k} {rv!r} vs {ov!r}")
    report(not bad, f"{name}: key types, offsets and values", "; ".join(bad[:5]))
    rt = ref["tensors"]
    rnames = sorted(rt, key=lambda n: rt[n]["index"])
    onames = [t["name"] for t in ours["tensors"]]
    report(rnames == onames, f"{name}: tensor order", f"{rnames[:3]} vs {onames[:3]}")
    bad = []
    for t in ours["tensors"]:
        r = rt.get(t["name"])
        if not r or r["shape"] != t["shape"] or r["type"] != t["type"] or r["offset"] != t["info_offset"]:
            bad.append(f"{t['name']}: {r} vs {t['shape']} {t['type']} {t['info_offset']}")
    report(not bad, f"{name}: tensor shapes, types, info offsets", "; ".join(bad[:3]))

# --- text dumps --------------------------------------------------------------
kv_re = re.compile(r"^\s*(\d+): (\[?[A-Z0-9]+\]?)\s*\|\s*(\d+) \| ([^ ]+)(?: = (.*))?$")
t_re = re.compile(r"^\s*(\d+):\s+(\d+) \|\s+([\d, ]+) \| (\S+)\s+\| (.+)$")
for dump in sorted(glob.glob(os.path.join(golden, "**", "*.dump.txt"), recursive=True)):
    name = os.path.basename(dump)[: -len(".dump.txt")]
    path = find_gguf(name)
    if not path:
        continue
    ours = inspect(path)
    bykey = {m["key"]: m for m in ours["metadata"]}
    kv_bad, tens = [], []
    for line in open(dump, encoding="utf-8").read().split("\n"):
        m = kv_re.match(line)
        if m and not m.group(4).startswith("GGUF."):
            typ, count, key = m.group(2), int(m.group(3)), m.group(4)
            o = bykey.get(key)
            if o is None:
                kv_bad.append(f"missing {key}")
            elif typ.startswith("["):
                if o["type"] != "ARRAY" or o["array_type"] != typ[1:-1] or o["count"] != count:
                    kv_bad.append(f"{key}: {typ} x{count}")
            elif o["type"] != typ:
                kv_bad.append(f"{key}: {typ} vs {o['type']}")
            continue
        m = t_re.match(line)
        if m:
            ne = [int(x) for x in m.group(3).split(",")]
            tens.append((m.group(5).strip(), m.group(4), ne, int(m.group(2))))
    report(not kv_bad and len(bykey) > 0, f"{name}.dump.txt: keys", "; ".join(kv_bad[:5]))
    bad = []
    if len(tens) != len(ours["tensors"]):
        bad.append(f"{len(tens)} vs {len(ours['tensors'])} tensors")
    for (n, typ, ne, elems), t in zip(tens, ours["tensors"]):
        shape = t["shape"] + [1] * (4 - len(t["shape"]))
        if n != t["name"] or typ != t["type"] or ne != shape or elems != t["elements"]:
            bad.append(f"{n} {typ} {ne} vs {t['name']} {t['type']} {shape}")
    report(not bad, f"{name}.dump.txt: tensor table", "; ".join(bad[:3]))

sys.exit(1 if fails else 0)
