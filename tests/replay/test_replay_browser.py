"""The HTML report in a real headless Chromium (Debian's `chromium` package): the page loads
offline, every chart is laid out with a size, and a screenshot comes out. Skips where Chromium
is not installed, unless AGENTLOAD_BROWSER=required (CI sets it when it could install one)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from run_samples import make_run

from replay import report_html
from replay.compare import compare

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("AGENTLOAD_BROWSER") == "required"

pytestmark = pytest.mark.skipif(
    BROWSER is None and not REQUIRED,
    reason="needs Chromium (apt-get install chromium); set AGENTLOAD_BROWSER=required to fail",
)


def chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    assert BROWSER is not None, "AGENTLOAD_BROWSER=required but no chromium on PATH"
    cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-extensions", "--disable-background-networking", "--hide-scrollbars",
           f"--user-data-dir={cwd / 'profile'}", *args]
    # its own process group: on a time-out the whole group goes, so no renderer child is left
    # holding the output pipes open (subprocess.run would then wait on them for ever)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"chromium did not finish in 240 s: {err.decode()[-2000:]}") from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # stray renderers outliving the browser
    if proc.returncode != 0:
        raise AssertionError(f"chromium exited {proc.returncode}: {err.decode()[-2000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(report_html.render(make_run()))
    # the DOM after layout: Chromium parsed every inline SVG as SVG, nothing was blocked
    dom = chromium("--dump-dom", page.as_uri(), cwd=tmp_path).stdout.decode()
    assert dom.count("<svg") == 11
    assert "P25 output speed per request" in dom
    assert "a single agent gets 53 tok/s" in dom
    shot = tmp_path / "report.png"
    chromium("--window-size=1400,2200", f"--screenshot={shot}", page.as_uri(), cwd=tmp_path)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == 1400  # IHDR width
    assert len(data) > 50_000  # charts drawn, not a blank page


def test_comparison_renders_in_headless_chromium(tmp_path: Path) -> None:
    a, b = make_run(name="h100"), make_run(name="b200", speed1=130.0, knee=48, watts=400.0)
    page = tmp_path / "compare.html"
    page.write_text(report_html.comparison(compare([a, b], ["h100", "b200"]), [a, b]))
    dom = chromium("--dump-dom", page.as_uri(), cwd=tmp_path).stdout.decode()
    assert dom.count("<svg") == 4
    assert "Settings that differ" in dom
