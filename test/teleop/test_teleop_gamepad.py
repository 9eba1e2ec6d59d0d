"""Gamepad with the real SDL virtual joystick: normalisation, selection by name and index, hot-plug, threading."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

import pytest
from teleop_rig import LEFT_TRIGGER, LEFT_X, LEFT_Y, RIGHT_TRIGGER, RIGHT_X, RIGHT_Y

from robot_brain.errors import UserError
from robot_brain.teleop.gamepad import Gamepad, GamepadError
from robot_brain.teleop.reading import SDL_AXIS_MAX, SDL_BUTTONS
from robot_brain.teleop.sdl import import_pygame
from robot_brain.teleop.virtual_pad import VirtualPad

STEP = 1.0 / SDL_AXIS_MAX  # SDL's resolution

PadFactory = Callable[..., VirtualPad]
GamepadFactory = Callable[..., Gamepad]


def test_raw_sdl_values_arrive_normalised(virtual_pads: PadFactory, gamepads: GamepadFactory) -> None:
    pad = virtual_pads()
    gamepad = gamepads(device_name=pad.name)
    rest = gamepad.poll(1.0)
    assert rest.connected and rest.device == pad.name and rest.stamp == 1.0
    assert rest.axes == (0.0,) * 6, "a freshly attached pad must read at rest (triggers released, not half-pressed)"
    assert rest.buttons == (False,) * len(SDL_BUTTONS)
    # Raw SDL: sticks down/right positive in [-32768, 32767]; triggers -32768 released.
    for raw, stick in ((-32768, 1.0), (32767, -1.0), (0, 0.0), (16384, -16384 / 32767)):
        for axis in (LEFT_X, LEFT_Y, RIGHT_X, RIGHT_Y):
            pad.set_raw_axis(axis, raw)
        reading = gamepad.poll()
        assert reading.axes[:4] == (stick,) * 4, (raw, reading.axes)
    for raw, trigger in ((-32768, 0.0), (32767, 1.0)):
        pad.set_raw_axis(LEFT_TRIGGER, raw)
        pad.set_raw_axis(RIGHT_TRIGGER, raw)
        assert gamepad.poll().axes[4:] == (trigger, trigger)
    # SDL's controller mapping stretches a raw trigger's full range over [0, 1]: raw 0 is half pressed.
    pad.set_raw_axis(RIGHT_TRIGGER, 0)
    assert gamepad.poll().axes[RIGHT_TRIGGER] == pytest.approx(0.5, abs=2 * STEP)


def test_set_axis_round_trips_in_the_reading_convention(virtual_pads: PadFactory, gamepads: GamepadFactory) -> None:
    pad = virtual_pads()
    gamepad = gamepads(device_name=pad.name)
    for values in ((1.0, -1.0, 0.5, -0.25, 0.0, 1.0), (-0.7, 0.3, -1.0, 1.0, 0.25, 0.6)):
        for axis, value in enumerate(values):
            pad.set_axis(axis, value)
        reading = gamepad.poll()
        assert reading.axes == pytest.approx(values, abs=1.5 * STEP)
        assert all(-1.0 <= v <= 1.0 for v in reading.axes[:4]) and all(0.0 <= v <= 1.0 for v in reading.axes[4:])


def test_each_button_arrives_alone(virtual_pads: PadFactory, gamepads: GamepadFactory) -> None:
    pad = virtual_pads()
    gamepad = gamepads(device_name=pad.name)
    for button in range(len(SDL_BUTTONS)):
        pad.set_button(button, True)
        pressed = gamepad.poll().buttons
        pad.set_button(button, False)
        assert [i for i, down in enumerate(pressed) if down] == [button], SDL_BUTTONS[button]
    assert not any(gamepad.poll().buttons)


def test_hot_plug_add_remove_and_add_again(virtual_pads: PadFactory, gamepads: GamepadFactory) -> None:
    pad = virtual_pads(attach=False)
    gamepad = gamepads(device_name=pad.name)
    waiting = gamepad.poll()
    assert not waiting.connected and waiting.axes == () and waiting.buttons == ()
    assert pad.name in waiting.device  # "a game controller named like '...'"
    pad.attach()
    pad.set_axis(LEFT_Y, 0.5)
    plugged = gamepad.poll()
    assert plugged.connected and plugged.device == pad.name
    assert plugged.axes[LEFT_Y] == pytest.approx(0.5, abs=STEP)
    pad.detach()
    unplugged = gamepad.poll()
    assert not unplugged.connected and unplugged.device == pad.name and unplugged.buttons == ()
    assert not gamepad.poll().connected
    pad.attach()
    again = gamepad.poll()
    assert again.connected and again.axes == (0.0,) * 6
    assert gamepad.connections == 2


def test_a_pad_present_before_open_is_found(virtual_pads: PadFactory, gamepads: GamepadFactory) -> None:
    pad = virtual_pads()
    pad.set_button(0, True)
    gamepad = gamepads(device_name=pad.name)
    assert gamepad.connected
    assert gamepad.poll().buttons[0]


def test_name_selection_is_a_case_insensitive_substring(virtual_pads: PadFactory, gamepads: GamepadFactory) -> None:
    alpha = virtual_pads("Alpha Test Controller")
    bravo = virtual_pads("Bravo Test Controller")
    gamepad = gamepads(device_name="bRaVo test")
    assert gamepad.poll().device == bravo.name
    alpha.detach()  # another pad leaving changes nothing
    bravo.set_button(3, True)
    reading = gamepad.poll()
    assert reading.connected and reading.buttons[3]
    assert {device.name for device in gamepad.devices()} >= {bravo.name}


def test_index_selection_and_no_silent_takeover(virtual_pads: PadFactory, gamepads: GamepadFactory) -> None:
    first = virtual_pads()
    second = virtual_pads()
    gamepad = gamepads(device_id=1)
    listed = gamepad.devices()
    assert [d.name for d in listed][:2] == [first.name, second.name] and all(d.is_controller for d in listed)
    assert gamepad.poll().device == second.name
    second.detach()
    # The first pad now sits at index 0, and nothing is at index 1: stay disconnected, no takeover.
    lost = gamepad.poll()
    assert not lost.connected and lost.device == second.name
    third = virtual_pads()  # plugged in: index 1 again
    assert gamepad.poll().device == third.name


def test_poll_runs_on_a_worker_thread_while_another_thread_drives_the_pad(
    virtual_pads: PadFactory,
) -> None:
    pad = virtual_pads()
    seen: list[float] = []
    errors: list[BaseException] = []
    ready, moved, done = threading.Event(), threading.Event(), threading.Event()

    def worker() -> None:
        try:
            with Gamepad(device_name=pad.name) as gamepad:
                seen.append(gamepad.poll().axes[LEFT_X])
                ready.set()
                moved.wait(5.0)
                seen.append(gamepad.poll().axes[LEFT_X])
                done.wait(5.0)
        except BaseException as error:  # reported to the main thread
            errors.append(error)
            ready.set()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert ready.wait(5.0)
        pad.set_axis(LEFT_X, -0.75)  # from the main thread
        moved.set()
    finally:
        done.set()
        thread.join(5.0)
    assert not errors, errors
    assert seen[0] == 0.0 and seen[1] == pytest.approx(-0.75, abs=STEP)


def test_sdl_calls_stay_on_the_opening_thread(virtual_pads: PadFactory, gamepads: GamepadFactory) -> None:
    pad = virtual_pads()
    gamepad = gamepads(device_name=pad.name)
    caught: list[BaseException] = []
    thread = threading.Thread(target=lambda: _capture(gamepad.poll, caught))
    thread.start()
    thread.join(5.0)
    assert len(caught) == 1 and isinstance(caught[0], RuntimeError) and "thread" in str(caught[0])
    with pytest.raises(RuntimeError, match="one event queue"):
        Gamepad().open()
    with pytest.raises(RuntimeError, match="open"):
        Gamepad().poll()


def _capture(function: Callable[[], object], caught: list[BaseException]) -> None:
    try:
        function()
    except BaseException as error:  # the test inspects it
        caught.append(error)


def test_virtual_pad_rejects_values_out_of_range(virtual_pads: PadFactory) -> None:
    pad = virtual_pads()
    with pytest.raises(ValueError, match="trigger"):
        pad.set_axis(RIGHT_TRIGGER, -0.5)
    with pytest.raises(ValueError, match="stick"):
        pad.set_axis(LEFT_X, 1.5)
    with pytest.raises(ValueError, match="stick"):
        pad.set_axis(LEFT_X, float("nan"))
    with pytest.raises(ValueError, match="button index"):
        pad.set_button(15, True)
    with pytest.raises(ValueError, match="Sint16"):
        pad.set_raw_axis(LEFT_X, 40000)
    detached = virtual_pads(attach=False)
    with pytest.raises(RuntimeError, match="not attached"):
        detached.set_button(0, True)


def test_bad_selection_and_missing_pygame_are_user_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match="device_id"):
        Gamepad(device_id=-1)
    monkeypatch.setitem(sys.modules, "pygame", None)
    with pytest.raises(GamepadError, match="pip install pygame"):
        import_pygame()


def test_an_open_gamepad_leaves_sigterm_to_the_process() -> None:
    """SDL's event subsystem would take SIGTERM over (and only queue a quit event): a node must still die on kill."""
    script = (
        "import sys, time\n"
        "from robot_brain.teleop.gamepad import Gamepad\n"
        "pad = Gamepad(); pad.open(); print('open', flush=True)\n"
        "while True:\n"
        "    pad.poll(); time.sleep(0.01)\n"
    )
    environment = {key: value for key, value in os.environ.items() if key != "SDL_NO_SIGNAL_HANDLERS"}
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=environment)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "open"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == -signal.SIGTERM
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_plugging_a_pad_in_and_out_while_a_reader_polls_never_deadlocks() -> None:
    """SDL's joystick lock must never be held across Python code while a reader polls.

    ``pygame`` keeps the GIL while it waits for that lock; a VirtualPad that held it across its
    ctypes calls gave the GIL up between them and waited for it back: a deadlock within a
    second here (a clean-clone test run hung in ``VirtualPad.detach``). In a subprocess, so a
    deadlock fails the test instead of hanging the run.
    """
    script = (
        "import threading, time\n"
        "from robot_brain.teleop.gamepad import Gamepad\n"
        "from robot_brain.teleop.virtual_pad import VirtualPad\n"
        "stop, polls = threading.Event(), [0]\n"
        "def read():\n"
        "    with Gamepad(device_name='replug pad') as gamepad:\n"
        "        while not stop.is_set():\n"
        "            gamepad.poll(); polls[0] += 1\n"
        "pad = VirtualPad('replug pad'); pad.attach()\n"
        "reader = threading.Thread(target=read); reader.start()\n"
        "cycles, end = 0, time.monotonic() + 2.0\n"
        "while time.monotonic() < end:\n"
        "    pad.detach(); pad.attach(); pad.set_axis(0, 0.5); cycles += 1\n"
        "stop.set(); reader.join(); pad.detach()\n"
        "print(cycles, polls[0], flush=True)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr[-2000:]
    cycles, polls = (int(v) for v in result.stdout.split())
    assert cycles > 100 and polls > 100, result.stdout  # both threads ran throughout
