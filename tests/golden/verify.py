#!/usr/bin/env python3
"""qforge-verify against PyTorch and llama-perplexity (../shared/golden).

1. Logits: the float32 forward pass over <name>-ref-tokens.json, from the HF
   folder and from the f32 GGUF, within 1e-4 of PyTorch's logits (max abs
   error / max abs logit).
2. Perplexity over the eval text with llama.cpp's own token ids (-c 128):
   - `--numerics ggml` (the default) against llama-perplexity's f32
     `Final estimate`, to 4 significant digits (we also require 1e-5
     relative: what is left is float summation order);
   - `--numerics f32` against PyTorch's figure for the same ids (1e-6
     relative);
   - `-f eval.txt` (our tokenizer) gives the same figures as the ids.
3. KL divergence of every GGUF in the tree that has a row in
   <name>-kld.tsv, against the f32 GGUF: mean KLD within 2% of the table
   (plus half a unit of its 6th decimal, the table's own rounding), Mean
   PPL(Q) within 0.3%, same-top rate within 0.5 percentage points.
   tiny-llama-256 lands within 0.02% on PPL(Q); stories260K, scored out of
   its domain (PPL ~100), moves by up to 0.2% under float summation-order
   differences, hence 0.3%.

Prints "ok ..." / "not ok ..." lines.
"""
import json
import os
import subprocess
import sys

GOLDEN = os.environ.get("QF_GOLDEN", "../shared/golden")
BIN = os.environ.get("QF_BIN", "build/bin")
BUILD = os.environ.get("QF_BUILD", "build")
MODELS = os.path.join(GOLDEN, "..", "models")
THREADS = "2"

failures = 0


def report(ok, name, detail=""):
    global failures
    if ok:
        print("ok %s%s" % (name, (": " + detail) if detail else ""))
    else:
        failures += 1
        print("not ok %s: %s" % (name, detail))


def run(args):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p.returncode, p.stdout, p.stderr


def verify_json(args):
    rc, out, err = run([os.path.join(BIN, "qforge-verify"), "-q", "--json", "-t", THREADS] + args)
    if rc != 0:
        return None, err.strip()
    return json.loads(out), ""


def final_estimate(log):
    for line in open(log, encoding="utf-8"):
        if line.startswith("Final estimate: PPL = "):
            return float(line.split()[4])
    return None


def logits_checks(name):
    g = os.path.join(GOLDEN, name)
    util = os.path.join(BUILD, "tests", "util_logits")
    for label, src in (("HF folder", os.path.join(MODELS, name)),
                       ("f32 GGUF", os.path.join(g, name + "-f32.gguf"))):
        rc, out, err = run([util, src, os.path.join(g, name + "-ref-tokens.json"),
                            os.path.join(g, name + "-ref-logits.f32"), "-t", THREADS])
        if rc != 0:
            report(False, "%s logits vs PyTorch (%s)" % (name, label), err.strip())
            continue
        f = dict(kv.split("=") for kv in out.split())
        rel = float(f["rel"])
        report(rel <= 1e-4, "%s logits vs PyTorch (%s)" % (name, label),
               "max abs err / max abs logit = %.3g (limit 1e-4), argmax agree %s" %
               (rel, f["argmax_agree"]))


def ppl_checks(name):
    g = os.path.join(GOLDEN, name)
    toks = os.path.join(g, name + "-eval-llamacpp-tokens.json")
    f32 = os.path.join(g, name + "-f32.gguf")
    ref = json.load(open(os.path.join(g, name + "-ref.json")))
    llama = final_estimate(os.path.join(g, "logs", name + "-perplexity-f32.log"))
    ggml, err = verify_json(["-m", f32, "--tokens", toks, "-c", "128"])
    if ggml is None:
        report(False, "%s perplexity" % name, err)
        return
    ours = ggml["ppl"]["value"]
    report("%.4g" % ours == "%.4g" % llama, "%s f32 perplexity vs llama-perplexity (4 digits)" % name,
           "%.6f vs %.4f" % (ours, llama))
    # the log prints 4 decimals; the KLD logs' Mean PPL(base) (tiny-llama-256) and
    # -ref.json keep more: compare with the finest figure we have
    fine = ref.get("llama_cpp_kld_base_mean_ppl") if name == "tiny-llama-256" else llama
    report(abs(ours / fine - 1) < 1e-5, "%s f32 perplexity vs llama-perplexity (1e-5 relative)" % name,
           "%.6f vs %s, %.2g relative" % (ours, fine, abs(ours / fine - 1)))
    pure, err = verify_json(["-m", os.path.join(MODELS, name), "--tokens", toks, "-c", "128",
                             "--numerics", "f32"])
    if pure is None:
        report(False, "%s perplexity (--numerics f32)" % name, err)
    else:
        torch = ref["full_eval_llama_cpp_tokens"]["torch_ppl"]
        v = pure["ppl"]["value"]
        report(abs(v / torch - 1) < 1e-6, "%s perplexity --numerics f32 vs PyTorch" % name,
               "%.7f vs %.7f, %.2g relative" % (v, torch, abs(v / torch - 1)))
    text, err = verify_json(["-m", f32, "-f", os.path.join(MODELS, "tiny-llama-256", "eval.txt"),
                             "-c", "128"])
    if text is None:
        report(False, "%s perplexity from eval.txt" % name, err)
    else:
        report(text["ppl"] == ggml["ppl"] and text["n_chunks"] == ggml["n_chunks"],
               "%s perplexity from eval.txt equals the one from llama.cpp's ids" % name,
               "%s tokens, PPL %.6f" % (text["n_tokens"], text["ppl"]["value"]))


def kld_checks(name):
    g = os.path.join(GOLDEN, name)
    toks = os.path.join(g, name + "-eval-llamacpp-tokens.json")
    f32 = os.path.join(g, name + "-f32.gguf")
    rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(g, name + "-kld.tsv"), encoding="utf-8")]
    head = rows[0]
    n = 0
    for r in rows[1:]:
        row = dict(zip(head, r))
        path = os.path.join(g, "%s-%s.gguf" % (name, row["type"]))
        if row["type"] == "f32" or not os.path.exists(path):
            continue
        n += 1
        d, err = verify_json(["-m", path, "--ref", f32, "--tokens", toks, "-c", "128"])
        label = "%s %s KLD table row" % (name, row["type"])
        if d is None:
            report(False, label, err)
            continue
        mean, tab = d["kld"]["mean"], float(row["mean_kld"])
        ppl, tppl = d["ppl_q"]["value"], float(row["ppl"])
        same, tsame = 100 * d["same_top"]["value"], float(row["same_top_p"])
        ok = (abs(mean - tab) <= 0.02 * tab + 5e-7 and abs(ppl / tppl - 1) <= 3e-3 and
              abs(same - tsame) <= 0.5)
        report(ok, label,
               "mean KLD %.6f vs %.6f (%+.2f%%), PPL(Q) %.6f vs %.6f, same top %.3f vs %.3f %%, "
               "KLD p99 %.6f vs %s, RMS dp %.3f vs %s %%" %
               (mean, tab, 100 * (mean / tab - 1) if tab else 0.0, ppl, tppl, same, tsame,
                d["kld"]["p99"], row["kld_p99"], 100 * d["rms_dp"]["value"], row["rms_dp"]))
    report(n > 0, "%s: KLD rows checked" % name, "%d GGUFs" % n)


def main():
    if not os.path.isdir(GOLDEN):
        print("not ok golden folder %s missing" % GOLDEN)
        return 1
    for name in ("tiny-llama-256", "stories260K"):
        logits_checks(name)
        ppl_checks(name)
        kld_checks(name)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
