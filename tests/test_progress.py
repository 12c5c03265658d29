import io

from crmnet.progress import progress


def test_log_lines_when_not_a_terminal():
    out = io.StringIO()
    with progress(total=10, desc="predict", unit="seq", file=out, interval=0.0) as bar:
        for _ in range(10):
            bar.update(1)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("predict: 10% 1/10 seq at ")
    assert "ETA" in lines[0]
    assert lines[-1].endswith("(done)") and "10/10" in lines[-1]
    assert "\r" not in out.getvalue()  # no bar drawing into a log file


def test_interval_limits_the_lines_and_disable_is_silent():
    out = io.StringIO()
    with progress(total=1000, desc="x", file=out, interval=3600.0) as bar:
        bar.update(1000)
    assert len(out.getvalue().splitlines()) == 1  # only the closing line
    quiet = io.StringIO()
    with progress(total=5, file=quiet, enable=False) as bar:
        bar.update(5)
    assert quiet.getvalue() == ""


def test_unknown_total_has_no_eta():
    out = io.StringIO()
    with progress(desc="read", unit="B", unit_scale=True, file=out, interval=0.0) as bar:
        bar.update(2048)
    first = out.getvalue().splitlines()[0]
    assert first.startswith("read: 2.05k B at") and "ETA" not in first
