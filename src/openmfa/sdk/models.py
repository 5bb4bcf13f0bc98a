"""The SDK's wire models: the contract (``openmfa.contract``), under the name the SDK's users
know."""

from ..contract import *  # noqa: F403
from ..contract import __all__ as __all__
