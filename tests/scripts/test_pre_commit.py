"""The pre-commit hooks (.pre-commit-config.yaml): the tools and options of the fast tier's checks."""

from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_pre_commit_hooks_run_the_pinned_tools_as_the_fast_tier_does():
    """The hooks run .venv's ruff and nbstripout (pinned in the `test` extra, the versions installed) with the
    options of tests/notebooks/test_notebooks.py's checks: `ruff check` (fixing), `ruff format`, and nbstripout
    with its defaults (what the git filter writes, the `parameters` tag kept)."""
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"]: h for repo in config["repos"] for h in repo["hooks"]}
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    assert set(hooks) == {"ruff-check", "ruff-format", "nbstripout"}
    assert all(h["language"] == "system" for h in hooks.values())
    assert hooks["ruff-check"]["entry"].split()[:3] == ["ruff", "check", "--fix"]
    fmt = hooks["ruff-format"]["entry"]
    assert fmt.split()[:2] == ["ruff", "format"] and "--check" not in fmt
    for ruff in ("ruff-check", "ruff-format"):  # notebooks too, as `ruff check .` reads them (extend-include)
        assert "jupyter" in hooks[ruff]["types_or"] and "python" in hooks[ruff]["types_or"]
    assert hooks["nbstripout"]["entry"] == "nbstripout" and "args" not in hooks["nbstripout"]
    assert hooks["nbstripout"]["types"] == ["jupyter"]
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    pins = dict(r.split("==") for r in extra if "==" in r)
    for tool in ("ruff", "nbstripout", "pre-commit"):
        assert pins.get(tool) == version(tool), (
            f"{tool}: the `test` extra pins {pins.get(tool)}, .venv has {version(tool)}"
        )
