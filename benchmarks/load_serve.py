"""Load test of ``crmnet serve`` on 127.0.0.1: concurrent clients mixing predict, explain and job polling.

Starts ``crmnet serve`` in a subprocess on a free loopback port (never another address), runs
``--clients`` client threads for ``--seconds`` seconds, then stops the server itself. Each client loops:
with probability ``--explain`` it submits an explanation of one sequence, else a prediction of
``--sequences`` random promoters; it follows the redirect to the job and polls ``/api/jobs/ID`` every
``--poll`` seconds until the job has finished (or the run ends). A submission refused because the job
queue is full (HTTP 503, the server's back-pressure) is counted apart from errors; an error is any other
status, a connection failure, a time-out or a job that failed.

Reported: requests per second by kind, p50/p99 latency of each request kind (submit, poll) and of whole
jobs (submit to finished), errors, refusals, and the server's peak resident memory (VmHWM of its
process; this script's own memory is not counted).

    python benchmarks/load_serve.py                             # 32 clients, 60 s, a seeded crmnet-tiny
    python benchmarks/load_serve.py --checkpoint deepatt.pt --clients 8 --seconds 30 --json out.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # loopback only: this script never opens the server to the network


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _checkpoint(directory: Path, model: str) -> Path:
    import torch

    from crmnet.models import build_model
    from crmnet.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    path = directory / f"{model}.pt"
    save_checkpoint(path, build_model(model))
    return path


def _peak_rss_mib(pid: int) -> float:
    """Peak resident memory of process ``pid`` (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _start_server(checkpoint: Path, port: int, threads: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(threads)}
    server = subprocess.Popen([sys.executable, "-m", "crmnet", "serve", "--checkpoint", str(checkpoint), "--host",
                               HOST, "--port", str(port), "--device", "cpu"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"crmnet serve exited: {server.stderr.read()}")
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("crmnet serve did not start within 120 s")


class Stats:
    """Latencies and outcomes from every client thread (one lock)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.count: dict[str, int] = defaultdict(int)

    def add(self, kind: str, seconds: float | None = None) -> None:
        with self.lock:
            self.count[kind] += 1
            if seconds is not None:
                self.latency[kind].append(seconds)


def _promoter(rng: random.Random) -> str:
    from crmnet.data.construct import LEFT_FLANK, RIGHT_FLANK

    return LEFT_FLANK + "".join(rng.choice("ACGT") for _ in range(80)) + RIGHT_FLANK


def _request(conn, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.status, response.getheader("Location"), response.read()


def _client(port: int, model: str, args, stats: Stats, deadline: float, seed: int) -> None:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection(HOST, port, timeout=args.timeout)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    while time.time() < deadline:
        explain = rng.random() < args.explain
        kind = "explain" if explain else "predict"
        n = 1 if explain else args.sequences
        body = urllib.parse.urlencode({"model": model, "sequences": "\n".join(_promoter(rng) for _ in range(n))})
        start = time.perf_counter()
        try:
            status, location, _ = _request(conn, "POST", f"/{kind}", body.encode(), form)
        except (OSError, http.client.HTTPException):
            stats.add("error: connection")
            conn = http.client.HTTPConnection(HOST, port, timeout=args.timeout)
            continue
        stats.add(f"submit {kind}", time.perf_counter() - start)
        if status == 503:
            stats.add("refused: queue full")
            time.sleep(args.poll)
            continue
        if status != 303 or not location:
            stats.add(f"error: HTTP {status} on submit")
            continue
        _follow(conn, port, location.rsplit("/", 1)[1], kind, start, args, stats, deadline)


def _follow(conn, port, job_id, kind, start, args, stats, deadline) -> None:
    while time.time() < deadline:
        time.sleep(args.poll)
        t = time.perf_counter()
        try:
            status, _, data = _request(conn, "GET", f"/api/jobs/{job_id}")
        except (OSError, http.client.HTTPException):
            stats.add("error: connection")
            return
        stats.add("poll", time.perf_counter() - t)
        if status != 200:
            stats.add(f"error: HTTP {status} on poll")
            return
        state = json.loads(data)["state"]
        if state in ("done", "failed", "stopped"):
            stats.add(f"job {kind}" if state == "done" else f"error: job {state}",
                      time.perf_counter() - start if state == "done" else None)
            return


def _quantiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    q = statistics.quantiles(values, n=100, method="inclusive")
    return statistics.median(values), q[98]


def main() -> int:
    """Run the load test and print the report; returns the exit status (1 when any error was counted)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", help="checkpoint to serve (default: a seeded crmnet-tiny written to a temp dir)")
    p.add_argument("--model", default="crmnet-tiny", help="registry model of the default checkpoint")
    p.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    p.add_argument("--seconds", type=float, default=60.0, help="duration (default 60)")
    p.add_argument("--sequences", type=int, default=20, help="sequences per prediction request (default 20)")
    p.add_argument("--explain", type=float, default=0.2, help="fraction of submissions that explain (default 0.2)")
    p.add_argument("--poll", type=float, default=0.25, help="seconds between job polls (default 0.25)")
    p.add_argument("--timeout", type=float, default=30.0, help="per-request time-out (default 30 s)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the server (default 1)")
    p.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(args.checkpoint) if args.checkpoint else _checkpoint(Path(tmp), args.model)
        port = _free_port()
        server = _start_server(checkpoint, port, args.threads)
        try:
            report = _run(server, port, checkpoint.stem, args)
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 1 if report["errors"] else 0


def _run(server: subprocess.Popen, port: int, model: str, args) -> dict:
    stats = Stats()
    deadline = time.time() + args.seconds
    started = time.perf_counter()
    clients = [threading.Thread(target=_client, args=(port, model, args, stats, deadline, k), daemon=True)
               for k in range(args.clients)]
    for c in clients:
        c.start()
    for c in clients:
        c.join(timeout=args.seconds + args.timeout + 10)
    elapsed = time.perf_counter() - started
    peak = _peak_rss_mib(server.pid)
    requests = sum(len(v) for k, v in stats.latency.items() if not k.startswith("job")) + stats.count[
        "error: connection"]
    latency = {k: dict(zip(("p50_s", "p99_s"), (round(x, 4) for x in _quantiles(v))), n=len(v))
               for k, v in sorted(stats.latency.items())}
    return {
        "clients": args.clients, "seconds": round(elapsed, 1), "sequences_per_prediction": args.sequences,
        "requests": requests, "requests_per_s": round(requests / elapsed, 1),
        "jobs_done": {k.removeprefix("job "): stats.count[k] for k in ("job predict", "job explain")},
        "sequences_predicted_per_s": round(stats.count["job predict"] * args.sequences / elapsed, 1),
        "latency": latency,
        "refused_queue_full": stats.count["refused: queue full"],
        "errors": {k.removeprefix("error: "): v for k, v in stats.count.items() if k.startswith("error") and v},
        "server_peak_rss_mib": round(peak, 1), "cpus": os.cpu_count(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }


if __name__ == "__main__":
    sys.exit(main())
