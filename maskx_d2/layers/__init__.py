"""Layers shared by every model of the project (see each module's docstring)."""

from .roi_align import *  # noqa: F401,F403  (the names of its __all__)
from .roi_align import __all__  # noqa: F401
