"""Accept an identity token once: the last accepted token of each member, kept on the member.

Binding the token to its event (`canonical`) stops it from carrying another event; freshness
(`identity.MAX_TOKEN_AGE_S`) stops it from being kept for long. What remains is re-publishing the
same signed event within that minute. So when an event changes anything, its token's `iat` and
the Pub/Sub message id are written, with the high-water mark, as `<iat>-<message id>`: in alias
mode to the sending member's label `mirror-vip-token-<mirror>`, in route mode into the route
(`route_plan.Ledger`); an event whose token is older than that, or
as old but in another message, is refused as `token_replayed`. A redelivery (same message id) is
accepted. An event that changes nothing records nothing (a heartbeat costs no write), so such a
token is bounded by freshness only: replaying it changes nothing either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .config import LABEL_PREFIXES, label_key
from .errors import EventRejected
from .plan import LABEL_VALUE_MAX

TOKEN_PREFIX = LABEL_PREFIXES[2]


@dataclass(frozen=True)
class TokenUse:
    """The verified token of one delivery: when Google issued it, and the message it came in."""

    issued_at: int
    message_id: str

    def value(self) -> str:
        """The label value: `<iat>-<message id>`, the id reduced to label characters."""
        message = re.sub(r"[^a-z0-9_-]", "_", self.message_id.lower())
        return f"{self.issued_at}-{message}"[:LABEL_VALUE_MAX]


def token_label(mirror_name: str) -> str:
    """The label key of a mirror's last accepted tokens, e.g. `mirror-vip-token-irismirror`."""
    return label_key(TOKEN_PREFIX, mirror_name)


def check_token_once(token: TokenUse, recorded: str, member: str) -> None:
    """Refuse a token older than the member's last accepted one, or as old in another message.

    Args:
        token: The event's verified token.
        recorded: The member's last accepted token as recorded (`TokenUse.value`), or "".
        member: The member's instance name, for the error.

    Raises:
        EventRejected: `token_replayed`.
    """
    last = issued_at(recorded)
    if last is None or token.issued_at > last or recorded == token.value():
        return
    raise EventRejected(
        "token_replayed",
        f"{member}'s identity token (issued {token.issued_at}) is not newer than the "
        f"last one accepted from it ({recorded}): a token is accepted once",
    )


def issued_at(recorded: str) -> int | None:
    """The `iat` of a recorded token value; None for anything else (ASCII digits only)."""
    digits, _, _ = recorded.partition("-")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 16:
        return None
    return int(digits)
