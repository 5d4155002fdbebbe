"""The results of a run folder as Markdown and figures: what the README and docs/experiments.md show.

The command line is scripts/tools/report.py (its docstring has the usage); tests/test_docs.py calls ``main``.

The README's block sits between the two marker lines below; everything in it is rendered from the files of
``results/<profile>/`` (committed), so the README's numbers are the committed run's. ``--collect`` and
``--readme`` also draw the headline figure (``figures/headline.png``: each stage's val IoU with its interval).
The experiments page is rendered from ``results/experiments/index.yaml`` (question, command, decision and result
files of each experiment, written by hand) and the result files it names (written by the scripts).
"""

import argparse
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import yaml

from lib.common.paths import PROJ_ROOT

BEGIN = "<!-- results:begin (scripts/tools/report.py writes this block; do not edit by hand) -->"
END = "<!-- results:end -->"
COLLECT = ("metrics/*.json", "parameters/*.json", "timings.tsv", "provenance.json")
EXPERIMENTS = PROJ_ROOT / "results" / "experiments"  # measurements beside the run, with their index.yaml
HEADLINE = "headline.png"


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
        val, ci = m7["val_table"], m7.get("val_ci", {})
        copy = "copy frame 11 (U-Net mask)"

        def interval(k):
            return f" ({ci[k][0]:.3f}-{ci[k][1]:.3f})" if k in ci else ""

        out.append(
            f"**Submitted ({m7['pipeline']}): val {val[m7['pipeline']]:.3f}**{interval(m7['pipeline'])}, hidden "
            + (f"{m7['hidden_iou']:.3f}" if m7.get("hidden_iou") is not None else "n/a")
            + (f" ({m7['hidden_ci'][0]:.3f}-{m7['hidden_ci'][1]:.3f})" if m7.get("hidden_ci") else "")
            + f"; copying the U-Net's frame 11 scores {val[copy]:.3f}{interval(copy)}; the submitted pipeline closes "
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


def headline(run, path):
    """figures/headline.png: the frame-22 val IoU of each stage of notebook 07 with its 95% interval, and hidden."""
    m7 = load(run, "07_predict_hidden")
    if not m7:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(k, v, m7.get("val_ci", {}).get(k)) for k, v in m7["val_table"].items()]
    if m7.get("hidden_iou") is not None:
        rows.append((f"submitted, on hidden ({m7['hidden_videos']} videos)", m7["hidden_iou"], m7.get("hidden_ci")))
    colours = []
    for name, _, _ in rows:
        kind = "oracle" if name.startswith(("oracle", "U-Net on true")) else "copy" if name.startswith("copy") else ""
        kind = "submitted" if name == m7["pipeline"] or name.startswith("submitted") else kind
        colours.append({"oracle": "#c9c9c9", "copy": "#8c8c8c", "submitted": "#e07b00"}.get(kind, "#4c72b0"))
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) + 1.2))
    y = list(range(len(rows)))[::-1]
    err = [[v - ci[0] if ci else 0 for _, v, ci in rows], [ci[1] - v if ci else 0 for _, v, ci in rows]]
    ax.barh(y, [v for _, v, _ in rows], xerr=err, color=colours, capsize=2, error_kw={"lw": 0.8})
    for yi, (_, v, _), c in zip(y, rows, colours):
        ax.text(0.01, yi, f"{v:.3f}", va="center", fontsize=8, color="black" if c == "#c9c9c9" else "white")
    ax.set_yticks(y, [name for name, _, _ in rows], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("frame-22 IoU on val (last bar: hidden), 95% bootstrap interval over videos", fontsize=8)
    ax.set_title("Reference cpu run: each stage\n(orange: submitted; grey: copies, oracles, ceiling)", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path


def _ci(x):
    return f"{x['iou']:.3f} ({x['ci'][0]:.3f}-{x['ci'][1]:.3f})"


def _diff(d):
    return f"{d['diff']:+.3f} ({d['ci'][0]:+.3f} to {d['ci'][1]:+.3f})"


def _finetune(results):
    """The script's arms (its file), then the sweep's members (``sweep_*`` files), each a table."""
    sweeps = {k: v for k, v in results.items() if k.startswith("sweep_")}
    (r,) = [v for k, v in results.items() if k not in sweeps]
    out = [
        f"| arm ({r['val_videos']} val videos, 11-step rollouts from U-Net masks) | steps | val IoU | "
        "difference to its start |\n|---|---|---|---|"
    ]
    for name, a in r["arms"].items():
        diff = "" if name == "start" else _diff({"diff": a["diff"], "ci": a["diff_ci"]})
        diff += "" if a["vs"] == "start" else f" (vs `{a['vs']}`)"
        out.append(f"| `{name}` | {a['steps']} | {_ci({'iou': a['val_iou'], 'ci': a['ci']})} | {diff} |")
    return out + ([""] + _sweep_finetune(sweeps) if sweeps else [])


def _scaling(results):
    out = [
        "| result file | training videos | epochs | batch, lr | epoch kept | train s | physics, U-Net masks in | "
        "learned, U-Net masks in | learned - physics (paired) | learned - physics, true masks in |"
        "\n|---|---|---|---|---|---|---|---|---|---|"
    ]
    for name, r in results.items():
        for row in r["rows"]:
            out.append(
                f"| `{name}` | {row['videos']} | {row['epochs']} | {r.get('batch_size', 32)}, {r.get('lr', 5e-4):g} | "
                f"{r['select']} | {row['train_seconds']:.0f} | {_ci(row['physics']['unet'])} | "
                f"{_ci(row['learned']['unet'])} | {_diff(row['diff']['unet'])} | {_diff(row['diff']['true'])} |"
            )
    return out


def _refine(results):
    (r,) = results.values()
    r = r["results"]
    srcs = [s for s in ("true", "unet") if s in r]
    out = ["| row (val) | " + " | ".join(f"{s} masks in" for s in srcs) + " |\n|---|" + "---|" * len(srcs)]
    for name in r[srcs[0]]["rows"]:
        out.append(f"| {name} | " + " | ".join(_ci(r[s]["rows"][name]) for s in srcs) + " |")
    for name in r[srcs[0]]["diffs"]:
        out.append(f"| {name} | " + " | ".join(_diff(r[s]["diffs"][name]) for s in srcs) + " |")
    return out


def _still_rule(results):
    (r,) = results.values()
    return [
        f"| videos (ids {r['ids'][0]}-{r['ids'][1]}, true masks in) | with the rule | without | with - without |"
        "\n|---|---|---|---|",
        f"| {r['ids'][1] - r['ids'][0] + 1} | {r['iou_with_rule']:.3f} | {r['iou_without_rule']:.3f} | "
        f"{_diff(r['rule_minus_none'])} |",
    ]


def _fragments(results):
    (r,) = results.values()
    out = [
        "| split (U-Net masks in) | model | with the rule | without | with - without | ids dropped | of them in no "
        "true input mask |\n|---|---|---|---|---|---|---|"
    ]
    for split, s in r["splits"].items():
        for model in ("learned", "physics"):
            m = s[model]
            out.append(
                f"| {split} | {model} | {m['iou_with_rule']:.3f} | {m['iou_without_rule']:.3f} | "
                f"{_diff(m['rule_minus_none'])} | {s['dropped_ids']} | {s.get('dropped_ids_not_in_true_masks', '')} |"
            )
    return out


def _sweep_rows(summary, stage):
    """(member, value, interval or None) of ``stage`` in a sweep's summary.json, in member order."""
    s = summary["stages"].get(stage, {"per_run": {}})
    return [(m, s["per_run"].get(m), s.get("ci", {}).get(m)) for m in summary["runs"]]


def _iou_ci(value, ci):
    return "" if value is None else _ci({"iou": value, "ci": ci}) if ci else f"{value:.3f}"


def _sweep_scaling(results):
    """Notebook 06's learned model against physics, a row a member of the dynamics sweeps."""
    out = [
        "| sweep | member | training videos | epochs | batch, lr | epoch kept | physics, U-Net masks in | learned, "
        "U-Net masks in | learned - physics (paired) | learned, true masks in |\n|---|---|---|---|---|---|---|---|---|---|"
    ]
    learned, physics = "06_objects: learned (physics + attention residual)", "06_objects: physics (floor + collisions)"
    for name, s in results.items():
        diffs = s["comparisons"]["06_objects: learned - physics"]["per_run"]
        rows = zip(
            _sweep_rows(s, f"{physics} / unet"),
            _sweep_rows(s, f"{learned} / unet"),
            _sweep_rows(s, f"{learned} / true"),
        )
        for (m, pv, pci), (_, lv, lci), (_, tv, _) in rows:
            p = {**s["params"], **s["values"][m]}
            out.append(
                f"| `{name}` | `{m}` | {300 + p['extra_videos']} | {p['epochs']} | {p['batch_size']}, {p['lr']:g} | "
                f"{p['select']} | {_iou_ci(pv, pci)} | {_iou_ci(lv, lci)} | {_diff(diffs[m])} | {_iou_ci(tv, None)} |"
            )
    return out


def _sweep_finetune(results):
    """Notebook 05's fine-tune epochs, a row a member of the finetune sweep."""
    (s,) = results.values()
    out = [
        "| member | schedule | SimVP (notebook 04), all val videos | epoch 1, eval videos | epoch 2, eval videos |"
        "\n|---|---|---|---|---|"
    ]
    start = dict((m, v) for m, v, _ in _sweep_rows(s, "05_finetune: SimVP (notebook 04)"))
    e1 = dict((m, v) for m, v, _ in _sweep_rows(s, "05_finetune: ce epoch 1"))
    e2 = dict((m, v) for m, v, _ in _sweep_rows(s, "05_finetune: ce epoch 2"))
    for m in s["runs"]:
        what = ", ".join(f"{k} {v:g}" for k, v in s["values"][m].items()) or "the profile's"
        out.append(f"| `{m}` | {what} | {_iou_ci(start[m], None)} | {_iou_ci(e1[m], None)} | {_iou_ci(e2[m], None)} |")
    return out


def _resim(results):
    """The re-simulating predictor against notebook 06's, its oracle rows, what each failure category costs."""
    (r,) = results.values()
    cam, phys = r["camera_fit"]["camera"], r["physics_fit"]["physics"]
    out = [
        f"Fitted on {r['train_videos']} train videos: camera fov {cam['fov']:.2f}, elevation {cam['elev']:.2f}, "
        f"distance {cam['dist']:.3f} (sphere radius 0.5); sizes "
        + ", ".join(f"{k} {v:.3f}" for k, v in r["camera_fit"]["sizes"].items() if k != "sphere_radius")
        + f"; friction {phys['friction']:.4f} (frame interval {phys['frame_dt']} s), rolling friction "
        f"{phys['rolling_friction']:.3f}, restitution {phys['restitution']}, mass ratio {phys['mass_ratio']}.",
        "",
        "| row (val unless said) | true masks in | U-Net masks in |\n|---|---|---|",
    ]
    val = r["val"]
    names = list(dict.fromkeys([*val["true"], *val["unet"]]))
    for name in names:
        cells = [val[s].get(name) for s in ("true", "unet")]
        out.append(
            f"| {name} | " + " | ".join("" if c is None else _diff(c) if "diff" in c else _ci(c) for c in cells) + " |"
        )
    for name, row in r.get("hidden", {}).items():
        out.append(f"| {name}, hidden | | {_ci(row)} |")
    for name, row in r.get("oracles", {}).items():
        out.append(f"| oracle: {name} | {_ci(row)} | |")
    costs = r["failure_costs"]
    cats = list(next(iter(costs.values())))
    out += ["", "| what each failure category costs (U-Net inputs, val) | " + " | ".join(cats) + " |",
            "|---|" + "---|" * len(cats)]  # fmt: skip
    for name, c in costs.items():
        out.append(f"| {name} | " + " | ".join(f"{c[k]['iou_cost']:.3f} ({c[k]['objects']})" for k in cats) + " |")
    secs = r["seconds"]
    out += ["", "Seconds: " + ", ".join(f"{k} {v}" for k, v in secs.items()) + "."]
    return out


def scaling_figure(results, path):
    """The dynamics sweeps as a figure: U-Net-input IoU of physics and of the learned model (a line for each epoch
    kept, and for each batch size and epochs of the 10000-video members), and learned - physics, against the
    number of training videos."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    learned, physics = "06_objects: learned (physics + attention residual)", "06_objects: physics (floor + collisions)"
    lines = {}  # label -> [(videos, IoU, ci, diff)]
    phys = {}
    for s in results.values():
        diffs = s["comparisons"]["06_objects: learned - physics"]["per_run"]
        for (m, v, ci), (_, pv, pci) in zip(_sweep_rows(s, f"{learned} / unet"), _sweep_rows(s, f"{physics} / unet")):
            p = {**s["params"], **s["values"][m]}
            n = 300 + p["extra_videos"]
            label = f"learned, {p['select']} epoch, batch {p['batch_size']}, {p['epochs']} epochs"
            lines.setdefault(label, []).append((n, v, ci, diffs[m]))
            phys[n] = (pv, pci)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))

    def bars(ax, pts, **kw):
        x, y, ci = [p[0] for p in pts], np.array([p[1] for p in pts]), np.array([p[2] for p in pts])
        ax.errorbar(x, y, yerr=[y - ci[:, 0], ci[:, 1] - y], fmt="o-", capsize=3, **kw)

    xs = sorted(phys)
    bars(axes[0], [(n, *phys[n]) for n in xs], color="k", label="physics")
    for label, pts in lines.items():
        pts = sorted(pts)
        bars(axes[0], [p[:3] for p in pts], label=label)
        bars(axes[1], [(p[0], p[3]["diff"], p[3]["ci"]) for p in pts], label=label)
    axes[0].set_title("val frame 22, U-Net inputs")
    axes[0].set_ylabel("IoU (95% bootstrap CI)")
    axes[1].axhline(0, color="k", lw=0.8)
    axes[1].set_title("learned - physics (paired 95% CI)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks(xs, [str(v) for v in xs])
        ax.minorticks_off()
        ax.set_xlabel("training videos")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path


def _resim_states(results):
    """Each results file: its oracle rows with their paired differences, then the velocity errors."""
    out = []
    for f, r in results.items():
        inputs = "true masks" if r["inputs"] == "true" else "U-Net masks"
        videos = f"{r['split']} videos {r['first']}-{r['first'] + r['videos'] - 1}"
        out += [f"`{f}`: {videos}, {inputs} in.", "", "| row | IoU | minus re-simulation |\n|---|---|---|"]
        for name, row in r["rows"].items():
            diff = _diff(row["minus re-simulation"]) if "minus re-simulation" in row else ""
            out.append(f"| {name} | {_ci(row)} | {diff} |")
        out += ["", "| velocity error at frame 10 (units/s) | objects | line fit: mean, median | refined: mean, median |",
                "|---|---|---|---|"]  # fmt: skip
        for kind, e in r["velocity_error"].items():
            who = "met another in frames 5-10" if kind == "met" else "did not"
            line, ref = e["line fit"], e["refined"]
            out.append(
                f"| {who} | {line['objects']} | {line['mean']:.3f}, {line['median']:.3f} | "
                f"{ref['mean']:.3f}, {ref['median']:.3f} |"
            )
        out.append("")
    return out[:-1]


TABLES = {"finetune": _finetune, "scaling": _scaling, "refine": _refine, "still_rule": _still_rule}
TABLES.update(fragments=_fragments, sweep_scaling=_sweep_scaling, sweep_finetune=_sweep_finetune, resim=_resim)
TABLES.update(resim_states=_resim_states)
FIGURES = {"sweep_scaling": scaling_figure}  # the entries whose figure the experiments page's rewrite draws


def experiments_page(folder=EXPERIMENTS):
    """docs/experiments.md: one entry of ``index.yaml`` after the other, each with its result table."""
    folder = Path(folder)
    index = yaml.safe_load((folder / "index.yaml").read_text())
    rel = "../" + folder.relative_to(PROJ_ROOT).as_posix() if folder.is_relative_to(PROJ_ROOT) else folder.as_posix()
    out = [
        "# Experiments",
        "",
        "<!-- rendered by scripts/tools/report.py from results/experiments/index.yaml and the result files it names;"
        " do not edit by hand -->",
        "",
        index["intro"].strip(),
        "",
        "| # | experiment | result files |\n|---|---|---|",
    ]
    for i, e in enumerate(index["experiments"], 1):
        files = ", ".join(f"[{f}]({rel}/{f})" for f in e["files"])
        out.append(f"| {i} | [{e['title']}](#{e['id']}) | {files} |")
    for i, e in enumerate(index["experiments"], 1):
        results = {f: json.loads((folder / f).read_text()) for f in e["files"]}
        out += [f'\n<a id="{e["id"]}"></a>\n\n## {i}. {e["title"]}', "", f"**Question.** {e['question'].strip()}"]
        out += ["", "**Commands** (from the project root):", "", "```bash", *e["commands"], "```"]
        out += ["", "**Result**, read from " + ", ".join(f"`results/experiments/{f}`" for f in e["files"]) + ":", ""]
        out += TABLES[e["table"]](results)
        if e.get("figure"):
            out += ["", f"![{e['title']}]({rel}/{e['figure']})"]
        if e.get("reading"):
            out += ["", e["reading"].strip()]
        out += ["", f"**Decision.** {e['decision'].strip()}"]
    return "\n".join(out) + "\n"


def experiment_figures(folder=EXPERIMENTS):
    """Draws the figure of each experiment whose table has one in ``FIGURES``, from its result files."""
    index = yaml.safe_load((folder / "index.yaml").read_text())
    drawn = []
    for e in index["experiments"]:
        if e.get("figure") and e["table"] in FIGURES:
            results = {f: json.loads((folder / f).read_text()) for f in e["files"]}
            drawn.append(FIGURES[e["table"]](results, folder / e["figure"]))
    return drawn


def collect(run, dest):
    """Copies the small, reviewable files of a run folder (no checkpoints, no data) to ``dest``, and the run's
    figures to the ``figures/`` folder beside ``dest``'s parent (``results/cpu`` -> ``figures/``)."""
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
    figures = dest.resolve().parent.parent / "figures"
    pngs = sorted((run / "figures").glob("*.png"))
    if pngs:  # the reference run's figures replace the committed ones
        for old in figures.glob("*.png"):
            old.unlink()
        figures.mkdir(parents=True, exist_ok=True)
        for f in pngs:
            shutil.copy2(f, figures / f.name)
    headline(dest, figures / HEADLINE)
    return files + pngs


def readme_block(readme):
    text = Path(readme).read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme}: no results block (the lines {BEGIN!r} ... {END!r})")
    head, rest = text.split(BEGIN, 1)
    block, tail = rest.split(END, 1)
    return head, block.strip("\n") + "\n", tail


def main(argv=None, description=None):
    ap = argparse.ArgumentParser(
        description=description or __doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("run", nargs="?", help="a run folder or results/<profile>")
    ap.add_argument(
        "--collect", metavar="DEST", help="copy the run's metrics, timings, provenance to DEST, its figures to figures/"
    )
    ap.add_argument("--readme", metavar="README", help="rewrite (or with --check, compare) the README's block")
    ap.add_argument("--experiments", metavar="PAGE", help="rewrite (or with --check, compare) the experiments page")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a page differs")
    a = ap.parse_args(argv)
    if a.run is None and not a.experiments:
        ap.error("give a run folder, or --experiments PAGE")
    if a.collect:
        files = collect(a.run, a.collect)
        print(f"[report] copied {len(files)} files to {a.collect} and figures/")
        return 0
    pages = []  # (page, its text now, the text it should have, what to write, rendered from)
    if a.readme:
        head, block, tail = readme_block(a.readme)
        text = render(a.run)
        pages.append((a.readme, block, f"{head}{BEGIN}\n{text}{END}{tail}", text, a.run))
    elif a.run and not a.experiments:
        print(render(a.run))
        return 0
    if a.experiments:
        page = Path(a.experiments)
        text = experiments_page()
        pages.append((a.experiments, page.read_text() if page.is_file() else None, text, text, "results/experiments"))
    status = 0
    for path, now, new, wanted, source in pages:
        if a.check:
            if now != wanted:
                print(f"{path} differs from {source}: run scripts/tools/report.py without --check to rewrite it")
                status = 1
            continue
        Path(path).write_text(new)
        print(f"[report] {path} rewritten from {source}")
    if a.readme and not a.check:
        print(f"[report] drew {headline(a.run, Path(a.readme).parent / 'figures' / HEADLINE)}")
    if a.experiments and not a.check:
        for path in experiment_figures():
            print(f"[report] drew {path}")
    return status
