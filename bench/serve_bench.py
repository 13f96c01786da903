#!/usr/bin/env python3
"""Serving benchmark: `predictor serve` against the scikit-learn + Flask peer, one run, same machine.

Each server gets the same load from wrk (16 connections, 2 threads, POST of one tweet, DURATION seconds,
after a short warm-up) on loopback. Prints req/s, p50 and p99 latency, and the ratio to the peer. Also the
cold start: process start -> ready (ours: `/readyz` 200 with the model fetched over loopback HTTP and its
sha256 verified; the peer has no readiness endpoint, so: first successful POST).

Usage: bench/serve_bench.py [--duration 10] [--connections 16]
Needs: a release build (cargo build --release -p predictor), wrk (Debian), and the peer's requirements
(pip install -r ../shared/baselines/sklearn_flask/requirements.txt).
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

from harness import PEER_DIR, PREDICTOR, TRAIN, fetch, free_port, model_store, start, stop, train_model, wait_until

BODY = '{"text": "#covid19 new york"}'


def wrk(url, duration, connections, script):
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script, url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([0-9.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: (.*)", out)
    return rps, pct(50), pct(99), int(errors.group(1)) if errors else 0, sockets.group(1) if sockets else "none"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    for tool in (PREDICTOR, shutil.which("wrk"), shutil.which("gunicorn"), shutil.which("flask")):
        if not tool or not os.path.exists(tool):
            sys.exit(f"missing: {tool} (see the usage in this file)")

    with tempfile.TemporaryDirectory() as tmp:
        model, pickle = os.path.join(tmp, "model.bin"), os.path.join(tmp, "model.pickle")
        sha = train_model(model)
        subprocess.run([sys.executable, os.path.join(PEER_DIR, "train.py"), TRAIN, pickle], check=True, capture_output=True)
        script = os.path.join(tmp, "post.lua")
        with open(script, "w") as f:
            f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                    f"wrk.body = {json.dumps(BODY)}\n")

        # A loopback model store for our cold start.
        store, store_url = model_store(tmp)
        model_url = f"{store_url}/model.bin"

        servers = []
        port = free_port()
        servers.append(("predictor serve (Rust, axum)", port,
                        [PREDICTOR, "serve", "--model-url", model_url, "--model-sha256", sha, "--port", str(port),
                         "--host", "127.0.0.1"], None, f"http://127.0.0.1:{port}/readyz", None))
        port = free_port()
        servers.append(("peer: gunicorn -w 2 (Flask + scikit-learn)", port,
                        ["gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "app:app"], {"MODEL": pickle}, None, PEER_DIR))
        port = free_port()
        servers.append(("peer: flask run (Flask + scikit-learn)", port,
                        ["flask", "--app", "app", "run", "--port", str(port)], {"MODEL": pickle}, None, PEER_DIR))

        rows = []
        for name, port, cmd, env, ready_url, cwd in servers:
            cold = []
            for _ in range(3):
                proc = start(cmd, env, cwd)
                if ready_url:
                    took = wait_until(lambda: fetch(ready_url)[0] == 200)
                else:
                    took = wait_until(lambda: fetch(f"http://127.0.0.1:{port}/api/american", BODY)[0] == 200)
                if took is None:
                    stop(proc)
                    sys.exit(f"{name} did not become ready")
                cold.append(took)
                stop(proc)
            proc = start(cmd, env, cwd)
            wait_until(lambda: fetch(f"http://127.0.0.1:{port}/api/american", BODY)[0] == 200)
            url = f"http://127.0.0.1:{port}/api/american"
            wrk(url, 2, args.connections, script)  # warm-up
            rps, p50, p99, non2xx, socket_errors = wrk(url, args.duration, args.connections, script)
            stop(proc)
            rows.append((name, rps, p50, p99, non2xx, socket_errors, statistics.median(cold)))
        store.shutdown()

    print(f"## Serving: wrk -t2 -c{args.connections} -d{args.duration}s, POST {BODY}, loopback, same machine\n")
    print("| server | req/s | p50 ms | p99 ms | non-2xx | socket errors | cold start to ready ms (median of 3) |")
    print("|---|---|---|---|---|---|---|")
    for name, rps, p50, p99, non2xx, socket_errors, cold in rows:
        print(f"| {name} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {non2xx} | {socket_errors} | {cold * 1000:.0f} |")
    ours = rows[0]
    for peer in rows[1:]:
        print(f"\nours / {peer[0]}: {ours[1] / peer[1]:.1f}x req/s, p99 {ours[3]:.2f} vs {peer[3]:.2f} ms")


if __name__ == "__main__":
    main()
