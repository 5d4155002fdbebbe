"""Print the results of a run folder as Markdown tables (what the README's results section shows).

python scripts/report.py runs/cpu-2
"""

import csv
import json
import sys
from pathlib import Path


def load(run, name):
    p = Path(run) / "metrics" / f"{name}.json"
    return json.loads(p.read_text()) if p.is_file() else None


def main(run):
    m2, m3, m4, m5, m6, m7 = (
        load(run, n) for n in ("02_unet", "03_label", "04_simvp", "05_finetune", "06_objects", "07_predict_hidden")
    )
    if m2:
        print(
            f"U-Net ({m2['params']:,} parameters): val IoU over all val frames **{m2['val_iou_all_frames']:.3f}**, "
            f"trained in {m2['seconds'] / 60:.1f} min"
        )
    if m3:
        print(f"Labelling: {m3['frames_per_s']:.1f} frames/s")
    if m7:
        print("\n| stage (val, frame 22, U-Net masks of frames 0-10 as input unless noted) | IoU |\n|---|---|")
        for k, v in m7["val_table"].items():
            print(f"| {k}{' **<- submitted**' if k == m7['pipeline'] else ''} | {v:.3f} |")
        print(
            f"\nPredictor: {m7['predictor']}; gap closed between copy-frame-11 (U-Net) and the ceiling: "
            f"{m7['gap_closed']:.1%}; hidden IoU against hidden_answers.npz: "
            + (f"{m7['hidden_iou']:.3f}" if m7.get("hidden_iou") is not None else "n/a")
        )
    if m5:
        print("\n| SimVP fine-tuning (val, all videos) | IoU |\n|---|---|")
        for k, v in m5["val_table"].items():
            print(f"| {k} | {v:.3f} |")
    if m6:
        print("\n| object predictor (val, frame 22) | true masks in | U-Net masks in |\n|---|---|---|")
        for k, v in m6["val_table"].items():
            print(f"| {k} | {v['true']:.3f} | {v['unet']:.3f} |")
    t = Path(run) / "timings.tsv"
    if t.is_file():
        rows = list(csv.DictReader(t.open(), delimiter="\t"))
        # a notebook rerun after a failure counts once, with its last successful run
        last = {r["notebook"]: r for r in rows if r["status"] == "ok"}
        failed = [r for r in rows if r["status"] != "ok"]
        print("\n| notebook | minutes |\n|---|---|")
        for name in sorted(last):
            print(f"| {name} | {int(last[name]['seconds']) / 60:.1f} |")
        print(f"| **total** | **{sum(int(r['seconds']) for r in last.values()) / 60:.1f}** |")
        if failed:
            print(
                f"(not counted: {len(failed)} failed attempt(s), "
                + ", ".join(f"{r['notebook']} {int(r['seconds'])} s" for r in failed)
                + ")"
            )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/cpu")
