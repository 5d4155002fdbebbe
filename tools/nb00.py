from tools.nbbuild import build

build("notebooks/00_synthetic_data.ipynb", [
    ("md", """
# 00 · The dataset

Every later notebook reads `data_root` in the layout of DESIGN.md section 2
(`train/ val/ unlabeled/ hidden/`, `video_N/image_0.png ..` and `mask.npy`).

* If `data_root` is **empty**, this notebook generates the embedded synthetic dataset there
  (pybullet physics and rendering, CLEVRER style; see `lib/synth.py`), in parallel, resumably.
* If it holds **real data** (the competition's folders), it is used as it is: nothing is generated.
* Either way every split is then packed once into memory-mapped arrays (`<data_root>/.cache/`), which
  the later notebooks read; bad videos are skipped or padded by `policy`, logged and counted.
"""),
    ("params", """
n_train = 300
n_val = 200
n_unlabeled = 500
n_hidden = 100
workers = 2  # generation processes
policy = "skip"  # what packing does with a bad video: skip, pad (short masks), raise
"""),
    ("code", """
import lib.data as data
import lib.io as io
import lib.prepare as prepare
import lib.stats as stats
import lib.viz as viz

counts = {"train": n_train, "val": n_val, "unlabeled": n_unlabeled, "hidden": n_hidden}
prep = prepare.prepare_dataset(data_root, counts, seed=seed, workers=workers)
prep["action"], prep["counts"]
"""),
    ("md", "## Pack every split once (memory-mapped uint8 arrays, rebuilt only when the files change)"),
    ("code", """
packed = {}
for split in data.SPLITS:
    if prep["counts"].get(split):
        packed[split] = data.load_split(data_root, split, policy=policy)
        r = packed[split].report
        print(f"{split:10s} {len(packed[split]):6d} videos  frames {packed[split].frames.shape}  "
              f"skipped {len(r['skipped'])}  padded {len(r['padded'])}")
"""),
    ("md", "## A look at the data: frames 1, 11 and 22 with their masks"),
    ("code", """
tr = packed["train"]
k = min(3, len(tr))
fig = viz.sample_grid(tr.frames[:k], tr.masks[:k], tr.ids[:k])
viz.save_figure(fig, "00_samples", figures_dir)
"""),
    ("md", """
## How hard is it?
Copying the true frame-11 mask as the frame-22 prediction scores about 0.24 on the real val set;
the generator's defaults are calibrated to land near it (`scripts/synth_stats.py`).
"""),
    ("code", """
summary = stats.summarize(packed["val"].masks) if "val" in packed else {}
summary
"""),
    ("code", """
io.save_metrics(run_dir, "00_synthetic_data", {
    "action": prep["action"],
    "counts": {s: len(p) for s, p in packed.items()},
    "skipped": {s: len(p.report["skipped"]) for s, p in packed.items()},
    "padded": {s: len(p.report["padded"]) for s, p in packed.items()},
    "generation": prep.get("generation"),
    "val_summary": summary,
})
"""),
])
