"""What the benchmarks share: paths, the release binary, a loopback model store, and process and HTTP helpers."""
import functools
import hashlib
import http.server
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared")
TRAIN = os.path.join(SHARED, "data", "tweets", "train.csv")
TEST = os.path.join(SHARED, "data", "tweets", "test.csv")
BASELINES = os.path.join(SHARED, "baselines")
PEER_DIR = os.path.join(BASELINES, "sklearn_flask")
CACHE = os.environ.get("MLOPS_CACHE", "/var/cache/mlops-predictor")
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
# The release build, or the binary PREDICTOR_BIN names (e.g. the static one the images hold).
PREDICTOR = os.environ.get("PREDICTOR_BIN") or os.path.join(TARGET, "release", "predictor")


def table(header, rows):
    """Prints a markdown table: the header, its rule, one line per row."""
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url, body=None, timeout=2.0):
    """(status, body) or (None, error)."""
    request = urllib.request.Request(url, data=body.encode() if body else None, method="POST" if body else "GET")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:
        return None, str(e)


def fetch_ok(url, body=None):
    """The text `url` answers 200 with (to `body`, if any), or exits saying what it answered instead."""
    status, answer = fetch(url, body)
    if status is None:
        sys.exit(f"{url} did not answer: {answer}")
    if status != 200:
        sys.exit(f"{url} answered {status}, not 200: {answer.decode(errors='replace')}")
    return answer.decode()


def wait_until(check, limit=60.0, step=0.002):
    """Seconds until check() was true, or None after `limit` seconds."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        if check():
            return time.perf_counter() - start
        time.sleep(step)
    return None


def wait_ready(proc, check, limit=60.0, step=0.002):
    """Seconds until check() was true, or None after `limit` seconds or as soon as `proc` has exited (a server
    that died is not waited for)."""
    took = wait_until(lambda: proc.poll() is not None or check(), limit, step)
    return None if proc.poll() is not None else took


def not_ready(proc, name, limit):
    """Why `proc` (the server `name`) is not ready after wait_ready(..., limit): what a bench exits with."""
    status = proc.poll()
    return f"{name} exited with status {status}" if status is not None else f"{name} not ready within {limit:g} s"


def must_find(pattern, text, what):
    """The match of `pattern` in `text` (re.M), or exits saying `what` is missing: a tool whose output changed
    measures nothing."""
    match = re.search(pattern, text, re.M)
    if match is None:
        sys.exit(f"nothing measured: no {what} in this output\n{text}")
    return match


def problems(measured=(), failures=()):
    """What fails a run whatever its timings: each figure of `measured` (name -> value) that is not positive
    (0 or NaN: nothing was measured) and each count of `failures` (name -> count) that is not 0."""
    found = [f"{name} is {value} (nothing measured)" for name, value in dict(measured).items() if not value > 0]
    return found + [f"{name}: {count}" for name, count in dict(failures).items() if count]


def require(measured=(), failures=()):
    """Exits 1 naming every one of `problems(measured, failures)`, if there is any."""
    found = problems(measured, failures)
    if found:
        sys.exit("FAIL: " + "; ".join(found))


def start(cmd, env=None, cwd=None, stderr=subprocess.DEVNULL):
    return subprocess.Popen(cmd, env={**os.environ, **(env or {})}, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)


def stop(proc):
    try:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass  # it exited, and nothing of its process group is left
    except Exception:
        os.killpg(proc.pid, 9)


def load_average():
    """The 1, 5 and 15 minute load averages, as /proc/loadavg says them."""
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def cpu_seconds(pgid):
    """User + system CPU seconds of every process in the process group `pgid` (nginx's workers included)."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def serve_predictor(binary, store_url, sha, version, extra=(), stderr=subprocess.DEVNULL, env=None, prefix=()):
    """Starts `predictor serve` (`prefix` before its command, e.g. a `taskset`) on a free loopback port with
    `<store_url>/model.bin` pinned to `sha`; returns (process, port) once `/readyz` answers 200, or exits saying
    it never did."""
    port = free_port()
    proc = start([*prefix, binary, "serve", "--model-url", f"{store_url}/model.bin", "--model-sha256", sha,
                  "--host", "127.0.0.1", "--port", str(port), "--version-label", version, *extra], env,
                 stderr=stderr)
    if wait_ready(proc, lambda: fetch(f"http://127.0.0.1:{port}/readyz")[0] == 200, limit=30) is None:
        why = not_ready(proc, f"{binary} serve ({version})", 30)
        stop(proc)
        sys.exit(why)
    return proc, port


def train_model(out, binary=PREDICTOR):
    """Trains on train.csv into `out` (with the release binary unless told); returns the file's sha256."""
    trained = subprocess.run([binary, "train", "--data", TRAIN, "--out", out], capture_output=True, text=True)
    if trained.returncode != 0:
        sys.exit(f"{binary} train failed with status {trained.returncode}: {trained.stderr.strip()}")
    return must_find(r"sha256 ([0-9a-f]{64})", trained.stdout, f"model sha256 from {binary} train").group(1)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def model_store(directory):
    """A loopback HTTP server for `directory` (the model store); returns (server, base URL)."""
    handler = functools.partial(QuietHandler, directory=directory)
    store = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=store.serve_forever, daemon=True).start()
    return store, f"http://127.0.0.1:{store.server_address[1]}"


def peer_venv(peer):
    """The bin directory of a virtualenv holding ../shared/baselines/<peer>/requirements.txt, made (and cached
    under $MLOPS_CACHE/bench-venvs, keyed by the requirements' sha256) when missing."""
    requirements = os.path.join(BASELINES, peer, "requirements.txt")
    with open(requirements, "rb") as f:
        key = hashlib.sha256(f.read()).hexdigest()[:12]
    venv = os.path.join(CACHE, "bench-venvs", f"{peer}-{key}")
    done = os.path.join(venv, ".installed")
    if not os.path.exists(done):
        subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "-r", requirements], check=True)
        open(done, "w").close()
    return os.path.join(venv, "bin")


PEERS = ("sklearn_flask", "kserve_sklearn", "mlserver_sklearn")

if __name__ == "__main__":
    # `bench/harness.py venvs`: the peers' virtualenvs made ahead of the benches (CI makes them while its other
    # steps run: pip mostly waits on the network).
    if sys.argv[1:] != ["venvs"]:
        sys.exit("usage: bench/harness.py venvs")
    for name in PEERS:
        print(peer_venv(name), flush=True)
