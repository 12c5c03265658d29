"""crmnet serve: every page and error path through Starlette's test client, on tiny seeded models."""

from __future__ import annotations

import itertools
import re
import threading
import time
import warnings

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
pytest.importorskip("multipart")

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2; httpx is what it still runs on
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from crmnet.data.construct import LEFT_FLANK, RIGHT_FLANK
from crmnet.serve.app import create_app
from crmnet.serve.config import ServeConfig
from crmnet.serve.jobs import JobManager
from crmnet.serve.models import load_models

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from a second thread on a shared CPU."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _sequences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [LEFT_FLANK + "".join(rng.choice(list("ACGT"), 80)) + RIGHT_FLANK for _ in range(n)]


SEQS = _sequences(3)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    import torch

    from crmnet.models import build_model
    from crmnet.models.checkpoint import save_checkpoint

    out = tmp_path_factory.mktemp("ckpt")
    for seed, name in ((0, "alpha"), (1, "beta")):
        torch.manual_seed(seed)
        save_checkpoint(out / f"{name}.pt", build_model("crmnet-tiny"))
    return out


@pytest.fixture(scope="module")
def client(checkpoints):
    models = load_models([checkpoints / "alpha.pt"], models_dir=checkpoints, data_dir=checkpoints / "no-data")
    config = ServeConfig(max_request_bytes=64 * 1024, max_sequences=50, max_length=300, max_mutate_sequences=5,
                         max_evolve_sequences=2, max_generations=20, max_population=30, max_lineages=40)
    with TestClient(create_app(models, config)) as c:
        yield c


def wait(client, location: str, seconds: float = 60.0) -> dict:
    """Poll a job until it finishes; its final status."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        status = client.get("/api" + location).json()
        if status["state"] in ("done", "failed", "stopped"):
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {location} did not finish in {seconds} s")


def run(client, path: str, data: dict, files=None) -> tuple[str, str]:
    """POST a form, follow the job to its end; (job URL, final page HTML)."""
    r = client.post(path, data=data, files=files, follow_redirects=False)
    assert r.status_code == 303, _error(r.text) or r.text[:500]
    location = r.headers["location"]
    status = wait(client, location)
    assert status["state"] == "done", status["error"]
    page = client.get(location)
    assert page.status_code == 200
    return location, page.text


def _error(html: str) -> str | None:
    import html as htmllib

    found = re.search(r'id="error">(.*?)</p>', html, re.DOTALL)
    return htmllib.unescape(found.group(1)) if found else None


def _values(html: str) -> list[str]:
    return re.findall(r'class="num value">([^<]*)<', html)


# ------------------------------------------------------------------------------------------ pages
@pytest.mark.parametrize("path", ["/", "/predict", "/explain", "/mutate", "/evolve", "/models"])
def test_every_page_renders_with_models_and_limits(client, path):
    r = client.get(path)
    assert r.status_code == 200
    assert "alpha" in r.text and "beta" in r.text
    assert "Traceback" not in r.text
    if path not in ("/models",):
        assert "At most" in r.text and "300 nt" in r.text  # the limits are shown with the form


def test_models_page_names_models_not_paths(client, checkpoints):
    r = client.get("/models")
    assert "crmnet-tiny" in r.text and "80,743" in r.text
    assert str(checkpoints) not in r.text


# ------------------------------------------------------------------------------------------ predict
def test_predict_gives_the_numbers_of_crmnet_predict(client, checkpoints, tmp_path):
    from crmnet.evaluation.predict import predict_file
    from crmnet.models.checkpoint import load_checkpoint

    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(SEQS)))
    predict_file(load_checkpoint(checkpoints / "alpha.pt"), fasta, tmp_path / "out.tsv", progress=False)
    expected = (tmp_path / "out.tsv").read_text()
    location, html = run(client, "/predict", {"sequences": fasta.read_text(), "model": "alpha"})
    got = [line.split("\t") for line in client.get(location + "/files/predictions.tsv").text.splitlines()]
    want = [line.split("\t") for line in expected.splitlines()]
    assert [row[:2] for row in got] == [row[:2] for row in want]  # header, ids and sequences as written
    # the same numbers, up to float32 rounding in the last printed digit (threads may order sums differently)
    numbers = [float(row[2]) for row in want[1:]]
    assert [float(row[2]) for row in got[1:]] == pytest.approx(numbers, rel=1e-5, abs=1e-9)
    assert [float(v) for v in _values(html)] == pytest.approx(numbers, rel=1e-5, abs=1e-9)
    png = client.get(location + "/files/distribution.png")
    assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"


def test_predict_several_models_and_uploads(client):
    csv = "name,sequence\n" + "".join(f"r{i},{s}\n" for i, s in enumerate(SEQS))
    location, html = run(client, "/predict", {"model": ["alpha", "beta"]},
                         files={"file": ("mine.csv", csv.encode(), "text/csv")})
    tsv = client.get(location + "/files/predictions.tsv").text.splitlines()
    assert tsv[0] == "id\tsequence\tprediction_alpha\tprediction_beta"
    assert [row.split("\t")[0] for row in tsv[1:]] == ["r0", "r1", "r2"]
    alpha, beta = (np.array([float(r.split("\t")[k]) for r in tsv[1:]]) for k in (2, 3))
    assert not np.allclose(alpha, beta)  # two different models, two columns
    assert len(_values(html)) == 6


def test_pasted_plain_sequences_are_numbered_by_line(client):
    location, _ = run(client, "/predict", {"sequences": f"{SEQS[0]}\n\n{SEQS[1].lower()}\n", "model": "beta"})
    rows = client.get(location + "/files/predictions.tsv").text.splitlines()[1:]
    assert [r.split("\t")[0] for r in rows] == ["1", "3"]


@pytest.mark.parametrize("data, files, message", [
    ({"sequences": f"{SEQS[0]}\nACGTXACGT\n"}, None, "pasted text:2: invalid character 'X' at position 5"),
    ({"sequences": "   "}, None, "no sequences: paste some or upload"),
    ({"sequences": SEQS[0]}, {"file": ("a.fa", b">a\nACGT\n", "text/plain")}, "not both"),
    ({}, {"file": ("a.fa", b">a\n>b\nACGT\n", "text/plain")}, "upload 'a.fa':1: FASTA record 'a' has no sequence"),
    ({}, {"file": ("x.bin", bytes(range(256)) * 4, "application/octet-stream")}, "upload 'x.bin'"),
    ({"sequences": "\n".join(["ACGT"] * 51)}, None, "more than 50 sequences"),
    ({"sequences": "A" * 301}, None, "pasted text:1: sequence of 301 nt: longer than the limit of 300 nt"),
    ({"sequences": SEQS[0], "format": "csv"}, None, "no sequence column"),
    ({"sequences": SEQS[0], "format": "xml"}, None, "format must be one of"),
])
def test_bad_sequences_are_one_clear_message_in_the_page(client, data, files, message):
    r = client.post("/predict", data={"model": "alpha", **data}, files=files)
    assert r.status_code == 400
    assert message in _error(r.text)
    assert "Traceback" not in r.text
    if "sequences" in data:  # the form keeps what was pasted
        assert data["sequences"].strip()[:20] in r.text


@pytest.mark.parametrize("models, message", [([], "choose at least one model"),
                                             (["gamma"], "no model 'gamma' on this server")])
def test_model_choice_is_checked(client, models, message):
    r = client.post("/predict", data={"sequences": SEQS[0], "model": models})
    assert r.status_code == 400 and message in _error(r.text)


def test_oversize_request_is_refused_with_a_page(client):
    big = (">x\n" + "ACGT" * 20_000 + "\n").encode()
    r = client.post("/predict", data={"model": "alpha"}, files={"file": ("big.fa", big, "text/plain")})
    assert r.status_code == 413
    assert "larger than the limit of 0.0625 MB" in _error(r.text)


def test_oversize_body_without_length_is_refused(client):
    def chunks():
        for _ in range(100):
            yield b"x" * 1024

    r = client.post("/predict", content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413


# ------------------------------------------------------------------------------------------ no file reading
@pytest.mark.parametrize("path", ["/jobs/0123/files/x.png", "/api/jobs/nope", "/jobs/../etc/passwd",
                                  "/static/../../../../etc/passwd", "/static/%2e%2e/config.py", "/nowhere"])
def test_no_path_on_the_server_is_readable(client, path):
    r = client.get(path)
    assert r.status_code == 404
    assert "root:" not in r.text and "Traceback" not in r.text


def test_a_jobs_files_are_only_its_own(client):
    location, _ = run(client, "/predict", {"sequences": SEQS[0], "model": "alpha"})
    assert client.get(location + "/files/predictions.tsv").status_code == 200
    for name in ("..%2F..%2Fconfig.py", "explain.png", "predictions.tsv.bak"):
        assert client.get(f"{location}/files/{name}").status_code == 404


def test_static_files_are_served(client):
    assert "watchJob" in client.get("/static/app.js").text
    assert client.get("/static/style.css").status_code == 200


def test_wrong_method_is_a_page(client):
    r = client.post("/models")
    assert r.status_code == 405 and "does not accept" in _error(r.text)


# ------------------------------------------------------------------------------------------ explain
def test_explain_shows_saliency_mutagenesis_and_motifs(client):
    from crmnet.interpret.attribution import AttributionConfig, attribute

    seq = LEFT_FLANK + "TTACCCGGAA" * 8 + RIGHT_FLANK  # REB1's TTACCCG, eight times
    location, html = run(client, "/explain", {"sequences": f">reb\n{seq}\n", "model": "alpha", "threshold": "1e-4"})
    assert "REB1" in html
    assert client.get(location + "/files/explain.png").content[:4] == b"\x89PNG"
    rows = client.get(location + "/files/positions.tsv").text.splitlines()
    assert rows[0].split("\t") == ["position_1based", "base", "saliency", "delta_A", "delta_C", "delta_G", "delta_T"]
    assert len(rows) == 1 + len(seq)
    # Δ of each substitution is the ISM value minus the reference base's (0 at the reference itself)
    model = client.app.state.models["alpha"].model
    ism = attribute(model, [seq], AttributionConfig(method="ism", ism_variable_only=False))
    j = 40
    fields = rows[1 + j].split("\t")
    ref = "ACGT".index(seq[j])
    expected = ism.hypothetical[0][:, j] - ism.hypothetical[0][ref, j]
    assert np.allclose([float(v) for v in fields[3:]], expected, atol=1e-6)
    assert float(fields[3 + ref]) == 0.0
    motifs = client.get(location + "/files/motifs.tsv").text
    assert "REB1\tMA0363" in motifs


@pytest.mark.parametrize("data, message", [
    ({"sequences": f"{SEQS[0]}\n{SEQS[1]}", "model": "alpha"}, "more than 1 sequence"),
    ({"sequences": SEQS[0], "model": ["alpha", "beta"]}, "choose one model"),
    ({"sequences": SEQS[0], "model": "alpha", "threshold": "0.5"}, "threshold 0.5 lies outside"),
    ({"sequences": SEQS[0], "model": "alpha", "threshold": "abc"}, "threshold: 'abc' is not a number"),
])
def test_explain_errors(client, data, message):
    r = client.post("/explain", data=data)
    assert r.status_code == 400 and message in _error(r.text)


# ------------------------------------------------------------------------------------------ jobs
def test_job_page_shows_progress_until_done():
    jobs = JobManager(seconds=30, max_queued=2, keep=5)
    gate = threading.Event()

    def slow(progress):
        progress(1, 4, "one quarter")
        gate.wait(10)

    job = jobs.submit("predict", "t", slow)
    for _ in range(100):
        if job.message == "one quarter":
            break
        time.sleep(0.01)
    assert job.status()["state"] == "running" and job.status()["done"] == 1
    gate.set()
    jobs.shutdown()
    assert job.state == "done"


def test_jobs_stop_at_their_time_limit_and_on_request():
    jobs = JobManager(seconds=0.2, max_queued=3, keep=5)

    def forever(progress):
        while True:
            progress(0, 1, "working")
            time.sleep(0.01)

    timed = jobs.submit("predict", "t", forever)
    asked = jobs.submit("predict", "t", forever)
    asked.cancel.set()
    for _ in range(300):
        if asked.finished_state:
            break
        time.sleep(0.01)
    jobs.shutdown()
    assert timed.state == "stopped" and "time limit of 0.2 s" in timed.error
    assert asked.state == "stopped" and asked.error == "stopped on request"


def test_internal_errors_are_logged_not_shown(caplog):
    jobs = JobManager(seconds=5, max_queued=2, keep=5)

    def broken(progress):
        raise RuntimeError("secret detail /etc/passwd")

    job = jobs.submit("predict", "t", broken)
    jobs.shutdown()
    assert job.state == "failed" and job.error == "internal error (the server log has the details)"
    assert "secret detail" in caplog.text


def test_full_queue_and_forgotten_jobs():
    from crmnet.serve.jobs import QueueFull

    jobs = JobManager(seconds=5, max_queued=1, keep=2)
    gate = threading.Event()
    first = jobs.submit("predict", "t", lambda progress: gate.wait(10))
    with pytest.raises(QueueFull, match="try again"):
        jobs.submit("predict", "t", lambda progress: None)
    gate.set()
    later = []
    for _ in range(3):
        while not (later or [first])[-1].finished_state:
            time.sleep(0.01)
        later.append(jobs.submit("predict", "t", lambda progress: None))
    jobs.shutdown()
    assert jobs.get(first.id) is None and len(jobs.jobs()) <= 3
    assert jobs.get(later[-1].id) is not None


def test_busy_server_says_so_in_the_page(checkpoints):
    models = load_models([checkpoints / "alpha.pt"], data_dir=checkpoints / "no-data")
    app = create_app(models, ServeConfig(max_queued=1))
    gate = threading.Event()
    with TestClient(app) as c:
        app.state.jobs.submit("predict", "t", lambda progress: gate.wait(10))
        r = c.post("/predict", data={"sequences": SEQS[0], "model": "alpha"})
        gate.set()
    assert r.status_code == 503 and "try again" in _error(r.text)


def test_stop_button_and_failed_job_page(client):
    gate = threading.Event()

    def waiting(progress):
        while not gate.is_set():
            progress(0, 1, "waiting")
            time.sleep(0.01)

    job = client.app.state.jobs.submit("predict", "Predictions", waiting)
    r = client.get(f"/jobs/{job.id}")
    assert 'id="progress"' in r.text and "/stop" in r.text
    r = client.post(f"/jobs/{job.id}/stop", follow_redirects=False)
    assert r.status_code == 303
    assert wait(client, f"/jobs/{job.id}")["state"] == "stopped"
    gate.set()
    assert "stopped on request" in _error(client.get(f"/jobs/{job.id}").text)


# ------------------------------------------------------------------------------------------ models, CLI
def test_models_from_a_directory_and_the_zoo(checkpoints, tmp_path):
    import shutil

    (tmp_path / "checkpoints").mkdir()
    shutil.copy(checkpoints / "alpha.pt", tmp_path / "checkpoints" / "deepatt-complex.pt")
    models = load_models([checkpoints / "alpha.pt"], models_dir=checkpoints, data_dir=tmp_path)
    assert list(models) == ["alpha", "beta", "deepatt-complex"]  # alpha offered once
    assert models["deepatt-complex"].origin == "zoo: deepatt-complex"


def test_serve_without_models_is_a_one_line_error(tmp_path, capsys):
    from crmnet.cli import main

    assert main(["serve", "--data-dir", str(tmp_path)]) == 2
    assert "no models to serve" in capsys.readouterr().err
    assert main(["serve", "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "checkpoint file not found" in capsys.readouterr().err


def test_templates_and_static_files_are_package_data():
    from importlib.resources import files

    root = files("crmnet.serve")
    names = {p.name for p in (root / "templates").iterdir()} | {p.name for p in (root / "static").iterdir()}
    assert {"base.html", "job.html", "result_predict.html", "app.js", "style.css"} <= names


def test_invalid_characters_can_be_mapped_to_n_as_in_crmnet_predict(client):
    from crmnet.evaluation.predict import predict

    odd = SEQS[0][:50] + "U" + SEQS[0][51:]
    _, html = run(client, "/predict", {"sequences": odd, "model": "alpha", "invalid": "N"})
    expected = predict(client.app.state.models["alpha"].model, [odd], invalid="N")
    assert float(_values(html)[0]) == pytest.approx(float(expected[0]), rel=1e-5, abs=1e-9)
    assert "1 characters outside ACGTN were mapped to N" in html


# ------------------------------------------------------------------------------------------ mutate, evolve
def _tsv(text: str) -> list[dict]:
    header, *rows = text.splitlines()
    return [dict(zip(header.split("\t"), row.split("\t"))) for row in rows]


def test_mutate_gives_robustness_and_evolvability_of_crmnet_design(client):
    from crmnet.design.evolvability import evolvability
    from crmnet.design.mutagenesis import saturation_mutagenesis

    location, html = run(client, "/mutate", {"sequences": "\n".join(SEQS), "model": ["beta"], "epsilon": "0.0005"})
    for k, name in enumerate(("beta",)):
        rows = _tsv(client.get(f"{location}/files/evolvability_{k}.tsv").text)
        ev = evolvability(saturation_mutagenesis(client.app.state.models[name].model, SEQS), 0.0005)
        assert [float(r["robustness"]) for r in rows] == pytest.approx(ev.robustness, abs=1e-6)
        assert [r["max_gain_mutation"] for r in rows] == ev.gain_mutation
        assert [int(r["n_mutants"]) for r in rows] == [240] * 3  # 3 × the 80-nt variable region
        for figure in (f"vectors_{k}.png", f"robustness_{k}.png", f"heatmap_{k}.png"):
            assert client.get(f"{location}/files/{figure}").content[:4] == b"\x89PNG"
    assert html.count('alt="evolvability vectors"') == 1 and "robustness" in html


@pytest.mark.parametrize("data, message", [
    ({"sequences": "\n".join(_sequences(6)), "model": "alpha"}, "more than 5 sequences"),
    ({"sequences": SEQS[0], "model": "alpha", "epsilon": "-1"}, "epsilon -1 lies outside"),
])
def test_mutate_errors(client, data, message):
    r = client.post("/mutate", data=data)
    assert r.status_code == 400 and message in _error(r.text)


def test_evolve_sswm_on_two_models_climbs_the_objective(client):
    data = {"sequences": SEQS[0], "model_a": "alpha", "model_b": "beta", "objective": "A - B",
            "mode": "sswm", "generations": "3", "direction": "max"}
    location, html = run(client, "/evolve", data)
    rows = _tsv(client.get(location + "/files/trajectory.tsv").text)
    for r in rows:
        assert float(r["objective"]) == pytest.approx(float(r["prediction_A"]) - float(r["prediction_B"]), abs=2e-6)
    for lineage in ("0",):
        path = [float(r["objective"]) for r in rows if r["lineage"] == lineage]
        assert len(path) >= 2 and all(b > a for a, b in itertools.pairwise(path))  # SSWM improves at every step
        last = [r for r in rows if r["lineage"] == lineage][-1]
        assert int(last["n_mutations"]) == int(last["generation"])  # one mutation per step
    assert client.get(location + "/files/trajectory.png").content[:4] == b"\x89PNG"
    assert "A = alpha, B = beta" in html


def test_evolve_ga_reaches_a_reachable_target_and_is_reproducible(client):
    from crmnet.evaluation.predict import predict

    models = client.app.state.models
    # An untrained model predicts near 0, the edge of the assay's range [0, 17]; A - B ranges over [-17, 17].
    start = float(predict(models["alpha"].model, SEQS[:1])[0] - predict(models["beta"].model, SEQS[:1])[0])
    target = start + 0.0005  # a small step from the start: reachable
    data = {"sequences": SEQS[0], "model_a": "alpha", "model_b": "beta", "objective": "A - B", "mode": "ga",
            "generations": "15", "target": f"{target}", "tolerance": "0.0003", "population": "20",
            "mutation_rate": "0.02", "seed": "5"}
    first, _ = run(client, "/evolve", data)
    second, _ = run(client, "/evolve", data)
    a, b = (client.get(loc + "/files/trajectory.tsv").text for loc in (first, second))
    assert a == b
    best = min(abs(float(r["objective"]) - target) for r in _tsv(a))
    assert best <= 0.0003


@pytest.mark.parametrize("data, message", [
    ({"mode": "ga"}, "GA target is needed with the genetic algorithm"),  # the page's words, not the CLI's
    ({"objective": "A - C"}, "names 'C', which is not a model"),
    ({"objective": "__import__('os')"}, "only model names, numbers"),
    ({"generations": "21"}, "generations 21 lies outside [1, 20]"),
    ({"mode": "drift", "population": "30", "sequences": "\n".join(SEQS[:2])}, "more than the limit of 40"),
    ({"mode": "walk"}, "mode 'walk' must be one of"),
    ({"model_b": "gamma"}, "no model 'gamma'"),
    ({"mode": "ga", "target": "99"}, "lies outside the objective's range"),
])
def test_evolve_errors(client, data, message):
    form = {"sequences": SEQS[0], "model_a": "alpha", **data}
    r = client.post("/evolve", data=form, follow_redirects=False)
    if r.status_code == 303:  # checked when the job starts: the job page says it
        status = wait(client, r.headers["location"])
        assert status["state"] == "failed" and message in status["error"]
        assert message in _error(client.get(r.headers["location"]).text)
    else:
        assert r.status_code == 400 and message in _error(r.text)


def test_user_text_is_escaped_in_the_page(client):
    _, html = run(client, "/predict", {"sequences": f">x<script>alert(1)</script>\n{SEQS[0]}\n", "model": "alpha"})
    assert "<script>alert" not in html and "x&lt;script&gt;alert(1)&lt;/script&gt;" in html
