"""The results of a run folder as Markdown: what the README's results section shows.

    python scripts/tools/report.py runs/cpu-ref                           # print the tables of a run
    python scripts/tools/report.py runs/cpu-ref --collect results/cpu     # copy its metrics, timings, provenance
    python scripts/tools/report.py results/cpu --readme README.md         # rewrite the README's results block
    python scripts/tools/report.py results/cpu --readme README.md --check # exit 1 if the README differs (a test runs it)

The README's block sits between the two marker lines below; everything in it is rendered from the files of
``results/<profile>/`` (committed), so the README's numbers are the committed run's.
"""

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path

BEGIN = "<!-- results:begin (scripts/tools/report.py writes this block; do not edit by hand) -->"
END = "<!-- results:end -->"
COLLECT = ("metrics/*.json", "parameters/*.json", "timings.tsv", "provenance.json")
EXPERIMENTS = Path(__file__).resolve().parents[2] / "results" / "experiments"  # measurements beside the run


def load(run, name):
    p = Path(run) / "metrics" / f"{name}.json"
    return json.loads(p.read_text()) if p.is_file() else None


def timings(run):
    """{notebook: seconds} of the last successful run of each notebook, and the failed attempts."""
    t = Path(run) / "timings.tsv"
    if not t.is_file():
        return {}, []
    rows = list(csv.DictReader(t.open(), delimiter="\t"))
    last = {r["notebook"]: int(r["seconds"]) for r in rows if r["status"] == "ok"}
    return last, [r for r in rows if r["status"] != "ok"]


def render(run):
    m0, m2, m3, m5, m6, m7 = (
        load(run, n)
        for n in ("00_synthetic_data", "02_unet", "03_label", "05_finetune", "06_objects", "07_predict_hidden")
    )
    out = []
    prov = Path(run) / "provenance.json"
    if prov.is_file():
        p = json.loads(prov.read_text())
        commit = (p.get("git_commit") or "unknown")[:10] + (" (dirty tree)" if p.get("git_dirty") else "")
        out.append(
            f"Run of commit `{commit}` on {p['machine']['cpus']} CPU cores ({p['device']}), torch "
            f"{p['packages']['torch']}, {p['written'][:10]}"
            + "".join(
                f"; notebooks {r['notebooks']} rerun with commit `{(r.get('git_commit') or 'unknown')[:10]}`"
                + (" (dirty tree)" if r.get("git_dirty") else "")
                for r in {
                    (r["notebooks"], r.get("git_commit"), r.get("git_dirty")): r for r in p.get("reruns", [])
                }.values()
            )
            + ".\n"
        )
    if m7:
        val = m7["val_table"]
        copy = val.get("copy frame 11 (U-Net mask)")
        out.append(
            f"**Submitted ({m7['pipeline']}): val {val[m7['pipeline']]:.3f}**, hidden "
            + (f"{m7['hidden_iou']:.3f}" if m7.get("hidden_iou") is not None else "n/a")
            + (f" ({m7['hidden_ci'][0]:.3f}-{m7['hidden_ci'][1]:.3f})" if m7.get("hidden_ci") else "")
            + f"; copying the U-Net's frame 11 scores {copy:.3f}; the submitted pipeline closes "
            f"{m7['gap_closed']:.0%} of the gap between that copy and the ceiling.\n"
        )
    if m2:
        line = (
            f"- **U-Net** ({m2['params']:,} parameters, trained in {m2['seconds'] / 60:.1f} min): val IoU over all "
            f"val frames **{m2['val_iou_all_frames']:.3f}**"
        )
        if m3:
            line += f"; labelling {m3['frames_per_s']:.1f} frames/s"
        out.append(line)
    if m0 and m0.get("val_summary"):
        out.append(f"- copy-frame-11 IoU of the val split with true masks: {m0['val_summary']['copy_frame_iou']:.3f}")
    if m7:
        out.append("\n| stage (val, frame 22; U-Net masks of frames 0-10 as input unless noted) | IoU |\n|---|---|")
        ci = m7.get("val_ci", {})
        for k, v in m7["val_table"].items():
            name = f"**{k}, submitted**" if k == m7["pipeline"] else k
            interval = f" ({ci[k][0]:.3f}-{ci[k][1]:.3f})" if k in ci else ""
            out.append(f"| {name} | {v:.3f}{interval} |")
        if ci:
            out.append("\n(95% bootstrap intervals over val videos in brackets.)")
        diffs = m7.get("val_diff_ci", {})
        if diffs:
            out.append(
                "\n| comparison (val, paired bootstrap over videos) | difference | 95% interval |\n|---|---|---|"
            )
            for k, d in diffs.items():
                out.append(f"| {k} | {d['diff']:+.3f} | {d['ci'][0]:+.3f} to {d['ci'][1]:+.3f} |")
    if m6:
        share = m6.get("gap_share", {})
        out.append(
            "\n| object predictor (val, frame 22) | true masks in | U-Net masks in | share of the oracle gap (U-Net) |"
            "\n|---|---|---|---|"
        )
        for k, v in {**m6["val_table"], **m6.get("oracle_table", {})}.items():
            s = share.get(k, {}).get("unet")
            out.append(f"| {k} | {v['true']:.3f} | {v['unet']:.3f} | {'' if s is None else f'{s:.0%}'} |")
        costs = m6.get("failure_costs", {})
        if costs:
            names = list(costs)
            out.append(
                "\n| failure category (val, U-Net masks in) | objects | "
                + " | ".join(f"IoU it costs: {n}" for n in names)
                + " |\n|---|---|"
                + "---|" * len(names)
            )
            for cat, c in costs[names[0]].items():
                out.append(
                    f"| {cat} | {c['objects']} | "
                    + " | ".join(f"{costs[n][cat]['iou_cost']:.3f}" for n in names)
                    + " |"
                )
    if m5:
        out.append("\n| SimVP fine-tuning (val) | IoU |\n|---|---|")
        for k, v in m5["val_table"].items():
            out.append(f"| {k} | {v:.3f} |")
    if Path(run).resolve().parent == EXPERIMENTS.parent:  # results/<profile>: the measurements beside it
        out += experiments()
    last, failed = timings(run)
    if last:
        out.append("\n| notebook | minutes |\n|---|---|")
        for name in sorted(last):
            out.append(f"| {name} | {last[name] / 60:.1f} |")
        out.append(f"| **total** | **{sum(last.values()) / 60:.1f}** |")
        if failed:
            out.append(
                f"\n(not counted: {len(failed)} failed attempt(s), "
                + ", ".join(f"{r['notebook']} {int(r['seconds'])} s" for r in failed)
                + ")"
            )
    return "\n".join(out).strip() + "\n"


def _ci(x):
    return f"{x['iou']:.3f} ({x['ci'][0]:.3f}-{x['ci'][1]:.3f})"


def _diff(d):
    return f"{d['diff']:+.3f} ({d['ci'][0]:+.3f} to {d['ci'][1]:+.3f})"


def _experiment(folder, name):
    p = Path(folder) / name
    return json.loads(p.read_text()) if p.is_file() else None


def _scaling_row(row, how):
    return (
        f"| {row['videos']} ({row['epochs']} epochs{how}) | {_ci(row['physics']['unet'])} | "
        f"{_ci(row['learned']['unet'])} | {_diff(row['diff']['unet'])} | {_diff(row['diff']['true'])} |"
    )


def experiments(folder=EXPERIMENTS):
    """Tables of the committed measurements in ``results/experiments/`` (each JSON written by its script)."""
    out = []
    r = _experiment(folder, "finetune_cpu.json")
    if r:
        out.append(
            f"\n| fine-tune arm (`scripts/experiments/eval_finetune.py`; {r['val_videos']} val videos, 11-step rollouts from "
            "U-Net masks) | steps | val IoU | difference to its start |\n|---|---|---|---|"
        )
        for name, a in r["arms"].items():
            diff = "" if name == "start" else _diff({"diff": a["diff"], "ci": a["diff_ci"]})
            out.append(f"| {name} | {a['steps']} | {_ci({'iou': a['val_iou'], 'ci': a['ci']})} | {diff} |")
    r = _experiment(folder, "dynamics_scaling.json")
    if r:
        out.append(
            f"\n| training videos (`scripts/experiments/dynamics_scaling.py`; val, {r['select']} epoch) | physics, U-Net masks in | "
            "learned, U-Net masks in | learned - physics (paired) | learned - physics, true masks in |"
            "\n|---|---|---|---|---|"
        )
        runs = [r] + [x for x in [_experiment(folder, "dynamics_scaling_10k.json")] if x]  # 10k: measured apart
        for run in runs:
            how = "" if run.get("batch_size", 32) == 32 else f", batch {run['batch_size']}, lr {run['lr']:g}"
            how += "" if run["extra"] is None or run["extra"].get("supersample", 2) == 2 else ", masks supersample 1"
            out += [_scaling_row(row, how) for row in run["rows"]]
    r = _experiment(folder, "refine_cpu.json")
    if r:
        r = r["results"]
        srcs = [s for s in ("true", "unet") if s in r]
        out.append(
            "\n| shape refinement (`scripts/experiments/eval_refine.py`; val) | "
            + " | ".join(f"{s} masks in" for s in srcs)
            + " |\n|---|"
            + "---|" * len(srcs)
        )
        for name in r[srcs[0]]["rows"]:
            out.append(f"| {name} | " + " | ".join(_ci(r[s]["rows"][name]) for s in srcs) + " |")
        for name in r[srcs[0]]["diffs"]:
            out.append(f"| {name} | " + " | ".join(_diff(r[s]["diffs"][name]) for s in srcs) + " |")
    return out


def collect(run, dest):
    """Copies the small, reviewable files of a run folder (no checkpoints, no data) to ``dest``."""
    run, dest = Path(run), Path(dest)
    files = [f for pattern in COLLECT for f in sorted(run.glob(pattern))]
    if not (run / "metrics").is_dir() or not files:
        raise SystemExit(f"{run}: no metrics/ folder; is it a run folder of run_all.sh?")
    if dest.exists():
        shutil.rmtree(dest)
    for f in files:
        target = dest / f.relative_to(run)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
    return files


def readme_block(readme):
    text = Path(readme).read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme}: no results block (the lines {BEGIN!r} ... {END!r})")
    head, rest = text.split(BEGIN, 1)
    block, tail = rest.split(END, 1)
    return head, block.strip("\n") + "\n", tail


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a run folder or results/<profile>")
    ap.add_argument("--collect", metavar="DEST", help="copy the run's metrics, timings and provenance to DEST")
    ap.add_argument("--readme", metavar="README", help="rewrite (or with --check, compare) the README's block")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args(argv)
    if a.collect:
        files = collect(a.run, a.collect)
        print(f"[report] copied {len(files)} files to {a.collect}")
        return 0
    text = render(a.run)
    if not a.readme:
        print(text)
        return 0
    head, block, tail = readme_block(a.readme)
    if a.check:
        if block != text:
            print(
                f"{a.readme}: the results block differs from {a.run}; run scripts/tools/report.py {a.run} --readme {a.readme}"
            )
            return 1
        return 0
    Path(a.readme).write_text(f"{head}{BEGIN}\n{text}{END}{tail}")
    print(f"[report] {a.readme}: results block rewritten from {a.run}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
