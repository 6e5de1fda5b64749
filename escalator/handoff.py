"""The hand-over from acceptor processes to the back office's store (ESCALATOR_WORKERS > 1).

Acceptors (escalator/acceptor.py) speak SMTP; the back office (app.Service) alone writes the
store, so SQLite keeps ONE writer and its group commit spans every acceptor's sessions (SQLite
writers in several processes take turns by sleeping and polling: measured here, one waited
4 s while another committed). An acceptor's `OfficeLink` stands in for the store's `accept`:
it sends the mail over a UNIX stream socket and returns what the back office's `store.accept`
returned once that committed, so the acceptor still answers 250 only for a mail on disk. If
the back office cannot be reached, or goes away before answering, `accept` raises
StoreUnavailable and the client is told 451 (a mail committed but unanswered comes back as a
duplicate of itself: same id, nothing stored twice).

A frame is a fixed header, then JSON (the envelope and summary fields), then the raw bytes;
the answer is a fixed header and a short text. Nothing is unpickled: the socket lives in a
private (0700) directory, and still only data crosses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import socket
import struct
from collections.abc import Callable
from datetime import datetime

from escalator.errors import StoreUnavailable
from escalator.store import Accepted, IncomingMail, Store

log = logging.getLogger(__name__)

REQUEST = struct.Struct("!QII")  # sequence number, JSON length, raw length
ANSWER = struct.Struct("!QBQI")  # sequence number, status, mail id, text length
STORED, DUPLICATE, UNAVAILABLE = 0, 1, 2


def encode_mail(seq: int, mail: IncomingMail) -> bytes:
    meta = json.dumps(
        {
            "mail_from": mail.mail_from,
            "rcpt_tos": list(mail.rcpt_tos),
            "client_address": mail.client_address,
            "tls": mail.tls,
            "received_at": mail.received_at.isoformat(),
            "message_id": mail.message_id,
            "subject": mail.subject,
            "from_addr": mail.from_addr,
            "content_digest": mail.content_digest,
        }
    ).encode()
    return REQUEST.pack(seq, len(meta), len(mail.raw)) + meta + mail.raw


async def read_mail(reader: asyncio.StreamReader) -> tuple[int, IncomingMail]:
    """One request frame; IncompleteReadError when the acceptor went away."""
    seq, meta_length, raw_length = REQUEST.unpack(await reader.readexactly(REQUEST.size))
    meta = json.loads(await reader.readexactly(meta_length))
    raw = await reader.readexactly(raw_length)
    received_at = datetime.fromisoformat(meta.pop("received_at"))
    rcpt_tos = tuple(meta.pop("rcpt_tos"))
    return seq, IncomingMail(raw=raw, received_at=received_at, rcpt_tos=rcpt_tos, **meta)


def encode_answer(seq: int, status: int, mail_id: int = 0, text: str = "") -> bytes:
    data = text.encode()
    return ANSWER.pack(seq, status, mail_id, len(data)) + data


# -- the acceptor's side --------------------------------------------------------------------


class OfficeLink:
    """`accept(mail)` through the back office; one connection, opened when needed."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None
        self._connecting = asyncio.Lock()
        self._pending: dict[int, asyncio.Future[Accepted]] = {}
        self._seq = itertools.count(1)

    async def accept(self, mail: IncomingMail) -> Accepted:
        """Stored (or found a duplicate) and committed by the back office; else StoreUnavailable."""
        writer = await self._connected()
        seq = next(self._seq)
        answer: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        self._pending[seq] = answer
        try:
            if not self._live():  # its reader ended since: nobody would settle the answer
                raise ConnectionResetError("connection lost")
            writer.write(encode_mail(seq, mail))
            await writer.drain()
            return await answer
        except (ConnectionError, OSError) as exc:
            raise StoreUnavailable(f"the back office went away: {exc}") from None
        finally:
            self._pending.pop(seq, None)

    def _live(self) -> bool:
        return self._reading is not None and not self._reading.done()

    async def _connected(self) -> asyncio.StreamWriter:
        async with self._connecting:
            if self._writer is None or not self._live():
                try:
                    reader, self._writer = await asyncio.open_unix_connection(self._path)
                except OSError as exc:
                    raise StoreUnavailable(f"the back office is not reachable: {exc}") from None
                self._reading = asyncio.create_task(self._read_answers(reader))
            return self._writer

    async def _read_answers(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                header = await reader.readexactly(ANSWER.size)
                seq, status, mail_id, length = ANSWER.unpack(header)
                text = (await reader.readexactly(length)).decode()
                self._settle(seq, status, mail_id, text)
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            self._fail_all(f"the back office went away: {exc!r}")

    def _settle(self, seq: int, status: int, mail_id: int, text: str) -> None:
        answer = self._pending.get(seq)
        if answer is None or answer.done():
            return  # its session gave up meanwhile
        if status == UNAVAILABLE:
            answer.set_exception(StoreUnavailable(text))
        else:
            answer.set_result(Accepted(mail_id, duplicate=status == DUPLICATE))

    def _fail_all(self, why: str) -> None:
        if self._writer is not None:
            self._writer.close()
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(StoreUnavailable(why))

    async def close(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            await asyncio.gather(self._reading, return_exceptions=True)
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()


# -- the back office's side -----------------------------------------------------------------


async def serve_desk(
    sock: socket.socket, store: Store, on_stored: Callable[[], None]
) -> asyncio.Server:
    """Take acceptors' mails on `sock` (a listening UNIX socket) into `store`; `on_stored` after
    each new one (the decide worker's wake)."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                seq, mail = await read_mail(reader)
                task = asyncio.create_task(_store_one(store, seq, mail, writer, on_stored))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass  # the acceptor stopped; mails in flight still get committed
        finally:
            await asyncio.gather(*tasks, return_exceptions=True)
            writer.close()

    return await asyncio.start_unix_server(session, sock=sock)


async def _store_one(
    store: Store,
    seq: int,
    mail: IncomingMail,
    writer: asyncio.StreamWriter,
    on_stored: Callable[[], None],
) -> None:
    try:
        accepted = await store.accept(mail)
    except Exception as exc:  # noqa: BLE001 - any failure is a 451 for that one mail
        log.warning("store refused a mail from an acceptor: %s", exc)
        answer = encode_answer(seq, UNAVAILABLE, text=f"store unavailable: {exc}")
    else:
        if not accepted.duplicate:
            on_stored()
        status = DUPLICATE if accepted.duplicate else STORED
        answer = encode_answer(seq, status, accepted.mail_id)
    if not writer.is_closing():
        writer.write(answer)
