"""Run records: one directory per run, named by the hash of its protocol.

    RESULTS/<run_id>/spec.json          the resolved RunSpec (written first)
                    provenance.json     code version, packages, device, threads, timings
                    metrics.jsonl       one line per epoch and per level (append-only)
                    masks/level_NNN.pt  bit-packed mask at the end of each level
                    checkpoints/latest.pt (+ previous.pt) full state to resume mid-level
                    result.json         written last, atomically: its presence means complete
                    failed.json         the reason, when the run failed
                    lock                held while a process executes the run (pid, host; its mtime a heartbeat;
                                        lock.guard: taken under its flock)
    RESULTS/suites/<name>.json          the resolved suite, so reports need nothing else

Every file is replaced atomically (write to a temporary file, then rename), so a kill at any
moment leaves either the old or the new version, never a torn one; files get the process umask's
permissions, so other users of a shared results directory can read them.

Records are input too: every one is read through its typed schema, and one that does not parse, does
not validate or does not match what result.json says of it (size, sha256) is *corrupt*. A corrupt
record is reported (``CorruptRecord``: its path and why) and never trusted: a complete run whose
result or level files are corrupt is not complete, and ``bench run`` redoes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import hashlib
import io
import json
import logging
import os
import socket
import stat
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pydantic_core
import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from prunebench.messages import LOGGER
from prunebench.records import AnalysisRecord, EpochRecord, FileDigest, RunResult, parse_row
from prunebench.spec import DataSpec, FileName, ModelSpec, PruneSpec, RunSpec, TrainSpec, WeightPoint

SUITES_DIR = "suites"
LEVEL_FILES = ("masks", "signs", "weights")  # per-level record folders, digested into result.json
ANALYSES_DIR = "analyses"  # what `bench run` measured from kept states afterwards (suite `analyses:`): not digested, redone when unreadable
log = logging.getLogger(LOGGER)


class CorruptRecord(ValueError):
    """A record file that cannot be trusted: ``path`` and the reason."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason


def _umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc: read it by setting it (once, at import)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file


@contextlib.contextmanager
def many_records() -> Iterator[None]:
    """Python's cyclic garbage collector paused while thousands of records are read and validated.

    They form no reference cycles, but each survives, and the collector's passes over the growing heap
    took a third of a 2,000-run report's CPU time (0.35 of 0.9 s, benchmarks/harness_overhead.py).
    Reference counting still frees everything acyclic; the collector runs again on the way out (it is
    left off if the caller had turned it off)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, FILE_MODE)  # mkstemp creates 0600
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def atomic_torch_save(path: Path, obj: Any) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getbuffer())


def host_copy(state: Any) -> Any:
    """A copy of a state tree (dicts, lists, tuples, tensors, plain values) in host memory that
    training can no longer change: what a background write may serialise while training goes on."""
    if torch.is_tensor(state):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: host_copy(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(host_copy(v) for v in state)
    return state


class BackgroundWriter:
    """Writes in a background thread, one at a time: a new write first waits for the last one, and
    a write's exception is raised in the caller's thread at the next ``submit`` or ``wait``.

    Files stay valid under a kill at any moment, as each write is atomic (``atomic_write_bytes``)."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, write: Any, *args: Any) -> None:
        self.wait()

        def target() -> None:
            try:
                write(*args)
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                self._error = e

        self._thread = threading.Thread(target=target, name="prunebench-writer", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def _file_size(path: str) -> int | None:
    """The size of a regular file, or None (missing, or not a file): one stat."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def read_json(path: Path) -> Any | None:
    """The parsed file, or None if it is missing or unreadable (a torn or corrupt record)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def load_tensors(path: Path) -> Any:
    """A tensor file of the records (weights only: nothing in it runs); CorruptRecord if unreadable."""
    try:
        with warnings.catch_warnings():  # torch's remarks on a foreign pickle's protocol: the error below says it
            warnings.simplefilter("ignore")
            return torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - torn zip, foreign pickle, bad opcode: all mean "corrupt"
        first = str(e).split(". ")[0].splitlines()[0] if str(e) else ""  # torch's messages run on for lines
        raise CorruptRecord(path, f"unreadable ({type(e).__name__}: {first})") from None


def _schema_error(e: ValidationError) -> str:
    """A record's first schema violation: 'key.path: message'."""
    first = e.errors()[0]
    return f"{'.'.join(map(str, first['loc'])) or '(top level)'}: {first['msg']}"


def digest(path: Path) -> FileDigest:
    data = path.read_bytes()
    return FileDigest(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())


class RunLocked(RuntimeError):
    """Another live process holds the run."""


class RunDir:
    """The records of one run. Implements prunebench.session.Recorder."""

    def __init__(self, results: Path, spec: RunSpec | None, run_id: str | None = None) -> None:
        self.spec = spec
        self.run_id = spec.run_id if spec is not None else run_id
        self.path = Path(results) / self.run_id
        self._metrics = self.path / "metrics.jsonl"
        self._metrics_count: int | None = None

    @classmethod
    def at(cls, results: Path, run_id: str) -> RunDir:
        """A run directory known only by its id (status and lock queries; no spec needed)."""
        return cls(results, None, run_id)

    # ---- status
    def result(self) -> RunResult | None:
        """The run's result, or None unless result.json is there, valid, of this run, and its level
        files are the size it recorded (a cheap check; their digests are checked when read)."""
        try:
            return self.checked_result()
        except CorruptRecord:
            return None

    def checked_result(self) -> RunResult | None:
        """The run's result; None if there is none; CorruptRecord (path, reason) if it cannot be trusted."""
        path = self.path / "result.json"
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise CorruptRecord(path, f"unreadable ({e.strerror})") from None
        try:
            result = RunResult.model_validate_json(text)  # parsed and checked in one pass (a report reads thousands)
        except ValidationError as e:
            if e.errors()[0]["type"] == "json_invalid":
                raise CorruptRecord(path, "not valid JSON") from None
            raise CorruptRecord(path, _schema_error(e)) from None
        if result.run_id != self.run_id:
            raise CorruptRecord(path, f"holds run {result.run_id}, not {self.run_id}")
        folder = str(self.path)  # plain strings: a report checks thousands of level files
        for name, expected in result.files.items():
            size = _file_size(os.path.join(folder, name))
            if size != expected.bytes:
                raise CorruptRecord(self.path / name, "missing" if size is None else f"{size} bytes, result.json recorded {expected.bytes}")
        return result

    def failure(self) -> dict[str, Any] | None:
        return read_json(self.path / "failed.json")

    def corruption(self) -> str | None:
        """Why this run's result cannot be trusted (path: reason), or None."""
        try:
            self.checked_result()
        except CorruptRecord as e:
            return str(e)
        return None

    def status(self) -> str:
        """complete | corrupt (a result that cannot be trusted: redone) | failed | partial | pending."""
        try:
            if self.checked_result() is not None:
                return "complete"
        except CorruptRecord:
            return "corrupt"
        if self.failure() is not None:
            return "failed"
        if (self.path / "checkpoints" / "latest.pt").exists():
            return "partial"
        return "pending"

    # ---- lifecycle
    def start(self, provenance: dict[str, Any]) -> None:
        """A fresh start: spec and provenance, empty metrics, no masks of an earlier attempt."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path / "spec.json", {"run_id": self.spec.run_id, **self.spec.model_dump(mode="json")})
        atomic_write_json(self.path / "provenance.json", provenance)
        self._metrics.write_text("")
        self._metrics_count = 0
        for old in ("failed.json",):
            with contextlib.suppress(FileNotFoundError):
                (self.path / old).unlink()

    def resume(self, metrics_count: int, provenance: dict[str, Any]) -> None:
        """Continue from a checkpoint: drop metric lines written after it, note the resume. CorruptRecord
        if the lines the checkpoint counts on are not all there and valid (the run must then restart)."""
        lines = self._metrics.read_text().splitlines(keepends=True) if self._metrics.exists() else []
        if len(lines) < metrics_count:
            raise CorruptRecord(self._metrics, f"{len(lines)} lines, the checkpoint counts on {metrics_count}")
        for number, line in enumerate(lines[:metrics_count], 1):
            try:
                parse_row(json.loads(line))
            except (ValueError, ValidationError):
                raise CorruptRecord(self._metrics, f"line {number} is not a valid metrics row") from None
        atomic_write_bytes(self._metrics, "".join(lines[:metrics_count]).encode())
        self._metrics_count = metrics_count
        history = read_json(self.path / "provenance.json") or {}
        resumes = [*history.get("resumes", []), provenance]
        atomic_write_json(self.path / "provenance.json", {**history, "resumes": resumes})
        with contextlib.suppress(FileNotFoundError):
            (self.path / "failed.json").unlink()

    def complete(self, result: RunResult) -> None:
        """Write result.json, with the size and sha256 of every level file, so a corrupt one is noticed."""
        files = {f"{kind}/{p.name}": digest(p) for kind in LEVEL_FILES for p in sorted((self.path / kind).glob("level_*.pt"))}
        result = result.model_copy(update={"files": files})
        atomic_write_json(self.path / "result.json", result.model_dump(mode="json", exclude_none=True))

    def set_aside(self, what: str, reason: str) -> Path:
        """Rename a corrupt record out of the way (kept for inspection, never read again)."""
        path = self.path / what
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(path, aside)
        log.warning("%s; set aside as %s", reason, aside.name)
        return aside

    def fail(self, reason: str) -> None:
        atomic_write_json(self.path / "failed.json", {"run_id": self.run_id, "reason": reason, "time": time.time()})

    def update_provenance(self, **fields: Any) -> None:
        current = read_json(self.path / "provenance.json") or {}
        atomic_write_json(self.path / "provenance.json", {**current, **fields})

    # ---- Recorder
    def append_metrics(self, row: dict[str, Any]) -> None:
        with open(self._metrics, "a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
        self._metrics_count = self.metrics_count() + 1

    def metrics_count(self) -> int:
        if self._metrics_count is None:
            self._metrics_count = len(self.metrics())
        return self._metrics_count

    def metrics(self) -> list[dict[str, Any]]:
        """The metric rows; a torn last line (a kill in the middle of an append) is left out (a resume
        drops it; see ``resume``)."""
        if not self._metrics.exists():
            return []
        rows = []
        for line in self._metrics.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
        return rows

    def epochs(self) -> list[EpochRecord]:
        """The epoch rows of metrics.jsonl, typed (the level rows are not validated only to be dropped)."""
        return [EpochRecord.model_validate(r) for r in self.metrics() if r.get("kind") == "epoch"]

    def save_masks(self, level: int, packed: dict[str, Any]) -> None:
        atomic_torch_save(self.path / "masks" / f"level_{level:03d}.pt", packed)

    def load_masks(self, level: int) -> dict[str, Any]:
        return self.records().packed("masks", level)

    def records(self) -> RunRecords:
        """A complete run's level files, checked against the digests of its result.json."""
        result = self.checked_result()
        return RunRecords(self.path, result.files if result is not None else {})

    def save_signs(self, level: int, packed: dict[str, Any]) -> None:
        atomic_torch_save(self.path / "signs" / f"level_{level:03d}.pt", packed)

    def save_weights(self, name: str, state: dict[str, Any]) -> None:
        """A kept model state (spec.WeightPoint.file names it)."""
        atomic_torch_save(self.path / "weights" / f"{name}.pt", state)

    def has_weights(self, name: str) -> bool:
        return (self.path / "weights" / f"{name}.pt").is_file()

    def analysis(self, key: str) -> AnalysisRecord | None:
        """The analyses stored under ``key`` (prunebench.spec.AnalysesSpec.key), or None (an unreadable
        file counts as none: measured again)."""
        path = self.path / ANALYSES_DIR / f"{key}.json"
        try:
            return AnalysisRecord.model_validate_json(path.read_bytes())
        except (OSError, ValueError):
            return None

    def save_analysis(self, record: AnalysisRecord) -> None:
        atomic_write_json(self.path / ANALYSES_DIR / f"{record.key}.json", record.model_dump(mode="json"))

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        folder = self.path / "checkpoints"
        latest = folder / "latest.pt"
        if latest.exists():
            os.replace(latest, folder / "previous.pt")
        atomic_torch_save(latest, state)

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The newest readable checkpoint (latest, else previous), or None; an unreadable one is
        set aside, with a warning that says why."""
        for name in ("latest.pt", "previous.pt"):
            path = self.path / "checkpoints" / name
            if not path.exists():
                continue
            try:
                state = load_tensors(path)
            except CorruptRecord as e:
                self.set_aside(f"checkpoints/{name}", f"{e}; falling back to an older checkpoint or a fresh start")
                continue
            if isinstance(state, dict) and {"op", "metrics_count", "model"} <= state.keys():
                return state
            self.set_aside(f"checkpoints/{name}", f"{path}: not a checkpoint of this harness")
        return None

    def drop_checkpoints(self) -> None:
        for name in ("latest.pt", "previous.pt"):
            with contextlib.suppress(FileNotFoundError):
                (self.path / "checkpoints" / name).unlink()

    # ---- lock
    def is_locked(self) -> bool:
        """Whether a live process (or one on another host whose heartbeat is recent) holds the run now."""
        holder = read_json(self.path / "lock")
        if holder is None:
            return (self.path / "lock").exists() and _age(self.path / "lock") < 30
        return _alive(holder, _age(self.path / "lock"))

    def stale_lock(self) -> str | None:
        """Why the run's lock is stale (its holder died, or another host's heartbeat stopped), or None:
        ``bench run`` takes such a lock over."""
        lock = self.path / "lock"
        holder, age = read_json(lock), _age(lock)
        if holder is None or age == float("inf") or _alive(holder, age):
            return None
        where = f"pid {holder.get('pid')} on {holder.get('host')}"
        if holder.get("host") == socket.gethostname():
            return f"lock of {where}, which is not running"
        return f"lock of {where}, last heartbeat {_duration(age)} ago (timeout {_duration(lock_timeout_s())})"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive ownership of the run by this process; a stale lock is taken over.

        The lock file says who holds the run (pid, host), and its mtime is a heartbeat, refreshed every
        HEARTBEAT_S while the run is held. A holder on this host is alive while its pid is; one on
        another host (shared storage) while its heartbeat is younger than ``lock_timeout_s()``: a dead
        node's lock is taken over after that, never a live process's. Taking a lock, and taking over a
        stale one, happen under an flock of ``lock.guard`` (released by the kernel when its process
        dies), so two processes that both find a stale lock cannot both take the run: the second sees
        the first's fresh lock."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = self.path / "lock"
        me = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}
        with _flocked(self.path / "lock.guard"):
            holder = read_json(lock)
            if holder is not None and _alive(holder, _age(lock)):
                raise RunLocked(f"run {self.run_id} is held by pid {holder.get('pid')} on {holder.get('host')}")
            if lock.exists():  # a stale lock, or an unreadable one (its writer died under the guard)
                lock.unlink()
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
        stop = threading.Event()
        beat = threading.Thread(target=_heartbeat, args=(lock, stop), name=f"heartbeat-{self.run_id}", daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join()
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()


HEARTBEAT_S = 30.0


def lock_timeout_s() -> float:
    """How old another host's heartbeat may be before its lock is stale: $BENCH_LOCK_TIMEOUT seconds,
    default 600 (twenty missed heartbeats; raise it for storage whose clocks or caches lag)."""
    try:
        return max(float(os.environ.get("BENCH_LOCK_TIMEOUT", 600)), 2 * HEARTBEAT_S)
    except ValueError:
        return 600.0


def _heartbeat(lock: Path, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        with contextlib.suppress(OSError):
            os.utime(lock)


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{int(seconds % 60):02d}s"


@contextlib.contextmanager
def _flocked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_CREAT | os.O_RDWR, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _alive(holder: dict[str, Any], heartbeat_age: float) -> bool:
    """Whether a lock's holder still runs: on this host, whether its pid does; on another, whether
    its heartbeat is recent."""
    if holder.get("host") != socket.gethostname():
        return heartbeat_age < lock_timeout_s()
    try:
        os.kill(int(holder["pid"]), 0)
    except (KeyError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


class RunRecords:
    """Read-only access to a finished run's level records (for runs that consume another's masks or
    signs, and for reports). Each file is checked against the digest result.json recorded for it."""

    def __init__(self, path: Path, digests: dict[str, FileDigest] | None = None) -> None:
        self.path = Path(path)
        self.digests = dict(digests or {})

    def packed(self, kind: str, level: int | str) -> dict[str, Any]:
        """A level file: ``kind``/level_NNN.pt, or ``kind``/``level``.pt when ``level`` is a file name."""
        name = f"{kind}/level_{level:03d}.pt" if isinstance(level, int) else f"{kind}/{level}.pt"
        path = self.path / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no {kind} recorded for " + (f"level {level}" if isinstance(level, int) else level))
        expected = self.digests.get(name)
        if expected is not None and digest(path) != expected:
            raise CorruptRecord(path, "its sha256 differs from the one result.json recorded")
        packed = load_tensors(path)
        if not isinstance(packed, dict):
            raise CorruptRecord(path, f"holds a {type(packed).__name__}, not packed {kind}")
        return packed

    def masks(self, level: int) -> dict[str, torch.Tensor]:
        from prunebench.masks import unpack

        return unpack(self.packed("masks", level))

    def signs(self, level: int) -> dict[str, torch.Tensor]:
        """True where the producer's weight was negative at the end of that level."""
        from prunebench.masks import unpack

        return unpack(self.packed("signs", level))

    def weights(self, point: WeightPoint) -> dict[str, torch.Tensor]:
        """The model state the producer kept at ``point`` (a level given as a number)."""
        if point.level == "every":
            raise ValueError(f"{point}: name one level")
        return self.packed("weights", point.file(point.level))


class SuiteClash(ValueError):
    """Another suite's record already goes by this name in the results directory."""


class ResolvedSuite(BaseModel):
    """suites/<name>.json: a suite's resolved runs and what reports need of it."""

    model_config = ConfigDict(extra="allow")

    name: FileName  # it names files of reports: never a path
    source: str | None = None
    runs: list[dict[str, Any]]


def save_resolved_suite(results: Path, name: str, specs: Sequence[RunSpec], meta: dict[str, Any]) -> Path:
    """Write the suite's resolved runs beside the records, so reports can be rebuilt from DIR alone.

    Unchanged content is not rewritten (a read-only directory of finished runs still reports). A
    record of the same name from another suite file is replaced only if every run it lists is among
    the new runs; otherwise SuiteClash, as the other suite's runs would vanish from report and status."""
    path = Path(results) / SUITES_DIR / f"{name}.json"
    record = {**meta, "name": name, "runs": [{"run_id": s.run_id, **s.model_dump(mode="json")} for s in specs]}
    text = json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"
    try:
        current = path.read_text()
    except FileNotFoundError:
        current = None
    if current == text:
        return path
    ResolvedSuite.model_validate(record)  # a name that is not a plain file name never reaches the disk
    old = read_json(path) if current is not None else None
    if isinstance(old, dict) and old.get("source") and meta.get("source") and \
            Path(old["source"]).resolve() != Path(meta["source"]).resolve():
        missing = {r.get("run_id") for r in old.get("runs", []) if isinstance(r, dict)} - {s.run_id for s in specs}
        if missing:
            raise SuiteClash(f"{path} already records suite {name!r} from {old['source']} ({len(missing)} of its runs are "
                             f"not in {meta['source']}): give this suite another `name:`, or use another --results")
    atomic_write_bytes(path, text.encode())
    return path


def load_resolved_suites(results: Path) -> list[dict[str, Any]]:
    """The resolved suites of a results directory, in name order: ``runs`` as RunSpecs, and
    ``stale_run_ids``, how many were recorded under another id (code of another PROTOCOL_VERSION).
    A corrupt record is left out with a warning naming it and why."""
    out = []
    for path in sorted((Path(results) / SUITES_DIR).glob("*.json")):
        try:
            suite = _resolved_suite(path)
        except CorruptRecord as e:
            log.warning("%s; its suite is left out", e)
            continue
        specs = suite["runs"]
        stale = sum(r.get("run_id") != s.run_id for r, s in zip(suite["raw_runs"], specs))
        out.append({**{k: v for k, v in suite.items() if k != "raw_runs"}, "stale_run_ids": stale})
    return out


def _resolved_suite(path: Path) -> dict[str, Any]:
    raw = read_json(path)
    if raw is None:
        raise CorruptRecord(path, "not valid JSON")
    try:
        suite = ResolvedSuite.model_validate(raw)
        parts = _SharedParts()
        specs = [RunSpec.model_validate(parts.validated({k: v for k, v in r.items() if k != "run_id"})) for r in suite.runs]
    except ValidationError as e:
        raise CorruptRecord(path, _schema_error(e)) from None
    return {**raw, "runs": specs, "raw_runs": suite.runs}


class _SharedParts:
    """The runs of a suite repeat a few data / model / train / prune blocks: each distinct one is
    validated once and its model shared by the specs (frozen, so sharing is safe; a report of 2,000
    runs spent 0.25 s validating the same blocks again, and then 0.3 s keying them with json.dumps)."""

    MODELS: dict[str, type[BaseModel]] = {"data": DataSpec, "model": ModelSpec, "train": TrainSpec, "prune": PruneSpec}

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], BaseModel] = {}

    def validated(self, run: dict[str, Any]) -> dict[str, Any]:
        """``run`` with its blocks replaced by their models; an invalid block is left for RunSpec to
        report (with its full path)."""
        for name, model in self.MODELS.items():
            block = run.get(name)
            if not isinstance(block, dict):
                continue
            key = (name, pydantic_core.to_json(block))  # the file's key order (written sorted): a fast, exact key
            if key not in self._seen:
                try:
                    self._seen[key] = model.model_validate(block)
                except ValidationError:
                    continue
            run[name] = self._seen[key]
        return run
