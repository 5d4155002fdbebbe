"""The pinhole camera of the re-simulating predictor: it looks at the floor plane z = 0 from above.

Its constants (field of view, elevation, distance, target, azimuth) are parameters, to be fitted from train masks;
the convention is that of the videos' renderer, so the generator's constants are recovered as these parameters.
The matrices are pybullet's (computeViewMatrix / computeProjectionMatrixFOV, float32 precision), so projections
move in steps of about 1e-6 of their size: fit with parameter steps well above that.

    cam = Camera(fov=32, elev=38, dist=10, target_y=0.5)
    xy = cam.project([[0, 0, 0.5]])      # (1, 2) pixel (x, y); pixel i spans [i, i + 1)
    cam.floor_point(120, 80)             # world (x, y) on the floor seen at that pixel
"""

import math
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

NEAR = 0.5  # near clipping plane; the far one is at 4 * dist


@dataclass(frozen=True)
class Camera:
    """Pinhole camera (angles in degrees, vertical field of view ``fov``) at ``dist`` from the target
    (0, target_y, 0) on the floor, ``elev`` above the floor, turned by ``azim`` about +z (0 looks along +y);
    up is +z. Images are ``width`` x ``height`` pixels."""

    fov: float
    elev: float
    dist: float
    target_y: float
    azim: float = 0.0
    width: int = 240
    height: int = 160

    @cached_property
    def eye(self):
        """World position (3,) of the camera."""
        el, az = math.radians(self.elev), math.radians(self.azim)
        d = np.array([math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), math.sin(el)])
        return np.array([0.0, self.target_y, 0.0]) + self.dist * d

    def view_matrix(self):
        """pybullet's view matrix (16 floats, column-major), as getCameraImage takes it."""
        import pybullet

        return pybullet.computeViewMatrix(self.eye.tolist(), [0.0, self.target_y, 0.0], [0, 0, 1])

    def projection_matrix(self):
        """pybullet's projection matrix (16 floats, column-major), as getCameraImage takes it."""
        import pybullet

        return pybullet.computeProjectionMatrixFOV(self.fov, self.width / self.height, NEAR, 4 * self.dist)

    def window_projection_matrix(self, x0, y0, x1, y1):
        """The projection matrix (16 floats, column-major) that draws only the pixels [x0, x1) x [y0, y1) of the
        image onto a (x1 - x0) x (y1 - y0) one: the frustum cut to that window (an off-centre projection)."""
        a, b = 2 * x0 / self.width - 1, 2 * x1 / self.width - 1  # the window's left and right in NDC
        top, bottom = 1 - 2 * y0 / self.height, 1 - 2 * y1 / self.height
        crop = np.eye(4)
        crop[0, 0], crop[0, 3] = 2 / (b - a), -(a + b) / (b - a)
        crop[1, 1], crop[1, 3] = 2 / (top - bottom), -(top + bottom) / (top - bottom)
        proj = np.array(self.projection_matrix()).reshape(4, 4).T
        return (crop @ proj).T.ravel().tolist()

    @cached_property
    def matrix(self):
        """(4, 4) world -> clip coordinates (projection @ view)."""
        proj = np.array(self.projection_matrix()).reshape(4, 4).T
        return proj @ np.array(self.view_matrix()).reshape(4, 4).T

    @cached_property
    def inverse(self):
        """(4, 4) clip -> world coordinates."""
        return np.linalg.inv(self.matrix)

    def project(self, pts):
        """(n, 3) world points -> (n, 2) pixel (x, y); the centre of pixel (i, j) is (j + 0.5, i + 0.5)."""
        pts = np.asarray(pts, np.float64).reshape(-1, 3)
        c = np.c_[pts, np.ones(len(pts))] @ self.matrix.T
        ndc = c[:, :2] / c[:, 3:4]
        return np.c_[(ndc[:, 0] + 1) * 0.5 * self.width, (1 - ndc[:, 1]) * 0.5 * self.height]

    def floor_point(self, x, y):
        """World (x, y) (2,) of the point of the floor z = 0 seen at pixel (x, y)."""
        nx, ny = 2 * x / self.width - 1, 1 - 2 * y / self.height
        a = self.inverse @ np.array([nx, ny, -1.0, 1.0])
        b = self.inverse @ np.array([nx, ny, 1.0, 1.0])
        a, b = a[:3] / a[3], b[:3] / b[3]
        t = a[2] / (a[2] - b[2])
        return (a + t * (b - a))[:2]

    def scaled(self, k):
        """The same camera at ``k`` x the resolution."""
        return replace(self, width=self.width * k, height=self.height * k)
