"""What the services beside the nodes (the Mobile App Web Service, the User Portal) read alike
from their own TOML file: where they listen, the URL prefix, the nodes' SDK URLs and the API key
they call them with (inline, or from a file only its owner can read)."""

from __future__ import annotations

import os
import re
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import merge, parse_listen
from .errors import ConfigError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


@dataclass(frozen=True)
class ServiceBasics:
    host: str
    port: int
    prefix: str
    nodes: list[str]
    api_key: str
    ca_file: str
    name: str = ""
    """The name it reports to the farm's inventory ("" reports nothing)."""


def read_settings(default_text: str, path: Path | None, name: str) -> dict[str, dict[str, Any]]:
    """``path`` (absent: the defaults) merged over the shipped file, every value checked."""
    base = tomllib.loads(default_text)
    given: dict[str, Any] = {}
    if path is not None:
        try:
            given = tomllib.loads(path.read_text("utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}; fix the line it names") from None
    return merge(base, given, str(path or name))


def check_prefix(section: str, value: str) -> str:
    prefix = "/" + value.strip("/")
    if prefix == "/" or not all(
        part.isidentifier() or part.replace("-", "").isalnum() for part in prefix[1:].split("/")
    ):
        raise ConfigError(f"[{section}] prefix {value!r} must be a path like /{section}")
    return prefix


def basics(values: dict[str, Any], section: str, path: Path | None, scope: str) -> ServiceBasics:
    host, port = parse_listen(values["listen"])
    nodes = [str(n).rstrip("/") for n in values["nodes"]]
    if not nodes or not all(n.startswith(("http://", "https://")) for n in nodes):
        raise ConfigError(f"[{section}] nodes must list the nodes' SDK URLs (http:// or https://)")
    key = str(values["api_key"])
    key_file = str(values["api_key_file"])
    if key_file:
        key_path = relative(path, key_file) or Path(key_file)
        try:
            mode = key_path.stat().st_mode
            key = key_path.read_text("utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read [{section}] api_key_file {key_path}: {exc.strerror}"
            ) from None
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"{key_path} is readable by others; chmod 600 it")
    if not key:
        raise ConfigError(
            f"[{section}] needs an API key of scope {scope}: `openmfa apikey create {section} "
            f"--scope {scope}`, then api_key_file = the file holding it"
        )
    name = str(values.get("name", ""))
    if name and not NAME.fullmatch(name):
        raise ConfigError(
            f"[{section}] name {name!r}: letters, digits, '.', '_' and '-' (as in HAProxy's "
            "server names), up to 63"
        )
    return ServiceBasics(
        host,
        port,
        check_prefix(section, str(values["prefix"])),
        nodes,
        key,
        str(values["ca_file"]),
        name,
    )


def relative(config: Path | None, name: str) -> Path | None:
    """A file named in a config file: relative names are beside that file."""
    if not name:
        return None
    p = Path(name)
    return p if p.is_absolute() or config is None else config.parent / p
