"""Re-simulation toolkit of the object predictor: the 3-D scene behind the masks, simulated forward and drawn.

Each object's 3-D state (position, orientation, velocities) is estimated from the masks of frames 0-10, a rigid-body
simulator moves the scene to frame 21, and the camera draws its mask. One job per module:

- ``camera.py``: the pinhole camera looking at the floor (projection, floor points, pybullet matrices);
- ``bodies.py``: the objects' sizes, states and pybullet bodies (shared by draw and simulate);
- ``draw.py``: the class-id mask of a scene state;
- ``simulate.py``: the physical constants and the pybullet simulation of a state forward in time;
- ``fit_camera.py``, ``fit_physics.py``, ``fitted.py``: those constants fitted on train masks, and their record;
- ``estimate.py``: each object's floor positions measured in frames 0-10, and its state at frame 10;
- ``fit_states.py``: the frame-10 states refined by simulating the last input frames;
- ``predict.py``: the predictor (estimate, refine, simulate, draw), a video or a split at a time;
- ``vote.py``: where objects meet, the vote of simulations from perturbed states;
- ``combine.py``: re-simulated objects that meet, another predictor's elsewhere.

Every constant (camera, object size, friction, restitution, masses, frame interval) is a parameter to be fitted
from train masks: nothing here imports or reads the videos' generator (lib/data/scene.py, synth.py, shading.py),
which tests/unit/resim/test_camera.py checks.
"""
