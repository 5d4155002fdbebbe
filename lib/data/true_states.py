"""The true 3-D states of the synthetic videos' objects, for measurement only (oracles: the ceiling of a predictor
that re-simulates scenes); no predictor reads them.

lib/data/synth.py writes one file a video, ``<data_root>/.true_states/video_<id:05d>.npz``, outside the split
folders like the hidden frame-22 truth, for every split; lib/data/scene.py records them
(``render_video(..., states=True)``, or ``true_states`` from the physics alone). The arrays of a file:

    class_ids   int64 (n,)          the video's objects, in the order of its scene plan
    states      float32 (T, n, 13)  per frame t (physics step t * frame_steps: the instant frame t shows) and object,
                                    world frame: position x, y, z of the body's centre (a shape resting on the floor
                                    has z = half its height) [POS], orientation quaternion x, y, z, w [QUAT], linear
                                    velocity (units/s) [VEL], angular velocity (rad/s) [ANG_VEL]; NaN while the
                                    object does not exist yet (entrants spawn mid-video)
    spawn_step  int64 (n,)          the physics step the object appears at (0 for the objects of frame 0)
    entrant     bool (n,)           whether it enters from a frame edge mid-video
    frame_dt    float64 ()          seconds between two frames (frame_steps / hz)

``load`` reads them, computing (and writing) the missing ones from the generator's record ``SYNTHETIC.json``
(seed and settings), so datasets generated before the states existed work too. Data in the real layout has no
record and so no true states: ``NoTrueStates``, saying why.

    recs = true_states.load("data/embedded", [1000, 1001])
    recs[1000].states[10, :, true_states.POS]   # (n, 3) positions at frame 10
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lib.common.files import atomic_path
from lib.common.paths import resolve
from lib.data import scene

DIR = ".true_states"  # under the data root
POS, QUAT, VEL, ANG_VEL = slice(0, 3), slice(3, 7), slice(7, 10), slice(10, 13)  # the 13 values of a state
MARKER = "SYNTHETIC.json"  # the generator's record (lib/data/prepare.py)


class NoTrueStates(FileNotFoundError):
    """True states that can be neither read nor computed: data without the generator's record (real data)."""


@dataclass(frozen=True)
class TrueStates:
    """One video's true states (the arrays of the module doc)."""

    class_ids: np.ndarray
    states: np.ndarray
    spawn_step: np.ndarray
    entrant: np.ndarray
    frame_dt: float


def path(data_root, vid):
    """The true-states file of video ``vid``."""
    return Path(data_root) / DIR / f"video_{vid:05d}.npz"


def save(file, record):
    """Write a record (the dict of ``scene.true_states``) to ``file`` atomically."""
    with atomic_path(file) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **record)


def load(data_root, video_ids):
    """{video id: TrueStates} of the videos ``video_ids`` of the dataset at ``data_root``. A missing file is computed
    from the physics (``scene.true_states``, the seed and settings of ``SYNTHETIC.json``) and written; without
    ``SYNTHETIC.json`` a missing file is ``NoTrueStates``."""
    root = resolve(data_root)
    meta = None
    out = {}
    for vid in video_ids:
        vid = int(vid)
        file = path(root, vid)
        if file.is_file():
            with np.load(file) as z:
                record = {k: z[k] for k in z.files}
        else:
            if meta is None:
                meta = _generator_record(root, file)
            record = scene.true_states(vid, meta.get("seed", 0), **(meta.get("config") or meta.get("cfg", {})))
            try:
                save(file, record)
            except OSError:  # a read-only dataset: the states are still returned
                pass
        out[vid] = TrueStates(**{**record, "frame_dt": float(record["frame_dt"])})
    return out


def _generator_record(root, missing):
    """The generator's record of the dataset at ``root``, or ``NoTrueStates`` naming the ``missing`` file."""
    marker = root / MARKER
    if not marker.is_file():
        raise NoTrueStates(
            f"{missing} does not exist and {root} has no {MARKER} (the generator's seed and settings) to compute "
            "it from: true states exist only for the synthetic dataset, data in the real layout has none"
        )
    return json.loads(marker.read_text())


def similarity(src, dst):
    """(scale, rotation (2, 2), shift) of the 2-D similarity that maps points ``src`` (n, 2) closest onto ``dst``
    (Umeyama's least squares)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a)
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ d @ vt
    scale = float(np.trace(np.diag(sig) @ d) / (a**2).sum())
    return scale, rot, mu_d - scale * rot @ mu_s
