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
from svar.report.figures import FIGURES

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
    assert figures == len(FIGURES)
    assert f'data-image-count="{figures}"' in body, body
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', dom)) == figures
    assert '<table class="summary"' in dom
    for method in ACCURACY:
        assert f"<td>{method}</td>" in dom


# Run after the load event: the RANDOM flag's box (whatever element holds that text in the
# provenance list) against every other entry's box, and what is drawn at the centre of the
# teacher model's text; the answers go onto <body> for --dump-dom to show.
BADGE_PROBE = """
<script>
window.addEventListener("load", function () {
  var entries = Array.prototype.slice.call(document.querySelectorAll("#provenance dt, #provenance dd"));
  var flag = Array.prototype.slice.call(document.querySelectorAll("#provenance dd *"))
    .filter(function (e) { return e.textContent.trim() === "RANDOM"; })[0];
  flag.scrollIntoView({block: "center"});  // elementFromPoint sees the viewport only
  var box = flag.getBoundingClientRect();
  var own = flag.closest("dd");
  var hit = entries.filter(function (e) {
    if (e === own || e === own.previousElementSibling) return false;
    var r = e.getBoundingClientRect();
    return r.bottom > box.top && r.top < box.bottom && r.right > box.left && r.left < box.right;
  });
  var model = entries.filter(function (e) { return e.textContent === "teacher model"; })[0].nextElementSibling;
  var range = document.createRange();
  range.selectNodeContents(model);
  var text = range.getBoundingClientRect();
  var seen = document.elementFromPoint(text.left + text.width / 2, text.top + text.height / 2);
  document.body.setAttribute("data-badge-overlaps", String(hit.length));
  document.body.setAttribute("data-teacher-model-visible", String(model.contains(seen)));
});
</script>
"""


def test_the_random_badge_covers_no_other_provenance_entry(tmp_path):
    """Rendered: the RANDOM flag beside the teacher's weights overlaps no other entry of the
    provenance list, and the teacher model's name above it is what the page shows at its place."""
    root = tmp_path / "results"
    metrics_csv, run_files = write_results_tree(root, dataset="ucf101", random_teacher=True)
    page = make_report(metrics_csv, run_files, root / "report")["html"]
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("</body>", BADGE_PROBE + "</body>"))
    dom = chromium("--dump-dom", "--virtual-time-budget=5000", "--window-size=1280,2400", probed.as_uri(),
                   profile=tmp_path / "profile").stdout
    body = re.search(r"<body[^>]*>", dom).group()
    assert 'data-badge-overlaps="0"' in body, body
    assert 'data-teacher-model-visible="true"' in body, body
