"""CPU inference, crmnet against the authors' Keras models, side by side in one run, one thread each.

Three models, each run by both sides from the same released file, so the outputs are compared too:

* ``--model crmnet``: the full CRMnet (34,170,289 weights) from the Keras SavedModel fixture
  (``shared/fixtures/keras_crmnet/full_savedmodel/savedmodel``; crmnet imports it with ``crmnet.zoo.keras``).
* ``--model deepatt``: the real trained DeepATT of Vaishnav et al. (``shared/models/vaishnav2022/
  deepatt_complex/DeepAtt_model.h5``; crmnet imports it with ``crmnet import``), on batches drawn from
  the authors' native and random test sets (their sequences, 8 % of them with N).
* ``--model transformer``: Vaishnav et al.'s transformer ("tpu model", 1,296,785 weights) from the
  fixture ``shared/fixtures/vaishnav_transformer/fitness_function.h5`` (the authors' architecture with
  seeded weights; crmnet imports it with ``crmnet import``), on the same test-set batches. The Keras side
  first checks its model against the fixture's ``reference_io.npz`` (the authors' code's outputs); the
  header prints the largest difference.

Contenders: ``keras`` (``predict_on_batch``), ``keras-xla`` (the model's call compiled by XLA,
``tf.function(jit_compile=True)``: the strongest Keras path on a CPU), ``crmnet`` (the plain module under
``inference_mode``) and ``crmnet-fast`` (``optimize_for_inference``: what ``predict`` and the design
commands run). The Keras side runs in a separate Python with TensorFlow and tf-keras (``--keras-python``;
``benchmarks/keras_peers.py`` is its worker); without one only crmnet is measured.

Timing: ``--rounds`` rounds; in each, every contender runs one warm-up and ``--repeats`` timed calls, in
an order rotated from round to round, so a shared machine's drift hits all alike. Each call's CPU time
(``time.process_time`` of the process doing the work, all its threads) and wall time are kept. A
contender's figure is the median over all its calls; a ratio (``x peer``: > 1 means crmnet is faster) is
the median of the per-round ratios of medians, with their range.

    python benchmarks/bench_keras.py --model deepatt --keras-python /work/tfvenv/bin/python --batch 64,256,1024
    python benchmarks/bench_keras.py --model transformer --keras-python /work/tfvenv/bin/python --batch 64,256,1024
    python benchmarks/bench_keras.py --model crmnet --keras-python /work/tfvenv/bin/python --batch 64,256
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import speedlog

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("CRMNET_SHARED", HERE.parents[1] / "shared"))
SOURCES = {"crmnet": SHARED / "fixtures" / "keras_crmnet" / "full_savedmodel" / "savedmodel",
           "deepatt": SHARED / "models" / "vaishnav2022" / "deepatt_complex" / "DeepAtt_model.h5",
           "transformer": SHARED / "fixtures" / "vaishnav_transformer" / "fitness_function.h5"}
# DeepATT's and the transformer's inputs: rows of the authors' native and random complex-medium test sets (8 % carry N)
TEST_SETS = [SHARED / "data" / "vaishnav2022" / "peer_predictions" / f"{origin}_complex_DeepAtt_model.csv"
             for origin in ("Native", "Random")]


class KerasSide:
    """The Keras worker process (``keras_peers.py``), started once: loading TensorFlow takes a while."""

    def __init__(self, python: str, kind: str, source: Path, sequences: list[Path]):
        env = dict(os.environ, OMP_NUM_THREADS="1", TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
        env.pop("PYTHONPATH", None)
        self.proc = subprocess.Popen([python, str(HERE / "keras_peers.py"), kind, str(source), *map(str, sequences)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.info = self.ask("")

    def ask(self, request: str) -> dict:
        """Send one request line (none for the ready message) and read the JSON answer."""
        if request:
            self.proc.stdin.write(request + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise RuntimeError("the Keras worker exited: no TensorFlow (+ tf-keras, h5py) in --keras-python?")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def crmnet_models(kind: str, source: Path, tmp: Path) -> tuple[dict, object]:
    """{"crmnet": plain module, "crmnet-fast": its inference rewrite} and the model's encoding."""
    from crmnet.models.checkpoint import load_checkpoint
    from crmnet.models.fastpath import optimize_for_inference

    if kind == "crmnet":
        from crmnet.zoo.keras import convert, read_keras

        model, _ = convert(read_keras(source))
    else:
        from crmnet.zoo.importer import import_model

        model = load_checkpoint(import_model(source, tmp / f"{kind}.pt", overwrite=True))
    model.eval()
    return {"crmnet": model, "crmnet-fast": optimize_for_inference(model)}, model.encoding


def inputs(kind: str, codes):
    """The Keras worker's codes as the crmnet model's one-hot (B, C, L), channel for channel."""
    import torch

    codes = torch.as_tensor(codes)
    if kind == "crmnet":  # the worker's codes are the channel indices of the SavedModel's input
        return torch.nn.functional.one_hot(codes, 5).float().transpose(1, 2).contiguous()
    x = torch.nn.functional.one_hot(codes.clamp(max=3), 4).float()
    x[codes == 4] = 1.0
    return x.transpose(1, 2).contiguous()


def measure_batch(batch: int, models: dict, keras: KerasSide | None, kind: str, args) -> dict:
    """Interleaved rounds at one batch size → per contender CPU/wall lists, per-round medians, max |Δy|."""
    import torch

    if keras is not None:
        data = keras.ask(f"data {batch}")
        x, y_keras = inputs(kind, data["codes"]), torch.tensor(data["y"])
    else:
        x = inputs(kind, torch.randint(0, 5, (batch, 112 if kind == "crmnet" else 110)))
        y_keras = None
    names = [*(["keras", "keras-xla"] if keras is not None else []), *models]
    diff = {}

    def timer(name: str) -> tuple[list[float], list[float]]:
        if name.startswith("keras"):
            answer = keras.ask(f"time {name} {batch} {args.repeats}")
            return answer["cpu"], answer["wall"]
        model = models[name]
        with torch.inference_mode():
            y = model(x)
            cpu, wall = speedlog.time_calls(lambda: model(x), args.repeats)
        if y_keras is not None:
            y = y if kind == "crmnet" else (y - model.config.output_shift) / model.config.output_scale
            diff[name] = (y - y_keras).abs().max().item()
        return cpu, wall

    out = speedlog.interleave(names, args.rounds, timer)
    return {"times": out, "max_abs_diff": diff}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=sorted(SOURCES), default="deepatt")
    p.add_argument("--source", type=Path, help="the released file both sides run (default: the shared copy)")
    p.add_argument("--keras-python", help="a Python with TensorFlow, tf-keras and h5py; omitted: crmnet only")
    p.add_argument("--batch", default="64,256,1024", help="comma-separated batch sizes")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds per batch size")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per contender and round")
    p.add_argument("--json", type=Path, help="also write the result here (speedlog format, every timing kept)")
    args = p.parse_args(argv)
    source = args.source or SOURCES[args.model]
    if not source.exists():
        p.error(f"--source: {source} not found")

    import tempfile

    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    sequences = [p for p in TEST_SETS if p.is_file()] if args.model != "crmnet" else []
    keras = KerasSide(args.keras_python, args.model, source, sequences) if args.keras_python else None
    with tempfile.TemporaryDirectory() as tmp:
        models, _ = crmnet_models(args.model, source, Path(tmp))
    head = f"# {args.model}: torch {torch.__version__}"
    print(head + (f", TensorFlow {keras.info['tensorflow']}" if keras else " (no --keras-python: crmnet only)"))
    if keras is not None and "reference_max_abs_diff" in keras.info:
        print(f"# Keras model vs the authors' outputs (reference_io.npz): max abs diff "
              f"{keras.info['reference_max_abs_diff']:.1e}")
    print(f"# 1 thread; {args.rounds} interleaved rounds x {args.repeats} calls; medians; ratio cells: "
          "CPU-time ratio (range over rounds) / wall-time ratio (range); > 1: crmnet faster")
    print("| batch | contender | CPU ms/batch | wall ms/batch | seq/s (CPU) | x keras | x keras-xla | max abs dy |")
    print("|---|---|---|---|---|---|---|---|")
    results = {}
    try:
        for batch in (int(b) for b in args.batch.split(",")):
            results[batch] = measure_batch(batch, models, keras, args.model, args)
            print("\n".join(speedlog.table_rows(batch, results[batch], ("keras", "keras-xla"))), flush=True)
    finally:
        if keras is not None:
            keras.close()
    if args.json:
        peer = f"TensorFlow {keras.info['tensorflow']}" if keras else "none"
        rows = speedlog.batch_rows(args.model, results, ("keras", "keras-xla"))
        speedlog.save(args.json, "bench_keras", speedlog.conditions(peer), rows, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
