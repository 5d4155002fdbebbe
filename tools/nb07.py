from tools.nbbuild import build

build("notebooks/07_predict_hidden.ipynb", [
    ("md", """
# 07 · The full pipeline, its results table, and the hidden-set submission

From raw frames 0-10 of any split: **U-Net** masks (notebook 02) -> a predictor -> the frame-22 mask.
`predictor` picks it: `simvp` (11-step rollout of the SimVP fine-tuned in notebook 05, with optional
**new-object suppression**), `objects` (the object-centric predictor chosen in notebook 06), `combined`
(the object prediction, with SimVP's confident pixels of known objects where the object renderer left
background), or `auto` (the best of the three on val).

On val it builds the results table of every stage against the true frame 22; on hidden it writes the
submission: `torch.save({"masks": uint8 (N, 160, 240), "ids": int64 (N,)})`, videos in numeric order of
their ids, written atomically and checked on reload. On the embedded dataset it is scored against
`hidden_answers.npz`.
"""),
    ("params", """
predictor = "auto"     # "simvp", "objects", "combined", or "auto": the best on val
postprocess = "auto"   # SimVP output: "auto": on only if it helps on val, "on", "off"
min_blob = 100         # post-processing: blobs under this many pixels become background
submission = "submission.pt"   # written in run_dir
device = None
"""),
    ("code", """
import json

import numpy as np

import lib.data as data
import lib.io as io
import lib.viz as viz
import lib.widgets as widgets
from lib.classes import CLASS_NAMES
from lib.dynamics import choose_threshold, combine, load_predictor
from lib.forecast import load_simvp_checkpoint, predict_frame22
import lib.label as label
from lib.metrics import jaccard, per_video_iou
from lib.pipeline import check_submission, load_submission, save_submission, score_hidden, split_unet_masks
from lib.postprocess import suppress_batch
from lib.segmentation import load_unet

unet, _ = load_unet(io.run_path(run_dir, "unet", "best.pt"), device)
dev = next(unet.parameters()).device
simvp, _ = load_simvp_checkpoint(io.run_path(run_dir, "simvp", "best.pt"), dev)
ft_path = io.load_metrics(run_dir, "05_finetune")["checkpoint"]
finetuned, _ = load_simvp_checkpoint(ft_path, dev)
obj_name, predict_objects = load_predictor(io.run_path(run_dir, "objects", "selected.json"))
print("U-Net, SimVP,", ft_path, "and the object predictor", repr(obj_name), "on", dev)
"""),
    ("md", """
## Val: every stage against the true frame 22

The U-Net masks of frames 0-10 come from notebook 03's labels when the same U-Net checkpoint made them (they
are what `split_unet_masks` computes from the raw frames: same model, same decoding, votes over frames 0-10
only), else from the frames here. The ceiling is the U-Net's label of the true frame 22.
The combination fills, where the object renderer left background, SimVP's pixels of known objects whose
confidence exceeds a threshold; the threshold is chosen on val, and the combination's row is
**cross-validated** (two folds: each half of val uses the threshold best on the other half).
"""),
    ("code", """
val = data.load_split(data_root, "val")
true22 = np.asarray(val.masks[:, 21])
unet_key = label.checkpoint_key(io.run_path(run_dir, "unet", "best.pt"))
labels_dir = io.run_path(run_dir, "labels", "x").parent
masks_in, src = split_unet_masks(unet, val, dev, labels_dir, unet_key)            # U-Net masks of frames 0-10
ceiling = split_unet_masks(unet, val, dev, labels_dir, unet_key, frames=[21])[0][:, 0]
print(f"U-Net masks of val from {'notebook 03 labels' if src == 'labels' else 'the raw frames'}")
pred_ft, conf_ft = predict_frame22(finetuned, masks_in, dev, return_conf=True)
same = ft_path == str(io.run_path(run_dir, "simvp", "best.pt"))  # notebook 05 kept notebook 04's model
pred_simvp = pred_ft if same else predict_frame22(simvp, masks_in, dev)
pred_pp = suppress_batch(pred_ft, masks_in, min_blob=min_blob)
use_pp = postprocess == "on" or (postprocess == "auto" and jaccard(pred_pp, true22)[0] > jaccard(pred_ft, true22)[0])
pred_sim = pred_pp if use_pp else pred_ft
pred_obj = predict_objects(masks_in)
known = [np.unique(m) for m in masks_in]
threshold, pred_comb = choose_threshold(pred_obj, pred_sim, conf_ft, true22, known, seed=seed)
rows = {
    "copy frame 11 (true mask)": np.asarray(val.masks[:, 10]),
    "copy frame 11 (U-Net mask)": masks_in[:, 10],
    "SimVP (notebook 04)": pred_simvp,
    "SimVP fine-tuned (notebook 05)": pred_ft,
    "fine-tuned + post-processing": pred_pp,
    f"objects: {obj_name} (notebook 06)": pred_obj,
    "combined: objects + confident SimVP fill (cross-validated)": pred_comb,
    "U-Net on true frame 22 (ceiling)": ceiling,
}
table = {k: jaccard(v, true22)[0] for k, v in rows.items()}
candidates = {"simvp": "fine-tuned + post-processing" if use_pp else "SimVP fine-tuned (notebook 05)",
              "objects": f"objects: {obj_name} (notebook 06)",
              "combined": "combined: objects + confident SimVP fill (cross-validated)"}
chosen = max(candidates, key=lambda c: table[candidates[c]]) if predictor == "auto" else predictor
final_name = candidates[chosen]
final = rows[final_name]
base, top = table["copy frame 11 (U-Net mask)"], table["U-Net on true frame 22 (ceiling)"]
gap_closed = (table[final_name] - base) / (top - base) if top > base else float("nan")
for k, v in table.items():
    print(f"{k:58s} {v:.4f}" + ("   <- pipeline" if k == final_name else ""))
print(f"predictor: {chosen} ({predictor}); SimVP post-processing: {'on' if use_pp else 'off'} ({postprocess}); "
      f"fill threshold {threshold} (1.0: never); gap closed (copy-11 U-Net -> ceiling): {gap_closed:.1%}")
"""),
    ("code", """
iou, per_class = jaccard(final, true22)
fig = viz.class_frequency_plot(np.nan_to_num(per_class), title=f"Per-class frame-22 IoU, full pipeline (val, {iou:.3f})", ylabel="IoU")
viz.save_figure(fig, "07_per_class_iou", figures_dir)
"""),
    ("md", "## Best and worst videos"),
    ("code", """
scores = per_video_iou(final, true22)
order = np.argsort(scores)
pick = np.concatenate([order[-3:][::-1], order[:3]]) if len(order) >= 6 else order
fig = viz.comparison_grid(np.asarray(val.frames[pick, 21]), true22[pick], final[pick], val.ids[pick], scores=scores[pick])
viz.save_figure(fig, "07_best_and_worst", figures_dir)
"""),
    ("code", """
widgets.compare_viewer(np.asarray(val.frames[:, 21]), true22, final, val.ids, order="worst", scores=scores)
"""),
    ("md", "## Hidden: the submission"),
    ("code", """
hidden = data.load_split(data_root, "hidden")
masks_h, _ = split_unet_masks(unet, hidden, dev, labels_dir, unet_key)
if chosen in ("simvp", "combined"):  # SimVP runs only when the chosen predictor uses it
    sim_h, conf_h = predict_frame22(finetuned, masks_h, dev, return_conf=True)
    if use_pp:
        sim_h = suppress_batch(sim_h, masks_h, min_blob=min_blob)
if chosen == "simvp":
    pred_h = sim_h
else:
    pred_h = predict_objects(masks_h)
    if chosen == "combined":
        pred_h = combine(pred_h, sim_h, conf_h, "fill_confident", threshold, [np.unique(m) for m in masks_h])
path = save_submission(io.run_path(run_dir, submission), hidden.ids, pred_h)
sub = load_submission(path)
check_submission(sub, len(hidden))
print(f"{path}: masks {tuple(sub['masks'].shape)} {sub['masks'].dtype}, ids {int(sub['ids'][0])}..{int(sub['ids'][-1])}")
hidden_score = score_hidden(data_root, sub)
if hidden_score is not None:
    print(f"hidden IoU against hidden_answers.npz: {hidden_score[0]:.4f}")
"""),
    ("code", """
io.save_metrics(run_dir, "07_predict_hidden", {
    "val_table": table, "predictor": chosen, "pipeline": final_name, "postprocess": bool(use_pp),
    "combine_threshold": threshold, "unet_masks": src,
    "gap_closed": gap_closed,
    "per_class_iou": {CLASS_NAMES[i]: float(v) for i, v in enumerate(per_class) if v == v},
    "submission": str(path), "hidden_videos": len(hidden),
    "hidden_iou": None if hidden_score is None else hidden_score[0],
})
"""),
])
