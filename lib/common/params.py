"""Parameter files checked before anything runs: unknown keys, wrong types, ONLY selections.

    python -m lib.common.params PROFILE RUN_DIR [--only "02 03"] [--extra RUN_PARAMS]

checks every notebook's parameters (``params/PROFILE/common.yaml``, ``params/PROFILE/NN_name.yaml``, the extra
file), writes what each selected notebook gets to ``RUN_DIR/parameters/NN_name.yaml`` (the file papermill is
given) and prints the selected notebooks' names, one a line; or names every problem and exits 2, writing
nothing. run_all.sh calls it before the first notebook.

Keys: a key of ``common.yaml`` or of the extra file must be defined by some notebook (each notebook gets only
its own keys); a key of ``NN_name.yaml`` by notebook NN. Types, against the notebook's default (``convert``):
a float takes ints and floats, and a string that ``float()`` reads (YAML reads ``1e-4`` as a string) is
converted, with a note; an int takes ints only, a bool bools only, a str strs, a list lists; a default of
None takes anything.
"""

import argparse
import ast
import difflib
import json
import re
import sys
from pathlib import Path

import yaml

from lib.common.files import atomic_path
from lib.common.paths import PROJ_ROOT


class ParamError(ValueError):
    pass


class Loader(yaml.SafeLoader):  # papermill's reading: dates stay strings
    yaml_implicit_resolvers = {
        k: [r for r in v if r[0] != "tag:yaml.org,2002:timestamp"]
        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def notebooks(root=PROJ_ROOT):
    """The numbered notebooks, in run order."""
    return sorted((Path(root) / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def notebook_parameters(nb_path):
    """{name: value} of the notebook's cell tagged ``parameters`` (plain ``name = literal`` lines)."""
    nb = json.loads(Path(nb_path).read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ParamError(f"{nb_path}: expected one cell tagged 'parameters', found {len(cells)}")
    source = cells[0]["source"]
    values = {}
    for node in ast.parse(source if isinstance(source, str) else "".join(source)).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ParamError(f"{nb_path}: the parameters cell holds plain `name = literal` lines only")
        try:
            values[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            raise ParamError(f"{nb_path}: parameter {node.targets[0].id} is not a plain literal") from None
    return values


def load(path, what="parameter file", error=ParamError):
    """A parameter file's flat {key: value} (as papermill reads it: dates stay strings); ``error`` naming the file
    and what is wrong. Sweep files (lib/sweep.py) are read the same way."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such {what}")
    try:
        values = yaml.load(path.read_text(), Loader=Loader)
    except yaml.YAMLError as e:
        raise error(f"{path}: not valid YAML: {e}") from None
    if not isinstance(values, (dict, type(None))):
        raise error(f"{path}: holds a {type(values).__name__}, not key: value lines")
    return values or {}


def unknown(key, known, where, what="no notebook defines it"):
    """The message for a key that nothing knows, with the closest known keys."""
    close = difflib.get_close_matches(str(key), sorted(known), n=3)
    return f"{where}: unknown key {key!r}: {what}" + (f" (closest: {', '.join(close)})" if close else "")


KINDS = {float: "a number", int: "an int", bool: "true or false", str: "a string", list: "a list", tuple: "a list"}


def convert(key, value, default, where):
    """(value, note or None) for ``value`` given for a parameter whose default is ``default``; ParamError when
    its type does not fit (the rule is in the module's docstring)."""
    if default is None:
        return value, None
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value, None
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                return number, f"{where}: {key}: {value!r} read as the float {number!r}"
    elif isinstance(default, bool) or isinstance(default, int):
        if type(value) is type(default):
            return value, None
    elif isinstance(default, (list, tuple)):
        if isinstance(value, (list, tuple)):
            return value, None
    elif isinstance(value, type(default)):
        return value, None
    kind = KINDS.get(type(default), type(default).__name__)
    raise ParamError(f"{where}: {key}: {value!r} is a {type(value).__name__}; the parameter takes {kind}")


def select(only, stems):
    """The notebooks (stems, in run order) that ``ONLY`` names: numbers (``2``, ``02``) or stems
    (``06_objects``), separated by spaces or commas; all of them when ``only`` is None or empty."""
    if not only:
        return list(stems)
    words = [w for w in re.split(r"[\s,]+", only) if w]
    wanted = set()
    for w in words:
        w = Path(w).name.removesuffix(".ipynb")
        hits = [s for s in stems if s == w or (w.isdigit() and len(w) <= 2 and int(s[:2]) == int(w))]
        if not hits:
            raise ParamError(f"ONLY={only!r}: no notebook {w!r} (notebooks: {' '.join(stems)})")
        wanted.update(hits)
    if not wanted:
        raise ParamError(f"ONLY={only!r} selects no notebook (notebooks: {' '.join(stems)})")
    return [s for s in stems if s in wanted]


def check_run(profile, run_dir, only=None, extra=None, root=PROJ_ROOT):
    """({stem: the parameters papermill gets}, selected stems, notes); ParamError naming every problem."""
    root, folder = Path(root), Path(root) / "params" / profile
    cells = {p.stem: notebook_parameters(p) for p in notebooks(root)}
    stems = select(only, list(cells))
    errors = [
        f"{f}: names no notebook (notebooks: {' '.join(cells)})"
        for f in sorted(folder.glob("*.yaml"))
        if f.stem != "common" and f.stem not in cells
    ]
    # (file, the notebook it is for or None for every notebook); later files win
    sources = [(folder / "common.yaml", None)] + [
        (folder / f"{s}.yaml", s) for s in cells if (folder / f"{s}.yaml").is_file()
    ]
    sources += [(Path(extra), None)] if extra else []
    files = []
    for f, stem in sources:
        try:
            values = load(f)
        except ParamError as e:
            errors.append(str(e))
            continue
        known = cells[stem] if stem else set().union(*cells.values())
        what = f"notebook {stem} does not define it" if stem else "no notebook defines it"
        errors += [unknown(k, known, f, what) for k in values if k not in known]
        files.append((f, stem, values))
    merged, notes = {}, []
    for stem, defaults in cells.items():
        values = {}
        for f, target, given in files:
            for k, v in given.items():
                if target in (None, stem) and k in defaults:
                    try:
                        values[k], note = convert(k, v, defaults[k], f)
                    except ParamError as e:
                        errors.append(str(e))
                        continue
                    notes += [note] if note and note not in notes else []
        merged[stem] = {**values, "run_dir": str(run_dir), "profile": profile}
    if errors:
        raise ParamError("\n".join(dict.fromkeys(errors)))
    return merged, stems, notes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("run_dir")
    ap.add_argument("--only", default=None, help="the notebooks to run (run_all.sh's ONLY)")
    ap.add_argument("--extra", default=None, help="one more parameter file for every notebook (RUN_PARAMS)")
    a = ap.parse_args(argv)
    try:
        merged, stems, notes = check_run(a.profile, a.run_dir, a.only or None, a.extra or None)
    except ParamError as e:
        print(f"[params] stopped before running any notebook:\n{e}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"[params] note: {note}", file=sys.stderr)
    for stem in stems:
        with atomic_path(Path(a.run_dir) / "parameters" / f"{stem}.yaml") as tmp:
            tmp.write_text(yaml.safe_dump(merged[stem], sort_keys=False))
        print(stem)
    return 0


if __name__ == "__main__":
    sys.exit(main())
