#!/usr/bin/env python3
"""Bounded load on `firebreak serve` (issue 19): SSE clients that check their
sequence numbers are contiguous, and API requests at a fixed rate whose latency
is measured from when each was due (so a stalled server cannot hide its queue).

    server_load.py URL TOKEN --clients 100 --rate 200 --seconds 60 --from SEQ --out FILE

Writes one JSON object: per-client event counts and gaps, latency percentiles,
status counts. Standard library only."""
import argparse
import http.client
import json
import multiprocessing
import re
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor


def sse_client(host, port, token, start, stop, result):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", "/api/v1/events",
                 headers={"Authorization": f"Bearer {token}", "Last-Event-ID": str(start - 1)})
    response = conn.getresponse()
    result.update(status=response.status, events=0, gaps=0, first=None, last=None)
    expected = start
    tail = b""
    # Whole chunks scanned with one regular expression (C speed), so a hundred
    # clients keep up with the stream; a line cut by a chunk's end waits in `tail`.
    while not stop.is_set():
        chunk = response.read1(1 << 16)
        if not chunk:
            break
        data = tail + chunk
        cut = data.rfind(b"\n") + 1
        data, tail = data[:cut], data[cut:]
        for seq in map(int, IDS.findall(data)):
            if result["first"] is None:
                result["first"] = seq
            if seq != expected:
                result["gaps"] += 1
            expected = seq + 1
            result["events"] += 1
            result["last"] = seq
    conn.close()


IDS = re.compile(rb"^id: (\d+)$", re.M)


def sse_main(host, port, token, start, count, until, started, requests_done, results):
    """The event clients: connected at once; when the requests are done, given
    up to 60 s to reach entry `until - 1` (when given), then stopped."""
    stop = threading.Event()
    clients = [dict() for _ in range(count)]
    threads = [threading.Thread(target=sse_client, args=(host, port, token, start, stop, r), daemon=True)
               for r in clients]
    for t in threads:
        t.start()
    started.set()
    requests_done.wait()
    deadline = time.monotonic() + 60
    while until and time.monotonic() < deadline:
        if all(c.get("last") is not None and c["last"] >= until - 1 for c in clients):
            break
        time.sleep(0.2)
    stop.set()
    results.put(clients)


PATHS = [
    "/api/v1/campaigns",
    "/api/v1/campaigns/{c}",
    "/api/v1/campaigns/{c}/trials?limit=50&sort=value&desc=true",
    "/api/v1/ledger?limit=100",
    "/api/v1/requests?state=pending",
]


def one_request(host, port, token, path, due, latencies, statuses, lock):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        response.read()
        status = response.status
    except OSError:
        status = 0
    finally:
        conn.close()
    with lock:
        latencies.append(time.monotonic() - due)
        statuses[status] = statuses.get(status, 0) + 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("--campaign", required=True)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--from", dest="start", type=int, required=True)
    parser.add_argument("--until", type=int, help="the ledger size the clients must reach")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    parsed = urllib.parse.urlparse(args.url)
    host, port = parsed.hostname, parsed.port

    # The event clients run in a process of their own, so that reading the
    # stream never starves the request loop of the interpreter (and its timing).
    results = multiprocessing.Queue()
    started = multiprocessing.Event()
    requests_done = multiprocessing.Event()
    sse = multiprocessing.Process(target=sse_main, args=(
        host, port, args.token, args.start, args.clients, args.until, started, requests_done, results))
    sse.start()
    started.wait(30)

    latencies, statuses, lock = [], {}, threading.Lock()
    paths = [p.replace("{c}", urllib.parse.quote(args.campaign)) for p in PATHS]
    begin = time.monotonic()
    sent = 0
    with ThreadPoolExecutor(max_workers=32) as pool:
        while True:
            due = begin + sent / args.rate
            if due - begin >= args.seconds:
                break
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one_request, host, port, args.token, paths[sent % len(paths)], due,
                        latencies, statuses, lock)
            sent += 1
    requests_done.set()
    clients = results.get(timeout=600)
    sse.join(30)
    latencies.sort()

    def pct(q):
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else None

    summary = {
        "requests": len(latencies),
        "rate_asked": args.rate,
        "seconds": args.seconds,
        "statuses": statuses,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": latencies[-1] * 1000 if latencies else None,
        "clients": len(clients),
        "clients_connected": sum(1 for c in clients if c.get("status") == 200),
        "clients_with_gaps": sum(1 for c in clients if c.get("gaps")),
        "events_min": min(c.get("events", 0) for c in clients),
        "events_max": max(c.get("events", 0) for c in clients),
        "clients_reaching_end": sum(1 for c in clients
                                    if args.until and (c.get("last") or -1) >= args.until - 1),
    }
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
