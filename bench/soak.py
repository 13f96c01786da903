#!/usr/bin/env python3
"""Soak: `predictor serve` under a steady mix of good and bad requests for --minutes, loopback only.

The server fetches its model from a loopback store (sha256 pinned), then WORKERS client threads send RATE
requests/s in total on a fixed schedule, each request drawn from KINDS: good texts and batches, malformed
JSON, wrong types, bodies over the 1 MiB limit (sent in full, and announced with `Expect: 100-continue`),
non-UTF-8, wrong method and path, oversized batches, health endpoints. Every kind has the status it must
get; anything else (another status, a 5xx, a refused or reset connection, a timeout, a 4xx without a JSON
error, a 200 with a wrong answer) is an unexpected error.

Prints markdown: per minute, requests, expected 4xx, unexpected errors, p50/p99 latency and the server's
RSS; per kind, the statuses seen; then the verdict (0 unexpected errors; RSS after warm-up within 5% of
its value at the end of warm-up) and the load average. Exits 1 when the verdict fails or no request was sent.

--smoke (CI's short form, e.g. --minutes 0.2): the same run and checks, but RSS over seconds says nothing about
growth, so it is printed and not asserted; unexpected errors, the server's 5xx and its death still fail.

Usage: bench/soak.py [--minutes 10] [--rate 200] [--workers 8] [--binary PATH] [--smoke]
Needs a release build (cargo build --release -p predictor) unless --binary says otherwise.
"""
import argparse
import http.client
import json
import os
import random
import select
import socket
import statistics
import sys
import tempfile
import threading
import time

from harness import (PREDICTOR, fetch, fetch_ok, load_average, model_store, require, serve_predictor, stop,
                     train_model)

TWEETS = ["#covid19 new york", "Cheers mate, a pint in Leeds", "y'all in Texas", "go yankees 🇺🇸", ""]
HUGE = 2 << 20  # twice the server's body limit


def good(rng):
    return "POST", "/api/american", json.dumps({"text": rng.choice(TWEETS)}).encode()


def batch(rng):
    return "POST", "/api/american", json.dumps({"texts": rng.choices(TWEETS, k=rng.randint(2, 50))}).encode()


def malformed(rng):
    return "POST", "/api/american", rng.choice([b'{"text": ', b"{{}", b"text=hi", b"", b'{"text": "a"}}'])


def wrong_type(rng):
    return "POST", "/api/american", rng.choice([b'{"text": 42}', b'{"text": null}', b'["text"]', b"{}",
                                                b'{"texts": "one"}', b'{"texts": ["ok", 3]}'])


def non_utf8(rng):
    return "POST", "/api/american", b'{"text": "\xff\xfe bad \xc3"}'


def wrong_method(rng):
    return rng.choice(["GET", "PUT", "DELETE"]), "/api/american", None


def wrong_path(rng):
    return "POST", rng.choice(["/nope", "/api/american/x", "/API/AMERICAN"]), b'{"text": "hi"}'


def big_batch(rng):
    return "POST", "/api/american", json.dumps({"texts": ["a"] * 1001}).encode()


def health(rng):
    return "GET", rng.choice(["/healthz", "/readyz", "/metrics"]), None


# name, weight, expected status, request builder (or how `huge_body` sends)
KINDS = [
    ("good", 50, 200, good),
    ("batch", 10, 200, batch),
    ("malformed JSON", 8, 400, malformed),
    ("wrong type", 8, 422, wrong_type),
    ("huge body", 2, 413, "sent"),
    ("huge, announced", 2, 413, "announced"),
    ("non-UTF-8", 5, 400, non_utf8),
    ("wrong method", 4, 405, wrong_method),
    ("wrong path", 4, 404, wrong_path),
    ("batch over 1000", 2, 422, big_batch),
    ("health", 5, 200, health),
]


def check_answer(kind, method, path, body, status, answer):
    """None when the answer is what `kind` must get, else what is wrong."""
    if status != kind[2]:
        return f"status {status}"
    if status >= 400:
        try:
            return None if isinstance(json.loads(answer).get("error"), str) else "4xx without an error"
        except ValueError:
            return "4xx body is not JSON"
    if path != "/api/american":
        return None
    answers = json.loads(answer)
    wanted = len(json.loads(body)["texts"]) if kind[0] == "batch" else None
    if wanted is not None and (not isinstance(answers, list) or len(answers) != wanted):
        return "wrong batch length"
    for one in answers if isinstance(answers, list) else [answers]:
        if one.get("is_american") not in (0, 1) or not 0.0 <= one.get("probability", -1) <= 1.0:
            return "malformed answer"
    return None


def huge_body(port, how):
    """An oversized body on a fresh connection. "announced": the client sends `Expect: 100-continue` and waits,
    so the server must refuse before the body is sent. "sent": the client sends it in 64 KiB chunks and, as
    curl does, stops as soon as an answer arrives."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        expect = "Expect: 100-continue\r\n" if how == "announced" else ""
        s.sendall(f"POST /api/american HTTP/1.1\r\nHost: soak\r\nContent-Length: {HUGE}\r\n{expect}\r\n".encode())
        chunk, sent = b"{" * 65536, 0
        while how == "sent" and sent < HUGE and not select.select([s], [], [], 0)[0]:
            try:
                s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server has answered and closed: its answer is what counts
            sent += len(chunk)
        reply = http.client.HTTPResponse(s)
        reply.begin()
        return reply.status, reply.read()


class Client:
    """One keep-alive connection, reopened when the server closes it."""

    def __init__(self, port):
        self.port, self.conn = port, None

    def send(self, method, path, body):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            self.conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
            response = self.conn.getresponse()
            answer = response.read()
            if response.will_close:
                self.close()
            return response.status, answer
        except Exception:
            self.close()
            raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def worker(port, first, interval, until, seed, results):
    rng, client, due = random.Random(seed), Client(port), first
    weights = [k[1] for k in KINDS]
    while due < until:
        time.sleep(max(0.0, due - time.monotonic()))
        kind = rng.choices(KINDS, weights)[0]
        sent = time.monotonic()
        try:
            if isinstance(kind[3], str):
                method, path, body = "POST", "/api/american", None
                status, answer = huge_body(port, kind[3])
            else:
                method, path, body = kind[3](rng)
                status, answer = client.send(method, path, body)
            problem = check_answer(kind, method, path, body, status, answer)
        except Exception as e:  # a refused, reset or timed-out connection: never expected
            status, problem = None, type(e).__name__
        results.append((sent, time.monotonic() - sent, kind[0], status, problem))
        due += interval


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=200, help="requests per second, all workers together")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds before RSS counts as warm (default: 60, or 20 for runs under 2 minutes)")
    parser.add_argument("--binary", default=PREDICTOR)
    parser.add_argument("--smoke", action="store_true", help="a short run: RSS growth is printed, not asserted")
    args = parser.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} is missing: cargo build --release -p predictor")
    seconds = args.minutes * 60
    warmup = args.warmup if args.warmup is not None else (60 if args.minutes >= 2 else 20)
    load_before = load_average()

    with tempfile.TemporaryDirectory() as tmp:
        sha = train_model(os.path.join(tmp, "model.bin"), args.binary)
        store, store_url = model_store(tmp)
        log_path = os.path.join(tmp, "server.log")
        with open(log_path, "w") as log:
            server, port = serve_predictor(args.binary, store_url, sha, "soak", stderr=log)
        try:
            # Counted from here on: /readyz answered 503 while the model loaded, as it should.
            metrics_before = fetch_ok(f"http://127.0.0.1:{port}/metrics")
            with open(log_path) as f:
                log_lines_before = len(f.read().splitlines())
            results, rss = [], []
            began = time.monotonic()
            until = began + seconds
            threads = [threading.Thread(target=worker, daemon=True,
                                        args=(port, began + i / args.rate, args.workers / args.rate, until, i,
                                              results))
                       for i in range(args.workers)]
            for t in threads:
                t.start()
            while time.monotonic() < until:
                rss.append((time.monotonic() - began, rss_kib(server.pid)))
                time.sleep(1)
            for t in threads:
                t.join(timeout=30)
            alive = server.poll() is None
            status, metrics = fetch(f"http://127.0.0.1:{port}/metrics")
            # A server that does not answer here fails the verdict anyway: by `alive`, or by the clients' errors.
            metrics = metrics.decode() if status == 200 else ""
        finally:
            stop(server)
            store.shutdown()
        with open(log_path) as f:
            log_lines = f.read().splitlines()[log_lines_before:]
    load_after = load_average()
    require({"requests sent": len(results)})
    report(args, seconds, warmup, results, rss, (metrics_before, metrics), alive, log_lines, load_before,
           load_after)


def count_5xx(metrics):
    """{series: count} of the server's 5xx answers, from its /metrics text."""
    return {line.rsplit(" ", 1)[0]: int(float(line.rsplit(" ", 1)[1])) for line in metrics.splitlines()
            if line.startswith("predictor_http_requests_total") and 'status="5' in line}


def report(args, seconds, warmup, results, rss, metrics, alive, log_lines, load_before, load_after):
    minutes = max(1, int(-(-seconds // 60)))
    began = min(r[0] for r in results)
    print(f"## Soak: {args.minutes:g} min at {args.rate:g} req/s ({args.workers} keep-alive clients), "
          f"loopback, mixed good and bad requests\n")
    print("| minute | requests | 2xx | expected 4xx | unexpected | p50 ms | p99 ms | RSS MiB (end of minute) |")
    print("|---|---|---|---|---|---|---|---|")
    for m in range(minutes):
        rows = [r for r in results if m * 60 <= r[0] - began < (m + 1) * 60]
        ok = sum(1 for r in rows if r[4] is None and r[3] and r[3] < 300)
        bad = sum(1 for r in rows if r[4] is not None)
        latency = [r[1] * 1000 for r in rows]
        in_minute = [kib for t, kib in rss if m * 60 <= t < (m + 1) * 60]
        end_rss = f"{in_minute[-1] / 1024:.1f}" if in_minute else "-"
        print(f"| {m + 1} | {len(rows)} | {ok} | {len(rows) - ok - bad} | {bad} | "
              f"{percentile(latency, 50):.2f} | {percentile(latency, 99):.2f} | {end_rss} |")

    print("\n| kind | expected status | requests | statuses seen | unexpected |")
    print("|---|---|---|---|---|")
    for name, _, expected, _ in KINDS:
        rows = [r for r in results if r[2] == name]
        seen = {}
        for r in rows:
            seen[r[3]] = seen.get(r[3], 0) + 1
        problems = {}
        for r in rows:
            if r[4] is not None:
                problems[r[4]] = problems.get(r[4], 0) + 1
        shown = ", ".join(f"{s}: {n}" for s, n in sorted(seen.items(), key=lambda x: str(x[0])))
        print(f"| {name} | {expected} | {len(rows)} | {shown} | "
              f"{', '.join(f'{p}: {n}' for p, n in problems.items()) or 0} |")

    unexpected = sum(1 for r in results if r[4] is not None)
    before, after_run = count_5xx(metrics[0]), count_5xx(metrics[1])
    new_5xx = {series: n - before.get(series, 0) for series, n in after_run.items() if n > before.get(series, 0)}
    server_5xx = sum(new_5xx.values())
    warm = [kib for t, kib in rss if t <= warmup]
    after = [kib for t, kib in rss if t > warmup]
    growth = (max(after) / warm[-1] - 1) * 100 if warm and after else float("nan")
    errors_logged = [line for line in log_lines if " ERROR " in line]
    lat = [r[1] * 1000 for r in results]
    print(f"\nrequests {len(results)} ({len(results) / seconds:.1f}/s), unexpected {unexpected}, "
          f"5xx counted by the server {server_5xx}, ERROR log lines {len(errors_logged)}, server alive at the end: {alive}")
    for line in [f"{series} +{n}" for series, n in new_5xx.items()] + errors_logged[:5]:
        print(f"    {line}")
    print(f"latency over the run: p50 {percentile(lat, 50):.2f} ms, p99 {percentile(lat, 99):.2f} ms, "
          f"max {max(lat):.1f} ms; mean {statistics.mean(lat):.2f} ms")
    limit = "limit +5%" + (": not asserted in a smoke run (too short)" if args.smoke else "")
    print(f"RSS: {warm[-1] / 1024 if warm else float('nan'):.1f} MiB at the end of the {warmup:g} s warm-up, "
          f"max after it {max(after) / 1024 if after else float('nan'):.1f} MiB: growth {growth:+.1f}% ({limit})")
    print(f"load average (1, 5, 15 min) before {' '.join(load_before)}, after {' '.join(load_after)}; "
          f"{os.cpu_count()} CPUs")
    passed = unexpected == 0 and server_5xx == 0 and alive and (args.smoke or growth <= 5.0)
    print(f"\nverdict: {'PASS' if passed else 'FAIL'}")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
