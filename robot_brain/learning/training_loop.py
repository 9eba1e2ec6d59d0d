"""The training loop: batches, AdamW steps, interrupts, checkpoints, DistributedDataParallel ranks.

Resumable to the bit: batches (and image shifts) are drawn from one seeded ``torch.Generator``
whose state is checkpointed with the model, the optimiser, the step and the loss history;
the learning rate is a function of the step. A run stopped (SIGINT/SIGTERM: the current step
finishes, the checkpoint is written atomically) and resumed therefore takes exactly the steps
an uninterrupted run takes. With several ranks the global batch is drawn from that generator
on every rank and each rank takes its slice: DDP's averaged gradient is the single-process
gradient up to float summation order, and the ranks agree at every step (one all-reduce of
the loss and of the stop flag) on when to stop.
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robot_brain.learning.policies import build_policy
from robot_brain.learning.training_config import OutputPaths, PreparedData, TrainConfig, TrainingError
from robot_brain.learning.training_progress import ProgressBar
from robot_brain.storage.files import atomic_write_bytes

CHECKPOINT_FORMAT = "robot_brain.training_checkpoint/1"


# --------------------------------------------------------------------------------------------
# Interrupts
# --------------------------------------------------------------------------------------------


class StopRequest:
    """Set by SIGINT/SIGTERM: the loop finishes the current step, checkpoints and stops.

    In the main process a second Ctrl-C raises ``KeyboardInterrupt`` (the last periodic
    checkpoint stays valid: checkpoints are written atomically) and the first one says what
    happens; spawned ranks (``primary=False``) only set the flag, quietly: a terminal's Ctrl-C
    reaches them as well as the parent, which forwards it too.
    """

    def __init__(self) -> None:
        self.requested = False
        self.count = 0
        self.primary = True

    def handle(self, signum: int, _frame: Any) -> None:
        self.count += 1
        self.requested = True
        if not self.primary:
            return
        if self.count >= 2 and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.count == 1:
            name = signal.Signals(signum).name
            print(f"\n{name}: finishing this step and saving a checkpoint (again to abort)", file=sys.stderr)

    @contextmanager
    def installed(self, primary: bool = True) -> Iterator[StopRequest]:
        self.primary = primary
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, self.handle)
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


@dataclass
class LoopState:
    """Everything a resumed run needs to continue exactly where the last one stopped."""

    step: int = 0
    losses: list[float] = field(default_factory=list)
    validation: list[tuple[int, float, float]] = field(default_factory=list)
    """(step, held-out loss, mean waypoint position error in mm)."""
    elapsed_s: float = 0.0
    session_rate: float = math.nan
    """Steps per second of the last session, from the end of its first step (lazy imports, warm-up) to its end."""
    model_state: dict[str, torch.Tensor] | None = None
    optimizer_state: dict[str, Any] | None = None
    generator_state: torch.Tensor | None = None


def save_checkpoint(path: Path, state: LoopState, fingerprint: Mapping[str, Any]) -> None:
    """Write ``path`` atomically (temporary file in the same folder, fsync, rename)."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "fingerprint": json.dumps(fingerprint, sort_keys=True),
        "step": state.step,
        "losses": torch.tensor(state.losses, dtype=torch.float64),
        "validation": torch.tensor(state.validation, dtype=torch.float64).reshape(-1, 3),
        "elapsed_s": float(state.elapsed_s),
        "session_rate": float(state.session_rate),
        "model": state.model_state,
        "optimizer": state.optimizer_state,
        "generator": state.generator_state,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as handle:
        temporary = Path(handle.name)
    try:
        torch.save(payload, temporary)
        atomic_write_bytes(path, temporary.read_bytes())
    finally:
        temporary.unlink(missing_ok=True)


def load_checkpoint(path: Path | io.BytesIO, fingerprint: Mapping[str, Any] | None = None) -> LoopState:
    """Read a checkpoint, a file or its bytes (weights only: no code is unpickled); with ``fingerprint``,
    refuse one of another run."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise TrainingError(f"{path}: expected a checkpoint to resume from, found none") from None
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise TrainingError(f"{path}: expected a training checkpoint, found an unreadable file ({error})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{path}: expected a {CHECKPOINT_FORMAT} checkpoint, found something else")
    if fingerprint is not None:
        saved = json.loads(payload["fingerprint"])
        wanted = json.loads(json.dumps(fingerprint, sort_keys=True))
        if saved != wanted:
            raise TrainingError(f"{path}: cannot resume: {_fingerprint_difference(saved, wanted)}")
    validation = payload["validation"].tolist()
    return LoopState(
        step=int(payload["step"]),
        losses=payload["losses"].tolist(),
        validation=[(int(s), float(loss), float(mm)) for s, loss, mm in validation],
        elapsed_s=float(payload["elapsed_s"]),
        session_rate=float(payload.get("session_rate", math.nan)),
        model_state=payload["model"],
        optimizer_state=payload["optimizer"],
        generator_state=payload["generator"],
    )


def _fingerprint_difference(saved: Mapping[str, Any], wanted: Mapping[str, Any]) -> str:
    """One line: what differs between the checkpoint's run and this one."""
    if saved.get("config") != wanted.get("config"):
        old, new = saved.get("config", {}), wanted.get("config", {})
        keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        return "settings differ from the interrupted run: " + ", ".join(
            f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys
        )
    if saved.get("datasets") != wanted.get("datasets"):
        return "the datasets (content hashes) differ from the interrupted run's"
    if saved.get("episodes") != wanted.get("episodes"):
        lost = len([e for e in saved.get("episodes", []) if e not in wanted.get("episodes", [])])
        return (
            f"the consented episodes changed since the run started ({lost} no longer allowed, e.g. consent revoked): "
            "start over without --resume"
        )
    if saved.get("torch") != wanted.get("torch"):
        return f"torch {saved.get('torch')} trained it, this is torch {wanted.get('torch')}"
    return "the held-out split differs from the interrupted run's"


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to 10 % of ``lr`` at the last step."""
    warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    progress = step / max(1, config.steps)
    return config.lr * warm * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def new_model(data: PreparedData, config: TrainConfig) -> nn.Module:
    torch.manual_seed(config.seed)
    return build_policy(
        config.policy,
        config.horizon,
        data.constants,
        image_size=config.image_size,
        use_target=config.use_target,
        hidden=config.hidden,
    )


def normalise_images(raw: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, 3, S, S)`` → the image spec's ``(x / 255 - mean) / std`` (``mean``, ``std``: ``(1, 3, 1, 1)``)."""
    return (raw.to(torch.float32) * (1.0 / 255.0) - mean) / std


class Batches:
    """Model inputs for sample indices: images normalised (and shifted when training), the rest as stored."""

    def __init__(self, data: PreparedData, config: TrainConfig, device: torch.device) -> None:
        self.names = data.input_names
        self.device = device
        self.shift = config.augment_shift if config.policy == "visuomotor" else 0
        if data.image_mean is not None and data.image_std is not None:
            self.image_mean = torch.tensor(data.image_mean, dtype=torch.float32, device=device).reshape(1, 3, 1, 1)
            self.image_std = torch.tensor(data.image_std, dtype=torch.float32, device=device).reshape(1, 3, 1, 1)

    def images(self, raw: torch.Tensor) -> torch.Tensor:
        return normalise_images(raw.to(self.device), self.image_mean, self.image_std)

    def inputs(
        self, tensors: Mapping[str, torch.Tensor], indices: torch.Tensor, offsets: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        result = []
        for name in self.names:
            if name == "image":
                images = self.images(tensors["images"][indices])
                if offsets is not None and self.shift:
                    images = _shift(images, offsets, self.shift)
                result.append(images)
            else:
                result.append(tensors[name][indices].to(self.device))
        return result


def _shift(images: torch.Tensor, offsets: torch.Tensor, pad: int) -> torch.Tensor:
    """Random translation by up to ``pad`` pixels: replicate-pad, then crop each sample at its offset."""
    size = images.shape[-1]
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad), mode="replicate")
    crops = [padded[i, :, int(y) : int(y) + size, int(x) : int(x) + size] for i, (y, x) in enumerate(offsets.tolist())]
    return torch.stack(crops)


def evaluate(
    model: nn.Module, data: PreparedData, batches: Batches, tensors: Mapping[str, torch.Tensor]
) -> tuple[float, float]:
    """Mean MSE (normalised) and mean waypoint position error (mm) over ``tensors``' frames."""
    count = len(tensors["labels"])
    if count == 0:
        return math.nan, math.nan
    squared = 0.0
    position_error = 0.0
    std = torch.tensor(data.label_std[:3], dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        for start in range(0, count, 1024):
            indices = torch.arange(start, min(count, start + 1024))
            predicted = model(*batches.inputs(tensors, indices)).cpu()
            labels = tensors["labels"][indices]
            squared += float(torch.sum((predicted - labels) ** 2)) / labels[0].numel()
            distance = torch.linalg.norm((predicted[..., :3] - labels[..., :3]) * std, dim=-1)
            position_error += float(distance.mean(dim=1).sum())
    model.train()
    return squared / count, 1000.0 * position_error / count


@dataclass(frozen=True)
class Rank:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def rank_device(config: TrainConfig, rank: Rank) -> torch.device:
    """This rank's device: its GPU under CUDA (where NCCL's collectives take their tensors), else the CPU."""
    return torch.device(f"cuda:{rank.local_rank}") if config.device == "cuda" else torch.device("cpu")


def run_loop(
    data: PreparedData,
    config: TrainConfig,
    paths: OutputPaths,
    resume: LoopState | None,
    stop: StopRequest,
    rank: Rank = Rank(),
    progress: ProgressBar | None = None,
) -> LoopState:
    """Train from ``resume`` (or from scratch) until ``config.steps`` or a stop request; checkpoints on rank 0.

    Every rank returns the same state; only rank 0 writes the checkpoint, which holds the final
    (or interrupted) weights.
    """
    torch.set_num_threads(config.threads)
    trainer = _new_trainer(data, config, resume, rank)
    state = resume or LoopState()
    eval_every = config.eval_every or max(1, config.steps // 20)
    last_checkpoint = time.monotonic()
    clock = _SessionClock(start=time.monotonic(), elapsed_before=state.elapsed_s)

    trainer.model.train()
    while state.step < config.steps:
        report = _train_step(trainer, config, state.step, rank, stop)
        state.step += 1
        if clock.first_step is None:
            clock.first_step = (time.monotonic(), state.step)
        step_loss = float(report[0]) / rank.world
        state.losses.append(step_loss)
        stop_now = float(report[1]) > 0.0
        if rank.main and (state.step % eval_every == 0 or state.step == config.steps):
            _record_validation(state, data, trainer)
        if progress is not None:
            _show_progress(progress, state, step_loss)
        if stop_now:
            break
        if rank.main and time.monotonic() - last_checkpoint >= config.checkpoint_every_s:
            save_checkpoint(paths.checkpoint, _snapshot(state, trainer, clock), data.fingerprint)
            last_checkpoint = time.monotonic()
    final = _snapshot(state, trainer, clock)
    if rank.main:
        save_checkpoint(paths.checkpoint, final, data.fingerprint)
    return final


@dataclass
class _Trainer:
    """One rank's model (and its DDP wrapper), optimiser, batch generator and training tensors."""

    model: nn.Module
    trained: nn.Module
    """``model``, wrapped in DistributedDataParallel when there are several ranks."""
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    device: torch.device
    train: dict[str, torch.Tensor]
    batches: Batches
    count: int


def _new_trainer(data: PreparedData, config: TrainConfig, resume: LoopState | None, rank: Rank) -> _Trainer:
    """The seeded model, optimiser and generator (restored from ``resume``), wrapped for DDP, with their data."""
    device = rank_device(config, rank)
    model = new_model(data, config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    if resume is not None:
        assert resume.model_state is not None and resume.optimizer_state is not None
        model.load_state_dict(resume.model_state)
        optimizer.load_state_dict(resume.optimizer_state)
        assert resume.generator_state is not None
        generator.set_state(resume.generator_state)
    trained: nn.Module = model
    if rank.world > 1:
        trained = nn.parallel.DistributedDataParallel(
            model, device_ids=[rank.local_rank] if device.type == "cuda" else None
        )
    train = {key: value.to(device) if key != "images" else value for key, value in data.train.items()}
    batches = Batches(data, config, device)
    count = len(train["labels"])
    if count < config.batch_size // 4:
        raise TrainingError(
            f"expected at least {config.batch_size // 4} training frames for batch {config.batch_size}, found {count}"
        )
    return _Trainer(model, trained, optimizer, generator, device, train, batches, count)


@dataclass
class _SessionClock:
    """This session's timing: when it started, the training time before it, and when its first step ended."""

    start: float
    elapsed_before: float
    first_step: tuple[float, int] | None = None
    """(monotonic time, step) at the end of this session's first step."""


def _train_step(trainer: _Trainer, config: TrainConfig, step: int, rank: Rank, stop: StopRequest) -> torch.Tensor:
    """One optimiser step on this rank's slice of the global batch; the all-reduced ``[loss, stop flag]``."""
    local = config.batch_size // rank.world
    indices = torch.randint(0, trainer.count, (config.batch_size,), generator=trainer.generator)
    offsets = None
    if trainer.batches.shift:
        offsets = torch.randint(0, 2 * trainer.batches.shift + 1, (config.batch_size, 2), generator=trainer.generator)
    mine = slice(rank.rank * local, (rank.rank + 1) * local)
    inputs = trainer.batches.inputs(trainer.train, indices[mine], offsets[mine] if offsets is not None else None)
    labels = trainer.train["labels"][indices[mine].to(trainer.device)]
    for group in trainer.optimizer.param_groups:
        group["lr"] = learning_rate(config, step)
    loss = torch.mean((trainer.trained(*inputs) - labels) ** 2)
    trainer.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    trainer.optimizer.step()
    report = torch.tensor([float(loss.detach()), 1.0 if stop.requested else 0.0], dtype=torch.float64)
    if rank.world > 1:
        report = report.to(trainer.device)
        torch.distributed.all_reduce(report)
        report = report.cpu()
    return report


def _record_validation(state: LoopState, data: PreparedData, trainer: _Trainer) -> None:
    """Evaluate on the held-out frames (training frames when none) and append to ``state.validation``."""
    validation = data.validation if len(data.validation["labels"]) else data.train
    held_loss, held_mm = evaluate(trainer.model, data, trainer.batches, validation)
    state.validation.append((state.step, held_loss, held_mm))


def _show_progress(progress: ProgressBar, state: LoopState, step_loss: float) -> None:
    """Update the progress bar with the step's loss and the last held-out numbers."""
    last = state.validation[-1] if state.validation else None
    extra = f"held-out {last[1]:.4g} ({last[2]:.1f} mm)" if last else ""
    progress.update(state.step, step_loss, extra)


def _snapshot(state: LoopState, trainer: _Trainer, clock: _SessionClock) -> LoopState:
    """A detached CPU copy of the loop's state (weights, optimiser, generator, timing) for a checkpoint."""
    now = time.monotonic()
    rate = math.nan
    first_step = clock.first_step
    if first_step is not None and state.step > first_step[1] and now > first_step[0]:
        rate = (state.step - first_step[1]) / (now - first_step[0])
    return LoopState(
        step=state.step,
        losses=list(state.losses),
        validation=list(state.validation),
        elapsed_s=clock.elapsed_before + now - clock.start,
        session_rate=rate,
        model_state={k: v.detach().cpu().clone() for k, v in trainer.model.state_dict().items()},
        optimizer_state=_cpu(trainer.optimizer.state_dict()),
        generator_state=trainer.generator.get_state(),
    )


def _cpu(value: Any) -> Any:
    """A state dict with every tensor copied to the CPU (checkpoints load anywhere)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, dict):
        return {k: _cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cpu(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# Distributed: torch.multiprocessing ranks on one host, or torchrun across hosts
# --------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _backend(config: TrainConfig) -> str:
    return "nccl" if config.device == "cuda" else "gloo"


def _spawned_rank(
    index: int,
    world: int,
    init_method: str,
    data: PreparedData,
    config: TrainConfig,
    paths: OutputPaths,
    resume_path: str | None,
    result_path: str,
) -> None:
    """One rank started by :func:`run_spawned` (module level: ``spawn`` imports it by name)."""
    rank = Rank(index, world, index)
    stop = StopRequest()
    with stop.installed(primary=False):
        if config.device == "cuda":
            torch.cuda.set_device(index)
        torch.distributed.init_process_group(_backend(config), init_method=init_method, rank=index, world_size=world)
        try:
            resume = load_checkpoint(Path(resume_path)) if resume_path else None
            progress = ProgressBar(config.steps, resume.step if resume else 0) if rank.main else None
            state = run_loop(data, config, paths, resume, stop, rank, progress)
            if progress is not None:
                progress.close()
            if rank.main:
                Path(result_path).write_text(json.dumps({"step": state.step}), encoding="utf-8")
        finally:
            torch.distributed.destroy_process_group()


def run_spawned(data: PreparedData, config: TrainConfig, paths: OutputPaths, resume: bool, stop: StopRequest) -> int:
    """Run ``config.nproc`` ranks on this host; forwards a stop request to them; returns the last step."""
    import torch.multiprocessing as mp

    init_method = f"tcp://127.0.0.1:{_free_port()}"
    with tempfile.TemporaryDirectory(prefix="robot_brain_ddp_") as folder:
        result_path = os.path.join(folder, "result.json")
        context = mp.start_processes(
            _spawned_rank,
            args=(
                config.nproc,
                init_method,
                data.share_memory(),
                config,
                paths,
                str(paths.checkpoint) if resume else None,
                result_path,
            ),
            nprocs=config.nproc,
            join=False,
            start_method="spawn",
        )
        forwarded = False
        try:
            while not context.join(timeout=0.2):
                if stop.requested and not forwarded:
                    forwarded = True
                    for process in context.processes:
                        if process.pid is not None and process.is_alive():
                            os.kill(process.pid, signal.SIGINT)
        except mp.ProcessRaisedException as error:
            first = str(error).strip().splitlines()[-1] if str(error).strip() else "a rank failed"
            raise TrainingError(f"distributed training failed: {first}") from None
        except mp.ProcessExitedException as error:
            raise TrainingError(f"distributed training failed: a rank exited with status {error.exit_code}") from None
        except KeyboardInterrupt:
            for process in context.processes:
                if process.is_alive():
                    process.terminate()
            raise
        return int(json.loads(Path(result_path).read_text(encoding="utf-8"))["step"])


def torchrun_rank() -> Rank | None:
    """This process's rank when started by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment), else None."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return None
    return Rank(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


@contextmanager
def process_group(config: TrainConfig, rank: Rank) -> Iterator[None]:
    """The ``torchrun`` process group (``env://``: MASTER_ADDR/PORT, RANK, WORLD_SIZE from torchrun)."""
    if config.device == "cuda":
        torch.cuda.set_device(rank.local_rank)
    torch.distributed.init_process_group(_backend(config), init_method="env://")
    try:
        yield
    finally:
        torch.distributed.destroy_process_group()


def broadcast_bytes(data: bytes | None, rank: Rank, device: torch.device) -> bytes:
    """Rank 0's ``data`` on every rank, as raw bytes in two tensor broadcasts (its length, then the bytes).

    Nothing is unpickled: ``broadcast_object_list`` pickles, and a peer that can reach the
    rendezvous could make every rank run code of its choosing.
    """
    length = torch.tensor([len(data) if rank.main and data is not None else 0], dtype=torch.int64, device=device)
    torch.distributed.broadcast(length, src=0)
    if rank.main:
        assert data is not None
        buffer = torch.frombuffer(bytearray(data), dtype=torch.uint8).to(device) if data else torch.empty(
            0, dtype=torch.uint8, device=device)
    else:
        buffer = torch.empty(int(length.item()), dtype=torch.uint8, device=device)
    torch.distributed.broadcast(buffer, src=0)
    return bytes(buffer.cpu().numpy().tobytes())


def broadcast_json(value: Any, rank: Rank, device: torch.device) -> Any:
    """Rank 0's JSON-able ``value`` on every rank (the consent decisions), as JSON text, never a pickle."""
    data = json.dumps(value, sort_keys=True).encode("utf-8") if rank.main else None
    return json.loads(broadcast_bytes(data, rank, device).decode("utf-8"))


def broadcast_checkpoint(path: Path | None, rank: Rank, device: torch.device,
                         fingerprint: Mapping[str, Any]) -> LoopState:
    """Rank 0's checkpoint file on every rank, read back with ``torch.load(weights_only=True)``."""
    data = path.read_bytes() if rank.main and path is not None else None
    return load_checkpoint(io.BytesIO(broadcast_bytes(data, rank, device)), fingerprint)



def run_ranked(
    data: PreparedData, config: TrainConfig, paths: OutputPaths, resume: LoopState | None, stop: StopRequest, rank: Rank
) -> LoopState:
    """This ``torchrun`` rank's share of the training (inside :func:`process_group`); rank 0 checkpoints."""
    progress = ProgressBar(config.steps, resume.step if resume else 0) if rank.main else None
    try:
        state = run_loop(data, config, paths, resume, stop, rank, progress)
    finally:
        if progress is not None:
            progress.close()
    torch.distributed.barrier()
    return state
