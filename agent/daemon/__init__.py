"""The long-running agent (`rtcc-edge run`): composes the subsystems, runs them, stops them."""

from agent.daemon.app import (
    Component,
    ComponentFactory,
    Daemon,
    DaemonError,
    NoNotifier,
    RetentionLoop,
    ServiceNotifier,
    StoreService,
    run_daemon,
)
from agent.daemon.signals import install_stop_handlers

__all__ = [
    "Component",
    "ComponentFactory",
    "Daemon",
    "DaemonError",
    "NoNotifier",
    "RetentionLoop",
    "ServiceNotifier",
    "StoreService",
    "install_stop_handlers",
    "run_daemon",
]
