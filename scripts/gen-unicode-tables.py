#!/usr/bin/env python3
"""Generate verify/unicode_data.c: the code point classes the tokenizer's
pre-tokenizer regexes use (\\p{L}, \\p{N}, \\p{P}, \\p{S}, \\p{M}, \\s), as
llama.cpp b4747 classifies them.

    apt-get install unicode-data          # Debian: /usr/share/unicode, UCD 15.0.0
    python3 scripts/gen-unicode-tables.py > verify/unicode_data.c

Inputs (the Unicode Character Database files of Debian's `unicode-data`
package, or any UCD folder given as the first argument):

  UnicodeData.txt   General_Category of every assigned code point (ranges
                    written as "<..., First>" / "<..., Last>" pairs expanded)
  PropList.txt      White_Space (what llama.cpp calls \\s)

llama.cpp b4747 (src/unicode-data.cpp) was generated from UCD 15.1.0; Debian
bookworm ships 15.0.0. Unicode 15.1 added exactly 627 code points, all listed
in UCD_15_1_ADDED below (CJK Unified Ideographs Extension I, four Ideographic
Description Characters, one CJK stroke); the script checks that they are
unassigned in the input before adding them, so running it on a 15.1 UCD
gives the same table (and on a later one it refuses, rather than silently
drift from llama.cpp).

Output: one uint32 per range, (first code point << 8) | flags, sorted, each
range running to the next one's start; the last entry starts at 0x110000.
Flags are llama.cpp's unicode_cpt_flags categories, one bit per major
General_Category:

  0x01 undefined (Cn)   0x02 number (N)    0x04 letter (L)   0x08 separator (Z)
  0x10 mark (M)         0x20 punctuation (P) 0x40 symbol (S) 0x80 control (Cc Cf Co Cs)

plus the White_Space code points as a sorted list.

It also checks an assumption verify/tokenizer.c relies on: llama.cpp's
unicode_tolower (simple lowercase mappings) is only used to compare with the
ASCII letters of "'s 't 're 've 'm 'll 'd", and no non-ASCII code point
lowercases to one of those letters, so ASCII tolower gives the same answers.
"""
import os
import sys

MAX = 0x110000
UCD = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/unicode"

FLAG = {
    "Cn": 0x01,
    "Cc": 0x80, "Cf": 0x80, "Co": 0x80, "Cs": 0x80,
    "Ll": 0x04, "Lm": 0x04, "Lo": 0x04, "Lt": 0x04, "Lu": 0x04,
    "Mc": 0x10, "Me": 0x10, "Mn": 0x10,
    "Nd": 0x02, "Nl": 0x02, "No": 0x02,
    "Pc": 0x20, "Pd": 0x20, "Pe": 0x20, "Pf": 0x20, "Pi": 0x20, "Po": 0x20, "Ps": 0x20,
    "Sc": 0x40, "Sk": 0x40, "Sm": 0x40, "So": 0x40,
    "Zl": 0x08, "Zp": 0x08, "Zs": 0x08,
}

# Unicode 15.1.0 additions (https://www.unicode.org/versions/Unicode15.1.0/):
# (first, last, General_Category).
UCD_15_1_ADDED = [
    (0x2EBF0, 0x2EE5D, "Lo"),  # CJK Unified Ideographs Extension I (622)
    (0x2FFC, 0x2FFF, "So"),    # Ideographic Description Characters (4)
    (0x31EF, 0x31EF, "So"),    # CJK STROKE HXG (1)
]


def ucd_version(folder):
    path = os.path.join(folder, "ReadMe.txt")
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if "Version " in line and "of the Unicode Standard" in line:
                    return line.split("Version ")[1].split()[0]
    except OSError:
        pass
    return "unknown"


def read_unicode_data(folder):
    cat = ["Cn"] * MAX
    lower = {}
    first = None
    with open(os.path.join(folder, "UnicodeData.txt"), encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split(";")
            cp, name, gc = int(fields[0], 16), fields[1], fields[2]
            if name.endswith(", First>"):
                first = cp
                continue
            lo = cp if not name.endswith(", Last>") else first
            for c in range(lo, cp + 1):
                cat[c] = gc
            if fields[13]:
                lower[cp] = int(fields[13], 16)
    return cat, lower


def read_white_space(folder):
    ws = []
    with open(os.path.join(folder, "PropList.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.split("#")[0].strip()
            if not line:
                continue
            rng, prop = [x.strip() for x in line.split(";")]
            if prop != "White_Space":
                continue
            a, _, b = rng.partition("..")
            ws.extend(range(int(a, 16), int(b or a, 16) + 1))
    return sorted(ws)


def main():
    version = ucd_version(UCD)
    cat, lower = read_unicode_data(UCD)
    if version == "15.0.0":
        for a, b, gc in UCD_15_1_ADDED:
            for c in range(a, b + 1):
                assert cat[c] == "Cn", "U+%04X already assigned" % c
                cat[c] = gc
        version = "15.1.0 (UCD 15.0.0 + the 627 code points of 15.1.0)"
    elif version != "15.1.0":
        sys.exit("gen-unicode-tables.py: UCD %s; llama.cpp b4747 uses 15.1.0 (see the header)" % version)
    ws = read_white_space(UCD)
    # llama.cpp's generator hard-codes this White_Space list.
    expect = sorted(list(range(0x9, 0xE)) + list(range(0x2000, 0x200B)) +
                    [0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000])
    assert ws == expect, ws
    for cp, lo in lower.items():
        if cp >= 0x80 and lo < 0x80 and chr(lo) in "stmdrvel":
            sys.exit("U+%04X lowercases to %c: ASCII tolower is not enough" % (cp, lo))

    ranges = []
    prev = None
    for c in range(MAX):
        fl = FLAG[cat[c]]
        if fl != prev:
            ranges.append((c, fl))
            prev = fl
    ranges.append((MAX, 0))

    out = sys.stdout
    out.write("/*\n * verify/unicode_data.c - generated by scripts/gen-unicode-tables.py; do not edit.\n")
    out.write(" * Unicode %s, General_Category and White_Space, as llama.cpp b4747's\n" % version)
    out.write(" * unicode-data.cpp classifies code points. %d ranges, %d whitespace code points.\n"
              % (len(ranges), len(ws)))
    out.write(" */\n#include \"verify/tokenizer_impl.h\"\n\n")
    out.write("const char qf_unicode_version[] = \"%s\";\n\n" % version.split(" ")[0])
    out.write("/* (first code point << 8) | flags; a range runs to the next start. */\n")
    out.write("const uint32_t qf_unicode_ranges[] = {\n")
    for i in range(0, len(ranges), 6):
        row = ranges[i:i + 6]
        out.write("    " + " ".join("0x%08X," % ((c << 8) | f) for c, f in row) + "\n")
    out.write("};\n")
    out.write("const size_t qf_unicode_n_ranges = sizeof qf_unicode_ranges / sizeof qf_unicode_ranges[0];\n\n")
    out.write("const uint32_t qf_unicode_whitespace[] = {\n")
    for i in range(0, len(ws), 8):
        out.write("    " + " ".join("0x%04X," % c for c in ws[i:i + 8]) + "\n")
    out.write("};\n")
    out.write("const size_t qf_unicode_n_whitespace =\n"
              "    sizeof qf_unicode_whitespace / sizeof qf_unicode_whitespace[0];\n")


if __name__ == "__main__":
    main()
