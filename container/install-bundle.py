"""The image's install step (container/Containerfile): check a signed offline bundle with nothing
taken from it, then install it with its own ``openmfa install``.

Why it is checked twice: ``openmfa install --from-bundle`` checks a bundle with the ``openmfa``
of the host it runs on. Here there is none yet: the only ``openmfa`` is the one in the bundle,
and a bundle whose openmfa wheel was changed could change that check too. So this script — the
image recipe's own code, Debian's Python (standard library only) and OpenSSL, nothing from the
bundle — first checks what ``install.signing`` and ``install.releases.verify_bundle`` check:
``bundle.sig`` is a valid Ed25519 signature by the pinned release key over ``bundle.json`` as it
is, every file the manifest lists has its SHA-256, and no other wheel is there. Only then is the
bundle's own ``openmfa`` run (from its unpacked wheels, in-process, so nothing it starts
inherits them): ``release-key trust``, then ``install --from-bundle``, which checks it again.

Invariant owned here: no byte of the bundle is run, or imported, before that check has passed.
Refusals name the file, in the words ``openmfa install`` uses, and fail the image build.

Usage: python3 install-bundle.py BUNDLE.tar.gz RELEASE_KEY_FILE [--root /opt/openmfa]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PUBLIC_PREFIX = "openmfa-release-key-v1:"
ED25519_SPKI = bytes.fromhex("302a300506032b6570032100")
"""DER SubjectPublicKeyInfo of an Ed25519 key (RFC 8410, section 4) before its 32 bytes."""
DATA_DIR = Path("/var/lib/openmfa")
COMPONENTS = "server,portal,mobile"
RUNNER = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); sys.argv[0] = 'openmfa'; "
    "from openmfa.cli import main; main()"
)
"""Runs the unpacked bundle's ``openmfa``; its path is on this process's sys.path only (never
PYTHONPATH, which the pip that ``install`` starts would take for installed packages)."""


class Refused(Exception):
    """The bundle is not one this image takes; the message names the file."""


def key_id(public: str) -> str:
    """As ``openmfa release-key list`` shows a key (``install.signing.key_id``)."""
    return hashlib.sha256(public.encode()).hexdigest()[:16]


def extract(archive: Path, into: Path) -> Path:
    """The bundle's folder, from a .tar.gz of regular files and folders only (this Python,
    Debian 12's 3.11.2, has no ``tarfile`` extraction filter)."""
    if archive.is_dir():
        return archive
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if not (member.isfile() or member.isdir()) or member.name.startswith("/"):
                    raise Refused(f"{archive} holds {member.name!r}, which is not a bundle file")
                if ".." in parts:
                    raise Refused(f"{archive} holds {member.name!r}, which is not a bundle file")
            tar.extractall(into)  # noqa: S202 - every member was checked above
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise Refused(f"{archive} is not a readable bundle ({exc}); copy it again") from None
    inner = [p for p in into.iterdir() if p.is_dir()]
    return inner[0] if len(inner) == 1 else into


def check_signature(bundle: Path, public: str, scratch: Path) -> None:
    sig_path = bundle / "bundle.sig"
    if not sig_path.exists():
        raise Refused(
            f"bundle.sig is missing: this image takes only bundles signed by its release key "
            f"({key_id(public)}); make the bundle with `openmfa bundle create --sign-key FILE`"
        )
    damaged = Refused(
        "bundle.sig does not match bundle.json: the bundle was changed after it was signed, "
        "or damaged; copy it again from where it was made"
    )
    try:
        said = json.loads(sig_path.read_bytes())
        signer, signature = str(said["key"]), base64.b64decode(said["signature"])
    except (ValueError, KeyError, TypeError):
        raise damaged from None
    if signer != public:
        raise Refused(
            f"bundle.sig is by release key {key_id(signer)}, which this image does not trust "
            f"(it trusts {key_id(public)}); build with the key that signed the bundle"
        )
    body = public[len(PUBLIC_PREFIX) :]
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    pem = scratch / "release-key.pem"
    pem.write_text(
        "-----BEGIN PUBLIC KEY-----\n"
        + base64.b64encode(ED25519_SPKI + raw).decode()
        + "\n-----END PUBLIC KEY-----\n"
    )
    sig_file = scratch / "bundle.sig.raw"
    sig_file.write_bytes(signature)
    manifest = bundle / "bundle.json"
    verify = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(pem), "-rawin"]
    verified = subprocess.run(
        [*verify, "-in", str(manifest), "-sigfile", str(sig_file)], capture_output=True
    )
    if verified.returncode != 0:
        raise damaged


def check_files(bundle: Path) -> str:
    """The bundle's version, once every file is as the (signed) manifest says."""
    try:
        manifest = json.loads((bundle / "bundle.json").read_bytes())
        files: dict[str, str] = dict(manifest["files"])
        version = str(manifest["version"])
    except (ValueError, KeyError, TypeError):
        raise Refused("bundle.json is damaged; copy the bundle again") from None
    wheels = bundle / "wheels"
    present = {p.name for p in wheels.iterdir()} if wheels.is_dir() else set()
    for name in sorted(present - set(files)):
        raise Refused(f"bundle file wheels/{name} is not in bundle.json; copy the bundle again")
    listed = [(f"wheels/{n}", d) for n, d in files.items()]
    if isinstance(manifest.get("sbom"), dict):
        listed.append((str(manifest["sbom"]["name"]), str(manifest["sbom"]["sha256"])))
    for name, digest in listed:
        path = bundle / name
        if "/" in name.removeprefix("wheels/") or name.startswith(("/", "..")) or not name:
            raise Refused(f"bundle.json names {name!r}, which is not a bundle file")
        if path.is_symlink() or not path.is_file():
            raise Refused(f"bundle file {name} is missing or damaged; copy the bundle again")
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise Refused(f"bundle file {name} is missing or damaged; copy the bundle again")
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    made = str(manifest.get("python", here))
    if made != here:
        raise Refused(
            f"the bundle was made with Python {made}, and its compiled wheels are for that "
            f"Python; this image has Python {here} (Debian's python3): make the bundle on a host "
            f"with Python {here}"
        )
    return version


def unpack(wheels: Path, into: Path) -> None:
    """Every (checked) wheel unpacked into one folder: enough to run ``openmfa`` from it."""
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as z:
            z.extractall(into)  # noqa: S202 - checked wheels; zipfile keeps names inside


def openmfa(boot: Path, *args: str) -> None:
    """Run the bundle's ``openmfa``; its output is shown, but for the admin key of the data
    directory ``install`` makes, which is thrown away (below)."""
    print("+ openmfa", " ".join(args), flush=True)
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(boot), *args], capture_output=True, text=True
    )
    said = re.sub(r"omfa_\S+", "omfa_… (thrown away with the data directory)", done.stdout)
    sys.stdout.write(said)
    sys.stderr.write(done.stderr)
    sys.stderr.flush()
    done.check_returncode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("key_file", type=Path)
    parser.add_argument("--root", type=Path, default=Path("/opt/openmfa"))
    args = parser.parse_args(argv)
    public = args.key_file.read_text().strip()
    if not public.startswith(PUBLIC_PREFIX):
        print(f"{args.key_file} holds no release key ({PUBLIC_PREFIX}…)", file=sys.stderr)
        return 1
    scratch = Path(tempfile.mkdtemp(prefix="openmfa-image-"))
    try:
        try:
            bundle = extract(args.bundle, scratch / "bundle")
            check_signature(bundle, public, scratch)
            version = check_files(bundle)
        except Refused as exc:
            print(f"refused: {exc}", file=sys.stderr)
            return 1
        print(f"checked bundle of OpenMFA {version}: signed by release key {key_id(public)}")
        boot = scratch / "boot"
        unpack(bundle / "wheels", boot)
        openmfa(boot, "release-key", "trust", public, "--root", str(args.root))
        # The checked folder, not the archive: that `install` checks it again in its own way.
        openmfa(
            boot, "install", "--root", str(args.root), "--from-bundle", str(bundle),
            "--components", COMPONENTS,
        )  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    # The image holds no data: `install` made a node's data directory (a data file, its key,
    # an admin key) in ROOT/var; that belongs on the volume, made at the node's first start.
    var = args.root / "var"
    shutil.rmtree(var)
    os.symlink(DATA_DIR, var)
    return 0


if __name__ == "__main__":
    sys.exit(main())
