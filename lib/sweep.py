"""Sweeps: some notebooks run over a grid or a list of parameter sets, each set in its own run folder.

    python scripts/tools/sweep.py sweeps/smoke_example.yaml [--base RUN] [--out DIR] [--dry-run]

A sweep file (format: docs/sweeps.md) names a profile, the notebooks to run, a base run and the parameter sets
(members). Each member runs ``run_all.sh PROFILE MEMBER_DIR`` with ``ONLY`` = the sweep's notebooks and
``RUN_PARAMS`` = ``MEMBER_DIR/sweep_params.yaml`` (the sweep's ``params``, then the member's own values), so every
check of run_all.sh applies: unknown keys, types, the run-folder lock. Member folders are
``<out>/<member name>``, the name made of the values that differ between members (``hid_T=8``).

What the notebooks before the sweep's first one wrote (the U-Net and its labels for a SimVP sweep) cannot depend
on the swept parameters: it comes from the base run, into each member folder (``OUTPUTS``, ``RECORDS``). Files
over ``LINK_BYTES`` (checkpoints, labels, caches) are hard-linked: no disk, no time, and the member folder stays
whole if the base is moved or deleted; every checkpoint, label and cache of the project is written under a
temporary name and renamed, so a member notebook that rewrites one replaces its own link and never changes the
base's file. Smaller files (metrics, figures, parameter records, logs) are copied. A file that cannot be
hard-linked (another file system) is copied. The notebooks check what they read as they check their own runs
(labels of another U-Net or other data: ``StaleLabels``; a resumed training with other settings: refused).

Everything is checked before the first member starts: the file, every member's parameters
(``lib.common.params.check_run``), that each key reaches one of the sweep's notebooks, that the base has the
metrics of the notebooks before the first one. A finished member (its ``sweep_member.json`` says ok, for the
same profile, notebooks, base and parameters) is skipped on a rerun; a finished member whose definition changed
stops the sweep before anything runs. The sweep stops at the first failing member, naming it, its folder and
its log. ``<out>/sweep.yaml`` is a copy of the sweep file, ``<out>/sweep.json`` its members, their parameters,
status and folders; run_all.sh writes each member's ``provenance.json`` and ``parameters/``. Once every member
has finished (and with ``--summary``, over the finished ones), ``<out>/summary.json`` holds each val stage and
paired difference of the members side by side with their mean and spread (``lib.compare.spread``): over seeds, it
says whether a difference is larger than the seed-to-seed spread.
"""

import fnmatch
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

from lib import compare
from lib.common import lock
from lib.common.files import atomic_path, save_json
from lib.common.params import ParamError, check_run, notebook_parameters, notebooks, select, unknown
from lib.common.params import load as load_yaml
from lib.common.paths import PROJ_ROOT, RUNS_DIR, resolve

FIELDS = ("name", "profile", "notebooks", "base", "params", "grid", "members", "reuse", "description")
# what each notebook writes into the run folder for later notebooks (lib/common/run.py); 00 and 01 write only
# records (the data lives in data_root)
OUTPUTS = {
    "00": (),
    "01": (),
    "02": ("unet", "labels"),
    "03": ("labels",),
    "04": ("simvp",),
    "05": ("finetune_*",),
    "06": ("objects",),
    "07": ("submission.pt", "submission_report.json"),
}
RECORDS = ("metrics/{nn}_*", "figures/{nn}_*", "parameters/{nn}_*")  # the numbers, figures, parameters of each
LINK_BYTES = 1 << 20  # files over 1 MiB are hard-linked, the others copied
# never taken from the base: locks, temporaries, and labelling in progress (its .partial.npy is written in place)
NOT_TAKEN = ("*.lock", ".*", "*.partial.npy", "*.done.npy")
MARKER = "sweep_member.json"
PARAMS_FILE = "sweep_params.yaml"
SUMMARY = "summary.json"
SAFE = re.compile(r"[^A-Za-z0-9._+-]")


class SweepError(ValueError):
    pass


@dataclass
class Member:
    name: str
    values: dict  # its own values: a point of the grid or an item of the list
    params: dict  # the sweep's params, then its own values: its RUN_PARAMS file
    folder: Path


@dataclass
class Sweep:
    path: Path
    name: str
    profile: str
    notebooks: list  # stems, in run order
    base: Path | None
    params: dict
    members: list
    folder: Path
    reuse: list = field(default_factory=list)  # more base files (glob patterns) taken into every member
    description: str = ""

    def definition(self, member):
        """What a finished member was run with; a rerun skips it only when this is unchanged."""
        return {
            "profile": self.profile,
            "notebooks": self.notebooks,
            "base": str(self.base) if self.base else None,
            "params": member.params,
        }


def fmt(value):
    """A value as a member's folder name shows it (filesystem-safe: ``SAFE`` characters only)."""
    if isinstance(value, bool) or value is None:
        text = str(value).lower()
    elif isinstance(value, (list, tuple)):
        text = "-".join(fmt(v) for v in value)
    else:
        text = str(value)
    return SAFE.sub("_", text)


def member_name(values, keys):
    """``key=value,key=value`` over ``keys`` (those that differ between members), ``default`` when none."""
    name = ",".join(f"{SAFE.sub('_', str(k))}={fmt(values[k])}" for k in keys if k in values) or "default"
    if len(name) > 120:  # a long name: cut, made unique by a hash of the whole
        import hashlib

        name = f"{name[:100]}~{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    return name


def expand(spec, where):
    """[(own values, keys named)] of a sweep file's ``grid`` (cartesian product, in the file's key order) or
    ``members`` (a list; named by the keys whose values are not the same in every member)."""
    if ("grid" in spec) == ("members" in spec):
        raise SweepError(f"{where}: give either grid (key: [values]) or members (a list of key: value sets)")
    if "grid" in spec:
        grid = spec["grid"]
        if not isinstance(grid, dict) or not grid:
            raise SweepError(f"{where}: grid: give key: [values, ...] lines")
        bad = [k for k, v in grid.items() if not isinstance(v, list) or not v]
        if bad:
            raise SweepError(f"{where}: grid: {', '.join(map(str, bad))}: give a non-empty list of values")
        keys = [k for k, v in grid.items() if len(v) > 1] or list(grid)
        return [(dict(zip(grid, point)), keys) for point in itertools.product(*grid.values())]
    items = spec["members"]
    if not isinstance(items, list) or not items or not all(isinstance(m, dict) for m in items):
        raise SweepError(f"{where}: members: give a list of key: value sets (an empty one, {{}}, is the profile)")
    every = list(dict.fromkeys(k for m in items for k in m))
    keys = [k for k in every if len(items) == 1 or not all(k in m and m[k] == items[0].get(k) for m in items)]
    return [(dict(m), keys) for m in items]


def load(path, base=None, out=None):
    """The ``Sweep`` of a sweep file; ``base`` and ``out`` override the file's base and the default folder
    ``runs/sweeps/<name>``. ``SweepError`` naming the file and what is wrong."""
    path = Path(path)
    spec = load_yaml(path, "sweep file", SweepError)
    errors = [unknown(k, FIELDS, path, f"a sweep file has {', '.join(FIELDS)}") for k in spec if k not in FIELDS]
    errors += [f"{path}: {k}: missing" for k in ("name", "profile", "notebooks") if not spec.get(k)]
    if errors:
        raise SweepError("\n".join(errors))
    name = str(spec["name"])
    if SAFE.search(name):
        raise SweepError(f"{path}: name {name!r}: letters, digits and . _ + - only (it names a folder)")
    stems = [p.stem for p in notebooks()]
    words = spec["notebooks"]
    try:
        chosen = select(" ".join(map(str, words)) if isinstance(words, list) else str(words), stems)
    except ParamError as e:
        raise SweepError(f"{path}: notebooks: {e}") from None
    params = spec.get("params") or {}
    if not isinstance(params, dict):
        raise SweepError(f"{path}: params: give key: value lines (the same for every member)")
    reuse = spec.get("reuse") or []
    if not isinstance(reuse, list) or not all(isinstance(r, str) for r in reuse):
        raise SweepError(f"{path}: reuse: give a list of paths (glob patterns) inside the base run folder")
    base = base or spec.get("base")
    folder = resolve(out) if out else RUNS_DIR / "sweeps" / name
    members, seen = [], {}
    for values, keys in expand(spec, path):
        label = member_name(values, keys)
        m = Member(label, values, {**params, **values}, folder / label)
        if m.name in seen:
            raise SweepError(f"{path}: members {seen[m.name]} and {m.values} both get the folder name {m.name!r}")
        seen[m.name] = m.values
        members.append(m)
    base = resolve(base) if base else None
    return Sweep(
        path, name, str(spec["profile"]), chosen, base, params, members, folder, reuse, str(spec.get("description", ""))
    )


def taken(sweep):
    """The base's paths (glob patterns) taken into every member: the outputs and records of the notebooks before
    the sweep's first one, and the sweep's ``reuse``."""
    stems = [p.stem for p in notebooks()]
    before = stems[: stems.index(sweep.notebooks[0])]
    patterns = [o for s in before for o in OUTPUTS.get(s[:2], ())]
    patterns += [r.format(nn=s[:2]) for s in before for r in RECORDS]
    return list(dict.fromkeys(patterns + sweep.reuse))


def needed(sweep):
    """The notebooks before the sweep's first one that wrote something later notebooks read (their metrics must
    be in the base)."""
    stems = [p.stem for p in notebooks()]
    return [s for s in stems[: stems.index(sweep.notebooks[0])] if OUTPUTS.get(s[:2], True)]


def reaches(sweep):
    """{key: the sweep's notebooks that get it} for every key of the sweep's params and members (RUN_PARAMS gives a
    key to every notebook that defines it, e.g. ``lr`` to 02, 04, 05 and 06)."""
    cells = {p.stem: notebook_parameters(p) for p in notebooks()}
    keys = dict.fromkeys([*sweep.params, *(k for m in sweep.members for k in m.values)])
    return {k: [s for s in sweep.notebooks if k in cells[s]] for k in keys}


def check(sweep):
    """Notes (a list of lines) when the whole sweep can run; ``SweepError`` naming every problem otherwise."""
    where = sweep.path
    if not (PROJ_ROOT / "params" / sweep.profile).is_dir():
        profiles = " ".join(sorted(p.name for p in (PROJ_ROOT / "params").iterdir() if p.is_dir()))
        raise SweepError(f"{where}: profile {sweep.profile!r}: no folder params/{sweep.profile} (profiles: {profiles})")
    cells = {p.stem: notebook_parameters(p) for p in notebooks()}
    errors, notes = [], []
    # every member's parameters, as run_all.sh will check them (the fixed params once, then each member's)
    with tempfile.TemporaryDirectory() as tmp:
        for label, values in [("params", sweep.params)] + [(f"member {m.name}", m.params) for m in sweep.members]:
            extra = Path(tmp) / "member.yaml"
            extra.write_text(yaml.safe_dump(values, sort_keys=False))
            try:
                notes += check_run(sweep.profile, tmp, " ".join(sweep.notebooks), extra)[2]
            except ParamError as e:
                errors += [line.replace(str(extra), f"{where} ({label})") for line in str(e).splitlines()]
                if label == "params":
                    break  # each member would repeat them
        notes = [n.replace(str(extra), str(where)) for n in notes]
    for key, stems in reaches(sweep).items():
        if key in ("run_dir", "profile"):
            errors.append(f"{where}: {key}: set by the sweep for each member, not a parameter to give")
        elif not stems and any(key in c for c in cells.values()):
            others = " ".join(s for s, c in cells.items() if key in c)
            errors.append(
                f"{where}: {key} is not a parameter of the sweep's notebooks ({' '.join(sweep.notebooks)}): it would "
                f"change nothing (it is one of {others})"
            )
    # a notebook left out between two of the sweep's would leave them reading what it wrote in the base
    stems = list(cells)
    first, last = stems.index(sweep.notebooks[0]), stems.index(sweep.notebooks[-1])
    gaps = [s for s in stems[first:last] if s not in sweep.notebooks and OUTPUTS.get(s[:2], True)]
    if gaps:
        errors.append(
            f"{where}: notebooks: {' '.join(gaps)} left out between the sweep's notebooks (later ones read it)"
        )
    errors += check_base(sweep)
    for m in sweep.members:
        done = read_marker(m)
        if done.get("status") == "ok" and done.get("definition") != sweep.definition(m):
            errors.append(
                f"{m.folder}: member {m.name} finished with another definition ({done.get('definition')}; now "
                f"{sweep.definition(m)}): remove its folder, or give the sweep another --out"
            )
    if errors:
        raise SweepError("\n".join(dict.fromkeys(errors)))
    if sweep.base and not needed(sweep) and not sweep.reuse:
        notes.append(f"base {sweep.base}: not used (nothing before {sweep.notebooks[0]} is reused)")
    return list(dict.fromkeys(notes))


def check_base(sweep):
    """Problems (lines) with the base run: missing, or without the metrics and outputs of the notebooks before
    the sweep's first one."""
    need = needed(sweep)
    strange = [s for s in need if s[:2] not in OUTPUTS]
    if strange:
        return [f"lib/sweep.py: OUTPUTS does not say what notebook {' '.join(strange)} writes for later notebooks"]
    if not need and not sweep.reuse:
        return []
    if sweep.base is None:
        what = " ".join(need) or "the files of reuse"
        return [
            f"{sweep.path}: the sweep starts at {sweep.notebooks[0]}: give a base run (base: or --base) with {what}"
        ]
    if not sweep.base.is_dir():
        return [f"{sweep.path}: base {sweep.base}: no such run folder"]
    errors = [
        f"base {sweep.base}: no metrics/{s}.json: run notebook {s} into it first (ONLY=... ./run_all.sh)"
        for s in need
        if not (sweep.base / "metrics" / f"{s}.json").is_file()
    ]
    for pattern in [o for s in need for o in OUTPUTS[s[:2]]] + sweep.reuse:
        if not list(sweep.base.glob(pattern)):
            errors.append(f"base {sweep.base}: nothing matches {pattern}")
    return errors


def read_marker(member):
    path = member.folder / MARKER
    return json.loads(path.read_text()) if path.is_file() else {}


def take(base, folder, patterns):
    """Base files matching ``patterns`` into ``folder`` at the same relative paths: hard links over ``LINK_BYTES``,
    copies under it (or when the link fails). A file the member already has is kept. Returns the counts."""
    counts = {"linked": 0, "copied": 0, "kept": 0}
    for pattern in patterns:
        for src in sorted(base.glob(pattern)):
            files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
            for f in files:
                if any(fnmatch.fnmatch(f.name, p) for p in NOT_TAKEN):
                    continue
                dst = folder / f.relative_to(base)
                if dst.exists():
                    counts["kept"] += 1
                    continue
                dst.parent.mkdir(parents=True, exist_ok=True)
                if f.stat().st_size > LINK_BYTES:
                    try:
                        os.link(f, dst)
                        counts["linked"] += 1
                        continue
                    except OSError:
                        pass  # another file system: copied
                with atomic_path(dst) as tmp:
                    shutil.copy2(f, tmp)
                counts["copied"] += 1
    return counts


def record(sweep, status):
    """``<out>/sweep.json``: the definition, and each member's parameters, folder, status (and seconds)."""
    save_json(
        sweep.folder / "sweep.json",
        {
            "name": sweep.name,
            "file": str(sweep.path),
            "description": sweep.description,
            "profile": sweep.profile,
            "notebooks": sweep.notebooks,
            "base": str(sweep.base) if sweep.base else None,
            "taken_from_base": taken(sweep) if sweep.base else [],
            "params": sweep.params,
            "reaches": reaches(sweep),
            "members": [
                {
                    "name": m.name,
                    "values": m.values,
                    "params": m.params,
                    "folder": m.name,  # relative to the sweep folder
                    **status.get(m.name, {"status": "pending"}),
                }
                for m in sweep.members
            ],
            "updated": now(),
        },
    )


def _print(text):
    print(text, flush=True)


def summarize(sweep, say=_print):
    """``<out>/summary.json``: ``compare.spread`` over the finished members (named as their folders), printed a
    line a number; None when no member has finished."""
    done = [m for m in sweep.members if read_marker(m).get("status") == "ok"]
    if not done:
        say(f"[sweep] {sweep.name}: no finished member to summarize in {sweep.folder}")
        return None
    runs = [compare.load_run(m.folder, m.name) for m in done]
    summary = {
        "sweep": sweep.name,
        "description": sweep.description,
        "members": len(sweep.members),
        "params": sweep.params,  # the parameters every member shares
        "values": {m.name: m.values for m in done},  # each member's own parameter values
        **compare.spread(runs),
    }
    save_json(sweep.folder / SUMMARY, summary)
    say(f"[sweep] {sweep.name}: {len(done)}/{len(sweep.members)} members summarized -> {sweep.folder / SUMMARY}")
    for line in compare.spread_lines(summary):
        say(f"    {line}")
    return summary


def now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def clock(seconds):
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def describe(sweep, say=_print):
    """What the sweep will do: notebooks, base and what it gives, the keys and where they go, each member."""
    say(
        f"[sweep] {sweep.name}: profile {sweep.profile}, notebooks {' '.join(sweep.notebooks)}, "
        f"{len(sweep.members)} members in {sweep.folder}"
    )
    if sweep.base:
        stems = [p.stem for p in notebooks()]
        before = stems[: stems.index(sweep.notebooks[0])]
        what = [p for p in taken(sweep) if not any(p == r.format(nn=s[:2]) for r in RECORDS for s in before)]
        what += [f"the metrics, figures and parameters of {' '.join(before)}"] if before else []
        say(
            f"[sweep] from base {sweep.base} into every member (over 1 MiB hard-linked, else copied): {', '.join(what)}"
        )
    for key, stems in reaches(sweep).items():
        say(f"[sweep] {key} goes to {' '.join(stems) or 'none of them'}")
    for i, m in enumerate(sweep.members, 1):
        done = " (finished: skipped)" if read_marker(m).get("status") == "ok" else ""
        say(f"[sweep] member {i}/{len(sweep.members)} {m.name}: {m.folder} {json.dumps(m.params)}{done}")


def run_member(sweep, m, say=_print):
    """Runs one member through run_all.sh; (exit status, the lines of run_all.sh's output)."""
    m.folder.mkdir(parents=True, exist_ok=True)
    counts = take(sweep.base, m.folder, taken(sweep)) if sweep.base else {}
    (m.folder / PARAMS_FILE).write_text(yaml.safe_dump(m.params, sort_keys=False))
    marker = {"sweep": sweep.name, "member": m.name, "status": "running", "started": now()}
    marker.update(definition=sweep.definition(m), taken_from_base=counts)
    save_json(m.folder / MARKER, marker)
    env = {**os.environ, "ONLY": " ".join(sweep.notebooks), "RUN_PARAMS": str(m.folder / PARAMS_FILE)}
    cmd = ["bash", str(PROJ_ROOT / "run_all.sh"), sweep.profile, str(m.folder)]
    lines, t0 = [], time.time()
    with open(m.folder / "run_all.log", "w") as log:
        proc = subprocess.Popen(
            cmd, cwd=PROJ_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for line in proc.stdout:
            log.write(line)
            log.flush()
            lines.append(line.rstrip("\n"))
            if line.startswith("[run_all] ") and " done in " in line and "all done" not in line:
                say(f"    {line.rstrip()}")  # each notebook's time
        rc = proc.wait()
    marker.update(status="ok" if rc == 0 else "failed", seconds=round(time.time() - t0, 1), finished=now())
    save_json(m.folder / MARKER, marker)
    return rc, lines


def run(sweep, dry_run=False, say=_print):
    """Checks the whole sweep, then runs its members in order (finished ones skipped); the exit status: 0 all
    finished, 1 a member failed (named, with its folder and log), 2 the sweep does not check, 3 the sweep folder is
    in use."""
    err = lambda text: print(text, file=sys.stderr, flush=True)
    try:
        notes = check(sweep)
    except SweepError as e:
        if dry_run:
            describe(sweep, say)
        err(f"[sweep] stopped before running any member:\n{e}")
        return 2
    for note in notes:
        say(f"[sweep] note: {note}")
    describe(sweep, say)
    if dry_run:
        return 0
    try:
        with lock.hold(sweep.folder / ".lock", f"the sweep folder {sweep.folder}"):
            return _run(sweep, say, err)
    except lock.Busy as e:
        err(f"[sweep] {e}")
        return 3


def _run(sweep, say, err):
    with atomic_path(sweep.folder / "sweep.yaml") as tmp:
        shutil.copyfile(sweep.path, tmp)
    status = {}
    for m in sweep.members:
        done = read_marker(m)
        if done.get("status") == "ok":
            status[m.name] = {"status": "ok", "seconds": done.get("seconds"), "finished": done.get("finished")}
    record(sweep, status)
    t0, n = time.time(), len(sweep.members)
    for i, m in enumerate(sweep.members, 1):
        head = f"[sweep] {i}/{n} {m.name}"
        if m.name in status:
            say(
                f"{head}: skipped, finished {status[m.name]['finished']} ({m.folder}/{MARKER}) [{clock(time.time() - t0)}]"
            )
            continue
        say(f"{head}: start in {m.folder} [{clock(time.time() - t0)}]")
        status[m.name] = {"status": "running"}
        record(sweep, status)
        t1 = time.time()
        rc, lines = run_member(sweep, m, say)
        status[m.name] = {"status": "ok" if rc == 0 else "failed", "seconds": round(time.time() - t1, 1)}
        status[m.name].update(finished=now(), log=f"{m.name}/run_all.log")
        record(sweep, status)
        if rc:
            failed = next((j for j, line in enumerate(lines) if "[run_all] FAILED" in line), None)
            err(
                f"[sweep] FAILED: member {m.name} (exit {rc}) after {clock(time.time() - t1)}; folder {m.folder}; "
                f"run_all.sh's output: {m.folder / 'run_all.log'}"
            )
            err("\n".join(lines[failed:] if failed is not None else lines[-25:]))
            err(f"[sweep] stopped ({n - i} later members not run); rerun the same command to go on from {m.name}")
            return 1
        say(f"{head}: ok in {clock(time.time() - t1)} [{clock(time.time() - t0)}]")
    say(f"[sweep] {sweep.name}: all {n} members finished [{clock(time.time() - t0)}]; {sweep.folder / 'sweep.json'}")
    summarize(sweep, say)
    return 0
