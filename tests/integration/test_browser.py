"""The viewers in a real JupyterLab 4 driven by headless Chromium (Playwright, sync API).

A temporary folder holds a small notebook showing both viewers on tiny data. It is first executed by
nbclient and saved (as papermill does), then opened in JupyterLab: the saved outputs must show the
static pictures (the notebook is not trusted, so no widget). Then Run > Run All Cells, and the live
widgets must load, react to the frame slider and the compare dropdown, keep every control usable at
1000 px and 1400 px wide (file browser open), and leave no error in the browser console.

A second test opens notebook 08 (comparing runs) as papermill leaves it, on two hand-made run folders of tiny
videos, checks its tables and pictures, runs all its cells and drives the side-by-side viewer.

Needs Debian's chromium (or FUTURESEG_CHROMIUM=/path), jupyterlab and playwright; skipped when one is
missing unless FUTURESEG_REQUIRE_BROWSER=1 (CI), which turns the skip into a failure.
FUTURESEG_SCREENSHOTS=1 also writes docs/widgets_1000.png and docs/widgets_1400.png.
On failure, screenshots and the server log are left in the test's tmp_path.
"""

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
WIDTHS = (1000, 1400)
MIN_TRACK = 100  # px: a slider track narrower than this is not usable for 22 frames

SETUP = """\
import numpy as np

from lib.viz.widgets import compare_viewer, video_viewer

# 3 tiny videos of 22 frames: a square of class 5 + v moving right over a grey gradient
N, T, H, W = 3, 22, 40, 60
frames = np.zeros((N, T, H, W, 3), np.uint8)
frames[:] = np.linspace(40, 200, W).astype(np.uint8)[:, None]
masks = np.zeros((N, T, H, W), np.uint8)
for v in range(N):
    for t in range(T):
        masks[v, t, 8 + 6 * v : 20 + 6 * v, 2 * t : 2 * t + 12] = 5 + v
        frames[v, t][masks[v, t] > 0] = (220, 60 + 60 * v, 40)
scores = [0.6, 0.2, 0.9]"""
VIDEO_CELL = "viewer = video_viewer(frames, masks, [1000, 1001, 1002], scale=3)\nviewer"
COMPARE_CELL = (
    "compare = compare_viewer(\n"
    '    frames[:, 21], masks[:, 21], masks[:, 15], [1000, 1001, 1002], order="worst", scores=scores, scale=3\n'
    ")\ncompare"
)


def _chromium():
    found = os.environ.get("FUTURESEG_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    return found if found and os.access(found, os.X_OK) else None


def _requirements():
    """(chromium path, sync_playwright) or skip (fail under FUTURESEG_REQUIRE_BROWSER=1) saying what is missing."""
    missing = []
    chromium = _chromium()
    if chromium is None:
        missing.append("chromium (apt-get install chromium, or set FUTURESEG_CHROMIUM)")
    if importlib.util.find_spec("jupyterlab") is None:
        missing.append("jupyterlab (pip install jupyterlab)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
        missing.append("playwright (pip install playwright)")
    if missing:
        msg = "browser test needs " + ", ".join(missing)
        if os.environ.get("FUTURESEG_REQUIRE_BROWSER") == "1":
            pytest.fail(msg + " (FUTURESEG_REQUIRE_BROWSER=1)")
        pytest.skip(msg)
    return chromium, sync_playwright


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp):
    """The server's (and its kernels') environment: this repo importable, Jupyter state kept in tmp."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    for var, sub in [
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("JUPYTERLAB_SETTINGS_DIR", "settings"),
        ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
        ("IPYTHONDIR", "ipython"),
    ]:
        env[var] = str(tmp / sub)
    # no news / update toast over the notebook, no request leaving the machine
    notes = tmp / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notes.parent.mkdir(parents=True, exist_ok=True)
    notes.write_text('{"fetchNews": "false", "checkForUpdates": false}')
    return env


def _write_executed_notebook(folder, env):
    """The notebook, executed and saved the way papermill leaves it (outputs, no widget state, unsigned)."""
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in (SETUP, VIDEO_CELL, COMPARE_CELL)]
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute(env=env, cwd=str(folder))
    path = folder / "viewers.ipynb"
    nbformat.write(nb, path)
    return path


def _start_lab(folder, env, log_path):
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        f"--ServerApp.root_dir={folder}",
        "--LabApp.extension_manager=readonly",
    ]
    if os.geteuid() == 0:  # CI and containers run as root
        cmd.append("--allow-root")
    log = open(log_path, "w")  # noqa: SIM115 (closed with the server)
    proc = subprocess.Popen(cmd, env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=2):
                return proc, log, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                _stop(proc, log)
                pytest.fail(f"JupyterLab did not start:\n{Path(log_path).read_text()[-3000:]}")
            time.sleep(0.3)


def _stop(proc, log):
    """Stop the server and its kernels (its own process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    log.close()


@pytest.fixture
def lab(tmp_path):
    """(url, folder) of a JupyterLab serving the executed notebook; the server is stopped at the end."""
    chromium, sync_playwright = _requirements()
    folder = tmp_path / "lab"
    folder.mkdir()
    env = _env(tmp_path / "jupyter")
    _write_executed_notebook(folder, env)
    proc, log, url = _start_lab(folder, env, tmp_path / "server.log")
    try:
        yield url, chromium, sync_playwright
    finally:
        _stop(proc, log)


# ------------------------------------------------------------------------------------------------
# page helpers
# ------------------------------------------------------------------------------------------------
def _cell_output(page, i):
    """The output (prompt and rendered output) of code cell i."""
    return page.locator(".jp-Notebook .jp-CodeCell").nth(i).locator(".jp-OutputArea-child")


def _loaded(img):
    return img.evaluate("e => e.complete && e.naturalWidth > 0 && e.naturalHeight > 0")


def _wait(predicate, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _open_file_browser(page):
    if not page.locator("#filebrowser").is_visible():
        page.locator('.jp-SideBar [data-id="filebrowser"]').click()
    page.locator("#filebrowser").wait_for(state="visible")


def _check_layout(page, width):
    """Every control of both viewers inside its output, slider tracks > MIN_TRACK px, pictures loaded."""
    page.set_viewport_size({"width": width, "height": 1000})
    _open_file_browser(page)
    page.wait_for_timeout(500)  # Lumino relayout after the resize
    for i, sliders in ((1, ["frame t", "overlay"]), (2, ["rank"])):
        out = _cell_output(page, i)
        box = out.locator(".jp-OutputArea-output").bounding_box()
        controls = out.locator(".widget-dropdown, .widget-play, .widget-hslider")
        assert controls.count() == len(sliders) + 1 + (i == 1)
        for k in range(controls.count()):
            c = controls.nth(k).bounding_box()
            name = controls.nth(k).get_attribute("class")
            assert c["width"] > 40 and c["x"] >= box["x"] - 1 and c["x"] + c["width"] <= box["x"] + box["width"] + 1, (
                f"{width}px: control {name} at {c} is cut off by its output {box}"
            )
        for label in sliders:
            slider = out.locator(".widget-hslider", has=page.locator(".widget-label", has_text=label))
            track = slider.locator(".slider-container").bounding_box()
            assert track["width"] > MIN_TRACK, f"{width}px: slider {label!r} track is {track['width']:.0f}px"
            assert slider.locator(".widget-label").is_visible()
        assert out.locator("select").bounding_box()["width"] > 100
        img = out.locator("img.widget-image")
        assert _loaded(img) and img.bounding_box()["x"] + img.bounding_box()["width"] <= box["x"] + box["width"] + 1


def _screenshot_viewers(page, path):
    """The notebook scrolled so that both viewers show, cropped to the window's height they need."""
    _cell_output(page, 1).scroll_into_view_if_needed()
    first = _cell_output(page, 1).bounding_box()
    last = _cell_output(page, 2).bounding_box()
    page.evaluate("dy => document.querySelector('.jp-WindowedPanel-outer').scrollBy(0, dy)", first["y"] - 150)
    page.wait_for_timeout(200)
    last = _cell_output(page, 2).bounding_box()
    height = min(page.viewport_size["height"], int(last["y"] + last["height"] + 16))
    page.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": page.viewport_size["width"], "height": height})


def _page(p, chromium, errors):
    """(browser, page): headless Chromium at 1400 x 1000 whose console errors and page errors go into ``errors``."""
    browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.set_default_timeout(30_000)
    return browser, page


def test_viewers_in_jupyterlab(lab, tmp_path):
    url, chromium, sync_playwright = lab
    errors = []
    with sync_playwright() as p:
        browser, page = _page(p, chromium, errors)
        try:
            page.goto(f"{url}/lab/tree/viewers.ipynb")
            page.locator(".jp-Notebook .jp-CodeCell").nth(2).wait_for()

            # reopened executed notebook: a static picture per viewer, not the widget's repr as text
            for i in (1, 2):
                out = _cell_output(page, i)
                img = out.locator(".jp-RenderedImage img")
                img.wait_for()
                assert _loaded(img), f"cell {i}: static picture did not load"
                assert "Viewer(children" not in out.inner_text()

            # Run > Run All Cells (once the kernel is idle): the live widgets replace the pictures
            page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').first.wait_for()
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
            for i in (1, 2):
                img = _cell_output(page, i).locator("img.widget-image")
                img.wait_for(timeout=60_000)
                _wait(lambda img=img: _loaded(img), f"cell {i}: widget image")
                assert _cell_output(page, i).locator(".jp-RenderedImage").count() == 0, "live: widget, not the PNG"

            # the frame slider moves the picture and the caption
            out = _cell_output(page, 1)
            img, caption = out.locator("img.widget-image"), out.locator(".widget-html-content")
            src, text = img.get_attribute("src"), caption.inner_text()
            assert "t=0 " in text
            frame = out.locator(".widget-hslider", has=page.locator(".widget-label", has_text="frame t"))
            track = frame.locator(".slider-container").bounding_box()
            page.mouse.click(track["x"] + 0.6 * track["width"], track["y"] + track["height"] / 2)
            _wait(lambda: img.get_attribute("src") != src and caption.inner_text() != text, "frame slider redraw")
            t = int(frame.locator(".widget-readout").inner_text())
            assert t > 0 and f"t={t} " in caption.inner_text()
            _wait(lambda: _loaded(img), "redrawn frame")

            # the compare view's ranking follows its dropdown (order worst first: 1001, 1000, 1002)
            out = _cell_output(page, 2)
            img, caption = out.locator("img.widget-image"), out.locator(".widget-html-content")
            rank = out.locator(".widget-hslider", has=page.locator(".widget-label", has_text="rank"))
            assert rank.locator(".widget-readout").inner_text() == "0" and "video_01001" in caption.inner_text()
            src = img.get_attribute("src")
            select = out.locator("select")
            labels = select.locator("option").all_inner_texts()
            assert [x.split()[0] for x in labels] == ["video_01001", "video_01000", "video_01002"], labels
            select.select_option(index=2)
            _wait(lambda: rank.locator(".widget-readout").inner_text() == "2", "rank to follow the dropdown")
            _wait(lambda: img.get_attribute("src") != src and "video_01002" in caption.inner_text(), "compare redraw")
            _wait(lambda: _loaded(img), "redrawn comparison")

            for width in WIDTHS:
                _check_layout(page, width)
                if os.environ.get("FUTURESEG_SCREENSHOTS") == "1":
                    _screenshot_viewers(page, ROOT / "docs" / f"widgets_{width}.png")
            assert not errors, "errors in the browser console:\n" + "\n".join(errors)
        except BaseException:
            page.screenshot(path=str(tmp_path / "failure.png"))
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 1000})
                page.wait_for_timeout(300)
                page.screenshot(path=str(tmp_path / f"failure_{width}.png"))
            raise
        finally:
            browser.close()


# ------------------------------------------------------------------------------------------------
# notebook 08, comparing two runs
# ------------------------------------------------------------------------------------------------
COMPARE_NOTEBOOK = ROOT / "notebooks" / "08_compare_runs.ipynb"


def _compare_helpers():
    """tests/notebooks/test_compare_runs.py, whose ``make_run`` writes a run folder by hand."""
    spec = importlib.util.spec_from_file_location("compare_run_helpers", ROOT / "tests/notebooks/test_compare_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def compare_lab(tmp_path):
    """(url, chromium, sync_playwright, metrics) of a JupyterLab serving notebook 08 executed by papermill on two
    hand-made runs of 3 tiny val videos (a: frame 11 copied, b: the truth moved 4 pixels), as run_all.sh leaves
    it; the folder links the clone as ``futureseg`` so that the set-up cell finds it when the cells are rerun."""
    chromium, sync_playwright = _requirements()
    import numpy as np
    import papermill
    from conftest import write_video

    from lib.data.source import DataSource

    helpers = _compare_helpers()
    data = tmp_path / "data"
    for i in (1000, 1001, 1002):
        write_video(data / "val" / f"video_{i:05d}", seed=i)
    val = DataSource(str(data)).split("val", progress=False)
    true = np.asarray(val.masks[:, 21])
    logs = {"unet": [(2.0, 0.3), (1.2, 0.6)], "simvp": [(1.0, 0.2), (0.8, 0.3)]}
    a = helpers.make_run(tmp_path / "runs" / "a", val.ids, true, {"objects": np.asarray(val.masks[:, 10])}, logs=logs)
    b = helpers.make_run(
        tmp_path / "runs" / "b",
        val.ids,
        true,
        {"objects": np.roll(true, 4, axis=-1)},
        params={"04_simvp": {"hid_S": 8}},
        logs={"unet": [(2.1, 0.35), (1.1, 0.62)]},
    )
    folder = tmp_path / "lab"
    folder.mkdir()
    (folder / "futureseg").symlink_to(ROOT)
    env = _env(tmp_path / "jupyter")
    out = tmp_path / "out"
    papermill.execute_notebook(
        str(COMPARE_NOTEBOOK),
        str(folder / COMPARE_NOTEBOOK.name),
        parameters={"data_root": str(data), "run_dir": str(out), "runs": [str(a), str(b)]},
        cwd=str(ROOT),
        progress_bar=False,
    )
    metrics = json.loads((out / "metrics" / "08_compare_runs.json").read_text())
    proc, log, url = _start_lab(folder, env, tmp_path / "server.log")
    try:
        yield url, chromium, sync_playwright, metrics
    finally:
        _stop(proc, log)


def test_compare_notebook_in_jupyterlab(compare_lab, tmp_path):
    """Notebook 08 as papermill leaves it (tables and pictures), then Run All: the run picker holds both runs, the
    side-by-side viewer loads and follows its dropdown (largest IoU difference first), no error anywhere."""
    url, chromium, sync_playwright, metrics = compare_lab
    order = [f"video_{v['id']:05d}" for v in metrics["side_by_side"]["largest"]]
    errors = []
    with sync_playwright() as p:
        browser, page = _page(p, chromium, errors)
        try:
            page.goto(f"{url}/lab/tree/{COMPARE_NOTEBOOK.name}")
            cells = page.locator(".jp-Notebook .jp-CodeCell")
            cells.last.wait_for()
            outputs = page.locator(".jp-Notebook .jp-OutputArea-output")
            # the executed notebook: both tables rendered, pictures of the curves, the scatter and the viewer
            tables = page.locator(".jp-OutputArea-output table")
            _wait(lambda: tables.count() >= 2, "the parameter and metric tables")
            assert "04_simvp.hid_S" in tables.first.inner_text()
            pictures = page.locator(".jp-OutputArea-output.jp-RenderedImage img")
            _wait(lambda: pictures.count() >= 3, "curves, per-video scatter and the viewer's picture")
            for k in range(pictures.count()):
                pictures.nth(k).scroll_into_view_if_needed()
                _wait(lambda k=k: _loaded(pictures.nth(k)), f"picture {k}")

            page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').first.wait_for()
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
            viewer = page.locator(".jp-OutputArea-child", has=page.locator("img.widget-image"))
            viewer.first.wait_for(timeout=120_000)
            img = viewer.first.locator("img.widget-image")
            _wait(lambda: _loaded(img), "the side-by-side viewer's image")
            last = cells.last.locator(".jp-InputPrompt")  # Run All stops at an error, leaving the rest unrun
            _wait(lambda: re.fullmatch(r"\[\d+\]:", (last.text_content() or "").strip()), "every cell to run", 120)
            page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').first.wait_for()
            picker = page.locator("select[multiple]")
            chosen = picker.evaluate("e => Array.from(e.selectedOptions).map(o => o.textContent)")
            assert [Path(c).name for c in chosen] == ["a", "b"], chosen

            viewer.first.scroll_into_view_if_needed()
            select = viewer.first.locator("select")
            caption = viewer.first.locator(".widget-html-content")
            labels = select.locator("option").all_inner_texts()
            assert [x.split()[0] for x in labels] == order, labels
            assert order[0] in caption.inner_text()
            src = img.get_attribute("src")
            select.select_option(index=1)
            _wait(lambda: img.get_attribute("src") != src and order[1] in caption.inner_text(), "viewer redraw")
            _wait(lambda: _loaded(img), "redrawn comparison")

            text = "\n".join(outputs.all_text_contents())
            assert "Traceback" not in text and "Error" not in text, text[-3000:]
            assert not errors, "errors in the browser console:\n" + "\n".join(errors)
        except BaseException:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()
