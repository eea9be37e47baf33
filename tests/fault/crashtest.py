#!/usr/bin/env python3
"""crashtest.py - kill sluice with SIGKILL at random instants; prove nothing is lost or
duplicated.

    crashtest.py --scenario NAME [--seed S] [--records N] [--kills K] [--damage LIST]
                 [--delivery MODE] [--workdir DIR] [--keep]
    crashtest.py --list

What it does, per scenario:

  1. Generates N click events with gen_clicks (each has a unique "event_id"; N defaults
     to 200,000, or the scenario's own default) and writes the scenario's pipeline file.
     Scenarios with bad lines replace some lines by lines a stage must reject (see "bad
     lines" below).
  2. Calibrates: runs the pipeline once, start to finish, in a separate directory and
     times it. That output must already be exact (otherwise the comparison, not the crash
     handling, is at fault, and the test says so).
  3. Runs `sluice run P.yaml --once --quiet` and sends SIGKILL at a random instant,
     restarts it, and repeats K times (default 30). Kill instants are drawn uniformly
     from windows derived from the calibrated run time, so most kills land mid-run and
     about a fifth land in the first 50 ms (start-up and recovery). Some scenarios tear
     or damage files while sluice is down (see "tearing" below) or append to a followed
     input meanwhile. The write-audit-publish scenarios run their own loop (see
     "write-audit-publish" below).
  4. Lets a last run finish (`--once --report R.json`) and checks its exit status and
     report: every stage must conserve its records (records_in = records_out + dropped +
     rejected + skipped + quarantined; dlq = rejected).
  5. Compares every sink with the records expected, computed here in Python from the
     input (the same filter and map as the pipeline):
       sqlite: the set of event_ids, every column of every row, no duplicates
               (count(*) == count(distinct event_id)); where the scenario pre-creates the
               table, an UPDATE trigger counts rows written twice (a replayed record), and
               the checkpoint table's record count must equal the rows expected (when
               the clean run shows that it counts each row once).
       postgres: as sqlite (the harness starts a PostgreSQL cluster of its own, one
               database per run directory, and removes it at exit); the sink makes its
               table, so rows written twice show in the checkpoint's record count.
       file:   the multiset of records over all final output files; every line must be
               complete JSON; a missing, duplicated or unexpected record is a failure.
               The record id field (_sluice_id) is ignored.
       dlq:    (scenarios with bad lines) one entry per expected (line, stage), attempts
               1, raw bytes, true_len, error class, origin, offset and record exact.
       quarantine: each record held back once, as the expected record; no empty unit.
     Then, in those scenarios, one more run must read nothing and change nothing.

The seed comes first in the output (`crashtest seed=...`); passing it back with --seed
(and the same --records/--kills) repeats the same input, kill instants and tears. The
machine's timing still varies, so a rerun lands in similar, not identical, states.

Environment: SLUICE (the binary), SLUICE_TOOLS (directory holding gen_clicks); and, as
defaults for the options, CRASHTEST_SEED, CRASHTEST_RECORDS, CRASHTEST_KILLS,
CRASHTEST_KEEP=1. Exit status: 0 pass, 1 a failure (details printed), 2 a usage or set-up
error. The working directory is removed after a pass and kept after a failure.

Python 3 standard library only.
"""

import argparse
import atexit
import collections
import glob
import hashlib
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

PIPELINE = "crash"
ID_FIELD = "_sluice_id"
EARLY_WINDOW_S = 0.050  # "start-up" kills land in [0, this) after exec
RUN_TIMEOUT_S = 600.0  # hard limit for a run that is not killed on purpose
FINAL_TIMEOUT_S = 600.0


# Child processes still running (sluice runs, the appender): killed if the harness is
# interrupted, so an aborted test leaves nothing behind.
LIVE = set()


def log(msg):
    print(msg, flush=True)


class SetupError(Exception):
    """Something around the test is wrong (missing binary, bad option): exit 2."""


# --- the input, and what each sink must end up with ------------------------------------


class Input:
    """The generated input (one file, or several read in sorted order as a glob matches
    them), read again whenever expectations are computed, so that memory stays small:
    records() yields (line number, byte offset, object), both counted within each file.

    `bad` maps (file name, line number) to the kind of line injected there (see
    inject_bad): lines the source or the parser reject and blank lines are not records
    and are skipped; records_k() also yields each record's kind (None for an ordinary
    line)."""

    def __init__(self, paths, bad=None):
        self.paths = sorted(paths)
        self.bad = bad or {}
        self.exclude = set()  # line numbers a streaming gate quarantined (one input file)
        self.count = 0
        for path in self.paths:
            with open(path, "rb") as f:
                for lineno, raw in enumerate(f, 1):
                    if not raw.endswith(b"\n"):
                        raise SetupError("%s: line %d has no newline" % (path, lineno))
                    self.count += 1

    def kind(self, path, lineno):
        return self.bad.get((os.path.basename(path), lineno))

    def lines(self):
        """(path, line number, byte offset, raw bytes without the newline, kind) of every
        line."""
        for path in self.paths:
            offset = 0
            with open(path, "rb") as f:
                for lineno, raw in enumerate(f, 1):
                    yield path, lineno, offset, raw[:-1], self.kind(path, lineno)
                    offset += len(raw)

    def records_k(self):
        for _, lineno, offset, raw, kind in self.lines():
            if kind in SOURCE_REJECTS or kind == "blank":
                continue
            yield lineno, offset, json.loads(raw), kind

    def records(self):
        for lineno, offset, obj, _ in self.records_k():
            yield lineno, offset, obj


def split_input(full, parts, dirpath):
    """Cut full into `parts` files of about equal size at line ends: dir/clicks-K.ndjson."""
    with open(full, "rb") as f:
        data = f.read()
    os.makedirs(dirpath, exist_ok=True)
    paths, pos = [], 0
    for k in range(parts):
        end = len(data) if k == parts - 1 else data.find(b"\n", len(data) * (k + 1) // parts) + 1
        path = os.path.join(dirpath, "clicks-%d.ndjson" % k)
        with open(path, "wb") as f:
            f.write(data[pos:end])
        paths.append(path)
        pos = end
    return paths


# --- bad lines ------------------------------------------------------------------------
#
# Scenarios with "bad" replace one line in every `every` (at a random place in each block
# of that many lines, the kinds taken in a shuffled cycle) by a line that some stage must
# reject, or that is a boundary case it must accept. Chosen from the seed, so a rerun with
# the same seed injects the same lines.

# Kinds the source stage rejects (the line never becomes a live record), with the error
# class the dead-letter queue must show.
SOURCE_REJECTS = {
    "truncated": "invalid_json",       # the line cut short at a character boundary
    "trailing_comma": "invalid_json",  # {..., }
    "bad_utf8": "encoding",            # a byte sequence that is not UTF-8 inside a string
    "array": "not_object",             # [{...}, 1] with json.require_object
    "scalar": "not_object",            # a string or number with json.require_object
    "dup_key": "duplicate_key",        # a key named twice with json.duplicate_keys: reject
    "overlong": "record_too_large",    # longer than max_record_bytes
}
# Kinds that parse: "cast" (user_id a string that is no number: the map's cast rejects
# it), "null_key" (event_id null: a sqlite sink keyed on event_id rejects it, a file sink
# writes it), "max_len" (exactly max_record_bytes long: accepted), "crlf" (ends in \r\n:
# accepted), "blank" (empty or spaces and tabs: not a record, counted as empty), "marker"
# (event_type "quarantine_me": a streaming quality gate holds its batch back).
BAD_UTF8 = (b"\xe9", b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80")


def pad_to(line, length):
    """line (a JSON object) with a "pad" member making it exactly length bytes."""
    fill = length - len(line) - len(b',"pad":""')
    if fill < 0:
        raise SetupError("cannot pad a %d-byte line to %d bytes" % (len(line), length))
    return line[:-1] + b',"pad":"' + b"x" * fill + b'"}'


def bad_line(rng, kind, line, max_bytes):
    if kind == "truncated":
        # Cut before a byte that starts a character, so what is left is whole UTF-8 and
        # the only fault is the missing end.
        cuts = [i for i in range(8, len(line) - 1) if not 0x80 <= line[i] < 0xC0]
        return line[:rng.choice(cuts)]
    if kind == "trailing_comma":
        return line[:-1] + b",}"
    if kind == "bad_utf8":
        return line.replace(b'"session_id":"s-', b'"session_id":"s-' + rng.choice(BAD_UTF8), 1)
    if kind == "array":
        return b"[" + line + b",1]"
    if kind == "scalar":
        return rng.choice((b'"just a string"', b"42", b"null", b"true", b"-1.5e3"))
    if kind == "dup_key":
        return line[:-1] + b',"event_type":"again"}'
    if kind == "overlong":
        return pad_to(line, rng.choice((max_bytes + 1, max_bytes + 2,
                                        rng.randrange(max_bytes + 3, max_bytes * 4))))
    if kind == "max_len":
        return pad_to(line, max_bytes)
    if kind == "cast":
        return re.sub(rb'"user_id":(\d+)', rb'"user_id":"u-\1"', line, count=1)
    if kind == "null_key":
        return re.sub(rb'"event_id":"[^"]*"', b'"event_id":null', line, count=1)
    if kind == "crlf":
        return line + b"\r"
    if kind == "marker":
        return re.sub(rb'"event_type":"[^"]*"', b'"event_type":"quarantine_me"', line, count=1)
    if kind == "blank":
        return rng.choice((b"", b" ", b"\t \t"))
    raise SetupError("unknown bad-line kind %r" % kind)


def inject_bad(path, seed, spec):
    """Rewrite path with bad lines; returns {(file name, line number): kind}."""
    rng = random.Random(seed * 7919 + 17)
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")[:-1]
    every, kinds = spec["every"], list(spec["kinds"])
    cycle, out = [], {}
    for start in range(0, len(lines), every):
        if not cycle:
            cycle = kinds[:]
            rng.shuffle(cycle)
        kind = cycle.pop()
        i = rng.randrange(start, min(start + every, len(lines)))
        lines[i] = bad_line(rng, kind, lines[i], spec.get("max_record_bytes", 0))
        out[i + 1] = kind
    # Markers: one line in each block of marker_every, not one of the lines above.
    every = spec.get("marker_every", 0)
    for start in range(0, len(lines), every) if every else ():
        i = rng.randrange(start, min(start + every, len(lines)))
        while i + 1 in out:
            i = start + (i + 1 - start) % min(every, len(lines) - start)
        lines[i] = bad_line(rng, "marker", lines[i], 0)
        out[i + 1] = "marker"
    with open(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    return out


def locate_bad(full, bad, paths):
    """Map {line number in full: kind} onto the files full was split into (in order):
    {(file name, line number in it): kind}."""
    out, first = {}, 1
    for path in sorted(paths):
        with open(path, "rb") as f:
            n = f.read().count(b"\n")
        for k in range(first, first + n):
            if k in bad:
                out[(os.path.basename(path), k - first + 1)] = bad[k]
        first += n
    return out


def castable(v):
    """Does the map's cast to float accept v (a number, a bool, null, a numeric string)?"""
    if v is None or isinstance(v, (bool, int, float)):
        return True
    if isinstance(v, str):
        return re.fullmatch(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", v) is not None
    return False


def t_shape(lineno, offset, obj):
    """The map every scenario that has one uses (keep in step with MAP_YAML)."""
    out = dict(obj)
    out.pop("referrer", None)
    uid = obj.get("user_id")
    out["user_mod"] = uid % 7 if isinstance(uid, int) else math.fmod(uid, 7)
    out["src_line"] = lineno
    out["src_offset"] = offset
    out["is_buy"] = obj.get("event_type") == "purchase"
    return out


MAP_YAML = """{type: map, inputs: [%s], drop: [referrer],
        set: {user_mod: 'user_id %% 7', src_line: '_line', src_offset: '_offset',
              is_buy: 'event_type == "purchase"'}}"""


def f_carts_and_buys(obj):
    """The filter of the fan-out scenarios (keep in step with FILTER_YAML)."""
    return obj.get("event_type") in ("purchase", "add_to_cart")


FILTER_YAML = """{type: filter, inputs: [%s],
        where: 'event_type == "purchase" || event_type == "add_to_cart"'}"""


def f_not_bot(obj):
    dev = obj.get("device")
    return not (isinstance(dev, dict) and dev.get("type") == "bot")


NOT_BOT_YAML = """{type: filter, inputs: [%s], where: 'device.type != "bot"'}"""


def expect_all(inp):
    return (obj for _, _, obj in inp.records())


def expect_shaped(inp):
    return (t_shape(n, o, obj) for n, o, obj in inp.records())


def expect_not_bot(inp):
    return (obj for _, _, obj in inp.records() if f_not_bot(obj))


def expect_shaped_carts(inp):
    return (t_shape(n, o, obj) for n, o, obj in inp.records() if f_carts_and_buys(obj))


CAST_MAP_YAML = """{type: map, inputs: [%s], cast: {user_id: float}, drop: [referrer],
        set: {user_mod: 'user_id %% 7', src_line: '_line', src_offset: '_offset',
              is_buy: 'event_type == "purchase"'}}"""


def expect_dlq_db(inp):
    """The dlq scenario's sqlite sink: shaped, cast passed, no bot, event_id not null."""
    return (t_shape(n, o, obj) for n, o, obj, _ in inp.records_k()
            if castable(obj.get("user_id")) and f_not_bot(obj) and obj.get("event_id") is not None)


def expect_dlq_file(inp):
    return (t_shape(n, o, obj) for n, o, obj, _ in inp.records_k()
            if castable(obj.get("user_id")) and f_not_bot(obj))


def expect_wap_db(inp):
    """What the write-audit-publish sink stages: shaped, cast passed, event_id not null."""
    return (t_shape(n, o, obj) for n, o, obj, _ in inp.records_k()
            if castable(obj.get("user_id")) and obj.get("event_id") is not None)


def expect_gate_db(inp):
    """As expect_dlq_db, without the lines the streaming gate held back."""
    return (r for r in expect_dlq_db(inp) if r["src_line"] not in inp.exclude)


def expect_gate_file(inp):
    return (r for r in expect_dlq_file(inp) if r["src_line"] not in inp.exclude)


def expect_gate_held(inp):
    """What the streaming gate held back: the live records of the lines it reports."""
    return (r for r in expect_dlq_file(inp) if r["src_line"] in inp.exclude)


def expect_none(inp):
    return iter(())


def dlq_fanout(kind, obj):
    """[(stage, error class)] the dlq scenario must keep for a line of this kind."""
    if kind in SOURCE_REJECTS:
        return [("src", SOURCE_REJECTS[kind])]
    if obj is None:
        return []
    if not castable(obj.get("user_id")):
        return [("shape", "cast")]
    if f_not_bot(obj) and obj.get("event_id") is None:
        return [("db", "sink")]
    return []


def dlq_wap(kind, obj):
    if kind in SOURCE_REJECTS:
        return [("src", SOURCE_REJECTS[kind])]
    if obj is None:
        return []
    if not castable(obj.get("user_id")):
        return [("shape", "cast")]
    if obj.get("event_id") is None:
        return [("db", "sink")]
    return []


def dlq_record(stage, lineno, offset, obj):
    """The record a DLQ entry of the new scenarios must hold: as the rejecting stage got it."""
    if stage == "shape":
        return obj
    if stage == "db":
        return t_shape(lineno, offset, obj)
    return None


BAD_ALL = ("truncated", "trailing_comma", "bad_utf8", "array", "scalar", "dup_key",
           "overlong", "max_len", "cast", "null_key", "crlf", "blank")
MAX_RECORD = 2048
# The write-audit-publish scenarios declare amount's type: publishing types a new column
# from the first record of a 1024-record chunk that needs it, and that is often null
# (TEXT), where a streaming write types it from the first non-null value of the batch.
WAP_COLUMNS = "amount REAL"


# --- scenarios ------------------------------------------------------------------------
#
# Each scenario: a pipeline (YAML, with {state}, {input} and {out} filled in), its sinks
# (name, kind, where, what they must hold), how kills are timed, and extras (tears, a
# followed input with an appender). Paths are absolute so runs can start anywhere.


def sink_sqlite(name, table, key, expect, precreate=False, columns=""):
    return {"name": name, "kind": "sqlite", "db": "out/%s.db" % name, "table": table,
            "key": key, "expect": expect, "precreate": precreate, "columns": columns}


def sink_postgres(name, table, key, expect):
    return {"name": name, "kind": "postgres", "table": table, "key": key, "expect": expect,
            "precreate": False}


def sink_file(name, expect, max_bytes=None):
    return {"name": name, "kind": "file", "dir": "out/" + name, "base": "clicks.ndjson",
            "expect": expect, "max_bytes": max_bytes}


SCENARIOS = {
    "sqlite_key": {
        "help": "file -> map -> sqlite upserting on key: event_id (table pre-created with "
                "an UPDATE trigger that catches any row written twice)",
        "sinks": [sink_sqlite("db", "clicks", "event_id", expect_shaped, precreate=True)],
        "transforms": {"shape": MAP_YAML % "src"},
        "wiring": {"db": "shape"},
    },
    "sqlite_id": {
        "help": "file -> filter -> sqlite keyed on the record id (the default); the sink "
                "creates its table",
        "sinks": [sink_sqlite("db", "clicks", None, expect_not_bot)],
        "transforms": {"humans": NOT_BOT_YAML % "src"},
        "wiring": {"db": "humans"},
    },
    "postgres": {
        "help": "file -> filter -> postgres upserting on key: event_id (a PostgreSQL cluster "
                "of the harness's own; the sink creates its table)",
        "sinks": [sink_postgres("pg", "clicks", "event_id", expect_not_bot)],
        "transforms": {"humans": NOT_BOT_YAML % "src"},
        "wiring": {"pg": "humans"},
    },
    "file": {
        "help": "files (a glob matching four input files) -> map -> file, rotating every "
                "4 MiB",
        "split": 4,
        "sinks": [sink_file("out", expect_shaped, max_bytes="4MiB")],
        "transforms": {"shape": MAP_YAML % "src"},
        "wiring": {"out": "shape"},
    },
    "rotate": {
        "help": "file -> file with max_bytes 128 KiB: a batch (~280 KB) never splits, so "
                "every batch finishes a file: ~200 renames, more finished files than the "
                "manifest lists by name",
        "sinks": [sink_file("out", expect_all, max_bytes="128KiB")],
        "transforms": {},
        "wiring": {"out": "src"},
    },
    "fanout": {
        "help": "one source -> sqlite (every record) and -> filter -> map -> file "
                "(about a sixth of them, rotating every 1 MiB): sinks of different speeds",
        "sinks": [sink_sqlite("db", "clicks", "event_id", expect_all),
                  sink_file("buys", expect_shaped_carts, max_bytes="1MiB")],
        "transforms": {"carts": FILTER_YAML % "src", "shape": MAP_YAML % "carts"},
        "wiring": {"db": "src", "buys": "shape"},
    },
    "sparse": {
        "help": "one source -> sqlite (every record), -> a filter passing one line in 997 "
                "-> file, and -> a filter passing only the last tenth of the lines -> file: "
                "sinks that see empty batches, and one that commits nothing for most of the "
                "run while the others race ahead",
        "sinks": [sink_sqlite("db", "clicks", "event_id", expect_all),
                  sink_file("rare", lambda inp: (o for n, _, o in inp.records() if n % 997 == 0)),
                  sink_file("late", lambda inp: (o for n, _, o in inp.records()
                                                 if n > inp.count * 9 // 10))],
        "transforms": {"one_in_997": "{type: filter, inputs: [src], where: '_line %% 997 == 0'}",
                       "last_tenth": "{type: filter, inputs: [src], where: '_line > {late}'}"},
        "wiring": {"db": "src", "rare": "one_in_997", "late": "last_tenth"},
    },
    "follow": {
        "help": "a followed input that another process appends to (whole and split lines) "
                "during the kills -> map -> file and sqlite; the last run uses --once",
        "sinks": [sink_sqlite("db", "clicks", None, expect_shaped),
                  sink_file("out", expect_shaped, max_bytes="4MiB")],
        "transforms": {"shape": MAP_YAML % "src"},
        "wiring": {"db": "shape", "out": "shape"},
        "follow": True,
    },
    "follow_mixed": {
        "help": "as follow, but three runs in ten use --once (a catch-up run, stopping at "
                "the end of the input) while the others follow, so committed positions come "
                "from both modes; appends are whole lines only",
        "sinks": [sink_sqlite("db", "clicks", None, expect_shaped),
                  sink_file("out", expect_shaped, max_bytes="4MiB")],
        "transforms": {"shape": MAP_YAML % "src"},
        "wiring": {"db": "shape", "out": "shape"},
        "follow": True,
        "once_share": 0.3,
        "split_lines": 0.0,
    },
    "follow_once_split": {
        "help": "as follow_mixed, with one append in eight ending mid-line: a --once run "
                "may stop while a line is half written",
        "sinks": [sink_file("out", expect_shaped, max_bytes="4MiB")],
        "transforms": {"shape": MAP_YAML % "src"},
        "wiring": {"out": "shape"},
        "follow": True,
        "once_share": 0.3,
        "split_lines": 0.125,
    },
    "startup": {
        "help": "kills concentrated in start-up and recovery: four in five within the "
                "first 50 ms of a run; fan-out to sqlite and a rotating file",
        "sinks": [sink_sqlite("db", "clicks", "event_id", expect_shaped),
                  sink_file("out", expect_shaped, max_bytes="2MiB")],
        "transforms": {"shape": MAP_YAML % "src"},
        "wiring": {"db": "shape", "out": "shape"},
        "early_share": 0.8,
    },
    "torn": {
        "help": "file -> map -> file (rotating every 2 MiB); while sluice is down, tear what "
                "a crash can tear: the uncommitted tail of the in-progress file, a manifest "
                "write",
        "sinks": [sink_file("out", expect_shaped, max_bytes="2MiB")],
        "transforms": {"shape": MAP_YAML % "src"},
        "wiring": {"out": "shape"},
        "tear": True,
    },
    "dlq": {
        "help": "file (one line in 200 broken: truncated, trailing comma, bad UTF-8, array, "
                "scalar, duplicate key, over max_record_bytes; or a user_id no cast takes, a "
                "null event_id, blank, CRLF, exactly max_record_bytes) -> map (cast) -> filter "
                "-> sqlite keyed on event_id and file: rejections in source, map and sink go "
                "to the dead-letter queue exactly once",
        "records": 100000,
        "bad": {"every": 200, "kinds": BAD_ALL, "max_record_bytes": MAX_RECORD},
        "json": "{require_object: true, duplicate_keys: reject}",
        "src_opts": ", max_record_bytes: %d" % MAX_RECORD,
        "sinks": [sink_sqlite("db", "clicks", "event_id", expect_dlq_db, precreate=True),
                  sink_file("out", expect_dlq_file, max_bytes="2MiB")],
        "transforms": {"shape": CAST_MAP_YAML % "src", "humans": NOT_BOT_YAML % "shape"},
        "wiring": {"db": "humans", "out": "humans"},
        "dlq": dlq_fanout,
    },
    "quarantine": {
        "help": "as dlq, plus a streaming quality gate (accepted_values on event_type, action "
                "quarantine) after the filter: each batch holding one of the marker lines "
                "(one in 5,000) goes to the quarantine store instead of the sinks; every "
                "record ends up in both sinks or in the quarantine, once",
        "records": 100000,
        "bad": {"every": 200, "kinds": BAD_ALL, "max_record_bytes": MAX_RECORD,
                "marker_every": 5000},
        "json": "{require_object: true, duplicate_keys: reject}",
        "src_opts": ", max_record_bytes: %d" % MAX_RECORD,
        "sinks": [sink_sqlite("db", "clicks", "event_id", expect_gate_db, precreate=True),
                  sink_file("out", expect_gate_file, max_bytes="2MiB")],
        "transforms": {"shape": CAST_MAP_YAML % "src", "humans": NOT_BOT_YAML % "shape"},
        "wiring": {"db": "humans", "out": "humans"},
        "quality": ['{name: known_types, on: humans, check: "accepted_values(event_type, '
                    '[\'page_view\', \'click\', \'search\', \'add_to_cart\', '
                    '\'purchase\', \'login\'])", action: quarantine}'],
        "dlq": dlq_fanout,
        "gate_stage": "humans",
        "after_gate": ("db",),
        "quarantine": ("humans", expect_gate_held),
    },
    "wap": {
        "help": "write-audit-publish: run --once, files (six parts, added one by one as "
                "each is published) -> map (cast) -> sqlite keyed on event_id behind a "
                "passing quality gate; one line in 500 rejected; after every kill the table "
                "holds all of a unit or none of it",
        "records": 36000,
        "parts": 6,
        "bad": {"every": 500, "kinds": ("truncated", "bad_utf8", "array", "overlong", "cast",
                                        "null_key", "blank", "max_len"),
                "max_record_bytes": MAX_RECORD},
        "json": "{require_object: true}",
        "src_opts": ", max_record_bytes: %d" % MAX_RECORD,
        "sinks": [sink_sqlite("db", "clicks", "event_id", expect_wap_db, precreate=True,
                              columns=WAP_COLUMNS)],
        "transforms": {"shape": CAST_MAP_YAML % "src"},
        "wiring": {"db": "shape"},
        "quality": ['{name: has_ts, on: shape, check: "null_rate(ts)", max: 0, action: fail}',
                    "{name: some_rows, on: shape, check: row_count, min: 1, action: warn}"],
        "dlq": dlq_wap,
        "wap": "publish",
    },
    "wap_quarantine": {
        "help": "as wap, but the gate fails with action quarantine: the table stays empty, "
                "every staged record is in the quarantine store exactly once, and the "
                "checkpoint moves past it",
        "records": 36000,
        "parts": 6,
        "bad": {"every": 500, "kinds": ("truncated", "bad_utf8", "array", "overlong", "cast",
                                        "null_key", "blank", "max_len"),
                "max_record_bytes": MAX_RECORD},
        "json": "{require_object: true}",
        "src_opts": ", max_record_bytes: %d" % MAX_RECORD,
        "sinks": [sink_sqlite("db", "clicks", "event_id", expect_none, precreate=True,
                              columns=WAP_COLUMNS)],
        "transforms": {"shape": CAST_MAP_YAML % "src"},
        "wiring": {"db": "shape"},
        "quality": ['{name: has_amount, on: shape, check: "null_rate(amount)", max: 0, '
                    'action: quarantine}'],
        "dlq": dlq_wap,
        "wap": "quarantine",
        "quarantine": ("db", expect_wap_db),
    },
    "damage": {
        "help": "file -> map -> file (rotating every 2 MiB); after every third kill cut "
                "committed bytes (the manifest, or the in-progress file below its committed "
                "length): the next run must refuse and name the file; the file is then "
                "restored and the kills go on",
        "sinks": [sink_file("out", expect_shaped, max_bytes="2MiB")],
        "transforms": {"shape": MAP_YAML % "src"},
        "wiring": {"out": "shape"},
        "damage": ("manifest", "inprogress"),
    },
}


def pipeline_yaml(sc, root, delivery, input_path, records):
    lines = ["pipeline: %s" % PIPELINE,
             "state_dir: %s" % os.path.join(root, "state"),
             "delivery: %s" % delivery]
    if sc.get("json"):
        lines.append("json: %s" % sc["json"])
    lines.append("sources:")
    src = "  src: {type: file, path: %s" % json.dumps(input_path) + sc.get("src_opts", "")
    if sc.get("follow"):
        src += ", follow: true, poll_interval: 20ms"
    lines.append(src + "}")
    if sc["transforms"]:
        lines.append("transforms:")
        for name, body in sc["transforms"].items():
            body = body.replace("{late}", str(records * 9 // 10)).replace("%%", "%")
            lines.append("  %s: %s" % (name, body))
    lines.append("sinks:")
    for s in sc["sinks"]:
        inp = sc["wiring"][s["name"]]
        if s["kind"] == "sqlite":
            body = "{type: sqlite, inputs: [%s], path: %s, table: %s" % (
                inp, json.dumps(os.path.join(root, s["db"])), s["table"])
            if s["key"]:
                body += ", key: %s" % s["key"]
        elif s["kind"] == "postgres":
            body = "{type: postgres, inputs: [%s], connection: %s, table: %s" % (
                inp, json.dumps(PG.dsn(pg_dbname(root))), s["table"])
            if s["key"]:
                body += ", key: %s" % s["key"]
            body += ", retry: {initial_backoff: 50ms, max_backoff: 500ms}"
        else:
            body = "{type: file, inputs: [%s], path: %s" % (
                inp, json.dumps(os.path.join(root, s["dir"], s["base"])))
            if s["max_bytes"]:
                body += ", max_bytes: %s" % s["max_bytes"]
        lines.append("  %s: %s}" % (s["name"], body))
    if sc.get("quality"):
        lines.append("quality:")
        lines.extend("  - " + g for g in sc["quality"])
    return "\n".join(lines) + "\n"


def prepare_root(sc, root):
    """A fresh run directory: out/ and, where asked, pre-created sqlite tables."""
    os.makedirs(os.path.join(root, "out"), exist_ok=True)
    if any(s["kind"] == "postgres" for s in sc["sinks"]):
        PG.create_db(pg_dbname(root))
    for s in sc["sinks"]:
        if s["kind"] == "sqlite" and s["precreate"]:
            con = sqlite3.connect(os.path.join(root, s["db"]))
            con.executescript("""
                CREATE TABLE "%(t)s"("%(id)s" TEXT, "%(k)s" TEXT PRIMARY KEY%(more)s);
                CREATE TABLE crash_rewrites(%(k)s TEXT);
                CREATE TRIGGER crash_rewrite AFTER UPDATE ON "%(t)s"
                BEGIN INSERT INTO crash_rewrites VALUES (old."%(k)s"); END;
            """ % {"t": s["table"], "id": ID_FIELD, "k": s["key"],
                   "more": ", " + s["columns"] if s["columns"] else ""})
            con.commit()
            con.close()


# --- running sluice ----------------------------------------------------------------------


class Runner:
    def __init__(self, sluice, root, yaml_path, once=True, env=None):
        self.sluice = sluice
        self.root = root
        self.yaml = yaml_path
        self.once = once
        self.env = env
        self.nrun = 0

    def start(self, extra=(), once=None):
        self.nrun += 1
        errpath = os.path.join(self.root, "logs", "run-%03d.stderr" % self.nrun)
        os.makedirs(os.path.dirname(errpath), exist_ok=True)
        args = [self.sluice, "run", self.yaml, "--quiet"]
        if self.once if once is None else once:
            args.append("--once")
        args.extend(extra)
        err = open(errpath, "wb")
        t0 = time.monotonic()
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, cwd=self.root, env=self.env)
        err.close()
        LIVE.add(proc)
        return proc, t0, errpath


def tail(path, n=12):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return "(no stderr)"
    return "\n".join("    | " + ln[:300] for ln in lines[-n:]) or "    | (empty stderr)"


def stderr_errors(path):
    """Lines of a run's stderr that report an error or a sanitizer finding."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [ln for ln in text.splitlines()
            if " ERROR " in ln or "Sanitizer" in ln or "runtime error:" in ln]


def kill_run(proc, t0, at):
    """Wait until `at` seconds after t0, then SIGKILL. Returns (killed, exit code, when)."""
    remaining = at - (time.monotonic() - t0)
    if remaining > 0:
        try:
            rc = proc.wait(timeout=remaining)
            LIVE.discard(proc)
            return False, rc, time.monotonic() - t0
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is not None:
        LIVE.discard(proc)
        return False, proc.returncode, time.monotonic() - t0
    when = time.monotonic() - t0
    os.kill(proc.pid, signal.SIGKILL)
    rc = proc.wait()
    LIVE.discard(proc)
    return rc == -signal.SIGKILL, rc, when


def run_to_end(runner, timeout, extra=()):
    proc, t0, errpath = runner.start(extra)
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        rc = None
    LIVE.discard(proc)
    return rc, time.monotonic() - t0, errpath


# --- tearing files while sluice is down -----------------------------------------------
#
# Two kinds of tear. "crash" tears leave what a crash (even a power loss, with fsync on)
# can leave behind, so the next run must still end up exact: bytes after the committed
# length of the in-progress file cut at a random byte or a partial record appended there
# (a write(2) of a batch cut short), and a manifest temporary file holding a prefix of a
# manifest (a manifest write cut short before its rename). "damage" destroys committed
# bytes: the manifest, or the in-progress file below its committed length. No sink can
# recover those by itself; the next run must refuse to start, name the file, and leave
# everything as it was (the harness then puts the file back, as an operator restoring a
# backup would, and carries on). "final" (not in any CI scenario) cuts the newest finished
# file; a finished file belongs to its readers (they may move or delete it), so the sink
# is not expected to notice.


def file_sink_files(s, root):
    """(final data files sorted by rotation number, in-progress files, manifests)."""
    d = os.path.join(root, s["dir"])
    stem, ext = os.path.splitext(s["base"])
    pat = re.compile(r"^%s(?:\.(\d+))?%s$" % (re.escape(stem), re.escape(ext)))
    finals, hidden, manifests = [], [], []
    try:
        names = sorted(os.listdir(d))
    except FileNotFoundError:
        return finals, hidden, manifests
    for name in names:
        path = os.path.join(d, name)
        if not os.path.isfile(path):
            continue
        m = pat.match(name)
        if "manifest" in name.lower():
            if not name.endswith(".tmp"):
                manifests.append(path)
        elif m:
            finals.append((int(m.group(1) or 0), path))
        elif name.startswith("."):
            hidden.append(path)
    finals.sort()
    return [p for _, p in finals], hidden, manifests


def committed_in_progress(s, root, manifests):
    """(path of the in-progress file, committed length) from the manifest, or None."""
    for mpath in manifests:
        try:
            with open(mpath) as f:
                m = json.load(f)
        except (OSError, ValueError):
            continue
        ip = m.get("in_progress") if isinstance(m, dict) else None
        if isinstance(ip, dict) and isinstance(ip.get("temp"), str) \
                and isinstance(ip.get("length"), int):
            return os.path.join(root, s["dir"], ip["temp"]), ip["length"]
    return None


def cut_file(rng, path, root, lo, hi, done):
    """Truncate path to a random length in [lo, hi)."""
    size = os.path.getsize(path)
    new = rng.randrange(lo, hi) if hi > lo else lo
    os.truncate(path, new)
    done.append("truncated %s from %d to %d bytes" % (os.path.relpath(path, root), size, new))
    return new


def tear_crash(rng, sc, root):
    done = []
    for s in sc["sinks"]:
        if s["kind"] != "file":
            continue
        finals, hidden, manifests = file_sink_files(s, root)
        ip = committed_in_progress(s, root, manifests)
        if ip and os.path.exists(ip[0]):
            path, length = ip
            size = os.path.getsize(path)
            if size > length:
                cut_file(rng, path, root, length, size, done)
            else:
                # Nothing uncommitted: add part of a record, as a torn append would.
                with open(path, "rb") as f:
                    f.seek(max(0, length - 4096))
                    last = f.read().rsplit(b"\n", 2)
                frag = (last[-2] if len(last) >= 2 and last[-2] else b'{"event_id":"e-')
                frag = frag[:rng.randrange(1, len(frag) + 1)]
                with open(path, "ab") as f:
                    f.write(frag)
                done.append("appended a torn record (%d bytes) to %s after its committed %d "
                            "bytes" % (len(frag), os.path.relpath(path, root), length))
        elif hidden:
            done.append("in-progress file(s) %s not named by a readable manifest; left alone" %
                        ", ".join(os.path.basename(h) for h in hidden))
        if manifests and rng.random() < 0.5:
            with open(manifests[0], "rb") as f:
                data = f.read()
            part = data[:rng.randrange(len(data))] if data else b""
            with open(manifests[0] + ".tmp", "wb") as f:
                f.write(part)
            done.append("left a torn manifest write %s.tmp (%d of %d bytes)" % (
                os.path.relpath(manifests[0], root), len(part), len(data)))
        if not done:
            done.append("nothing to tear in %s (%d final, %d in-progress, %d manifest files)" %
                        (s["dir"], len(finals), len(hidden), len(manifests)))
    return done


def damage_targets(sc, root, kinds):
    """[(kind, path, lo, hi)]: files whose committed bytes could be cut, and the range."""
    out = []
    for s in sc["sinks"]:
        if s["kind"] != "file":
            continue
        finals, hidden, manifests = file_sink_files(s, root)
        if "manifest" in kinds:
            for m in manifests:
                out.append(("manifest", m, 0, os.path.getsize(m)))
        if "manifest_gone" in kinds:
            for m in manifests:
                out.append(("manifest_gone", m, -1, -1))
        ip = committed_in_progress(s, root, manifests)
        if "inprogress" in kinds and ip and os.path.exists(ip[0]) and ip[1] > 0:
            out.append(("inprogress", ip[0], 0, ip[1]))
        if "final" in kinds and finals:
            newest = finals[-1]  # the highest rotation number
            if os.path.getsize(newest) > 0:
                out.append(("final", newest, 0, os.path.getsize(newest)))
    return out


def damage_event(rng, sc, root, runner, kinds):
    """Cut committed bytes of one file, check that the next run refuses and names it, put
    the file back. Returns (failures, stop): stop when the run went ahead on the damaged
    state, after which restoring the file would not make the state whole again."""
    targets = damage_targets(sc, root, kinds)
    if not targets:
        log("           damage: nothing to damage (%s)" % ",".join(kinds))
        return [], False
    kind = rng.choice(sorted(set(t[0] for t in targets)))
    kind, path, lo, hi = rng.choice([t for t in targets if t[0] == kind])
    with open(path, "rb") as f:
        saved = f.read()
    rel = os.path.relpath(path, root)
    if lo < 0:
        os.remove(path)
        new = -1
    else:
        new = rng.randrange(lo, hi) if hi > lo else lo
        os.truncate(path, new)
    rc, took, errpath = run_to_end(runner, RUN_TIMEOUT_S)
    with open(errpath, "rb") as f:
        err = f.read().decode("utf-8", "replace")
    first = next((ln for ln in err.splitlines() if "ERROR" in ln or "error" in ln),
                 err.strip().splitlines()[0] if err.strip() else "(no message)")
    failures = []
    if new < 0:
        what = "deleted %s (%s, %d bytes)" % (rel, kind, len(saved))
    else:
        what = "cut %s (%s) from %d to %d bytes" % (rel, kind, len(saved), new)
    if rc == 0:
        failures.append("damage not detected: %s, then run %d finished with exit 0; committed "
                        "output was silently lost or repeated:\n%s" %
                        (what, runner.nrun, tail(errpath)))
        verdict = "NOT DETECTED (exit 0)"
        log("           damage: %s -> run %d %s" % (what, runner.nrun, verdict))
        return failures, True
    elif rc is None or rc < 0 or "Sanitizer" in err or "runtime error" in err:
        failures.append("damage: %s, then run %d crashed or hung (exit %s):\n%s" %
                        (what, runner.nrun, rc, tail(errpath)))
        verdict = "CRASHED (exit %s)" % rc
    elif os.path.basename(path) not in err:
        failures.append("damage: %s; run %d refused (exit %s) but its message does not name "
                        "the file:\n%s" % (what, runner.nrun, rc, tail(errpath)))
        verdict = "refused without naming the file"
    else:
        verdict = "refused (exit %d) as it should" % rc
    log("           damage: %s -> run %d %s: %s" % (what, runner.nrun, verdict, first[:240]))
    with open(path, "wb") as f:
        f.write(saved)
    log("           damage: restored %s (%d bytes)" % (rel, len(saved)))
    return failures, False


# --- the appender of the follow scenario ---------------------------------------------------


def append_worker(src, dst, duration, seed, split_share=0.125):
    """Append src's bytes after dst's current length to dst over `duration` seconds, in
    slices of whole lines; a share of the slices (one in eight by default) ends in the
    middle of a line whose rest follows a few milliseconds later (a writer that flushes
    partial lines)."""
    rng = random.Random(seed)
    with open(src, "rb") as f:
        data = f.read()
    pos = os.path.getsize(dst)
    fd = os.open(dst, os.O_WRONLY | os.O_APPEND)
    steps = max(1, int(duration / 0.02))
    per = max(1, (len(data) - pos) // steps)
    t_end = time.monotonic() + duration
    while pos < len(data):
        end = data.find(b"\n", min(len(data) - 1, pos + per))
        end = len(data) if end < 0 else end + 1
        if rng.random() < split_share and end - pos > 2:
            cut = data.rfind(b"\n", pos, end - 1)
            split = max(pos + 1, cut + 1 + rng.randrange(1, 40)) if cut >= pos else pos + 1
            split = min(split, end - 1)
            os.write(fd, data[pos:split])
            time.sleep(rng.uniform(0.002, 0.02))
            os.write(fd, data[split:end])
        else:
            os.write(fd, data[pos:end])
        pos = end
        left = t_end - time.monotonic()
        if pos < len(data) and left > 0:
            time.sleep(min(0.02, left / max(1, (len(data) - pos) // per)))
    os.close(fd)


# --- verification ---------------------------------------------------------------------


def canon(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def show(ids, n=10):
    ids = list(ids)
    more = " ... (%d more)" % (len(ids) - n) if len(ids) > n else ""
    return ", ".join(map(str, ids[:n])) + more


def digest(text):
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def sql_value_matches(want, got):
    """Does the stored column value represent the JSON value `want` (the sink's mapping:
    objects/arrays as compact JSON text, bools as 0/1, null as NULL)?"""
    if want is None:
        return got is None
    if isinstance(want, bool):
        return isinstance(got, int) and got == int(want)
    if isinstance(want, (int, float)):
        return isinstance(got, (int, float)) and not isinstance(got, bool) and got == want
    if isinstance(want, str):
        return isinstance(got, str) and got == want
    if not isinstance(got, str):
        return False
    try:
        return json.loads(got) == want
    except ValueError:
        return False


def verify_sqlite(s, root, inp, calib, problems, notes):
    """Merge the table's rows (ORDER BY event_id) with the expected records (input order,
    which is event_id order: gen_clicks numbers its lines) and compare every column."""
    name = s["name"]
    path = os.path.join(root, s["db"])
    if not os.path.exists(path):
        problems.append("%s: database %s does not exist" % (name, path))
        return {}
    con = sqlite3.connect(path)
    try:
        cur = con.execute('SELECT * FROM "%s" ORDER BY event_id' % s["table"])
    except sqlite3.Error as e:
        problems.append("%s: cannot read table %s: %s" % (name, s["table"], e))
        con.close()
        return {}
    cols = [d[0] for d in cur.description]
    eid_col = cols.index("event_id") if "event_id" in cols else None
    if eid_col is None:
        problems.append("%s: table %s has no event_id column" % (name, s["table"]))
        con.close()
        return {}
    total, distinct = con.execute('SELECT count(*), count(DISTINCT event_id) FROM "%s"' %
                                  s["table"]).fetchone()
    missing, dups, unexpected, mismatched = [], [], [], []
    nexp = bad_ids = 0
    rids = set()
    dup_rids = 0
    last_eid = None
    exp = iter(s["expect"](inp))
    e = next(exp, None)
    r = next(cur, None)
    while e is not None or r is not None:
        reid = r[eid_col] if r is not None else None
        if r is not None:
            rid = r[cols.index(ID_FIELD)] if ID_FIELD in cols else None
        if r is not None and reid is not None and reid == last_eid:
            dups.append(reid)
        elif r is not None and (e is None or reid is None or reid < e["event_id"]):
            unexpected.append(reid)
        elif e is not None and (r is None or e["event_id"] < reid):
            missing.append(e["event_id"])
            nexp += 1
            last = e["event_id"]
            e = next(exp, None)
            if e is not None and e["event_id"] <= last:
                raise SetupError("expected records are not in event_id order")
            continue
        else:
            want = e
            diffs = []
            for i, c in enumerate(cols):
                if c == ID_FIELD:
                    continue
                if not sql_value_matches(want.get(c), r[i]):
                    diffs.append("%s: want %s, got %r" % (c, canon(want.get(c)), r[i]))
            extra = sorted(set(want) - set(cols))
            if extra:
                diffs.append("fields without a column: %s" % ", ".join(extra))
            if diffs:
                mismatched.append("%s: %s" % (reid, "; ".join(diffs[:4])))
            last_eid = reid
            nexp += 1
            last = e["event_id"]
            e = next(exp, None)
            if e is not None and e["event_id"] <= last:
                raise SetupError("expected records are not in event_id order")
        # a row was consumed
        if rid is not None:
            if not (isinstance(rid, str) and re.fullmatch(r"[0-9a-f]{32}", rid)):
                bad_ids += 1
            if rid in rids:
                dup_rids += 1
            rids.add(rid)
        r = next(cur, None)
    stats = dict(expected=nexp, rows=total, distinct=distinct, missing=len(missing),
                 duplicated=len(dups), unexpected=len(unexpected), mismatched=len(mismatched))
    if total != distinct:
        problems.append("%s: count(*) = %d but count(DISTINCT event_id) = %d" %
                        (name, total, distinct))
    if missing:
        problems.append("%s: %d of %d expected rows missing: %s" %
                        (name, len(missing), nexp, show(missing)))
    if dups:
        c = collections.Counter(dups)
        problems.append("%s: %d event_ids stored more than once: %s" % (
            name, len(c), ", ".join("%s x%d" % (k, n + 1) for k, n in list(c.items())[:10])))
    if unexpected:
        problems.append("%s: %d unexpected rows: %s" % (name, len(unexpected), show(unexpected)))
    if mismatched:
        problems.append("%s: %d rows differ from the expected record:\n      %s" % (
            name, len(mismatched), "\n      ".join(mismatched[:5])))
    if bad_ids:
        problems.append("%s: %d rows whose %s is not 32 hex digits" % (name, bad_ids, ID_FIELD))
    if dup_rids:
        problems.append("%s: %d record ids on more than one row" % (name, dup_rids))

    # Rows written twice: only visible where the harness made the table (trigger).
    if s["precreate"]:
        rewrites = con.execute("SELECT count(*) FROM crash_rewrites").fetchone()[0]
        stats["rewrites"] = rewrites
        if rewrites:
            sample = [r[0] for r in con.execute("SELECT * FROM crash_rewrites LIMIT 10")]
            problems.append("%s: %d rows were written twice (a replayed record overwrote its "
                            "own row): %s" % (name, rewrites, show(sample)))
    # The checkpoint's record count: every record counted once. Trusted only when the
    # clean calibration run shows the same number as the rows it wrote.
    try:
        got = con.execute("SELECT sum(records) FROM _sluice_checkpoints WHERE pipeline = ? "
                          "AND sink = ?", (PIPELINE, name)).fetchone()[0]
    except sqlite3.Error:
        got = None
    stats["ckpt_records"] = got
    con.close()
    if calib is not None and got is not None:
        if calib.get("ckpt_records") == calib.get("rows"):
            if got != nexp:
                problems.append("%s: _sluice_checkpoints counts %d records delivered, %d rows "
                                "expected (records were delivered more than once or lost)" %
                                (name, got, nexp))
        else:
            notes.append("%s: checkpoint record count not checked (clean run: %s records for "
                         "%s rows)" % (name, calib.get("ckpt_records"), calib.get("rows")))
    return stats


# --- PostgreSQL ------------------------------------------------------------------------
#
# Scenarios with a postgres sink get a cluster of their own (the same commands as
# tests/integration/pg.sh): initdb in a temp directory, 127.0.0.1 on a free port, one
# database per run directory; stopped and removed at exit, however the harness ends.


class PgCluster:
    def __init__(self):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            raise SetupError("PostgreSQL server binaries not found (/usr/lib/postgresql/*/"
                             "bin); run scripts/deps.sh")
        self.bin = os.path.dirname(bins[-1])
        self.data = None
        self.port = None

    def _as(self, args, **kw):
        if os.getuid() == 0:
            args = ["runuser", "-u", "postgres", "--"] + args
        return subprocess.run(args, cwd="/", **kw)

    def start(self):
        self.data = tempfile.mkdtemp(prefix="crashtest-pg-")
        os.chmod(self.data, 0o700)
        if os.getuid() == 0:
            shutil.chown(self.data, "postgres", "postgres")
        r = self._as([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "postgres",
                      "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8"],
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            raise SetupError("initdb failed: %s" % r.stdout.decode(errors="replace")[-500:])
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        r = self._as([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-l",
                      os.path.join(self.data, "server.log"), "-w", "-t", "30", "-o",
                      "-c listen_addresses=127.0.0.1 -p %d -k %s" % (self.port, self.data),
                      "start"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            raise SetupError("PostgreSQL did not start (see %s/server.log)" % self.data)
        log("  PostgreSQL cluster at 127.0.0.1:%d (%s)" % (self.port, self.data))

    def stop(self):
        if self.data and os.path.isdir(self.data):
            self._as([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "immediate",
                      "-w", "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            shutil.rmtree(self.data, ignore_errors=True)
        self.data = None

    def dsn(self, db):
        return "host=127.0.0.1 port=%d user=postgres dbname=%s" % (self.port, db)

    def sql(self, db, query):
        """The rows of query as lists of strings (unaligned, tuples only, | separated)."""
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1",
                            "-d", self.dsn(db), "-c", query], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        if r.returncode != 0:
            raise RuntimeError(r.stderr.decode(errors="replace").strip())
        return [ln.split("|") for ln in r.stdout.decode().splitlines()]

    def create_db(self, db):
        self.sql("postgres", "DROP DATABASE IF EXISTS %s" % db)
        self.sql("postgres", "CREATE DATABASE %s" % db)


PG = None


def pg_dbname(root):
    return "ct_" + re.sub(r"[^a-z0-9_]", "_", os.path.basename(root.rstrip("/")).lower())


def json_value_matches(want, got):
    """The column's value, read back as JSON (row_to_json), represents want."""
    if isinstance(want, bool) or isinstance(got, bool):
        return want is got or want == got and type(want) is type(got)
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        return float(want) == float(got)
    return want == got


def verify_postgres(s, root, inp, calib, problems, notes):
    """Every row (row_to_json, ORDER BY event_id) against the expected records, in one
    merge as verify_sqlite does; plus duplicates, record ids and the checkpoint count."""
    name, db, table = s["name"], pg_dbname(root), s["table"]
    try:
        total, distinct = (int(x) for x in PG.sql(
            db, 'SELECT count(*), count(DISTINCT event_id) FROM "%s"' % table)[0])
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-d", PG.dsn(db), "-c",
                            'SELECT row_to_json(t) FROM "%s" t ORDER BY event_id' % table],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    except (RuntimeError, subprocess.CalledProcessError) as e:
        problems.append("%s: cannot read table %s: %s" % (name, table, e))
        return {}
    rows = (json.loads(ln) for ln in r.stdout.decode().splitlines())
    missing, unexpected, mismatched, dups = [], [], [], []
    nexp = bad_ids = 0
    rids = set()
    dup_rids = 0
    last = None
    exp = iter(s["expect"](inp))
    e, row = next(exp, None), next(rows, None)
    while e is not None or row is not None:
        reid = row.get("event_id") if row is not None else None
        if row is not None and reid == last:
            dups.append(reid)
        elif row is not None and (e is None or reid is None or reid < e["event_id"]):
            unexpected.append(reid)
        elif e is not None and (row is None or e["event_id"] < reid):
            missing.append(e["event_id"])
            nexp += 1
            e = next(exp, None)
            continue
        else:
            diffs = ["%s: want %s, got %s" % (c, canon(e.get(c)), canon(v))
                     for c, v in row.items()
                     if c != ID_FIELD and not json_value_matches(e.get(c), v)]
            extra = sorted(set(e) - set(row))
            if extra:
                diffs.append("fields without a column: %s" % ", ".join(extra))
            if diffs:
                mismatched.append("%s: %s" % (reid, "; ".join(diffs[:4])))
            last = reid
            nexp += 1
            e = next(exp, None)
        rid = row.get(ID_FIELD)
        if not (isinstance(rid, str) and re.fullmatch(r"[0-9a-f]{32}", rid)):
            bad_ids += 1
        if rid in rids:
            dup_rids += 1
        rids.add(rid)
        row = next(rows, None)
    stats = dict(expected=nexp, rows=total, distinct=distinct, missing=len(missing),
                 duplicated=len(dups), unexpected=len(unexpected), mismatched=len(mismatched))
    if total != distinct:
        problems.append("%s: count(*) = %d but count(DISTINCT event_id) = %d" %
                        (name, total, distinct))
    if missing:
        problems.append("%s: %d of %d expected rows missing: %s" %
                        (name, len(missing), nexp, show(missing)))
    if dups:
        problems.append("%s: %d event_ids stored more than once: %s" % (name, len(dups),
                                                                         show(dups)))
    if unexpected:
        problems.append("%s: %d unexpected rows: %s" % (name, len(unexpected), show(unexpected)))
    if mismatched:
        problems.append("%s: %d rows differ from the expected record:\n      %s" % (
            name, len(mismatched), "\n      ".join(mismatched[:5])))
    if bad_ids:
        problems.append("%s: %d rows whose %s is not 32 hex digits" % (name, bad_ids, ID_FIELD))
    if dup_rids:
        problems.append("%s: %d record ids on more than one row" % (name, dup_rids))
    got = PG.sql(db, "SELECT sum(records) FROM _sluice_checkpoints WHERE pipeline = '%s' "
                 "AND sink = '%s'" % (PIPELINE, name))[0][0]
    got = int(got) if got else None
    stats["ckpt_records"] = got
    if calib is not None and got is not None:
        if calib.get("ckpt_records") == calib.get("rows"):
            if got != nexp:
                problems.append("%s: _sluice_checkpoints counts %d records delivered, %d rows "
                                "expected (records were delivered more than once or lost)" %
                                (name, got, nexp))
        else:
            notes.append("%s: checkpoint record count not checked (clean run: %s records for "
                         "%s rows)" % (name, calib.get("ckpt_records"), calib.get("rows")))
    return stats


def verify_file(s, root, inp, calib, problems, notes):
    """Compare the multiset of records over all final files with the expected one (as
    digests of their canonical JSON, to keep memory small)."""
    name = s["name"]
    want = collections.Counter()
    exp_order = []
    for obj in s["expect"](inp):
        want[digest(canon(obj))] += 1
        exp_order.append(obj["event_id"])
    finals, hidden, manifests = file_sink_files(s, root)
    got = collections.Counter()
    order = []
    partial, unparsable, unexpected_text = [], [], []
    for path in finals:
        rel = os.path.relpath(path, root)
        off = 0
        with open(path, "rb") as f:
            for raw in f:
                if not raw.endswith(b"\n"):
                    partial.append("%s ends in a partial line at byte %d: %r" %
                                   (rel, off, raw[:80]))
                    break
                try:
                    obj = json.loads(raw)
                except ValueError:
                    unparsable.append("%s byte %d: %r" % (rel, off, raw[:80]))
                    off += len(raw)
                    continue
                off += len(raw)
                if isinstance(obj, dict):
                    obj.pop(ID_FIELD, None)
                text = canon(obj)
                d = digest(text)
                got[d] += 1
                if d not in want and len(unexpected_text) < 3:
                    unexpected_text.append("%s byte %d: %s" % (rel, off - len(raw), text[:200]))
                order.append(obj.get("event_id") if isinstance(obj, dict) else None)
    leftovers = [p for p in hidden if os.path.getsize(p) > 0]
    n_missing = sum(want[d] - got[d] for d in want if got[d] < want[d])
    n_dup = sum(got[d] - want[d] for d in want if got[d] > want[d])
    n_unexp = sum(c for d, c in got.items() if d not in want)
    stats = dict(expected=sum(want.values()), lines=sum(got.values()), files=len(finals),
                 missing=n_missing, duplicated=n_dup, unexpected=n_unexp, partial=len(partial),
                 unparsable=len(unparsable))
    if not finals:
        problems.append("%s: no output files in %s" % (name, s["dir"]))
    if partial:
        problems.append("%s: partial lines:\n      %s" % (name, "\n      ".join(partial[:5])))
    if unparsable:
        problems.append("%s: %d lines are not JSON:\n      %s" % (
            name, len(unparsable), "\n      ".join(unparsable[:5])))
    if n_missing or n_dup:
        # Name the records: one more pass over the expectation.
        miss, dup = [], []
        for obj in s["expect"](inp):
            d = digest(canon(obj))
            if got[d] < want[d]:
                miss.append(obj["event_id"])
            elif got[d] > want[d]:
                dup.append("%s x%d" % (obj["event_id"], got[d]))
        if n_missing:
            problems.append("%s: %d of %d expected records missing: %s" % (
                name, n_missing, stats["expected"], show(miss)))
        if n_dup:
            problems.append("%s: %d records written more than once: %s" % (
                name, n_dup, show(dup)))
    if n_unexp:
        problems.append("%s: %d unexpected records (not in the input as transformed), e.g.:"
                        "\n      %s" % (name, n_unexp, "\n      ".join(unexpected_text)))
    if leftovers:
        notes.append("%s: non-empty hidden files left after the complete run: %s" % (
            name, ", ".join("%s (%d bytes)" % (os.path.relpath(p, root), os.path.getsize(p))
                            for p in leftovers)))
    if not (n_missing or n_dup or n_unexp) and order != exp_order:
        first = next(i for i, (a, b) in enumerate(zip(order, exp_order)) if a != b)
        notes.append("%s: same records as expected but in a different order (first at "
                     "record %d: %s where %s was expected)" % (name, first, order[first],
                                                              exp_order[first]))
    return stats


def verify_report(path, problems, label="final run"):
    """Read a --report file: "ok" must be true, and every stage must conserve its records:
    records_in = records_out + dropped + rejected + skipped + quarantined, and (with a
    dead-letter queue) dlq = rejected."""
    try:
        with open(path) as f:
            rep = json.load(f)
    except (OSError, ValueError) as e:
        problems.append("%s: no readable report %s: %s" % (label, path, e))
        return None
    if rep.get("ok") is not True:
        problems.append("%s: report says ok=%r" % (label, rep.get("ok")))
    for st in rep.get("stages", []):
        f = collections.defaultdict(int, {k: v for k, v in st.items() if isinstance(v, int)})
        out = f["records_out"] + f["dropped"] + f["rejected"] + f["skipped"] + f["quarantined"]
        if f["records_in"] != out:
            problems.append("%s: report, stage %s: records_in %d != records_out %d + dropped %d "
                            "+ rejected %d + skipped %d + quarantined %d (= %d)" % (
                                label, st.get("name"), f["records_in"], f["records_out"],
                                f["dropped"], f["rejected"], f["skipped"], f["quarantined"], out))
        if rep.get("dead_letter_queue") and f["dlq"] != f["rejected"]:
            problems.append("%s: report, stage %s: dlq %d != rejected %d" % (
                label, st.get("name"), f["dlq"], f["rejected"]))
    return rep


def dlq_want(sc, inp):
    """(path, line, offset, raw, kind, parsed object or None, stage, error class) of every
    DLQ entry the input must give. A stage after a streaming quality gate
    (sc["after_gate"]) never sees the lines the gate quarantined (inp.exclude)."""
    after = sc.get("after_gate", ())
    for path, lineno, offset, raw, kind in inp.lines():
        if kind is None:
            continue
        obj = None if kind in SOURCE_REJECTS or kind == "blank" else json.loads(raw)
        for stage, cls in sc["dlq"](kind, obj):
            if not (stage in after and lineno in inp.exclude):
                yield path, lineno, offset, raw, kind, obj, stage, cls


def expected_counts(sc, inp):
    """Per-stage report counts a clean run of a scenario with bad lines must show."""
    kinds = collections.Counter(inp.bad.values())
    nrec = sum(1 for _ in inp.records_k())
    src_bad = sum(kinds[k] for k in SOURCE_REJECTS)
    want = {"src": {"records_in": inp.count - kinds["blank"], "rejected": src_bad,
                    "records_out": nrec, "empty": kinds["blank"]}}
    by_stage = collections.Counter(w[6] for w in dlq_want(sc, inp))
    for stage in ("shape", "db"):
        want.setdefault(stage, {})["rejected"] = by_stage[stage]
    for s in sc["sinks"]:
        if not (sc.get("wap") == "quarantine" and s["name"] == "db"):
            want.setdefault(s["name"], {})["records_out"] = sum(1 for _ in s["expect"](inp))
    if sc.get("quarantine"):
        stage, fn = sc["quarantine"]
        want.setdefault(sc.get("gate_stage", stage), {})["quarantined"] = sum(1 for _ in fn(inp))
    return want


def verify_counts(rep, want, problems, label):
    stages = {st.get("name"): st for st in rep.get("stages", [])}
    for name, fields in sorted(want.items()):
        for field, n in sorted(fields.items()):
            got = stages.get(name, {}).get(field)
            if got != n:
                problems.append("%s: report, stage %s: %s = %s, expected %d" % (
                    label, name, field, got, n))


def query(path, sql, params=()):
    """The rows of sql in the database at path; none when the file or the table does not
    exist yet (a run killed before it made its schema leaves an empty database)."""
    if not os.path.exists(path):
        return []
    con = sqlite3.connect(path)
    try:
        return con.execute(sql, params).fetchall()
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return []
        raise
    finally:
        con.close()


def dlq_rows(root):
    return query(os.path.join(root, "state", "dlq.db"),
                 'SELECT record_id, stage, error_class, source, origin, line, "offset", raw, '
                 "true_len, record, attempts, replay FROM dlq_entries ORDER BY id")


def verify_dlq(sc, root, inp, problems, calib_ids=None):
    """The dead-letter queue holds exactly the expected rejections: one entry per (line,
    stage), attempts 1, the original bytes exactly (an over-long line: its first
    max_record_bytes bytes, true_len its length), the error class, the line's file, line
    number and offset, and the record as the rejecting stage got it. Returns (stats,
    {(file name, line, stage): record id})."""
    max_bytes = sc["bad"].get("max_record_bytes", 0)
    want = {}
    for path, lineno, offset, raw, kind, obj, stage, cls in dlq_want(sc, inp):
        want[(os.path.basename(path), lineno, stage)] = (cls, raw, offset, kind, obj, path)
    seen, ids = {}, {}
    wrong, unexpected, dups = [], [], []
    for (rid, stage, cls, source, origin, line, offset, raw, true_len, record, attempts,
         replay) in dlq_rows(root):
        key = (os.path.basename(origin), line, stage)
        where = "%s:%d (%s)" % (key[0], line, stage)
        if key in seen:
            dups.append(where)
            continue
        seen[key] = rid
        ids[key] = rid
        if key not in want:
            unexpected.append("%s %s: %r" % (where, cls, bytes(raw or b"")[:60]))
            continue
        wcls, wraw, woff, kind, obj, wpath = want[key]
        diffs = []
        if cls != wcls:
            diffs.append("error class %s, expected %s" % (cls, wcls))
        if attempts != 1:
            diffs.append("attempts %s" % attempts)
        if replay is not None:
            diffs.append("replay %s" % replay)
        if source != "src" or origin != wpath or offset != woff:
            diffs.append("source %s, origin %s, offset %s; expected src, %s, %d" % (
                source, origin, offset, wpath, woff))
        exp_raw = wraw[:max_bytes] if kind == "overlong" else wraw
        if bytes(raw) != exp_raw:
            diffs.append("raw %d bytes %r differ from the input's %d bytes %r" % (
                len(raw), bytes(raw)[:40], len(exp_raw), exp_raw[:40]))
        if true_len != len(wraw):
            diffs.append("true_len %s, the line has %d bytes" % (true_len, len(wraw)))
        if not (isinstance(rid, str) and re.fullmatch(r"[0-9a-f]{32}", rid)):
            diffs.append("record_id %r is not 32 hex digits" % rid)
        if calib_ids is not None and calib_ids.get(key) not in (None, rid):
            diffs.append("record_id %s, the clean run's was %s" % (rid, calib_ids[key]))
        wrec = dlq_record(stage, line, woff, obj)
        if wrec is not None:
            try:
                got = json.loads(record) if record is not None else None
            except ValueError:
                got = "(not JSON) " + record[:60]
            if got != wrec:
                diffs.append("record %s, expected %s" % (str(got)[:120], canon(wrec)[:120]))
        if diffs:
            wrong.append("%s (%s): %s" % (where, kind, "; ".join(diffs)))
    missing = ["%s:%d (%s, %s)" % (k[0], k[1], k[2], want[k][3]) for k in want if k not in seen]
    rid_count = collections.Counter((rid, k[2]) for k, rid in ids.items())
    shared = [r for r, n in rid_count.items() if n > 1]
    stats = collections.Counter(k[2] for k in seen)
    stats = dict(expected=len(want), entries=sum(stats.values()), missing=len(missing),
                 duplicated=len(dups), unexpected=len(unexpected), wrong=len(wrong),
                 **{"stage_" + k: v for k, v in sorted(stats.items())})
    if missing:
        problems.append("dlq: %d of %d expected entries missing: %s" % (
            len(missing), len(want), show(missing)))
    if dups:
        problems.append("dlq: %d lines with more than one entry for one stage: %s" % (
            len(dups), show(dups)))
    if unexpected:
        problems.append("dlq: %d unexpected entries: %s" % (len(unexpected), show(unexpected, 5)))
    if wrong:
        problems.append("dlq: %d entries differ from the rejected line:\n      %s" % (
            len(wrong), "\n      ".join(wrong[:6])))
    if shared:
        problems.append("dlq: %d record ids name more than one line: %s" % (len(shared),
                                                                              show(shared)))
    return stats, ids


def expected_dlq_lines(sc, inp):
    """[(line, stage)] of the expected DLQ entries (a scenario with one input file)."""
    saved, inp.exclude = inp.exclude, set()
    try:
        return [(w[1], w[6]) for w in dlq_want(sc, inp)]
    finally:
        inp.exclude = saved


def dlq_invariant(sc, root, want, nrun, failures):
    """After any run, killed or not: no entry was written twice (attempts 1), and no
    checkpoint covers a rejection the DLQ does not hold: every expected entry for a line
    before the highest src_line the sqlite sink committed is there. Returns how many
    entries that covered."""
    s = next(x for x in sc["sinks"] if x["kind"] == "sqlite")
    con = sqlite3.connect(os.path.join(root, s["db"]))
    try:
        top = con.execute('SELECT max(src_line) FROM "%s"' % s["table"]).fetchone()[0] or 0
    except sqlite3.Error:
        top = 0
    finally:
        con.close()
    rows = dlq_rows(root)
    have = collections.Counter((r[5], r[1]) for r in rows)
    held = {}
    if sc.get("gate_stage"):
        # Records a streaming gate held back never reach the stages after it, and none
        # may be both held back and written.
        held = quarantined_lines(root)
        want = [w for w in want if not (w[1] in sc["after_gate"] and w[0] in held)]
        con = sqlite3.connect(os.path.join(root, s["db"]))
        try:
            both = [r[0] for r in con.execute('SELECT src_line FROM "%s"' % s["table"])
                    if r[0] in held]
        except sqlite3.Error:
            both = []
        finally:
            con.close()
        if both:
            failures.append("after run %d: %d records are both in the quarantine and in %s: "
                            "lines %s" % (nrun, len(both), s["name"], show(sorted(both))))
    missing = [w for w in want if w[0] < top and not have[w]]
    twice = [k for k, n in have.items() if n > 1]
    again = [(r[5], r[1]) for r in rows if r[10] != 1]
    if missing:
        failures.append("after run %d: %s holds lines up to %d, but the dead-letter queue lacks "
                        "%d rejections before that line: %s" % (
                            nrun, s["name"], top, len(missing),
                            show("%d (%s)" % m for m in missing)))
    if twice or again:
        failures.append("after run %d: dead-letter entries written twice: %s; attempts != 1: %s"
                        % (nrun, show(twice), show(again)))
    return sum(1 for w in want if w[0] < top)


def quarantined_lines(root):
    """{src_line: event_id} of the records in the quarantine store (one input file)."""
    out = {}
    for (text,) in query(os.path.join(root, "state", "quarantine.db"),
                         "SELECT json FROM quarantine_records"):
        try:
            obj = json.loads(text)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("src_line"), int):
            out[obj["src_line"]] = obj.get("event_id")
    return out


def verify_gate(sc, root, inp, problems, calib_lines=None):
    """A streaming quarantine gate: every marker line that reaches the gate was held
    back (with its whole batch). Compares the held-back lines with the clean run's."""
    held = set(quarantined_lines(root))
    markers = [n for n, _, obj, kind in inp.records_k()
               if kind == "marker" and castable(obj.get("user_id")) and f_not_bot(obj)]
    loose = [n for n in markers if n not in held]
    if loose:
        problems.append("quarantine: %d marker lines passed the gate: %s" % (len(loose),
                                                                           show(loose)))
    note = "%d lines held back, %d markers" % (len(held), len(markers))
    if calib_lines is not None and held != calib_lines:
        note += "; not the clean run's %d lines (%d only here, %d only there)" % (
            len(calib_lines), len(held - calib_lines), len(calib_lines - held))
    elif calib_lines is not None:
        note += "; the same lines as in the clean run"
    return note


def staging_rows(db):
    """Rows left in the sink's staging tables (absent tables count as empty)."""
    if not os.path.exists(db):
        return 0
    con = sqlite3.connect(db)
    try:
        n = 0
        for t in ("_sluice_staging", "_sluice_staged"):
            if con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (t,)).fetchone():
                n += con.execute('SELECT count(*) FROM "%s"' % t).fetchone()[0]
        return n
    finally:
        con.close()


def quarantine_state(root):
    """(records, distinct (record_id, stage), units, empty units, sum of units' counts,
    highest unit id)."""
    path = os.path.join(root, "state", "quarantine.db")
    n, d = (query(path, "SELECT count(*), count(DISTINCT record_id || '/' || stage) "
                        "FROM quarantine_records") or [(0, 0)])[0]
    units, empty, total, top = (query(
        path, "SELECT count(*), sum(NOT EXISTS (SELECT 1 FROM quarantine_records r "
              "WHERE r.unit = u.id)), sum(records), max(id) FROM quarantine_units u")
        or [(0, 0, 0, 0)])[0]
    return n, d, units, empty or 0, total or 0, top or 0


def verify_quarantine(sc, root, inp, problems):
    """Every record the quarantine verdict held back is in the store exactly once, as the
    record the stage staged; no empty units."""
    stage, fn = sc["quarantine"]

    def key(obj):
        return (obj.get("event_id"), obj.get("src_line"), obj.get("src_offset"))

    want = {}
    for obj in fn(inp):
        want[key(obj)] = obj
    got, dups, wrong, unexpected, stages = {}, [], [], [], collections.Counter()
    rids = collections.Counter()
    for rid, st, text in query(os.path.join(root, "state", "quarantine.db"),
                               "SELECT record_id, stage, json FROM quarantine_records"):
        stages[st] += 1
        rids[rid] += 1
        try:
            obj = json.loads(text)
        except ValueError:
            wrong.append("record %s is not JSON: %r" % (rid, text[:60]))
            continue
        eid = key(obj) if isinstance(obj, dict) else None
        if eid in got:
            dups.append(eid)
        elif eid not in want:
            unexpected.append(eid)
        elif obj != want[eid]:
            wrong.append("%s: %s, expected %s" % (eid, canon(obj)[:120], canon(want[eid])[:120]))
        got[eid] = rid
    n, _, units, empty, total, top = quarantine_state(root)
    missing = [e for e in want if e not in got]
    # Units are numbered from 1; a unit whose records were all quarantined again (moved
    # into a newer unit) is removed, so top > units shows such re-quarantines.
    stats = dict(expected=len(want), records=n, units=units, highest_unit=top,
                 missing=len(missing),
                 duplicated=len(dups), unexpected=len(unexpected), wrong=len(wrong))
    if missing:
        problems.append("quarantine: %d of %d expected records missing: %s" % (
            len(missing), len(want), show("%s (line %s)" % e[:2] for e in missing)))
    if dups:
        problems.append("quarantine: %d records kept more than once: %s" % (
            len(dups), show("%s (line %s)" % e[:2] for e in dups)))
    if unexpected:
        problems.append("quarantine: %d unexpected records: %s" % (
            len(unexpected), show("%s (line %s)" % e[:2] if e else "?" for e in unexpected)))
    if wrong:
        problems.append("quarantine: %d records differ:\n      %s" % (
            len(wrong), "\n      ".join(wrong[:5])))
    if set(stages) - {stage}:
        problems.append("quarantine: records kept at stages %s, expected only %s" % (
            dict(stages), stage))
    if any(c > 1 for c in rids.values()):
        problems.append("quarantine: a record id on more than one record")
    if empty:
        problems.append("quarantine: %d units hold no records" % empty)
    if total != n:
        problems.append("quarantine: the units count %d records, %d are stored" % (total, n))
    return stats


def verify_extras(sc, root, inp, problems, calib_ids=None, label="", calib_held=None):
    """The dead-letter queue, the quarantine and the staging tables, where the scenario
    has them. Returns the DLQ's record ids."""
    ids = None
    if sc.get("gate_stage"):
        log("%s: streaming gate: %s" % (label, verify_gate(sc, root, inp, problems,
                                                            calib_held)))
    if sc.get("bad"):
        st, ids = verify_dlq(sc, root, inp, problems, calib_ids)
        log("%s: dead-letter queue: %s" % (label, ", ".join("%s %s" % kv for kv in st.items())))
    if sc.get("quarantine"):
        st = verify_quarantine(sc, root, inp, problems)
        log("%s: quarantine: %s" % (label, ", ".join("%s %s" % kv for kv in st.items())))
    if sc.get("wap"):
        for s in sc["sinks"]:
            if s["kind"] == "sqlite":
                n = staging_rows(os.path.join(root, s["db"]))
                if n:
                    problems.append("%s: %d rows left in _sluice_staging/_sluice_staged after "
                                    "a complete run" % (s["name"], n))
    return ids


def verify_all(sc, root, inp, calib, label):
    problems, notes, stats = [], [], {}
    for s in sc["sinks"]:
        c = calib.get(s["name"]) if calib else None
        if s["kind"] == "sqlite":
            st = verify_sqlite(s, root, inp, c, problems, notes)
        elif s["kind"] == "postgres":
            st = verify_postgres(s, root, inp, c, problems, notes)
        else:
            st = verify_file(s, root, inp, c, problems, notes)
        stats[s["name"]] = st
        log("%s: sink %s (%s): %s" % (label, s["name"], s["kind"],
                                      ", ".join("%s %s" % kv for kv in st.items())))
    return problems, notes, stats


# --- write-audit-publish ------------------------------------------------------------------
#
# A `run --once` whose sink stages is one unit: killed anywhere, the next run drops the
# staging and does the whole unit again. To have units to publish during the kills, the
# input comes in parts: the crash run starts with the first part, and whenever the store
# shows a unit published the next part is added (as a daily file landing). After every
# run the store must hold all of the unit or none of it: its count must be what the
# published parts give, either before the run or with the run's unit.


def glob_parts(root):
    d = os.path.join(root, "in")
    return sorted(os.path.join(d, n) for n in os.listdir(d) if re.match(r"clicks-\d+\.ndjson$", n))


LOG_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z")
PUBLISH_START = re.compile(r"\[db\] (created table|added column)|failed over the whole run")


def publish_fraction(errpath, t0_wall, t_run):
    """Where in the clean run the verdict and the publish began, as a fraction of the run,
    from the first log line the publish writes (the table's first columns, or the failed
    gate). None when no such line is found."""
    import datetime
    try:
        with open(errpath, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    for ln in text.splitlines():
        m = LOG_TS.match(ln)
        if m and PUBLISH_START.search(ln):
            ts = datetime.datetime.strptime(m.group(1)[:26], "%Y-%m-%dT%H:%M:%S.%f")
            t = ts.replace(tzinfo=datetime.timezone.utc).timestamp()
            return min(1.0, max(0.0, (t - t0_wall) / max(t_run, 1e-3)))
    return None


def store_state(sc, root):
    """(rows in the target table, distinct event_ids, rows written twice, checkpoint
    record count, quarantined records, distinct quarantined (record id, stage), DLQ
    entries, highest attempts)."""
    s = sc["sinks"][0]
    con = sqlite3.connect(os.path.join(root, s["db"]))
    try:
        n, d = con.execute('SELECT count(*), count(DISTINCT event_id) FROM "%s"' %
                           s["table"]).fetchone()
        rw = con.execute("SELECT count(*) FROM crash_rewrites").fetchone()[0]
        try:
            ck = con.execute("SELECT coalesce(sum(records), 0) FROM _sluice_checkpoints "
                             "WHERE pipeline = ? AND sink = ?", (PIPELINE, s["name"])).fetchone()[0]
        except sqlite3.Error:
            ck = 0
    finally:
        con.close()
    q, qd = quarantine_state(root)[:2]
    rows = dlq_rows(root)
    return n, d, rw, ck, q, qd, len(rows), max([r[10] for r in rows] or [0])


def state_summary(sc, root):
    """What a run that reads nothing must leave unchanged."""
    out = {"dlq": [(r[0], r[1], r[10]) for r in dlq_rows(root)],
           "quarantine": quarantine_state(root)}
    for s in sc["sinks"]:
        if s["kind"] == "sqlite":
            con = sqlite3.connect(os.path.join(root, s["db"]))
            out[s["name"]] = con.execute('SELECT count(*), max(event_id) FROM "%s"' %
                                         s["table"]).fetchone()
            con.close()
            out[s["name"] + "_staging"] = staging_rows(os.path.join(root, s["db"]))
        elif s["kind"] == "postgres":
            out[s["name"]] = PG.sql(pg_dbname(root), 'SELECT count(*), max(event_id), '
                                    '(SELECT sum(records) FROM _sluice_checkpoints) FROM "%s"'
                                    % s["table"])
    return out


def wap_kills(args, sc, rng, root, runner, parts, bad, t_clean, t_idle, pub_frac):
    """The kill loop of the write-audit-publish scenarios (see above). Ends with every
    part in the crash run's input directory. Returns (failures, runs that finished before
    their kill, runs killed)."""
    in_dir = os.path.join(root, "in")
    os.makedirs(in_dir, exist_ok=True)
    mode = sc["wap"]
    fn = sc["quarantine"][1] if mode == "quarantine" else sc["sinks"][0]["expect"]
    rows, dlqs, nlines = [0], [0], []
    for part in parts:
        pin = Input([part], bad)
        rows.append(rows[-1] + sum(1 for _ in fn(pin)))
        dlqs.append(dlqs[-1] + sum(1 for _ in dlq_want(sc, pin)))
        nlines.append(pin.count)
    total_lines = sum(nlines)

    def add_part(i):
        shutil.copyfile(parts[i], os.path.join(in_dir, os.path.basename(parts[i])))

    add_part(0)
    present, published = 1, 0
    failures = []
    completed = nkilled = 0
    phases = collections.Counter()
    consecutive_bad = 0
    per_unit = max(1, args.kills // len(parts))
    on_unit = 0
    fit = 1.0  # measured run time / estimated, learnt from runs that published
    where = "table" if mode == "publish" else "quarantine"
    log("units: %d parts of %s lines, %s records to %s; the crash run starts with part 1; "
        "about %d kills per unit, then a run is left to finish and the next part is added "
        "(the kills left are shared again among the units left whenever one is published)" % (
            len(parts), "/".join(map(str, nlines)),
            "/".join(str(b - a) for a, b in zip(rows, rows[1:])), mode, per_unit))

    def check_after(nrun):
        """The store after a run: all of the run's unit or none of it."""
        n, d, rw, ck, q, qd, nd, att = store_state(sc, root)
        got = n if mode == "publish" else q
        if got not in (rows[published], rows[present]):
            failures.append("after run %d: the %s holds %d records; a unit is all or nothing, "
                            "so %d (before the run) or %d (with its unit) were expected" %
                            (nrun, where, got, rows[published], rows[present]))
        if n != d or rw:
            failures.append("after run %d: table has %d rows, %d distinct event_ids, %d rows "
                            "written twice" % (nrun, n, d, rw))
        if mode == "quarantine" and (n or q != qd):
            failures.append("after run %d: %d rows in the table (must stay empty), %d "
                            "quarantined records for %d distinct ids" % (nrun, n, q, qd))
        if mode == "publish" and ck != n:
            failures.append("after run %d: _sluice_checkpoints counts %d records, the table "
                            "holds %d" % (nrun, ck, n))
        if att > 1 or nd > dlqs[present]:
            failures.append("after run %d: the dead-letter queue has %d entries (at most %d "
                            "expected so far), highest attempts %d" % (nrun, nd, dlqs[present],
                                                                       att))
        return got, nd

    k = 0
    while k < args.kills and published < len(parts):
        unit = "part%s %s" % ("s" if present - published > 1 else "",
                              "-".join(sorted({str(published + 1), str(present)})))
        unit_lines = sum(nlines[published:present])
        t_raw = t_idle + (t_clean - t_idle) * unit_lines / max(1, total_lines)
        t_unit = t_raw * fit
        if on_unit >= per_unit:
            # Enough kills on this unit: let a run finish, so the next part gets its turn.
            rc, when, errpath = run_to_end(runner, RUN_TIMEOUT_S)
            got, nd = check_after(runner.nrun)
            msg = "         run %d (%s) left to finish: exit %s after %.3f s; %s %d, dlq %d" % (
                runner.nrun, unit, rc, when, where, got, nd)
            if rc != 0:
                failures.append("run %d (left to finish) exited %s after %.3f s:\n%s" %
                                (runner.nrun, rc, when, tail(errpath)))
                log(msg)
                break
            if got != rows[present]:
                failures.append("run %d finished (exit 0) but the %s holds %d records, %d "
                                "expected" % (runner.nrun, where, got, rows[present]))
            fit = min(1.5, max(0.2, when / t_raw))
        else:
            k += 1
            r = rng.random()
            if r < 0.15:
                at, why = rng.uniform(0.0, EARLY_WINDOW_S), "early"
            elif r < 0.65:
                at, why = rng.uniform(0.55, 1.0) * t_unit, "second half"
            else:
                at, why = rng.uniform(0.0, t_unit), "mid"
            proc, t0, errpath = runner.start()
            killed, rc, when = kill_run(proc, t0, at)
            got, nd = check_after(runner.nrun)
            on_unit += 1
            phase = ""
            if pub_frac is not None and killed:
                ph = "publish" if when >= pub_frac * t_unit else "staging"
                phases[ph] += 1
                phase = ", about in the %s phase" % ph
            if killed:
                nkilled += 1
                consecutive_bad = 0
                msg = "kill %2d/%d: run %d (%s, est. %.2f s) SIGKILLed at %.3f s (%s%s)" % (
                    k, args.kills, runner.nrun, unit, t_unit, when, why, phase)
                if stderr_errors(errpath):
                    failures.append("run %d (killed at %.3f s) had logged errors before the "
                                    "kill:\n%s" % (runner.nrun, when, tail(errpath)))
                if got == rows[present] and got != rows[published]:
                    fit = min(fit, max(0.2, 0.95 * when / t_raw))  # it had published
            elif rc == 0:
                completed += 1
                consecutive_bad = 0
                msg = "kill %2d/%d: run %d (%s) finished by itself after %.3f s, before its " \
                      "kill at %.3f s" % (k, args.kills, runner.nrun, unit, when, at)
                if got != rows[present]:
                    failures.append("run %d finished (exit 0) but the %s holds %d records, %d "
                                    "expected" % (runner.nrun, where, got, rows[present]))
                fit = min(1.5, max(0.2, when / t_raw))
            else:
                consecutive_bad += 1
                msg = "kill %2d/%d: run %d FAILED: exit %s after %.3f s" % (
                    k, args.kills, runner.nrun, rc, when)
                failures.append("run %d (after %d kills) exited %s by itself after %.3f s:\n%s"
                                % (runner.nrun, k - 1, rc, when, tail(errpath)))
            msg += "; %s %d, dlq %d" % (where, got, nd)
        if got == rows[present] and present > published:
            published = present
            on_unit = 0
            # The kills left are shared among the units left.
            per_unit = max(1, -(-(args.kills - k) // max(1, len(parts) - published)))
            msg += "; unit published"
            if present < len(parts):
                add_part(present)
                present += 1
                msg += ", part %d added" % present
        log(msg)
        if consecutive_bad >= 3:
            log("three runs in a row failed by themselves; no more kills")
            break
    if published == len(parts) and k < args.kills:
        log("every part is published after %d kills" % k)
    while present < len(parts):
        add_part(present)
        present += 1
    if phases:
        log("killed runs by estimated phase: %s" % ", ".join("%s %d" % kv
                                                            for kv in sorted(phases.items())))
    return failures, completed, nkilled


# --- one scenario -------------------------------------------------------------------------


def draw_kill(rng, early_share, mid_hi):
    if rng.random() < early_share:
        return rng.uniform(0.0, EARLY_WINDOW_S), "early"
    return rng.uniform(0.0, mid_hi), "mid"


def scenario(args):
    sc = SCENARIOS[args.scenario]
    seed = args.seed
    rng = random.Random(seed)
    log("crashtest seed=%d scenario=%s records=%d kills=%d delivery=%s" %
        (seed, args.scenario, args.records, args.kills, args.delivery))
    log("  %s" % sc["help"])
    global PG
    if any(s["kind"] == "postgres" for s in sc["sinks"]):
        PG = PgCluster()
        atexit.register(PG.stop)
        PG.start()
    gen = os.path.join(args.tools, "gen_clicks")
    for exe in (args.sluice, gen):
        if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
            raise SetupError("no executable at %s (set SLUICE / SLUICE_TOOLS)" % exe)
    work = args.workdir or tempfile.mkdtemp(prefix="crashtest-%s-" % args.scenario)
    os.makedirs(work, exist_ok=True)
    log("  work directory %s" % work)
    t_start = time.monotonic()

    full = os.path.join(work, "clicks.ndjson")
    subprocess.run([gen, "--count", str(args.records), "--seed", str(seed % 2**31),
                    "--out", full], check=True, stdout=subprocess.DEVNULL)
    follow = bool(sc.get("follow"))
    bad = {}
    if sc.get("bad"):
        bad = inject_bad(full, seed, sc["bad"])
        log("  %d bad lines injected: %s" % (len(bad), ", ".join(
            "%s %d" % kv for kv in sorted(collections.Counter(bad.values()).items()))))
    nsplit = sc.get("split") or sc.get("parts")
    if nsplit:
        parts = split_input(full, nsplit, os.path.join(work, "in"))
        inp = Input(parts, locate_bad(full, bad, parts))
        os.remove(full)
        source_path = os.path.join(work, "in", "clicks-*.ndjson")
    else:
        inp = Input([full], {(os.path.basename(full), k): v for k, v in bad.items()})
        source_path = full

    # Calibration: one clean run, timed and checked.
    calib_root = os.path.join(work, "clean")
    os.makedirs(calib_root)
    prepare_root(sc, calib_root)
    cyaml = os.path.join(calib_root, "p.yaml")
    with open(cyaml, "w") as f:
        f.write(pipeline_yaml(dict(sc, follow=False), calib_root, args.delivery, source_path,
                              args.records))
    crun = Runner(args.sluice, calib_root, cyaml, once=True)
    t0_wall = time.time()
    rc, t_clean, errpath = run_to_end(crun, RUN_TIMEOUT_S,
                                      ("--report", os.path.join(calib_root, "report.json")))
    errpath_clean = errpath
    if rc != 0:
        log("FAIL: the clean run (no kills) exited %s:\n%s" % (rc, tail(errpath)))
        return 1, work
    problems, report_problems = [], []
    calib_held = None
    if sc.get("gate_stage"):
        # What the streaming gate held back depends on how the input fell into batches;
        # the sinks' expectations leave those lines out.
        calib_held = set(quarantined_lines(calib_root))
        inp.exclude = calib_held
    crep = verify_report(os.path.join(calib_root, "report.json"), report_problems, "clean run")
    if crep is not None and sc.get("dlq"):
        verify_counts(crep, expected_counts(sc, inp), report_problems, "clean run")
    # Once more with nothing left to do: that must add nothing, and it times the fixed
    # cost of a run (start-up, recovery, shutdown) that kill windows must allow for.
    rc, t_idle, errpath = run_to_end(crun, RUN_TIMEOUT_S)
    if rc != 0:
        log("FAIL: a second run after the clean run exited %s:\n%s" % (rc, tail(errpath)))
        return 1, work
    vproblems, notes, calib = verify_all(sc, calib_root, inp, None, "clean run + rerun")
    problems += vproblems
    calib_ids = verify_extras(sc, calib_root, inp, problems, label="clean run + rerun")
    pub_frac = publish_fraction(errpath_clean, t0_wall, t_clean) if sc.get("wap") else None
    if problems:
        log("FAIL: the clean run (no kills, then run once more) already differs from the "
            "expected output; that is not about crash recovery:")
        for p in problems:
            log("  - " + p)
        return 1, work
    log("clean run: %.3f s, then a run with nothing to do: %.3f s; output exact" %
        (t_clean, t_idle))
    for p in report_problems:
        log("clean run: REPORT PROBLEM (the crash runs go on; the test fails at the end): " + p)
    if pub_frac is not None:
        log("clean run: publish (or quarantine) began at about %.0f%% of the run" %
            (pub_frac * 100))
    if not args.keep:
        shutil.rmtree(calib_root)

    # The crash runs.
    root = os.path.join(work, "crash")
    os.makedirs(root)
    prepare_root(sc, root)
    yaml_path = os.path.join(root, "p.yaml")
    live_input = os.path.join(root, "input.ndjson") if follow else source_path
    if sc.get("wap"):
        live_input = os.path.join(root, "in", "clicks-*.ndjson")
    with open(yaml_path, "w") as f:
        f.write(pipeline_yaml(sc, root, args.delivery, live_input, args.records))
    early_share = sc.get("early_share", 0.2)
    appender = None
    if follow:
        # A tenth of the input is there from the start; the rest arrives during the kills.
        with open(full, "rb") as f:
            data = f.read()
        cut = data.find(b"\n", len(data) // 10) + 1
        with open(live_input, "wb") as f:
            f.write(data[:cut])
        del data
        duration = max(2.0, t_clean * 3)
        mid_hi = t_idle + 2.0 * duration / max(1.0, args.kills * (1.0 - early_share))
        appender = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--append",
                                     full, live_input, "%.3f" % duration, str(seed),
                                     str(sc.get("split_lines", 0.125))])
        LIVE.add(appender)
        log("appender pid %d: %d more bytes over %.1f s" % (appender.pid,
                                                            os.path.getsize(full) - cut, duration))
    else:
        # Each run must leave work for the next: the mid-run kill instants are spread so
        # that all kills together allow about one clean run's worth of progress beyond
        # the fixed cost of each run.
        t_work = max(0.0, t_clean - t_idle)
        mid_hi = t_idle + 2.0 * t_work / max(1.0, args.kills * (1.0 - early_share))
        mid_hi = min(max(mid_hi, 0.005), t_clean * 1.2)
    if not sc.get("wap"):
        log("kill windows: early [0, %.0f ms) for %.0f%% of kills, otherwise [0, %.3f s)" %
            (EARLY_WINDOW_S * 1000, early_share * 100, mid_hi))

    runner = Runner(args.sluice, root, yaml_path, once=not follow)
    failures = []
    completed = nkilled = 0
    consecutive_bad = 0
    generic_kills = args.kills
    want_dlq = expected_dlq_lines(sc, inp) if sc.get("bad") else None
    dlq_checked = 0
    if sc.get("wap"):
        failures, completed, nkilled = wap_kills(args, sc, rng, root, runner, parts, inp.bad,
                                                 t_clean, t_idle, pub_frac)
        generic_kills = 0
    for k in range(1, generic_kills + 1):
        at, why = draw_kill(rng, early_share, mid_hi)
        # A followed source also runs with --once now and then (a catch-up job between
        # streaming runs): its positions then come from both modes.
        once = None
        if follow and rng.random() < sc.get("once_share", 0.0):
            once = True
            why += ", --once"
        proc, t0, errpath = runner.start(once=once)
        killed, rc, when = kill_run(proc, t0, at)
        if killed:
            nkilled += 1
            msg = "kill %2d/%d: run %d SIGKILLed at %.3f s (%s window)" % (
                k, args.kills, runner.nrun, when, why)
            consecutive_bad = 0
            # An error logged before the kill is a failure the kill would otherwise hide.
            bad = stderr_errors(errpath)
            if bad:
                msg += "; but it had logged: " + bad[0][:200]
                failures.append("run %d (killed at %.3f s) had logged errors before the kill:"
                                "\n%s" % (runner.nrun, when, tail(errpath)))
        elif rc == 0 and (not follow or once):
            completed += 1
            msg = "kill %2d/%d: run %d finished by itself (exit 0) after %.3f s, before its " \
                  "kill at %.3f s" % (k, args.kills, runner.nrun, when, at)
            consecutive_bad = 0
        else:
            msg = "kill %2d/%d: run %d FAILED: exit %s after %.3f s (kill was due at %.3f s)" \
                  % (k, args.kills, runner.nrun, rc, when, at)
            failures.append("run %d (after %d kills) exited %s by itself after %.3f s:\n%s" %
                            (runner.nrun, k - 1, rc, when, tail(errpath)))
            consecutive_bad += 1
        if appender is not None:
            msg += "; input %d bytes%s" % (os.path.getsize(live_input),
                                          "" if appender.poll() is None else ", appends done")
        if sc.get("bad"):
            dlq_checked += dlq_invariant(sc, root, want_dlq, runner.nrun, failures)
            msg += "; dlq %d entries" % len(dlq_rows(root))
        log(msg)
        if sc.get("tear"):
            for what in tear_crash(rng, sc, root):
                log("           tear: " + what)
        kinds = tuple(args.damage.split(",")) if args.damage else sc.get("damage")
        if kinds and not follow and k % 3 == 0:
            more, stop = damage_event(rng, sc, root, runner, kinds)
            failures.extend(more)
            if stop:
                log("crashtest FAIL scenario=%s seed=%d: a run went ahead on damaged state; "
                    "stopping here" % (args.scenario, seed))
                for p in failures:
                    log("  - " + p)
                log("kept %s (logs in crash/logs/)" % work)
                return 1, work
        if consecutive_bad >= 3:
            log("three runs in a row failed by themselves; no more kills")
            break
    if want_dlq is not None and generic_kills:
        log("after each run: every rejection below the sqlite sink's highest committed line "
            "was in the dead-letter queue (%d entries checked in all)" % dlq_checked)
    if appender is not None:
        if appender.wait() != 0:
            raise SetupError("the appender failed (exit %d)" % appender.returncode)
        log("appender done; input complete (%d bytes)" % os.path.getsize(live_input))

    # The last run completes.
    report = os.path.join(root, "report.json")
    final = Runner(args.sluice, root, yaml_path, once=True)
    final.nrun = runner.nrun
    rc, t_final, errpath = run_to_end(final, FINAL_TIMEOUT_S, ("--report", report))
    log("final run %d: exit %s after %.3f s" % (final.nrun, rc, t_final))
    problems = []
    if rc != 0:
        problems.append("final run exited %s after %.3f s:\n%s" % (rc, t_final, tail(errpath)))
    else:
        verify_report(report, problems)
    if follow:
        inp = Input([live_input])
        if inp.count != args.records:
            problems.append("the followed input has %d lines, %d generated" %
                            (inp.count, args.records))
    label = "after %d kills" % (nkilled if sc.get("wap") else args.kills)
    if sc.get("wap"):
        inp = Input(glob_parts(root), inp.bad)
    if sc.get("gate_stage"):
        inp.exclude = set(quarantined_lines(root))
    vproblems, notes, _ = verify_all(sc, root, inp, calib, label)
    verify_extras(sc, root, inp, vproblems, None if sc.get("wap") else calib_ids, label,
                  calib_held)
    if rc == 0 and (sc.get("bad") or sc.get("wap")):
        # The checkpoint covers the whole input: one more run reads nothing and changes
        # nothing.
        before = state_summary(sc, root)
        rc2, t2, err2 = run_to_end(final, FINAL_TIMEOUT_S, ("--report", report + ".again"))
        rep2 = verify_report(report + ".again", vproblems, "run after the final run")
        after = state_summary(sc, root)
        log("one more run: exit %s after %.3f s, read %s records" % (
            rc2, t2, rep2.get("records_read") if rep2 else "?"))
        if rc2 != 0:
            vproblems.append("the run after the final run exited %s:\n%s" % (rc2, tail(err2)))
        elif rep2 and rep2.get("records_read") != 0:
            vproblems.append("the run after the final run read %s records: the checkpoint "
                             "does not cover the input" % rep2.get("records_read"))
        if before != after:
            vproblems.append("the run after the final run changed the state: %s -> %s" %
                             (before, after))
    problems = failures + problems + vproblems + report_problems
    for n in notes:
        log("note: " + n)
    elapsed = time.monotonic() - t_start
    repro = "%s --scenario %s --seed %d --records %d --kills %d" % (
        os.path.abspath(__file__), args.scenario, seed, args.records, args.kills)
    if args.damage:
        repro += " --damage " + args.damage
    if args.delivery != "exactly_once":
        repro += " --delivery " + args.delivery
    if problems:
        log("crashtest FAIL scenario=%s seed=%d (%d runs, %d finished before their kill, "
            "%.1f s)" % (args.scenario, seed, final.nrun, completed, elapsed))
        for p in problems:
            log("  - " + p)
        log("reproduce: SLUICE=%s SLUICE_TOOLS=%s %s" % (args.sluice, args.tools, repro))
        log("kept %s (logs in crash/logs/)" % work)
        return 1, work
    log("crashtest PASS scenario=%s seed=%d: %d runs, %d killed, %d finished before their "
        "kill, %.1f s" % (args.scenario, seed, final.nrun, nkilled, completed, elapsed))
    return 0, work


def main(argv):
    if len(argv) >= 1 and argv[0] == "--append":
        append_worker(argv[1], argv[2], float(argv[3]), int(argv[4]), float(argv[5]))
        return 0
    env = os.environ
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", choices=sorted(SCENARIOS))
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--seed", type=int, default=int(env.get("CRASHTEST_SEED") or 0) or None)
    p.add_argument("--records", type=int, default=int(env.get("CRASHTEST_RECORDS") or 0) or None,
                   help="input records (default: 200000; dlq, quarantine 100000; wap* 36000)")
    p.add_argument("--kills", type=int, default=int(env.get("CRASHTEST_KILLS") or 30))
    p.add_argument("--delivery", default="exactly_once",
                   choices=("exactly_once", "at_least_once"),
                   help="the pipeline's delivery mode (at_least_once shows what the checks "
                        "catch)")
    p.add_argument("--damage", metavar="LIST",
                   help="after every third kill, cut committed bytes of one of: manifest, "
                        "inprogress, final, or delete the manifest: manifest_gone (comma "
                        "list); the next run must refuse. Default: the damage scenario's "
                        "manifest,inprogress; others none")
    p.add_argument("--sluice", default=env.get("SLUICE"))
    p.add_argument("--tools", default=env.get("SLUICE_TOOLS"))
    p.add_argument("--workdir", help="work here instead of a fresh temporary directory")
    p.add_argument("--keep", action="store_true", default=env.get("CRASHTEST_KEEP") == "1",
                   help="keep the work directory after a pass")
    args = p.parse_args(argv)
    if args.list:
        for name in sorted(SCENARIOS):
            print("%-17s %s" % (name, SCENARIOS[name]["help"]))
        return 0
    if not args.scenario:
        p.error("--scenario is required (see --list)")
    if not args.sluice:
        p.error("set SLUICE or pass --sluice")
    args.sluice = os.path.abspath(args.sluice)
    args.tools = os.path.abspath(args.tools or os.path.dirname(args.sluice))
    if args.records is None:
        args.records = SCENARIOS[args.scenario].get("records", 200000)
    if args.records < 1 or args.kills < 0:
        p.error("--records must be >= 1 and --kills >= 0")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 2**31)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        rc, work = scenario(args)
    except SetupError as e:
        print("crashtest: %s" % e, file=sys.stderr)
        return 2
    finally:
        for proc in list(LIVE):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if rc == 0 and not args.keep and not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
