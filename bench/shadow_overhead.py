#!/usr/bin/env python3
"""Shadow overhead: what copying live requests to a canary costs the stable server's p99, loopback only.

Issue 15, acceptance 5. A candidate server and a stable server run the model trained on train.csv, both
fetched from a loopback store (sha256 pinned). `predictor probe` sends the tweets of test.csv in turn to the
stable server at --interval (10 ms = 100 requests/s, the rollout probe's rate) for --seconds, once with the
stable server copying no request (--shadow-percent 0) and once copying every one (100) to the candidate;
the stable server is restarted between the two, and the order alternates over --rounds rounds so drift
of the machine hits both sides alike.

Prints markdown: per run, requests, copies compared and dropped (the stable server's
predictor_shadow_requests_total), client-side p50/p99; then the median p99 of each side, their ratio and
the verdict (ratio <= 1.10), and the load average. Exits 1 when the verdict fails, a request failed or a
run measured nothing (no request answered; no copy compared while copying every request).

--smoke (CI's short form, e.g. --rounds 1 --seconds 3): the same run and checks, but a p99 ratio from seconds of
traffic means nothing, so it is printed and not asserted.

Usage: bench/shadow_overhead.py [--rounds 5] [--seconds 20] [--interval 10ms] [--binary PATH] [--smoke]
Needs a release build (cargo build --release -p predictor) unless --binary says otherwise.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

from harness import (PREDICTOR, TEST, fetch_ok, load_average, model_store, problems, serve_predictor, stop,
                     train_model)

LIMIT = 1.10


def serve(binary, store_url, sha, version, extra=()):
    """`predictor serve` once ready: (process, base URL)."""
    proc, port = serve_predictor(binary, store_url, sha, version, extra)
    return proc, f"http://127.0.0.1:{port}"


def copies(metrics):
    """The stable server's shadow counters summed by result: {agree: n, disagree: n, error: n, dropped: n}."""
    out = {}
    for line in metrics.splitlines():
        m = re.match(r'predictor_shadow_requests_total\{[^}]*result="(\w+)"[^}]*\} (\d+)', line)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0) + int(m.group(2))
    return out


def run(args, store_url, sha, candidate, percent, tmp):
    stable, base = serve(args.binary, store_url, sha, "stable",
                         ["--shadow-url", candidate, "--shadow-percent", str(percent)])
    try:
        # Warm-up (connections, page cache), not counted.
        subprocess.run([args.binary, "probe", "--url", base, "--interval", args.interval, "--texts", TEST,
                        "--max-duration", "2s"], capture_output=True, check=False)
        before = copies(fetch_ok(f"{base}/metrics"))
        out = os.path.join(tmp, "probe.json")
        if os.path.exists(out):
            os.remove(out)  # the previous round's report is no report of this one
        # NB: not check=True: the probe exits 1 when a request failed, which its report counts.
        probe = subprocess.run([args.binary, "probe", "--url", base, "--interval", args.interval, "--texts", TEST,
                                "--max-duration", f"{args.seconds}s", "--json", out], capture_output=True,
                               text=True, check=False)
        after = copies(fetch_ok(f"{base}/metrics"))
    finally:
        stop(stable)
    if not os.path.exists(out):
        sys.exit(f"nothing measured: the probe wrote no report (status {probe.returncode}): {probe.stderr.strip()}")
    with open(out) as f:
        report = json.load(f)["report"]
    counted = {k: after.get(k, 0) - before.get(k, 0) for k in ("agree", "disagree", "error", "dropped")}
    return report, counted


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--interval", default="10ms")
    parser.add_argument("--binary", default=PREDICTOR)
    parser.add_argument("--smoke", action="store_true", help="a short run: the p99 ratio is printed, not asserted")
    args = parser.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} is missing: cargo build --release -p predictor")
    load_before = load_average()
    rows, p99 = [], {0: [], 100: []}
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        sha = train_model(os.path.join(tmp, "model.bin"), args.binary)
        store, store_url = model_store(tmp)
        candidate, candidate_url = serve(args.binary, store_url, sha, "candidate")
        try:
            for r in range(args.rounds):
                for percent in ((0, 100) if r % 2 == 0 else (100, 0)):
                    report, counted = run(args, store_url, sha, candidate_url, percent, tmp)
                    failed += report["failed"]
                    p99[percent].append(report["latency_ms"]["p99"])
                    rows.append((r + 1, percent, report, counted))
        finally:
            stop(candidate)
            store.shutdown()
    load_after = load_average()

    print(f"# Shadow overhead: stable p99 with and without copies ({args.interval} between requests, "
          f"{args.seconds} s per run, {args.rounds} rounds)\n")
    print("| round | shadow % | requests | failed | copies compared | copies failed | copies dropped "
          "| p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r, percent, report, c in rows:
        print(f"| {r} | {percent} | {report['requests']} | {report['failed']} | {c['agree'] + c['disagree']} "
              f"| {c['error']} | {c['dropped']} | {report['latency_ms']['p50']:.2f} "
              f"| {report['latency_ms']['p99']:.2f} |")
    measured = {}
    for r, percent, report, c in rows:
        measured[f"round {r}, shadow {percent} %: requests"] = report["requests"]
        if percent:
            measured[f"round {r}, shadow {percent} %: copies compared"] = c["agree"] + c["disagree"]
    unmeasured = problems(measured)
    off, on = statistics.median(p99[0]), statistics.median(p99[100])
    ratio = on / off if off > 0 else float("inf")
    limit = f"limit {LIMIT:.2f}" + (": not asserted in a smoke run (too short)" if args.smoke else "")
    ok = (args.smoke or ratio <= LIMIT) and failed == 0 and not unmeasured
    print(f"\nmedian p99: {off:.2f} ms without copies, {on:.2f} ms copying every request: "
          f"ratio {ratio:.3f} ({limit}); failed requests: {failed} -> {'PASS' if ok else 'FAIL'}")
    for problem in unmeasured:
        print(f"    {problem}")
    print(f"load average before {' '.join(load_before)}, after {' '.join(load_after)}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
