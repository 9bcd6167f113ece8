"""report.html of a real run, checked in a real headless Chromium: it renders and its images load."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slurmgen.report import charts, write_report
from tests.conftest import REPO, run_slurmgen

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="no /usr/bin/chromium: the report is checked in Debian's headless Chromium "
           "(apt-get install -y chromium fonts-dejavu-core)")

# Appended to a copy of the report: once the page has loaded, write into the DOM whether
# every image decoded (complete and with a natural width), for --dump-dom to print.
IMAGE_CHECK = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute("alt"));
  const out = document.createElement("pre");
  out.id = "image-check";
  out.textContent = JSON.stringify({images: images.length, broken: broken});
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("report") / "run"
    run_slurmgen("workflow=nr", "dataset.limit=60", f"run.dir={run_dir}", "llm.time_scale=300")
    assert (run_dir / "summary.json").exists()
    return run_dir


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    argv = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
            f"--user-data-dir={tmp / 'chromium-profile'}", "--virtual-time-budget=5000", *args]
    return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=120)


def image_check(page: Path, tmp: Path) -> dict[str, object]:
    """Load a copy of ``page`` (beside it, so relative image paths resolve) with IMAGE_CHECK."""
    probe = page.with_name(f".check-{page.name}")
    probe.write_text(page.read_text().replace("</body>", IMAGE_CHECK + "</body>"))
    try:
        proc = chromium("--dump-dom", probe.as_uri(), tmp=tmp)
    finally:
        probe.unlink()
    found = re.search(r'<pre id="image-check">(.*?)</pre>', proc.stdout)
    assert found, f"chromium did not render the page (rc {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert "<h1>slurmgen report: nr" in proc.stdout
    return json.loads(found.group(1))


def test_report_tables_match_summary(run_dir: Path) -> None:
    pytest.importorskip("matplotlib")
    path = write_report(run_dir)
    assert path == run_dir.resolve() / "report.html"
    text = path.read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert f"<td>tasks_total</td><td class=\"n\">{summary['tasks_total']}</td>" in text
    assert "acceptance_rate" in text and "filter_by_en" in text and "<td>score</td>" in text
    for title in ("Throughput over time", "Termination reasons", "Tokens per role", "Role latency percentiles",
                  "Quality metric distribution"):
        assert f"<h2>{title}</h2>" in text
    assert text.count('<img src="data:image/png;base64,') == 5
    assert "could not be drawn" not in text and "no data for this chart" not in text


def test_report_without_matplotlib_still_has_the_tables(run_dir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("report*"))
    monkeypatch.setattr(charts, "available", lambda: "matplotlib is not installed (test); install it")
    text = write_report(copy).read_text()
    assert "matplotlib is not installed" in text and "<img" not in text
    assert "<td>tasks_total</td>" in text and "acceptance_rate" in text


def test_report_regenerates_from_the_command_line(run_dir: Path) -> None:
    pytest.importorskip("matplotlib")
    proc = subprocess.run([sys.executable, "-m", "slurmgen.report", str(run_dir), "--sibling-png"],
                          check=False, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(run_dir.resolve() / "report.html")
    assert sorted(p.name for p in (run_dir / "report").glob("*.png")) == [
        "quality.png", "reasons.png", "role_latency.png", "role_tokens.png", "throughput.png"]
    bad = subprocess.run([sys.executable, "-m", "slurmgen.report", str(run_dir / "nope")],
                         check=False, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert bad.returncode == 2 and "not a run directory" in bad.stderr


@needs_chromium
@pytest.mark.parametrize("embed", [True, False], ids=["embedded-png", "sibling-png"])
def test_report_renders_in_chromium_and_its_images_load(run_dir: Path, tmp_path: Path, embed: bool) -> None:
    pytest.importorskip("matplotlib")
    page = write_report(run_dir, embed=embed)
    result = image_check(page, tmp_path)
    assert result == {"images": 5, "broken": []}, result


@needs_chromium
def test_image_check_sees_a_broken_image(run_dir: Path, tmp_path: Path) -> None:
    """The check itself: a report whose PNG is missing is caught."""
    pytest.importorskip("matplotlib")
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("report*"))
    page = write_report(copy, embed=False)
    (copy / "report" / "quality.png").unlink()
    result = image_check(page, tmp_path)
    assert result == {"images": 5, "broken": ["Quality metric distribution"]}, result


@needs_chromium
def test_report_screenshot_is_not_blank(run_dir: Path, tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    image = pytest.importorskip("matplotlib.image")
    page = write_report(run_dir)
    shot = tmp_path / "report.png"
    proc = chromium("--window-size=1100,1800", f"--screenshot={shot}", page.as_uri(), tmp=tmp_path)
    assert shot.exists(), proc.stderr[-3000:]
    pixels = image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (1800, 1100)
    not_white = (pixels < 0.95).any(axis=-1).mean()
    colours = len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    assert not_white > 0.05 and colours > 50, (not_white, colours)  # text, charts and colour, not a blank page
