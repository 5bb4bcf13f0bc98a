"""The Web Service SDK: the REST/JSON API every other part (portal, mobile service, adapters,
RADIUS front ends on other hosts) uses, and the typed Python clients for it.

What an app on another host imports (none of it touches a database)::

    from openmfa.sdk import SdkClient, AsyncSdkClient, errors, models

The server side (``openmfa.sdk.app``) is imported only by the node itself.
"""

from . import errors, models
from .client import AsyncSdkClient, Call, Requests, SdkClient

__all__ = ["AsyncSdkClient", "Call", "Requests", "SdkClient", "errors", "models"]
