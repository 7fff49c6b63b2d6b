"""``check_api_key``: one cheap authenticated read that tells whether the API key is accepted.

Which call, and why: ``get-flow-participants-added-report`` for an operationId that cannot
exist (the nil UUID). It is a GET of the same Moments flows API that add-flow-participants
belongs to, so it checks the scope a sync needs (``get-forms`` would check the Forms scope
instead, and answers with a whole list); it changes nothing; with a good key it is answered
404 at once (no report), with a bad one 401/403. It costs one request of the account's 10
requests/s. The spec has no read for a flow, so this cannot prove that a flow exists; should
the answer carry the flow's errorCode 40401 ("Could not find active flow"), that is reported.

No ledger, no Dagster: the sync engine (nothing to send) and ``moments-pipeline validate
--infobip`` both call it.
"""

from __future__ import annotations

import dataclasses

from ._client import MomentsClient
from ._errors import (
    AuthError,
    MomentsError,
    NotFoundError,
    ValidationError,
    error_summary,
    is_flow_unavailable,
)

KEY_CHECK_OPERATION_ID = "00000000-0000-0000-0000-000000000000"
"""The operationId asked for: well formed, never issued."""


@dataclasses.dataclass(frozen=True, slots=True)
class KeyCheck:
    """What one key check found.

    Attributes:
        key_accepted: True (the request got past authentication), False (401/403), or None
            (no answer that tells: a server or transport error).
        flow_unavailable: the answer was the flow's 40401.
        reason: the answer, machine-readable (``error_summary``; ``OK`` for a 200).
    """

    key_accepted: bool | None
    flow_unavailable: bool
    reason: str


async def check_api_key(client: MomentsClient, campaign_id: int) -> KeyCheck:
    """Ask for the report of a nonexistent operation of ``campaign_id``; see the module doc."""
    try:
        await client.get_flow_participants_added_report(campaign_id, KEY_CHECK_OPERATION_ID)
    except AuthError as exc:
        return KeyCheck(False, False, error_summary(exc))
    except (NotFoundError, ValidationError) as exc:  # past authentication: the key is good
        return KeyCheck(True, is_flow_unavailable(exc), error_summary(exc))
    except MomentsError as exc:
        return KeyCheck(None, False, error_summary(exc))
    return KeyCheck(True, False, "OK")
