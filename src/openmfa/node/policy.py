"""Verification policy from configuration."""

from __future__ import annotations

from ..config import Config
from ..core.lockout import LockoutPolicy
from ..core.verification import VerifyPolicy


def verify_policy(config: Config) -> VerifyPolicy:
    p = config.values["policy"]
    return VerifyPolicy(
        lockout=LockoutPolicy(threshold=p["lockout_threshold"], minutes=p["lockout_minutes"]),
        totp_drift_steps=p["totp_drift_steps"],
        hotp_look_ahead=p["hotp_look_ahead"],
    )
