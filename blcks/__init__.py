"""The blcks SDK: what a script's `handler/handler.py` imports (`from blcks import blcks`).

Standard library only: it is installed into every script's environment and must start fast.
"""

from __future__ import annotations

import os

from blcks.errors import InputError, ScriptError, ServiceError
from blcks.logger import make_logger
from blcks.sdk import Blcks
from blcks.services import ServiceName

blcks = Blcks(make_logger(os.environ))

__all__ = ["Blcks", "InputError", "ScriptError", "ServiceError", "ServiceName", "blcks"]
