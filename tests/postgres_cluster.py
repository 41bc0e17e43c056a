"""The machine's PostgreSQL cluster, restarted for real: what a fault test and the
restart benchmark do to it. Only where the cluster is a Debian one this user may manage
(``pg_lsclusters``/``pg_ctlcluster``, as root or as its owner), as CI runs it."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from urllib.parse import urlsplit


def local_cluster(url: str | None) -> tuple[str, str] | None:
    """(version, name) of the online cluster that serves ``url``'s port on this machine,
    when this user may restart it; else None."""
    if not url or not shutil.which("pg_lsclusters"):
        return None
    port = str(urlsplit(url).port or 5432)
    listing = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=False
    )
    for line in listing.stdout.splitlines():
        version, name, cluster_port, status, owner, *_ = line.split()
        may_manage = os.geteuid() == 0 or getpass.getuser() == owner
        if cluster_port == port and status.startswith("online") and may_manage:
            return version, name
    return None


def restart(cluster: tuple[str, str]) -> None:
    """Restart the cluster (a fast shutdown: every connection is dropped) and return
    once it accepts connections again."""
    version, name = cluster
    subprocess.run(
        ["pg_ctlcluster", version, name, "restart"], check=True, capture_output=True, timeout=120
    )
