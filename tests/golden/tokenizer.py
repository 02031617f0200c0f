"""qforge-tokenize against the token ids of ../shared/golden/tokenizers/.

Every oracle file there is compared line by line (the corpus split on LF
only; a final LF ends the last line) or, for the `whole` files, as one list:

  - tiny-llama-256, stories260K `.llama-tokenize.{bos,nobos,bos.no-parse-special}`
    and `.whole.{bos,bos.no-parse-special}`: llama.cpp's llama-tokenize on the
    golden f32 GGUFs. Checked for the GGUF and for the HF folder
    (../shared/models/<name>, read as qforge-convert reads it).
  - llama2, gpt2 `.llama-tokenize.{default,no-parse-special}`: llama.cpp's own
    vocab GGUFs. We have the tokenizer files only: the folder is read
    directly (qforge-tokenize's tokenizer-files path), and also through a GGUF
    that util_vocab_dump writes from it (the path every model takes).
  - gpt2, smollm `.tokenizers-js[.whole].ids.json` (Hugging Face tokenizers.js,
    no BOS): where llama.cpp agrees with tokenizers.js, so must we. One known
    disagreement is checked as such (EXPECTED below): smollm's first
    pre-tokenizer step is llama.cpp's `\p{N}`, which splits off every Unicode
    number, U+2460 CIRCLED DIGIT ONE (No) included, where tokenizers.js's
    Digits step keeps " \u2460" together for ByteLevel; so corpus line 45
    ends [216 " ", 173 ...] for llama.cpp and us, [4636 " \xe2", ...] for
    tokenizers.js.
  - llama2, tiny-llama-256 `.sentencepiece[.bos|.whole.bos].ids.json`: Python
    sentencepiece, which llama.cpp equals when special tokens are not parsed
    (stories260K's are skipped: its model normalizes whitespace, llama.cpp
    does not; see the golden README).

Environment: QF_GOLDEN, QF_BIN, QF_BUILD, QF_MODELS (default
$QF_GOLDEN/../models). Prints "ok ..." / "not ok ..." lines; a failure names
the first differing line with both id lists.
"""
import json
import os
import subprocess
import sys
import tempfile

golden = os.environ.get("QF_GOLDEN", "../shared/golden")
build = os.environ.get("QF_BUILD", "build")
qbin = os.environ.get("QF_BIN", os.path.join(build, "bin"))
models = os.environ.get("QF_MODELS", os.path.join(golden, "..", "models"))
tok_dir = os.path.join(golden, "tokenizers")
tool = os.path.join(qbin, "qforge-tokenize")
util = os.path.join(build, "tests", "util_vocab_dump")
corpus = os.path.join(tok_dir, "corpus.txt")
fails = 0

# Oracle file -> (line or None for whole files, their ids, our ids, why): the
# only differences accepted, each a replacement of one run of ids.
EXPECTED = {
    "smollm.tokenizers-js.ids.json":
        (45, [4636], [216, 173], "llama.cpp's \\p{N} splits off U+2460, tokenizers.js's Digits does not"),
    "smollm.tokenizers-js.whole.ids.json":
        (None, [4636], [216, 173], "llama.cpp's \\p{N} splits off U+2460, tokenizers.js's Digits does not"),
}


def expected_diff(got, want, exp):
    """got differs from want exactly by the one replacement exp gives."""
    _, theirs, ours, _ = exp
    for k in range(len(want) - len(theirs) + 1):
        if want[k:k + len(theirs)] == theirs and want[:k] + ours + want[k + len(theirs):] == got:
            return True
    return False


def report(ok, what, why=""):
    global fails
    if ok:
        print(f"ok {what}")
    else:
        fails += 1
        print(f"not ok {what}: {why}")


def run_tok(model, flags, whole):
    args = [tool, "-m", model, "-f", corpus, "--ids"] + flags
    if not whole:
        args.append("--lines")
    p = subprocess.run(args, capture_output=True)
    if p.returncode != 0:
        return None, p.stderr.decode("utf-8", "replace").strip()
    out = [json.loads(line) for line in p.stdout.decode().splitlines()]
    return (out[0] if whole else out), None


def compare(what, model, flags, oracle):
    with open(os.path.join(tok_dir, oracle), encoding="utf-8") as f:
        want = json.load(f)
    whole = ".whole." in oracle
    exp = EXPECTED.get(oracle)
    got, err = run_tok(model, flags, whole)
    if got is None:
        report(False, what, f"qforge-tokenize failed: {err}")
        return
    if whole:
        if got == want:
            report(True, f"{what}: whole file, {len(want)} ids")
        elif exp and expected_diff(got, want, exp):
            report(True, f"{what}: whole file, {len(got)} ids, equal but for the expected "
                   f"difference ({exp[3]})")
        else:
            k = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]),
                     min(len(got), len(want)))
            report(False, f"{what}: whole file",
                   f"{len(got)} ids vs {len(want)}, first difference at id {k}: "
                   f"ours {got[k:k + 8]} theirs {want[k:k + 8]}")
        return
    same = sum(1 for a, b in zip(got, want) if a == b)
    if len(got) == len(want) and same == len(want):
        report(True, f"{what}: {same}/{len(want)} lines")
        return
    bad = [i for i in range(max(len(got), len(want)))
           if i >= len(got) or i >= len(want) or got[i] != want[i]]
    if (exp and len(got) == len(want) and bad == [exp[0] - 1]
            and expected_diff(got[bad[0]], want[bad[0]], exp)):
        report(True, f"{what}: {same}/{len(want)} lines, and line {exp[0]} differs as "
               f"expected ({exp[3]})")
        return
    i = bad[0]
    report(False, f"{what}: {same}/{len(want)} lines",
           f"{len(got)} lines vs {len(want)}; lines differing: {[b + 1 for b in bad]}; "
           f"line {i + 1}: ours {got[i] if i < len(got) else None} "
           f"theirs {want[i] if i < len(want) else None}")


def main():
    if not os.path.exists(tool):
        report(False, "qforge-tokenize", f"{tool} not built")
        return
    modes = [("bos", []), ("nobos", ["--no-bos"]),
             ("bos.no-parse-special", ["--no-parse-special"]),
             ("whole.bos", []), ("whole.bos.no-parse-special", ["--no-parse-special"])]
    for name in ("tiny-llama-256", "stories260K"):
        gguf = os.path.join(golden, name, f"{name}-f32.gguf")
        folder = os.path.join(models, name)
        for mode, flags in modes:
            oracle = f"{name}.llama-tokenize.{mode}.ids.json"
            compare(f"{oracle} (GGUF)", gguf, flags, oracle)
            if os.path.isdir(folder):
                compare(f"{oracle} (HF folder)", folder, flags, oracle)

    with tempfile.TemporaryDirectory() as tmp:
        for name in ("llama2", "gpt2", "smollm"):
            folder = os.path.join(models, "tokenizers", name)
            gguf = os.path.join(tmp, f"{name}.gguf")
            p = subprocess.run([util, "write", folder, gguf], capture_output=True, text=True)
            if p.returncode != 0:
                report(False, f"util_vocab_dump write {name}", p.stderr.strip())
                gguf = None
            sources = [("folder", folder)] + ([("GGUF", gguf)] if gguf else [])
            for kind, model in sources:
                if name in ("llama2", "gpt2"):
                    for mode, flags in (("default", []),
                                        ("no-parse-special", ["--no-parse-special"])):
                        oracle = f"{name}.llama-tokenize.{mode}.ids.json"
                        compare(f"{oracle} ({kind})", model, flags, oracle)
                if name in ("gpt2", "smollm"):
                    for oracle in (f"{name}.tokenizers-js.ids.json",
                                   f"{name}.tokenizers-js.whole.ids.json"):
                        compare(f"{oracle} ({kind})", model, ["--no-bos"], oracle)
                if name == "llama2":
                    for oracle, flags in (
                            ("llama2.sentencepiece.ids.json", ["--no-bos"]),
                            ("llama2.sentencepiece.bos.ids.json", []),
                            ("llama2.sentencepiece.whole.bos.ids.json", [])):
                        compare(f"{oracle} ({kind})", model, flags + ["--no-parse-special"],
                                oracle)

    gguf = os.path.join(golden, "tiny-llama-256", "tiny-llama-256-f32.gguf")
    for oracle, flags in (("tiny-llama-256.sentencepiece.ids.json", ["--no-bos"]),
                          ("tiny-llama-256.sentencepiece.bos.ids.json", []),
                          ("tiny-llama-256.sentencepiece.whole.bos.ids.json", [])):
        compare(f"{oracle} (GGUF)", gguf, flags + ["--no-parse-special"], oracle)


main()
sys.exit(1 if fails else 0)
