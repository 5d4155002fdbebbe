"""Comparing run folders (notebook 08, docs/compare.md): what differs between runs, every number side by side,
their training curves, and the paired difference of two runs on the same val videos.

    runs = load_runs(["runs/cpu-a", "runs/cpu-b"])       # the first is the reference
    parameter_diff(runs)                                 # the parameters (and code, packages) that differ
    metric_table(runs)                                   # every metric, its interval, paired differences
    curves_figure(runs)                                  # train loss and val IoU per epoch, a line a run
    paired_difference(runs[0], runs[1])                  # metric(b) - metric(a) on the same val videos, 95% CI

A run folder is read as ``run_all.sh`` leaves it (docs/notebooks.md): ``parameters/<notebook>.json`` (what
papermill ran each notebook with), ``provenance.json`` (git commit, packages, device), ``metrics/*.json``,
``timings.tsv``, the training logs ``unet/log.json``, ``simvp/log.json``, ``finetune_*/log.json`` and notebook
07's per-video confusions (``metrics/07_val_confusion.npz``) and frame-22 predictions
(``metrics/07_val_predictions.npz``). Whatever a run lacks is left out (``None`` in a table), never guessed.

Differences are always ``run - reference`` (the second run minus the first): positive means the run scores higher.
A paired difference needs both runs scored on the same val videos with the same true masks (the ids, and each
video's true class counts, read from the confusions); otherwise ``RunsNotComparable`` says why.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lib import report
from lib.common.metrics import bootstrap_ci, bootstrap_diff_ci, stacked_iou
from lib.common.paths import RUNS_DIR, resolve

PIPELINE_ROW = "pipeline, submitted (val)"  # the metric table's row of each run's submitted stage
PIPELINE = "pipeline"  # stage name meaning "each run's own submitted stage" (notebook 07's `pipeline`)
CONFUSIONS = "07_val_confusion.npz"
PREDICTIONS = "07_val_predictions.npz"
TRAINING_FOLDERS = ("unet", "simvp")  # then finetune_* (notebook 05), in name order
CURVES = (("train_loss", "train loss"), ("val_iou", "val IoU"))
IGNORED_PARAMETERS = {"run_dir"}  # where each run is: always differs, says nothing about the run
PROVENANCE_KEYS = ("git_commit", "git_dirty", "python", "device", "torch_threads")


class RunsNotComparable(ValueError):
    """Two runs whose per-video numbers cannot be paired (other val videos, other true masks, files missing)."""


@dataclass
class Run:
    """One run folder, read once."""

    path: Path
    name: str
    parameters: dict = field(default_factory=dict)  # {notebook: {key: value}}
    provenance: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)  # {notebook: its metrics JSON}
    logs: dict = field(default_factory=dict)  # {training folder: [epoch rows]}
    timings: dict = field(default_factory=dict)  # {notebook: seconds of its last successful run}

    def __repr__(self):
        return f"Run({self.name!r}, {str(self.path)!r})"

    @property
    def pipeline_stage(self):
        """The val stage notebook 07 submitted (None before notebook 07 ran)."""
        return self.metrics.get("07_predict_hidden", {}).get("pipeline")

    def stage(self, stage=PIPELINE):
        """``stage`` with ``PIPELINE`` read as this run's own submitted stage."""
        if stage != PIPELINE:
            return stage
        if self.pipeline_stage is None:
            raise RunsNotComparable(f"{self.name}: no metrics/07_predict_hidden.json, so no pipeline stage")
        return self.pipeline_stage

    def confusions(self):
        """Notebook 07's per-video confusions: {"ids": (N,), "stages": [names], "confusion": (S, N, C, C)}."""
        path = self.path / "metrics" / CONFUSIONS
        if not path.is_file():
            raise RunsNotComparable(f"{self.name}: no metrics/{CONFUSIONS} (run notebook 07 in {self.path})")
        with np.load(path) as z:
            return {"ids": z["ids"], "stages": [str(s) for s in z["stages"]], "confusion": z["confusion"]}

    def predictions(self, stage=PIPELINE):
        """(ids (N,), masks (N, H, W) uint8): notebook 07's frame-22 predictions of ``stage`` on val."""
        stage = self.stage(stage)
        path = self.path / "metrics" / PREDICTIONS
        if not path.is_file():
            raise RunsNotComparable(
                f"{self.name}: no metrics/{PREDICTIONS} (notebook 07 saves them since issue 24: rerun it, "
                f"ONLY=07 ./run_all.sh PROFILE {self.path})"
            )
        with np.load(path) as z:
            stages = [str(s) for s in z["stages"]]
            if stage not in stages:
                raise RunsNotComparable(f"{self.name}: no predictions of stage {stage!r} (stages: {stages})")
            return z["ids"], z["masks"][stages.index(stage)]


# ------------------------------------------------------------------------------------------ finding and loading
def has_metrics(path):
    """Whether ``path`` looks like a run folder: it holds metrics of a notebook other than 08."""
    folder = Path(path) / "metrics"
    return folder.is_dir() and any(not p.name.startswith("08_") for p in folder.glob("[0-9][0-9]_*.json"))


def find_runs(root=RUNS_DIR):
    """The run folders directly under ``root`` (default: the project's ``runs/``), newest first."""
    root = resolve(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and has_metrics(p)]
    return sorted(found, key=lambda p: (-(p / "metrics").stat().st_mtime, p.name))


def run_paths(runs, run_dir):
    """The run folders to compare: ``runs`` (paths, relative ones from the project root), or ``run_dir`` alone
    when ``runs`` is empty. Each must be a run folder (``has_metrics``); repeats are dropped."""
    paths = [resolve(r) for r in (runs or [run_dir])]
    paths = list(dict.fromkeys(p.resolve() for p in paths))
    bad = [str(p) for p in paths if not has_metrics(p)]
    if bad:
        raise FileNotFoundError(f"not run folders (no metrics/NN_*.json of notebooks 00-07): {', '.join(bad)}")
    return paths


def short_names(paths):
    """The shortest distinct trailing parts of each path (``a/run``, ``b/run``)."""
    parts = [Path(p).parts for p in paths]
    for k in range(1, max(len(p) for p in parts) + 1):
        names = ["/".join(p[-k:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


def _json(path):
    return json.loads(path.read_text()) if path.is_file() else None


def training_logs(path):
    """{folder: [epoch rows]} of ``unet/``, ``simvp/`` and ``finetune_*/`` (their ``log.json``)."""
    path = Path(path)
    folders = [path / n for n in TRAINING_FOLDERS] + sorted(path.glob("finetune_*"))
    return {d.name: json.loads((d / "log.json").read_text()) for d in folders if (d / "log.json").is_file()}


def load_run(path, name=None):
    path = Path(path)
    return Run(
        path=path,
        name=name or path.name,
        parameters={p.stem: json.loads(p.read_text()) for p in sorted((path / "parameters").glob("*.json"))},
        provenance=_json(path / "provenance.json") or {},
        metrics={p.stem: json.loads(p.read_text()) for p in sorted((path / "metrics").glob("[0-9][0-9]_*.json"))},
        logs=training_logs(path),
        timings=report.timings(path)[0],
    )


def load_runs(paths):
    """``Run`` of each folder, named by ``short_names``; the first is the reference of every difference."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no run folder to compare: pick one or more in the picker, or set runs = [...]")
    return [load_run(p, n) for p, n in zip(paths, short_names(paths))]


def run_picker(runs, run_dir, root=RUNS_DIR):
    """A ``SelectMultiple`` of the run folders under ``root`` and those given, the given ones selected
    (``run_paths(runs, run_dir)``; with ``runs`` empty, ``run_dir`` when it is a run folder, else nothing). Its
    ``value`` is the tuple of selected paths (strings)."""
    import ipywidgets as widgets

    if runs:
        chosen = [str(p) for p in run_paths(runs, run_dir)]
    else:  # run_dir alone, when it is a run folder (an interactive session may start from an empty one)
        chosen = [str(resolve(run_dir).resolve())] if has_metrics(resolve(run_dir)) else []
    options = list(dict.fromkeys(chosen + [str(p.resolve()) for p in find_runs(root)]))
    return widgets.SelectMultiple(
        options=options,
        value=chosen,
        rows=min(max(len(options), 2), 10),
        description="runs",
        layout=widgets.Layout(width="auto", min_width="300px", max_width="100%"),
    )


# ------------------------------------------------------------------------------------------ parameters
def _flat_provenance(prov):
    out = {k: prov.get(k) for k in PROVENANCE_KEYS if k in prov}
    out.update({f"packages.{k}": v for k, v in (prov.get("packages") or {}).items()})
    if "cpus" in (prov.get("machine") or {}):
        out["cpus"] = prov["machine"]["cpus"]
    reruns = prov.get("reruns") or []
    out["reruns"] = "; ".join(str(r.get("notebooks")) for r in reruns) or None
    return out


def _key(value):
    return json.dumps(value, sort_keys=True, default=str)


def parameter_diff(runs):
    """The parameters whose values differ between runs, as rows ``{"parameter", "notebooks", "values"}`` (one value
    a run, ``None`` where a run has none). A key with the same values in every notebook that defines it (``seed``,
    ``data_root``) is one row naming those notebooks; a key that differs otherwise gets a row a notebook
    (``04_simvp.hid_S``). Then the provenance: ``provenance.git_commit``, ``git_dirty``, package versions, ``reruns``
    (the notebooks rerun with ONLY). ``run_dir`` is left out: it always differs."""
    notebooks = sorted({nb for r in runs for nb in r.parameters})
    keys = sorted({k for r in runs for p in r.parameters.values() for k in p} - IGNORED_PARAMETERS)
    rows = []
    for key in keys:
        per_nb = {}
        for nb in notebooks:
            if any(key in r.parameters.get(nb, {}) for r in runs):
                per_nb[nb] = [r.parameters.get(nb, {}).get(key) for r in runs]
        differing = {nb: v for nb, v in per_nb.items() if len({_key(x) for x in v}) > 1}
        if not differing:
            continue
        if len({_key(v) for v in per_nb.values()}) == 1 and len(per_nb) > 1:
            rows.append({"parameter": key, "notebooks": list(per_nb), "values": next(iter(per_nb.values()))})
        else:
            rows += [{"parameter": f"{nb}.{key}", "notebooks": [nb], "values": v} for nb, v in differing.items()]
    prov = [_flat_provenance(r.provenance) for r in runs]
    for key in dict.fromkeys(k for p in prov for k in p):
        values = [p.get(key) for p in prov]
        if len({_key(v) for v in values}) > 1:
            rows.append({"parameter": f"provenance.{key}", "notebooks": [], "values": values})
    return rows


# ------------------------------------------------------------------------------------------ spread over runs
def _stage_ci(ci, src=None):
    """The 95% interval of a stage from a notebook's ``val_ci`` entry (a pair, or {input source: pair}; notebook 06
    gives its single pair for U-Net inputs)."""
    if isinstance(ci, dict):
        return ci.get(src)
    return ci if ci is not None and src in (None, "unet") else None


def _flat_stages(metrics):
    """{name: (value, 95% interval or None)} of every val stage a run's notebooks report: each ``val_table``
    (``06_objects: physics / unet`` for a table by input source) with its ``val_ci``, and each fine-tune epoch's
    val IoU of notebook 05 (``05_finetune: ce epoch 2``)."""
    out = {}
    for nb, m in metrics.items():
        cis = m.get("val_ci") or {}
        for stage, v in (m.get("val_table") or {}).items():
            if isinstance(v, dict):
                for src, x in v.items():
                    if isinstance(x, (int, float)):
                        out[f"{nb}: {stage} / {src}"] = (x, _stage_ci(cis.get(stage), src))
            elif isinstance(v, (int, float)):
                out[f"{nb}: {stage}"] = (v, _stage_ci(cis.get(stage)))
        for loss, rows in (m.get("histories") or {}).items():
            for r in rows:
                if r.get("val_iou") is not None:
                    out[f"{nb}: {loss} epoch {r['epoch']}"] = (r["val_iou"], None)
    return out


def _mean_sd(values):
    v = np.asarray(values, float)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0}


def spread(runs):
    """The numbers several runs share (the members of a sweep, e.g. seeds), each run's value with the mean and
    standard deviation over the runs: ``{"runs": [names], "stages": {name: {"per_run", "ci", "mean", "sd"}},
    "comparisons": {name: {"a", "b", "per_run": {run: {"diff", "ci"}}, "mean", "sd", "above_0", "below_0"}}}``.
    Stages are every val stage of every notebook (``_flat_stages``, ``ci``: each run's 95% interval where the
    notebook gives one); comparisons are each notebook's paired differences (``val_diff_ci``, named ``NN_notebook:
    name``) with the runs whose 95% interval lies above or below 0. Whether a difference holds over seeds is then
    plain: the spread of the diffs against their mean, and how many seeds' intervals exclude 0. A number only some
    runs have is kept, over those runs."""
    stages, comparisons = {}, {}
    cis = {}
    for r in runs:
        for name, (v, ci) in _flat_stages(r.metrics).items():
            stages.setdefault(name, {})[r.name] = v
            if ci is not None:
                cis.setdefault(name, {})[r.name] = ci
        for nb, m in r.metrics.items():
            for name, d in (m.get("val_diff_ci") or {}).items():
                c = comparisons.setdefault(f"{nb}: {name}", {"a": d.get("a"), "b": d.get("b"), "per_run": {}})
                c["per_run"][r.name] = {"diff": d["diff"], "ci": d["ci"]}
    for name, per in stages.items():
        stages[name] = {"per_run": per, **({"ci": cis[name]} if name in cis else {}), **_mean_sd(list(per.values()))}
    for c in comparisons.values():
        per = c["per_run"].values()
        c.update(_mean_sd([d["diff"] for d in per]))
        c["above_0"] = sum(d["ci"][0] > 0 for d in per)
        c["below_0"] = sum(d["ci"][1] < 0 for d in per)
    return {"runs": [r.name for r in runs], "stages": stages, "comparisons": comparisons}


def spread_lines(summary):
    """``spread``'s result as text lines: a stage or comparison a line, each run's value, then mean and sd."""
    lines = []
    for name, s in summary["stages"].items():
        vals = "  ".join(f"{run} {v:.4f}" for run, v in s["per_run"].items())
        lines.append(f"{name}: mean {s['mean']:.4f} sd {s['sd']:.4f} | {vals}")
    for name, c in summary["comparisons"].items():
        vals = "  ".join(
            f"{run} {d['diff']:+.4f} [{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}]" for run, d in c["per_run"].items()
        )
        n = len(c["per_run"])
        lines.append(
            f"{name}: mean {c['mean']:+.4f} sd {c['sd']:.4f}, interval above 0 in {c['above_0']}/{n}, "
            f"below 0 in {c['below_0']}/{n} | {vals}"
        )
    return lines


# ------------------------------------------------------------------------------------------ the metric table
def _get(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def _headlines(run):
    """[(metric, notebook, value, ci, label)]: each notebook's headline numbers that a run has."""
    m = run.metrics
    m6 = m.get("06_objects", {})
    chosen = m6.get("chosen")
    ci6 = _get(m6, "val_ci", chosen)  # over U-Net inputs (a {source: interval} in a table by input source)
    ci6 = ci6.get("unet") if isinstance(ci6, dict) else ci6
    m7 = m.get("07_predict_hidden", {})
    stage = m7.get("pipeline")
    rows = [
        ("copy frame 11, true masks (val)", "01_explore", _get(m, "01_explore", "copy_frame_iou_val"), None, None),
        ("U-Net val IoU, all frames", "02_unet", _get(m, "02_unet", "val_iou_all_frames"), None, None),
        ("U-Net training seconds", "02_unet", _get(m, "02_unet", "seconds"), None, None),
        ("U-Net labelling frames/s", "03_label", _get(m, "03_label", "frames_per_s"), None, None),
        (
            "SimVP rollout, U-Net masks in (val)",
            "04_simvp",
            _get(m, "04_simvp", "val_table", "SimVP rollout (U-Net masks in)"),
            None,
            None,
        ),
        ("SimVP training seconds", "04_simvp", _get(m, "04_simvp", "seconds"), None, None),
        ("fine-tuning seconds", "05_finetune", _get(m, "05_finetune", "seconds"), None, None),
        (
            "object predictor chosen (val, U-Net masks in)",
            "06_objects",
            _get(m6, "val_table", chosen, "unet"),
            ci6,
            chosen,
        ),
        (PIPELINE_ROW, "07_predict_hidden", _get(m7, "val_table", stage), _get(m7, "val_ci", stage), stage),
        ("hidden IoU", "07_predict_hidden", m7.get("hidden_iou"), m7.get("hidden_ci"), None),
        ("gap closed (copy frame 11 -> ceiling)", "07_predict_hidden", m7.get("gap_closed"), None, None),
        ("wall time, every notebook (s)", "timings.tsv", sum(run.timings.values()) or None, None, None),
    ]
    return rows


def metric_table(runs, n_boot=1000, seed=0):
    """Every metric of the runs side by side, as rows ``{"metric", "notebook", "values", "ci", "labels"}`` (one entry
    a run; ``None`` where a run lacks it): the headline numbers of each notebook, then each val stage of notebook
    07's results table with its 95% interval. With two runs or more, the val stages also get ``"diff"``: for each
    run after the first, ``{"run", "diff", "ci"}``, the paired bootstrap difference run - reference over the same
    val videos (absent when the runs cannot be paired: ``paired_difference`` says why)."""
    rows = []
    per_run = [_headlines(r) for r in runs]
    for i, (metric, notebook, *_rest) in enumerate(per_run[0]):
        cells = [h[i] for h in per_run]
        if all(c[2] is None for c in cells):
            continue
        row = {"metric": metric, "notebook": notebook, "values": [c[2] for c in cells], "ci": [c[3] for c in cells]}
        if any(c[4] is not None for c in cells):
            row["labels"] = [c[4] for c in cells]
        if metric == PIPELINE_ROW:
            row["stages"] = [c[4] for c in cells]
        rows.append(row)
    stages = list(dict.fromkeys(s for r in runs for s in r.metrics.get("07_predict_hidden", {}).get("val_table", {})))
    for s in stages:
        rows.append(
            {
                "metric": s,
                "notebook": "07_predict_hidden",
                "values": [_get(r.metrics, "07_predict_hidden", "val_table", s) for r in runs],
                "ci": [_get(r.metrics, "07_predict_hidden", "val_ci", s) for r in runs],
                "stages": [s] * len(runs),
            }
        )
    for j, other in enumerate(runs[1:], 1):
        try:
            a, b = paired_confusions(runs[0], other)
        except RunsNotComparable:
            continue
        for row in rows:
            sa, sb = _pair(row, j)
            if sa in a["stages"] and sb in b["stages"]:
                ca, cb = a["confusion"][a["stages"].index(sa)], b["confusion"][b["stages"].index(sb)]
                d = bootstrap_diff_ci(cb, ca, n_boot=n_boot, seed=seed)
                row.setdefault("diff", []).append({"run": other.name, **d})
    return rows


def _pair(row, j):
    """(stage of the reference, stage of run j) of a row of val stages; (None, None) for other rows."""
    stages = row.get("stages")
    return (stages[0], stages[j]) if stages else (None, None)


def _missing(v):
    return v is None or (isinstance(v, float) and v != v)


def _number(v, sign=""):
    """A table number: 3 decimals for scores, fewer for seconds and rates; "—" for none (or NaN)."""
    if _missing(v):
        return "—"
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return str(v)
    digits = 0 if abs(v) >= 100 else 1 if abs(v) >= 10 else 3
    return f"{v:{sign}.{digits}f}"


def _cell(value, ci=None, label=None):
    text = _number(value)
    if ci is not None and not _missing(value):
        text += f" ({ci[0]:.3f}-{ci[1]:.3f})"
    if label:
        text += f"<br><small>{label}</small>"
    return text


def _escape(text):
    return str(text).replace("|", "\\|")


def table_markdown(rows, runs):
    """The metric table as Markdown: a column a run, then a column ``run - reference`` a run after the first
    (the paired 95% interval where there is one, the plain difference otherwise)."""
    names = [r.name for r in runs]
    head = ["metric", *names] + [f"{n} − {names[0]}" for n in names[1:]]
    lines = ["| " + " | ".join(map(_escape, head)) + " |", "|" + "---|" * len(head)]
    for row in rows:
        labels = row.get("labels") or [None] * len(runs)
        cells = [_cell(v, c, lab) for v, c, lab in zip(row["values"], row["ci"], labels)]
        paired = {d["run"]: d for d in row.get("diff", [])}
        for j, name in enumerate(names[1:], 1):
            if name in paired:
                d = paired[name]
                cells.append(f"{d['diff']:+.3f} ({d['ci'][0]:+.3f} to {d['ci'][1]:+.3f})")
            else:
                a, b = row["values"][0], row["values"][j]
                numbers = all(isinstance(x, (int, float)) and not _missing(x) for x in (a, b))
                cells.append(_number(b - a, "+") if numbers else "—")
        lines.append("| " + " | ".join([_escape(row["metric"])] + [_escape(c) for c in cells]) + " |")
    return "\n".join(lines)


def diff_markdown(rows, runs):
    """The differing parameters as Markdown (or a sentence when nothing differs)."""
    if len(runs) < 2:
        return "One run: nothing to compare its parameters with."
    if not rows:
        return "The runs were made with the same parameters, code and packages."
    names = [r.name for r in runs]
    lines = ["| parameter | " + " | ".join(map(_escape, names)) + " |", "|" + "---|" * (len(names) + 1)]
    for row in rows:
        label = row["parameter"] + (
            f" <small>({len(row['notebooks'])} notebooks)</small>" if len(row["notebooks"]) > 1 else ""
        )
        values = ["—" if v is None else _escape(json.dumps(v) if not isinstance(v, str) else v) for v in row["values"]]
        lines.append(f"| {_escape(label)} | " + " | ".join(values) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ curves
def curves_figure(runs, panels=CURVES):
    """Training curves overlaid: a row a training folder (``unet``, ``simvp``, ``finetune_*``), a column a key of
    ``panels`` (train loss, val IoU), a line a run (the same colour in every panel). None when no run has a log."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    folders = [f for f in TRAINING_FOLDERS if any(f in r.logs for r in runs)]
    folders += sorted({f for r in runs for f in r.logs if f not in TRAINING_FOLDERS})
    if not folders:
        return None
    fig, axes = plt.subplots(
        len(folders), len(panels), figsize=(5 * len(panels), 2.4 * len(folders) + 0.4), squeeze=False
    )
    for i, folder in enumerate(folders):
        for j, (key, label) in enumerate(panels):
            ax = axes[i, j]
            for k, run in enumerate(runs):
                rows = [r for r in run.logs.get(folder, []) if r.get(key) is not None]
                if rows:
                    ax.plot([r["epoch"] for r in rows], [r[key] for r in rows], "o-", color=f"C{k}", label=run.name)
            ax.set_title(f"{folder}: {label}", fontsize=9)
            ax.set_xlabel("epoch", fontsize=8)
            ax.tick_params(labelsize=7)
            epochs = [r.get("epoch", 0) for run in runs for r in run.logs.get(folder, [])]
            ax.set_xlim(0.5, max(epochs, default=1) + 0.5)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = [], []
    for ax in axes.flat:  # one legend: every run that has a line somewhere
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 4), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_size_inches()[1]))
    return fig


# ------------------------------------------------------------------------------------------ paired differences
def _describe_ids(ids):
    ids = np.asarray(ids)
    return f"{len(ids)} videos" + (f", ids {int(ids.min())}..{int(ids.max())}" if len(ids) else "")


def paired_confusions(ref, other):
    """Both runs' confusions (``Run.confusions``) over the same val videos in the same order, after checking that
    they are: the same ids (reordered when only the order differs) and the same true masks (each video's true
    class counts, the rows of its confusion matrices). ``RunsNotComparable`` otherwise."""
    a, b = ref.confusions(), other.confusions()
    ia, ib = np.asarray(a["ids"]), np.asarray(b["ids"])
    if len(ia) != len(ib) or set(ia.tolist()) != set(ib.tolist()):
        common = len(np.intersect1d(ia, ib))
        raise RunsNotComparable(
            f"{ref.name} and {other.name} were scored on different val videos ({_describe_ids(ia)} vs "
            f"{_describe_ids(ib)}; {common} in common): a paired difference needs the same videos. Compare their "
            "tables instead, or rerun notebook 07 of both on the same data."
        )
    if not np.array_equal(ia, ib):  # the same videos in another order
        order = np.argsort(ib)[np.searchsorted(ib, ia, sorter=np.argsort(ib))]
        b = {**b, "ids": ib[order], "confusion": b["confusion"][:, order]}
    ta, tb = a["confusion"][0].sum(-1), b["confusion"][0].sum(-1)  # (N, C): true pixels of each class, each video
    if ta.shape != tb.shape or not np.array_equal(ta, tb):
        bad = int((ta != tb).any(-1).sum()) if ta.shape == tb.shape else len(ta)
        raise RunsNotComparable(
            f"{ref.name} and {other.name} have the same val ids but different true masks in {bad} of {len(ta)} videos "
            "(other data under the same names?): a paired difference needs the same videos."
        )
    return a, b


def _stage_confusions(run, conf, stage):
    name = run.stage(stage)
    if name not in conf["stages"]:
        raise RunsNotComparable(f"{run.name}: no val stage {name!r} in metrics/{CONFUSIONS} ({conf['stages']})")
    return name, conf["confusion"][conf["stages"].index(name)]


def paired_difference(ref, other, stage=PIPELINE, n_boot=1000, seed=0):
    """metric(other) - metric(ref) on the same val videos, with its 95% paired bootstrap interval (the same
    resampled videos for both; ``lib.common.metrics.bootstrap_diff_ci``). ``stage``: a val stage name of notebook
    07's table, or ``PIPELINE``: each run's own submitted stage. Returns ``{"reference", "run", "stage_reference",
    "stage_run", "videos", "iou_reference", "iou_run", "ci_reference", "ci_run", "diff", "ci"}``."""
    a, b = paired_confusions(ref, other)
    sa, ca = _stage_confusions(ref, a, stage)
    sb, cb = _stage_confusions(other, b, stage)
    d = bootstrap_diff_ci(cb, ca, n_boot=n_boot, seed=seed)
    return {
        "reference": ref.name,
        "run": other.name,
        "stage_reference": sa,
        "stage_run": sb,
        "videos": len(a["ids"]),
        "iou_reference": float(stacked_iou(ca.sum(0))),
        "iou_run": float(stacked_iou(cb.sum(0))),
        "ci_reference": bootstrap_ci(ca, n_boot=n_boot, seed=seed),
        "ci_run": bootstrap_ci(cb, n_boot=n_boot, seed=seed),
        **d,
    }


def paired_differences(runs, stage=PIPELINE, n_boot=1000, seed=0):
    """(differences, refusals): ``paired_difference`` of each run after the first against the first, and the
    message of each pair that cannot be paired (a single run: the message that a second one is needed)."""
    if len(runs) < 2:
        return [], [f"one run ({runs[0].name}): pick a second run for the paired comparison"]
    done, refused = [], []
    for other in runs[1:]:
        try:
            done.append(paired_difference(runs[0], other, stage, n_boot, seed))
        except RunsNotComparable as e:
            refused.append(str(e))
    return done, refused


def per_video(ref, other, stage=PIPELINE):
    """(ids, IoU of ref, IoU of other): each shared val video's own IoU under ``stage`` (checked as in
    ``paired_confusions``), for ordering the side-by-side viewer."""
    a, b = paired_confusions(ref, other)
    _, ca = _stage_confusions(ref, a, stage)
    _, cb = _stage_confusions(other, b, stage)
    return np.asarray(a["ids"]), stacked_iou(ca), stacked_iou(cb)


def difference_order(diff, how="largest"):
    """Indices of videos by their per-video IoU difference ``diff`` (run - reference): "largest" (the largest
    difference either way first), "worst" (where the run loses most first) or "best" (where it gains most)."""
    d = np.nan_to_num(np.asarray(diff, np.float64), nan=0.0)
    key = {"largest": -np.abs(d), "worst": d, "best": -d}.get(how)
    if key is None:
        raise ValueError(f"order {how!r}: use largest, worst or best")
    return [int(i) for i in np.argsort(key, kind="stable")]


def side_by_side_data(ref, other, val_ids, val_true, stage=PIPELINE):
    """What the side-by-side viewer shows, aligned on the val split read here: {"index" (positions in ``val_ids``),
    "ids", "pred_reference", "pred_run", "iou_reference", "iou_run", "diff"}. Refuses (``RunsNotComparable``)
    when the runs cannot be paired, when a run's video is missing from ``val_ids``, or when the true masks read
    here (``val_true``, (N, H, W) frame 22) are not those the runs were scored against."""
    ids, iou_a, iou_b = per_video(ref, other, stage)
    pa_ids, pa = ref.predictions(stage)
    pb_ids, pb = other.predictions(stage)
    val_ids = np.asarray(val_ids)
    pos = {int(v): i for i, v in enumerate(val_ids)}
    missing = [int(v) for v in ids if int(v) not in pos]
    if missing:
        raise RunsNotComparable(
            f"{len(missing)} val videos of the runs are not in the val split read here ({missing[:5]})"
        )
    index = np.array([pos[int(v)] for v in ids])
    a_pos = {int(v): i for i, v in enumerate(pa_ids)}
    b_pos = {int(v): i for i, v in enumerate(pb_ids)}
    if any(int(v) not in a_pos or int(v) not in b_pos for v in ids):
        raise RunsNotComparable("the saved predictions do not cover the videos of the confusions")
    conf = ref.confusions()
    c_pos = {int(v): i for i, v in enumerate(conf["ids"])}
    counts = conf["confusion"][0][[c_pos[int(v)] for v in ids]].sum(-1)  # (N, C) true class counts, as scored
    num_classes = counts.shape[-1]
    here = np.stack([np.bincount(np.asarray(val_true[i]).ravel(), minlength=num_classes) for i in index])
    if here.shape != counts.shape or not np.array_equal(here, counts):
        raise RunsNotComparable("the val masks read here are not those the runs were scored against (other data_root?)")
    return {
        "reference": ref.name,
        "run": other.name,
        "index": index,
        "ids": ids,
        "pred_reference": pa[[a_pos[int(v)] for v in ids]],
        "pred_run": pb[[b_pos[int(v)] for v in ids]],
        "iou_reference": iou_a,
        "iou_run": iou_b,
        "diff": iou_b - iou_a,
    }


def per_video_figure(data, names):
    """Scatter of each val video's IoU, reference (x) against run (y), the diagonal marking no change."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, zorder=0)
    ax.scatter(data["iou_reference"], data["iou_run"], s=14, alpha=0.7)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=f"{names[0]}: video IoU", ylabel=f"{names[1]}: video IoU")
    better = int((data["diff"] > 0).sum())
    worse = int((data["diff"] < 0).sum())
    ax.set_title(f"frame-22 IoU of each val video\n{names[1]}: {better} better, {worse} worse", fontsize=9)
    fig.tight_layout()
    return fig


def viewer_data(runs, paired, val_ids, val_true, stage=PIPELINE):
    """(``side_by_side_data`` of the reference and the first run paired with it, None) or (None, why not)."""
    if not paired:
        return None, "it needs two runs that can be paired (above)"
    other = next(r for r in runs if r.name == paired[0]["run"])
    try:
        return side_by_side_data(runs[0], other, val_ids, val_true, stage), None
    except RunsNotComparable as e:
        return None, str(e)


def viewer_summary(side, top=5):
    """What the side-by-side view showed, for the metrics: how many videos each run does better on, and the
    ``top`` largest per-video differences."""
    d = np.asarray(side["diff"])
    return {
        "reference": side["reference"],
        "run": side["run"],
        "videos": len(d),
        "better": int((d > 0).sum()),
        "worse": int((d < 0).sum()),
        "largest": [
            {
                "id": int(side["ids"][i]),
                "diff": float(d[i]),
                "iou_reference": float(side["iou_reference"][i]),
                "iou_run": float(side["iou_run"][i]),
            }
            for i in difference_order(d)[:top]
        ],
    }
