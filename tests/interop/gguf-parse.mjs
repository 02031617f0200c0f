// Parse GGUF files with @huggingface/gguf (an independent implementation)
// and compare everything it reports with qforge-inspect --json --full:
// tensor names, order, types, shapes, data offsets; every metadata key, in
// order, with its value (arrays element by element).
//   node gguf-parse.mjs QF_BIN FILE...      prints "ok ..." / "not ok ..." lines
import { gguf, GGMLQuantizationType } from "@huggingface/gguf";
import { execFileSync } from "node:child_process";
import path from "node:path";

const [bin, ...files] = process.argv.slice(2);
let failed = 0;
const report = (ok, what, why = "") => {
  if (!ok) failed++;
  console.log(ok ? `ok ${what}` : `not ok ${what}: ${why}`);
};
const f32 = (x) => Math.fround(Number(x));
const same = (a, b) =>
  typeof a === "number" && typeof b === "number"
    ? a === b || f32(a) === f32(b) || Math.abs(a - b) <= 1e-12 * Math.max(Math.abs(a), Math.abs(b))
    : typeof a === "bigint" || typeof b === "bigint"
      ? BigInt(a) === BigInt(b)
      : a === b;

for (const file of files) {
  const name = path.basename(file);
  const theirs = await gguf(file, { allowLocalFile: true, computeParametersCount: true });
  const ours = JSON.parse(execFileSync(path.join(bin, "qforge-inspect"), ["--json", "--full", file], { maxBuffer: 1 << 30 }));

  report(theirs.littleEndian === true, `${name}: little-endian`);
  report(BigInt(ours.data_offset) === theirs.tensorDataOffset, `${name}: data offset`,
    `${ours.data_offset} vs ${theirs.tensorDataOffset}`);

  // tensors
  const ti = theirs.tensorInfos;
  let bad = [];
  if (ti.length !== ours.tensors.length) bad.push(`${ti.length} vs ${ours.tensors.length} tensors`);
  ti.forEach((t, i) => {
    const o = ours.tensors[i];
    if (!o) return;
    const shape = t.shape.map(Number);
    if (t.name !== o.name) bad.push(`#${i} name ${t.name} vs ${o.name}`);
    if (GGMLQuantizationType[t.dtype] !== o.type) bad.push(`${t.name} type ${GGMLQuantizationType[t.dtype]} vs ${o.type}`);
    if (JSON.stringify(shape) !== JSON.stringify(o.shape)) bad.push(`${t.name} shape ${shape} vs ${o.shape}`);
    if (BigInt(o.offset) !== t.offset) bad.push(`${t.name} offset ${t.offset} vs ${o.offset}`);
  });
  report(bad.length === 0, `${name}: ${ti.length} tensors (names, types, shapes, offsets)`, bad.slice(0, 3).join("; "));
  const elems = ours.tensors.reduce((s, t) => s + t.elements, 0);
  report(theirs.parameterCount === elems, `${name}: parameter count ${elems}`, `${theirs.parameterCount}`);

  // metadata
  const keys = Object.keys(theirs.metadata).filter((k) => !["version", "tensor_count", "kv_count"].includes(k));
  const ourKeys = ours.metadata.map((m) => m.key);
  report(JSON.stringify(keys) === JSON.stringify(ourKeys), `${name}: ${keys.length} keys in order`,
    `${keys.slice(0, 4)} vs ${ourKeys.slice(0, 4)}`);
  bad = [];
  for (const m of ours.metadata) {
    const v = theirs.metadata[m.key];
    if (Array.isArray(v)) {
      if (!Array.isArray(m.value) || v.length !== m.value.length) bad.push(`${m.key}: length`);
      else {
        const i = v.findIndex((x, j) => !same(x, m.value[j]));
        if (i >= 0) bad.push(`${m.key}[${i}]: ${v[i]} vs ${m.value[i]}`);
      }
    } else if (!same(v, m.value)) {
      bad.push(`${m.key}: ${v} vs ${m.value}`);
    }
  }
  report(bad.length === 0, `${name}: every value`, bad.slice(0, 3).join("; "));
}
process.exit(failed ? 1 : 0);
