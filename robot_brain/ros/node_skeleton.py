"""The one node skeleton every robot_brain node is built on: lifecycle, supervised workers, signals that brake first.

Why one skeleton: our nodes have threads (inference, frame worker, physics, rendering, the
control loop, recording), and rclpy's defaults get shutdown wrong for them. Its signal
handler shuts the context down the moment SIGINT arrives, while worker threads still run:
their next publish fails ("publisher's context is invalid"), and the arm controller never
gets to publish its braking commands. ``ros2 launch`` and a terminal's Ctrl-C can also
deliver SIGINT twice, and a ``KeyboardInterrupt`` raised inside ``thread.join`` leaves a
traceback and a half-stopped node. Each node copying the fix would get it wrong somewhere, so
it lives here once:

* :func:`run_node` starts rclpy with its signal handling off and installs its own
  (:class:`ShutdownRequest`): SIGINT or SIGTERM only *requests* a stop. The node brakes
  first (:meth:`BrainNode.begin_stopping`, immediately), then deactivates (workers stopped
  and joined, the controller at rest with its halt published) and shuts down through its
  lifecycle, and only then is the context shut down. Further signals while that runs are
  counted, not obeyed: braking is never cut short by an impatient second Ctrl-C. The
  process exits 0 with no traceback.
* Workers (:meth:`BrainNode.start_worker`) are supervised threads: each has its own stop
  event and is joined on deactivation; one that raises reports a *fault*. So does an
  exception escaping a subscription or timer callback. A fault (:meth:`BrainNode.report_fault`)
  is one clear log line, a diagnostics ERROR, braking, and the lifecycle's error path:
  ``deactivate`` runs and answers ERROR, ``on_error`` tears down, and the node rests in
  ``unconfigured`` until someone configures it again. Bad *input* (a malformed frame, a
  NaN chunk) is never a fault: nodes count and skip it.
* Lifecycle order: publishers are enabled before workers start and workers are stopped before
  publishers are disabled, so no first output is dropped while being counted as published.
* Requests (shutdown, a fault's error transition) are carried out on the executor's thread
  by a 20 Hz supervision timer, so they never race a transition requested over the
  lifecycle services, and they work under any executor (rclpy's EventsExecutor supports
  neither guard conditions nor entities created from another thread while it spins).

A node subclass declares ``PARAMETERS`` and implements the hooks ``configure_node``,
``activate_node``, ``deactivate_node``, ``teardown_node`` and ``diagnostics``; it never
overrides the ``on_*`` transition callbacks. See docs/reliability.md for the measured
behaviour under faults.
"""

from __future__ import annotations

import gc
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.signals import SignalHandlerOptions

from robot_brain.errors import UserError
from robot_brain.ros.diagnostics import ERROR, OK, WARN, diagnostic_array
from robot_brain.ros.params import declare, value

#: Period of the supervision timer that carries out shutdown requests and fault transitions, s.
SUPERVISION_PERIOD_S = 0.05
#: How long a worker gets to end after its stop event is set, s.
WORKER_JOIN_TIMEOUT_S = 5.0
#: How long :func:`run_node` waits for the node's orderly shutdown before giving up on it, s.
#: ``ros2 launch`` escalates to SIGTERM after 5 s and SIGKILL 5 s later; braking takes well under 1 s.
SHUTDOWN_TIMEOUT_S = 8.0

#: Parameters of every node (name, default, description); nodes may override a default.
COMMON_PARAMETERS: tuple[tuple[str, Any, str], ...] = (
    (
        "autostart",
        False,
        "Configure and activate at start-up (no lifecycle manager needed); a failed configure then "
        "exits with status 2",
    ),
    ("diagnostics_period_s", 1.0, "Period of /diagnostics, s"),
)

Parameters = Sequence[tuple[str, Any, str]]


def with_defaults(parameters: Parameters, **defaults: Any) -> tuple[tuple[str, Any, str], ...]:
    """``parameters`` with some defaults replaced (e.g. the sim's ``autostart`` is true)."""
    unknown = set(defaults) - {name for name, _, _ in parameters}
    if unknown:
        raise KeyError(f"no such parameters: {sorted(unknown)}")
    return tuple((name, defaults.get(name, default), text) for name, default, text in parameters)


class ShutdownRequest:
    """SIGINT/SIGTERM as a request to stop in order, remembered once (process-wide, main thread only).

    The handler only sets an event: it runs between two bytecodes of whatever the main thread
    was doing, so it must not log, lock or raise. A main thread waiting on :meth:`wait` wakes
    at once (lock waits are interruptible by signals on POSIX).
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""
        self.signals = 0

    def install(self, signals: Sequence[signal.Signals] = (signal.SIGINT, signal.SIGTERM)) -> ShutdownRequest:
        for sig in signals:
            signal.signal(sig, self._on_signal)
        return self

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signals += 1
        if not self._event.is_set():
            self.reason = signal.Signals(signum).name
            self._event.set()

    def request(self, reason: str) -> None:
        """Ask for an orderly stop from code (the first reason is kept)."""
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)


class Worker:
    """A supervised thread: its own stop event, joined on stop, failures reported, never silent.

    ``body(stop)`` runs until ``stop`` is set (it must check it, or wait on it, at least every
    few hundred milliseconds). Returning early is fine; raising is a fault.
    """

    def __init__(self, name: str, body: Callable[[threading.Event], None],
                 on_failure: Callable[[str, BaseException], None]) -> None:
        self.name = name
        self.stop_event = threading.Event()
        self._body = body
        self._on_failure = on_failure
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Worker:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._body(self.stop_event)
        except BaseException as error:  # a worker must never die silently
            self.error = error
            self._on_failure(self.name, error)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = WORKER_JOIN_TIMEOUT_S) -> bool:
        """Set the stop event and join; False if the thread is still running after ``timeout``."""
        self.stop_event.set()
        if self._thread.ident is None or self._thread is threading.current_thread():
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()


def describe(error: BaseException | str) -> str:
    """One line for a log: the exception type and message, or the text itself."""
    if isinstance(error, str):
        return error
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class BrainNode(LifecycleNode):
    """Lifecycle node with supervised workers, faults that brake and report, and an orderly shutdown.

    Subclasses set ``PARAMETERS`` (declared with descriptions, in order, after the common
    ones) and ``DIAGNOSTIC_TASK`` (the status name: ``<node>: <task>``), and implement the
    hooks below. Hooks run on the executor's thread, one transition at a time.
    """

    PARAMETERS: ClassVar[Parameters] = ()
    COMMON: ClassVar[Parameters] = COMMON_PARAMETERS
    #: Parameters fixed when the node starts (what provenance or safety rests on): changing one
    #: at runtime (``ros2 param set``) is refused.
    READ_ONLY_PARAMETERS: ClassVar[frozenset[str]] = frozenset()
    DIAGNOSTIC_TASK: ClassVar[str] = ""
    #: How long each worker gets to end after its stop event is set, s.
    worker_join_timeout: float = WORKER_JOIN_TIMEOUT_S

    def __init__(self, node_name: str, **kwargs: Any) -> None:
        # Set before anything can fail: rclpy's shutdown destroys even a half-built node.
        self._workers: dict[str, Worker] = {}
        self._zombies: list[Worker] = []
        self._supervision_lock = threading.RLock()
        self._fault = ""
        self._fault_pending = False
        self._shutdown_reason = ""
        self._finished = threading.Event()
        self._diagnostics_publisher: Any = None
        self._status = "unconfigured"
        self._active = False
        #: Why the last configure or activate failed ("" when it did not), for one-line errors.
        self.startup_error = ""
        super().__init__(node_name, **kwargs)
        for name, default, description in self.declared_parameters():
            declare(self, name, default, description, read_only=name in self.READ_ONLY_PARAMETERS)
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self.create_timer(
            float(value(self, "diagnostics_period_s")), self.on_diagnostics_timer
        )
        self._supervision_timer = self.create_timer(SUPERVISION_PERIOD_S, self.service_requests)

    @classmethod
    def declared_parameters(cls) -> tuple[tuple[str, Any, str], ...]:
        """Every parameter the node declares, in declaration order (config/<node>.yaml mirrors it)."""
        own = {name for name, _, _ in cls.PARAMETERS}
        return (*(p for p in cls.COMMON if p[0] not in own), *cls.PARAMETERS)

    # ----------------------------------------------------------------------------- hooks
    def configure_node(self) -> None:
        """Build everything from the parameters; raise a UserError saying what is wrong."""

    def activate_node(self) -> None:
        """Start the node's work (workers); lifecycle publishers are already enabled."""

    def deactivate_node(self) -> None:
        """Stop the node's work; the controller brakes to rest here. Workers are joined afterwards."""

    def teardown_node(self) -> None:
        """Destroy what ``configure_node`` created (it may have been half-built)."""

    def begin_stopping(self) -> None:
        """Called at once, from any thread, when a shutdown or a fault is requested: start braking now.

        Must be thread-safe and cheap (set an event). The controller overrides it; the
        transitions that follow (deactivate, ...) run later on the executor's thread.
        """

    def diagnostics(self) -> tuple[bytes, str, dict[str, object], str]:
        """(level, message, values, hardware_id) of the node's status; faults override level and message."""
        return OK, self._status, {}, "none"

    # ----------------------------------------------------------------------------- state
    @property
    def status(self) -> str:
        """unconfigured / inactive / active / configure failed: ... / error: ... (for diagnostics and logs)."""
        return self._status

    @property
    def fault(self) -> str:
        """The first fault since the last successful configure ("" when none)."""
        return self._fault

    @property
    def active(self) -> bool:
        return self._active

    @property
    def finished(self) -> bool:
        """The orderly shutdown has been carried out."""
        return self._finished.is_set()

    # ----------------------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.configure_node()
        except UserError as error:
            self.get_logger().error(f"configure failed: {error}")
            return self._configure_failed(str(error))
        except Exception as error:
            self._log_unexpected("configure", error)
            return self._configure_failed(describe(error))
        with self._supervision_lock:
            self._fault, self._fault_pending = "", False
        self._status = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def _configure_failed(self, reason: str) -> TransitionCallbackReturn:
        self._safely("teardown", self.teardown_node)
        self.startup_error = reason
        self._status = f"configure failed: {reason}"
        return TransitionCallbackReturn.FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._zombies:
            names = ", ".join(worker.name for worker in self._zombies if worker.alive)
            if names:
                self.get_logger().error(f"activate refused: worker(s) {names} of the previous run still running")
                return TransitionCallbackReturn.FAILURE
            self._zombies.clear()
        result = super().on_activate(state)  # lifecycle publishers on before any worker publishes
        try:
            self.activate_node()
        except Exception as error:
            if isinstance(error, UserError):
                self.get_logger().error(f"activate failed: {error}")
                self.startup_error = str(error)
            else:
                self._log_unexpected("activate", error)
                self.startup_error = describe(error)
            self._fault = f"activate failed: {self.startup_error}"
            self._safely("deactivate", self.deactivate_node)
            self.stop_workers()
            return TransitionCallbackReturn.ERROR
        self._active = True
        self._status = "active"
        self.get_logger().info("active")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._safely("deactivate", self.deactivate_node)
        self.stop_workers()
        result = super().on_deactivate(state)
        self._status = "inactive"
        if self._fault:
            # The lifecycle's error path: on_error tears down, the node rests unconfigured.
            return TransitionCallbackReturn.ERROR
        return result

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_workers()
        self._safely("teardown", self.teardown_node)
        self._status = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._active:
            self._active = False
            self._safely("deactivate", self.deactivate_node)
        self.stop_workers()
        self._safely("teardown", self.teardown_node)
        self._status = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self.stop_workers()
        self._safely("teardown", self.teardown_node)
        self._status = f"error: {self._fault or 'a transition failed'}; unconfigured until configured again"
        self.get_logger().error(f"in the error state: {self._fault or 'a transition failed'}; "
                                "configure and activate to recover")
        return TransitionCallbackReturn.SUCCESS

    # ----------------------------------------------------------------------------- workers
    def worker(self, name: str) -> Worker | None:
        """The worker started under ``name`` (alive or not), ``None`` if none was."""
        return self._workers.get(name)

    def worker_alive(self, name: str) -> bool:
        """Whether the worker ``name`` is running: a request handed to a dead one would never be answered."""
        found = self._workers.get(name)
        return found is not None and found.alive

    def start_worker(self, name: str, body: Callable[[threading.Event], None]) -> Worker:
        """Start a supervised thread ``body(stop)``; it is stopped and joined on deactivate."""
        if name in self._workers and self._workers[name].alive:
            raise RuntimeError(f"worker {name} is already running")
        worker = Worker(name, body, self._on_worker_failure).start()
        self._workers[name] = worker
        return worker

    def stop_workers(self, timeout: float | None = None) -> None:
        """Stop and join every worker; one that does not end is kept as a zombie and reported."""
        timeout = self.worker_join_timeout if timeout is None else timeout
        workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            worker.stop_event.set()
        for worker in workers:
            if not worker.stop(timeout):
                self._zombies.append(worker)
                self.get_logger().error(f"worker {worker.name} did not stop within {timeout:.1f} s")

    def _on_worker_failure(self, name: str, error: BaseException) -> None:
        detail = "".join(traceback.format_exception(error)).rstrip()
        self.get_logger().debug(f"worker {name} traceback:\n{detail}")
        self.report_fault(f"worker {name}", error)

    # ----------------------------------------------------------------------------- faults
    def report_fault(self, where: str, error: BaseException | str) -> None:
        """From any thread: log one line, report ERROR, brake, and take the lifecycle's error path.

        The first fault's text is kept until the next successful configure; later ones are
        logged too. The error transition runs on the executor's thread (supervision timer).
        """
        text = f"{where} failed: {describe(error)}"
        with self._supervision_lock:
            first = not self._fault
            if first:
                self._fault = text
            self._fault_pending = True
        self.get_logger().error(f"{text}; stopping and entering the error state" if first else text)
        self.begin_stopping()

    def ready_for_error_transition(self) -> bool:
        """Whether a pending fault's error transition may run now (the controller waits until it has braked)."""
        return True

    def service_requests(self) -> None:
        """Supervision (executor thread): carry out a fault's error transition or a requested shutdown."""
        with self._supervision_lock:
            fault_pending = self._fault_pending and self.ready_for_error_transition()
            if fault_pending:
                self._fault_pending = False
        if fault_pending and self._active:
            self.trigger_deactivate()  # answers ERROR: on_error tears down, state unconfigured
        if self._shutdown_reason and not self._finished.is_set():
            self._shut_down_in_order()

    # ----------------------------------------------------------------------------- shutdown
    def request_shutdown(self, reason: str) -> None:
        """From any thread: brake now, then deactivate and shut down on the executor's thread."""
        if self._shutdown_reason:
            return
        self._shutdown_reason = reason or "shutdown requested"
        self.get_logger().info(f"{self._shutdown_reason}: stopping in order")
        self.begin_stopping()

    def _shut_down_in_order(self) -> None:
        try:
            if self._active:
                self.trigger_deactivate()
            self.trigger_shutdown()
            self.get_logger().info("stopped in order")
        finally:
            self._finished.set()

    def wait_finished(self, timeout: float) -> bool:
        """Wait (any thread) until the orderly shutdown is done; False on timeout."""
        return self._finished.wait(timeout)

    def destroy_node(self) -> None:
        """Stop workers and drop what configure built before the node's handles go away."""
        if self._active:
            self._active = False
            self._safely("deactivate", self.deactivate_node)
        self.stop_workers()
        self._safely("teardown", self.teardown_node)
        super().destroy_node()

    # ----------------------------------------------------------------------------- diagnostics
    def on_diagnostics_timer(self) -> None:
        """Timer callback; the controller overrides it to move the work off its loop thread."""
        self.publish_diagnostics()

    def publish_diagnostics(self) -> None:
        level, message, values, hardware_id = self.diagnostics()
        values = {"state": self._status, **values}
        zombies = [worker.name for worker in self._zombies if worker.alive]
        if self._fault:
            level, message = ERROR, f"fault: {self._fault}"
            values["fault"] = self._fault
        elif zombies:
            level, message = ERROR, f"worker(s) did not stop: {', '.join(zombies)}"
        elif self._status.startswith("configure failed"):
            level, message = ERROR, self._status
        self._diagnostics_publisher.publish(
            diagnostic_array(
                self.get_clock().now(),
                f"{self.get_fully_qualified_name().lstrip('/')}: {self.DIAGNOSTIC_TASK or self.get_name()}",
                hardware_id,
                level,
                message,
                values,
            )
        )

    # ----------------------------------------------------------------------------- helpers
    def _safely(self, what: str, hook: Callable[[], None]) -> None:
        """Run a hook during a transition; an exception is logged in one line, never lost."""
        try:
            hook()
        except Exception as error:
            self._log_unexpected(what, error)

    def _log_unexpected(self, what: str, error: BaseException) -> None:
        detail = "".join(traceback.format_exception(error)).rstrip()
        self.get_logger().error(f"{what} failed unexpectedly: {describe(error)}")
        self.get_logger().debug(detail)

    def spin(self, executor: Executor, stop: threading.Event | None = None) -> None:
        """Serve callbacks until ``stop`` is set, the shutdown is done or the context ends.

        An exception escaping a callback is a fault (logged, reported, braked), not the end of
        the process. Nodes with their own spinning (the controller's cooperative loop) override it.
        """
        while executor.context.ok() and not self._finished.is_set() and not (stop is not None and stop.is_set()):
            try:
                executor.spin_once(timeout_sec=SUPERVISION_PERIOD_S)
            except ExternalShutdownException:
                return
            except Exception as error:
                if not executor.context.ok():
                    return
                self.report_fault("callback", error)


def autostart(node: BrainNode) -> bool:
    """Configure then activate when ``autostart`` is set; False when either failed (see ``startup_error``)."""
    if not value(node, "autostart"):
        return True
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        return False
    return node.trigger_activate() == TransitionCallbackReturn.SUCCESS


def run_node(
    factory: Callable[[], BrainNode],
    args: Sequence[str] | None = None,
    *,
    program: str,
    executor_factory: Callable[[BrainNode], Executor] | None = None,
) -> int:
    """Run one node as a process: signals brake first, workers stop, then the context goes; the exit status.

    The executor spins on a thread of its own; the main thread waits for SIGINT/SIGTERM (or
    the node finishing), asks the node to stop, and waits for the node's orderly shutdown
    before shutting rclpy down. 0: stopped on request; 1: the spinning thread died or the
    shutdown did not finish in time; 2: the node could not be built or (autostart) configured.
    """
    request = ShutdownRequest().install()
    rclpy.init(args=list(args) if args is not None else None, signal_handler_options=SignalHandlerOptions.NO)
    node: BrainNode | None = None
    executor: Executor | None = None
    code = 0
    try:
        try:
            node = factory()
        except UserError as error:
            print(f"{program}: error: {error}", file=sys.stderr, flush=True)
            return 2
        executor = executor_factory(node) if executor_factory is not None else SingleThreadedExecutor()
        executor.add_node(node)
        if not autostart(node):
            print(f"{program}: error: {node.startup_error}", file=sys.stderr, flush=True)
            return 2
        spinner = threading.Thread(target=node.spin, args=(executor,), name=f"{node.get_name()}-spin", daemon=True)
        spinner.start()
        while not request.wait(0.5):
            if not spinner.is_alive():
                break
        if request.requested:
            node.request_shutdown(request.reason)
        elif not node.finished:
            node.get_logger().error("the executor thread ended unexpectedly; stopping")
            code = 1
            node.request_shutdown("executor thread ended")
            node.spin(executor, threading.Event())  # carry out the shutdown on this thread instead
        if not node.wait_finished(SHUTDOWN_TIMEOUT_S):
            node.get_logger().error(f"orderly shutdown did not finish within {SHUTDOWN_TIMEOUT_S:.0f} s")
            code = 1
        spinner.join(timeout=2.0)
        if request.signals > 1:
            node.get_logger().info(f"{request.signals - 1} further signal(s) ignored while stopping in order")
    finally:
        if executor is not None:
            executor.shutdown(timeout_sec=2.0)
            if node is not None:
                executor.remove_node(node)
        if node is not None:
            node.destroy_node()
        # Nothing of the node may outlive the context: then Fast DDS destroys the participant and
        # removes its shared-memory segment instead of leaving it in /dev/shm.
        executor = node = None
        gc.collect()
        rclpy.try_shutdown()
    return code


__all__ = [
    "COMMON_PARAMETERS",
    "ERROR",
    "OK",
    "SUPERVISION_PERIOD_S",
    "WARN",
    "BrainNode",
    "ShutdownRequest",
    "Worker",
    "autostart",
    "describe",
    "run_node",
    "with_defaults",
]
