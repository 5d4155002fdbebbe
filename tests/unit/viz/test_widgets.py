"""The viewers build and redraw without a browser: setting a control's value fires its observers
synchronously, and the Image widget then holds the PNG of the pure panel function."""

import base64
import os
from pathlib import Path

import ipywidgets as widgets
import numpy as np
import pytest
from IPython.core.formatters import format_display_data

from lib.viz import plots as viz
from lib.viz.widgets import compare_viewer, video_viewer

H, W = 12, 18
ROOT = Path(__file__).resolve().parents[3]
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def _data(n=3, t=22, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n, t, H, W, 3), dtype=np.uint8)
    masks = rng.integers(0, 49, (n, 22, H, W), dtype=np.uint8)
    return frames, masks


def test_video_viewer_updates_image():
    frames, masks = _data()
    v = video_viewer(frames, masks, video_ids=np.array([1000, 1001, 1002]))
    assert isinstance(v, widgets.VBox)
    assert [o[0] for o in v.video.options] == ["video_01000", "video_01001", "video_01002"]
    assert v.image.value == viz.to_png_bytes(viz.frame_panel(frames[0, 0], masks[0, 0]))
    before = v.image.value
    v.frame.value = 5
    assert v.image.value != before
    assert v.image.value == viz.to_png_bytes(viz.frame_panel(frames[0, 5], masks[0, 5]))
    v.video.value = 2
    assert v.current() == (2, 5)
    assert v.image.value == viz.to_png_bytes(viz.frame_panel(frames[2, 5], masks[2, 5]))
    assert "video_01002" in v.info.value and "t=5" in v.info.value
    v.alpha.value = 1.0
    assert v.image.value == viz.to_png_bytes(viz.frame_panel(frames[2, 5], masks[2, 5], alpha=1.0))


@pytest.mark.parametrize("t", [11, 22])
def test_play_bounds_and_link(t):
    frames, _ = _data(n=2, t=t)
    v = video_viewer(frames)
    assert v.frame.min == 0 and v.frame.max == t - 1
    assert v.play.min == 0 and v.play.max == t - 1
    v.play.value = t - 1  # playback moves the slider (and the picture)
    assert v.frame.value == t - 1
    assert v.image.value == viz.to_png_bytes(frames[0, t - 1])
    v.frame.value = 3
    assert v.play.value == 3


def test_video_viewer_without_masks_and_memmap(tmp_path):
    frames, _ = _data(n=2, t=11)
    mm = np.lib.format.open_memmap(tmp_path / "f.npy", mode="w+", dtype=np.uint8, shape=frames.shape)
    mm[:] = frames
    mm.flush()
    ro = np.load(tmp_path / "f.npy", mmap_mode="r")
    v = video_viewer(ro, None)
    assert v.alpha.disabled
    assert v.image.value == viz.to_png_bytes(frames[0, 0])
    v.video.value = 1
    v.frame.value = 10
    assert v.image.value == viz.to_png_bytes(frames[1, 10])
    assert "no mask" in v.info.value and "input" in v.info.value
    assert [o[0] for o in v.video.options] == ["#0", "#1"]


def test_video_viewer_rejects_bad_shapes():
    frames, masks = _data()
    with pytest.raises(ValueError):
        video_viewer(frames[0])
    with pytest.raises(ValueError):
        video_viewer(frames, masks[:2])
    with pytest.raises(ValueError):
        video_viewer(frames, None, video_ids=[1, 2])


def test_compare_viewer_order_and_image():
    frames, masks = _data(n=4)
    img, true, pred = frames[:, 21], masks[:, 21], masks[:, 10]
    scores = np.array([0.5, 0.1, np.nan, 0.9])
    ids = [1000, 1001, 1002, 1003]
    c = compare_viewer(img, true, pred, ids, order="worst", scores=scores)
    assert isinstance(c, widgets.VBox)
    assert c.order == [1, 0, 3, 2]  # unscored last
    assert [o[1] for o in c.video.options] == [1, 0, 3, 2]
    assert c.video.options[0][0] == "video_01001  IoU 0.100"
    assert c.video.value == 1
    assert c.image.value == viz.to_png_bytes(viz.compare_panel(img[1], true[1], pred[1]))
    c.rank.value = 2
    assert c.video.value == 3
    assert c.image.value == viz.to_png_bytes(viz.compare_panel(img[3], true[3], pred[3]))
    c.video.value = 0
    assert c.rank.value == 1 and "IoU 0.500" in c.info.value
    best = compare_viewer(img, true, pred, ids, order="best", scores=scores)
    assert best.order == [3, 0, 1, 2]
    plain = compare_viewer(None, true, pred)
    assert plain.order == [0, 1, 2, 3]
    assert plain.image.value == viz.to_png_bytes(viz.compare_panel(None, true[0], pred[0]))
    assert compare_viewer(img, true, pred, order=[2, 0]).order == [2, 0]
    with pytest.raises(ValueError):
        compare_viewer(img, true, pred, order="worst")  # needs scores
    with pytest.raises(ValueError):
        compare_viewer(img, true, pred[:2])


def _png_of(bundle):
    return base64.b64decode(bundle["image/png"])


def test_display_bundle_holds_static_picture_of_first_view():
    """Displaying a viewer puts a PNG of the shown panel next to the widget in the same output."""
    frames, masks = _data()
    v = video_viewer(frames, masks, video_ids=[1000, 1001, 1002])
    data, _ = format_display_data(v)
    assert WIDGET_MIME in data and data[WIDGET_MIME]["model_id"] == v.model_id
    assert _png_of(data) == viz.to_png_bytes(viz.frame_panel(frames[0, 0], masks[0, 0])) == v.static_png()
    assert "VideoViewer(children" not in data["text/plain"] and "video_01000 t=0" in data["text/plain"]
    v.frame.value = 4  # displayed again later: the picture shown then
    assert _png_of(format_display_data(v)[0]) == viz.to_png_bytes(viz.frame_panel(frames[0, 4], masks[0, 4]))

    img, true, pred = frames[:, 21], masks[:, 21], masks[:, 10]
    c = compare_viewer(img, true, pred, order="worst", scores=[0.5, 0.1, 0.9])
    data, _ = format_display_data(c)
    assert WIDGET_MIME in data
    assert _png_of(data) == viz.to_png_bytes(viz.compare_panel(img[1], true[1], pred[1]))
    c.close()
    assert format_display_data(c)[0].keys() == {"text/plain"}  # closed: no widget, no picture


def test_controls_wrap_and_sliders_keep_a_minimum_width():
    frames, masks = _data()
    v = video_viewer(frames, masks)
    assert [r.layout.flex_flow for r in v.rows] == ["row wrap", "row wrap"]
    assert v.frame in v.rows[1].children and v.play in v.rows[1].children  # the frame slider gets a row
    for slider in (v.frame, v.alpha):
        assert int(slider.layout.min_width.removesuffix("px")) >= 240
    c = compare_viewer(None, masks[:, 0], masks[:, 1])
    assert c.rows[0].layout.flex_flow == "row wrap"
    assert int(c.rank.layout.min_width.removesuffix("px")) >= 240
    assert v.image.layout.max_width == c.image.layout.max_width == "100%"


VIEWER_NB = """\
import numpy as np
from lib.viz.widgets import compare_viewer, video_viewer
rng = np.random.default_rng(0)
frames = rng.integers(0, 256, (2, 11, 12, 18, 3), dtype=np.uint8)
masks = rng.integers(0, 49, (2, 11, 12, 18), dtype=np.uint8)
"""


def test_executed_notebook_keeps_a_picture_of_each_viewer(tmp_path):
    """An executed notebook (papermill, reopened untrusted, nbconvert, GitHub) has a PNG for each viewer cell."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(VIEWER_NB),
        nbformat.v4.new_code_cell("viewer = video_viewer(frames, masks)\nviewer"),
        nbformat.v4.new_code_cell(
            'compare_viewer(frames[:, 10], masks[:, 10], masks[:, 0], order="worst", scores=[0.2, 0.1])'
        ),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute(env=env)
    path = tmp_path / "executed.ipynb"
    nbformat.write(nb, path)
    saved = nbformat.read(path, as_version=4)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 11, 12, 18, 3), dtype=np.uint8)
    masks = rng.integers(0, 49, (2, 11, 12, 18), dtype=np.uint8)
    expected = [
        viz.to_png_bytes(viz.frame_panel(frames[0, 0], masks[0, 0])),
        viz.to_png_bytes(viz.compare_panel(frames[1, 10], masks[1, 10], masks[1, 0])),
    ]
    for cell, png in zip(saved.cells[1:], expected):
        (out,) = [o for o in cell.outputs if o.output_type in ("execute_result", "display_data")]
        assert WIDGET_MIME in out.data and "image/png" in out.data
        assert base64.b64decode(out.data["image/png"]) == png
