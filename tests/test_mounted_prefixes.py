"""The apps ``openmfa serve`` mounts (``[mobile]``, ``[portal]``, ``[console] enabled``) each
need a path of their own: one that another mounted app takes is refused with both names."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from openmfa.config import Config, defaults, merge
from openmfa.errors import ConfigError
from openmfa.server import _beside


def config(**sections: dict[str, Any]) -> Config:
    return Config(merge(defaults(), dict(sections), "test"), None)


def test_a_prefix_another_mounted_app_serves_at_is_refused() -> None:
    node: Any = SimpleNamespace()
    both = config(portal={"enabled": True}, console={"enabled": True, "prefix": "/portal/"})
    with pytest.raises(ConfigError, match=r"\[console\] prefix '/portal'.*\[portal\] serves at it"):
        _beside(node, both, "console")
    apart = config(portal={"enabled": True}, console={"enabled": True})
    assert _beside(node, apart, "console") == ("/console", None)
    with pytest.raises(ConfigError, match="must be a path of its own"):
        _beside(node, config(console={"enabled": True, "prefix": "/v1/admin"}), "console")
