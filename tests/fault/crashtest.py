#!/usr/bin/env python3
"""crashtest.py - kill sluice with SIGKILL at random instants; prove nothing is lost or
duplicated.

    crashtest.py --scenario NAME [--seed S] [--records N] [--kills K] [--damage LIST]
                 [--delivery MODE] [--workdir DIR] [--keep]
    crashtest.py --list

What it does, per scenario:

  1. Generates N click events with gen_clicks (each has a unique "event_id"; N defaults
     to 200,000) and writes the scenario's pipeline file.
  2. Calibrates: runs the pipeline once, start to finish, in a separate directory and
     times it. That output must already be exact (otherwise the comparison, not the crash
     handling, is at fault, and the test says so).
  3. Runs `sluice run P.yaml --once --quiet` and sends SIGKILL at a random instant,
     restarts it, and repeats K times (default 30). Kill instants are drawn uniformly
     from windows derived from the calibrated run time, so most kills land mid-run and
     about a fifth land in the first 50 ms (start-up and recovery). Some scenarios tear
     or damage files while sluice is down (see "tearing" below) or append to a followed
     input meanwhile.
  4. Lets a last run finish (`--once --report R.json`) and checks its exit status and
     report.
  5. Compares every sink with the records expected, computed here in Python from the
     input (the same filter and map as the pipeline):
       sqlite: the set of event_ids, every column of every row, no duplicates
               (count(*) == count(distinct event_id)); where the scenario pre-creates the
               table, an UPDATE trigger counts rows written twice (a replayed record), and
               the checkpoint table's record count must equal the rows expected (when
               the clean run shows that it counts each row once).
       file:   the multiset of records over all final output files; every line must be
               complete JSON; a missing, duplicated or unexpected record is a failure.
               The record id field (_sluice_id) is ignored.

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
import collections
import hashlib
import json
import math
import os
import random
import re
import shutil
import signal
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
    records() yields (line number, byte offset, object), both counted within each file."""

    def __init__(self, paths):
        self.paths = sorted(paths)
        self.count = 0
        for path in self.paths:
            with open(path, "rb") as f:
                for lineno, raw in enumerate(f, 1):
                    if not raw.endswith(b"\n"):
                        raise SetupError("%s: line %d has no newline" % (path, lineno))
                    self.count += 1

    def records(self):
        for path in self.paths:
            offset = 0
            with open(path, "rb") as f:
                for lineno, raw in enumerate(f, 1):
                    yield lineno, offset, json.loads(raw)
                    offset += len(raw)


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


# --- scenarios ------------------------------------------------------------------------
#
# Each scenario: a pipeline (YAML, with {state}, {input} and {out} filled in), its sinks
# (name, kind, where, what they must hold), how kills are timed, and extras (tears, a
# followed input with an appender). Paths are absolute so runs can start anywhere.


def sink_sqlite(name, table, key, expect, precreate=False):
    return {"name": name, "kind": "sqlite", "db": "out/%s.db" % name, "table": table,
            "key": key, "expect": expect, "precreate": precreate}


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
             "delivery: %s" % delivery,
             "sources:"]
    src = "  src: {type: file, path: %s" % json.dumps(input_path)
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
        else:
            body = "{type: file, inputs: [%s], path: %s" % (
                inp, json.dumps(os.path.join(root, s["dir"], s["base"])))
            if s["max_bytes"]:
                body += ", max_bytes: %s" % s["max_bytes"]
        lines.append("  %s: %s}" % (s["name"], body))
    return "\n".join(lines) + "\n"


def prepare_root(sc, root):
    """A fresh run directory: out/ and, where asked, pre-created sqlite tables."""
    os.makedirs(os.path.join(root, "out"), exist_ok=True)
    for s in sc["sinks"]:
        if s["kind"] == "sqlite" and s["precreate"]:
            con = sqlite3.connect(os.path.join(root, s["db"]))
            con.executescript("""
                CREATE TABLE "%(t)s"("%(id)s" TEXT, "%(k)s" TEXT PRIMARY KEY);
                CREATE TABLE crash_rewrites(%(k)s TEXT);
                CREATE TRIGGER crash_rewrite AFTER UPDATE ON "%(t)s"
                BEGIN INSERT INTO crash_rewrites VALUES (old."%(k)s"); END;
            """ % {"t": s["table"], "id": ID_FIELD, "k": s["key"]})
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


def verify_report(path, problems):
    try:
        with open(path) as f:
            rep = json.load(f)
    except (OSError, ValueError) as e:
        problems.append("final run: no readable report %s: %s" % (path, e))
        return None
    if rep.get("ok") is not True:
        problems.append("final run: report says ok=%r" % rep.get("ok"))
    return rep


def verify_all(sc, root, inp, calib, label):
    problems, notes, stats = [], [], {}
    for s in sc["sinks"]:
        c = calib.get(s["name"]) if calib else None
        if s["kind"] == "sqlite":
            st = verify_sqlite(s, root, inp, c, problems, notes)
        else:
            st = verify_file(s, root, inp, c, problems, notes)
        stats[s["name"]] = st
        log("%s: sink %s (%s): %s" % (label, s["name"], s["kind"],
                                      ", ".join("%s %s" % kv for kv in st.items())))
    return problems, notes, stats


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
    if sc.get("split"):
        inp = Input(split_input(full, sc["split"], os.path.join(work, "in")))
        os.remove(full)
        source_path = os.path.join(work, "in", "clicks-*.ndjson")
    else:
        inp = Input([full])
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
    rc, t_clean, errpath = run_to_end(crun, RUN_TIMEOUT_S,
                                      ("--report", os.path.join(calib_root, "report.json")))
    if rc != 0:
        log("FAIL: the clean run (no kills) exited %s:\n%s" % (rc, tail(errpath)))
        return 1, work
    problems = []
    verify_report(os.path.join(calib_root, "report.json"), problems)
    # Once more with nothing left to do: that must add nothing, and it times the fixed
    # cost of a run (start-up, recovery, shutdown) that kill windows must allow for.
    rc, t_idle, errpath = run_to_end(crun, RUN_TIMEOUT_S)
    if rc != 0:
        log("FAIL: a second run after the clean run exited %s:\n%s" % (rc, tail(errpath)))
        return 1, work
    vproblems, notes, calib = verify_all(sc, calib_root, inp, None, "clean run + rerun")
    problems += vproblems
    if problems:
        log("FAIL: the clean run (no kills, then run once more) already differs from the "
            "expected output; that is not about crash recovery:")
        for p in problems:
            log("  - " + p)
        return 1, work
    log("clean run: %.3f s, then a run with nothing to do: %.3f s; output exact" %
        (t_clean, t_idle))
    if not args.keep:
        shutil.rmtree(calib_root)

    # The crash runs.
    root = os.path.join(work, "crash")
    os.makedirs(root)
    prepare_root(sc, root)
    yaml_path = os.path.join(root, "p.yaml")
    live_input = os.path.join(root, "input.ndjson") if follow else source_path
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
    log("kill windows: early [0, %.0f ms) for %.0f%% of kills, otherwise [0, %.3f s)" %
        (EARLY_WINDOW_S * 1000, early_share * 100, mid_hi))

    runner = Runner(args.sluice, root, yaml_path, once=not follow)
    failures = []
    completed = nkilled = 0
    consecutive_bad = 0
    for k in range(1, args.kills + 1):
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
    vproblems, notes, _ = verify_all(sc, root, inp, calib, "after %d kills" % args.kills)
    problems = failures + problems + vproblems
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
    p.add_argument("--records", type=int, default=int(env.get("CRASHTEST_RECORDS") or 200000))
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
