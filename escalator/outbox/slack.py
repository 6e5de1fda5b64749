"""Slack Web API through slack-sdk's AsyncWebClient, one attempt per call.

Messages go out with unfurls off and never with link_names or parse=full; the text arrives
already escaped from escalator.core.render. The SDK's retry handlers are switched off so the
outbox owns retries; 429 comes back as RetryLater with Slack's Retry-After.
"""

from __future__ import annotations

import functools
import logging
import time
from datetime import datetime
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from escalator.core.ackplace import ChannelFacts, bare_name

# IDs are used as-is; names are looked up (re-exported: callers ask the Slack module)
from escalator.core.render import is_channel_id as is_channel_id
from escalator.core.retry import Refused, RetryLater

log = logging.getLogger(__name__)

CHANNEL_GONE = frozenset({"not_in_channel", "channel_not_found", "is_archived"})
_TRANSIENT = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
EVENT_TYPE = "escalator_action"  # message metadata marking which outbox action posted it
FACTS_SECONDS = 60.0  # membership changes (someone invites the bot): facts are re-read after this


class Slack:
    """Posts messages; resolves channel names to IDs and joins public channels when needed."""

    def __init__(self, token: str, api_url: str, timeout: float = 10.0) -> None:
        self._client = AsyncWebClient(
            token=token, base_url=api_url, timeout=int(max(timeout, 1)), retry_handlers=[]
        )
        self._ids: dict[str, str] = {}
        self._facts: dict[str, tuple[float, ChannelFacts]] = {}  # by name and by ID

    async def post(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]],
        thread_ts: str | None = None,
        join: bool = False,
        marker: str | None = None,
    ) -> dict[str, Any]:
        """Post once; with `join`, join a public channel the bot is not in and post again.
        `marker` goes into the message metadata so `find_posted` can recognise it later."""
        channel_id = await self.channel_id(channel)
        post_once = functools.partial(self._post, channel_id, text, blocks, thread_ts, marker)
        try:
            return await post_once()
        except Refused as exc:
            if not (join and exc.code == "not_in_channel"):
                raise
        await self._call("conversations_join", channel=channel_id)
        self._facts.clear()  # the bot is a member now
        return await post_once()

    async def find_posted(
        self, channel: str, marker: str, oldest: datetime
    ) -> dict[str, Any] | None:
        """The message posted with `marker` since `oldest`, if a lost attempt did post it."""
        try:
            channel_id = await self.channel_id(channel)
            data = await self._call(
                "conversations_history",
                channel=channel_id,
                oldest=f"{oldest.timestamp():.6f}",
                limit=200,
                include_all_metadata=True,
            )
        except Refused:
            return None  # cannot read the channel: post, as if nothing was found
        for message in data.get("messages", []):
            meta = message.get("metadata") or {}
            payload = meta.get("event_payload") or {}
            if meta.get("event_type") == EVENT_TYPE and payload.get("action") == marker:
                return {"channel": channel_id, "ts": message.get("ts"), "recovered": True}
        return None

    async def channel_id(self, channel: str) -> str:
        """The ID of a channel named with or without '#'. A name not among the public channels
        (a private one the bot is in, say) is returned as '#name' for Slack itself to resolve."""
        name = channel.strip().lstrip("#").lower()
        if is_channel_id(channel.strip()):
            return channel.strip()
        if name not in self._ids:
            self._ids.update(await self._directory(name))
        return self._ids.get(name, f"#{name}")

    async def channel_facts(self, channel: str) -> ChannelFacts:
        """Membership and #general-ness of a channel named by name or ID, from the list of public
        channels (is_member, is_general); a channel not listed there is `listed=False`."""
        key = channel.strip() if is_channel_id(channel.strip()) else bare_name(channel)
        cached = self._facts.get(key)
        if cached is None or time.monotonic() - cached[0] > FACTS_SECONDS:
            self._ids.update(await self._directory(key))
        cached = self._facts.get(key)
        return cached[1] if cached else ChannelFacts(key, listed=False)

    async def _directory(self, wanted: str) -> dict[str, str]:
        """Page through public channels until `wanted` (a name or an ID) is seen (archived ones
        included), noting each channel's facts on the way."""
        found: dict[str, str] = {}
        cursor: str | None = None
        while wanted not in found and wanted not in found.values():
            page = await self._call(
                "conversations_list", types="public_channel", limit=200, cursor=cursor
            )
            for item in page.get("channels", []):
                found[item["name"]] = item["id"]
                self._note(item)
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if cursor is None:
                break
        return found

    def _note(self, item: dict[str, Any]) -> None:
        facts = ChannelFacts(
            str(item["name"]), bool(item.get("is_member")), bool(item.get("is_general"))
        )
        now = time.monotonic()
        self._facts[str(item["name"])] = self._facts[str(item["id"])] = (now, facts)

    async def _post(
        self,
        channel_id: str,
        text: str,
        blocks: list[dict[str, Any]],
        thread_ts: str | None,
        marker: str | None,
    ) -> dict[str, Any]:
        metadata = (
            None
            if marker is None
            else {"event_type": EVENT_TYPE, "event_payload": {"action": marker}}
        )
        data = await self._call(
            "chat_postMessage",
            channel=channel_id,
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
            unfurl_links=False,
            unfurl_media=False,
            metadata=metadata,
        )
        return {"channel": data.get("channel", channel_id), "ts": data.get("ts")}

    async def someone_reacted(self, channel: str, ts: str) -> bool:
        """Did a person answer our post `ts`: a reply in its thread (conversations.replies) or a
        reaction on it (reactions.get)? Bots (escalator's own notices) do not count. When Slack
        cannot tell us (no permission, an error), False: the alarm counts as unanswered."""
        try:
            replies = await self._call("conversations_replies", channel=channel, ts=ts, limit=50)
            reactions = await self._call("reactions_get", channel=channel, timestamp=ts)
        except (Refused, RetryLater) as exc:
            log.warning("slack: cannot read the thread of an alarm: %s", exc)
            return False
        return _person_replied(replies, ts) or bool(reactions.get("message", {}).get("reactions"))

    async def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """One Web API call, its failures sorted into RetryLater and Refused."""
        try:
            response = await getattr(self._client, method)(**kwargs)
        except SlackApiError as exc:
            raise _classify(exc) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryLater(f"Slack unreachable: {type(exc).__name__}") from None
        return dict(response.data) if isinstance(response.data, dict) else {}

    async def close(self) -> None:
        session = getattr(self._client, "session", None)
        if session is not None:
            await session.close()


def _classify(exc: SlackApiError) -> RetryLater | Refused:
    response = exc.response
    status = int(getattr(response, "status_code", 200))
    data = response.data if isinstance(response.data, dict) else {}
    code = str(data.get("error") or f"http_{status}")
    if status == 429 or status >= 500 or code in _TRANSIENT:
        return RetryLater(f"Slack answered {code}", _retry_after(response.headers))
    return Refused(f"Slack refused: {code}", code=code)


def _retry_after(headers: Any) -> float | None:
    """Slack sends Retry-After as seconds."""
    for name, value in dict(headers or {}).items():
        if name.lower() == "retry-after" and str(value).strip().isdigit():
            return float(value)
    return None


def _person_replied(data: dict[str, Any], ts: str) -> bool:
    """A message in the thread (not the post itself) written by a person, not a bot."""
    return any(
        message.get("ts") != ts and not message.get("bot_id") and message.get("user")
        for message in data.get("messages", [])
    )
