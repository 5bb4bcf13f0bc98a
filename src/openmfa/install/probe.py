"""What the upgrade asks a release installed beside the running one, by running its own Python
(at a lower CPU priority than the services): each answer reads that release's code, not this
one's, so a newer release's rules apply to it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .releases import lower_priority


def takes_over(python: Path) -> bool:
    """Whether the release's node can be started ahead (``NodeControl.start_ahead``) and go on
    with a RADIUS socket it is given: a release before that would not wait, and would find the
    port taken."""
    if not python.exists():
        return False
    code = "import openmfa.node.control as c; print(hasattr(c, 'wait_at_gate'))"
    out = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, preexec_fn=lower_priority
    )
    return out.returncode == 0 and out.stdout.strip() == "True"


def optional(python: Path) -> frozenset[str]:
    """The release's settings shipped commented out (``config.OPTIONAL``): an admin's
    ``[mobile] public_url`` is one, and stays. Empty before a release had the list."""
    code = (
        "import json\n"
        "try:\n from openmfa.config import OPTIONAL\n"
        "except ImportError:\n OPTIONAL = {}\n"
        "print(json.dumps([f'{s}.{k}' for s, k in OPTIONAL]))"
    )
    out = subprocess.run(
        [str(python), "-c", code],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=lower_priority,
    )
    return frozenset(str(k) for k in json.loads(out.stdout))


def defaults(python: Path, module: str = "openmfa.config") -> str:
    """The release's shipped defaults (``module``'s ``default_text``); "" when that release has
    no such module (the mobile service came with 0.3)."""
    out = subprocess.run(
        [str(python), "-c", f"from {module} import default_text; print(default_text(), end='')"],
        capture_output=True,
        text=True,
        check=module == "openmfa.config",
        preexec_fn=lower_priority,
    )
    return out.stdout if out.returncode == 0 else ""
