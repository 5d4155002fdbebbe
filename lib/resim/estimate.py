"""Each object's 3-D state at the last input frame, estimated from the class-id masks of frames 0-10.

An object rests upright on the floor (its centre at the shape's half height), so its state is a floor position, a
yaw (cubes), a planar velocity and a spin: for spheres the rolling that goes with the velocity, for a moving cube
the turn its yaws show. Per input frame where the object shows, its floor position is found by render and compare:
the centroid of the object drawn (``draw.draw``, cut by the border as the real one is) is moved onto the observed
centroid, a few times. Where it is whole or cut only by the border (``tracks.tracks``: clean or touching the
border) and touches no other object it is drawn alone; where it is partly hidden or touches another object (objects
that meet hide each other, and a nearer one may hide a part too small for the tracks' test), it is drawn with the
objects measured in that frame beside it, so that the same part of it is hidden, and moved on to where its drawing
covers the observed pixels best (``polish``: the visible part's centroid is a poor guide where a neighbour hides
part of it). In each frame the nearer objects are measured first, so that those behind are drawn beside their
measured positions. Each drawing covers only a window around the object (``draw_around``: the whole image's pixels
but for rare rounding, in a third of the measuring time). Cubes get, in each frame where they are whole or cut only
by the border, the yaw (0-90 degrees, a cube looks the same every 90) whose drawing covers their mask best, and are
measured at it; where partly hidden, the yaw of the nearest such frame (a cube turns after a collision: one yaw for
all frames put it 0.02 units off where other shapes are 0.006-0.009 off). The positions over frames then give the
velocity: a straight-line fit over the longest run of last frames that a line slowing by the friction's
deceleration explains within ``line_tol`` (a collision earlier in the video bends the track and is left out),
evaluated at the last input frame. Over the same frames a moving cube's yaws give its spin about the vertical
(``spin_rate``: a cube still turning after a collision slides on another way, and ends at another yaw).

    est = estimate(masks[:11], camera, sizes, frame_dt)      # Estimate: class ids, states (n, 13), frames used
"""

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from lib.common.classes import attributes
from lib.objects import tracks as tracking
from lib.resim import bodies
from lib.resim.draw import draw, new_canvas

LAST = tracking.LAST_INPUT
YAWS = np.radians(np.arange(0, 90, 10))  # the cube yaws tried first
YAW_MIN_STEP = np.radians(1.0)  # then moved by 5, 2.5 and 1.25 degrees where that overlaps better
STILL = 0.004  # units a frame: slower objects are at rest
HIDDEN_MIN_VISIBLE = 0.3  # a partly hidden object is measured where this share of its usual area shows
HIDDEN_MIN_FRAMES = 6  # an object hidden at frame 10 stays only if seen in this many input frames (else: a label error)
WINDOW_MARGIN = 2  # pixels drawn around the projected box of an object being located
TOUCH_MIN_PIXELS = 3  # an object touches another where this many of the pixels around it are the other's
TOUCH_GAP = 1  # pixels of background between two objects that still touch (the U-Net leaves such seams)
SPIN_MIN_FRAMES = 3  # a cube's spin is read off this many frames or more
SPIN_TOL = np.radians(10.0)  # ... where one steady turn explains their yaws within this (else: no spin)


def touches_other(frame, sel):
    """Whether the object of pixels ``sel`` (H, W) bool touches another object in ``frame`` (H, W) class ids:
    ``TOUCH_MIN_PIXELS`` of the pixels within ``TOUCH_GAP`` + 1 of it (8-connected) are another object's. The
    U-Net labels the seam between an object and one in front of it as background; counting only the pixels next to
    it, a cube half hidden behind a sphere was measured whole, alone, 0.27 units too far back."""
    ring = ndimage.binary_dilation(sel, np.ones((3, 3), bool), iterations=TOUCH_GAP + 1) & ~sel
    return int((frame[ring] > 0).sum()) >= TOUCH_MIN_PIXELS


def label_error(track, masks, cid, denoise=True):
    """Whether the id ``cid`` of ``masks`` (11, H, W) class ids, with ``track`` (``tracks.Track``), is a labelling
    error rather than an object: it comes from nowhere (first seen after frame 0 away from the border, where no
    object enters the view), or it is a fragment of another one (seen at the last input frame only, touching
    another object there). True masks have neither; the U-Net's labels have both, mostly a part of an object
    given another colour or material."""
    seen = np.flatnonzero(track.visible)
    if not len(seen):
        return False
    first = seen[0]
    if first > 0 and not track.touches_border[first]:
        return True
    if first == LAST:
        sel = tracking.largest_component(masks[LAST], cid) if denoise else masks[LAST] == cid
        return touches_other(masks[LAST], sel)
    return False


@dataclass
class Estimate:
    """The objects of a video at frame 10: class ids (n,), states (n, 13) (NaN rows: no estimate), and per object
    the frames its position was measured in, its measured floor positions and its yaws in those frames (cubes;
    the refinement starts from them, plots draw them)."""

    class_ids: np.ndarray
    states: np.ndarray
    frames: list = field(default_factory=list)
    positions: list = field(default_factory=list)
    yaws: list = field(default_factory=list)


def ray_at_height(camera, px, py, z):
    """World (x, y) of the point at height ``z`` seen at pixel (px, py) (pixel centres at +0.5)."""
    nx, ny = 2 * px / camera.width - 1, 1 - 2 * py / camera.height
    a = camera.inverse @ np.array([nx, ny, -1.0, 1.0])
    b = camera.inverse @ np.array([nx, ny, 1.0, 1.0])
    a, b = a[:3] / a[3], b[:3] / b[3]
    t = (a[2] - z) / (a[2] - b[2])
    return (a + t * (b - a))[:2]


def yaw_quaternion(yaw):
    return np.array([0.0, 0.0, np.sin(yaw / 2), np.cos(yaw / 2)])


def _rest(cid, xy, yaw, sizes):
    """(13,) state of object ``cid`` resting at ``xy`` with ``yaw``."""
    state = bodies.rest_state(xy, attributes(cid)[0], sizes)
    state[3:7] = yaw_quaternion(yaw)
    return state


def _with_others(cid, state, others):
    """(class ids, states (k, 13)) of object ``cid`` in ``state`` and the objects ``others`` (class ids, states) or
    None."""
    if others is None:
        return [cid], state[None]
    return [cid, *others[0]], np.vstack([state, others[1]])


def _centroid(sel, origin=(0, 0)):
    """Pixel (x, y) of the centroid of the pixels ``sel``, a window whose top-left pixel is ``origin`` (y0, x0) of
    the image (the same float as the whole image's: the pixel indices are moved before they are averaged)."""
    ys, xs = np.nonzero(sel)
    return np.array([(xs + origin[1]).mean() + 0.5, (ys + origin[0]).mean() + 0.5]) if len(xs) else None


def _box_around(observed):
    """(y0, x0, y1, x1): the bounding box of the pixels ``observed`` (H, W) bool."""
    ys, xs = np.nonzero(observed)
    return ys.min(), xs.min(), ys.max() + 1, xs.max() + 1


def projected_box(camera, sizes, cid, state, margin=WINDOW_MARGIN):
    """(y0, x0, y1, x1) pixels that hold all of object ``cid`` in ``state`` (13,) as the camera sees it, ``margin``
    pixels wider: the corners of a box around it projected (None if one is behind the camera)."""
    shape = attributes(cid)[0]
    d = sizes.dims(shape)
    across, up = {"cube": (d[0] * np.sqrt(2), d[0]), "sphere": (d[0], d[0])}.get(shape, d)  # cube: any yaw
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
    corners = np.asarray(state[:3], float) + signs * [across, across, up]
    clip = np.c_[corners, np.ones(8)] @ camera.matrix.T
    if (clip[:, 3] <= 0).any():
        return None
    px = camera.project(corners)
    (x0, y0), (x1, y1) = np.floor(px.min(0)) - margin, np.ceil(px.max(0)) + margin
    return int(y0), int(x0), int(y1), int(x1)


def draw_around(cid, class_ids, states, camera, sizes, supersample, box):
    """(mask, (y0, x0)): the objects ``class_ids`` in ``states`` drawn in a window of the image that holds the box
    ``box`` (y0, x0, y1, x1) and all of object ``cid`` (``projected_box``), and the window's top-left pixel: object
    ``cid``'s pixels are those of the whole image's drawing (but for ``draw``'s rounding), for a fraction of the
    time."""
    height, width = camera.height, camera.width
    around = projected_box(camera, sizes, cid, states[list(class_ids).index(cid)])
    whole = (0, 0, height, width)
    if around is None:  # a corner behind the camera: the whole image
        window = whole
    else:
        y0, x0 = max(min(box[0], around[0]), 0), max(min(box[1], around[1]), 0)
        window = (y0, x0, min(max(box[2], around[2]), height), min(max(box[3], around[3]), width))
    if window == whole:
        return draw(class_ids, states, camera, sizes, supersample=supersample), (0, 0)
    return draw(class_ids, states, camera, sizes, supersample=supersample, window=window), window[:2]


def locate(camera, sizes, cid, observed, yaw=0.0, supersample=1, iters=8, tol=0.1, offset=None, others=None):
    """Floor position (x, y) of object ``cid`` whose pixels in a frame are ``observed`` (H, W) bool: the
    position whose drawing (alone, at ``supersample`` like the masks, cut by the border) has the observed
    centroid within ``tol`` px. None if it cannot be drawn. Each step moves the object by the centroid's error
    times a gain per axis: 1, or for an object cut by the border (whose visible centroid follows it only partly)
    how far the object moved per pixel its drawn centroid moved in the previous step. ``offset``: a guess of the
    drawn centroid minus the projected centre (``locate_with_offset`` returns it; it changes little from one
    frame to the next, so that an object found in the previous frame is usually found in one drawing)."""
    return locate_with_offset(camera, sizes, cid, observed, yaw, supersample, iters, tol, offset, others)[0]


def locate_with_offset(
    camera, sizes, cid, observed, yaw=0.0, supersample=1, iters=8, tol=0.1, offset=None, others=None
):  # fmt: skip
    """``locate``'s (position or None, the last drawing's centroid minus the projected centre). ``others``: (class
    ids, states) of the objects drawn with it, for an object partly hidden by them (its visible pixels compared)."""
    shape = attributes(cid)[0]
    h = sizes.half_height(shape)
    target = _centroid(observed)
    box = _box_around(observed)
    xy = ray_at_height(camera, *(target - (offset if offset is not None else 0.0)), h)
    gain, prev = np.ones(2), None
    for _ in range(iters):
        cids, states = _with_others(cid, _rest(cid, xy, yaw, sizes), others)
        scene, origin = draw_around(cid, cids, states, camera, sizes, supersample, box)
        drawn = _centroid(scene == cid, origin)
        if drawn is None:
            return None, offset
        centre = camera.project([[*xy, h]])[0]
        offset, err = drawn - centre, target - drawn
        if np.abs(err).max() < tol:
            break
        if prev is not None:
            moved, followed = centre - prev[0], drawn - prev[1]
            ok = np.abs(followed) > 0.1
            gain = np.where(ok, np.clip(moved / np.where(ok, followed, 1.0), 1.0, 4.0), gain)
        prev = (centre, drawn)
        xy = ray_at_height(camera, *(centre + gain * err), h)
    return xy, offset


def overlap(camera, sizes, cid, observed, xy, yaw=0.0, supersample=1, others=None, box=None):
    """IoU of object ``cid`` drawn at floor position ``xy`` (with ``others`` (class ids, states) beside it, which
    may hide part of it) and its observed pixels ``observed`` (H, W) bool; ``box``: their ``_box_around``, when
    known."""
    cids, states = _with_others(cid, _rest(cid, xy, yaw, sizes), others)
    box = _box_around(observed) if box is None else box
    scene, (y0, x0) = draw_around(cid, cids, states, camera, sizes, supersample, box)
    drawn = scene == cid
    inter = int((drawn & observed[y0 : y0 + drawn.shape[0], x0 : x0 + drawn.shape[1]]).sum())
    return inter / max(int(drawn.sum()) + int(observed.sum()) - inter, 1)


def polish(camera, sizes, cid, observed, xy, yaw=0.0, supersample=1, others=None, step=0.04, min_step=0.005):
    """Floor position near ``xy`` where object ``cid`` drawn (``overlap``) covers ``observed`` best: a pattern
    search along x and y from steps of ``step`` units down to ``min_step`` (about 20 drawings; smaller first steps
    stop sooner on the plateaus of a pixel count)."""
    xy, box = np.asarray(xy, float), _box_around(observed)
    best = overlap(camera, sizes, cid, observed, xy, yaw, supersample, others, box)
    while step >= min_step:
        moved = False
        for d in ((step, 0.0), (-step, 0.0), (0.0, step), (0.0, -step)):
            score = overlap(camera, sizes, cid, observed, xy + d, yaw, supersample, others, box)
            if score > best:
                best, xy, moved = score, xy + d, True
                break
        if not moved:
            step /= 2
    return xy


def cube_yaw(camera, sizes, cid, observed, xy, supersample=1, min_step=YAW_MIN_STEP):
    """The yaw (0-90 degrees) whose drawing of cube ``cid`` at ``xy`` overlaps ``observed`` best (IoU): the best of
    ``YAWS``, then moved by half their step and halves of that down to ``min_step`` radians while that overlaps
    better (15 drawings; against a first grid of 5 degrees, 22 drawings: val +0.001 [-0.001, +0.003], hidden -0.000)."""
    box = _box_around(observed)

    def score(yaw):
        return overlap(camera, sizes, cid, observed, xy, yaw, supersample, None, box)

    scores = [score(yaw) for yaw in YAWS]
    best, top = YAWS[int(np.argmax(scores))], max(scores)
    step = (YAWS[1] - YAWS[0]) / 2
    while step >= min_step:
        for yaw in (best - step, best + step):
            s = score(yaw)
            if s > top:
                best, top = yaw, s
        step /= 2
    return float(best % (np.pi / 2))


def _decelerating_fit(t, p, decel, at=LAST):
    """(position at frame ``at``, velocity there, largest residual) of a motion slowing by ``decel`` (units a
    frame squared) along its direction, fitted to positions ``p`` (k, 2) at frames ``t``: p(t) = p_at + v_at s -
    decel s^2 u / 2 with s = t - at and u the direction of motion (from a first straight-line fit)."""
    s = t - at
    v = np.polyfit(s, p, 1)[0]
    speed = np.linalg.norm(v)
    u = v / speed if speed >= STILL else np.zeros(2)  # a still object does not slow down
    q = p + 0.5 * decel * (s**2)[:, None] * u  # the motion with its slowing taken out: a straight line
    coef = np.polyfit(s, q, 1)
    fit = coef[1] + np.outer(s, coef[0]) - 0.5 * decel * (s**2)[:, None] * u
    return coef[1], coef[0], np.abs(fit - p).max()


def line_run(ts, xy, decel, line_tol, at=LAST):
    """How many of the last positions ``xy`` (k, 2) at frames ``ts`` one line slowing by ``decel``
    (``_decelerating_fit``) explains within ``line_tol``: 2 at least (1 for a single position)."""
    ts, xy = np.asarray(ts, float), np.asarray(xy, float)
    best = min(len(ts), 2)
    for k in range(3, len(ts) + 1):
        if _decelerating_fit(ts[-k:], xy[-k:], decel, at)[2] > line_tol:
            break
        best = k
    return best


def track_velocity(ts, xy, decel, line_tol, at=LAST):
    """(position at frame ``at``, velocity there in units a frame, how many last points the fit used) from
    positions ``xy`` (k, 2) at frames ``ts``: a decelerating-line fit (``_decelerating_fit``) over the longest run of
    last points it explains within ``line_tol`` (``line_run``; a collision earlier bends the track)."""
    ts, xy = np.asarray(ts, float), np.asarray(xy, float)
    if len(ts) == 1:
        return xy[-1], np.zeros(2), 1
    k = line_run(ts, xy, decel, line_tol, at)
    p, v, _ = _decelerating_fit(ts[-k:], xy[-k:], decel, at)
    return p, v, k


def spin_rate(ts, yaws, frame_dt):
    """Spin about the vertical (radians/s) of a cube with yaws ``yaws`` (radians, known modulo 90 degrees) at
    frames ``ts``: the slope of one steady turn through them, 0 where there are fewer than ``SPIN_MIN_FRAMES``
    or the turn misses one by more than ``SPIN_TOL`` (the spin changed, or a yaw was measured badly)."""
    ts = np.asarray(ts, float)
    if len(ts) < SPIN_MIN_FRAMES:
        return 0.0
    turn = np.unwrap(4 * np.asarray(yaws, float)) / 4  # continuous through the 90-degree symmetry
    coef = np.polyfit(ts, turn, 1)
    if np.abs(np.polyval(coef, ts) - turn).max() > SPIN_TOL:
        return 0.0
    return float(coef[0] / frame_dt)


def track_spin(ts, yaws, run, frame_dt):
    """``spin_rate`` of a cube over the last ``run`` of its frames ``ts``: its track's last straight run, the frames
    since its last collision (``track_velocity``'s third value)."""
    return spin_rate(np.asarray(ts)[-run:], np.asarray(yaws)[-run:], frame_dt)


def _entry_velocity(camera, track, xy, shape, sizes, speed):
    """Velocity (units/s) of an object seen in one frame only: into the view from the border it touches, at
    ``speed``; zero when it touches none."""
    y0, x0, y1, x1 = track.bbox[LAST]
    inward = np.array([float(x0 <= 0) - float(x1 >= camera.width), float(y0 <= 0) - float(y1 >= camera.height)])
    if not inward.any():
        return np.zeros(2)
    centre = camera.project([[*xy, sizes.half_height(shape)]])[0]
    ahead = ray_at_height(camera, *(centre + 10 * inward), sizes.half_height(shape))
    d = ahead - xy
    return speed * d / np.linalg.norm(d)


@dataclass
class Track3D:
    """One object's floor positions measured in a video: class id, the frames measured, positions (k, 2), yaws
    (k,) in those frames (radians; cubes, 0 for other shapes), and its 2-D track (``tracks.Track``)."""

    cid: int
    frames: list
    positions: np.ndarray
    yaws: np.ndarray
    track: object


def measure(masks, camera, sizes, *, min_area=20, denoise=True, last=None, supersample=1, hidden=True):
    """``Track3D`` of every object of ``masks`` (T, H, W) class ids with a measured floor position, in class-id
    order: positions by ``locate`` in each frame where the object is whole or cut only by the border, a cube's yaw
    there by ``cube_yaw`` (from its last whole frame's at first; located again where it turned); a frame whose
    pixels of the object are those of the frame before takes that frame's position and yaw. With ``hidden``,
    also in the frames where it is partly hidden (objects that meet hide each other, so these are the frames around
    a collision), and again in those where it touches another object (``touches_other``): drawn there with the
    objects already measured in that frame (the nearer ones first: lower in the image), at the yaw of its nearest
    measured frame, its visible pixels compared (``locate``, then ``polish``; frames where less than
    ``HIDDEN_MIN_VISIBLE`` of it shows are left out). Frame ``last`` is measured whenever the object is visible
    there. Measured beside others rather than by the centroid alone, val IoU (U-Net labels, 200 videos)
    rose by 0.019 [0.010, 0.028] and hidden by 0.026 [0.007, 0.048]."""
    new_canvas()  # this video's drawings from a new client: the same positions whatever was drawn before
    masks = np.asarray(masks)
    found = []  # (class id, track, last yaw, {frame: floor position}, {frame: yaw}, its pixels in a frame)
    for cid, tr in sorted(tracking.tracks(masks, min_area=min_area, denoise=denoise).items()):
        shape = attributes(cid)[0]
        usable = [t for t in range(len(masks)) if tr.visible[t] and (tr.clean[t] or tr.touches_border[t])]

        def pixels(t, cid=cid):
            return tracking.largest_component(masks[t], cid) if denoise else masks[t] == cid

        yaw = 0.0  # a cube's yaw: first the one of its last whole frame, then each frame's
        if shape == "cube" and usable:
            t_yaw = max((t for t in usable if tr.clean[t]), default=usable[-1])
            xy = locate(camera, sizes, cid, pixels(t_yaw), supersample=supersample)
            yaw = cube_yaw(camera, sizes, cid, pixels(t_yaw), xy, supersample) if xy is not None else 0.0
        where, yaws, offset, before = {}, {}, None, None
        for t in usable:
            seen = pixels(t)
            if t - 1 in where and np.array_equal(seen, before):  # not moved since frame t - 1 (before): as there
                where[t], yaws[t] = where[t - 1], yaws[t - 1]
                continue
            before = seen
            clean = tr.clean[t]
            xy, off = locate_with_offset(camera, sizes, cid, seen, yaw, supersample, offset=offset if clean else None)
            if shape == "cube" and xy is not None:  # turned since the frame before: measured again at its yaw
                turned = cube_yaw(camera, sizes, cid, seen, xy, supersample)
                if turned != yaw:
                    yaw = turned
                    xy, off = locate_with_offset(camera, sizes, cid, seen, yaw, supersample)
            offset = off if clean else offset  # a whole object's offset carries to its next frame
            if xy is not None:
                where[t], yaws[t] = xy, yaw
        found.append((int(cid), tr, yaw, where, yaws, pixels))
    at = {}  # frame -> {class id: state} of the objects measured there so far
    for cid, _, _, where, yaws, _ in found:
        for t, xy in where.items():
            at.setdefault(t, {})[cid] = _rest(cid, xy, yaws[t], sizes)
    jobs = []  # (frame, -bottom row, index into found): in each frame the nearer objects first
    for k, (_, tr, _, where, _, pixels) in enumerate(found):
        partly = [t for t in range(len(masks)) if tr.visible[t] and t not in where]
        partly = [t for t in partly if t == last or (hidden and tr.area[t] >= HIDDEN_MIN_VISIBLE * tr.ref_area)]
        if hidden:  # measured alone, but touching another object: perhaps partly behind it
            partly += [t for t in where if touches_other(masks[t], pixels(t))]
        jobs += [(t, -tr.bbox[t][2], k) for t in partly]
    for t, _, k in sorted(jobs):
        cid, tr, yaw, where, yaws, pixels = found[k]
        if yaws:  # a partly hidden cube at the yaw of the nearest frame it was measured in alone
            yaw = yaws[min(yaws, key=lambda s: abs(s - t))]
        y0, x0, y1, x1 = tr.bbox[t]
        box = masks[t, max(y0 - 2, 0) : y1 + 2, max(x0 - 2, 0) : x1 + 2]
        near = [(c, s) for c, s in at.get(t, {}).items() if c != cid and (box == c).any()] if hidden else []
        others = (np.array([c for c, _ in near]), np.array([s for _, s in near])) if near else None
        xy = locate(camera, sizes, cid, pixels(t), yaw, supersample, others=others)
        if xy is not None and others is not None:
            xy = polish(camera, sizes, cid, pixels(t), xy, yaw, supersample, others)
        if xy is not None:
            where[t], yaws[t] = xy, yaw
            at.setdefault(t, {})[cid] = _rest(cid, xy, yaw, sizes)
    out = []
    for cid, tr, _, where, yaws, _ in found:
        if where:
            ts = sorted(where)
            out.append(Track3D(cid, ts, np.array([where[t] for t in ts]), np.array([yaws[t] for t in ts]), tr))
    return out


def estimate(
    masks_in, camera, sizes, frame_dt, decel=None, *, min_area=20, line_tol=0.04, denoise=True, supersample=1,
    measured=None,
):  # fmt: skip
    """``Estimate`` of the objects of ``masks_in`` (11, H, W) class ids that are still in the scene at the last input
    frame: visible there, or hidden there without having left through the border (``tracks.has_left``; an object
    behind another one, placed where its track leads) after being seen in ``HIDDEN_MIN_FRAMES`` input frames (a
    U-Net id seen in a few frames and then gone is mostly a labelling error: kept, they cost 0.005 on val). Ids that
    ``label_error`` calls labelling errors (first seen away from the border, or at frame 10 only beside another
    object) are left out: on val (U-Net labels) they added +0.021 [+0.008, +0.036], on hidden +0.004.
    ``decel``: {shape: deceleration in units/s^2} of a moving object (``simulate.decelerations``), none if
    not given; ``supersample``: how the masks were drawn (the videos': 2), so that objects are drawn alike.
    ``measured``: ``measure``'s result for these masks (with ``last=LAST``), when already computed: the physics
    fit predicts the same videos under many candidate constants, and the positions do not depend on them."""
    decel = decel or {}
    cids, states, frames, positions, yaws = [], [], [], [], []
    if measured is None:
        measured = measure(
            masks_in, camera, sizes, min_area=min_area, denoise=denoise, last=LAST, supersample=supersample
        )
    kept = [
        m
        for m in measured
        if (
            m.track.visible[LAST] or not (tracking.has_left(m.track, LAST) or m.track.visible.sum() < HIDDEN_MIN_FRAMES)
        )
        and not label_error(m.track, masks_in, m.cid, denoise)
    ]
    for m in kept:
        shape = attributes(m.cid)[0]
        xy10, v, run = track_velocity(m.frames, m.positions, decel.get(shape, 0.0) * frame_dt**2, line_tol)
        vel = v / frame_dt if np.linalg.norm(v) >= STILL else np.zeros(2)
        s = bodies.rest_state(xy10, shape, sizes, vel)
        s[3:7] = yaw_quaternion(m.yaws[-1])
        if shape == "cube" and vel.any():
            s[12] = track_spin(m.frames, m.yaws, run, frame_dt)
        cids.append(m.cid)
        states.append(s)
        frames.append(m.frames)
        positions.append(m.positions)
        yaws.append(m.yaws)
    # an object seen in one frame only comes in from the border at the median speed of the video's moving objects
    speeds = [np.linalg.norm(s[7:9]) for s, f in zip(states, frames) if len(f) > 1 and s[7:9].any()]
    for m, s in zip(kept, states):
        if len(m.frames) == 1:
            s[7:9] = _entry_velocity(camera, m.track, s[:2], attributes(m.cid)[0], sizes, np.median(speeds or [0.0]))
        if attributes(m.cid)[0] == "sphere":  # rolling without slipping
            s[10:13] = bodies.rolling_spin(s[7:9], sizes)
    return Estimate(np.array(cids, np.int64), np.array(states).reshape(-1, bodies.STATE), frames, positions, yaws)
