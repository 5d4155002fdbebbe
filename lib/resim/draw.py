"""The mask of a 3-D scene state as the camera sees it: class id per pixel, 0 = background.

pybullet's TinyRenderer draws the objects' segmentation buffer (its depth buffer puts nearer objects over farther
ones; the frame's border cuts objects that leave it); the floor is not drawn. With ``supersample`` k the scene is
drawn at k x the resolution and each pixel takes the label of its k x k sub-pixels by the rule the videos' masks
were made with (``downsample``). One pybullet DIRECT client per process holds a body per class id, moved to each
call's states, so that a call costs one render. Where two objects pass through each other, a pixel of the line where
they meet goes to the one the client lists first, and that order comes from the calls before (bodies are made on
first use, parked, removed, their ids reused); ``new_canvas`` empties the client, so that what follows depends on
the calls after it alone.

    mask = draw(class_ids, states, Camera(32, 38, 10, 0.5), Sizes(0.5), supersample=2)   # (160, 240) uint8
"""

import os

import numpy as np

from lib.resim import bodies

_PARKED = [0.0, 0.0, -1000.0]  # where bodies not in the scene wait: far below the floor, out of every view
MAX_PARKED = 6  # parked bodies kept for later calls (each costs render time); the others are removed
MAX_CREATED = 1000  # bodies created before the client is emptied (removed bodies leave their shapes behind)
_CLIENT = {"pid": None, "id": None, "sizes": None, "bodies": {}, "created": 0, "renew": False}


def _client(sizes):
    """This process's drawing client, emptied when the object size changes and after ``new_canvas``; its bodies:
    class id -> uid."""
    import pybullet as pb

    c = _CLIENT
    if c["pid"] != os.getpid() or not pb.isConnected(c["id"]):
        c.update(pid=os.getpid(), id=pb.connect(pb.DIRECT), sizes=None)
    if c["sizes"] != sizes or c["created"] > MAX_CREATED or c["renew"]:
        pb.resetSimulation(physicsClientId=c["id"])
        c.update(sizes=sizes, bodies={}, created=0, renew=False)
    return c


def new_canvas():
    """Empty this process's drawing client at the next ``draw`` call, its bodies made again in the order the calls
    after it need them. Without it one pixel of one window, drawn after other videos had been measured, moved a
    val video's measured positions by up to 0.24 units, and its prediction changed with the videos a process had
    measured before it. ``estimate.measure`` calls this first and ``predict.draw_scene`` before the final mask, so
    that a video's positions and mask depend on that video alone."""
    _CLIENT["renew"] = True


def downsample(seg, k):
    """Label of each k x k block of ``seg``: for k = 2 the majority (a tie goes to the top-left sub-pixel:
    any label seen twice wins, else the top-left one), for other k the centre sub-pixel (k // 2, k // 2)."""
    if k == 1:
        return seg
    if k != 2:
        return seg[k // 2 :: k, k // 2 :: k]
    a, b, c, d = seg[0::2, 0::2], seg[0::2, 1::2], seg[1::2, 0::2], seg[1::2, 1::2]
    return np.where((a == b) | (a == c) | (a == d), a, np.where((b == c) | (b == d), b, np.where(c == d, c, a)))


def draw(class_ids, states, camera, sizes, supersample=1, window=None):
    """(camera.height, camera.width) uint8 mask of the objects of ``class_ids`` (n,) in ``states`` (n, 13)
    (position, quaternion xyzw, velocities; NaN rows are absent and skipped), 0 where no object is. ``window``:
    (y0, x0, y1, x1), the pixels of the image to draw (inside it), whose (y1 - y0, x1 - x0) mask is returned: the
    whole image's pixels there, for a fraction of the time (drawing costs about its pixel count), but for rounding
    (the window's projection is another matrix): now and then an edge pixel, or which of two objects that pass
    through each other is in front, differs."""
    import pybullet as pb

    c = _client(sizes)
    cli, known = c["id"], c["bodies"]
    states = np.asarray(states, np.float64).reshape(-1, bodies.STATE)
    present = {}
    for cid, s in zip(np.asarray(class_ids).tolist(), states):
        if np.isnan(s[:7]).any():
            continue
        if cid not in known:
            known[cid] = bodies.create_body(cli, cid, sizes, s)
            c["created"] += 1
        bodies.set_state(cli, known[cid], s)
        present[known[cid]] = cid
    for i, cid in enumerate(sorted(cid for cid, uid in known.items() if uid not in present)):
        if i < MAX_PARKED:
            pb.resetBasePositionAndOrientation(known[cid], _PARKED, [0, 0, 0, 1], physicsClientId=cli)
        else:
            pb.removeBody(known.pop(cid), physicsClientId=cli)
    cam = camera.scaled(supersample)
    if window is None:
        width, height, projection = cam.width, cam.height, cam.projection_matrix()
    else:
        y0, x0, y1, x1 = (int(v) * supersample for v in window)
        width, height, projection = x1 - x0, y1 - y0, cam.window_projection_matrix(x0, y0, x1, y1)
    _, _, _, _, seg = pb.getCameraImage(
        width, height, cam.view_matrix(), projection, renderer=pb.ER_TINY_RENDERER, shadow=0, physicsClientId=cli
    )
    seg = np.asarray(seg).reshape(height, width)
    lut = np.zeros(max(known.values(), default=0) + 2, np.uint8)  # body uid + 1 -> class id; -1 (nothing) -> 0
    for uid, cid in present.items():
        lut[uid + 1] = cid
    return lut[downsample(seg, supersample) + 1]
