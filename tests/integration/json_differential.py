#!/usr/bin/env python3
"""Differential test of sluice's JSON parser against Python's json module.

Generates seeded corpora of valid and invalid JSON documents (nesting, escapes, \\u
surrogate pairs and lone surrogates, control characters, invalid UTF-8 including overlongs,
encoded surrogates and code points above U+10FFFF, numbers at the edges, trailing garbage,
nesting around the depth limit of 128), runs them through sl_jsoncheck and compares:

  1. valid/invalid agreement per document;
  2. for valid documents, the value our tape re-serialization denotes (every string decoded
     and re-escaped) equals the value Python parses from the input, type-strictly;
  3. compact valid documents round-trip byte for byte through sl_record_write;
  4. record edits (nested set, delete, append) give the members, values and member order
     Python's dict semantics predict.

Python is the reference with three adjustments that RFC 8259 parsing here requires: the
input bytes are decoded as strict UTF-8 first; NaN/Infinity constants are invalid; a
string holding a lone surrogate (from a \\u escape) is invalid; and nesting deeper than
128 is invalid.

Exit status 0 when everything agrees; 1 with the offending document printed otherwise.
"""
import argparse
import json
import os
import random
import subprocess
import sys

MAX_DEPTH = 128


class Invalid(Exception):
    pass


def reject_constant(name):
    raise Invalid("constant " + name)


def has_surrogate(s):
    return any(0xD800 <= ord(c) <= 0xDFFF for c in s)


class Pairs(list):
    """An object as parsed: every (key, value) pair, duplicates included, so that values a
    later duplicate key hides from a dict are still checked."""


def check_tree(v, depth):
    """Reject lone surrogates (keys and values) and nesting deeper than MAX_DEPTH."""
    if isinstance(v, str):
        if has_surrogate(v):
            raise Invalid("lone surrogate")
        return
    if isinstance(v, (list, Pairs)):
        if depth + 1 > MAX_DEPTH:
            raise Invalid("too deep")
        for x in v:
            if isinstance(v, Pairs):
                check_tree(x[0], depth + 1)
                check_tree(x[1], depth + 1)
            else:
                check_tree(x, depth + 1)


def to_plain(v, dups):
    """Pairs -> dict with the last duplicate winning (as json.loads does)."""
    if isinstance(v, Pairs):
        d = {}
        for k, x in v:
            if k in d:
                dups[0] = True
            d[k] = to_plain(x, dups)
        return d
    if isinstance(v, list):
        return [to_plain(x, dups) for x in v]
    return v


def py_parse(doc):
    """Return (True, value, has_dup_keys) or (False, reason, False)."""
    try:
        text = doc.decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        return False, "utf-8: %s" % e, False
    dups = [False]
    try:
        v = json.loads(text, parse_constant=reject_constant, object_pairs_hook=Pairs)
        check_tree(v, 0)
        v = to_plain(v, dups)
    except (ValueError, Invalid, RecursionError) as e:
        return False, str(e), False
    return True, v, dups[0]


def canon(v):
    """A type-strict comparable form (True != 1, 1 != 1.0 is NOT distinguished for floats
    written identically, because both sides parse the same text)."""
    if v is None:
        return ("null",)
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int):
        return ("int", v)
    if isinstance(v, float):
        return ("float", repr(v))
    if isinstance(v, str):
        return ("str", v)
    if isinstance(v, list):
        return ("list", tuple(canon(x) for x in v))
    if isinstance(v, dict):
        return ("dict", tuple(sorted((k, canon(x)) for k, x in v.items())))
    raise TypeError(type(v))


# ---------------------------------------------------------------- generation

EDGE_NUMBERS = [
    "0", "-0", "-0.0", "0.0", "1", "-1", "1e400", "-1e400", "1e-400", "1.0e-5", "1E+2",
    "1e2", "1E-2", "2.5e+0", "0.1", "19.99", "123456789012345678901234567890",
    "-123456789012345678901234567890", "9007199254740993", "9007199254740992",
    "-9007199254740993", "9223372036854775807", "9223372036854775808",
    "-9223372036854775809", "5e-324", "4.9406564584124654e-324",
    "2.2250738585072011e-308", "1.7976931348623157e308", "1.7976931348623159e308",
    "0.30000000000000004", "1" + "0" * 300, "0." + "0" * 50 + "1", "12.50", "1e0", "0e0",
    "-0E-0",
]

SIMPLE_ESCAPES = ['\\"', "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t"]
UNI_CHARS = ["\u00e9", "\u20ac", "\U0001F600", "\u4e2d", "\uffff", "\U0010FFFF", "\u0800",
             "\u0080", "\u07ff", "\U00010000", "\u2028", "\ufeff"]
KEYS = ["k0", "k1", "k2", "event_id", "a", "b", "", "tags", "device", "\u00e9t\u00e9"]


def gen_string_body(rng):
    out = []
    for _ in range(rng.randrange(0, 12)):
        r = rng.random()
        if r < 0.45:
            out.append(rng.choice("abcdefghijklmnopqrstuvwxyz ABCXYZ0123456789-_:/.,{}[]'"))
        elif r < 0.6:
            out.append(rng.choice(SIMPLE_ESCAPES))
        elif r < 0.72:
            cp = rng.choice([rng.randrange(0, 0x20), rng.randrange(0x20, 0xD800),
                             rng.randrange(0xE000, 0x10000), 0x22, 0x5C, 0])
            h = "%04x" % cp
            out.append("\\u" + (h.upper() if rng.random() < 0.5 else h))
        elif r < 0.8:
            cp = rng.randrange(0x10000, 0x110000)
            v = cp - 0x10000
            hi, lo = 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF)
            out.append("\\u%04X\\u%04x" % (hi, lo))
        else:
            out.append(rng.choice(UNI_CHARS))
    return "".join(out)


def ws(rng, style):
    if style == 0 or rng.random() < 0.6:
        return ""
    return "".join(rng.choice(" \t\n\r") for _ in range(rng.randrange(1, 3)))


def gen_value(rng, depth, style, maxd):
    r = rng.random()
    if depth < maxd and r < 0.35:
        if rng.random() < 0.5:
            n = rng.randrange(0, 5)
            return "[" + ws(rng, style) + ",".join(
                ws(rng, style) + gen_value(rng, depth + 1, style, maxd) + ws(rng, style)
                for _ in range(n)) + ws(rng, style) + "]"
        n = rng.randrange(0, 5)
        members = []
        for _ in range(n):
            key = rng.choice(KEYS) if rng.random() < 0.5 else gen_string_body(rng)
            members.append(ws(rng, style) + '"' + key + '"' + ws(rng, style) + ":" +
                           ws(rng, style) + gen_value(rng, depth + 1, style, maxd) +
                           ws(rng, style))
        return "{" + ws(rng, style) + ",".join(members) + ws(rng, style) + "}"
    r = rng.random()
    if r < 0.3:
        return '"' + gen_string_body(rng) + '"'
    if r < 0.55:
        return rng.choice(EDGE_NUMBERS)
    if r < 0.75:
        return gen_number(rng)
    return rng.choice(["true", "false", "null"])


def gen_number(rng):
    s = rng.choice(["", "-"])
    s += rng.choice(["0", str(rng.randrange(1, 10)) + "".join(
        rng.choice("0123456789") for _ in range(rng.randrange(0, 20)))])
    if rng.random() < 0.4:
        s += "." + "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 18)))
    if rng.random() < 0.3:
        s += rng.choice("eE") + rng.choice(["", "+", "-"]) + str(rng.randrange(0, 400))
    return s


def gen_record(rng, style):
    """A top-level object shaped like an event, often with k0/k1."""
    keys = rng.sample(KEYS, rng.randrange(1, 7))
    members = []
    for k in keys:
        v = gen_value(rng, 1, style, 4)
        if k == "k1" and rng.random() < 0.6:
            v = "{" + ",".join('"%s":%s' % (kk, gen_value(rng, 2, style, 4))
                               for kk in rng.sample(["inner", "x", "y"], rng.randrange(0, 3))) + "}"
        members.append('"%s"%s:%s%s' % (k, ws(rng, style), ws(rng, style), v))
    return "{" + ",".join(members) + "}"


def nest(depth, rng, inner="1"):
    opens, closes = [], []
    for _ in range(depth):
        if rng.random() < 0.5:
            opens.append("[")
            closes.append("]")
        else:
            opens.append('{"k":')
            closes.append("}")
    return "".join(opens) + inner + "".join(reversed(closes))


FIXED_INVALID = [
    b"", b" ", b"[1,2,]", b'{"a":1,}', b'{"a" 1}', b"{1:2}", b"01", b"-01", b"00", b"1.",
    b".5", b"+1", b"1e", b"1e+", b"-", b"NaN", b"Infinity", b"-Infinity", b"[NaN]",
    b"0x10", b"tru", b"nul", b"True", b"[1 2]", b'"abc', b'"\\x"', b'"\\u12"',
    b'"\\ud800"', b'"\\udc00"', b'"\\ud800\\u0041"', b'"\\udbff\\udbff"', b'"a\x01"',
    b'"a\nb"', b'"a\x00b"', b'"\xc0\x80"', b'"\xc1\xbf"', b'"\xe0\x80\xaf"',
    b'"\xf0\x80\x80\xaf"', b'"\xed\xa0\x80"', b'"\xed\xbf\xbf"', b'"\xf4\x90\x80\x80"',
    b'"\xf5\x80\x80\x80"', b'"\xff"', b'"\x80"', b'"\xc3"', b'"\xe2\x82"', b"\xef\xbb\xbf{}",
    b"{}x", b"[]]", b"1 2", b"{} {}", b"[1]\x00", b"\x0c1", b"'a'", b"[", b"{", b'{"a":',
    b"\xa0[]", b'{"a":1}}', b"[-]", b"[1,,2]", b"[,1]", b'{"a":1,,"b":2}', b"{,}",
]
FIXED_VALID = [b'"\\u0000"', b'"\x7f"', b"[]", b"{}", b' \t\r\n0 ', b'"\\ud83d\\ude00"',
               b'"\\uDBFF\\uDFFF"', b'"\xf4\x8f\xbf\xbf"', b'"\xed\x9f\xbf"', b'"\xee\x80\x80"',
               b'{"a":1,"a":2}', b'"\xe2\x80\xa8"', b"-0", b"1E400", b"[1e-400]"]

MUTATION_BYTES = [b",", b"]", b"}", b"[", b"{", b":", b'"', b"\\", b"x", b"0", b"-", b".",
                  b"e", b"\x00", b"\x1f", b"\x80", b"\xc3", b"\xed\xa0\x80", b"\xc0\x80",
                  b"\xf4\x90\x80\x80", b"\\ud800", b"\\udc00", b" ", b"\n", b"01", b"NaN"]


def mutate(rng, doc):
    r = rng.randrange(6)
    if not doc:
        return rng.choice(MUTATION_BYTES)
    i = rng.randrange(len(doc) + 1)
    if r == 0:
        return doc[:i] + doc[i + 1:]
    if r == 1:
        return doc[:i] + rng.choice(MUTATION_BYTES) + doc[i:]
    if r == 2:
        return doc[:i]
    if r == 3:
        return doc + rng.choice([b" x", b",", b"]", b"}", b" 1", b"\x00", b" {}"])
    if r == 4:
        return doc[:i] + rng.choice(MUTATION_BYTES) + doc[i + 1:]
    # inside a string: put a bad sequence right after a quote
    q = doc.find(b'"', i)
    if q < 0:
        return doc + rng.choice(MUTATION_BYTES)
    return doc[:q + 1] + rng.choice(MUTATION_BYTES[13:]) + doc[q + 1:]


def corpus(rng, nvalid, ninvalid):
    docs = list(FIXED_INVALID) + list(FIXED_VALID)
    for d in (1, 2, 64, 127, 128, 129, 130, 200):
        docs.append(nest(d, rng).encode())
        docs.append(("[" * d + "]" * d).encode())
    valid = []
    for i in range(nvalid):
        style = 0 if i % 2 == 0 else 1
        if i % 3 == 0:
            text = gen_record(rng, style)
        else:
            text = ws(rng, style) + gen_value(rng, 0, style, 6) + ws(rng, style)
        valid.append(text.encode("utf-8"))
    docs += valid
    for _ in range(ninvalid):
        d = rng.choice(valid)
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            d = mutate(rng, d)
        docs.append(d)
    return docs


# ---------------------------------------------------------------- running

def run_tool(tool, args, docs):
    payload = b"".join(b"%d\n" % len(d) + d for d in docs)
    p = subprocess.run([tool, "--framed"] + args, input=payload, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, check=False)
    if p.returncode != 0:
        sys.stderr.write(p.stderr.decode("utf-8", "replace"))
        raise SystemExit("sl_jsoncheck exited with status %d" % p.returncode)
    lines = p.stdout.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if len(lines) != len(docs):
        raise SystemExit("sl_jsoncheck printed %d lines for %d documents" % (len(lines), len(docs)))
    return lines


def show(doc):
    return repr(doc[:400]) + (" ... (%d bytes)" % len(doc) if len(doc) > 400 else "")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--valid", type=int, default=3000)
    ap.add_argument("--invalid", type=int, default=3000)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    print("json_differential: seed %d (rerun with --seed %d)" % (seed, seed))
    rng = random.Random(seed)
    docs = corpus(rng, args.valid, args.invalid)
    failures = 0

    def fail(kind, doc, detail):
        nonlocal failures
        failures += 1
        if failures <= 20:
            print("DISAGREE (%s): %s\n    %s" % (kind, show(doc), detail))

    lines = run_tool(args.tool, [], docs)
    nvalid = ninvalid = 0
    parsed = []
    for doc, line in zip(docs, lines):
        ok, ref, dup = py_parse(doc)
        parsed.append((ok, ref, dup))
        if line.startswith(b"OK "):
            if not ok:
                fail("we accept, Python rejects: %s" % ref, doc, line[:200])
                continue
            nvalid += 1
            ok2, ours, _ = py_parse(line[3:])
            if not ok2:
                fail("our re-serialization is not valid JSON", doc, line[:300])
            elif canon(ours) != canon(ref):
                fail("values differ", doc, "ours: %r" % line[:300])
        elif line.startswith(b"ERR "):
            parts = line.split(b" ", 2)
            off = int(parts[1])
            if off > len(doc):
                fail("error offset beyond the input", doc, line)
            if ok:
                fail("we reject, Python accepts", doc, line.decode("utf-8", "replace"))
                continue
            ninvalid += 1
        else:
            fail("unexpected output", doc, line[:200])

    # Byte-identical round trip of compact valid documents through sl_record_write.
    compact = [d for d, (ok, _, _) in zip(docs, parsed) if ok and b"\n" not in d and b"\r" not in d]
    for doc, line in zip(compact, run_tool(args.tool, ["--record"], compact)):
        if line != b"OK " + doc:
            fail("record round trip not byte-identical", doc, line[:300])

    # Edits on object documents, against dict semantics (the last of duplicate keys wins).
    # With duplicate keys sluice writes an edited object's key once, at its last
    # occurrence, where a dict keeps the first position: for those documents the values
    # and the uniqueness of the written keys are checked, not the member order.
    objs = [(d, ref, dup) for d, (ok, ref, dup) in zip(docs, parsed) if ok
            and isinstance(ref, dict) and b"\n" not in d and b"\r" not in d]
    edit_args = ["--set", "k1.inner=true", "--del", "k0", "--set", 'added.x=[1,"\\u00e9"]']
    nedits = 0
    for (doc, ref, dup), line in zip(objs,
                                     run_tool(args.tool, edit_args, [d for d, _, _ in objs])):
        exp = dict(ref)
        if "k1" in exp and not isinstance(exp["k1"], dict):
            if line != b"EDIT SL_ETYPE k1.inner":
                fail("set through a scalar should be SL_ETYPE", doc, line[:200])
            continue
        if "k1" in exp:
            inner = dict(exp["k1"])
            inner["inner"] = True
            exp["k1"] = inner
        else:
            exp["k1"] = {"inner": True}
        exp.pop("k0", None)
        exp["added"] = {"x": [1, "\u00e9"]}
        if not line.startswith(b"OK "):
            fail("edit failed", doc, line[:200])
            continue
        nedits += 1
        got_pairs = json.loads(line[3:].decode("utf-8"), object_pairs_hook=lambda ps: ps)
        got_keys = [k for k, _ in got_pairs]
        if len(set(got_keys)) != len(got_keys):
            fail("a key written twice after edits", doc, "got %r" % got_keys)
        elif dup and sorted(got_keys) != sorted(exp.keys()):
            fail("members after edits", doc, "got %r want %r" % (got_keys, list(exp.keys())))
        elif not dup and got_keys != list(exp.keys()):
            fail("member order after edits", doc, "got %r want %r" % (got_keys, list(exp.keys())))
        elif canon(json.loads(line[3:].decode("utf-8"))) != canon(exp):
            fail("values after edits", doc, "got %r" % line[:300])

    print("json_differential: %d documents (%d valid, %d invalid by both), %d record round "
          "trips, %d edited records, %d disagreements"
          % (len(docs), nvalid, ninvalid, len(compact), nedits, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
