"""The viewers in a real JupyterLab 4 driven by headless Chromium (Playwright, sync API).

A temporary folder holds a small notebook showing both viewers on tiny data. It is first executed by
nbclient and saved (as papermill does), then opened in JupyterLab: the saved outputs must show the
static pictures (the notebook is not trusted, so no widget). Then Run > Run All Cells, and the live
widgets must load, react to the frame slider and the compare dropdown, keep every control usable at
1000 px and 1400 px wide (file browser open), and leave no error in the browser console.

Needs Debian's chromium (or FUTURESEG_CHROMIUM=/path), jupyterlab and playwright; skipped when one is
missing unless FUTURESEG_REQUIRE_BROWSER=1 (CI), which turns the skip into a failure.
FUTURESEG_SCREENSHOTS=1 also writes docs/widgets_1000.png and docs/widgets_1400.png.
On failure, screenshots and the server log are left in the test's tmp_path.
"""

import importlib.util
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


def test_viewers_in_jupyterlab(lab, tmp_path):
    url, chromium, sync_playwright = lab
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.set_default_timeout(30_000)
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
