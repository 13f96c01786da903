#!/usr/bin/env python3
"""Training benchmark: our `predictor train` against the scikit-learn peer, in one run, same machine.

Prints a markdown table: test accuracy, training seconds (in-process, median of N runs; each program's own
timer around its training, CSV reading included for ours, excluded for the peer), whole-command wall seconds,
and peak RSS (from wait4). Then a synthetic scale case made by the bench itself: ROWS rows whose tokens are
resampled, per class, from train.csv, and what training on it costs.

Usage: bench/train_bench.py [--runs 5] [--rows 1000000] [--peer-at-scale]
(needs a release build: cargo build --release -p predictor; the peer runs in the virtualenv of
../shared/baselines/sklearn_flask/requirements.txt, made under $MLOPS_CACHE/bench-venvs when missing).
Exits 1 when a figure is missing or zero: a benchmark that measured nothing.
"""
import argparse
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

from harness import PEER_DIR, PREDICTOR, TEST, TRAIN, must_find, peer_venv, require

PEER = os.path.join(PEER_DIR, "train.py")


def run_measured(cmd):
    """Runs cmd under wait4 so its own peak RSS is known; exits with its stderr when it fails."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        out_fd = os.open(cmd_out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        err_fd = os.open(cmd_out_path + ".err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        try:
            os.execv(cmd[0], cmd)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    with open(cmd_out_path) as f:
        out = f.read()
    if os.waitstatus_to_exitcode(status) != 0:
        with open(cmd_out_path + ".err") as f:
            sys.exit(f"{' '.join(cmd)} failed with status {os.waitstatus_to_exitcode(status)}:\n{out}{f.read()}")
    return out, wall, usage.ru_maxrss / 1024.0


def ours(data, model, runs):
    times, walls, rss = [], [], []
    for _ in range(runs):
        out, wall, peak = run_measured([PREDICTOR, "train", "--data", data, "--out", model])
        times.append(float(must_find(r" in ([0-9.]+)s", out, "training seconds from predictor train").group(1)))
        walls.append(wall)
        rss.append(peak)
    return statistics.median(times), statistics.median(walls), max(rss)


def peer(data, model, runs, test=None):
    times, walls, rss, accuracy = [], [], [], None
    python = os.path.join(peer_venv("sklearn_flask"), "python")
    for _ in range(runs):
        cmd = [python, PEER, data, model] + ([test] if test else [])
        out, wall, peak = run_measured(cmd)
        times.append(float(must_find(r"train_seconds=([0-9.]+)", out, "train_seconds from the peer").group(1)))
        walls.append(wall)
        rss.append(peak)
        if test:
            accuracy = float(must_find(r"accuracy=([0-9.]+)", out, "accuracy from the peer").group(1))
    return statistics.median(times), statistics.median(walls), max(rss), accuracy


def synthesize(path, rows, seed=7):
    """ROWS tweets: class drawn with train.csv's prior, length and tokens resampled from that class."""
    rng = random.Random(seed)
    pools, lengths, labels = {True: [], False: []}, {True: [], False: []}, []
    with open(TRAIN, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if not row["text"] or not row["country_code"]:
                continue
            us = row["country_code"] == "US"
            tokens = row["text"].split()
            pools[us].extend(tokens)
            lengths[us].append(len(tokens))
            labels.append(us)
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["id", "country_code", "text"])
        for i in range(rows):
            us = rng.choice(labels)
            n = rng.choice(lengths[us])
            out.writerow([i, "US" if us else "GB", " ".join(rng.choices(pools[us], k=n))])


def main():
    global cmd_out_path
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--peer-at-scale", action="store_true", help="also train the peer on the synthetic rows")
    args = parser.parse_args()
    if not os.path.exists(PREDICTOR):
        sys.exit(f"{PREDICTOR} is missing: cargo build --release -p predictor")
    with tempfile.TemporaryDirectory() as tmp:
        cmd_out_path = os.path.join(tmp, "stdout.txt")
        model, pickle = os.path.join(tmp, "model.bin"), os.path.join(tmp, "model.pickle")
        ours_t, ours_wall, ours_rss = ours(TRAIN, model, args.runs)
        out, _, _ = run_measured([PREDICTOR, "eval", "--model", model, "--data", TEST, "--json"])
        ours_acc = json.loads(out)["accuracy"]
        peer_t, peer_wall, peer_rss, peer_acc = peer(TRAIN, pickle, args.runs, TEST)

        print(f"## Training on train.csv, scored on test.csv (median of {args.runs} runs)\n")
        print("| pipeline | test accuracy | train s (in-process) | wall s (whole command) | peak RSS MiB |")
        print("|---|---|---|---|---|")
        print(f"| predictor (linfa-bayes MNB, default pipeline) | {ours_acc:.4f} | {ours_t:.4f} | {ours_wall:.3f} | {ours_rss:.1f} |")
        print(f"| scikit-learn peer (train.py) | {peer_acc:.4f} | {peer_t:.4f} | {peer_wall:.3f} | {peer_rss:.1f} |")
        require({"our accuracy": ours_acc, "our train s": ours_t, "our peak RSS": ours_rss,
                 "the peer's accuracy": peer_acc, "the peer's train s": peer_t, "the peer's peak RSS": peer_rss})
        print(f"\nratio ours/peer: train {ours_t / peer_t:.2f}x, wall {ours_wall / peer_wall:.2f}x, RSS {ours_rss / peer_rss:.2f}x\n")

        big = os.path.join(tmp, "synthetic.csv")
        started = time.perf_counter()
        synthesize(big, args.rows)
        size = os.path.getsize(big) / 2**20
        print(f"## Synthetic scale case: {args.rows:,} rows, {size:.0f} MiB (generated in {time.perf_counter() - started:.0f} s)\n")
        print("| pipeline | train s (in-process) | wall s | peak RSS MiB |")
        print("|---|---|---|---|")
        t, wall, rss = ours(big, model, 1)
        print(f"| predictor | {t:.2f} | {wall:.2f} | {rss:.1f} |")
        measured = {"our train s at scale": t, "our peak RSS at scale": rss}
        if args.peer_at_scale:
            t, wall, rss, _ = peer(big, pickle, 1)
            print(f"| scikit-learn peer | {t:.2f} | {wall:.2f} | {rss:.1f} |")
            measured.update({"the peer's train s at scale": t, "the peer's peak RSS at scale": rss})
    require(measured)


if __name__ == "__main__":
    main()
