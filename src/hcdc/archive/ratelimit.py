"""Failed sign-ins, recorded in the catalogue so that every worker process of ``hcdc serve``
counts the same attempts (table ``login_failures``, migration ``0010_web``).

A failure is one row (client address, account name lowercased, time). Two limits over a sliding
window of ``window_s`` seconds: ``max_failures`` per (address, account) and ``4 * max_failures``
per address whatever the account (a guesser trying many names). A successful sign-in forgets the
failures of that (address, account); rows older than the window are deleted as new ones arrive.
Times are naive UTC from the real clock (not the access rules' clock, which tests move).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import DateTime, Engine, Index, Integer, String, delete, func, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from hcdc.archive.db import write_transaction
from hcdc.archive.models import Base, utcnow


class LoginFailure(Base):
    """One failed sign-in: from which client address, for which account name, when (UTC)."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client: Mapped[str] = mapped_column(String(64), nullable=False)  # IP address as the server sees it
    account: Mapped[str] = mapped_column(String(64), nullable=False)  # lowercased name, as typed
    at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)

    __table_args__ = (
        Index("ix_login_failures_client_account_at", "client", "account", "at"),
        Index("ix_login_failures_at", "at"),
    )


class LoginLimiter:
    """The login rate limit, shared through the catalogue ``engine`` (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        max_failures: int = 5,
        window_s: float = 300.0,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock

    @staticmethod
    def _key(client: str, name: str) -> tuple[str, str]:
        return client[:64], name.strip().lower()[:64]

    def retry_after(self, client: str, name: str) -> int:
        """Seconds to wait before trying again (0: go ahead)."""
        client, account = self._key(client, name)
        now = self.clock()
        since = now - dt.timedelta(seconds=self.window_s)
        recent = (LoginFailure.client == client) & (LoginFailure.at > since)
        with self.engine.connect() as conn:
            for where, limit in (
                (recent & (LoginFailure.account == account), self.max_failures),
                (recent, 4 * self.max_failures),
            ):
                count, oldest = conn.execute(
                    select(func.count(), func.min(LoginFailure.at)).where(where)
                ).one()
                if count >= limit:
                    left = (oldest - since).total_seconds()
                    return max(1, int(left) + 1)
        return 0

    def failed(self, client: str, name: str) -> None:
        """Record one failed sign-in (and drop the rows that no longer count)."""
        client, account = self._key(client, name)
        now = self.clock()
        with write_transaction(self.engine) as conn:
            conn.execute(
                delete(LoginFailure).where(LoginFailure.at <= now - dt.timedelta(seconds=self.window_s))
            )
            conn.execute(insert(LoginFailure).values(client=client, account=account, at=now))

    def succeeded(self, client: str, name: str) -> None:
        """Forget the failures of this (address, account) after a successful sign-in."""
        client, account = self._key(client, name)
        with write_transaction(self.engine) as conn:
            conn.execute(
                delete(LoginFailure).where(LoginFailure.client == client, LoginFailure.account == account)
            )


__all__ = ["LoginFailure", "LoginLimiter"]
