"""Where the re-simulating predictor loses: its frame-10 states against the generator's true ones, and what each part
of the true state would add. Measurement only: it reads ``<data_root>/.true_states/`` (synthetic data), which no
predictor reads.

    python scripts/experiments/eval_resim_states.py --run runs/cpu-ref20 --inputs unet --videos 200 \
        --out results/experiments/resim_states_cpu.json

The fit is the run's own (``<run>/objects/resim.json``, written by notebook 06); inputs of either kind are read as
notebook 06 reads U-Net labels (``eval_resim.py`` does the same). For each val video the predictor's
states at frame 10 (``predict.estimate_inputs``, then ``fit_states.refine``) are compared with the true ones, mapped
into the fitted world (the similarity that best maps the true positions onto the estimated ones, velocities scaled
by the ratio of the frame intervals: the fitted time unit is a convention, ``fit_physics.FRAME_DT``):

- velocity errors (units/s), for objects that met another one in frames 5-10 (their true velocity changed by more
  than 0.5 units/s between two frames) and for the others, before and after the refinement;
- oracle rows: the predictor's frame-10 states with one part replaced by the true one (the velocities of the objects
  that met, of the others, of all; then also the spin and orientation; then also the positions), simulated with
  the fitted constants and drawn, each with its paired interval against the predictor;
- the predictor as it was before objects were measured where another one hides part of them
  (``estimate.measure(..., hidden=False)``), with its paired interval: what those frames add.

``--split train`` measures train videos instead (true masks in; the fit saw the first 100 of them, so take others
with ``--first``).
"""

import argparse

import numpy as np
from tqdm.auto import tqdm

from lib.common.classes import attributes
from lib.common.files import save_json
from lib.common.metrics import bootstrap_ci, bootstrap_diff_ci, iou_from_confusion, per_video_confusion
from lib.common.paths import resolve
from lib.data import dataset as data
from lib.data import true_states
from lib.objects.tracks import LAST_INPUT, TARGET
from lib.resim import bodies
from lib.resim import predict as resim
from lib.resim.fit_states import refine
from lib.resim.fitted import ResimFit
from lib.resim.simulate import new_world, simulate
from lib.segmentation.label import load_labels

MET = 0.5  # units/s: a change of the true velocity between two frames larger than this is a collision
MET_FROM = 5  # collisions from this frame on are the ones the last input frames show


def true_rows(rec, class_ids):
    """Per estimated object, its row in the true states (None where the generator has none at frame 10)."""
    out = []
    for c in class_ids:
        j = np.flatnonzero(rec.class_ids == c)
        out.append(int(j[0]) if len(j) and not np.isnan(rec.states[LAST_INPUT, j[0], 0]) else None)
    return out


def met(rec, j):
    """Whether true object ``j`` changed velocity by more than ``MET`` between two frames from ``MET_FROM`` to 10."""
    dv = np.linalg.norm(np.diff(rec.states[MET_FROM - 1 : LAST_INPUT + 1, j, 7:9], axis=0), axis=1)
    return bool(np.nanmax(dv, initial=0.0) > MET)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a run folder with objects/resim.json (and labels/ for unet)")
    ap.add_argument("--data-root", default="data/embedded")
    ap.add_argument("--inputs", choices=("true", "unet"), default="unet")
    ap.add_argument("--split", choices=("val", "train"), default="val")
    ap.add_argument("--first", type=int, default=0, help="the first video measured (its index in the split)")
    ap.add_argument("--videos", type=int, default=200, help="how many videos from --first")
    ap.add_argument("--out", default=None, help="JSON results")
    a = ap.parse_args(argv)
    run = resolve(a.run)
    fit = ResimFit.from_json(run / "objects" / "resim.json")
    camera, sizes, physics = fit.camera, fit.sizes, fit.physics
    if a.split == "train" and a.inputs == "unet":
        ap.error("train videos have no U-Net labels: use --inputs true")
    split = data.load_split(a.data_root, a.split, policy="skip")
    ids = [int(v) for v in split.ids[a.first : a.first + a.videos]]
    masks = np.asarray(split.masks[a.first : a.first + len(ids)])
    if a.inputs == "unet":
        lid, labels = load_labels(run / "labels", "val")
        where = {int(v): i for i, v in enumerate(lid)}
        inputs = np.stack([labels[where[v], : LAST_INPUT + 1] for v in ids])
    else:
        inputs = masks[:, : LAST_INPUT + 1]
    recs = true_states.load(a.data_root, ids)
    reading = {"min_area": 20, "denoise": True}  # as notebook 06 reads U-Net labels
    decel = resim.decelerations_of(physics, sizes)

    scenes, before = [], []  # (estimate, refined states): as the predictor has them, without partly hidden frames
    for x in tqdm(inputs, desc="estimate", unit="video"):
        est = resim.estimate_inputs(x, camera, sizes, physics, **reading)
        scenes.append((est, refine(est, physics, sizes, decel)))
        seen = resim.measure_inputs(x, camera, sizes, hidden=False, **reading)
        est = resim.estimate_inputs(x, camera, sizes, physics, measured=seen, **reading)
        before.append((est, refine(est, physics, sizes, decel)))
    pairs = [
        (recs[v].states[LAST_INPUT, j, :2], est.states[k, :2])
        for v, (est, _) in zip(ids, scenes)
        for k, j in enumerate(true_rows(recs[v], est.class_ids))
        if j is not None
    ]
    scale, rot, shift = true_states.similarity(np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]))

    def true_state(rec, j):
        """True object ``j`` at frame 10 in the fitted world: (position (2,), velocity (2,), spin (3,), quaternion)."""
        s, g = rec.states[LAST_INPUT, j].astype(float), rec.frame_dt / physics.frame_dt
        return scale * rot @ s[:2] + shift, scale * rot @ s[7:9] * g, s[10:13] * g, s[3:7]

    errors = {"met": {"line fit": [], "refined": []}, "free": {"line fit": [], "refined": []}}
    for v, (est, states) in zip(ids, scenes):
        for k, j in enumerate(true_rows(recs[v], est.class_ids)):
            if j is not None:
                tv = true_state(recs[v], j)[1]
                kind = "met" if met(recs[v], j) else "free"
                errors[kind]["line fit"].append(float(np.linalg.norm(est.states[k, 7:9] - tv)))
                errors[kind]["refined"].append(float(np.linalg.norm(states[k, 7:9] - tv)))

    def predict(replace, scenes=scenes):
        """Per-video confusions of frame 22 from the refined states of ``scenes`` with ``replace(rec, j, state)``
        applied."""
        preds = []
        for v, (est, states) in zip(ids, scenes):
            s = states.copy()
            for k, j in enumerate(true_rows(recs[v], est.class_ids)):
                if j is not None:
                    s[k] = replace(recs[v], j, s[k])
            new_world()  # a new client, as the predictor simulates each video's states
            sim = simulate(est.class_ids, s, TARGET - LAST_INPUT, physics, sizes) if len(s) else s[None]
            preds.append(resim.draw_scene(est.class_ids, sim[-1], camera, sizes, masks.shape[2:]))
        return per_video_confusion(np.stack(preds), masks[:, TARGET])

    def with_true(velocity=lambda rec, j: True, spin=False, position=False):
        def replace(rec, j, s):
            p, v, w, q = true_state(rec, j)
            s = s.copy()
            if velocity(rec, j):
                s[7:9] = v
                if attributes(int(rec.class_ids[j]))[0] == "sphere" and not spin:  # rolling, as the estimate has it
                    s[10:13] = bodies.rolling_spin(v, sizes)
            if spin:
                s[3:7], s[10:13] = q, w
            if position:
                s[:2] = p
            return s

        return replace

    rows = {
        "re-simulation (estimated states)": lambda rec, j, s: s,
        "true velocities of the objects that met in frames 5-10": with_true(met),
        "true velocities of the other objects": with_true(lambda rec, j: not met(rec, j)),
        "true velocities": with_true(),
        "true velocities, spins and orientations": with_true(spin=True),
        "true velocities, spins, orientations and positions": with_true(spin=True, position=True),
    }
    res = {"run": a.run, "split": a.split, "first": a.first, "inputs": a.inputs, "videos": len(ids)}
    res.update(alignment_scale=scale, rows={})
    res["velocity_error"] = {
        kind: {k: {"mean": float(np.mean(e)), "median": float(np.median(e)), "objects": len(e)} for k, e in d.items()}
        for kind, d in errors.items()
    }
    base = None
    for name, replace in tqdm(rows.items(), desc="oracle rows"):
        cm = predict(replace)
        base = cm if base is None else base
        row = {"iou": float(iou_from_confusion(cm.sum(0))[0]), "ci": bootstrap_ci(cm)}
        if cm is not base:
            row["minus re-simulation"] = bootstrap_diff_ci(cm, base)
        res["rows"][name] = row
        print(f"[states] {name}: {row['iou']:.4f} {row.get('minus re-simulation', '')}")
    cm = predict(rows["re-simulation (estimated states)"], before)
    name = "partly hidden frames left out (hidden=False)"
    res["rows"][name] = {"iou": float(iou_from_confusion(cm.sum(0))[0]), "ci": bootstrap_ci(cm)}
    res["rows"][name]["minus re-simulation"] = bootstrap_diff_ci(cm, base)
    print(f"[states] {name}: {res['rows'][name]}")
    for kind, d in res["velocity_error"].items():
        print(f"[states] velocity error, {kind}: {d}")
    if a.out:
        save_json(a.out, res)
    return res


if __name__ == "__main__":
    main()
