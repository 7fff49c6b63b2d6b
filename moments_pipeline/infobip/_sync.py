"""A thin synchronous facade over :class:`MomentsClient` for callers without an event loop.

It runs a private event loop in a daemon thread and submits each call to it, so it also works
when the calling thread already runs a loop of its own. The rate budget is process-wide and
loop-agnostic, so sync and async clients of one account share it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar

import httpx

from ._client import MomentsClient, RemovalOutcome
from ._config import MomentsClientConfig
from ._models import (
    AddFlowParticipantsResponse,
    ApiFormDto,
    ApiFormListDto,
    ApiStatusResponse,
    FlowParticipant,
    FlowParticipantsReportResponse,
    FormStatus,
    FormType,
)

__all__ = ["MomentsSyncClient"]

T = TypeVar("T")


class MomentsSyncClient:
    """Blocking counterpart of :class:`MomentsClient`; same methods, same errors.

    Args:
        config: Account, key, timeouts and rate.
        transport: Optional httpx async transport (e.g. the emulator's, in tests).

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        config: MomentsClientConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="moments-sync-client", daemon=True
        )
        self._thread.start()
        self._client = self._run(self._make_client(config, transport))

    @staticmethod
    async def _make_client(
        config: MomentsClientConfig, transport: httpx.AsyncBaseTransport | None
    ) -> MomentsClient:
        # Built inside the private loop so its primitives belong to that loop.
        return MomentsClient(config, transport=transport)

    def __repr__(self) -> str:
        return f"MomentsSyncClient(base_url={self._client.config.base_url!r})"

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop.is_closed():
            coro.close()
            raise RuntimeError("MomentsSyncClient is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def async_client(self) -> MomentsClient:
        """The wrapped async client (its ``stats`` and ``rate_budget``)."""
        return self._client

    def __enter__(self) -> MomentsSyncClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections and stop the private loop."""
        if self._loop.is_closed():
            return
        self._run(self._client.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def add_flow_participants(
        self,
        campaign_id: int,
        participants: Sequence[Mapping[str, Any] | FlowParticipant],
        *,
        notify_url: str | None = None,
        callback_data: str | None = None,
    ) -> AddFlowParticipantsResponse:
        """See :meth:`MomentsClient.add_flow_participants`."""
        return self._run(
            self._client.add_flow_participants(
                campaign_id, participants, notify_url=notify_url, callback_data=callback_data
            )
        )

    def get_flow_participants_added_report(
        self, campaign_id: int, operation_id: str
    ) -> FlowParticipantsReportResponse:
        """See :meth:`MomentsClient.get_flow_participants_added_report`."""
        return self._run(self._client.get_flow_participants_added_report(campaign_id, operation_id))

    def remove_people_from_flow(
        self,
        campaign_id: int,
        *,
        phone: str | None = None,
        email: str | None = None,
        external_id: str | None = None,
    ) -> RemovalOutcome:
        """See :meth:`MomentsClient.remove_people_from_flow`."""
        return self._run(
            self._client.remove_people_from_flow(
                campaign_id, phone=phone, email=email, external_id=external_id
            )
        )

    def wait_for_report(
        self,
        campaign_id: int,
        operation_id: str,
        *,
        deadline_s: float,
        initial_interval_s: float = 1.0,
        max_interval_s: float = 30.0,
    ) -> FlowParticipantsReportResponse:
        """See :meth:`MomentsClient.wait_for_report`."""
        return self._run(
            self._client.wait_for_report(
                campaign_id,
                operation_id,
                deadline_s=deadline_s,
                initial_interval_s=initial_interval_s,
                max_interval_s=max_interval_s,
            )
        )

    def get_forms(
        self,
        *,
        offset: int | None = None,
        limit: int | None = None,
        form_type: FormType | str | None = None,
        form_status: FormStatus | str | None = None,
    ) -> ApiFormListDto:
        """See :meth:`MomentsClient.get_forms`."""
        return self._run(
            self._client.get_forms(
                offset=offset, limit=limit, form_type=form_type, form_status=form_status
            )
        )

    def get_form(self, form_id: str) -> ApiFormDto:
        """See :meth:`MomentsClient.get_form`."""
        return self._run(self._client.get_form(form_id))

    def increment_view_count(self, form_id: str) -> ApiStatusResponse:
        """See :meth:`MomentsClient.increment_view_count`."""
        return self._run(self._client.increment_view_count(form_id))

    def submit_form_data(
        self,
        form_id: str,
        data: Mapping[str, Any],
        *,
        source: str | None = None,
        form_campaign: str | None = None,
        encoding: Literal["json", "urlencoded", "multipart"] = "json",
    ) -> ApiStatusResponse:
        """See :meth:`MomentsClient.submit_form_data`."""
        return self._run(
            self._client.submit_form_data(
                form_id, data, source=source, form_campaign=form_campaign, encoding=encoding
            )
        )
