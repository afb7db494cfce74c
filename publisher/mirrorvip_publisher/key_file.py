"""Warn when a service account key file is configured on a GCE VM.

On a VM the publisher should act as the VM's own service account, through the metadata server:
its tokens are short-lived and nothing can be copied off the disk. A key file is a long-lived
secret that outlives the VM and works from anywhere, and it is never needed here (the identity
token comes from the metadata server anyway). The metadata server answering proves we are on a
VM; the warning is given once per process, so a heartbeat task does not repeat it every run.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

KEY_FILE_VAR = "GOOGLE_APPLICATION_CREDENTIALS"
"""google-auth's application default credentials: the path of a key file when set."""

_warned = False
_warned_lock = threading.Lock()


def key_file(environ: Mapping[str, str] | None = None) -> str:
    """The key file that application default credentials would load, or ''."""
    return (os.environ if environ is None else environ).get(KEY_FILE_VAR, "")


def key_file_on_vm_warning(environ: Mapping[str, str] | None = None) -> str:
    """The warning for a key file configured on this VM, the first time only; else ''.

    Call it only once the metadata server has answered (that is what says "on a VM").
    """
    global _warned  # noqa: PLW0603 (once per process, by design)
    path = key_file(environ)
    if not path:
        return ""
    with _warned_lock:
        if _warned:
            return ""
        _warned = True
    return (
        f"{KEY_FILE_VAR}={path} names a service account key file on a GCE VM: a long-lived "
        "secret that can be copied off this machine; remove it and grant the VM's own service "
        "account roles/pubsub.publisher (docs/publisher.md, step 3)"
    )


def forget_warning() -> None:
    """Warn again (tests that start a new 'process')."""
    global _warned  # noqa: PLW0603
    with _warned_lock:
        _warned = False
