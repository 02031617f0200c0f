"""Tokenizer keys (convert/vocab.h) against llama.cpp b4747's converter.

For every model folder in ../shared/models, util_vocab_dump writes our
tokenizer.* keys into a GGUF and they are compared with what llama.cpp wrote:

  - stories260K, tiny-llama-256: every tokenizer key of the golden f32 GGUF,
    byte for byte (names, order, types, every token, score and type), and the
    same against every other golden GGUF of the model in the tree (quantized
    files keep the converter's tokenizer keys);
  - tiny-llama-256-sharded, tiny-llama-256-pt, mix-probe-12L (their GGUFs are
    not in the tree; their tokenizer.model is tiny-llama-256's): byte for byte
    against tiny-llama-256-f32.gguf, and mix-probe-12L also against its
    gguf_dump.py JSON (key order, types, counts, scalar values and each pair's
    encoded size from the offsets);
  - each folder: the special ids and add_* flags in the order the convert log
    printed them ("Setting special token type bos to 1", ...);
  - tokenizers/gpt2, tokenizers/smollm, tokenizers/llama2 (no golden GGUF):
    counts, chosen pre-tokenizer, known tokens, types and special ids.

Environment: QF_GOLDEN (golden folder), QF_BUILD (build folder, default
build), QF_MODELS (default $QF_GOLDEN/../models). Prints "ok ..." /
"not ok ..." lines.
"""
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

golden = os.environ.get("QF_GOLDEN", "../shared/golden")
build = os.environ.get("QF_BUILD", "build")
models = os.environ.get("QF_MODELS", os.path.join(golden, "..", "models"))
util = os.path.join(build, "tests", "util_vocab_dump")
fails = 0

SP_KEYS = {"bos": "bos_token_id", "eos": "eos_token_id", "unk": "unknown_token_id",
           "sep": "seperator_token_id", "pad": "padding_token_id", "cls": "cls_token_id",
           "mask": "mask_token_id"}


def report(ok, what, why=""):
    global fails
    if ok:
        print(f"ok {what}")
    else:
        fails += 1
        print(f"not ok {what}: {why}")


def run(*args):
    p = subprocess.run([util, *args], capture_output=True, text=True)
    return p.returncode, p.stdout.strip(), p.stderr.strip()


def get(path, key, index=None):
    rc, out, err = run("get", path, key, *([str(index)] if index is not None else []))
    return out if rc == 0 else None


def keys(path):
    rc, out, _ = run("keys", path)
    rows = []
    for line in out.splitlines():
        k, t, n, b = line.split(" ")
        rows.append((k, t, int(n), int(b)))
    return rows


def log_settings(log):
    """The special ids and add_* flags a convert log printed, in order."""
    found = []
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.search(r"Setting special token type (\w+) to (\d+)", line)
            if m:
                found.append(("tokenizer.ggml." + SP_KEYS[m.group(1)], m.group(2)))
            m = re.search(r"Setting add_(\w+)_token to (\w+)", line)
            if m:
                found.append((f"tokenizer.ggml.add_{m.group(1)}_token", m.group(2).lower()))
    return found


def our_settings(path):
    out = []
    for k, t, n, b in keys(path):
        if k.endswith("_token_id") or (k.startswith("tokenizer.ggml.add_") and k.endswith("_token")):
            out.append((k, get(path, k)))
    return out


def main():
    if not os.path.exists(util):
        report(False, "vocab-golden", f"{util} is not built")
        return
    tmp = tempfile.mkdtemp(prefix="qf-vocab-golden.")
    ours = {}
    for name in ["stories260K", "tiny-llama-256", "tiny-llama-256-sharded", "tiny-llama-256-pt",
                 "mix-probe-12L"]:
        out = os.path.join(tmp, name + ".gguf")
        rc, so, se = run("write", os.path.join(models, name), out)
        report(rc == 0, f"vocab {name}: load and write", se)
        if rc == 0:
            ours[name] = out

    tl_golden = os.path.join(golden, "tiny-llama-256", "tiny-llama-256-f32.gguf")
    # byte-for-byte against the golden f32 GGUFs
    for name, gdir in [("stories260K", "stories260K"), ("tiny-llama-256", "tiny-llama-256"),
                       ("tiny-llama-256-sharded", None), ("tiny-llama-256-pt", None),
                       ("mix-probe-12L", None)]:
        if name not in ours:
            continue
        ref = os.path.join(golden, gdir, f"{gdir}-f32.gguf") if gdir else tl_golden
        rc, so, se = run("compare", ours[name], ref)
        report(rc == 0 and so.startswith("same 9 keys"),
               f"vocab {name}: tokenizer keys equal {os.path.relpath(ref, golden)}", so + se)

    # every other golden GGUF of the two models keeps the same tokenizer keys
    for name in ["stories260K", "tiny-llama-256"]:
        if name not in ours:
            continue
        files = sorted(glob.glob(os.path.join(golden, name, "*.gguf")))
        bad = []
        for f in files:
            rc, so, se = run("compare", ours[name], f)
            if rc != 0:
                bad.append(f"{os.path.basename(f)}: {so or se}")
        report(files and not bad, f"vocab {name}: tokenizer keys equal all {len(files)} golden "
               "GGUFs of the model", "; ".join(bad[:3]))

    # mix-probe-12L against its gguf_dump.py JSON
    dump = os.path.join(golden, "dumps", "mix-probe-12L-f32.gguf.dump.json")
    if "mix-probe-12L" in ours and os.path.exists(dump):
        with open(dump, encoding="utf-8") as f:
            md = json.load(f)["metadata"]
        items = sorted(md.items(), key=lambda kv: kv[1]["index"])
        want = []
        for i, (k, v) in enumerate(items):
            if not k.startswith("tokenizer."):
                continue
            nxt = items[i + 1][1]["offset"] if i + 1 < len(items) else None
            size = nxt - v["offset"] if nxt is not None else None
            t = v["array_types"][0] if v["type"] == "ARRAY" else v["type"]
            want.append((k, t, size, v.get("value")))
        got = keys(ours["mix-probe-12L"])
        why = []
        if [w[0] for w in want] != [g[0] for g in got]:
            why.append(f"keys {[g[0] for g in got]} vs {[w[0] for w in want]}")
        else:
            for (k, t, size, val), (_, gt, gn, gb) in zip(want, got):
                if t != gt:
                    why.append(f"{k}: type {gt} vs {t}")
                if size is not None and size != gb:
                    why.append(f"{k}: {gb} bytes vs {size}")
                if val is not None:
                    mine = get(ours["mix-probe-12L"], k)
                    if str(val).lower() != str(mine).lower():
                        why.append(f"{k}: {mine} vs {val}")
        report(not why, "vocab mix-probe-12L: keys, types, sizes and values equal the f32 dump",
               "; ".join(why))

    # special ids and add_* flags in the order each convert log printed them
    for name in ours:
        base = "tiny-llama-256" if name.startswith("tiny-llama-256") else name
        log = os.path.join(golden, base, "logs", f"{name}-convert-f32.log")
        if not os.path.exists(log):
            report(False, f"vocab {name}: convert log", f"{log} not found")
            continue
        a, b = our_settings(ours[name]), log_settings(log)
        report(a == b and len(b) > 0, f"vocab {name}: special ids and flags as the convert log "
               "sets them", f"ours {a}, log {b}")

    # tokenizers without a golden GGUF
    checks = {
        "gpt2": dict(model="gpt2", pre="gpt-2", n=50257, merges=50000,
                     toks={0: ("!", "1"), 198: ("\u010a", "1"), 50256: ("<|endoftext|>", "3")},
                     merge0="\u0120 t",
                     ids={"bos_token_id": "50256", "eos_token_id": "50256",
                          "unknown_token_id": "50256"}),
        "smollm": dict(model="gpt2", pre="smollm", n=49153, merges=48900,
                       toks={0: ("<|endoftext|>", "3"), 1: ("<|im_start|>", "3"),
                             16: ("<empty_output>", "3"), 17: ("!", "1"),
                             49152: ("[PAD]", "3")},
                       merge0="\u0120 t",
                       ids={"bos_token_id": "0", "eos_token_id": "0", "unknown_token_id": "0",
                            "padding_token_id": "49152"}),
        "llama2": dict(model="llama", pre="default", n=32000, merges=None,
                       toks={0: ("<unk>", "2"), 1: ("<s>", "3"), 2: ("</s>", "3"),
                             3: ("<0x00>", "6"), 258: ("<0xFF>", "6"), 259: ("\u2581\u2581", "1")},
                       merge0=None, ids={}),
    }
    for name, c in checks.items():
        d = os.path.join(models, "tokenizers", name)
        out = os.path.join(tmp, f"tok-{name}.gguf")
        rc, so, se = run("write", d, out)
        if rc != 0:
            report(False, f"vocab tokenizers/{name}", se)
            continue
        why = []
        ks = {k: (t, n) for k, t, n, b in keys(out)}
        if get(out, "tokenizer.ggml.model") != c["model"]:
            why.append(f"model {get(out, 'tokenizer.ggml.model')}")
        if get(out, "tokenizer.ggml.pre") != c["pre"]:
            why.append(f"pre {get(out, 'tokenizer.ggml.pre')}")
        if ks.get("tokenizer.ggml.tokens", (0, 0))[1] != c["n"]:
            why.append(f"{ks.get('tokenizer.ggml.tokens')} tokens")
        if c["merges"] is not None and ks.get("tokenizer.ggml.merges", (0, 0))[1] != c["merges"]:
            why.append(f"merges {ks.get('tokenizer.ggml.merges')}")
        if c["merges"] is None and "tokenizer.ggml.merges" in ks:
            why.append("has merges")
        if (c["model"] == "gpt2") == ("tokenizer.ggml.scores" in ks):
            why.append("scores present" if c["model"] == "gpt2" else "no scores")
        if c["merge0"] and get(out, "tokenizer.ggml.merges", 0) != c["merge0"]:
            why.append(f"merges[0] {get(out, 'tokenizer.ggml.merges', 0)!r}")
        for i, (text, typ) in c["toks"].items():
            t, ty = get(out, "tokenizer.ggml.tokens", i), get(out, "tokenizer.ggml.token_type", i)
            if (t, ty) != (text, typ):
                why.append(f"token {i}: {t!r} type {ty}, expected {text!r} type {typ}")
        id_keys = [k[len("tokenizer.ggml."):] for k in ks if k.endswith("_token_id")]
        if sorted(id_keys) != sorted(c["ids"]):
            why.append(f"ids {id_keys}")
        for k, val in c["ids"].items():
            if get(out, "tokenizer.ggml." + k) != val:
                why.append(f"{k} {get(out, 'tokenizer.ggml.' + k)}")
        report(not why, f"vocab tokenizers/{name}: {c['model']}, pre {c['pre']}, {c['n']} tokens"
               + (f", {c['merges']} merges" if c["merges"] else ""), "; ".join(why))

    for f in glob.glob(os.path.join(tmp, "*")):
        os.remove(f)
    os.rmdir(tmp)


main()
sys.exit(1 if fails else 0)
