#!/usr/bin/env python3
"""ingest_client.py - a client of the http source that never gives up on an event.

    ingest_client.py URL --events N [--batch B] [--threads T] [--seed S]
                     [--events-out FILE] [--summary FILE] [--deadline SECONDS]

Generates N events {"event_id": "ev-000001", "n": 1, "user": ..., "payload": ...} (the
payload has escapes and non-ASCII text, its length varies with the seed), splits them into
NDJSON bodies of B events and POSTs each body from T threads. A body is done only when it
is answered 200 with {"accepted": B, "rejected": 0}; anything else that a restarting
server can cause (connection refused or reset, a timeout, 503 with Retry-After, 500) is
retried after a short pause, with the same body, until it is. A 400, 401, 403, 404 or 413
means the client or the server is wrong, not down: the client stops with exit 1.

--events-out writes the generated events (one per line, as sent); --summary writes a JSON
object: events, bodies, attempts (POSTs sent), unanswered (attempts that got no 200 and
may nevertheless have been written: a kill after the write and before the reply), and
max_duplicates (unanswered * B: the most records the server's log can hold twice).

Only the standard library; exit 0 when every body was acknowledged before the deadline.
"""
import argparse
import http.client
import json
import random
import sys
import threading
import time
import urllib.parse

FATAL = (400, 401, 403, 404, 405, 413, 415)


def make_events(n, seed):
    rnd = random.Random(seed)
    words = ["alpha", "β-beta", "gamma \"quoted\"", "delta\\slash", "ε", "zeta\ttab", "η✓"]
    out = []
    for i in range(1, n + 1):
        ev = {"event_id": "ev-%06d" % i, "n": i, "user": "u%d" % rnd.randrange(500),
              "payload": " ".join(rnd.choice(words) for _ in range(rnd.randrange(1, 12)))}
        out.append(json.dumps(ev, ensure_ascii=False, separators=(",", ":")))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("url")
    ap.add_argument("--events", type=int, required=True)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--events-out")
    ap.add_argument("--summary")
    ap.add_argument("--deadline", type=float, default=120.0)
    a = ap.parse_args()

    events = make_events(a.events, a.seed)
    if a.events_out:
        with open(a.events_out, "w", encoding="utf-8") as f:
            f.write("".join(e + "\n" for e in events))
    bodies = [("".join(e + "\n" for e in events[i:i + a.batch])).encode("utf-8")
              for i in range(0, len(events), a.batch)]
    url = urllib.parse.urlsplit(a.url)
    deadline = time.time() + a.deadline
    lock = threading.Lock()
    state = {"next": 0, "attempts": 0, "unanswered": 0, "failed": None}

    def post(body):
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
        try:
            conn.request("POST", url.path, body=body,
                         headers={"Content-Type": "application/x-ndjson"})
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def worker():
        while True:
            with lock:
                if state["failed"] or state["next"] >= len(bodies):
                    return
                k = state["next"]
                state["next"] += 1
            body, want = bodies[k], bodies[k].count(b"\n")
            while True:
                if time.time() > deadline:
                    with lock:
                        state["failed"] = "deadline passed with body %d unacknowledged" % k
                    return
                with lock:
                    state["attempts"] += 1
                try:
                    status, reply = post(body)
                except (OSError, http.client.HTTPException):
                    status, reply = None, b""
                if status == 200:
                    rep = json.loads(reply)
                    if rep.get("accepted") != want or rep.get("rejected") != 0:
                        with lock:
                            state["failed"] = "body %d: 200 with %r" % (k, rep)
                        return
                    break
                if status in FATAL:
                    with lock:
                        state["failed"] = "body %d: HTTP %d %r" % (k, status, reply[:300])
                    return
                with lock:
                    state["unanswered"] += 1
                time.sleep(0.02 if status is None else 0.05)

    threads = [threading.Thread(target=worker) for _ in range(a.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    summary = {"events": len(events), "bodies": len(bodies), "attempts": state["attempts"],
               "unanswered": state["unanswered"],
               "max_duplicates": state["unanswered"] * a.batch}
    if a.summary:
        with open(a.summary, "w") as f:
            json.dump(summary, f)
    if state["failed"]:
        print("ingest_client: " + state["failed"], file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
