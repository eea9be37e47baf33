#!/usr/bin/env python3
"""flaky_http.py - an HTTP receiver for sluice's http sink tests that fails on command.

It listens on 127.0.0.1 (a free port unless --port is given), writes the port to
--port-file once it accepts connections, and appends every request it receives, before
answering it, to --log as one JSON line:

    {"t": 1764252000.123, "method": "POST", "path": "/in", "headers": {...},
     "idempotency_key": "...", "body": "...", "status": 503, "sleep": 0}

Headers are stored with lower-case names. "status" is what the server answered (or was
about to: a client that timed out got nothing); "sleep" how long it waited first.

What it answers is decided by the mode, set with --mode at start or later by
POST /_control with a JSON object {"mode": ..., "count": K} (control requests are not
logged). After K failing answers (count; 0 or absent = no limit) the mode returns to ok.

    ok                          200 {"ok":true}
    fail_503_retry_after=N      503 with "Retry-After: N" (seconds)
    fail_500                    500
    timeout=S                   read the request, then sleep S seconds before answering
                                200 (a client with a shorter timeout gives up first)
    random_fail=P               500 with probability P (seeded by --seed), else 200
    reject_if_field=NAME:VALUE  422 when some record has field NAME equal to VALUE (as
                                text), else 200; count does not apply
    status=CODE                 answer CODE (e.g. 401, 404)

--require-auth VALUE answers 401 to requests whose Authorization header is not VALUE.
Bodies are NDJSON or a JSON array (decided by the first non-blank character).
Python 3 standard library only.
"""
import argparse
import json
import os
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"mode": "ok", "count": 0, "failed": 0}


def parse_records(body):
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return []
    if text.startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the client can reuse connections
    # One write per answer and no Nagle delay: otherwise every answer waits ~40 ms for the
    # client's delayed ACK.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):  # quiet
        pass

    def answer(self, status, body=b'{"ok":true}', extra=None):
        self.send_response(status)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n) if n else b""
        if self.path == "/_control":
            cmd = json.loads(body or b"{}")
            with LOCK:
                STATE["mode"] = cmd.get("mode", "ok")
                STATE["count"] = int(cmd.get("count", 0))
                STATE["failed"] = 0
            self.answer(200)
            return
        self.handle_records(body)

    def decide(self, body):
        """(status, extra headers, sleep seconds) for this request, under the lock."""
        srv = self.server
        auth = srv.require_auth
        if auth is not None and self.headers.get("Authorization") != auth:
            return 401, {}, 0
        mode = STATE["mode"]
        name, _, arg = mode.partition("=")
        if name == "reject_if_field":
            field, _, value = arg.partition(":")
            try:
                recs = parse_records(body)
            except ValueError:
                return 400, {}, 0
            for r in recs:
                if isinstance(r, dict) and field in r and str(r[field]) == value:
                    return 422, {}, 0
            return 200, {}, 0
        if name == "ok":
            return 200, {}, 0
        if name == "random_fail":
            if srv.rng.random() >= float(arg):
                return 200, {}, 0
            status, extra, sleep = 500, {}, 0
        elif name == "fail_503_retry_after":
            status, extra, sleep = 503, {"Retry-After": arg}, 0
        elif name == "fail_500":
            status, extra, sleep = 500, {}, 0
        elif name == "timeout":
            status, extra, sleep = 200, {}, float(arg)
        elif name == "status":
            status, extra, sleep = int(arg), {}, 0
        else:
            return 500, {}, 0
        STATE["failed"] += 1
        if STATE["count"] and STATE["failed"] >= STATE["count"]:
            STATE["mode"], STATE["count"], STATE["failed"] = "ok", 0, 0
        return status, extra, sleep

    def handle_records(self, body):
        srv = self.server
        with LOCK:
            status, extra, sleep = self.decide(body)
            entry = {
                "t": time.time(),
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "idempotency_key": self.headers.get("Idempotency-Key"),
                "body": body.decode("utf-8", "replace"),
                "status": status,
                "sleep": sleep,
            }
            srv.log.write(json.dumps(entry) + "\n")
            srv.log.flush()
        if sleep:
            time.sleep(sleep)
        try:
            if status == 200:
                self.answer(200)
            else:
                self.answer(status, json.dumps({"error": f"flaky_http says {status}"}).encode(),
                            extra)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout mode)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--log", required=True, help="JSON lines file of received requests")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", help="write the port here once listening")
    ap.add_argument("--mode", default="ok")
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--require-auth", default=None)
    a = ap.parse_args()
    STATE["mode"], STATE["count"] = a.mode, a.count
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    srv.log = open(a.log, "a")
    srv.rng = random.Random(a.seed)
    srv.require_auth = a.require_auth
    port = srv.server_address[1]
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write(f"{port}\n")
        os.rename(a.port_file + ".tmp", a.port_file)
    else:
        print(port, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
