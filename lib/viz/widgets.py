"""Interactive viewers (ipywidgets) for notebooks: browse videos frame by frame, compare predictions.

The widgets only wire controls to the pure drawing functions of ``lib.viz.plots``: each redraw renders one
panel with ``viz.frame_panel`` / ``viz.compare_panel`` and shows it as PNG bytes in an ``Image``
widget. Controls are plain attributes (``viewer.video``, ``viewer.frame``, ``viewer.play``,
``viewer.image``, ...), so tests drive them by setting ``.value`` under plain pytest, and the
Python-side link between ``Play`` and the frame slider works with or without a browser.

    viewer = video_viewer(split.frames, split.masks, split.ids)
    viewer                       # last expression of a cell: shows it

``compare_viewer`` shows one prediction against the truth, ``pair_viewer`` two (two runs, notebook 08).

Layout: the controls sit in rows that wrap (``flex-flow: row wrap``) and the sliders have a minimum
width, so every control stays usable in a narrow notebook (a 1000 px window with the file browser
open); the picture shrinks to the output's width.

Static picture: displaying a viewer puts an ``image/png`` of the panel shown at that moment (its first
view) in the same output, next to the widget. A live JupyterLab picks the widget; where the widget
cannot be shown the PNG is shown instead of ``VideoViewer(children=...`` as text: a notebook executed
by papermill and reopened in JupyterLab (not trusted, so no widget renderer), nbconvert's HTML without
widget state, viewers without widgets such as GitHub's.
"""

import base64

import ipywidgets as widgets
import numpy as np

from lib.viz import plots as viz


def _labels(video_ids, n):
    if video_ids is None:
        return [f"#{i}" for i in range(n)]
    if len(video_ids) != n:
        raise ValueError(f"{len(video_ids)} video ids for {n} videos")
    return [viz._video_label(v) for v in video_ids]


def _frame_role(t, T):
    if t <= viz.LAST_INPUT:
        return "input"
    if t == viz.TARGET:
        return "target (frame 22)"
    return "future (not given)"


def _row(children):
    """A row of controls that wraps onto more lines when the output is narrow."""
    return widgets.HBox(children, layout=widgets.Layout(flex_flow="row wrap", align_items="center", min_width="0"))


def _grow(basis, minimum):
    """Layout of a control that fills the rest of its row, never narrower than ``minimum``."""
    return widgets.Layout(width="auto", flex=f"1 1 {basis}", min_width=minimum)


def _fixed(basis, minimum):
    """Layout of a control ``basis`` wide that may shrink to ``minimum`` (then its row wraps)."""
    return widgets.Layout(width="auto", flex=f"0 1 {basis}", min_width=minimum)


def _picture_layout():
    """Natural size (``scale``), shrunk to the output's width when that is narrower."""
    return widgets.Layout(
        max_width="100%", height="auto", margin="2px 0", object_fit="contain", align_self="flex-start"
    )


class _StaticPicture:
    """Adds the shown panel as ``image/png`` to the display bundle (see the module docstring)."""

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:  # closed widget
            return None
        bundle["image/png"] = base64.b64encode(self.image.value).decode("ascii")
        bundle["text/plain"] = f"{type(self).__name__}: {self._describe()} (static picture; run the cell to browse)"
        return bundle

    def static_png(self):
        """The PNG bytes that displaying the viewer now puts in the output as ``image/png``."""
        return bytes(self.image.value)


class VideoViewer(_StaticPicture, widgets.VBox):
    """Video picker, frame slider with playback and an ``Image`` of image | mask | overlay."""

    def __init__(self, frames, masks=None, video_ids=None, alpha=0.5, scale=1, interval=250, legend=True):
        if frames.ndim != 5 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (N, T, H, W, 3), got shape {frames.shape}")
        n, T = frames.shape[:2]
        if n == 0:
            raise ValueError("no videos to show")
        if masks is not None and (masks.ndim != 4 or masks.shape[0] != n or masks.shape[2:] != frames.shape[2:4]):
            raise ValueError(f"masks {masks.shape} do not match frames {frames.shape}")
        self.frames, self.masks, self.scale, self.legend = frames, masks, scale, legend
        self.labels = _labels(video_ids, n)
        self.num_frames = T

        self.video = widgets.Dropdown(
            options=list(zip(self.labels, range(n))),
            value=0,
            description="video",
            layout=_fixed("300px", "220px"),
        )
        self.frame = widgets.IntSlider(
            value=0, min=0, max=T - 1, description="frame t", continuous_update=True, layout=_grow("400px", "300px")
        )
        self.play = widgets.Play(
            value=0,
            min=0,
            max=T - 1,
            step=1,
            interval=interval,
            description="play",
            layout=widgets.Layout(flex="0 0 auto"),
        )
        self._link = widgets.link((self.play, "value"), (self.frame, "value"))
        self.alpha = widgets.FloatSlider(
            value=alpha,
            min=0.0,
            max=1.0,
            step=0.05,
            description="overlay",
            readout_format=".2f",
            disabled=masks is None,
            layout=_fixed("320px", "280px"),
        )
        self.image = widgets.Image(format="png", layout=_picture_layout())
        self.info = widgets.HTML()

        for w in (self.video, self.frame, self.alpha):
            w.observe(self._update, names="value")
        # two rows: picker (+ overlay weight), then play + frame slider across the whole width
        self.rows = (
            _row([self.video] + ([self.alpha] if masks is not None else [])),
            _row([self.play, self.frame]),
        )
        super().__init__([*self.rows, self.image, self.info])
        self._update()

    def _describe(self):
        v, t = self.current()
        return f"{self.labels[v]} t={t}"

    def current(self):
        """(video index, frame index) shown."""
        return int(self.video.value), int(self.frame.value)

    def panel(self):
        """The array shown now (what ``image.value`` encodes)."""
        v, t = self.current()
        return viz.frame_panel(np.asarray(self.frames[v, t]), self._mask(v, t), self.alpha.value, self.scale)

    def _mask(self, v, t):
        if self.masks is None or t >= self.masks.shape[1]:
            return None
        return np.asarray(self.masks[v, t])

    def _update(self, change=None):
        v, t = self.current()
        self.image.value = viz.to_png_bytes(self.panel())
        mask = self._mask(v, t)
        what = "image | mask | overlay" if mask is not None else "image (no mask)"
        text = (
            f"<b>{self.labels[v]}</b> &nbsp; t={t} of 0..{self.num_frames - 1} "
            f"({_frame_role(t, self.num_frames)}) &nbsp; <i>{what}</i>"
        )
        if self.legend and mask is not None:
            text += viz.legend_html(viz.present_classes(mask))
        self.info.value = text


def video_viewer(frames, masks=None, video_ids=None, alpha=0.5, scale=1, interval=250, legend=True):
    """A widget to browse videos: pick one, move/play through its frames, see image | mask | overlay.

    ``frames`` (N, T, H, W, 3) uint8 (a memmap is fine: only the shown frame is read), T = 11 or 22;
    ``masks`` (N, T', H, W) class ids or None (image only, e.g. the hidden split); ``video_ids``
    (N,) numbers or labels for the picker. ``scale`` enlarges the panels (nearest neighbour).
    Attributes: ``video`` (Dropdown, value = index into the arrays), ``frame`` (IntSlider),
    ``play`` (Play, linked to ``frame``), ``alpha`` (overlay weight), ``image``, ``info``.
    """
    return VideoViewer(frames, masks, video_ids, alpha, scale, interval, legend)


def _order(order, scores, n):
    if order is None:
        return list(range(n))
    if isinstance(order, str):
        if scores is None:
            raise ValueError(f"order={order!r} needs scores")
        s = np.asarray(scores, dtype=np.float64)
        s = np.where(np.isnan(s), np.inf, s)  # unscored videos last either way
        if order in ("ascending", "worst", "worst_first"):
            return [int(i) for i in np.argsort(s, kind="stable")]
        if order in ("descending", "best", "best_first"):
            key = np.where(np.isinf(s), -np.inf, s)
            return [int(i) for i in np.argsort(-key, kind="stable")]
        raise ValueError(f"unknown order {order!r}: use 'ascending'/'worst', 'descending'/'best', or indices")
    idx = [int(i) for i in order]
    if not idx or min(idx) < 0 or max(idx) >= n:
        raise ValueError(f"order must hold indices in 0..{n - 1}")
    return idx


class CompareViewer(_StaticPicture, widgets.VBox):
    """Video picker (optionally ordered by score) and an ``Image`` of image | true | predicted | error."""

    def __init__(
        self,
        images,
        true_masks,
        pred_masks,
        video_ids=None,
        order=None,
        scores=None,
        score_name="IoU",
        scale=1,
        legend=True,
    ):
        n = len(true_masks)
        if len(pred_masks) != n or (images is not None and len(images) != n):
            raise ValueError("images, true_masks and pred_masks must hold the same number of videos")
        if scores is not None and len(scores) != n:
            raise ValueError(f"{len(scores)} scores for {n} videos")
        if n == 0:
            raise ValueError("no videos to show")
        self.images, self.true_masks, self.pred_masks = images, true_masks, pred_masks
        self.scores, self.score_name, self.scale, self.legend = scores, score_name, scale, legend
        self.labels = _labels(video_ids, n)
        self.order = _order(order, scores, n)

        def label(i):
            s = self.labels[i]
            if scores is not None:
                s += f"  {score_name} {float(scores[i]):.3f}"
            return s

        self.video = widgets.Dropdown(
            options=[(label(i), i) for i in self.order],
            value=self.order[0],
            description="video",
            layout=_fixed("360px", "260px"),
        )
        self.rank = widgets.IntSlider(
            value=0, min=0, max=len(self.order) - 1, description="rank", layout=_grow("300px", "280px")
        )
        self.image = widgets.Image(format="png", layout=_picture_layout())
        self.info = widgets.HTML()
        self.rank.observe(lambda c: setattr(self.video, "value", self.order[c["new"]]), names="value")
        self.video.observe(self._update, names="value")
        self.rows = (_row([self.video, self.rank]),)
        super().__init__([*self.rows, self.image, self.info])
        self._update()

    def _describe(self):
        i = int(self.video.value)
        return f"{self.labels[i]} (rank {self.order.index(i)} of {len(self.order)})"

    def panel(self):
        i = int(self.video.value)
        img = None if self.images is None else np.asarray(self.images[i])
        return viz.compare_panel(img, np.asarray(self.true_masks[i]), np.asarray(self.pred_masks[i]), self.scale)

    def _update(self, change=None):
        i = int(self.video.value)
        self.rank.value = self.order.index(i)
        self.image.value = viz.to_png_bytes(self.panel())
        t, p = np.asarray(self.true_masks[i]), np.asarray(self.pred_masks[i])
        cols = ("image | " if self.images is not None else "") + "true | predicted | error"
        text = f"<b>{self.labels[i]}</b>"
        if self.scores is not None:
            text += f" &nbsp; {self.score_name} {float(self.scores[i]):.3f}"
        text += f" &nbsp; wrong pixels {float((t != p).mean()):.2%} &nbsp; <i>{cols}</i>"
        if self.legend:
            text += viz.legend_html(viz.present_classes(t, p), extra=viz.ERROR_COLORS.items())
        self.info.value = text


def compare_viewer(
    images, true_masks, pred_masks, video_ids=None, order=None, scores=None, score_name="IoU", scale=1, legend=True
):
    """A widget to compare predicted and true masks video by video.

    ``images`` (N, H, W, 3) or None, ``true_masks`` / ``pred_masks`` (N, H, W) class ids (e.g. frame 22).
    ``scores`` (N,) per-video numbers shown in the picker; ``order`` None (as given), 'ascending'/'worst'
    or 'descending'/'best' (by score), or a sequence of indices. Attributes: ``video`` (Dropdown in that
    order, value = index into the arrays), ``rank`` (position in the order), ``order``, ``image``, ``info``.
    """
    return CompareViewer(images, true_masks, pred_masks, video_ids, order, scores, score_name, scale, legend)


class PairViewer(CompareViewer):
    """The compare viewer for two predictions of the same videos (two runs): the picker in ``order`` (e.g. the
    largest per-video IoU difference first), and an ``Image`` of image | A | B above true | A's errors | B's."""

    def __init__(
        self,
        images,
        true_masks,
        pred_a,
        pred_b,
        video_ids=None,
        order=None,
        scores=None,
        score_name="IoU B-A",
        names=("A", "B"),
        scale=1,
        legend=True,
    ):
        if len(pred_b) != len(true_masks):
            raise ValueError("true_masks, pred_a and pred_b must hold the same number of videos")
        self.pred_b, self.names = pred_b, tuple(names)
        super().__init__(images, true_masks, pred_a, video_ids, order, scores, score_name, scale, legend)

    def panel(self):
        i = int(self.video.value)
        img = None if self.images is None else np.asarray(self.images[i])
        a, b = np.asarray(self.pred_masks[i]), np.asarray(self.pred_b[i])
        return viz.pair_panel(img, np.asarray(self.true_masks[i]), a, b, self.scale)

    def _update(self, change=None):
        i = int(self.video.value)
        self.rank.value = self.order.index(i)
        self.image.value = viz.to_png_bytes(self.panel())
        t, a, b = (np.asarray(m[i]) for m in (self.true_masks, self.pred_masks, self.pred_b))
        na, nb = self.names
        text = f"<b>{self.labels[i]}</b>"
        if self.scores is not None:
            text += f" &nbsp; {self.score_name} {float(self.scores[i]):+.3f}"
        text += f" &nbsp; wrong pixels: {na} {float((t != a).mean()):.2%}, {nb} {float((t != b).mean()):.2%}"
        first = "image" if self.images is not None else "(no image)"
        text += f" &nbsp; <i>{first} | {na} | {nb} over true | {na} errors | {nb} errors</i>"
        if self.legend:
            text += viz.legend_html(viz.present_classes(t, a, b), extra=viz.ERROR_COLORS.items())
        self.info.value = text


def pair_viewer(
    images,
    true_masks,
    pred_a,
    pred_b,
    video_ids=None,
    order=None,
    scores=None,
    score_name="IoU B-A",
    names=("A", "B"),
    scale=1,
    legend=True,
):
    """A widget to compare two predictions of the same videos (two runs) with the true mask, video by video.

    ``images`` (N, H, W, 3) or None, ``true_masks`` / ``pred_a`` / ``pred_b`` (N, H, W) class ids; ``scores`` (N,)
    per-video numbers shown in the picker (e.g. the IoU difference B - A), ``order`` as in ``compare_viewer`` (a
    sequence of indices: ``lib.compare.difference_order``); ``names`` the two predictions' names. Attributes as
    ``compare_viewer``'s, with ``pred_masks`` (A) and ``pred_b``.
    """
    return PairViewer(images, true_masks, pred_a, pred_b, video_ids, order, scores, score_name, names, scale, legend)
