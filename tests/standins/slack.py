"""A Slack Web API stand-in over HTTP, strict about the documented methods escalator calls.

Methods: auth.test, conversations.list (cursor pagination; is_member, is_general as Slack gives
them for the bot), conversations.join (public only),
conversations.history (oldest, limit, include_all_metadata), chat.postMessage (with metadata),
conversations.replies (channel, ts: the parent then its replies; thread_not_found) and
reactions.get (channel, timestamp: message.reactions; message_not_found). Messages the bot
posted carry its bot_id; `person_reply` / `person_react` play a person in a thread.
Every call needs `Authorization: Bearer <bot token>` (else invalid_auth).
chat.postMessage checks: channel, text or blocks, text <= 40 000 chars, <= 50 blocks, known block
types, section text <= 3 000, header plain_text <= 150, mrkdwn objects verbatim, and it refuses
link_names / parse=full and unfurls left on (project rules). Errors as Slack sends them:
HTTP 200 {"ok": false, "error": code}; 429 with Retry-After for rate limits.

`mentions` reads each accepted message the way Slack would: every <...> control sequence
(<!here>, <@U…>, <url|text>, …) in any text it would parse; with escaped input there are none.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

BLOCK_TYPES = {"section", "header", "context", "divider", "actions", "rich_text", "image"}
_CONTROL = re.compile(r"<([^<>]*)>")
BOT_ID = "B0ESCALATR"


@dataclass
class Channel:
    id: str
    name: str
    is_private: bool = False
    is_archived: bool = False
    member: bool = True
    is_general: bool = False  # the workspace's default channel (Slack's own flag)


@dataclass
class Post:
    """An accepted chat.postMessage."""

    channel: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None
    ts: str
    args: dict[str, Any] = field(default_factory=dict)

    def all_text(self) -> list[str]:
        """Every string Slack would render for this message."""
        found: list[str] = [self.text]
        _collect_text(self.blocks, found)
        return found


def _collect_text(node: Any, found: list[str]) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("text"), str):
            found.append(node["text"])
        for value in node.values():
            if not isinstance(value, str):
                _collect_text(value, found)
    elif isinstance(node, list):
        for item in node:
            _collect_text(item, found)


SLACK_CHANNEL_LINKS = ("https://slack.com/app_redirect?channel=", "https://slack.com/archives/")
_OUR_LABEL = re.compile(r"(?:\|[#\w .'-]{1,100})?")


def mentions(post: Post, ours: tuple[str, ...] = ()) -> list[str]:
    """Control sequences Slack would turn into mentions, links or channel references, except
    the links escalator builds itself: those starting with one of `ours` (its own pages, Slack's
    channel links, `#C…` channel references) with a plain label."""
    found = [
        match
        for text in post.all_text()
        for match in _CONTROL.findall(text)
        if not _built(match, ours)
    ]
    if post.args.get("link_names") in (True, 1, "1", "true"):
        found += [t for t in post.all_text() for t in re.findall(r"@(here|channel|everyone)", t)]
    return found


def _built(control: str, ours: tuple[str, ...]) -> bool:
    prefix = next((p for p in ours if control.startswith(p)), None)
    if prefix is None:
        return False
    target, _, label = control.partition("|")
    return _OUR_LABEL.fullmatch(f"|{label}" if label else "") is not None and "<" not in target


class SlackStandIn:
    """Run with `async with SlackStandIn() as slack:`; then slack.api_url for base_url."""

    def __init__(self, token: str = "xoxb-test-token", page_size: int = 2) -> None:
        self.token = token
        self.page_size = page_size
        self.channels: dict[str, Channel] = {}
        self.posts: list[Post] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.rejected: list[tuple[str, str]] = []
        self.down = False
        self.hold = asyncio.Event()  # clear it to keep chat.postMessage answers waiting
        self.hold.set()
        self.arrived = 0
        self._script: dict[str, deque[str]] = {}
        self._runner: web.AppRunner | None = None
        self.api_url = ""
        self._last_ts = 0.0
        self.people: list[dict[str, Any]] = []  # replies written by people (person_reply)
        self.reactions: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.add_channel("C0ALARMS01", "high-priority-alarms")

    def add_channel(self, channel_id: str, name: str, **flags: bool) -> Channel:
        channel = Channel(channel_id, name, **flags)
        self.channels[channel_id] = channel
        return channel

    def script(self, method: str, *answers: str) -> None:
        """Queue answers for `method`: "429", "500", or a Slack error code."""
        self._script.setdefault(method, deque()).extend(answers)

    def posts_in(self, name: str) -> list[Post]:
        ids = {c.id for c in self.channels.values() if c.name == name}
        return [post for post in self.posts if post.channel in ids]

    async def __aenter__(self) -> SlackStandIn:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.api_url = f"http://127.0.0.1:{port}/api/"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _dispatch(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await _arguments(request)
        self.calls.append((method, args))
        queued = self._script.get(method)
        fault = queued.popleft() if queued else ("500" if self.down else None)
        if fault is not None:
            return self._fault(fault)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._error(method, "invalid_auth")
        handler = {
            "auth.test": self._auth_test,
            "conversations.list": self._list,
            "conversations.join": self._join,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "reactions.get": self._reactions_get,
        }.get(method)
        if method == "chat.postMessage":
            self.arrived += 1
            await self.hold.wait()  # the post is made even if the client has gone meanwhile
            return self._post(args)
        if handler is None:
            return self._error(method, "unknown_method")
        return handler(args)

    def _fault(self, fault: str) -> web.Response:
        if fault == "429":
            body = {"ok": False, "error": "ratelimited"}
            return web.json_response(body, status=429, headers={"Retry-After": "7"})
        if fault.isdigit():
            return web.json_response({"ok": False, "error": "internal_error"}, status=int(fault))
        return web.json_response({"ok": False, "error": fault})

    def _error(self, method: str, code: str) -> web.Response:
        self.rejected.append((method, code))
        return web.json_response({"ok": False, "error": code})

    def _auth_test(self, args: dict[str, Any]) -> web.Response:
        return web.json_response({"ok": True, "user_id": "UBOT", "team_id": "T1"})

    def _list(self, args: dict[str, Any]) -> web.Response:
        types = str(args.get("types", "public_channel")).split(",")
        wanted = [
            c for c in self.channels.values() if ("private_channel" in types) or not c.is_private
        ]
        start = int(args.get("cursor") or 0)
        limit = min(int(args.get("limit") or 100), self.page_size)
        page = wanted[start : start + limit]
        cursor = str(start + limit) if start + limit < len(wanted) else ""
        channels = [
            {
                "id": c.id,
                "name": c.name,
                "is_archived": c.is_archived,
                "is_member": c.member,
                "is_general": c.is_general,
            }
            for c in page
        ]
        return web.json_response(
            {"ok": True, "channels": channels, "response_metadata": {"next_cursor": cursor}}
        )

    def _join(self, args: dict[str, Any]) -> web.Response:
        channel = self.channels.get(str(args.get("channel", "")))
        if channel is None:
            return self._error("conversations.join", "channel_not_found")
        if channel.is_archived:
            return self._error("conversations.join", "is_archived")
        if channel.is_private:
            return self._error("conversations.join", "method_not_supported_for_channel_type")
        channel.member = True
        return web.json_response({"ok": True, "channel": {"id": channel.id}})

    def _post(self, args: dict[str, Any]) -> web.Response:
        problems = post_problems(args)
        if problems:
            return self._error("chat.postMessage", problems[0])
        channel = self._find(str(args["channel"]))
        if channel is None:
            return self._error("chat.postMessage", "channel_not_found")
        if channel.is_archived:
            return self._error("chat.postMessage", "is_archived")
        if not channel.member:
            return self._error("chat.postMessage", "not_in_channel")
        ts = f"{max(time.time(), self._last_ts + 1e-6):.6f}"
        self._last_ts = float(ts)
        blocks = _json_field(args.get("blocks")) or []
        post = Post(channel.id, str(args.get("text", "")), blocks, args.get("thread_ts"), ts, args)
        self.posts.append(post)
        return web.json_response({"ok": True, "channel": channel.id, "ts": ts})

    def _history(self, args: dict[str, Any]) -> web.Response:
        channel = self.channels.get(str(args.get("channel", "")))
        if channel is None:
            return self._error("conversations.history", "channel_not_found")
        if not channel.member:
            return self._error("conversations.history", "not_in_channel")
        oldest = float(args.get("oldest") or 0)
        limit = int(args.get("limit") or 100)
        with_meta = args.get("include_all_metadata") in (True, "true", "1", 1)
        found = [
            p for p in reversed(self.posts) if p.channel == channel.id and float(p.ts) > oldest
        ]
        messages = [
            {"type": "message", "ts": p.ts, "text": p.text}
            | ({"metadata": p.args["metadata"]} if with_meta and p.args.get("metadata") else {})
            for p in found[:limit]
        ]
        return web.json_response({"ok": True, "messages": messages, "has_more": len(found) > limit})

    def person_reply(self, channel: str, thread_ts: str, user: str = "U0PERSON1") -> None:
        """A person answers in the thread of `thread_ts`."""
        ts = f"{max(time.time(), self._last_ts + 1e-6):.6f}"
        self._last_ts = float(ts)
        reply = {"type": "message", "user": user, "text": "on it", "ts": ts}
        self.people.append({**reply, "channel": channel, "thread_ts": thread_ts})

    def person_react(
        self, channel: str, ts: str, name: str = "eyes", user: str = "U0PERSON1"
    ) -> None:
        self.reactions.setdefault((channel, ts), []).append(
            {"name": name, "users": [user], "count": 1}
        )

    def _message(self, post: Post) -> dict[str, Any]:
        found = {"type": "message", "ts": post.ts, "text": post.text, "bot_id": BOT_ID}
        return found | ({"thread_ts": post.thread_ts} if post.thread_ts else {})

    def _replies(self, args: dict[str, Any]) -> web.Response:
        channel, ts = str(args.get("channel", "")), str(args.get("ts", ""))
        if channel not in self.channels:
            return self._error("conversations.replies", "channel_not_found")
        parent = next((p for p in self.posts if p.channel == channel and p.ts == ts), None)
        if parent is None:
            return self._error("conversations.replies", "thread_not_found")
        bots = [self._message(p) for p in self.posts if p.channel == channel and p.thread_ts == ts]
        people = [
            {k: v for k, v in m.items() if k != "channel"}
            for m in self.people
            if m["channel"] == channel and m["thread_ts"] == ts
        ]
        messages = [self._message(parent), *sorted(bots + people, key=lambda m: float(m["ts"]))]
        return web.json_response({"ok": True, "messages": messages, "has_more": False})

    def _reactions_get(self, args: dict[str, Any]) -> web.Response:
        channel, ts = str(args.get("channel", "")), str(args.get("timestamp", ""))
        post = next((p for p in self.posts if p.channel == channel and p.ts == ts), None)
        if post is None:
            return self._error("reactions.get", "message_not_found")
        message = self._message(post)
        if self.reactions.get((channel, ts)):
            message["reactions"] = self.reactions[(channel, ts)]
        return web.json_response(
            {"ok": True, "type": "message", "channel": channel, "message": message}
        )

    def _find(self, channel: str) -> Channel | None:
        if channel in self.channels:
            return self.channels[channel]
        name = channel.lstrip("#")
        return next((c for c in self.channels.values() if c.name == name), None)


def post_problems(args: dict[str, Any]) -> list[str]:
    """Slack-style error codes for a chat.postMessage that breaks the API or project rules."""
    problems = []
    blocks = _json_field(args.get("blocks"))
    if not args.get("channel"):
        problems.append("channel_not_found")
    if not args.get("text") and not blocks:
        problems.append("no_text")
    if len(str(args.get("text", ""))) > 40_000:
        problems.append("msg_too_long")
    if args.get("link_names") not in (None, False, 0, "0", "false"):
        problems.append("project_rule:link_names")
    metadata = _json_field(args.get("metadata"))
    if metadata is not None and not (
        isinstance(metadata, dict)
        and isinstance(metadata.get("event_type"), str)
        and isinstance(metadata.get("event_payload"), dict)
    ):
        problems.append("invalid_metadata_format")
    if args.get("parse") == "full":
        problems.append("project_rule:parse_full")
    if args.get("unfurl_links") not in (False, "false", "0") or args.get("unfurl_media") not in (
        False,
        "false",
        "0",
    ):
        problems.append("project_rule:unfurls_on")
    return problems + block_problems(blocks or [])


def block_problems(blocks: list[dict[str, Any]]) -> list[str]:
    problems = ["invalid_blocks:too_many"] if len(blocks) > 50 else []
    for block in blocks:
        kind = block.get("type")
        text = block.get("text")
        if kind not in BLOCK_TYPES:
            problems.append(f"invalid_blocks:type {kind}")
        if kind == "header" and not _header_ok(text):
            problems.append("invalid_blocks:header")
        if kind == "section" and (not isinstance(text, dict) or len(text.get("text", "")) > 3000):
            problems.append("invalid_blocks:section text")
        for obj in [text, *block.get("elements", []), *block.get("fields", [])]:
            if (
                isinstance(obj, dict)
                and obj.get("type") == "mrkdwn"
                and obj.get("verbatim") is not True
            ):
                problems.append("project_rule:mrkdwn_not_verbatim")
    return problems


def _header_ok(text: Any) -> bool:
    return isinstance(text, dict) and text.get("type") == "plain_text" and len(text["text"]) <= 150


async def _arguments(request: web.Request) -> dict[str, Any]:
    """Slack takes JSON bodies and form bodies alike; query parameters too."""
    args: dict[str, Any] = dict(request.query)
    raw = await request.read()
    if request.content_type == "application/json" and raw:
        args.update(json.loads(raw))
    elif raw:
        args.update(parse_qsl(raw.decode()))
    return args


def _json_field(value: Any) -> Any:
    if isinstance(value, str):
        return json.loads(value)
    return value
