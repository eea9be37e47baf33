-- bench/http_ingest.lua - wrk script for bench/streaming.sh: POST NDJSON bodies of click
-- events to an http source and count what was acknowledged.
--
--   EVENTS_PER_BODY=5 wrk -t2 -c64 -d10s -s bench/http_ingest.lua http://127.0.0.1:PORT/v1/ingest/web
--
-- Every request carries the same body: EVENTS_PER_BODY events of about 200 bytes each
-- (about 1 KiB with the default 5). The http source answers 200 only once the events are
-- durable in its write-ahead log, so acknowledged events = 200 answers x EVENTS_PER_BODY.
-- done() prints one JSON line (prefixed "wrk-json ") with the counts bench/streaming.sh
-- reads: requests, non-2xx answers, socket errors, duration and latency percentiles.

local per_body = tonumber(os.getenv("EVENTS_PER_BODY") or "5")

local lines = {}
for i = 1, per_body do
    lines[i] = string.format(
        '{"event_id":"bench-%04d","event_type":"page_view","user_id":"u-%05d",' ..
        '"ts":"2026-11-27T12:00:%02d.%03dZ","page":"/products/%d","amount":%d.%02d,' ..
        '"device":{"os":"android","browser":"chrome"},"referrer":"https://example.com/q?i=%d"}',
        i, i * 7919 % 100000, i % 60, i * 37 % 1000, i * 13, i * 3, i % 100, i)
end
local body = table.concat(lines, "\n") .. "\n"

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/x-ndjson"

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'wrk-json {"requests":%d,"non2xx":%d,"connect":%d,"read":%d,"write":%d,' ..
        '"timeout":%d,"duration_us":%d,"events_per_body":%d,"body_bytes":%d,' ..
        '"p50_us":%d,"p99_us":%d}\n',
        summary.requests, e.status, e.connect, e.read, e.write, e.timeout,
        summary.duration, per_body, #body, latency:percentile(50), latency:percentile(99)))
end
