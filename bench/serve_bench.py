#!/usr/bin/env python3
"""Serving benchmark: `predictor serve` against the runtimes teams deploy and the limit, one run, same machine.

Five servers (ours twice), each in its own protocol, get the same load from wrk (CONNECTIONS connections,
2 threads, one tweet per request, DURATION seconds, after a short warm-up) on loopback:
- the limit: nginx (Debian `nginx-light`, 2 workers) answering our exact JSON with `return 200`, no work;
- `predictor serve` (POST /api/american), as it runs (drift signals on: every answer counted into the
  `predictor_drift_<signal>` histograms), and again with DRIFT_SIGNALS=off: what the drift signals cost;
- the assignment's Flask app under gunicorn -w 2, and under `flask run` (../shared/baselines/sklearn_flask);
- KServe 0.21's Python model server, 2 workers, V1 protocol (../shared/baselines/kserve_sklearn);
- Seldon's MLServer 1.7.1, 2 parallel workers, V2 protocol (../shared/baselines/mlserver_sklearn).
Prints req/s, p50 and p99, cold start (process start -> ready: ours `/readyz` 200 with the model fetched over
loopback HTTP and its sha256 verified; the others: the first successful prediction), and the ratios. Then
the limit and ours on one connection (wrk -t1 -c1: the latency of one request with nothing queued), and ours
and KServe on batches of BATCH tweets of test.csv (`{"texts": [...]}` against `{"instances": [...]}`): tweets/s;
ours with drift signals off in each of them too, and what turning them off changes.

Then the client off the server's CPU (issue 32): ours with one serving thread and nginx with one worker, each
pinned to CPU 0, wrk -t1 on CPU 1, alternating rounds, medians, and each server's own CPU time per answer (from
/proc): on shared CPUs the limit slows under contention as much as we do, so only this ratio says what an answer
costs us. `--pinned` runs only that part (a minute).

Usage: bench/serve_bench.py [--duration 10] [--connections 16] [--pinned] [--rounds 3] [--pinned-duration 8]
Needs: a release build (cargo build --release -p predictor), wrk and nginx-light (Debian). The peers'
requirements are installed by the bench into virtualenvs under $MLOPS_CACHE/bench-venvs (made once).
Exits 1 when a server did not start or answered no request, or when any request failed (non-2xx, socket error).
"""
import argparse
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

from harness import (BASELINES, PEER_DIR, PREDICTOR, TEST, TRAIN, cpu_seconds, fetch, fetch_ok, free_port,
                     load_average, model_store, must_find, not_ready, peer_venv, require, start, stop, table,
                     train_model, wait_ready)

TWEET = "#covid19 new york"
BATCH = 100
NGINX = """worker_processes {workers};
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    server {{
        listen 127.0.0.1:{port};
        location = /api/american {{
            default_type application/json;
            return 200 '{answer}';
        }}
    }}
}}
"""


def wrk(url, duration, connections, script, threads=2, cpu=None):
    """(req/s, p50 ms, p99 ms, non-2xx, socket errors) of one wrk run (on CPU `cpu` alone when given); exits when
    wrk failed or no request was answered (nothing measured)."""
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    ran = subprocess.run([*pin, "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script,
                          url], capture_output=True, text=True)
    out = ran.stdout
    if ran.returncode != 0:
        sys.exit(f"wrk against {url} failed with status {ran.returncode}: {ran.stderr.strip()}\n{out}")
    rps = float(must_find(r"Requests/sec:\s+([0-9.]+)", out, "Requests/sec from wrk").group(1))
    if rps == 0:
        sys.exit(f"nothing measured: wrk against {url} got no answer\n{out}")

    def pct(p):
        m = must_find(rf"^\s+{p}%\s+([0-9.]+)(us|ms|s)\s*$", out, f"p{p} from wrk")
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: (.*)", out)
    return rps, pct(50), pct(99), int(errors.group(1)) if errors else 0, sockets.group(1) if sockets else "none"


def failed_requests(non2xx, socket_errors):
    """How many requests of a wrk run failed: non-2xx answers and socket errors (connect, read, write, timeout)."""
    return non2xx + sum(int(n) for n in re.findall(r"\d+", socket_errors))


class Server:
    """One server of the run: how to start it, where to ask, what to send."""

    def __init__(self, name, cmd, url, body, env=None, cwd=None, ready_url=None, batch=None, single=False,
                 role="peer"):
        self.name, self.cmd, self.url, self.body = name, cmd, url, body
        # "limit", "ours", "ours, drift off" or "peer": what the ratios compare.
        self.role = role
        self.env, self.cwd, self.ready_url = env, cwd, ready_url
        # A body of BATCH tweets in this server's protocol, to measure tweets/s; also one connection alone.
        self.batch, self.single = batch, single

    def ready(self):
        if self.ready_url:
            return fetch(self.ready_url)[0] == 200
        return fetch(self.url, self.body)[0] == 200


def check_drift_series(server):
    """Exits unless `server` (ours) has its drift series on /metrics as its role says (on: the histograms
    and the model's reference; off: none), so the two rows measure what they are named for."""
    base = server.ready_url.rsplit("/", 1)[0]
    status, body = fetch(f"{base}/metrics")
    text = body.decode() if isinstance(body, bytes) else body
    on = "predictor_drift_probability_bucket" in text and "predictor_drift_reference{" in text
    if status != 200 or on != (server.role == "ours") or (server.role != "ours" and "predictor_drift" in text):
        sys.exit(f"{server.name}: /metrics (status {status}) does not have the drift series its role "
                 f"({server.role}) says")


def write_script(path, body):
    """A wrk script POSTing `body` as JSON (a Lua long string: no escapes to translate)."""
    assert "]==]" not in body
    with open(path, "w") as f:
        f.write(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [==[{body}]==]\n')
    return path


def nginx_limit(tmp, answer, workers=2):
    """The limit: nginx (`workers` worker processes) answering `answer` to POST /api/american with no work. Writes
    its config into `tmp`; returns (command, URL)."""
    conf, port = os.path.join(tmp, f"nginx-{workers}.conf"), free_port()
    with open(conf, "w") as f:
        f.write(NGINX.format(tmp=tmp, port=port, answer=answer.replace("'", "\\'"), workers=workers))
    return ["nginx", "-c", conf, "-p", tmp, "-g", "daemon off;"], f"http://127.0.0.1:{port}/api/american"


def start_limit(tmp, answer, body, workers=2, prefix=()):
    """Starts `nginx_limit`'s nginx (`prefix` before its command, e.g. a `taskset`); returns (process, URL) once it
    answers `body`, or exits saying it never did."""
    command, url = nginx_limit(tmp, answer, workers)
    proc = start([*prefix, *command])
    if wait_ready(proc, lambda: fetch(url, body)[0] == 200, limit=10) is None:
        sys.exit(not_ready(proc, "nginx", 10))
    return proc, url


def timed_round(url, pgid, duration, connections, script, threads=2, cpu=None):
    """One measured round of wrk against `url` after a 1 s warm-up, the server being process group `pgid`:
    (req/s, p50 ms, p99 ms, the server's CPU µs per request, failed requests)."""
    wrk(url, 1, connections, script, threads, cpu)
    before = cpu_seconds(pgid)
    rps, p50, p99, non2xx, socket_errors = wrk(url, duration, connections, script, threads, cpu)
    cpu_us = (cpu_seconds(pgid) - before) / (rps * duration) * 1e6
    return rps, p50, p99, cpu_us, failed_requests(non2xx, socket_errors)


# The pinned measurement's placement: the server under test on CPU 0, wrk on CPU 1 (also bench/serve_ab.py --pinned).
PINNED_SERVER = ("taskset", "-c", "0")
PINNED_CLIENT_CPU = 1


def predictor_server(name, model_url, sha, batch, role, env=None):
    """`predictor serve` on a free loopback port."""
    port = free_port()
    return Server(name,
                  [PREDICTOR, "serve", "--model-url", model_url, "--model-sha256", sha, "--port", str(port),
                   "--host", "127.0.0.1"],
                  f"http://127.0.0.1:{port}/api/american", json.dumps({"text": TWEET}), env,
                  ready_url=f"http://127.0.0.1:{port}/readyz",
                  batch=json.dumps({"texts": batch}, ensure_ascii=False), single=True, role=role)


def pinned(tmp, model_url, sha, rounds, duration, connections):
    """The client off the server's CPU: each server on CPU 0 with one serving thread (ours SERVE_THREADS=1, nginx
    one worker) and `wrk -t1` on CPU 1, `rounds` alternating rounds of `duration` seconds (after a 1 s warm-up).
    Returns {name: [(req/s, p50 ms, p99 ms, server CPU µs per request, failed requests), one per round]}, ours
    first; the CPU time is the server's own (user + system of its process group, from /proc)."""
    if (os.cpu_count() or 1) < 2:
        sys.exit("the pinned comparison needs 2 CPUs (server on CPU 0, wrk on CPU 1)")
    ours = predictor_server("predictor serve, SERVE_THREADS=1", model_url, sha, [], "ours", {"SERVE_THREADS": "1"})
    procs, urls = {}, {}
    try:
        procs[ours.name] = start([*PINNED_SERVER, *ours.cmd], ours.env)
        if wait_ready(procs[ours.name], ours.ready, limit=30) is None:
            sys.exit(not_ready(procs[ours.name], ours.name, 30))
        urls[ours.name] = ours.url
        limit = "the limit: nginx, fixed answer, 1 worker"
        procs[limit], urls[limit] = start_limit(tmp, fetch_ok(ours.url, ours.body), ours.body, workers=1,
                                                prefix=PINNED_SERVER)
        script = write_script(os.path.join(tmp, "pinned.lua"), ours.body)
        measured = {name: [] for name in urls}
        for _ in range(rounds):
            for name, url in urls.items():
                measured[name].append(timed_round(url, procs[name].pid, duration, connections, script, threads=1,
                                                  cpu=PINNED_CLIENT_CPU))
    finally:
        for proc in procs.values():
            stop(proc)
    return measured


def print_pinned(measured, rounds, duration, connections):
    """The pinned table, medians of the rounds, and ours against the limit."""
    print(f"\n### Pinned: server on CPU 0 with one serving thread, wrk -t1 -c{connections} on CPU 1 "
          f"({rounds} alternating rounds of {duration} s, medians)\n")
    med = {name: [statistics.median(r[i] for r in runs) for i in range(4)] for name, runs in measured.items()}
    table(["server", "req/s", "p50 ms", "p99 ms", "server CPU µs per request", "req/s each round"],
          [(name, f"{m[0]:,.0f}", f"{m[1]:.3f}", f"{m[2]:.3f}", f"{m[3]:.2f}",
            " ".join(f"{r[0]:,.0f}" for r in measured[name])) for name, m in med.items()])
    ours, limit = med.values()
    print(f"\npinned, ours / the limit: {ours[0] / limit[0]:.2f}x req/s, p99 {ours[2] / limit[2]:.2f}x the limit's, "
          f"CPU per answer {ours[3]:.2f} vs {limit[3]:.2f} µs")


def servers(tmp, model_url, sha, pickle, batch):
    """The servers: the limit first, ours second, ours with drift signals off third, then the peers."""
    ours = predictor_server("predictor serve (Rust, axum)", model_url, sha, batch, "ours")
    drift_off = predictor_server("predictor serve, DRIFT_SIGNALS=off", model_url, sha, batch, "ours, drift off",
                                 {"DRIFT_SIGNALS": "off"})
    # The limit answers exactly what we answer.
    proc = start(ours.cmd)
    try:
        if wait_ready(proc, ours.ready, limit=30) is None:
            sys.exit(not_ready(proc, f"{PREDICTOR} serve", 30))
        answer = fetch_ok(ours.url, ours.body)
    finally:
        stop(proc)
    nginx_cmd, nginx_url = nginx_limit(tmp, answer)
    flask_bin = peer_venv("sklearn_flask")
    kserve_bin = peer_venv("kserve_sklearn")
    mlserver_bin = peer_venv("mlserver_sklearn")
    # MLServer reads its ports from settings.json and the pickle from the model folder: a copy with free ports,
    # listening on loopback only (its default host is 0.0.0.0; KServe's REST server has 0.0.0.0 built in).
    ml_dir = os.path.join(tmp, "mlserver")
    shutil.copytree(os.path.join(BASELINES, "mlserver_sklearn"), ml_dir,
                    ignore=shutil.ignore_patterns("requirements.txt"))
    shutil.copy(pickle, os.path.join(ml_dir, "american", "model.pickle"))
    ml_port = free_port()
    with open(os.path.join(ml_dir, "settings.json")) as f:
        settings = json.load(f)
    settings.update(host="127.0.0.1", http_port=ml_port, grpc_port=free_port(), metrics_port=free_port())
    with open(os.path.join(ml_dir, "settings.json"), "w") as f:
        json.dump(settings, f)
    gunicorn_port, flask_port, kserve_port = free_port(), free_port(), free_port()
    flask_body = json.dumps({"text": TWEET})
    return [
        Server("the limit: nginx, fixed answer, 2 workers", nginx_cmd, nginx_url, flask_body, single=True,
               role="limit"),
        ours,
        drift_off,
        Server("gunicorn -w 2 (Flask + scikit-learn)",
               [os.path.join(flask_bin, "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{gunicorn_port}", "app:app"],
               f"http://127.0.0.1:{gunicorn_port}/api/american", flask_body, {"MODEL": pickle}, PEER_DIR),
        Server("flask run (Flask + scikit-learn)",
               [os.path.join(flask_bin, "flask"), "--app", "app", "run", "--port", str(flask_port)],
               f"http://127.0.0.1:{flask_port}/api/american", flask_body, {"MODEL": pickle}, PEER_DIR),
        Server("KServe 0.21 model server, 2 workers (V1)",
               [os.path.join(kserve_bin, "python"), "model.py", "--http_port", str(kserve_port), "--workers", "2",
                "--enable_grpc", "false", "--enable_latency_logging", "false"],
               f"http://127.0.0.1:{kserve_port}/v1/models/american:predict",
               json.dumps({"instances": [TWEET]}), {"MODEL": pickle}, os.path.join(BASELINES, "kserve_sklearn"),
               batch=json.dumps({"instances": batch}, ensure_ascii=False)),
        Server("MLServer 1.7.1, 2 parallel workers (V2)",
               [os.path.join(mlserver_bin, "mlserver"), "start", ml_dir],
               f"http://127.0.0.1:{ml_port}/v2/models/american/infer",
               json.dumps({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [TWEET]}]}),
               cwd=ml_dir),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--pinned", action="store_true",
                        help="only the pinned comparison (ours and the limit, client on the other CPU)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the pinned comparison")
    parser.add_argument("--pinned-duration", type=int, default=8, help="seconds per pinned round")
    args = parser.parse_args()
    for tool in (PREDICTOR, shutil.which("wrk"), shutil.which("nginx"), shutil.which("taskset")):
        if not tool or not os.path.exists(tool):
            sys.exit(f"missing: {tool} (see the usage in this file)")
    load_before = load_average()
    if args.pinned:
        with tempfile.TemporaryDirectory() as tmp:
            sha = train_model(os.path.join(tmp, "model.bin"))
            store, store_url = model_store(tmp)
            try:
                measured = pinned(tmp, f"{store_url}/model.bin", sha, args.rounds, args.pinned_duration,
                                  args.connections)
            finally:
                store.shutdown()
        print_pinned(measured, args.rounds, args.pinned_duration, args.connections)
        print(f"\nload average before {' '.join(load_before)}, after {' '.join(load_average())}")
        require(failures={f"{name}, pinned: failed requests": sum(r[4] for r in runs)
                          for name, runs in measured.items()})
        return

    with tempfile.TemporaryDirectory() as tmp:
        model, pickle = os.path.join(tmp, "model.bin"), os.path.join(tmp, "model.pickle")
        sha = train_model(model)
        subprocess.run([os.path.join(peer_venv("sklearn_flask"), "python"), os.path.join(PEER_DIR, "train.py"),
                        TRAIN, pickle], check=True, capture_output=True)
        store, store_url = model_store(tmp)
        with open(TEST, encoding="utf-8", newline="") as f:
            batch = [row["text"] for row in csv.DictReader(f)][:BATCH]
        rows, singles, batches, roles = [], [], [], {}
        for server in servers(tmp, f"{store_url}/model.bin", sha, pickle, batch):
            script = write_script(os.path.join(tmp, "post.lua"), server.body)
            cold = []
            for _ in range(3):
                proc = start(server.cmd, server.env, server.cwd)
                took = wait_ready(proc, server.ready, limit=120, step=0.005)
                why = not_ready(proc, server.name, 120)
                stop(proc)
                if took is None:
                    sys.exit(why)
                cold.append(took)
            proc = start(server.cmd, server.env, server.cwd)
            try:
                if wait_ready(proc, server.ready, limit=120) is None:
                    sys.exit(not_ready(proc, server.name, 120))
                if server.role.startswith("ours"):
                    check_drift_series(server)
                wrk(server.url, 2, args.connections, script)  # warm-up
                rps, p50, p99, non2xx, socket_errors = wrk(server.url, args.duration, args.connections, script)
                if server.single:
                    singles.append((server.name, *wrk(server.url, args.duration, 1, script, threads=1)))
                if server.batch:
                    batch_script = write_script(os.path.join(tmp, "batch.lua"), server.batch)
                    wrk(server.url, 2, args.connections, batch_script)  # warm-up
                    batches.append((server.name, *wrk(server.url, args.duration, args.connections, batch_script)))
            finally:
                stop(proc)
            rows.append((server.name, rps, p50, p99, non2xx, socket_errors, statistics.median(cold)))
            roles[server.name] = server.role
        pinned_measured = pinned(tmp, f"{store_url}/model.bin", sha, args.rounds, args.pinned_duration,
                                 args.connections)
        store.shutdown()
    load_after = load_average()

    print(f"## Serving: wrk -t2 -c{args.connections} -d{args.duration}s, one tweet per request, each server's own "
          "protocol, loopback, same machine\n")
    table(["server", "req/s", "p50 ms", "p99 ms", "non-2xx", "socket errors", "cold start to ready ms (median of 3)"],
          [(name, f"{rps:,.0f}", f"{p50:.2f}", f"{p99:.2f}", non2xx, socket_errors, f"{cold * 1000:.0f}")
           for name, rps, p50, p99, non2xx, socket_errors, cold in rows])

    def by_role(measured, role):
        return next(m for m in measured if roles[m[0]] == role)

    limit, ours, off = (by_role(rows, role) for role in ("limit", "ours", "ours, drift off"))
    print(f"\nours / the limit: {ours[1] / limit[1]:.2f}x req/s, p50 {ours[2]:.3f} vs {limit[2]:.3f} ms")
    print(f"drift signals on / off: {ours[1] / off[1]:.2f}x req/s, p50 {ours[2]:.3f} vs {off[2]:.3f} ms")
    for peer in (r for r in rows if roles[r[0]] == "peer"):
        print(f"ours / {peer[0]}: {ours[1] / peer[1]:.1f}x req/s, p99 {ours[3]:.2f} vs {peer[3]:.2f} ms")
    print(f"\n### One connection (wrk -t1 -c1 -d{args.duration}s)\n")
    table(["server", "req/s", "p50 ms", "p99 ms", "non-2xx"],
          [(name, f"{rps:,.0f}", f"{p50:.3f}", f"{p99:.3f}", non2xx) for name, rps, p50, p99, non2xx, _ in singles])
    limit, ours, off = (by_role(singles, role) for role in ("limit", "ours", "ours, drift off"))
    print(f"\nours - the limit, p50: {(ours[2] - limit[2]) * 1000:.0f} µs; "
          f"drift signals on - off, p50: {(ours[2] - off[2]) * 1000:.0f} µs")
    print(f"\n### Batches of {BATCH} tweets of test.csv (wrk -t2 -c{args.connections})\n")
    table(["server", "requests/s", "tweets/s", "p50 ms", "p99 ms", "non-2xx"],
          [(name, f"{rps:,.0f}", f"{rps * BATCH:,.0f}", f"{p50:.2f}", f"{p99:.2f}", non2xx)
           for name, rps, p50, p99, non2xx, _ in batches])
    ours, off = (by_role(batches, role) for role in ("ours", "ours, drift off"))
    print(f"\ndrift signals on / off: {ours[1] / off[1]:.2f}x tweets/s")
    for peer in (b for b in batches if roles[b[0]] == "peer"):
        print(f"ours / {peer[0]}: {ours[1] / peer[1]:.1f}x tweets/s")
    print_pinned(pinned_measured, args.rounds, args.pinned_duration, args.connections)
    print(f"\nload average before {' '.join(load_before)}, after {' '.join(load_after)}")
    failed = {f"{name}, pinned: failed requests": sum(r[4] for r in runs) for name, runs in pinned_measured.items()}
    for what, measured in (("", rows), (", one connection", singles), (", batches", batches)):
        for name, _, _, _, non2xx, socket_errors, *_ in measured:
            failed[f"{name}{what}: failed requests"] = failed_requests(non2xx, socket_errors)
    require(failures=failed)


if __name__ == "__main__":
    main()
