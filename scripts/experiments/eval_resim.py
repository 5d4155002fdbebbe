"""The re-simulating object predictor (lib/resim) on a finished run's val and hidden videos, against its notebook 06
predictors: camera, sizes and physics fitted on train masks, frame 22 predicted from true and from U-Net input
masks, with paired 95% intervals against the run's physics and learned models (their per-video confusions of
``metrics/06_val_confusion.npz``), what each failure category costs (as notebook 06 counts them), and oracle rows
from the generator's true 3-D states (``.true_states/``: measurement only; the predictor never reads them).

    python scripts/experiments/eval_resim.py --run runs/cpu-ref7 --out results/experiments/resim_cpu.json

Oracle rows (U-Net inputs are not used by them; they need the generator's states, so synthetic data only):
- ``ceiling (true states, true constants)``: the true frame-10 states simulated with the generator's own camera,
  sizes and physics, drawn: what re-simulation gives with perfect states and constants (entrants that appear after
  frame 10 are missed; a restarted simulation differs a little from one that never stopped);
- ``true positions, estimated velocities``: the true frame-10 floor positions (mapped into the fitted frame by the
  similarity that best maps true onto estimated positions) with the velocities the predictor estimated from the
  true masks, simulated with the fitted constants: the cost of position errors alone.
"""

import argparse
import json
import time
from dataclasses import asdict

import numpy as np
from tqdm.auto import tqdm

from lib.common.files import save_json
from lib.common.metrics import bootstrap_ci, bootstrap_diff_ci, iou_from_confusion, per_video_confusion
from lib.common.paths import resolve
from lib.data import dataset as data
from lib.data import scene, true_states  # the generator: its constants and true states, for the oracle rows only
from lib.objects import oracle
from lib.resim import predict as resim
from lib.resim.bodies import Sizes
from lib.resim.camera import Camera
from lib.resim.draw import draw
from lib.resim.fit_camera import fit_camera
from lib.resim.fit_physics import fit_physics
from lib.resim.simulate import Physics, simulate
from lib.segmentation.label import load_labels

LEARNED, PHYSICS = "learned (physics + attention residual)", "physics (floor + collisions)"


def score(pred, true22, seed=0):
    cm = per_video_confusion(pred, true22)
    return {"iou": float(iou_from_confusion(cm.sum(0))[0]), "ci": bootstrap_ci(cm, seed=seed)}, cm


def oracle_rows(val_ids, scenes, data_root, camera, sizes, physics):
    """The two oracle rows' frame-22 predictions (module doc), or None on data without true states. ``scenes``:
    per val video the (class ids, frame-10 states) the predictor estimated from its true masks."""
    try:
        recs = true_states.load(data_root, val_ids)
    except true_states.NoTrueStates as e:
        print(f"[resim] no oracle rows: {e}")
        return None
    cfg = scene.DEFAULT
    true_cam = Camera(cfg.fov, cfg.cam_elev, cfg.cam_dist, cfg.cam_target_y, cfg.cam_azim)
    true_sizes = Sizes(cfg.radius)
    true_phys = Physics(cfg.friction, cfg.rolling_friction, cfg.restitution, cfg.metal_mass / cfg.rubber_mass,
                        cfg.frame_steps / cfg.hz, cfg.frame_steps)  # fmt: skip
    ceiling, pairs = [], []
    for v, (cids, states) in tqdm(list(zip(val_ids, scenes)), desc="oracles: true states", unit="video"):
        r = recs[int(v)]
        sim = simulate(r.class_ids, r.states[10], 11, true_phys, true_sizes)
        ceiling.append(draw(r.class_ids, sim[-1], true_cam, true_sizes, supersample=resim.SUPERSAMPLE))
        for cid, s in zip(cids, states):
            j = np.flatnonzero(r.class_ids == cid)
            if len(j) and not np.isnan(r.states[10, j[0], 0]):
                pairs.append((r.states[10, j[0], :2], s[:2]))
    scale, rot, shift = true_states.similarity(np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]))
    true_pos = []
    for v, (cids, states) in zip(val_ids, scenes):
        r = recs[int(v)]
        s = states.copy()
        for k, cid in enumerate(cids):
            j = np.flatnonzero(r.class_ids == cid)
            if len(j) and not np.isnan(r.states[10, j[0], 0]):
                s[k, :2] = scale * rot @ r.states[10, j[0], :2] + shift
        sim = simulate(cids, s, 11, physics, sizes)
        true_pos.append(draw(cids, sim[-1], camera, sizes, supersample=resim.SUPERSAMPLE))
    return {
        "ceiling (true states, true constants)": np.stack(ceiling),
        "true positions, estimated velocities": np.stack(true_pos),
    }, {"scale": scale, "rotation_deg": float(np.degrees(np.arctan2(rot[1, 0], rot[0, 0]))), "shift": shift.tolist()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a finished run folder (labels/, metrics/06_*)")
    ap.add_argument("--data-root", default="data/embedded")
    ap.add_argument("--train-videos", type=int, default=100, help="train videos the camera and physics are fitted on")
    ap.add_argument("--val-videos", type=int, default=None, help="the first N val videos only (default all)")
    ap.add_argument("--out", default=None, help="JSON results")
    ap.add_argument("--workers", type=int, default=2, help="processes predicting U-Net inputs")
    a = ap.parse_args(argv)
    run, t_all = resolve(a.run), time.time()
    res = {"run": a.run, "train_videos": a.train_videos, "seconds": {}}

    train = data.load_split(a.data_root, "train", policy="skip")
    train_masks = [np.asarray(train.masks[i]) for i in range(min(a.train_videos, len(train.ids)))]
    t0 = time.time()
    cam_fit = fit_camera(train_masks)
    camera, sizes = cam_fit.camera, cam_fit.body_sizes()
    res["camera_fit"] = {"camera": asdict(camera), "sizes": cam_fit.sizes, "n_obs": cam_fit.n_obs}
    res["seconds"]["camera fit"] = round(time.time() - t0, 1)
    print(f"[resim] camera {res['camera_fit']['camera']}, sizes {cam_fit.sizes} ({res['seconds']['camera fit']} s)")
    t0 = time.time()
    phys_fit = fit_physics(train_masks, camera, sizes)
    physics = phys_fit.physics
    res["physics_fit"] = phys_fit.to_json()
    res["seconds"]["physics fit"] = round(time.time() - t0, 1)
    print(f"[resim] physics {physics} ({res['seconds']['physics fit']} s)")

    val = data.load_split(a.data_root, "val", policy="skip")
    n = len(val.ids) if a.val_videos is None else a.val_videos
    val_ids, true_val = val.ids[:n], np.asarray(val.masks[:n])
    ids, labels = load_labels(run / "labels", "val")
    pos = {int(v): i for i, v in enumerate(ids)}
    inputs = {"true": true_val[:, :11], "unet": np.stack([labels[pos[int(v)], :11] for v in val_ids])}
    true22 = true_val[:, 21]
    ref = np.load(run / "metrics" / "06_val_confusion.npz")
    ref_stages = [str(s) for s in ref["stages"]]
    ref_pos = {int(v): i for i, v in enumerate(ref["ids"])}
    ref_cm = {s: ref["confusion"][ref_stages.index(s)][[ref_pos[int(v)] for v in val_ids]] for s in (PHYSICS, LEARNED)}
    res["val"], preds, scenes = {}, {}, []
    for src, x in inputs.items():
        t0 = time.time()
        if src == "true":  # its frame-10 scenes are also the oracle rows' estimates
            sims = [resim.simulate_inputs(v, camera, sizes, physics, touching=True) for v in tqdm(x, desc="val")]
            scenes = [(cids, sim[0]) for cids, sim, _ in sims]
            preds[src] = np.stack(
                [resim.draw_prediction(c, sim, t, camera, sizes, physics, x.shape[2:]) for c, sim, t in sims]
            )
        else:
            preds[src] = resim.predict_split(x, camera, sizes, physics, workers=a.workers)
        res["seconds"][f"val predict, {src} inputs (s/video)"] = round((time.time() - t0) / n, 3)
        row, cm = score(preds[src], true22)
        res["val"][src] = {"re-simulation": row}
        if src == "unet":  # the run's notebook 06 confusions are of U-Net inputs
            for name, other in ref_cm.items():
                res["val"][src][name] = {"iou": float(iou_from_confusion(other.sum(0))[0]), "ci": bootstrap_ci(other)}
                res["val"][src][f"re-simulation - {name}"] = bootstrap_diff_ci(cm, other)
        print(f"[resim] val, {src} inputs: {row['iou']:.4f} {row['ci']}")
    m6 = json.loads((run / "metrics" / "06_objects.json").read_text())
    size_b = m6["settings"]["physics"]["size_b"]
    costs, _ = oracle.category_costs(preds["unet"], true_val, size_b=size_b)
    res["failure_costs"] = {
        "re-simulation": costs,
        **{k: v for k, v in m6["failure_costs"].items() if k in (PHYSICS, LEARNED)},
    }

    answers = resolve(a.data_root) / "hidden_answers.npz"
    if answers.is_file():
        ans = np.load(answers)
        ids, labels = load_labels(run / "labels", "hidden")
        where = {int(v): i for i, v in enumerate(ans["ids"])}
        pred = resim.predict_split(labels, camera, sizes, physics, workers=a.workers)
        res["hidden"] = {"re-simulation": score(pred, ans["masks"][[where[int(v)] for v in ids]])[0]}
        print(f"[resim] hidden: {res['hidden']['re-simulation']}")

    got = oracle_rows(val_ids, scenes, a.data_root, camera, sizes, physics)
    if got:
        rows, align = got
        res["oracles"] = {k: score(p, true22)[0] for k, p in rows.items()}
        res["oracle_alignment"] = align
        for k, r in res["oracles"].items():
            print(f"[resim] oracle {k}: {r['iou']:.4f} {r['ci']}")
    res["seconds"]["total"] = round(time.time() - t_all, 1)
    if a.out:
        save_json(a.out, res)
    return res


if __name__ == "__main__":
    main()
