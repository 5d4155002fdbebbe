"""Speed of the re-simulating predictor, stage by stage, in one process: videos/s of measuring the input frames
(``estimate.measure``, each object located in a window of the image, and the same with the whole image drawn each
time, as before windows), of estimating and refining the frame-10 states (``estimate`` + ``fit_states.refine``),
of simulating to frame 21, of drawing frame 21, and of the vote where objects meet in that simulation.

python scripts/bench/bench_resim.py --run RUN --videos 50      # RUN: a run folder whose notebook 06 fitted resim
"""

import argparse
import time
from pathlib import Path

import numpy as np

from lib.data import dataset
from lib.resim import estimate as estimate_module
from lib.resim import predict as resim
from lib.resim.draw import draw
from lib.resim.fit_states import refine
from lib.resim.fitted import ResimFit
from lib.resim.simulate import simulate
from lib.resim.vote import vote_prediction


def whole_image(cid, class_ids, states, camera, sizes, supersample, box):
    """``estimate.draw_around`` as it was before windows: the whole image drawn."""
    return draw(class_ids, states, camera, sizes, supersample=supersample), (0, 0)


def timed(fn, items):
    t0 = time.perf_counter()
    out = [fn(x) for x in items]
    return out, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="run folder with objects/resim.json (notebook 06)")
    ap.add_argument("--data-root", type=Path, default=Path("data/embedded"))
    ap.add_argument("--videos", type=int, default=50, help="val videos timed (their true masks are the inputs)")
    args = ap.parse_args()
    path = args.run / "objects" / "resim.json"
    if not path.is_file():
        raise SystemExit(f"{path}: no re-simulation fit; run notebook 06 with resim = True on {args.run} first")
    fit = ResimFit.from_json(path)
    camera, sizes, physics = fit.camera, fit.sizes, fit.physics
    split = dataset.load_split(args.data_root, "val", policy="skip")
    inputs = [np.asarray(m[:11]) for m in split.masks[: args.videos]]
    n = len(inputs)
    decel = resim.decelerations_of(physics, sizes)
    resim.measure_inputs(inputs[0], camera, sizes)  # start-up: the drawing client and its bodies

    measured, t_window = timed(lambda x: resim.measure_inputs(x, camera, sizes), inputs)
    windowed = estimate_module.draw_around
    estimate_module.draw_around = whole_image
    try:
        again, t_whole = timed(lambda x: resim.measure_inputs(x, camera, sizes), inputs)
    finally:
        estimate_module.draw_around = windowed
    moved = max(
        (float(np.abs(a.positions - b.positions).max()) for ma, mb in zip(measured, again) for a, b in zip(ma, mb)),
        default=0.0,
    )

    def states(args_):
        x, m = args_
        est = resim.estimate_inputs(x, camera, sizes, physics, measured=m)
        return est.class_ids, refine(est, physics, sizes, decel)

    def forward(scene):
        touched = np.zeros(len(scene[0]), bool)
        return simulate(scene[0], scene[1], 11, physics, sizes, touched), touched

    def vote(args_):
        (cids, states10), (_, touched), first = args_
        return vote_prediction(cids, states10, touched, first, camera, sizes, physics, 11, resim.SUPERSAMPLE)

    scenes, t_refine = timed(states, list(zip(inputs, measured)))
    sims, t_sim = timed(forward, scenes)
    drawn, t_draw = timed(
        lambda a: resim.draw_scene(a[0][0], a[1][0][-1], camera, sizes, (160, 240)), list(zip(scenes, sims))
    )
    _, t_vote = timed(vote, list(zip(scenes, sims, drawn)))
    meet = sum(bool(t.any()) for _, t in sims)

    print(f"{n} val videos (true masks in), one process")
    print(
        f"measuring, windows: {n / t_window:.1f} videos/s ({t_window / n:.3f} s a video); whole image drawn: "
        f"{n / t_whole:.1f} videos/s ({t_whole / n:.3f} s); {t_whole / t_window:.2f}x; positions apart by "
        f"at most {moved:.1e} units"
    )
    total = t_window + t_refine + t_sim + t_draw + t_vote
    for name, t in (
        ("measuring", t_window),
        ("estimate + refine", t_refine),
        ("simulate to frame 21", t_sim),
        ("draw", t_draw),
        (f"vote where objects meet ({meet} of {n} videos)", t_vote),
    ):
        print(f"{name}: {n / t:.1f} videos/s, {100 * t / total:.0f}% of a prediction")
    print(f"a prediction: {n / total:.2f} videos/s ({total / n:.3f} s a video)")


if __name__ == "__main__":
    main()
