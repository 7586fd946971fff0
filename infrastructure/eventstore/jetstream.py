"""The event store on NATS JetStream: one message per commit, one subject per aggregate.

A commit is a single message on ``{prefix}.{tenant}.{type}.{id.hex}``, so a
command's events are stored atomically and in order. The body is msgpack of
``[topic, version, state]`` triples (state as the Mapper encoded it); headers
carry the aggregate version after the commit, the event count, the idempotency
key and the metadata, so heads and keys can be read without decoding bodies.

Concurrency is JetStream's: every publish says which stream sequence it expects
the aggregate's subject to end at (``Nats-Expected-Last-Subject-Sequence``). A
bounded LRU maps each aggregate to its head (version, sequence), so an append
on a known aggregate costs exactly one round trip.

The append path builds its header block as bytes and hands it to
``replies.Replies``, which publishes it and takes JetStream's ack straight
from the client's parser (nats-py's own path for both was the larger part of
a commit's CPU). The headers and their values are the same as ever, so the
stored commits are byte for byte what nats-py would have sent.

Idempotency: ``Nats-Msg-Id`` answers a retry inside the duplicate window when
the aggregate is still where the retry expects it. The server checks the
expected sequence *before* the message id, so a retry of a commit that has
landed meets a wrong-sequence rejection instead; that path, and every retry
after the window, is answered by finding the key in the aggregate's commits.
A retry at the aggregate's *current* version after the window is not caught
here; the repository checks the keys of the commits it loaded before deciding.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote
from uuid import UUID

import msgspec
import nats.errors
from eventsourcing.persistence import StoredEvent
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from infrastructure.eventstore.port import (
    CommitResult,
    ConcurrencyConflict,
    EventStore,
    EventStoreError,
    InvalidCommit,
    NewCommit,
    RecordedCommit,
    StoreUnavailable,
    StreamRef,
    check_commit,
)
from infrastructure.eventstore.replies import Replies, Reply
from infrastructure.eventstore.setup import JetStreamConfig

H_EXPECTED_SEQ = "Nats-Expected-Last-Subject-Sequence"
H_MSG_ID = "Nats-Msg-Id"
H_VERSION = "Vigil-Version"
H_COUNT = "Vigil-Count"
H_KEY = "Vigil-Idem-Key"
H_META = "Vigil-Meta-"

_WRONG_LAST_SEQUENCE = {10071, 10164}  # with the real sequence in the text, and without
_WRONG_LAST_SEQUENCE_RE = re.compile(r"wrong last sequence: (\d+)")
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+")
# Header values are stripped and may not hold CR/LF: anything else is percent-encoded.
_PLAIN_VALUE_RE = re.compile(r"[!-$&-~](?:[ !-$&-~]*[!-$&-~])?")
_VALUE_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")
_PLAIN_NAME_RE = re.compile(r"[A-Za-z0-9_.~-]*")

_encode_events = msgspec.msgpack.Encoder().encode
decode_events = msgspec.msgpack.Decoder(list[tuple[str, int, bytes]]).decode
"""A commit message's body as ``(topic, version, state)`` triples."""

_CRLF = b"\r\n"
# A commit's header block up to the optional key, id and metadata lines.
_HEAD = f"NATS/1.0\r\n{H_EXPECTED_SEQ}: %d\r\n{H_VERSION}: %d\r\n{H_COUNT}: %d\r\n".encode()
_KEY_LINE = f"{H_KEY}: ".encode()


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class _PubAck(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: _ApiError | None = None


_decode_ack = msgspec.json.Decoder(_PubAck).decode


@dataclass(frozen=True, slots=True)
class _Head:
    """The last commit on an aggregate's subject (version 0, seq 0: none)."""

    version: int
    seq: int
    count: int = 0
    key: str | None = None  # as stored in the header (percent-encoded)

    def result(self, ref: StreamRef) -> CommitResult:
        return CommitResult(ref, self.seq, self.version, self.count, duplicate=True)


_NO_HEAD = _Head(0, 0)


def aggregate_subject(prefix: str, ref: StreamRef) -> str:
    """The subject holding ``ref``'s commits; tenant and type must be subject-safe tokens."""
    if not (_TOKEN_RE.fullmatch(ref.tenant) and _TOKEN_RE.fullmatch(ref.type)):
        raise ValueError(
            f"{ref}: tenant and type must match [A-Za-z0-9_-]+ to become subject tokens"
        )
    return f"{prefix}.{ref.tenant}.{ref.type}.{ref.id.hex}"


def _header_value(text: str) -> str:
    return text if _PLAIN_VALUE_RE.fullmatch(text) else quote(text, safe=_VALUE_SAFE)


def header_value(text: str) -> str:
    """A header value as written: names and values are percent-encoded only when needed."""
    return unquote(text) if "%" in text else text


def _meta_header(name: str) -> str:
    return H_META + (name if _PLAIN_NAME_RE.fullmatch(name) else quote(name, safe="-_.~"))


@functools.lru_cache(maxsize=4096)
def _meta_line(name: str, value: str) -> bytes:
    """One metadata header line; the same few (command name...) come with every commit."""
    return f"{_meta_header(name)}: {_header_value(value)}\r\n".encode()


def _key(ref: StreamRef) -> tuple[str, str, int]:
    """``ref`` as a dict key: hashing the tuple is cheap, hashing the dataclass is not."""
    return (ref.tenant, ref.type, ref.id.int)


class JetStreamEventStore(EventStore):
    """``EventStore`` on a JetStream stream created by ``setup.ensure_jetstream``.

    Takes a connected client (or a JetStream context of one) and never closes
    it: the composition root owns the connection. ``use_msg_id=False`` leaves
    JetStream's duplicate window out, so only the store's own key lookup
    answers retries (the contract tests use it to prove that path).
    """

    def __init__(
        self,
        js: JetStreamContext | Client,
        config: JetStreamConfig | None = None,
        *,
        use_msg_id: bool = True,
        timeout: float = 5.0,
        head_cache_size: int = 100_000,
        load_batch: int = 1024,
    ) -> None:
        if isinstance(js, Client):
            self._nc = js
            self._js = js.jetstream(timeout=timeout)
        else:
            self._js = js
            self._nc = js._nc
        self._config = config or JetStreamConfig()
        self._use_msg_id = use_msg_id
        self._timeout = timeout
        self._head_cache_size = head_cache_size
        self._load_batch = load_batch
        self._prefix = self._config.subject_prefix
        api = getattr(self._js, "_prefix", "$JS.API")  # honours JetStream domains
        self._direct_get = f"{api}.DIRECT.GET.{self._config.stream}"
        # _key(ref) -> (version, stream sequence, subject) of the aggregate's last commit
        self._heads: OrderedDict[tuple[str, str, int], tuple[int, int, str]] = OrderedDict()
        self._refs: dict[str, StreamRef] = {}  # subject -> ref, for decoding live messages
        self._replies = Replies(self._nc, timeout)

    @property
    def config(self) -> JetStreamConfig:
        return self._config

    # -- appending ---------------------------------------------------------------------

    async def append(self, commit: NewCommit) -> CommitResult:
        check_commit(commit)
        ref = commit.ref
        expected = commit.expected_version
        heads = self._heads
        key = (ref.tenant, ref.type, ref.id.int)  # _key(ref), inline on the hot path
        known = heads.get(key)
        subject = known[2] if known is not None else self._commit_subject(ref)
        if not expected:
            last_seq = 0  # a new aggregate: JetStream checks the subject is empty
        elif known is not None and known[0] == expected:
            heads.move_to_end(key)
            last_seq = known[1]
        else:
            head = await self._read_head(subject)
            if head.version < expected:
                head = await self._read_head(subject, from_leader=True)  # a lagging replica?
            if head.version != expected:
                return await self._answer_conflict(commit, subject, head)
            self._remember_head(ref, head.version, head.seq, subject)
            last_seq = head.seq
        payload = encode_events(commit.events)
        ack = await self._publish(ref, subject, payload, self._headers(commit, last_seq))
        if ack.error is None and not ack.duplicate:
            version = expected + len(commit.events)
            self._remember_head(ref, version, ack.seq, subject)
            return CommitResult(ref, ack.seq, version, len(commit.events))
        return await self._settle(commit, subject, payload, ack)

    async def _settle(
        self, commit: NewCommit, subject: str, payload: bytes, ack: _PubAck
    ) -> CommitResult:
        """The publish was not a plain success: a duplicate, or the head moved."""
        ref = commit.ref
        for attempt in (1, 2):
            if ack.duplicate:
                return (await self._read_seq(subject, ack.seq)).result(ref)
            if ack.error is None:
                version = commit.expected_version + len(commit.events)
                self._remember_head(ref, version, ack.seq, subject)
                return CommitResult(ref, ack.seq, version, len(commit.events))
            if ack.error.err_code not in _WRONG_LAST_SEQUENCE:
                raise self._rejected(ref, ack.error)
            head = await self._head_after_rejection(ref, subject, ack.error)
            if head.version != commit.expected_version or attempt == 2:
                break
            # Right version, other sequence: our cached head was stale; try once more.
            ack = await self._publish(ref, subject, payload, self._headers(commit, head.seq))
        return await self._answer_conflict(commit, subject, head)

    def _commit_subject(self, ref: StreamRef) -> str:
        try:
            return aggregate_subject(self._prefix, ref)
        except ValueError as err:
            raise InvalidCommit(str(err)) from err

    def _read_subject(self, ref: StreamRef) -> str | None:
        """``ref``'s subject, or None for a ref no commit can have (like an unknown one)."""
        known = self._heads.get(_key(ref))
        if known is not None:
            return known[2]
        try:
            return aggregate_subject(self._prefix, ref)
        except ValueError:
            return None

    def _headers(self, commit: NewCommit, last_seq: int) -> bytes:
        """The commit's NATS header block: expected sequence, version, count, key, metadata."""
        count = len(commit.events)
        parts = [_HEAD % (last_seq, commit.expected_version + count, count)]
        if commit.idempotency_key is not None:
            key = _header_value(commit.idempotency_key).encode()
            parts += (_KEY_LINE, key, _CRLF)
            if self._use_msg_id:
                ref = commit.ref
                msg_id = f"{H_MSG_ID}: {ref.tenant}:{ref.type}:{ref.id.hex}:".encode()
                parts += (msg_id, key, _CRLF)
        for name, value in commit.metadata.items():
            parts.append(_meta_line(name, value))
        parts.append(_CRLF)
        return b"".join(parts)

    async def _publish(self, ref: StreamRef, subject: str, payload: bytes, head: bytes) -> _PubAck:
        try:
            msg = await self._replies.request(subject, payload, head)
        except nats.errors.MaxPayloadError as err:
            raise InvalidCommit(f"{ref}: commit of {len(payload)} bytes is too large") from err
        except nats.errors.TimeoutError as err:
            raise StoreUnavailable(
                f"{ref}: JetStream did not acknowledge the commit within {self._timeout}s; "
                "it may or may not be stored, retry with the same idempotency key"
            ) from err
        except nats.errors.Error as err:
            raise StoreUnavailable(f"{ref}: cannot publish to JetStream: {err}") from err
        if not msg.data:
            raise StoreUnavailable(f"{ref}: JetStream answered {msg.headers} instead of an ack")
        return _decode_ack(msg.data)

    def _rejected(self, ref: StreamRef, error: _ApiError) -> EventStoreError:
        text = f"{ref}: JetStream rejected the commit: {error.description} ({error.err_code})"
        return StoreUnavailable(text) if error.code >= 500 else EventStoreError(text)

    async def _head_after_rejection(self, ref: StreamRef, subject: str, error: _ApiError) -> _Head:
        # The rejection names the subject's real last sequence: read exactly that message.
        match = _WRONG_LAST_SEQUENCE_RE.search(error.description)
        if match is None:
            head = await self._read_head(subject, from_leader=True)
        elif (seq := int(match.group(1))) == 0:
            head = _NO_HEAD
        else:
            head = await self._read_seq(subject, seq)
        # What the server just said is authoritative: overwrite rather than keep the max.
        self._heads.pop(_key(ref), None)
        self._remember_head(ref, head.version, head.seq, subject)
        return head

    async def _answer_conflict(self, commit: NewCommit, subject: str, head: _Head) -> CommitResult:
        """A retry of an earlier commit gets that commit's result; anything else conflicts."""
        if commit.idempotency_key is not None:
            key = _header_value(commit.idempotency_key)
            if head.key == key:
                return head.result(commit.ref)
            async with contextlib.aclosing(self._scan(subject)) as messages:
                async for msg in messages:
                    headers = msg.headers or {}
                    if headers.get(H_KEY) == key:
                        return _head_of(headers).result(commit.ref)
        raise ConcurrencyConflict(commit.ref, commit.expected_version, head.version)

    def _remember_head(self, ref: StreamRef, version: int, seq: int, subject: str) -> None:
        heads = self._heads
        key = (ref.tenant, ref.type, ref.id.int)
        known = heads.get(key)
        if known is None:
            heads[key] = (version, seq, subject)
            if len(heads) > self._head_cache_size:
                heads.popitem(last=False)
        elif known[0] < version:
            heads[key] = (version, seq, subject)

    # -- reading -----------------------------------------------------------------------

    async def load(
        self,
        ref: StreamRef,
        *,
        after_version: int = 0,
        up_to_version: int | None = None,
        after_position: int = 0,
    ) -> list[RecordedCommit]:
        subject = self._read_subject(ref)
        if subject is None:
            return []
        commits: list[RecordedCommit] = []
        last: tuple[int, int] | None = None
        async with contextlib.aclosing(self._scan(subject, after_position + 1)) as messages:
            async for msg in messages:
                headers = msg.headers or {}
                head = _head_of(headers)
                last = (head.version, head.seq)
                if head.version <= after_version:
                    continue
                if up_to_version is not None and head.version - head.count >= up_to_version:
                    last = None  # stopped early: not the head
                    break
                commits.append(self._decode(ref, head.seq, headers, msg.data))
        if last is not None:
            self._remember_head(ref, *last, subject)
        return commits

    async def read_all(self, from_position: int = 1) -> AsyncIterator[RecordedCommit]:
        head = await self.head_position()
        start = max(from_position, 1)
        if start > head:
            return
        try:
            sub = await self._js.subscribe(
                self._config.subjects,
                stream=self._config.stream,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                config=ConsumerConfig(opt_start_seq=start),
            )
        except nats.errors.Error as err:
            raise StoreUnavailable(f"cannot read {self._config.stream}: {err}") from err
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=self._timeout)
                except nats.errors.Error as err:
                    raise StoreUnavailable(f"reading {self._config.stream}: {err}") from err
                meta = msg.metadata
                seq = meta.sequence.stream
                if seq > head:
                    return
                yield self._decode(self.ref_of(msg.subject), seq, msg.headers or {}, msg.data)
                if seq == head or meta.num_pending == 0:
                    return
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def head_position(self) -> int:
        try:
            info = await self._js.stream_info(self._config.stream)
        except nats.errors.Error as err:
            raise StoreUnavailable(f"cannot read {self._config.stream} info: {err}") from err
        return info.state.last_seq

    async def current_version(self, ref: StreamRef) -> int:
        subject = self._read_subject(ref)
        if subject is None:
            return 0
        head = await self._read_head(subject)
        self._remember_head(ref, head.version, head.seq, subject)
        return head.version

    async def close(self) -> None:
        """Drop caches and the reply subscription; the client stays open (it is not ours)."""
        self._heads.clear()
        self._refs.clear()
        await self._replies.close()

    # -- JetStream reads ---------------------------------------------------------------

    async def _read_head(self, subject: str, *, from_leader: bool = False) -> _Head:
        """The last commit on ``subject``: a direct get (any replica) or from the leader."""
        if from_leader:
            try:
                raw = await self._js.get_last_msg(self._config.stream, subject)
            except NotFoundError:
                return _NO_HEAD
            except nats.errors.Error as err:
                raise StoreUnavailable(f"cannot read the head of {subject}: {err}") from err
            headers = dict(raw.headers or {})
            headers["Nats-Sequence"] = str(raw.seq)
            return _head_of(headers)
        msg = await self._request(f"{self._direct_get}.{subject}", b"")
        return _NO_HEAD if msg is None else _head_of(msg.headers or {})

    async def _read_seq(self, subject: str, seq: int) -> _Head:
        msg = await self._request(self._direct_get, b'{"seq":%d}' % seq)
        if msg is None:  # a replica that has not caught up yet
            try:
                raw = await self._js.get_msg(self._config.stream, seq=seq)
            except nats.errors.Error as err:
                raise StoreUnavailable(f"cannot read message {seq} of {subject}: {err}") from err
            headers = dict(raw.headers or {})
            headers["Nats-Sequence"], headers["Nats-Subject"] = str(seq), raw.subject or ""
        else:
            headers = msg.headers or {}
        if headers.get("Nats-Subject") != subject:
            raise EventStoreError(
                f"message {seq} is on {headers.get('Nats-Subject')}, not {subject}"
            )
        return _head_of(headers)

    async def _request(self, subject: str, payload: bytes) -> Reply | None:
        """A direct get; ``None`` when there is no such message."""
        try:
            msg = await self._replies.request(subject, payload)
        except nats.errors.Error as err:
            raise StoreUnavailable(f"JetStream direct get failed: {err}") from err
        status = msg.headers.get("Status") if msg.headers else None
        if status == "404":
            return None
        if status is not None:
            raise StoreUnavailable(f"JetStream direct get answered {msg.headers}")
        return msg

    async def _scan(self, subject: str, start: int = 1) -> AsyncGenerator[Msg, None]:
        """Every message on ``subject`` from stream sequence ``start``, by batched direct gets."""
        nc = self._nc
        inbox = nc.new_inbox()
        try:
            sub = await nc.subscribe(inbox)
        except nats.errors.Error as err:
            raise StoreUnavailable(f"cannot read {subject}: {err}") from err
        try:
            seq = max(start, 1)
            while True:
                request = b'{"seq":%d,"next_by_subj":"%s","batch":%d}' % (
                    seq,
                    subject.encode(),
                    self._load_batch,
                )
                try:
                    await nc.publish(self._direct_get, request, reply=inbox)
                    while True:
                        msg = await sub.next_msg(timeout=self._timeout)
                        headers = msg.headers or {}
                        status = headers.get("Status")
                        if status is not None:
                            break
                        seq = int(headers["Nats-Sequence"]) + 1
                        yield msg
                except nats.errors.Error as err:
                    raise StoreUnavailable(f"cannot read {subject}: {err}") from err
                if status == "404":  # nothing (more) on the subject
                    return
                if status != "204":
                    raise StoreUnavailable(f"JetStream batch get on {subject} answered {headers}")
                if headers.get("Nats-Num-Pending", "0") == "0":  # end of batch, end of subject
                    return
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    # -- decoding ----------------------------------------------------------------------

    def _decode(
        self, ref: StreamRef, seq: int, headers: Mapping[str, str], data: bytes
    ) -> RecordedCommit:
        return recorded_commit(ref, seq, headers, decode_events(data))

    def ref_of(self, subject: str) -> StreamRef:
        """The aggregate an event subject of this store belongs to."""
        refs = self._refs
        ref = refs.get(subject)
        if ref is None:
            tenant, type_, hex_id = subject[len(self._prefix) + 1 :].split(".")
            ref = StreamRef(tenant, type_, UUID(hex=hex_id))
            if len(refs) >= self._head_cache_size:
                refs.clear()  # a bound, not an LRU: parsing a subject again is cheap
            refs[subject] = ref
        return ref


def recorded_commit(
    ref: StreamRef,
    position: int,
    headers: Mapping[str, str],
    triples: Sequence[tuple[str, int, bytes]],
) -> RecordedCommit:
    """A commit message of ``ref`` at ``position``, from its headers and decoded body.

    The one decoder of the on-stream format: the store, the replay tools and
    the subscriptions' live feed all read commits through it.
    """
    key = headers.get(H_KEY)
    return RecordedCommit(
        ref=ref,
        position=position,
        events=tuple(
            StoredEvent(ref.id, version, topic, state) for topic, version, state in triples
        ),
        idempotency_key=None if key is None else header_value(key),
        metadata={
            header_value(name[len(H_META) :]): header_value(value)
            for name, value in headers.items()
            if name.startswith(H_META)
        },
    )


def _head_of(headers: Mapping[str, str]) -> _Head:
    try:
        return _Head(
            version=int(headers[H_VERSION]),
            seq=int(headers["Nats-Sequence"]),
            count=int(headers[H_COUNT]),
            key=headers.get(H_KEY),
        )
    except (KeyError, ValueError) as err:
        raise EventStoreError(f"not a Vigil commit: headers {dict(headers)}") from err


def encode_events(events: Sequence[StoredEvent]) -> bytes:
    """The commit body: msgpack ``[topic, version, state]`` triples."""
    return _encode_events([[e.topic, e.originator_version, e.state] for e in events])
