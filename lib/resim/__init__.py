"""Re-simulation toolkit of the object predictor: the 3-D scene behind the masks, simulated forward and drawn.

Each object's 3-D state (position, orientation, velocities) is estimated from the masks of frames 0-10, a rigid-body
simulator moves the scene to frame 21, and the camera draws its mask. One job per module:

- ``camera.py``: the pinhole camera looking at the floor (projection, floor points, pybullet matrices);
- ``bodies.py``: the objects' sizes, states and pybullet bodies (shared by draw and simulate);
- ``draw.py``: the class-id mask of a scene state;
- ``simulate.py``: the physical constants and the pybullet simulation of a state forward in time.

Every constant (camera, object size, friction, restitution, masses, frame interval) is a parameter to be fitted
from train masks: nothing here imports or reads the videos' generator (lib/data/scene.py, synth.py, shading.py),
which tests/unit/resim/test_camera.py checks.
"""
