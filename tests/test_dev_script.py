"""``./dev`` with ``OPENMFA_VENV`` (issue 29): an absolute path and a relative one (to the
repository, where ``./dev`` works) both put that environment's ``openmfa`` on the PATH.

The environment here is a stand-in, already "installed" (its stamp newer than pyproject.toml),
whose ``openmfa`` only says how it was called: the script's own logic is what is tested."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _fake_venv(where: Path) -> Path:
    (where / "bin").mkdir(parents=True)
    for name in ("python", "openmfa"):
        script = where / "bin" / name
        script.write_text(f'#!/bin/sh\necho "{name} $*"\n')
        script.chmod(0o755)
    stamp = where / ".openmfa-installed"
    stamp.touch()
    later = (ROOT / "pyproject.toml").stat().st_mtime + 10
    os.utime(stamp, (later, later))
    return where


def _run_dev(venv: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    path = ":".join(
        p for p in os.environ.get("PATH", "").split(":") if p and not Path(p, "openmfa").exists()
    )
    env = {**os.environ, "PATH": path, "OPENMFA_VENV": venv, "OPENMFA_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [str(ROOT / "dev"), "serve", "--listen", "127.0.0.1:9999"],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=120,
    )


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
def test_dev_serve_finds_openmfa_in_the_venv_it_is_given(tmp_path: Path, relative: bool) -> None:
    venv = _fake_venv(tmp_path / "venv")
    given = os.path.relpath(venv, ROOT) if relative else str(venv)
    done = _run_dev(given, tmp_path / "var")
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "openmfa init" in done.stdout  # a first run makes the data directory
    assert "openmfa serve --listen 127.0.0.1:9999" in done.stdout
