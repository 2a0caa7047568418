"""Run records: one directory per run, named by the hash of its protocol.

    RESULTS/<run_id>/spec.json          the resolved RunSpec (written first)
                    provenance.json     code version, packages, device, threads, timings
                    metrics.jsonl       one line per epoch and per level (append-only)
                    masks/level_NNN.pt  bit-packed mask at the end of each level
                    checkpoints/latest.pt (+ previous.pt) full state to resume mid-level
                    result.json         written last, atomically: its presence means complete
                    failed.json         the reason, when the run failed
                    lock                held while a process executes the run
    RESULTS/suites/<name>.json          the resolved suite, so reports need nothing else

Every file is replaced atomically (write to a temporary file, then rename), so a kill at any
moment leaves either the old or the new version, never a torn one.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from prunebench.records import EpochRecord, RunResult, parse_row
from prunebench.spec import RunSpec

SUITES_DIR = "suites"


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
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


def read_json(path: Path) -> Any | None:
    """The parsed file, or None if it is missing or unreadable (a torn or corrupt record)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


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
        """The run's result, or None unless result.json is there, valid and of this run."""
        raw = read_json(self.path / "result.json")
        if not isinstance(raw, dict) or raw.get("run_id") != self.run_id:
            return None
        try:
            return RunResult.model_validate(raw)
        except ValidationError:
            return None

    def failure(self) -> dict[str, Any] | None:
        return read_json(self.path / "failed.json")

    def status(self) -> str:
        if self.result() is not None:
            return "complete"
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
        """Continue from a checkpoint: drop metric lines written after it, note the resume."""
        lines = self._metrics.read_text().splitlines(keepends=True) if self._metrics.exists() else []
        if len(lines) < metrics_count:
            raise RuntimeError(f"{self._metrics} has {len(lines)} lines but the checkpoint expects {metrics_count}")
        atomic_write_bytes(self._metrics, "".join(lines[:metrics_count]).encode())
        self._metrics_count = metrics_count
        history = read_json(self.path / "provenance.json") or {}
        resumes = [*history.get("resumes", []), provenance]
        atomic_write_json(self.path / "provenance.json", {**history, "resumes": resumes})
        with contextlib.suppress(FileNotFoundError):
            (self.path / "failed.json").unlink()

    def complete(self, result: RunResult) -> None:
        atomic_write_json(self.path / "result.json", result.model_dump(mode="json", exclude_none=True))

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
        """The metric rows; a torn last line (a kill in the middle of an append) is left out."""
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
        """The epoch rows of metrics.jsonl, typed."""
        return [r for r in map(parse_row, self.metrics()) if isinstance(r, EpochRecord)]

    def save_masks(self, level: int, packed: dict[str, Any]) -> None:
        atomic_torch_save(self.path / "masks" / f"level_{level:03d}.pt", packed)

    def load_masks(self, level: int) -> dict[str, Any]:
        return self.records().packed("masks", level)

    def records(self) -> RunRecords:
        return RunRecords(self.path)

    def save_signs(self, level: int, packed: dict[str, Any]) -> None:
        atomic_torch_save(self.path / "signs" / f"level_{level:03d}.pt", packed)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        folder = self.path / "checkpoints"
        latest = folder / "latest.pt"
        if latest.exists():
            os.replace(latest, folder / "previous.pt")
        atomic_torch_save(latest, state)

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The newest readable checkpoint (latest, else previous), or None."""
        for name in ("latest.pt", "previous.pt"):
            path = self.path / "checkpoints" / name
            if not path.exists():
                continue
            try:
                return torch.load(path, weights_only=True, map_location="cpu")
            except Exception:  # noqa: BLE001 - a torn or corrupt file: fall back to the older one
                continue
        return None

    def drop_checkpoints(self) -> None:
        for name in ("latest.pt", "previous.pt"):
            with contextlib.suppress(FileNotFoundError):
                (self.path / "checkpoints" / name).unlink()

    # ---- lock
    def is_locked(self) -> bool:
        """Whether a live process (or one on another host) holds the run now."""
        holder = read_json(self.path / "lock")
        if holder is None:
            return (self.path / "lock").exists() and _age(self.path / "lock") < 30
        return _alive(holder)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive ownership of the run by this process; a lock left by a dead process is taken over."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = self.path / "lock"
        me = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                holder = read_json(lock)
                if holder is None and _age(lock) < 30:  # being written by its creator right now
                    raise RunLocked(f"run {self.run_id} is being taken by another process") from None
                if holder is not None and _alive(holder):
                    raise RunLocked(f"run {self.run_id} is held by pid {holder.get('pid')} on {holder.get('host')}") from None
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            try:
                yield
            finally:
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
            return
        raise RunLocked(f"could not take the lock of run {self.run_id}")


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _alive(holder: dict[str, Any]) -> bool:
    """Whether a lock's holder still runs (only decidable on the same host; elsewhere assume yes)."""
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder["pid"]), 0)
    except (KeyError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


class RunRecords:
    """Read-only access to a finished run's level records (for runs that consume another's masks or signs)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def packed(self, kind: str, level: int) -> dict[str, Any]:
        path = self.path / kind / f"level_{level:03d}.pt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no {kind} recorded for level {level}")
        return torch.load(path, weights_only=True)

    def masks(self, level: int) -> dict[str, torch.Tensor]:
        from prunebench.masks import unpack

        return unpack(self.packed("masks", level))

    def signs(self, level: int) -> dict[str, torch.Tensor]:
        """True where the producer's weight was negative at the end of that level."""
        from prunebench.masks import unpack

        return unpack(self.packed("signs", level))


def save_resolved_suite(results: Path, name: str, specs: Sequence[RunSpec], meta: dict[str, Any]) -> Path:
    """Write the suite's resolved runs beside the records, so reports can be rebuilt from DIR alone."""
    path = Path(results) / SUITES_DIR / f"{name}.json"
    atomic_write_json(path, {**meta, "name": name, "runs": [{"run_id": s.run_id, **s.model_dump(mode="json")} for s in specs]})
    return path


def load_resolved_suites(results: Path) -> list[dict[str, Any]]:
    """The resolved suites of a results directory, in name order: ``runs`` as RunSpecs, and
    ``stale_run_ids``, how many were recorded under another id (code of another PROTOCOL_VERSION)."""
    out = []
    for path in sorted((Path(results) / SUITES_DIR).glob("*.json")):
        suite = read_json(path)
        if not suite:
            continue
        specs = [RunSpec.model_validate({k: v for k, v in r.items() if k != "run_id"}) for r in suite["runs"]]
        stale = sum(r.get("run_id") != s.run_id for r, s in zip(suite["runs"], specs))
        out.append({**suite, "runs": specs, "stale_run_ids": stale})
    return out
