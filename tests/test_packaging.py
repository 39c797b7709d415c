"""The wheel: converters/ goes in as clip_edge.converters, never as a top-level `converters` in site-packages."""

import ast
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONVERTERS = os.path.join(REPOSITORY, "converters")


def _converters_modules():
    return sorted(name for name in os.listdir(CONVERTERS) if name.endswith(".py"))


def test_converters_modules_import_each_other_relatively():
    """An absolute `converters` import works from a checkout but fails in the wheel, where the package is
    clip_edge.converters; function-level imports would only fail when that function runs."""
    absolute = []
    for name in _converters_modules():
        with open(os.path.join(CONVERTERS, name), encoding="utf-8") as file:
            tree = ast.parse(file.read(), name)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            else:
                continue
            absolute += [f"{name}:{node.lineno}: {module}" for module in modules
                         if module == "converters" or module.startswith("converters.")]
    assert not absolute, "use relative imports inside converters/: " + "; ".join(absolute)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel `pip wheel . --no-deps` builds, from a copy of the sources (setuptools writes build/ and
    *.egg-info next to pyproject.toml)."""
    source = tmp_path_factory.mktemp("source")
    shutil.copy(os.path.join(REPOSITORY, "pyproject.toml"), source)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "BUILD")
    for package in ("clip_edge", "converters"):
        shutil.copytree(os.path.join(REPOSITORY, package), source / package, ignore=ignore)
    wheel_directory = tmp_path_factory.mktemp("wheel")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                             "--no-index", "--wheel-dir", str(wheel_directory), str(source)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = wheel_directory.glob("clip_edge-*.whl")
    return path


def test_wheel_has_no_top_level_converters(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"clip_edge"}
    assert sorted(name.split("/")[-1] for name in names
                  if name.startswith("clip_edge/converters/")) == _converters_modules()


def test_exporter_runs_from_installed_wheel(wheel, tmp_path):
    """`python -m clip_edge.converters.export --help` from the unpacked wheel, with the name `converters` made
    unimportable (this virtualenv's editable install or the working directory could otherwise provide it)."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    script = ("import importlib.util, runpy, sys\n"
              "sys.modules['converters'] = None\n"
              "origin = importlib.util.find_spec('clip_edge.converters.export').origin\n"
              f"assert origin.startswith({str(site)!r}), origin\n"
              "sys.argv = ['export', '--help']\n"
              "runpy.run_module('clip_edge.converters.export', run_name='__main__', alter_sys=True)\n")
    env = dict(os.environ, PYTHONPATH=str(site), TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    output = result.stdout + result.stderr
    # absl's --help prints the flags and exits with status 1.
    assert result.returncode == 1 and "Traceback" not in output, output[-3000:]
    assert "--preset" in output and "--weights" in output and "--output_dir" in output
