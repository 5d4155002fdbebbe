"""The states at the last input frame refined by simulation: analysis by synthesis over the last input frames.

``estimate.estimate`` reads each object's velocity off its own track, which fails when objects collide in the last
frames (the track bends where only one or two frames show the new motion) and is only as good as a straight line
slowed by friction. Here the scene is started earlier, at frame ``start`` (each object's state there from its
track up to that frame), simulated to the last input frame with the fitted physics, and the starting states
(floor position and velocity of every object) are adjusted so that the simulated positions match the positions
measured in frames ``start``-10 (``scipy.optimize.least_squares``, finite differences); a cube starts at the
yaw measured at frame ``start`` (at its frame-10 yaw instead: val -0.004, hidden -0.003, ad hoc), spinning as its
yaws up to frame ``start`` + 1 show (``estimate.track_spin``; without it the simulation turns a cube only where it
collides there, and cubes that collided in frames 5-10 cost a third of what free objects cost). The simulated
state at frame 10, collisions included, is the estimate. Objects that come within ``group_radii`` radii of each
other in those frames are fitted together; an object that comes near none keeps its own track line, which sees up
to 11 frames where the refinement sees 4 (fitted alone through the simulator instead: val -0.001, hidden -0.001, train
-0.000, ad hoc, and more time). Objects first seen after ``start`` keep their own estimate, and a group whose own
track lines (``line_cost``) explain frames ``start``-10 better than the fitted simulation keeps them (objects
measured closer together than the simulator lets them stand are pushed apart by it). Last, each object's frame-10
position is moved halfway to where frame 10 measured it.

    states10 = refine(est, physics, sizes, decel)       # (n, 13), the objects of est.class_ids
"""

import numpy as np
from scipy.optimize import least_squares
from scipy.sparse.csgraph import connected_components

from lib.common.classes import attributes
from lib.resim import bodies
from lib.resim.estimate import LAST, track_spin, track_velocity, yaw_quaternion
from lib.resim.simulate import new_world, simulate

START = LAST - 3  # the frame the refining simulation starts at (LAST - 4: -0.003 val, -0.009 train)
SCALE = (0.1, 0.1, 0.5, 0.5)  # typical size of a change of x, y (units) and vx, vy (units/s): least_squares' x_scale


def groups(est, idx, start, dist):
    """The objects of ``idx`` (indices into ``est``) in groups (lists) that come within ``dist`` of each other
    in a frame from ``start`` to 10 where both were measured."""
    where = {i: dict(zip(est.frames[i], est.positions[i])) for i in idx}
    link = np.eye(len(idx), dtype=bool)
    for a, i in enumerate(idx):
        for b, j in enumerate(idx[:a]):
            link[a, b] = link[b, a] = any(
                np.linalg.norm(where[i][t] - where[j][t]) < dist
                for t in range(start, LAST + 1)
                if t in where[i] and t in where[j]
            )
    _, label = connected_components(link, directed=False)
    return [[i for i, g in zip(idx, label) if g == k] for k in range(label.max() + 1)] if idx else []


def yaw_at(est, i, t):
    """Object ``i``'s yaw measured in the last of its frames up to ``t`` (its first frame's when there is none)."""
    ts = np.asarray(est.frames[i])
    return est.yaws[i][max(int(np.searchsorted(ts, t, side="right")) - 1, 0)]


def _fit_group(est, members, init, spins, physics, sizes, start, max_nfev):
    """(len(members), 13) states at frame 10 of one group, from its starting states ``init`` (k, 4) fitted; the
    cubes start spinning at ``spins`` (k,) radians/s about the vertical."""
    cids = est.class_ids[members]
    shapes = [attributes(c)[0] for c in cids]

    def run(x):
        s = np.zeros((len(members), bodies.STATE))
        for j, (i, shape) in enumerate(zip(members, shapes)):
            px, py, vx, vy = x[4 * j : 4 * j + 4]
            s[j] = bodies.rest_state((px, py), shape, sizes, (vx, vy))
            s[j, 3:7] = yaw_quaternion(yaw_at(est, i, start))
            if shape == "sphere":  # rolling without slipping
                s[j, 10:13] = bodies.rolling_spin((vx, vy), sizes)
            else:
                s[j, 12] = spins[j]
        return simulate(cids, s, LAST - start, physics, sizes)

    frames = [np.array(est.frames[i]) for i in members]

    def residuals(x):
        sim = run(x)
        return np.concatenate(
            [
                (sim[ts[ts >= start] - start, j, :2] - est.positions[i][ts >= start]).ravel()
                for j, (i, ts) in enumerate(zip(members, frames))
            ]
        )

    x0 = np.ravel(init)
    fit = least_squares(residuals, x0, diff_step=1e-3, max_nfev=max_nfev, x_scale=np.tile(SCALE, len(members)))
    return run(fit.x)[-1], 2 * fit.cost


def line_cost(est, members, start, decel, dt):
    """Sum of squared distances between the positions measured in frames ``start``-10 of ``members`` and their
    estimates' own motion (``est.states``: straight, slowing by ``decel`` {shape: units/s^2}), traced back."""
    cost = 0.0
    for i in members:
        ts = np.asarray(est.frames[i])
        keep = ts >= start
        s = (ts[keep] - LAST) * dt
        v = est.states[i, 7:9]
        speed = np.linalg.norm(v)
        u = v / speed if speed > 0 else np.zeros(2)
        a = decel.get(attributes(est.class_ids[i])[0], 0.0)
        at = est.states[i, :2] + np.outer(s, v) - 0.5 * a * (s**2)[:, None] * u
        cost += float(((at - est.positions[i][keep]) ** 2).sum())
    return cost


def refine(
    est, physics, sizes, decel=None, *, start=START, line_tol=0.04, max_nfev=10, group_radii=4.0, measured_weight=0.5
):  # fmt: skip
    """(n, 13) states at frame ``LAST`` of the objects of ``est`` (an ``estimate.Estimate``), refined by
    simulating from frame ``start``; objects not measured by ``start`` keep ``est.states``. The floor position of
    every object measured at frame ``LAST`` is then moved ``measured_weight`` of the way to that measurement: the
    motion fitted over several frames and the last frame's measurement each miss in their own way (an object that
    touches another one is measured 0.0155 units from its true frame-10 position on val, U-Net labels, and placed
    0.0175 from it by the fits; halfway, 0.0155; alone 0.0080, 0.0084 and 0.0079)."""
    new_world()  # this video's simulations from a new client: the same states whatever the process did before
    decel = decel or {}
    dt = physics.frame_dt
    init, spins = {}, {}
    for i, (cid, ts, xy) in enumerate(zip(est.class_ids, est.frames, est.positions)):
        keep = [k for k, t in enumerate(ts) if t <= start + 1]
        if not keep or ts[keep[0]] > start or len(ts) < 2:
            continue
        shape = attributes(cid)[0]
        ts_kept = [ts[k] for k in keep]
        p, v, run = track_velocity(ts_kept, xy[keep], decel.get(shape, 0.0) * dt**2, line_tol, start)
        init[i] = [*p, *(v / dt)]
        spins[i] = track_spin(ts_kept, np.asarray(est.yaws[i])[keep], run, dt) if shape == "cube" else 0.0
    out = est.states.copy()
    for members in groups(est, list(init), start, sizes.radius * group_radii):
        if len(members) < 2:
            continue  # near no other object: its track line (``estimate.track_velocity``) sees more frames
        states, cost = _fit_group(
            est, members, [init[i] for i in members], [spins[i] for i in members], physics, sizes, start, max_nfev
        )
        if cost > line_cost(est, members, start, decel, dt):
            continue  # the tracks' own lines explain the last frames better than the simulation: keep them
        out[members] = states
    for i, (ts, xy) in enumerate(zip(est.frames, est.positions)):
        if len(ts) and ts[-1] == LAST:
            out[i, :2] += measured_weight * (xy[-1] - out[i, :2])
    return out
