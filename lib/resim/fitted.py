"""The fitted constants of the re-simulating predictor as one record: the camera and object sizes
(``fit_camera.py``) and the physics (``fit_physics.py``), fitted on train masks, with what they were fitted from.
Notebook 06 keeps it in ``<run_dir>/objects/resim.json`` and fits again only when the train data or the number of
videos changed.

    fit, reused = load_or_fit(run / "objects" / "resim.json", train.masks[:100], {"train": train.fingerprint,
                              "videos": 100})
    fit.camera, fit.sizes, fit.physics          # what lib/resim/predict.py takes
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lib.common.files import save_json
from lib.resim.fit_camera import CameraFit, fit_camera
from lib.resim.fit_physics import PhysicsFit, fit_physics

FIT_VERSION = 10  # raised when the code changes what a fit holds (2: partly hidden frames measured; 3: objects touching
# another one measured beside it, mass ratio 3 in the grid; 4: label errors left out; 5: objects beside others
# moved to the best overlap, nearer ones first; 6: objects across a one-pixel seam touch, frame-10 positions halfway
# to the measured ones; 7: objects near no other keep their track lines; 8: cubes measured at each frame's yaw; 9: a
# 10-degree first yaw grid, unmoved objects not measured again; 10: moving cubes spin as their yaws show); older
# fits are refitted


@dataclass(frozen=True)
class ResimFit:
    """The camera fit, the physics fit, and ``source``: what they were fitted from (notebook 06: the train split's
    fingerprint and the number of its videos)."""

    camera_fit: CameraFit
    physics_fit: PhysicsFit
    source: dict

    @property
    def camera(self):
        return self.camera_fit.camera

    @property
    def sizes(self):
        """The object sizes as lib/resim/bodies.py's ``Sizes``."""
        return self.camera_fit.body_sizes()

    @property
    def physics(self):
        return self.physics_fit.physics

    def summary(self):
        """The fitted values and the seconds each fit took, as plain values (for a notebook's metrics)."""
        return {
            "source": self.source,
            "camera": asdict(self.camera),
            "sizes": self.camera_fit.sizes,
            "n_obs": self.camera_fit.n_obs,
            "physics": asdict(self.physics),
            "slowing": self.physics_fit.slowing,
            "collision_scores": self.physics_fit.scores,
            "seconds": {"camera fit": self.camera_fit.seconds, "physics fit": self.physics_fit.seconds},
        }

    def to_json(self, path):
        """Write the fit to ``path`` as JSON (atomically)."""
        save_json(
            path,
            {"source": self.source, "camera_fit": self.camera_fit.to_dict(), "physics_fit": self.physics_fit.to_json()},
        )

    @classmethod
    def from_json(cls, path):
        """The fit a ``to_json`` file holds; ValueError naming the file when it holds none."""
        try:
            d = json.loads(Path(path).read_text())
            return cls(CameraFit.from_dict(d["camera_fit"]), PhysicsFit.from_json(d["physics_fit"]), d["source"])
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a re-simulation fit ({type(e).__name__}: {e})") from e


def fit_constants(masks, source, *, workers=1, progress=False):
    """``ResimFit`` of the (22, H, W) class-id mask videos ``masks`` (train): the camera and sizes, then the physics
    seen through them (its videos in ``workers`` processes: the same fit). ValueError when the masks cannot give
    them (no whole sphere for the camera, no sliding object that moves freely long enough for the friction)."""
    videos = [np.asarray(m) for m in masks]
    if not videos:
        raise ValueError("no train videos to fit the camera and physics on")
    camera_fit = fit_camera(videos)
    sizes = camera_fit.body_sizes()
    physics_fit = fit_physics(videos, camera_fit.camera, sizes, workers=workers, progress=progress)
    return ResimFit(camera_fit, physics_fit, dict(source))


def stored_fit(path, source):
    """The fit ``path`` holds when it was made from ``source``; None when there is none, or one of other data or
    settings, or a file that holds no fit."""
    if not Path(path).is_file():
        return None
    try:
        fit = ResimFit.from_json(path)
    except ValueError:
        return None
    return fit if fit.source == source else None


def load_or_fit(path, masks, source, *, workers=1, progress=False):
    """(fit, reused): the fit stored in ``path`` when it was made from ``source`` by this ``FIT_VERSION``, else one
    fitted on ``masks`` (``fit_constants``, in ``workers`` processes) and written to ``path``."""
    source = {**source, "fit_version": FIT_VERSION}
    fit = stored_fit(path, source)
    if fit is not None:
        return fit, True
    fit = fit_constants(masks, source, workers=workers, progress=progress)
    fit.to_json(path)
    return fit, False
