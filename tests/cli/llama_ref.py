#!/usr/bin/env python3
"""An independent reference forward pass for small Hugging Face LLaMA-family
folders (llama/mistral, qwen2, qwen3), written from the transformers
modeling code's definitions, in float64 pure Python (no numpy): safetensors
F32 weights as stored (q/k rows in HF's rotate_half order), RMSNorm, RoPE
by rotate_half with theta and llama3 rope_scaling, GQA, q/k/v biases
(qwen2), per-head q/k RMSNorm before RoPE (qwen3), SwiGLU, tied or untied
head.

    llama_ref.py MODEL_DIR TOKENS.json OUT.f32
        writes the logits (n_tokens x vocab, float32 little-endian, row-major)
    llama_ref.py --sharpen MODEL_DIR
        scales q/k projections (and their biases) by 12 and the embeddings
        (and head) by 20 in place, so that attention is peaked and logits spread: with
        util_genmodel's N(0, 0.02) weights attention is nearly uniform and a
        wrong RoPE pairing would go unnoticed.

For tests only: it is slow beyond a few hundred thousand weights.
"""
import json
import math
import os
import struct
import sys


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", "F32 safetensors only"
        a, b = t["data_offsets"]
        flat = struct.unpack("<%df" % ((b - a) // 4), data[a:b])
        shape = t["shape"]
        if len(shape) == 1:
            out[name] = list(flat)
        else:
            rows, cols = shape
            out[name] = [list(flat[r * cols:(r + 1) * cols]) for r in range(rows)]
    return out


def matvec(m, x, bias=None):
    y = [sum(w * v for w, v in zip(row, x)) for row in m]
    if bias is not None:
        y = [a + b for a, b in zip(y, bias)]
    return y


def rmsnorm(x, w, eps):
    s = 1.0 / math.sqrt(sum(v * v for v in x) / len(x) + eps)
    return [v * s * g for v, g in zip(x, w)]


def inv_freqs(cfg, dim):
    base = cfg.get("rope_theta", 10000.0)
    f = [1.0 / base ** (i / dim) for i in range(0, dim, 2)]
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type", rs.get("type")) == "llama3":
        factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        lw, hw = old / low, old / high
        g = []
        for v in f:
            wl = 2 * math.pi / v
            if wl < hw:
                g.append(v)
            elif wl > lw:
                g.append(v / factor)
            else:
                s = (old / wl - low) / (high - low)
                g.append((1 - s) * v / factor + s * v)
        f = g
    elif rs and rs.get("rope_type", rs.get("type")) == "linear":
        f = [v / rs["factor"] for v in f]
    return f


def rope(x, pos, freqs):
    half = len(x) // 2
    out = list(x)
    for i in range(half):
        c, s = math.cos(pos * freqs[i]), math.sin(pos * freqs[i])
        out[i] = x[i] * c - x[i + half] * s
        out[i + half] = x[i + half] * c + x[i] * s
    return out


def sharpen(folder):
    path = os.path.join(folder, "model.safetensors")
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = bytearray(raw[8 + n:])
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if "q_proj" in name or "k_proj" in name:
            k = 12.0
        elif "embed_tokens" in name or "lm_head" in name:
            k = 20.0
        else:
            continue
        a, b = t["data_offsets"]
        v = struct.unpack("<%df" % ((b - a) // 4), bytes(data[a:b]))
        data[a:b] = struct.pack("<%df" % len(v), *[x * k for x in v])
    with open(path, "wb") as f:
        f.write(raw[:8 + n] + bytes(data))


def main():
    if sys.argv[1] == "--sharpen":
        sharpen(sys.argv[2])
        return
    folder, tok_path, out_path = sys.argv[1:4]
    cfg = json.load(open(os.path.join(folder, "config.json")))
    W = load_safetensors(os.path.join(folder, "model.safetensors"))
    toks = json.load(open(tok_path))
    d, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim", d // nh)
    eps = cfg.get("rms_norm_eps", 1e-6)
    arch = cfg["architectures"][0]
    freqs = inv_freqs(cfg, hd)
    embed = W["model.embed_tokens.weight"]
    head = W.get("lm_head.weight", embed)
    L = cfg["num_hidden_layers"]
    keys = [[] for _ in range(L)]
    vals = [[] for _ in range(L)]
    logits = []
    for pos, t in enumerate(toks):
        x = list(embed[t])
        for l in range(L):
            p = "model.layers.%d." % l
            a = p + "self_attn."
            h = rmsnorm(x, W[p + "input_layernorm.weight"], eps)
            q = matvec(W[a + "q_proj.weight"], h, W.get(a + "q_proj.bias"))
            k = matvec(W[a + "k_proj.weight"], h, W.get(a + "k_proj.bias"))
            v = matvec(W[a + "v_proj.weight"], h, W.get(a + "v_proj.bias"))
            qh = [q[i * hd:(i + 1) * hd] for i in range(nh)]
            kh = [k[i * hd:(i + 1) * hd] for i in range(nkv)]
            vh = [v[i * hd:(i + 1) * hd] for i in range(nkv)]
            if "Qwen3" in arch:
                qh = [rmsnorm(z, W[a + "q_norm.weight"], eps) for z in qh]
                kh = [rmsnorm(z, W[a + "k_norm.weight"], eps) for z in kh]
            qh = [rope(z, pos, freqs) for z in qh]
            kh = [rope(z, pos, freqs) for z in kh]
            keys[l].append(kh)
            vals[l].append(vh)
            att = []
            for i in range(nh):
                g = i // (nh // nkv)
                sc = [sum(a_ * b_ for a_, b_ in zip(qh[i], keys[l][j][g])) / math.sqrt(hd)
                      for j in range(pos + 1)]
                m = max(sc)
                e = [math.exp(s - m) for s in sc]
                z = sum(e)
                att += [sum(e[j] / z * vals[l][j][g][c] for j in range(pos + 1)) for c in range(hd)]
            o = matvec(W[a + "o_proj.weight"], att)
            x = [u + w for u, w in zip(x, o)]
            h = rmsnorm(x, W[p + "post_attention_layernorm.weight"], eps)
            gt = matvec(W[p + "mlp.gate_proj.weight"], h)
            up = matvec(W[p + "mlp.up_proj.weight"], h)
            hh = [gv / (1 + math.exp(-gv)) * uv for gv, uv in zip(gt, up)]
            dn = matvec(W[p + "mlp.down_proj.weight"], hh)
            x = [u + w for u, w in zip(x, dn)]
        x = rmsnorm(x, W["model.norm.weight"], eps)
        logits += matvec(head, x)
    with open(out_path, "wb") as f:
        f.write(struct.pack("<%df" % len(logits), *logits))


if __name__ == "__main__":
    main()
