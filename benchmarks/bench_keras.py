"""CPU inference, crmnet against the authors' Keras model, side by side: CPU time per batch, one thread.

Both run the same full CRMnet (34,170,289 weights) from the same Keras SavedModel
(``shared/fixtures/keras_crmnet/full_savedmodel/savedmodel``: Keras runs it with ``predict_on_batch``,
crmnet imports it with ``crmnet.zoo.keras``), so the outputs are compared too. The Keras side runs in
a separate Python that has TensorFlow (``--keras-python``, e.g. a venv with ``tensorflow-cpu tf-keras``)
as a persistent worker process; without one, only crmnet is measured. Measurements alternate between
the contenders round by round, so a shared machine's drift hits all of them alike; each figure is the
median CPU time (``time.process_time`` of the process doing the work) of all timed calls.

    python benchmarks/bench_keras.py --keras-python /path/to/tf-venv/bin/python
    python benchmarks/bench_keras.py --batch 64,256 --rounds 3 --repeats 3 --bf16

Contenders: ``crmnet`` (the plain module in eval mode under ``inference_mode``), ``crmnet-fast``
(``optimize_for_inference``: the exact rewrite ``predict`` uses) and with ``--bf16`` the opt-in
bfloat16 fast path.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SHARED = Path(os.environ.get("CRMNET_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
WORKER = "--keras-worker"


def _time_calls(call, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        call()
        times.append(time.process_time() - t0)
    return times


def keras_worker(savedmodel: str) -> int:
    """Serve timing requests on stdin ("batch repeats" per line, JSON answer per line); no torch here."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    try:
        import tf_keras as keras  # Keras 2, which reads the authors' SavedModel format
    except ImportError:
        keras = tf.keras
    model = keras.models.load_model(savedmodel, compile=False)
    print(
        json.dumps({"ready": True, "tensorflow": tf.__version__, "params": model.count_params()}), flush=True
    )
    rng = np.random.default_rng(0)
    for line in sys.stdin:
        batch, repeats = (int(v) for v in line.split())
        x = np.eye(5, dtype=np.float32)[rng.integers(0, 5, (batch, 112))]  # (B, 112, 5) one-hot, NLC
        model.predict_on_batch(x)  # warm-up: traces the graph for this batch size
        times = _time_calls(lambda x=x: model.predict_on_batch(x), repeats)
        y = model.predict_on_batch(x)[:, 0].tolist()
        print(json.dumps({"times": times, "x": x.argmax(-1).tolist(), "y": y}), flush=True)
    return 0


class KerasSide:
    """The worker process, started once (loading TensorFlow and the model takes a while)."""

    def __init__(self, python: str, savedmodel: Path):
        env = dict(os.environ, OMP_NUM_THREADS="1", TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
        env.pop("PYTHONPATH", None)
        self.proc = subprocess.Popen(
            [python, __file__, WORKER, str(savedmodel)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.info = self._answer()

    def _answer(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise RuntimeError("the Keras worker exited: no TensorFlow (+ tf-keras) in --keras-python?")
        return json.loads(line)

    def run(self, batch: int, repeats: int) -> dict:
        self.proc.stdin.write(f"{batch} {repeats}\n")
        self.proc.stdin.flush()
        return self._answer()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _contenders(savedmodel: Path, bf16: bool) -> dict:
    import torch

    from crmnet.models.fastpath import optimize_for_inference
    from crmnet.zoo.keras import convert, read_keras

    model, _ = convert(read_keras(savedmodel))
    model.eval()
    out = {"crmnet": model, "crmnet-fast": optimize_for_inference(model)}
    if bf16:
        out["crmnet-fast-bf16"] = optimize_for_inference(model, dtype=torch.bfloat16)
    return out


def _onehot(codes):
    import torch

    return torch.nn.functional.one_hot(torch.as_tensor(codes), 5).float().transpose(1, 2).contiguous()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--keras-python", help="a Python with TensorFlow (+ tf-keras); omitted: crmnet only")
    p.add_argument(
        "--savedmodel",
        type=Path,
        default=SHARED / "fixtures" / "keras_crmnet" / "full_savedmodel" / "savedmodel",
        help="the Keras SavedModel both sides run (default: the shared fixture)",
    )
    p.add_argument("--batch", default="64,256", help="comma-separated batch sizes")
    p.add_argument("--rounds", type=int, default=3, help="alternations between the contenders")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per contender and round")
    p.add_argument("--bf16", action="store_true", help="also time the opt-in bfloat16 fast path")
    args = p.parse_args(argv)
    if not args.savedmodel.is_dir():
        p.error(f"--savedmodel: {args.savedmodel} is not a directory")

    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    keras = None
    if args.keras_python:
        try:
            keras = KerasSide(args.keras_python, args.savedmodel)
            print(f"# Keras side: TensorFlow {keras.info['tensorflow']}, {keras.info['params']:,} weights")
        except RuntimeError as err:
            print(f"# Keras side skipped: {err}; measuring crmnet only")
    else:
        print("# no --keras-python given (a Python with TensorFlow): measuring crmnet only")
    models = _contenders(args.savedmodel, args.bf16)
    print(f"# CPU time per batch, 1 thread, median of {args.rounds} rounds x {args.repeats} calls")
    print(f"{'batch':>5} {'contender':<18} {'ms/batch':>10} {'seq/s':>8} {'x Keras':>8} {'max |dy|':>9}")
    try:
        for batch in (int(b) for b in args.batch.split(",")):
            times: dict[str, list[float]] = {name: [] for name in models}
            diff: dict[str, float] = {}
            if keras is not None:
                times["keras"] = []
            for _ in range(args.rounds):
                if keras is not None:
                    answer = keras.run(batch, args.repeats)
                    times["keras"] += answer["times"]
                    x, y_keras = _onehot(answer["x"]), torch.tensor(answer["y"])
                else:
                    x, y_keras = _onehot(torch.randint(0, 5, (batch, 112))), None
                with torch.inference_mode():
                    for name, model in models.items():
                        y = model(x)  # warm-up, and the agreement with Keras
                        times[name] += _time_calls(lambda m=model, x=x: m(x), args.repeats)
                        if y_keras is not None:
                            diff[name] = max(diff.get(name, 0.0), (y - y_keras).abs().max().item())
            ref = statistics.median(times["keras"]) if keras is not None else None
            for name, ts in times.items():
                t = statistics.median(ts)
                ratio = f"{ref / t:.2f}" if ref else "-"
                d = f"{diff[name]:.1e}" if name in diff else "-"
                print(
                    f"{batch:>5} {name:<18} {t * 1e3:>10.1f} {batch / t:>8.1f} {ratio:>8} {d:>9}", flush=True
                )
    finally:
        if keras is not None:
            keras.close()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == WORKER:
        raise SystemExit(keras_worker(sys.argv[2]))
    raise SystemExit(main())
