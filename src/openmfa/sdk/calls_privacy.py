"""The requests of what is held about one person (``/v1/users/{name}/export`` and ``/erase``),
beside ``calls.Requests`` (which the clients send the same way)."""

from __future__ import annotations

from .call import Call, _seg
from .models import Erased, PersonalData


class PrivacyRequests:
    """What is held about one person: its builders."""

    @staticmethod
    def export_user(name: str) -> Call[PersonalData]:
        return Call("GET", f"/v1/users/{_seg(name)}/export", PersonalData)

    @staticmethod
    def erase_user(name: str) -> Call[Erased]:
        return Call("POST", f"/v1/users/{_seg(name)}/erase", Erased, kind="write")
