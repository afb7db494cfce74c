"""Corroboration: before the VIP leaves a member, ask the members' IRIS who is really primary.

An identity token proves which VM sent an event, not that the VM is primary: any process on a
backup can get the backup's token. So before a move, every member's IRIS health endpoint
(`mirror_status.cxw`: 200 `SUCCESS` on the primary, 503 otherwise) is asked, in parallel with the
Compute reads. A member other than the target that is RUNNING and still answers `SUCCESS` blocks
the move (`holder_still_primary` when it holds the VIP, `other_member_primary` otherwise). The
target's own answer is logged but never trusted: a compromised target can lie about itself. A
member that does not answer, or whose VM is not RUNNING, or cannot be read (its zone down) does
not block: that is the failover this function exists for.

The interface is small so that any mover (alias or route) can use it: `Corroborator.begin(mirror)`
starts the probes and returns `Probes`; `Probes.check(target, holders, nics)` waits for the
answers that matter and raises `EventRejected` if one blocks.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from .config import InstanceRef, MirrorConfig
from .errors import EventRejected
from .plan import NicState, Unreadable
from .safeguards_config import CorroborateConfig

Answer = Literal["primary", "not_primary", "no_answer"]
ProbeFn = Callable[[str, float], Answer]
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
MAX_BODY_BYTES = 1024


def http_probe(url: str, timeout_s: float) -> Answer:
    """GET the health endpoint: `primary` only for 200 with a body of `SUCCESS`."""
    try:
        with _NO_PROXY.open(url, timeout=timeout_s) as response:
            body = response.read(MAX_BODY_BYTES).decode("utf-8", "replace").strip()
            return "primary" if response.status == 200 and body == "SUCCESS" else "not_primary"
    except urllib.error.HTTPError as err:
        err.close()
        return "not_primary"
    except (OSError, ValueError):  # refused, reset, timed out, unresolvable: no answer
        return "no_answer"


class Corroborator:
    """Starts probes; remembers members' internal IPs between events (they rarely change).

    Args:
        probe: How one URL is asked (tests and benchmarks inject their own).
    """

    def __init__(self, probe: ProbeFn = http_probe) -> None:
        self._probe = probe
        self._lock = threading.Lock()
        self._ips: dict[InstanceRef, str] = {}

    def begin(self, mirror: MirrorConfig) -> Probes | None:
        """Start asking every member whose URL can be built now; None without corroboration."""
        if mirror.corroborate is None:
            return None
        probes = Probes(self, mirror.corroborate, mirror.members)
        for ref in mirror.members:
            probes.start(ref, self.known_ip(ref))
        return probes

    def known_ip(self, ref: InstanceRef) -> str | None:
        with self._lock:
            return self._ips.get(ref)

    def learn(self, ref: InstanceRef, ip: str) -> None:
        with self._lock:
            self._ips[ref] = ip

    def ask(self, url: str, timeout_s: float) -> Answer:
        return self._probe(url, timeout_s)


@dataclass(frozen=True)
class Verdict:
    """What the members said, for the outcome line: `name=answer` per member asked."""

    answers: Mapping[InstanceRef, Answer]

    def describe(self) -> list[str]:
        return [f"corroborate:{ref.name}={answer}" for ref, answer in sorted(self.answers.items())]


class Probes:
    """The probes of one event, running in the background until `check` needs them."""

    def __init__(
        self, owner: Corroborator, config: CorroborateConfig, members: Iterable[InstanceRef]
    ) -> None:
        self._owner = owner
        self._config = config
        self._members = tuple(members)
        self._pool = ThreadPoolExecutor(max_workers=len(self._members), thread_name_prefix="probe")
        self._futures: dict[InstanceRef, tuple[str, Future[Answer]]] = {}

    def start(self, ref: InstanceRef, ip: str | None) -> None:
        """Ask `ref` now, unless its URL needs an IP that is not known yet."""
        needs_ip = "{ip}" in self._config.url
        if ref in self._futures or (needs_ip and not ip):
            return
        url = self._config.url_for(ip or "", ref.name, ref.zone)
        future = self._pool.submit(self._owner.ask, url, self._config.timeout_s)
        self._futures[ref] = (url, future)

    def check(
        self,
        target: InstanceRef,
        holders: Iterable[InstanceRef],
        nics: Mapping[InstanceRef, NicState | Unreadable],
    ) -> Verdict:
        """Refuse the move if a running member other than `target` still says it is primary.

        Args:
            target: Where the VIP is going; its own answer is not trusted.
            holders: The members that hold the VIP now.
            nics: This round's reads: status and internal IP of each member.

        Raises:
            EventRejected: `holder_still_primary` or `other_member_primary`.
        """
        running = [
            ref
            for ref, nic in nics.items()
            if isinstance(nic, NicState) and nic.status == "RUNNING" and ref != target
        ]
        for ref in running:
            nic = nics[ref]
            assert isinstance(nic, NicState)
            if nic.network_ip:
                self._owner.learn(ref, nic.network_ip)
            self.start(ref, nic.network_ip or None)
        # Wait only for the answers that can block: a stopped or unreachable member's probe may
        # run to its timeout, and it would not block anyway.
        answers = {ref: self._futures[ref][1].result() for ref in running if ref in self._futures}
        answers |= {
            ref: future.result()
            for ref, (_, future) in self._futures.items()
            if ref not in answers and future.done() and not future.cancelled()
        }
        verdict = Verdict(answers)
        holding = set(holders)
        for ref in running:
            if answers.get(ref) == "primary":
                reason = "holder_still_primary" if ref in holding else "other_member_primary"
                raise EventRejected(
                    reason,
                    f"{ref} is RUNNING and its IRIS still answers SUCCESS at "
                    f"{self._futures[ref][0]}: the VIP stays; {target.name} is not the only "
                    "primary",
                )
        return verdict

    def close(self) -> None:
        """Do not wait for probes nobody needs (a no-op move); they end on their timeout."""
        self._pool.shutdown(wait=False, cancel_futures=True)
