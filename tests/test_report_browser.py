"""report.html opens offline in a real browser: the figures decode and the summary table renders.

Headless Chromium loads the page from file:// with every network path closed (a proxy on a
port where nothing listens, host resolution disabled), takes a screenshot, and dumps the DOM
after the load event. The page's own script marks <body data-images-loaded="all"> only when
every <img> decoded with a non-zero natural width, so the dump proves the base64 figures
rendered. The screenshot is kept as test-artifacts/report.png for a human to look at.

Needs Debian's `chromium` package; skipped without it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from test_report import ACCURACY, write_results_tree

from svar.report import make_report

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")]

OFFLINE_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"]


def chromium(*args, profile: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return subprocess.run([CHROMIUM, *OFFLINE_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=120, env=env, check=True)


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results")
    metrics_csv, run_files = write_results_tree(root)
    return make_report(metrics_csv, run_files, root / "report")["html"]


def test_screenshot_of_the_report_is_not_blank(report_html, tmp_path):
    from PIL import Image

    shot = tmp_path / "report.png"
    chromium(f"--screenshot={shot}", "--window-size=1280,2400", report_html.as_uri(), profile=tmp_path / "profile")
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    shutil.copy(shot, artifacts / "report.png")
    assert shot.stat().st_size > 10_000
    with Image.open(shot) as image:
        assert image.size == (1280, 2400)
        grey = image.convert("L")
        dark = sum(grey.histogram()[:128])
    assert dark > 5_000, "the page rendered (almost) nothing"


def test_rendered_dom_has_the_loaded_images_and_the_summary_table(report_html, tmp_path):
    dom = chromium("--dump-dom", "--virtual-time-budget=5000", report_html.as_uri(),
                   profile=tmp_path / "profile").stdout
    body = re.search(r"<body[^>]*>", dom).group()
    assert 'data-images-loaded="all"' in body, body
    figures = len(list(report_html.parent.glob("*.png")))  # every figure the report drew is on the page
    assert figures == 7
    assert f'data-image-count="{figures}"' in body, body
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', dom)) == figures
    assert '<table class="summary"' in dom
    for method in ACCURACY:
        assert f"<td>{method}</td>" in dom
