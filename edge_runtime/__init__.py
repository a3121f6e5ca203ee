"""The actor kernel: OTP-style supervision of pykka actors, hosted in a trio process.

Nothing here knows what the actors do. See docs/kernel.md for how the pieces fit.
"""

from edge_runtime._actor import Actor
from edge_runtime._asyncio_seam import AsyncioSeam
from edge_runtime._errors import ChildRefused, RestartIntensityExceeded, StartTimedOut, TreeFailed
from edge_runtime._process import run
from edge_runtime._registry import Registry
from edge_runtime._spec import Backoff, ChildSpec, Restart, Strategy, SupervisorSpec
from edge_runtime._systemd import Notifier
from edge_runtime._tree import Tree, supervision_tree

__all__ = [
    "Actor",
    "AsyncioSeam",
    "Backoff",
    "ChildRefused",
    "ChildSpec",
    "Notifier",
    "Registry",
    "Restart",
    "RestartIntensityExceeded",
    "StartTimedOut",
    "Strategy",
    "SupervisorSpec",
    "Tree",
    "TreeFailed",
    "run",
    "supervision_tree",
]
