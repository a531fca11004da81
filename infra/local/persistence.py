"""The emulated AWS account kept on disk, so `stepgraph dev` can be stopped (even `kill -9`) and
started again with every table, object, message, schedule and execution record it had.

How: snapshots of moto's backends, plus a write-ahead journal for DynamoDB.
- Every moto service keeps its state in `BackendDict`s (account -> region -> backend object). A
  snapshot pickles each backend in use, whatever the service (a queue's messages, an object, a
  schedule, a secret, an execution's record and history), so a service the template gains later
  is covered without a list here. Each backend's pickle is a file of its own (`backends/`), new
  each time it changes; ended executions, which never change, are pickled once each
  (`executions/`); the snapshot (`aws.pickle`) names those files and is written last, to a
  temporary file moved over the old one (`os.replace`). A kill at any moment leaves the old
  snapshot or the new one, each with every file it names.
- DynamoDB, the state that grows with every superstep, is not pickled on each write: its writes
  are appended to a journal (`journal.N`) inside the emulator's DynamoDB lock (so in the order
  moto applied them) and flushed before they are answered. moto applies a DynamoDB request from
  the request alone, so replaying the journal in order over the tables' last pickle gives the
  same tables (a condition that failed fails again). Past `_COMPACT_BYTES` the journal is folded
  into a snapshot (DynamoDB pickled again, a new journal begun, older journals then removed).

When: every other write request of stepgraph's clients (not a Get/List/Describe/Query/Scan)
waits, before its answer returns, until a snapshot taken after it is on disk (`around`, the
emulator's request hook); requests arriving meanwhile share the next snapshot (group commit), and
only the services written to are pickled again. Hence what a `kill -9` can lose: nothing that was
acknowledged; a request in flight at the kill may be there or not, as on AWS. (Files are flushed,
not fsync'd: the OS keeps them through a process kill; a power cut may lose the last writes.) A
snapshot is a cut between requests (requests wait at the door while it is taken), so a
transaction is in it whole or not at all.

Not waited for: a Lambda Invoke (its handler's own calls are) and SQS ReceiveMessage (a long
poll; a message received but not deleted at a kill is visible again after its timeout). Step
Functions executions move in their own threads; their records reach disk with the next
snapshot. Nothing of a running execution's thread survives a process, so on load every execution
that was RUNNING is marked ABORTED (`restore` returns them; `resume_runs` hands their runs to
the recovery path).

Written against moto's internals (`BackendDict`, the Step Functions parser backend's executions)
of `emulator.MOTO_VERSION`; a snapshot records the moto version and another one is refused.
"""

from __future__ import annotations

import _thread
import collections
import copyreg
import datetime
import fcntl
import hashlib
import importlib
import io
import logging
import os
import pickle
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar, cast

from moto.core.base_backend import BackendDict

__all__ = ["SNAPSHOT_NAME", "AbortedExecution", "DataDirError", "Persistence", "attach", "resume_runs"]

logger = logging.getLogger("stepgraph.local")

SNAPSHOT_NAME = "aws.pickle"
_FORMAT = 4  # bumped when the file's layout changes; another layout is refused, not misread
_READ_PREFIXES = ("Get", "List", "Describe", "Query", "Scan", "BatchGet", "TransactGet", "Head")
_UNGATED = ("ReceiveMessage",)  # long polls: held at the door, they would stall every snapshot
_SERVICE_ALIASES = {"states": "stepfunctions"}  # SigV4 scope -> moto's service name
_ALWAYS_DIRTY = ("stepfunctions",)
ALL = "*"
_WAY_OUT = "start with --ephemeral, or move that folder away (or use --data-dir) to start afresh"
_ABORT_ERROR = "LocalRuntime.Restarted"
_EXECUTIONS = "executions"  # the folder of ended executions' pickles
_BACKENDS = "backends"  # the folder of the backends' pickles
# Services whose writes are journaled instead of snapshotted: moto applies them one at a time
# (the emulator serialises DynamoDB) and from the request alone, so replaying a journal in its
# order gives the same tables. Their state is pickled again only when the journal passes this:
JOURNALED = ("dynamodb",)
_COMPACT_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class AbortedExecution:
    """An execution that was RUNNING when the last process died (now ABORTED)."""

    arn: str
    input: Any  # the execution's input, as started (a dict for stepgraph's machines)
    detail: dict[str, Any]  # the EventBridge status-change detail AWS would send


def _lock(obj: Any) -> tuple[Any, ...]:
    return (threading.Lock, ())


def _rlock(obj: Any) -> tuple[Any, ...]:
    return (threading.RLock, ())


def _condition(obj: Any) -> tuple[Any, ...]:
    return (threading.Condition, ())


def _event(obj: Any) -> tuple[Any, ...]:
    return (threading.Event, ())


def _thread_gone(obj: Any) -> tuple[Any, ...]:
    return (type(None), ())


def _weak_values(obj: Any) -> tuple[Any, ...]:
    return (weakref.WeakValueDictionary, (dict(obj.items()),))


def _weak_keys(obj: Any) -> tuple[Any, ...]:
    return (weakref.WeakKeyDictionary, (dict(obj.items()),))


def _default_dict(obj: Any) -> tuple[Any, ...]:
    factory = obj.default_factory
    if factory is not None and getattr(factory, "__name__", "") == "<lambda>":
        factory = type(factory())  # `defaultdict(lambda: {})`: the same default, by what it makes
    return (collections.defaultdict, (factory,), None, None, iter(obj.items()))


class _Pickler(pickle.Pickler):
    """moto's objects as data: locks, conditions and events come back new (and free), threads
    as None (nothing of a thread survives a process), weak dictionaries as weak dictionaries of
    the same (pickled) objects. A dispatch table, not `reducer_override`: that one is a Python
    call for every object, four times slower on a table of items."""

    dispatch_table: ClassVar[dict[type, Callable[[Any], Any]]] = {  # type: ignore[misc]  # pickle's hook
        **copyreg.dispatch_table,
        _thread.LockType: _lock,
        type(threading.RLock()): _rlock,
        threading.Condition: _condition,
        threading.Event: _event,
        threading.Thread: _thread_gone,
        weakref.WeakValueDictionary: _weak_values,
        weakref.WeakKeyDictionary: _weak_keys,
        collections.defaultdict: _default_dict,
    }


def _dumps(value: Any) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return buffer.getvalue()


def _defaultdict(kind: type, items: dict[Any, Any]) -> collections.defaultdict[Any, Any]:
    return collections.defaultdict(kind, items)


def _instances() -> list[BackendDict[Any]]:
    """Every BackendDict in use (moto's own list of them)."""
    return list(vars(BackendDict)["_instances"])


def _key(backends: BackendDict[Any]) -> str:
    return f"{backends.backend.__module__}:{backends.backend.__qualname__}"


def _backend_dict(key: str) -> BackendDict[Any] | None:
    """The process's BackendDict for a snapshot's key (importing its service), or None."""
    for backends in _instances():
        if _key(backends) == key:
            return backends
    module_name, _, qualname = key.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        logger.warning("the snapshot has state of %s, which this moto does not have: left out", key)
        return None
    for value in vars(module).values():
        if isinstance(value, BackendDict) and value.backend.__qualname__ == qualname:
            return value
    return None


class _Ended:
    """Ended Step Functions executions, pickled once each. An execution never changes once it
    has ended, but a backend's executions pile up (a few tens of KB of history each) and the Step
    Functions backend is pickled on every snapshot; so in its pickle an ended execution is a
    reference (`persistent_id`), and its own pickle is kept from one snapshot to the next. In an
    execution's pickle its state machine and the execution itself are references too (the
    machine holds its executions: pickled whole, one would bring all the others)."""

    def __init__(self) -> None:
        self.pickles: dict[str, bytes] = {}  # execution ARN -> pickle of its __dict__
        self._machines: set[str] = set()  # ARNs of the state machines of the backend in hand

    def dumps(self, backend_state: dict[str, Any]) -> tuple[bytes, set[str]]:
        """A backend's state, ended executions as references; also the ARNs referenced."""
        machines = backend_state.get("state_machines")
        self._machines = {m.arn for m in machines if hasattr(m, "arn")} if isinstance(machines, list) else set()
        used: set[str] = set()
        outer = self

        class _Outer(_Pickler):
            def persistent_id(self, obj: Any) -> Any:
                arn = outer.reference(obj)
                if arn is None:
                    return None
                if arn not in outer.pickles:
                    outer.pickles[arn] = outer.dumps_execution(obj)
                used.add(arn)
                return ("execution", arn, type(obj))

        buffer = io.BytesIO()
        _Outer(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(backend_state)
        return buffer.getvalue(), used

    def dumps_execution(self, execution: Any) -> bytes:
        outer = self

        class _Inner(_Pickler):
            def persistent_id(self, obj: Any) -> Any:
                # The machine itself, or the copy an execution keeps of it (with its executions)
                if hasattr(obj, "executions") and getattr(obj, "arn", None) in outer._machines:
                    return ("machine", obj.arn)
                arn = outer.reference(obj)
                return None if arn is None else ("execution", arn, type(obj))

        buffer = io.BytesIO()
        _Inner(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(execution.__dict__)
        return buffer.getvalue()

    def reference(self, obj: Any) -> str | None:
        """The ARN an ended execution (of the backend in hand) is referenced by; None otherwise."""
        if not self._machines or getattr(obj, "exec_worker", _NOTHING) is _NOTHING:
            return None
        status = getattr(obj, "exec_status", None)
        if status is None or str(getattr(status, "value", status)) == "RUNNING":
            return None
        arn = getattr(obj, "exec_arn", None)
        return arn if isinstance(arn, str) else None


_NOTHING = object()


def _loads_backend(piece: bytes, executions: dict[str, bytes]) -> dict[str, Any]:
    """A backend's saved state, its ended executions (`_Ended`) filled in."""
    placeholders: dict[str, Any] = {}

    def placeholder(arn: str, kind: Any) -> Any:
        if arn not in placeholders:
            placeholders[arn] = object.__new__(kind)
        return placeholders[arn]

    class _Outer(pickle.Unpickler):
        def persistent_load(self, pid: Any) -> Any:
            if pid[0] == "execution":
                return placeholder(pid[1], pid[2])
            raise pickle.UnpicklingError(f"unknown reference {pid!r}")

    state: dict[str, Any] = _Outer(io.BytesIO(piece)).load()
    machines = {m.arn: m for m in state.get("state_machines") or [] if hasattr(m, "arn")}

    class _Inner(pickle.Unpickler):
        def persistent_load(self, pid: Any) -> Any:
            if pid[0] == "machine":
                return machines[pid[1]]
            if pid[0] == "execution":
                return placeholder(pid[1], pid[2])
            raise pickle.UnpicklingError(f"unknown reference {pid!r}")

    filled: set[str] = set()
    while len(filled) < len(placeholders):  # an execution's pickle may name another
        for arn in [arn for arn in placeholders if arn not in filled]:
            placeholders[arn].__dict__.update(_Inner(io.BytesIO(executions[arn])).load())
            filled.add(arn)
    return state


@dataclass(frozen=True)
class Capture:
    """A snapshot (`main`) and what it names that is not on disk yet: backends' pieces (a new
    file each time one changes: a file named by a snapshot never changes) and ended executions."""

    main: bytes
    pieces: dict[str, bytes]
    executions: dict[str, bytes]
    named_executions: set[str]


class Snapshot:
    """The pickled state of every moto backend in use, kept per backend: a backend is pickled
    again only when a write went to its service since (or, Step Functions, whose executions move
    in their own threads, every time; its ended executions are pickled once, `_Ended`)."""

    def __init__(self) -> None:
        self._pieces: dict[tuple[str, str, str], bytes] = {}
        self._dirty: set[str] = set()  # service names written to since the last capture
        self._ended = _Ended()
        self._referenced: dict[tuple[str, str, str], set[str]] = {}  # per backend: ended executions
        self.written: set[str] = set()  # ended executions whose file the last capture had written
        self.journal_from = 0  # the journal file the journaled services' pieces continue with
        self.names: dict[tuple[str, str, str], str] = {}  # backend -> the file of its piece

    def touched(self, service: str) -> None:
        """A write went to `service` (ALL: to a service not known)."""
        self._dirty.add(_SERVICE_ALIASES.get(service, service))

    def capture(self, journal_from: int, compact: bool) -> Capture:
        """The snapshot and the files to write before it. A journaled service's state is pickled
        again only to `compact` its journal (the snapshot then replays it from `journal_from`).
        Call with requests held at the door."""
        dirty, self._dirty = self._dirty, set()
        pieces, names, fresh = {}, {}, {}
        referenced = dict(self._referenced)
        try:
            for backends in _instances():
                name = backends.service_name
                written = name in _ALWAYS_DIRTY or name in dirty or ALL in dirty
                always = compact if name in JOURNALED else written
                for account, regional in list(backends.items()):
                    for region, backend in list(regional.items()):
                        key = (_key(backends), account, region)
                        piece, file = self._pieces.get(key), self.names.get(key)
                        if piece is None or file is None or always:
                            piece, referenced[key] = self._ended.dumps(backend.__dict__)
                            file = f"{hashlib.sha256(repr(key).encode()).hexdigest()[:16]}-{uuid.uuid4().hex}.pickle"
                            fresh[file] = piece
                        pieces[key], names[key] = piece, file
        except BaseException:
            self._dirty |= dirty  # not captured: still to do
            raise
        self._pieces, self.names, self._referenced = pieces, names, referenced
        used = set().union(*referenced.values()) if referenced else set()
        for gone in set(self._ended.pickles) - used:  # deleted with their state machine
            del self._ended.pickles[gone]
        new = {arn: self._ended.pickles[arn] for arn in used - self.written}
        if compact:
            self.journal_from = journal_from
        state = {"backends": names, "executions": sorted(used), "journal": self.journal_from}
        main = _dumps({"format": _FORMAT, "moto": _moto_version(), **state})
        return Capture(main, fresh, new, used)


def _merge(fresh: Any, saved: Any) -> Any:
    """A backend attribute: the saved value; for a mapping, the fresh entries the saved one
    lacks are kept (a resource the template gained since the snapshot), and a saved resource
    keeps the ARN it was just provisioned with (the environment names that one: a secret's ARN
    ends in random characters)."""
    if isinstance(fresh, dict) and isinstance(saved, dict):
        for name, value in dict.items(fresh):
            kept = dict.get(saved, name)
            if kept is None:
                dict.__setitem__(saved, name, value)
                continue
            arn = getattr(value, "arn", None)
            if isinstance(arn, str) and isinstance(getattr(kept, "arn", None), str) and kept.arn != arn:
                try:
                    kept.arn = arn
                except AttributeError:  # a computed ARN: it follows the resource's own fields
                    logger.debug("kept %s with its saved ARN %s", name, kept.arn)
    return saved


class DataDirError(RuntimeError):
    """The data folder cannot be used: another server holds it, or its state cannot be read."""


def execution_file(data_dir: Path, arn: str) -> Path:
    """Where an ended execution's pickle is kept (written once, before any snapshot names it)."""
    return data_dir / _EXECUTIONS / f"{hashlib.sha256(arn.encode()).hexdigest()[:40]}.pickle"


def restore(data: bytes, data_dir: Path) -> list[AbortedExecution]:
    """Lay a snapshot over the backends of a freshly provisioned account; returns the executions
    that were RUNNING in it, now ABORTED."""
    import moto

    loaded = pickle.loads(data)  # our own file, in the project's data folder
    if not isinstance(loaded, dict) or loaded.get("format") != _FORMAT:
        raise DataDirError("it is not a snapshot this version of stepgraph writes")
    if loaded.get("moto") != moto.__version__:
        raise DataDirError(f"it was written with moto {loaded.get('moto')}, and moto {moto.__version__} is installed")
    definitions = _definitions()
    executions = {arn: execution_file(data_dir, arn).read_bytes() for arn in loaded["executions"]}
    for (key, account, region), name in loaded["backends"].items():
        backends = _backend_dict(key)
        if backends is None:
            continue
        saved = _loads_backend((data_dir / _BACKENDS / name).read_bytes(), executions)
        backend = backends[account][region]
        for name, value in saved.items():
            setattr(backend, name, _merge(backend.__dict__.get(name), value))
    _redeploy(definitions)
    _replay(data_dir, int(loaded["journal"]))
    return _abort_running()


def _journal_files(data_dir: Path) -> list[tuple[int, Path]]:
    found = []
    for path in data_dir.glob("journal.*"):
        number = path.name.removeprefix("journal.")
        if number.isdigit():
            found.append((int(number), path))
    return sorted(found)


def _records(path: Path) -> Iterator[bytes]:
    """A journal's whole records (a torn last one, from a kill while writing it, is left out:
    its request was never answered)."""
    data = path.read_bytes()
    at = 0
    while at + 4 <= len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        if at + 4 + size > len(data):
            return
        yield data[at + 4 : at + 4 + size]
        at += 4 + size


def _replay(data_dir: Path, first: int) -> None:
    """The journaled requests made since the snapshot's pieces, applied again in their order."""
    from botocore.awsrequest import AWSPreparedRequest

    from .emulator import scope

    replayed = failed = 0
    for number, path in _journal_files(data_dir):
        if number < first:
            continue
        for record in _records(path):
            method, url, headers, body = pickle.loads(record)
            request = AWSPreparedRequest(method, url, headers, body, stream_output=False)
            status, _, _ = scope.answer(request)
            replayed += 1
            failed += status >= 400  # a condition that failed then fails again: the same state
    if replayed:
        logger.info("replayed %d journaled writes (%d refused, as the first time)", replayed, failed)


def _state_machines() -> Iterator[Any]:
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    for _, regional in list(stepfunctions_parser_backends.items()):
        for _, backend in list(regional.items()):
            yield from backend.state_machines


def _definitions() -> dict[str, str]:
    """The state machines' definitions as just provisioned from the template."""
    return {machine.arn: machine.definition for machine in _state_machines()}


def _redeploy(definitions: dict[str, str]) -> None:
    """A kept state machine runs the template's definition, as after a deploy (the code may
    have changed since the snapshot); its executions' records stay."""
    for machine in _state_machines():
        if machine.arn in definitions and machine.definition != definitions[machine.arn]:
            logger.info("state machine %s: the template's definition replaces the saved one", machine.arn)
            machine.definition = definitions[machine.arn]


def _moto_version() -> str:
    import moto

    return str(moto.__version__)


def _abort_running() -> list[AbortedExecution]:
    from moto.stepfunctions.parser.api import ExecutionStatus

    from .emulator._stepfunctions import status_change_detail

    aborted = []
    executions = (e for machine in _state_machines() for e in cast("list[Any]", machine.executions))
    for execution in executions:
        if getattr(execution, "exec_status", None) != ExecutionStatus.RUNNING:
            continue
        execution.exec_status = ExecutionStatus.ABORTED
        execution.stop_date = datetime.datetime.now(tz=datetime.UTC)
        execution.error, execution.cause = _ABORT_ERROR, "the local runtime was restarted"
        # Its tokens died with its threads: SendTaskSuccess must say InvalidToken.
        worker = getattr(execution, "exec_worker", None)
        pool = getattr(getattr(getattr(worker, "env", None), "callback_pool_manager", None), "_pool", None)
        if isinstance(pool, dict):
            pool.clear()
        aborted.append(AbortedExecution(execution.exec_arn, execution.input_data, status_change_detail(execution)))
    return aborted


def operation(request: Any) -> str:
    """The API operation a botocore request calls (best effort: JSON's X-Amz-Target, query's
    Action, else the HTTP method and path)."""
    target = request.headers.get("X-Amz-Target")
    if target:
        text = target.decode() if isinstance(target, bytes) else str(target)
        return text.rsplit(".", 1)[-1]
    body = request.body
    if isinstance(body, bytes) and body.startswith(b"Action="):
        return body.split(b"&", 1)[0].removeprefix(b"Action=").decode()
    if isinstance(body, str) and body.startswith("Action="):
        return body.split("&", 1)[0].removeprefix("Action=")
    path = str(request.url).split("?", 1)[0]
    if path.endswith("/invocations"):
        return "Invoke"
    return f"{request.method} {path}"


def service(request: Any) -> str:
    """The service a request goes to: its SigV4 credential scope, else the labels of its host
    (`dynamodb.us-east-1.amazonaws.com`, `bucket.s3.amazonaws.com`); ALL when neither says."""
    authorization = request.headers.get("Authorization") or ""
    if isinstance(authorization, bytes):
        authorization = authorization.decode("latin-1")
    scope = str(authorization).partition("Credential=")[2].split(",", 1)[0].split("/")
    if len(scope) > 3:
        return scope[3]
    host = str(request.url).partition("://")[2].split("/", 1)[0].split(":", 1)[0]
    known = {backends.service_name for backends in _instances()} | set(_SERVICE_ALIASES)
    return next((label for label in host.split(".")[:2] if label in known), ALL)


def _is_write(op: str) -> bool:
    if op.startswith(("GET ", "HEAD ")):
        return False
    return not op.startswith(_READ_PREFIXES) and op not in _UNGATED and op != "Invoke"


class Persistence:
    """The data folder's snapshot: `load` and `restore` before serving, `start` the writer, and
    `around(request, call)` on every request of stepgraph's clients (the emulator's hook)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / SNAPSHOT_NAME
        self._door = threading.Condition()
        self._inside = 0  # requests past the door
        self._closed = False  # a snapshot is being taken: requests wait at the door
        self._snapshot = Snapshot()
        self._held: IO[str] | None = None
        self._depth = threading.local()  # a request made while serving one (a Lambda's own calls)
        self._wanted = 0  # generations: writes acknowledged after the snapshot numbered so
        self._saved = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.snapshots = 0  # written since start (for the banner and tests)
        self._journal: IO[bytes] | None = None
        self._journal_number = 0
        self._journal_bytes = 0
        self._compact = True  # the first snapshot starts a journal of its own
        self.last_error: str | None = None

    # ------------------------------------------------------------------ load
    def restore(self) -> list[AbortedExecution]:
        """Lay the saved state over the (freshly provisioned) account; [] with no snapshot."""
        if not self.path.exists():
            return []
        try:
            aborted = restore(self.path.read_bytes(), self.data_dir)
        except DataDirError as exc:
            raise DataDirError(f"cannot restore {self.path}: {exc}; {_WAY_OUT}") from None
        except Exception as exc:  # a torn file cannot happen (os.replace); another program's can
            raise DataDirError(f"cannot restore {self.path} ({type(exc).__name__}: {exc}); {_WAY_OUT}") from exc
        logger.info("restored the emulated AWS from %s (%d executions were running)", self.path, len(aborted))
        return aborted

    def hold(self) -> None:
        """Take the data folder for this process (an advisory lock the OS drops with the process,
        kill -9 included): two servers writing one snapshot would each lose the other's writes."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.data_dir / "lock", "a+")  # noqa: SIM115  # held open for the process's life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise DataDirError(
                f"another stepgraph server is using {self.data_dir}; stop it, or start with --data-dir or --ephemeral"
            ) from None
        self._held = handle
        (self.data_dir / _EXECUTIONS).mkdir(exist_ok=True)
        (self.data_dir / _BACKENDS).mkdir(exist_ok=True)
        for pattern in (f"{SNAPSHOT_NAME}.*.tmp", f"{_BACKENDS}/*.tmp", f"{_EXECUTIONS}/*.tmp"):
            for stale in self.data_dir.glob(pattern):  # a killed writer's unfinished file
                stale.unlink(missing_ok=True)

    def release(self) -> None:
        if self._held is not None:
            self._held.close()  # closing drops the lock
            self._held = None

    # ------------------------------------------------------------------ requests
    def around(self, request: Any, call: Callable[[], Any]) -> Any:
        op = operation(request)
        gated = op != "Invoke" and op not in _UNGATED
        depth = getattr(self._depth, "value", 0)
        if not gated:
            return call()
        if depth == 0:
            with self._door:
                while self._closed:
                    self._door.wait()
                self._inside += 1
        self._depth.value = depth + 1
        journaled = _is_write(op) and service(request) in JOURNALED
        try:
            if journaled:
                with _dynamodb_lock():  # the order moto applies them in is the journal's
                    response = call()
                    self._append(request)
            else:
                response = call()
        finally:
            self._depth.value = depth
            if depth == 0:
                with self._door:
                    self._inside -= 1
                    self._door.notify_all()
        if _is_write(op) and not journaled:
            if depth == 0:
                self._wait_saved(service(request))
            else:  # saved with the request it serves
                with self._door:
                    self._snapshot.touched(service(request))
        return response

    def _append(self, request: Any) -> None:
        """Journal a request (flushed before it is answered: a process kill cannot lose it)."""
        body = request.body
        if hasattr(body, "read"):  # a stream: botocore sends DynamoDB bodies as bytes
            raise TypeError(f"cannot journal a streamed body ({operation(request)})")
        record = pickle.dumps((request.method, request.url, dict(request.headers.items()), body))
        journal = self._journal
        if journal is None:  # detached meanwhile (stopping): kept no more, as a write cut by a kill
            logger.debug("not journaled, the runtime is stopping: %s", operation(request))
            return
        journal.write(len(record).to_bytes(4, "big") + record)
        journal.flush()
        self._journal_bytes += 4 + len(record)
        if self._journal_bytes > _COMPACT_BYTES and not self._compact:
            with self._door:  # a snapshot folds the journal into the tables' own pickle
                self._compact = True
                self._wanted += 1
                self._door.notify_all()

    def _rotate(self) -> int:
        """Start a new journal file (with requests held at the door); returns its number."""
        if self._journal is not None:
            self._journal.close()
        existing = [number for number, _ in _journal_files(self.data_dir)]
        self._journal_number = max([self._journal_number, *existing]) + 1
        self._journal = open(self.data_dir / f"journal.{self._journal_number}", "ab")  # noqa: SIM115
        self._journal_bytes = 0
        return self._journal_number

    def _wait_saved(self, written: str) -> None:
        with self._door:
            self._snapshot.touched(written)
            self._wanted += 1
            generation = self._wanted
            self._door.notify_all()
            while self._saved < generation and not self._stopping:
                self._door.wait()

    # ------------------------------------------------------------------ the writer
    def start(self) -> Persistence:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._write_loop, name="stepgraph-persistence", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Write a last snapshot (stopped cleanly: the executions' ends too) and stop writing."""
        with self._door:
            self._wanted += 1
            self._door.notify_all()
            generation = self._wanted
            deadline = time.monotonic() + 5
            while self._saved < generation and self._thread is not None and time.monotonic() < deadline:
                self._door.wait(timeout=0.1)
            self._stopping = True
            self._door.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def close_journal(self) -> None:
        with _dynamodb_lock():  # not under a request appending to it
            if self._journal is not None:
                self._journal.close()
                self._journal = None

    def detach(self) -> None:
        """A last snapshot, then requests go unsaved (what a stopping runtime ends is not kept)."""
        from .emulator import scope

        self.stop()
        scope.set_around(None)
        self.close_journal()
        self.release()

    def save_now(self) -> None:
        """Take and write a snapshot at once (the writer thread's work, for start-up)."""
        self._write(self._take())

    def prune(self) -> None:
        """Remove the files of ended executions the snapshot no longer names (written by a process
        killed before its snapshot, or their state machine deleted)."""
        named = {execution_file(self.data_dir, arn).name for arn in self._snapshot.written}
        for path in (self.data_dir / _EXECUTIONS).glob("*.pickle"):
            if path.name not in named:
                path.unlink(missing_ok=True)

    def _write_loop(self) -> None:
        while True:
            with self._door:
                while self._saved >= self._wanted and not self._stopping:
                    self._door.wait()
                if self._stopping:
                    return
                generation = self._wanted
            try:
                self._write(self._take())
            except Exception as exc:  # keep serving; the next write tries again
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.exception("could not write the snapshot %s", self.path)
            with self._door:
                self._saved = max(self._saved, generation)
                self._door.notify_all()

    def _take(self) -> Capture:
        with self._door:
            self._closed = True
            try:
                while self._inside:
                    self._door.wait()
                compact, self._compact = self._compact, False
                journal_from = self._rotate() if compact else self._snapshot.journal_from
                for attempt in range(5):
                    try:
                        return self._snapshot.capture(journal_from, compact)
                    except RuntimeError as exc:  # an execution's thread changed a dict meanwhile
                        if attempt == 4:
                            raise
                        logger.debug("snapshot retried: %s", exc)
                        time.sleep(0.001)
                raise AssertionError("unreachable")
            finally:
                self._closed = False
                self._door.notify_all()

    def _write(self, snapshot: Capture) -> None:
        for name, data in snapshot.pieces.items():  # first: what the snapshot names is there
            _replace(self.data_dir / _BACKENDS / name, data)
        for arn, data in snapshot.executions.items():
            _replace(execution_file(self.data_dir, arn), data)
        _replace(self.path, snapshot.main)
        self._snapshot.written = snapshot.named_executions
        self.snapshots += 1
        named = set(self._snapshot.names.values())
        for path in (self.data_dir / _BACKENDS).glob("*.pickle"):  # pieces of older snapshots
            if path.name not in named:
                path.unlink(missing_ok=True)
        for number, path in _journal_files(self.data_dir):  # folded into the snapshot's pieces
            if number < self._snapshot.journal_from:
                path.unlink(missing_ok=True)


def _dynamodb_lock() -> Any:
    from .emulator import _dynamodb

    return _dynamodb.serialised


def _replace(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all: a temporary file, then os.replace."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as out:
        out.write(data)
        out.flush()
    os.replace(temporary, path)


def attach(data_dir: Path) -> tuple[Persistence, list[AbortedExecution]]:
    """Keep the running emulated account in `data_dir`: restore its snapshot (if any) over the
    provisioned account, save it at once, then save every write (`Persistence.around`). Returns
    the persistence and the executions the last process left running."""
    from .emulator import scope

    persistence = Persistence(data_dir)
    persistence.hold()
    try:
        aborted = persistence.restore()
        persistence.save_now()
        persistence.prune()
    except BaseException:
        persistence.release()
        raise
    scope.set_around(persistence.around)
    persistence.start()
    return persistence, aborted


def resume_runs(ctx: Any, aborted: list[AbortedExecution], put_event: Callable[[dict[str, Any]], None]) -> list[str]:
    """The runs the restart cut short go on. For each execution the last process left RUNNING
    (now ABORTED): if it still carries a `running` run, the run continues as a new execution
    from its thread's head checkpoint (the continue-as-new of `engine.handover`: recorded on the
    run by a conditional write, then started; nothing committed runs again). Then its status
    change goes to the reaper, as on AWS, which starts the recorded execution if need be, or
    ends a run nothing carries. A parked run needs nothing: its dead token answers InvalidToken
    and the resume starts a new execution (`Executions.resume`). Returns the runs handed over."""
    from stepgraph.engine.handover import hand_over
    from stepgraph.vocabulary import RunStatus, StepOutcome

    resumed = []
    for execution in aborted:
        given = execution.input if isinstance(execution.input, dict) else {}
        run_id, thread_id = given.get("run_id"), given.get("thread_id")
        run = ctx.runs.get(thread_id, run_id) if run_id and thread_id else None
        if run is not None and run["status"] == RunStatus.RUNNING and ctx.executions.of_run(run) == execution.arn:
            outcome = hand_over(ctx, run, execution.arn, StepOutcome.CONTINUE, 0)
            if outcome == StepOutcome.HANDOVER:
                logger.warning("run %s: cut short by the restart; it goes on from its last checkpoint", run_id)
                resumed.append(str(run_id))
        put_event(execution.detail)
    return resumed
