"""The software bill of materials a bundle carries: every wheel in it as a CycloneDX 1.5
component (name, version, package URL, SHA-256), so an administrator's scanner can tell what a
release holds without installing it."""

from __future__ import annotations

import json
import re
import time
import uuid

FILE = "sbom.cdx.json"
_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)-")


def _normalise(name: str) -> str:
    """A Python package name as PyPI knows it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def cyclonedx(version: str, wheels: dict[str, str]) -> bytes:
    """The SBOM of a release ``version`` made of ``wheels`` (file name -> SHA-256)."""
    components = []
    for name, digest in sorted(wheels.items()):
        m = _WHEEL.match(name)
        package, release = (_normalise(m["name"]), m["version"]) if m else (name, "")
        components.append(
            {
                "type": "library",
                "bom-ref": f"pkg:pypi/{package}@{release}",
                "name": package,
                "version": release,
                "purl": f"pkg:pypi/{package}@{release}",
                "hashes": [{"alg": "SHA-256", "content": digest}],
                "properties": [{"name": "openmfa:file", "value": f"wheels/{name}"}],
            }
        )
    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "component": {
                "type": "application",
                "bom-ref": f"pkg:pypi/openmfa@{version}",
                "name": "openmfa",
                "version": version,
                "purl": f"pkg:pypi/openmfa@{version}",
            },
        },
        "components": components,
    }
    return json.dumps(bom, indent=2).encode() + b"\n"
