"""Unit tests of the pure drawing functions (fast, synthetic arrays, no data needed)."""

import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from lib.common.classes import CLASS_NAMES, PALETTE
from lib.viz import plots as viz

H, W = 16, 24


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _mask(seed=0):
    rng = np.random.default_rng(seed)
    m = np.zeros((H, W), np.uint8)
    for cid in rng.choice(np.arange(1, 49), 3, replace=False):
        y, x = rng.integers(0, H - 4), rng.integers(0, W - 4)
        m[y : y + 4, x : x + 4] = cid
    return m


def _image(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def test_colorize_uses_palette():
    m = _mask()
    c = viz.colorize(m)
    assert c.shape == (H, W, 3) and c.dtype == np.uint8
    assert np.array_equal(c, PALETTE[m])
    with pytest.raises(ValueError):
        viz.colorize(np.full((H, W), 49, np.uint8))
    with pytest.raises(ValueError):
        viz.colorize(np.zeros((2, H, W), np.uint8))


def test_overlay_keeps_background_and_blends_objects():
    img, m = _image(), _mask()
    o = viz.overlay(img, m, alpha=0.5)
    assert o.shape == img.shape and o.dtype == np.uint8
    assert np.array_equal(o[m == 0], img[m == 0])
    exp = np.round(0.5 * img[m != 0].astype(float) + 0.5 * PALETTE[m[m != 0]]).astype(np.uint8)
    assert np.abs(o[m != 0].astype(int) - exp).max() <= 1
    assert np.array_equal(viz.overlay(img, m, alpha=1.0)[m != 0], PALETTE[m[m != 0]])
    assert np.array_equal(viz.overlay(img, m, alpha=0.0), img)


def test_error_map_colours():
    true = np.zeros((4, 4), np.uint8)
    pred = np.zeros((4, 4), np.uint8)
    true[0, 0] = 5
    pred[0, 0] = 5  # correct object
    pred[1, 1] = 7  # false positive
    true[2, 2] = 9  # missed
    true[3, 3] = 3
    pred[3, 3] = 4  # wrong class
    e = viz.error_map(pred, true)
    assert tuple(e[1, 1]) == viz.ERROR_COLORS["false positive"]
    assert tuple(e[2, 2]) == viz.ERROR_COLORS["missed"]
    assert tuple(e[3, 3]) == viz.ERROR_COLORS["wrong class"]
    assert np.all(e[0, 0] <= PALETTE[5]) and np.all(e[0, 0] < 128)  # correct pixels dimmed
    assert np.array_equal(viz.error_map(true, true), (PALETTE[true] * viz._DIM).astype(np.uint8))
    img = np.full((4, 4, 3), 200, np.uint8)
    e2 = viz.error_map(pred, true, img)
    assert tuple(e2[0, 1]) == (70, 70, 70) and tuple(e2[2, 2]) == viz.ERROR_COLORS["missed"]


def test_side_by_side_shapes_and_separator():
    a = np.zeros((H, W, 3), np.uint8)
    b = np.zeros((H, W), np.uint8)  # grey panel
    c = np.zeros((H - 4, 5, 3), np.uint8)  # shorter panel is padded
    out = viz.side_by_side(a, b, None, c, sep=2)
    assert out.shape == (H, W + 2 + W + 2 + 5, 3)
    assert np.all(out[:, W : W + 2] == 255)
    assert np.all(out[H - 4 :, -5:] == 255) and np.all(out[: H - 4, -5:] == 0)
    assert viz.side_by_side(a).shape == a.shape


def test_panels_and_png_roundtrip():
    img, m = _image(), _mask()
    p = viz.frame_panel(img, m)
    assert p.shape == (H, 3 * W + 6, 3)
    assert np.array_equal(p[:, :W], img) and np.array_equal(p[:, W + 3 : 2 * W + 3], viz.colorize(m))
    assert np.array_equal(viz.frame_panel(img), img)
    assert viz.frame_panel(img, m, scale=2).shape == (2 * H, 2 * (3 * W + 6), 3)
    q = viz.compare_panel(img, m, _mask(1))
    assert q.shape == (H, 4 * W + 9, 3)
    assert viz.compare_panel(None, m, _mask(1)).shape == (H, 3 * W + 6, 3)
    png = viz.to_png_bytes(p)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png == viz.to_png_bytes(p.copy())
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), p)


def test_legend_helpers():
    m = _mask()
    ids = viz.present_classes(m, None, np.zeros_like(m))
    assert ids == sorted(set(np.unique(m).tolist()) - {0})
    handles = viz.legend_handles(ids)
    assert [h.get_label().split(" ", 1)[1].strip() for h in handles] == [CLASS_NAMES[i] for i in ids]
    html = viz.legend_html(ids, extra=viz.ERROR_COLORS.items())
    for i in ids:
        assert CLASS_NAMES[i] in html and viz._hex(i) in html
    assert "missed" in html
    fig, ax = plt.subplots()
    legend = viz.add_class_legend(ax, m)
    assert legend is ax.get_legend()  # drawn on the axes it was given
    assert [t.get_text() for t in legend.get_texts()] == [f"{i:2d} {CLASS_NAMES[i]}" for i in ids]
    colours = [tuple(np.round(np.asarray(h.get_facecolor()[:3]) * 255).astype(int)) for h in legend.legend_handles]
    assert colours == [tuple(int(v) for v in PALETTE[i]) for i in ids]
    assert [t.get_text() for t in viz.add_class_legend(ax, m, ids=[0, 7, 3]).get_texts()] == [
        f" 7 {CLASS_NAMES[7]}",
        f" 3 {CLASS_NAMES[3]}",
    ]
    _, empty = plt.subplots()
    assert viz.add_class_legend(empty, np.zeros_like(m)) is None and empty.get_legend() is None


def test_figures_build_and_save(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 22, H, W, 3), dtype=np.uint8)
    masks = np.stack([np.stack([_mask(v * 100 + t) for t in range(22)]) for v in range(2)])
    figs = {
        "grid": viz.sample_grid(frames, masks, [1000, 1001]),
        "grid_nomask": viz.sample_grid(frames[:, :11], None, [15000, 15001]),  # hidden: 11 frames, t=21 dropped
        "compare": viz.comparison_grid(frames[:, 21], masks[:, 21], masks[:, 10], [1000, 1001], scores=[0.5, 0.2]),
        "freq": viz.class_frequency_plot(np.bincount(masks.ravel(), minlength=49)),
        "hist": viz.histogram(rng.integers(1, 7, 50), "objects", "objects per video"),
        "hist_float": viz.histogram(rng.random(100), "sizes", "px"),
        "hist_empty": viz.histogram([], "nothing", "x"),
        "entrants": viz.entrants_over_time_plot([0, 0, 0, 3, 12, 15, -1, np.nan]),
    }
    assert len(figs["grid"].axes) == 2 * 6  # 2 videos x (image, mask) at frames 0, 10 and 21
    assert len(figs["grid_nomask"].axes) == 2 * 2
    for name, fig in figs.items():
        path = viz.save_figure(fig, f"test_{name}", tmp_path / "figs")
        assert path == tmp_path / "figs" / f"test_{name}.png"
        im = Image.open(path)
        assert im.format == "PNG" and im.size[0] > 100
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == sorted(f"test_{n}.png" for n in figs)
    with pytest.raises(ValueError):
        viz.class_frequency_plot(np.ones(10))
    with pytest.raises(ValueError):
        viz.sample_grid(frames[:, :5], None, [0, 1], frame_indices=(10, 21))


def test_save_figure_close(tmp_path):
    fig = viz.histogram([1, 2, 3], "t", "x")
    viz.save_figure(fig, "x.png", tmp_path, close=True)
    assert (tmp_path / "x.png").exists()
    assert fig.number not in plt.get_fignums()
