#!/usr/bin/env python3
"""A/B of `predictor serve` builds against the limit: alternating rounds, one run, same machine.

Each variant is a predictor binary with optional environment (e.g. SERVE_THREADS=1); all serve the same model,
next to nginx answering the same JSON (the limit of bench/serve_bench.py). Round after round each server gets
wrk -t2 -c16 for DURATION seconds (after a 1 s warm-up), so slow drifts of the machine hit every variant alike.
Prints per round req/s, then per server the median req/s, its ratio to nginx, the server's own CPU time per
request (user + system of its process group, from /proc) and the p99s seen. What docs/serving.md's "What
changed" figures come from.

--pinned: the client off the servers' CPU, as serve_bench.py --pinned measures: every server on CPU 0 with one
serving thread (SERVE_THREADS=1 unless a variant sets it; nginx one worker), wrk -t1 on CPU 1.

Usage: bench/serve_ab.py [--rounds 4] [--duration 5] [--pinned] NAME=BINARY[:VAR=VALUE[;VAR=VALUE]] ...
  e.g. bench/serve_ab.py before=/tmp/predictor-old after=target/release/predictor one=target/release/predictor:SERVE_THREADS=1
Needs: wrk and nginx-light (Debian). Exits 1 when a server did not start or answered no request, or when
any request failed (non-2xx, socket error).
"""
import argparse
import json
import os
import statistics
import tempfile

from harness import fetch_ok, model_store, require, serve_predictor, stop, train_model
from serve_bench import PINNED_CLIENT_CPU, PINNED_SERVER, TWEET, start_limit, timed_round, write_script


def variant(spec):
    name, rest = spec.split("=", 1)
    binary, _, env = rest.partition(":")
    return name, binary, dict(pair.split("=", 1) for pair in env.split(";") if pair)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--pinned", action="store_true", help="servers on CPU 0, one thread each; wrk -t1 on CPU 1")
    parser.add_argument("variants", nargs="+", type=variant)
    args = parser.parse_args()
    body = json.dumps({"text": TWEET})
    with tempfile.TemporaryDirectory() as tmp:
        sha = train_model(os.path.join(tmp, "model.bin"), args.variants[0][1])
        store, store_url = model_store(tmp)
        procs, urls = {}, {}
        try:
            pinned = (PINNED_SERVER, 1, 1, PINNED_CLIENT_CPU)
            prefix, workers, threads, wrk_cpu = pinned if args.pinned else ((), 2, 2, None)
            for name, binary, env in args.variants:
                if args.pinned:
                    env = {"SERVE_THREADS": "1", **env}
                procs[name], port = serve_predictor(binary, store_url, sha, name, env=env, prefix=prefix)
                urls[name] = f"http://127.0.0.1:{port}/api/american"
            answer = fetch_ok(urls[args.variants[0][0]], body)
            procs["nginx"], urls["nginx"] = start_limit(tmp, answer, body, workers=workers, prefix=prefix)
            script = write_script(os.path.join(tmp, "post.lua"), body)
            rps, cpu, p99 = ({name: [] for name in urls} for _ in range(3))
            failed = {}
            for round_ in range(args.rounds):
                for name, url in urls.items():
                    r, _, tail, cpu_us, n_failed = timed_round(url, procs[name].pid, args.duration, 16, script, threads,
                                                                wrk_cpu)
                    failed[f"{name}, round {round_ + 1}: failed requests"] = n_failed
                    cpu[name].append(cpu_us)
                    rps[name].append(r)
                    p99[name].append(tail)
                print(f"round {round_ + 1}: " + ", ".join(f"{n} {v[-1]:,.0f}" for n, v in rps.items()), flush=True)
        finally:
            for proc in procs.values():
                stop(proc)
            store.shutdown()
    limit = statistics.median(rps["nginx"])
    print("\n| server | median req/s | / nginx | CPU µs per request | p99 ms (each round, sorted) |\n|---|---|---|---|---|")
    for name in urls:
        print(f"| {name} | {statistics.median(rps[name]):,.0f} | {statistics.median(rps[name]) / limit:.2f} | "
              f"{statistics.median(cpu[name]):.1f} | {' '.join(f'{t:.2f}' for t in sorted(p99[name]))} |")
    require(measured={f"{name}: CPU µs per request": statistics.median(cpu[name]) for name in urls}, failures=failed)


if __name__ == "__main__":
    main()
