"""Releases side by side: ``ROOT/releases/<version>/`` (a virtual environment and the wheels it
was built from), and ``ROOT/current`` pointing at one of them, switched atomically.

Invariant owned here: a release directory is complete (its environment installed and its
``openmfa`` runs) exactly when it holds the ``COMPLETE`` marker, written last; ``current`` only
ever points at a complete one. (A virtual environment cannot be renamed into place: its scripts
name their interpreter by absolute path, so it is built where it will live.)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..errors import InstallFailed, InvalidInput
from . import sbom, signing

_WHEEL = re.compile(r"^openmfa-(?P<version>[^-]+)-.*\.whl$")
BUNDLE_MANIFEST = "bundle.json"
COMPLETE = "COMPLETE"


def wheel_version(wheel: Path) -> str:
    m = _WHEEL.match(wheel.name)
    if not m:
        raise InvalidInput(f"{wheel.name} is not an openmfa wheel (openmfa-VERSION-….whl)")
    return m.group("version")


NICENESS = 10
"""A new release is installed while the host's services keep serving: pip, the environment
and the byte-compiling run at a lower CPU priority, so sign-ins on the same cores come first
(on a two-core machine running the scenario's eight hosts, an unniced install slowed a push
sign-in past 2 s)."""


def lower_priority() -> None:
    """For a helper process that may run behind the services (``preexec_fn``)."""
    os.nice(NICENESS)


def _run(cmd: list[str], what: str) -> None:
    out = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=lower_priority)
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        raise InstallFailed(f"{what} failed: {' / '.join(tail)}")


COMPILE_ENV = "OPENMFA_INSTALL_COMPILE"
"""``0`` skips byte-compiling a new release (the test suite, which installs dozens)."""


def _compile(venv: Path) -> None:
    """Byte-compile the release's packages on every core (pip would use one), so its first
    start does not. Only a speed-up: a file that does not compile is left for Python to
    report when it is imported, and ``OPENMFA_INSTALL_COMPILE=0`` skips the step."""
    if os.environ.get(COMPILE_ENV) == "0":
        return
    for site in (venv / "lib").glob("python3*/site-packages"):
        cmd = [str(venv / "bin" / "python"), "-m", "compileall", "-q", "-j", "0"]
        subprocess.run(
            [*cmd, "-x", r"/(pip|setuptools)/", str(site)],
            capture_output=True,
            preexec_fn=lower_priority,
        )


def open_bundle(bundle: Path, into: Path, pinned: list[str] | None = None) -> tuple[str, Path]:
    """Check a bundle (directory or .tar.gz) against its manifest and, where the host pins
    release keys (``pinned``), its signature (``install.signing``); return (version, wheels).
    Refuses, naming the file, before anything is installed."""
    version, wheels, _ = verify_bundle(bundle, into, pinned or [])
    return version, wheels


def _extract(tar: tarfile.TarFile, into: Path) -> None:
    """Every member, as the ``data`` filter allows (no links out, no absolute paths, no
    devices); a Python without extraction filters (Debian 12's 3.11.2) gets the same check by
    hand."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(into, filter="data")
        return
    root = into.resolve()
    for member in tar.getmembers():
        target = (into / member.name).resolve()
        if not (member.isfile() or member.isdir()) or not target.is_relative_to(root):
            raise tarfile.TarError(f"{member.name} is not a plain file of the bundle")
    tar.extractall(into)  # noqa: S202 - every member checked above


def verify_bundle(bundle: Path, into: Path, pinned: list[str]) -> tuple[str, Path, str]:
    """``open_bundle``, and the id of the key that signed it ("" when unsigned)."""
    if bundle.is_file():
        try:
            with tarfile.open(bundle) as tar:
                _extract(tar, into)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise InvalidInput(
                f"{bundle} is not a readable bundle ({exc}); copy it again"
            ) from None
        inner = [p for p in into.iterdir() if p.is_dir()]
        bundle = inner[0] if len(inner) == 1 else into
    manifest_path = bundle / BUNDLE_MANIFEST
    if not manifest_path.exists():
        raise InvalidInput(f"{bundle} is not an openmfa bundle (no {BUNDLE_MANIFEST})")
    raw = manifest_path.read_bytes()
    signer = signing.check_signature(bundle, raw, pinned)
    try:
        manifest = json.loads(raw)
        files: dict[str, str] = dict(manifest["files"])
        version = str(manifest["version"])
    except (ValueError, KeyError, TypeError):
        raise InvalidInput(
            f"{BUNDLE_MANIFEST} of {bundle} is damaged; copy the bundle again"
        ) from None
    wheels = bundle / "wheels"
    present = {p.name for p in wheels.iterdir()} if wheels.is_dir() else set()
    for name in sorted(present - set(files)):
        raise InvalidInput(
            f"bundle file wheels/{name} is not in {BUNDLE_MANIFEST}; copy the bundle again"
        )
    listed = [(f"wheels/{n}", d) for n, d in files.items()]
    if isinstance(manifest.get("sbom"), dict):
        listed.append((str(manifest["sbom"]["name"]), str(manifest["sbom"]["sha256"])))
    # What is checked is a private copy, and only the copy is installed: a file changed in
    # the bundle's folder after the check (or a link swapped) never reaches the host.
    checked = Path(tempfile.mkdtemp(prefix="checked-", dir=into))
    (checked / "wheels").mkdir()
    for name, digest in listed:
        path = bundle / name
        if "/" in name.removeprefix("wheels/") or name.startswith(("/", "..")) or not name:
            raise InvalidInput(f"{BUNDLE_MANIFEST} names {name!r}, which is not a bundle file")
        if path.is_symlink() or not path.is_file():
            raise InvalidInput(f"bundle file {name} is missing or damaged; copy the bundle again")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise InvalidInput(f"bundle file {name} is missing or damaged; copy the bundle again")
        (checked / name).write_bytes(data)
    return version, checked / "wheels", signer


def install_release(root: Path, *, wheel: Path | None = None, bundle: Path | None = None) -> str:
    """Build ``root/releases/<version>``; returns the version. Re-running after a crash is safe."""
    with tempfile.TemporaryDirectory() as scratch:
        if bundle is not None:
            version, wheelhouse = open_bundle(bundle, Path(scratch), signing.trusted(root))
        elif wheel is not None:
            version, wheelhouse = wheel_version(wheel), None
        else:
            raise InvalidInput("give --from-wheel or --from-bundle")
        work = root / "releases" / version
        if (work / COMPLETE).exists():
            return version  # already complete
        shutil.rmtree(work, ignore_errors=True)  # a half-built one from a crash: start over
        (work / "wheels").mkdir(parents=True)
        if wheelhouse is not None:
            for w in wheelhouse.iterdir():
                shutil.copy2(w, work / "wheels" / w.name)
        else:
            assert wheel is not None
            # Keep every wheel this release needs, so it can later make an offline bundle.
            _run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "wheel",
                    "-q",
                    "--wheel-dir",
                    str(work / "wheels"),
                    str(wheel),
                ],
                "collecting the wheels of the release",
            )
        _run([sys.executable, "-m", "venv", str(work / "venv")], "creating the environment")
        _run(
            [
                str(work / "venv" / "bin" / "python"),
                "-m",
                "pip",
                "--isolated",  # the release's own wheels only: no pip.conf, no PIP_* setting
                "install",
                "-q",
                "--no-compile",  # compiled below, on every core
                "--no-index",
                "--find-links",
                str(work / "wheels"),
                f"openmfa=={version}",
            ],
            "installing the release (offline, from its wheels)",
        )
        _compile(work / "venv")
        _run([str(work / "venv" / "bin" / "openmfa"), "--version"], "running the new release")
        (work / COMPLETE).write_text(version + "\n")
        return version


def switch_current(root: Path, version: str) -> None:
    """Point ``root/current`` at ``releases/<version>`` in one atomic rename."""
    target = Path("releases") / version
    if not (root / target / COMPLETE).exists():
        raise InstallFailed(f"release {version} is not installed under {root}/releases")
    tmp = root / "current.switching"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, root / "current")


def current_version(root: Path) -> str | None:
    link = root / "current"
    return Path(os.readlink(link)).name if link.is_symlink() else None


def create_bundle(
    release_dir: Path, version: str, out: Path, sign_key: Ed25519PrivateKey | None = None
) -> Path:
    """Copy a release's wheels, with a CycloneDX SBOM of them and a manifest of checksums (signed
    with ``sign_key``: ``bundle.sig``), into ``out`` (.tar.gz or folder)."""
    wheels = release_dir / "wheels"
    if not wheels.is_dir():
        raise InstallFailed(f"{release_dir} has no wheels folder; reinstall that release")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / f"openmfa-{version}-bundle"
        (folder / "wheels").mkdir(parents=True)
        files = {}
        for w in sorted(wheels.iterdir()):
            shutil.copy2(w, folder / "wheels" / w.name)
            files[w.name] = hashlib.sha256(w.read_bytes()).hexdigest()
        bom = sbom.cyclonedx(version, files)
        (folder / sbom.FILE).write_bytes(bom)
        manifest = json.dumps(
            {
                "version": version,
                "python": f"{sys.version_info.major}.{sys.version_info.minor}",
                "files": files,
                "sbom": {"name": sbom.FILE, "sha256": hashlib.sha256(bom).hexdigest()},
            },
            indent=2,
        ).encode()
        (folder / BUNDLE_MANIFEST).write_bytes(manifest)
        if sign_key is not None:
            (folder / signing.SIGNATURE_FILE).write_bytes(signing.sign(manifest, sign_key))
        if out.name.endswith((".tar.gz", ".tgz")):
            out.parent.mkdir(parents=True, exist_ok=True)
            with tarfile.open(out, "w:gz") as tar:
                tar.add(folder, arcname=folder.name)
        else:
            shutil.copytree(folder, out)
    return out


def package_dir(root: Path, version: str) -> Path:
    """Where a release's ``openmfa`` package lives inside its environment."""
    out = subprocess.run(
        [
            str(root / "releases" / version / "venv" / "bin" / "python"),
            "-c",
            "import os, openmfa; print(os.path.dirname(openmfa.__file__))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())
