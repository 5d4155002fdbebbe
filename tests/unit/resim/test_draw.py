"""The mask of a scene state: position and size of a sphere's disc, occlusion, the frame's border, orientation,
class ids, and the generator's masks recovered from its own constants."""

import math
from dataclasses import replace

import numpy as np

from lib.common.classes import attributes, class_id
from lib.resim.bodies import Sizes, rest_state
from lib.resim.camera import Camera
from lib.resim.draw import downsample, draw, new_canvas

CAM = Camera(fov=32, elev=38, dist=10, target_y=0.5)
SIZES = Sizes(0.5)
SPHERE = class_id("sphere", "rubber", "red")
CUBE = class_id("cube", "metal", "blue")
CYLINDER = class_id("cylinder", "rubber", "green")


def at_pixel(cid, x, y, sizes=SIZES, cam=CAM):
    """State of object ``cid`` resting on the floor point seen at pixel (x, y)."""
    return rest_state(cam.floor_point(x, y), attributes(cid)[0], sizes)


def test_sphere_disc_centre_and_area():
    s = at_pixel(SPHERE, 100, 90)
    mask = draw([SPHERE], s[None], CAM, SIZES)
    assert mask.shape == (160, 240) and mask.dtype == np.uint8 and set(np.unique(mask)) == {0, SPHERE}
    ys, xs = np.nonzero(mask == SPHERE)
    np.testing.assert_allclose([xs.mean() + 0.5, ys.mean() + 0.5], CAM.project(s[None, :3])[0], atol=1.0)
    f = 0.5 * CAM.height / math.tan(math.radians(CAM.fov) / 2)  # focal length, pixels
    d = np.linalg.norm(s[:3] - CAM.eye)
    r_px = f * math.tan(math.asin(SIZES.radius / d))
    assert abs(len(ys) / (math.pi * r_px**2) - 1) < 0.1


def test_near_object_hides_far_one():
    far, near = at_pixel(CUBE, 120, 70), at_pixel(CYLINDER, 120, 85)
    alone = (draw([CUBE], far[None], CAM, SIZES) == CUBE).sum()
    both = draw([CUBE, CYLINDER], np.stack([far, near]), CAM, SIZES)
    assert 0 < (both == CUBE).sum() < 0.8 * alone
    assert (both == CYLINDER).sum() == (draw([CYLINDER], near[None], CAM, SIZES) == CYLINDER).sum()
    # the order of the objects in the input does not matter
    np.testing.assert_array_equal(draw([CYLINDER, CUBE], np.stack([near, far]), CAM, SIZES), both)


def test_object_half_out_of_the_frame_is_cut():
    inside = (draw([SPHERE], at_pixel(SPHERE, 120, 80)[None], CAM, SIZES) == SPHERE).sum()
    s = at_pixel(SPHERE, 0, 80)  # on the floor point of the left border: the centre is seen just outside it
    assert -5 < CAM.project(s[None, :3])[0, 0] < 0
    edge = draw([SPHERE], s[None], CAM, SIZES) == SPHERE
    assert edge[:, 0].any() and 0.3 < edge.sum() / inside < 0.5
    gone = at_pixel(SPHERE, -100, 80)
    assert not draw([SPHERE], gone[None], CAM, SIZES).any()


def test_cube_yaw_changes_its_mask():
    s0 = at_pixel(CUBE, 120, 80)
    s45 = s0.copy()
    s45[3:7] = [0, 0, math.sin(math.pi / 8), math.cos(math.pi / 8)]  # 45 degrees about z
    m0, m45 = draw([CUBE], s0[None], CAM, SIZES), draw([CUBE], s45[None], CAM, SIZES)
    assert (m0 != m45).sum() > 20
    s90 = s0.copy()
    s90[3:7] = [0, 0, math.sqrt(0.5), math.sqrt(0.5)]  # a quarter turn: the same cube
    assert (draw([CUBE], s90[None], CAM, SIZES) != m0).sum() <= 5


def test_class_ids_absent_objects_and_sizes():
    cids = [CUBE, SPHERE, CYLINDER, class_id("sphere", "metal", "yellow")]
    states = np.stack([at_pixel(c, x, 80) for c, x in zip(cids, [40, 100, 160, 210])])
    states[3] = np.nan  # absent
    mask = draw(cids, states, CAM, SIZES)
    assert set(np.unique(mask)) == {0, CUBE, SPHERE, CYLINDER}
    for cid, x in zip(cids[:3], [40, 100, 160]):
        assert mask[75:85, x - 3 : x + 3].max() == cid
    assert not draw([], np.zeros((0, 13)), CAM, SIZES).any()
    # a bigger radius gives a bigger object; the camera's size sets the mask's
    big = draw([SPHERE], at_pixel(SPHERE, 100, 80, Sizes(0.7))[None], CAM, Sizes(0.7))
    assert (big == SPHERE).sum() > 1.8 * (mask == SPHERE).sum()
    assert draw([SPHERE], states[1:2], CAM.scaled(2), SIZES).shape == (320, 480)


def test_downsample_follows_the_generator():
    from lib.data import shading

    seg = np.random.default_rng(0).integers(-1, 3, (48, 72))
    for k in (1, 2, 3):
        np.testing.assert_array_equal(downsample(seg, k), shading._downsample_mask(seg, k))


def test_generator_constants_give_the_generator_masks():
    """Bodies placed by the generator's own code and drawn by its renderer (2x supersampled) give the mask that
    draw() gives of their states with the generator's constants."""
    import pybullet as pb

    from lib.data import scene, shading
    from lib.resim.bodies import get_state

    cfg = replace(scene.DEFAULT, supersample=2)
    cam = Camera(cfg.fov, cfg.cam_elev, cfg.cam_dist, cfg.cam_target_y, cfg.cam_azim, cfg.width, cfg.height)
    cli = pb.connect(pb.DIRECT)
    try:
        cids = [CUBE, SPHERE, CYLINDER, class_id("cube", "rubber", "cyan"), class_id("sphere", "metal", "gray")]
        pixels = [(60, 70), (120, 60), (150, 100), (0, 120), (75, 80)]  # one cut by the border, one behind another
        uids = [scene._add_object(cli, cfg, c, cam.floor_point(*p), (0.0, 0.0)) for c, p in zip(cids, pixels)]
        pb.resetBasePositionAndOrientation(uids[0], [*cam.floor_point(60, 70), 0.4], [0, 0, 0.3, 0.954], cli)
        seg = shading.Renderer(cfg).draw(cli, {}, with_rgb=False)[1]
        lut = np.zeros(max(uids) + 2, np.uint8)
        lut[np.array(uids) + 1] = cids
        truth = lut[seg + 1]
        states = np.stack([get_state(cli, u) for u in uids])
    finally:
        pb.disconnect(cli)
    assert set(np.unique(truth)) == {0, *cids}
    np.testing.assert_array_equal(draw(cids, states, cam, Sizes(cfg.radius), supersample=2), truth)


def test_calls_do_not_leak_into_each_other():
    """Bodies of earlier calls are parked out of sight or removed: each mask depends on its own call only."""
    a_ids, b_ids = [CUBE, SPHERE], [CYLINDER, class_id("sphere", "metal", "yellow")]
    a = np.stack([at_pixel(c, x, 80) for c, x in zip(a_ids, [60, 120])])
    b = np.stack([at_pixel(c, x, 80) for c, x in zip(b_ids, [90, 180])])
    first = draw(a_ids, a, CAM, SIZES)
    assert set(np.unique(draw(b_ids, b, CAM, SIZES))) == {0, *b_ids}
    everyone = list(range(1, 49))  # more bodies than are kept parked
    draw(everyone, np.stack([at_pixel(c, 5 * c, 100) for c in everyone]), CAM, SIZES)
    np.testing.assert_array_equal(draw(a_ids, a, CAM, SIZES), first)


def test_a_window_draws_the_pixels_of_the_whole_image():
    """A window of the image (inside it, at its corners and edges, through a near object over a far one, cut by the
    border, supersampled) is the whole image's drawing cut to it, pixel for pixel (rounding can flip an edge pixel
    of other windows)."""
    cids = [CUBE, CYLINDER, SPHERE]
    states = np.stack([at_pixel(CUBE, 120, 70), at_pixel(CYLINDER, 120, 85), at_pixel(SPHERE, 3, 150)])
    windows = [(50, 90, 110, 150), (0, 0, 40, 60), (120, 0, 160, 30), (0, 200, 160, 240), (60, 100, 61, 101)]
    for supersample in (1, 2):
        whole = draw(cids, states, CAM, SIZES, supersample=supersample)
        assert len(np.unique(whole)) == 4
        for y0, x0, y1, x1 in windows:
            part = draw(cids, states, CAM, SIZES, supersample=supersample, window=(y0, x0, y1, x1))
            np.testing.assert_array_equal(part, whole[y0:y1, x0:x1])


def test_new_canvas_makes_a_call_independent_of_the_calls_before():
    """Two cylinders that pass through each other (as a val video's measurement drew them, fitted camera and sizes):
    one pixel of the line where they meet goes to the body the drawing client lists first, so the same call can
    draw it otherwise after other calls. After ``new_canvas`` the mask is the one a new process draws."""
    cam = Camera(fov=32.02577245746966, elev=37.995367206090854, dist=10.014394823350488, target_y=0.0)
    sizes = Sizes(0.5, 0.3997009318364003, 0.5001956889503816, 0.49884956340434833)
    near, far = class_id("cylinder", "metal", "red"), class_id("cylinder", "rubber", "brown")
    cids = [near, class_id("cube", "metal", "red"), far]
    states = np.stack(
        [
            rest_state((1.6262379172165713, -2.071225810701115), "cylinder", sizes),
            rest_state((1.2065836296987038, -2.5166834564888667), "cube", sizes),
            rest_state((1.798706476536955, -1.6220524612423952), "cylinder", sizes),
        ]
    )
    states[1, 3:7] = [0.0, 0.0, 0.6427876096865393, 0.766044443118978]  # the cube turned by 80 degrees
    window = (84, 153, 138, 203)

    def drawn_after(first_drawn):
        for cid in first_drawn:  # its body made first
            draw([cid], states[cids.index(cid)][None], cam, sizes, supersample=2)
        return draw(cids, states, cam, sizes, supersample=2, window=window)

    new_canvas()
    fresh = drawn_after([])
    new_canvas()
    assert not np.array_equal(drawn_after([far]), fresh)  # the order of the bodies decides a pixel
    new_canvas()
    np.testing.assert_array_equal(drawn_after([]), fresh)
