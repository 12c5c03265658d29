"""End to end: ``crmnet serve`` in a subprocess, driven by a real headless Chromium (Selenium + Debian's
chromium-driver). Paste two sequences, press Predict, read the values from the page and compare them with
``crmnet predict``; the page is saved as a screenshot in the test's temporary directory."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1200,1000")


def _browser() -> tuple[str, str]:
    """(chromium, chromedriver) paths, or skip saying what is missing."""
    pytest.importorskip("selenium", reason="selenium is not installed (pip install 'crmnet[serve]')")
    pytest.importorskip("uvicorn", reason="uvicorn is not installed (pip install 'crmnet[serve]')")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver "
                    "(apt-get install -y chromium chromium-driver)")
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, server: subprocess.Popen, seconds: float = 60.0) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"crmnet serve exited: {server.stderr.read().decode(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"crmnet serve did not listen on port {port} within {seconds} s")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("browser")


@pytest.fixture(scope="module")
def checkpoint(workdir):
    import torch

    from crmnet.models import build_model
    from crmnet.models.checkpoint import save_checkpoint

    torch.manual_seed(3)
    path = workdir / "tiny.pt"
    save_checkpoint(path, build_model("crmnet-tiny"))
    return path


@pytest.fixture(scope="module")
def server(checkpoint, workdir):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "crmnet", "serve", "--checkpoint", str(checkpoint), "--port",
                             str(port), "--data-dir", str(workdir / "no-data")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser(workdir):
    chromium, driver_path = _browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={workdir / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_predict_in_a_real_browser_matches_crmnet_predict(server, browser, checkpoint, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from crmnet.data.construct import LEFT_FLANK, RIGHT_FLANK

    rng = np.random.default_rng(7)
    seqs = [LEFT_FLANK + "".join(rng.choice(list("ACGT"), 80)) + RIGHT_FLANK for _ in range(2)]
    browser.get(server + "/predict")
    browser.find_element(By.ID, "sequences").send_keys("\n".join(seqs))
    browser.find_element(By.ID, "submit").click()
    table = WebDriverWait(browser, 60).until(ec.presence_of_element_located((By.ID, "predictions")))
    page_values = [cell.text for cell in table.find_elements(By.CSS_SELECTOR, "td.value")]
    browser.save_screenshot(str(tmp_path / "predict.png"))
    assert (tmp_path / "predict.png").stat().st_size > 0

    (tmp_path / "in.txt").write_text("\n".join(seqs) + "\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run([sys.executable, "-m", "crmnet", "predict", str(tmp_path / "in.txt"), "--checkpoint",
                    str(checkpoint), "--out", str(tmp_path / "out.tsv"), "--no-progress"], check=True, env=env,
                   capture_output=True)
    expected = [line.split("\t")[2] for line in (tmp_path / "out.tsv").read_text().splitlines()[1:]]
    assert len(page_values) == 2
    # the same numbers, up to float32 rounding in the last printed digit
    assert [float(v) for v in page_values] == pytest.approx([float(v) for v in expected], rel=1e-5, abs=1e-9)


def test_a_bad_paste_is_a_message_in_the_page(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server + "/predict")
    browser.find_element(By.ID, "sequences").send_keys("ACGTACGT\nACGUACGT")
    browser.find_element(By.ID, "submit").click()
    error = WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "error")))
    assert error.text.startswith("pasted text:2: invalid character 'U' at position 4 of the sequence")
