from __future__ import annotations

import tomllib

from openmfa.config import default_text, defaults, merge
from openmfa.install.config_merge import merge as merge3
from openmfa.install.config_merge import shipped_comments

OLD = """\
[server]
# Address to listen on.
listen = "127.0.0.1:8480"
# Old knob.
legacy_mode = false
# Node name.
node_name = ""

[policy]
lockout_threshold = 10
lockout_minutes = 15
"""

NEW = """\
[server]
# Address to listen on.
listen = "127.0.0.1:8480"
# Node name.
node_name = ""
# How long to wait for clients to finish on shutdown.
drain_seconds = 30

[policy]
lockout_threshold = 10
lockout_minutes = 30
failure_window = 600

[audit]
# Days of audit history to keep.
keep_days = 365
"""

ADMIN = """\
# Our production node — managed by ops, ask Kim before changing.
[policy]
lockout_threshold = 5   # security review 2025

[server]
node_name = "mfa-01"
legacy_mode = true
listen = "0.0.0.0:8480"
"""


def test_every_admin_value_survives_with_comments_and_order() -> None:
    text, report = merge3(OLD, ADMIN, NEW, release="0.2.0")
    assert text.startswith("# Our production node — managed by ops, ask Kim before changing.")
    assert "lockout_threshold = 5   # security review 2025" in text
    assert text.index("[policy]") < text.index("[server]")  # the admin's order
    merged = tomllib.loads(text)
    assert merged["server"]["node_name"] == "mfa-01"
    assert merged["server"]["listen"] == "0.0.0.0:8480"
    assert merged["policy"]["lockout_threshold"] == 5
    assert any(k.startswith("policy.lockout_threshold") for k in report.kept)


def test_new_keys_added_with_their_shipped_comment() -> None:
    text, report = merge3(OLD, ADMIN, NEW, release="0.2.0")
    merged = tomllib.loads(text)
    assert merged["server"]["drain_seconds"] == 30
    assert merged["audit"]["keep_days"] == 365
    assert merged["policy"]["failure_window"] == 600
    assert "# How long to wait for clients to finish on shutdown." in text
    assert "# Days of audit history to keep." in text
    assert "added by the upgrade to 0.2.0" in text
    assert sorted(report.added) == [
        "audit.keep_days = 365",
        "policy.failure_window = 600",
        "server.drain_seconds = 30",
    ]


def test_removed_key_is_commented_out_and_reported_never_dropped() -> None:
    text, report = merge3(OLD, ADMIN, NEW, release="0.2.0")
    assert "# removed in 0.2.0: legacy_mode = true" in text
    assert "legacy_mode" not in tomllib.loads(text)["server"]
    assert report.removed == ["server.legacy_mode = True (not used by 0.2.0; commented out)"]


def test_renamed_key_moves_with_the_admins_value() -> None:
    text, report = merge3(
        OLD, ADMIN, NEW, release="0.2.0", renames={"server.legacy_mode": "audit.legacy"}
    )
    merged = tomllib.loads(text)
    assert merged["audit"]["legacy"] is True and "legacy_mode" not in merged["server"]
    assert report.renamed == ["server.legacy_mode -> audit.legacy = True"]


def test_changed_default_the_admin_never_set_is_reported() -> None:
    _, report = merge3(OLD, ADMIN, NEW, release="0.2.0")
    assert report.default_changed == ["policy.lockout_minutes: 15 -> 30"]


def test_merging_the_shipped_defaults_into_an_edited_file_loads_cleanly() -> None:
    admin = default_text().replace("lockout_threshold = 10", "lockout_threshold = 4 # ours")
    admin = "# site comment\n" + admin
    text, report = merge3(default_text(), admin, default_text(), release="same")
    assert not report.added and not report.removed
    loaded = merge(defaults(), tomllib.loads(text), "merged")
    assert loaded["policy"]["lockout_threshold"] == 4 and "# site comment" in text


def test_shipped_comments() -> None:
    found = shipped_comments(NEW)
    assert found["server.listen"] == ["Address to listen on."]
    assert found["policy.failure_window"] == []


def test_a_setting_shipped_commented_out_is_kept_not_taken_for_removed() -> None:
    """``[mobile] public_url`` is shipped commented out (config.OPTIONAL); an admin who set it
    keeps it through an upgrade (the whole-deployment scenario found it commented out)."""
    from openmfa.config import OPTIONAL

    admin = (
        ADMIN + '\n[mobile]\npublic_url = "https://mfa.example.org/mobile"\nmin_gap_seconds = 0.5\n'
    )
    optional = frozenset(f"{s}.{k}" for s, k in OPTIONAL)
    text, report = merge3(OLD, admin, NEW, release="0.2.1", optional=optional)
    loaded = tomllib.loads(text)
    assert loaded["mobile"] == {
        "public_url": "https://mfa.example.org/mobile",
        "min_gap_seconds": 0.5,
    }
    assert not any("mobile" in line for line in report.removed)
    assert "mobile.public_url = 'https://mfa.example.org/mobile'" in report.kept
    assert "mobile.enabled" not in text  # optional settings the admin never set stay out
