"""The actor kernel: OTP-style supervision of pykka actors, hosted in a trio process.

Nothing here knows what the actors do. See docs/kernel.md for how the pieces fit.
"""

from edge_runtime.actor import Actor
from edge_runtime.asyncio_seam import AsyncioSeam
from edge_runtime.errors import ChildRefused, RestartIntensityExceeded, StartTimedOut, TreeFailed
from edge_runtime.process import run
from edge_runtime.registry import Registry
from edge_runtime.spec import Backoff, ChildSpec, Restart, Strategy, SupervisorSpec
from edge_runtime.systemd import Notifier
from edge_runtime.tree import Tree, supervision_tree

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
