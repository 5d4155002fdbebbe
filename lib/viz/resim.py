"""Figures of the re-simulating predictor (lib/resim, docs/resim.md): the fitted camera, and one video's estimated
scene drawn over its frames.

    fig = camera_grid_figure(frame, camera)                   # the floor grid (z = 0) over an RGB frame
    scene, centres = measured_scene(est, camera, sizes, t)    # the objects drawn where frame t measured them
    fig = fitted_scene_figure(frames, scenes, centres_per_frame, frame_indices, title)
"""

import math

import matplotlib.pyplot as plt
import numpy as np

from lib.common.classes import PALETTE, attributes
from lib.resim import bodies
from lib.resim.draw import draw
from lib.resim.estimate import yaw_quaternion
from lib.resim.predict import SUPERSAMPLE
from lib.viz.plots import _frame_title, _hide_ticks


def in_front(camera, points):
    """(n,) bool: whether the world points (n, 3) are in front of ``camera`` (positive clip w)."""
    pts = np.asarray(points, np.float64).reshape(-1, 3)
    return (np.c_[pts, np.ones(len(pts))] @ camera.matrix.T)[:, 3] > 0


def floor_extent(camera):
    """(x0, x1, y0, y1): the floor the camera sees, widened to whole units (its image corners on the floor z = 0;
    a corner that looks above the horizon is left out)."""
    corners = [(0, 0), (camera.width, 0), (0, camera.height), (camera.width, camera.height)]
    pts = np.array([camera.floor_point(x, y) for x, y in corners])
    pts = pts[in_front(camera, np.c_[pts, np.zeros(len(pts))])]
    if not len(pts):
        raise ValueError(f"{camera} sees no floor at its image corners")
    (x0, y0), (x1, y1) = np.floor(pts.min(0)), np.ceil(pts.max(0))
    return x0, x1, y0, y1


def camera_grid_figure(image, camera, step=1.0, title=None, size=4.0):
    """``image`` (H, W, 3) with the floor grid (z = 0, a line every ``step`` units; the axes x = 0 and y = 0 in
    colour) as ``camera`` projects it: where the grid's lines meet the floor's edges and the objects' contacts, the
    camera fits."""
    x0, x1, y0, y1 = floor_extent(camera)
    fig, ax = plt.subplots(figsize=(size * camera.width / camera.height, size))
    ax.imshow(image, extent=(0, camera.width, camera.height, 0))  # pixel (i, j) spans [j, j + 1), as projected
    for x in np.arange(x0, x1 + step / 2, step):
        _floor_line(ax, camera, (x, y0), (x, y1), "tab:red" if x == 0 else "white")
    for y in np.arange(y0, y1 + step / 2, step):
        _floor_line(ax, camera, (x0, y), (x1, y), "tab:blue" if y == 0 else "white")
    ax.set_xlim(0, camera.width)
    ax.set_ylim(camera.height, 0)
    _hide_ticks(ax)
    ax.set_title(
        title or f"fitted camera: fov {camera.fov:.1f}°, elevation {camera.elev:.1f}°, distance {camera.dist:.2f}",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def _floor_line(ax, camera, a, b, color):
    """The floor segment from (x, y) ``a`` to ``b`` as ``camera`` projects it (a straight line)."""
    (u0, v0), (u1, v1) = camera.project([[*a, 0.0], [*b, 0.0]])
    ax.plot([u0, u1], [v0, v1], color=color, lw=0.8 if color == "white" else 1.4, alpha=0.7)


def measured_scene(est, camera, sizes, t, supersample=SUPERSAMPLE):
    """((H, W) class ids, (n, 2) centres in pixels (x, y)) of the objects of ``est`` (an ``estimate.Estimate``) drawn
    upright on the floor where input frame ``t`` measured them (cubes at their yaw there; objects not measured in
    frame ``t`` left out), at ``supersample`` as the predictor draws."""
    cids, states = [], []
    for cid, frames, positions, yaws in zip(est.class_ids, est.frames, est.positions, est.yaws):
        if t in frames:
            k = list(frames).index(t)
            s = bodies.rest_state(positions[k], attributes(int(cid))[0], sizes)
            s[3:7] = yaw_quaternion(yaws[k])
            cids.append(int(cid))
            states.append(s)
    states = np.array(states).reshape(-1, bodies.STATE)
    return draw(np.array(cids, np.int64), states, camera, sizes, supersample), camera.project(states[:, :3])


def fitted_scene_figure(frames, scenes, centres, frame_indices, title, panel_size=2.2):
    """A row of RGB ``frames`` (n, H, W, 3), input frames ``frame_indices``, each with the outline of the objects
    of ``scenes`` (n, H, W class ids, ``measured_scene``) in their class colours and their centres (``centres``:
    per frame (k, 2) pixels) as crosses: where the outline hugs the object, position and camera agree."""
    n = len(frames)
    h, w = np.asarray(scenes[0]).shape
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * panel_size * w / h, rows * panel_size + 0.4), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, frame, scene, xy, t in zip(axes.ravel(), frames, scenes, centres, frame_indices):
        ax.imshow(frame, extent=(0, w, h, 0))  # pixel (i, j) spans [j, j + 1), as Camera.project has it
        scene = np.asarray(scene)
        for cid in np.unique(scene[scene > 0]):
            outline = {"levels": [0.5], "colors": [PALETTE[cid] / 255], "linewidths": 1.2}
            ax.contour(scene == cid, extent=(0.5, w - 0.5, 0.5, h - 0.5), **outline)  # extent: the pixels' centres
        if len(xy):
            ax.plot(xy[:, 0], xy[:, 1], "+", color="white", ms=6, mew=1.2)
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        _hide_ticks(ax)
        ax.set_title(_frame_title(t), fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
