"""The certrotate wizard: screens, global bindings, the state file's lock — little else.

The app holds `<state>.lock` from start to quit, so a `certrotate advance` started
elsewhere on the same state file exits 3 while the wizard is open. `state` and `clock`
are reactive: screens watch them and re-render; only workers set them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import unicodedata
from functools import partial
from pathlib import Path
from typing import Iterable

from textual import events, messages, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.geometry import Size
from textual.reactive import reactive
from textual.screen import Screen

from core.config import state as state_mod
from core.config.record import RotationRecord
from core.config.state import State
from core.errors import CertRotateError, LockHeld
from tui import startup_gc
from tui.commands import BUILT_INS, CertRotateCommands

TIME_TRAVEL_MARGIN = dt.timedelta(minutes=1)


def real_now() -> dt.datetime:
    """The real time in UTC, from the standard library: a clock needs no certificate code before the first frame."""
    return dt.datetime.now(dt.timezone.utc)


def is_printable_key(key: str) -> bool:
    """A key that types a character (a letter, a digit, `?`, space), not ctrl+…, enter, escape, f1."""
    return (len(key) == 1 and key.isprintable()) or key in PRINTABLE_KEY_NAMES


# How textual names the printable ASCII keys that are not letters or digits: the Unicode name,
# lower case, with underscores ("?" is "question_mark", " " is "space").
PRINTABLE_KEY_NAMES = frozenset(unicodedata.name(chr(code)).lower().replace("-", "_").replace(" ", "_")
                                for code in range(32, 127) if not chr(code).isalnum())


class CertRotateApp(App[int]):
    """`CertRotateApp(state_path)`; `demo=True` adds time travel (the rehearsal cluster)."""

    CSS_PATH = "certrotate.tcss"
    TITLE = "certrotate"
    COMMANDS = {CertRotateCommands}  # the palette in the wizard's order (tui/commands.py)
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("f1,question_mark", "help", "Help", key_display="?"),
        Binding("t", "time_travel", "Time travel"),
        Binding("o", "ocsp", "OCSP modes", show=False),
    ]

    state: reactive[State | None] = reactive(None, always_update=True)
    clock: reactive[dt.datetime | None] = reactive(None)

    def __init__(self, state_path: Path | str, *, demo: bool = False, demo_note: str = "") -> None:
        super().__init__()
        self.state_path = Path(state_path).absolute()
        self.demo = demo
        self.demo_note = demo_note
        self.core_gate = asyncio.Semaphore(1)  # one core operation at a time touches the state file
        self.declined_keys: set[str] = set()
        self._lock = contextlib.ExitStack()
        self._locked = False
        self.load_error = ""
        self.exit_pending = False
        self._state_read = False

    # -- the state file and its lock --------------------------------------------------------

    def acquire_lock(self) -> None:
        """Hold the state file's lock until quit; LockHeld (exit 3) if another certrotate has it."""
        if not self._locked:
            self._lock.enter_context(state_mod.locked(self.state_path, holder="wizard"))
            self._locked = True

    def release_lock(self) -> None:
        self._lock.close()
        self._locked = False

    def load_state(self) -> None:
        """Read the state file, if there is one (CertRotateError if it is damaged); hold the lock first."""
        if self.state_path.exists():
            self.state = state_mod.load(self.state_path)
        self._state_read = True

    def now(self) -> dt.datetime:
        """The clock schedule gates read: real time, or where time travel put it (demo)."""
        return self.clock or real_now()

    def on_load(self) -> None:
        startup_gc.pause()  # until the first frame (on_ready)
        try:
            self.acquire_lock()
            if not self._state_read:  # `certrotate` read it already, under the same lock
                self.load_state()
        except LockHeld as error:
            self.exit(return_code=error.exit_code, message=str(error))
        except CertRotateError as error:
            self.release_lock()
            self.exit(return_code=error.exit_code, message=str(error))

    def on_ready(self) -> None:
        """The first frame is on the display."""
        startup_gc.resume()

    def on_unmount(self) -> None:
        startup_gc.resume()  # an app that quit before its first frame
        self.release_lock()

    def on_resize(self, event: events.Resize) -> None:
        """Under `textual serve`, drop a terminal size the browser has already replaced.

        A workaround for textual 8.2.8's WebDriver: it posts its starting size (COLUMNS x ROWS,
        80x24) from a coroutine, while a resize the browser sends right away is posted
        straight from the input thread and can reach the app first. The app then settles on
        the stale 80x24 while its screen still holds the browser's 140x45, and the screen's
        own Resize events (each layout posts one when the size changes) bounce between the two
        forever: 100% CPU, no frame, the exit message of SIGTERM or `quit` never handled, the
        state file's lock held. The driver's `_size` is the last size the browser asked
        for, so a Resize of any other size is stale (tests/test_tui_web_driver.py).
        """
        requested = getattr(self._driver, "_size", None) if self.is_web else None
        if requested is not None and event.size != Size(*requested):
            event.prevent_default()

    def get_default_screen(self) -> Screen:
        from tui.screens.home import HomeScreen

        return HomeScreen()

    def on_mount(self) -> None:
        if self.state is None:
            from tui.screens.first_run import FirstRunScreen

            self.push_screen(FirstRunScreen(self.state_path), self._first_run_done)

    def _first_run_done(self, message: str | None) -> None:
        from tui.screens.home import HomeScreen

        home = self.screen
        if isinstance(home, HomeScreen) and message:
            home.say(message)
            home.action_refresh()

    # -- the keyboard -----------------------------------------------------------------------

    def typing_into_field(self) -> bool:
        """True while an editable text field has focus: then the keys are the operator's text."""
        from textual.widgets import Input, TextArea

        focused = self.focused
        return isinstance(focused, (Input, TextArea)) and not getattr(focused, "read_only", False)

    async def _check_bindings(self, key: str, priority: bool = False) -> bool:
        """No binding of any screen, nor of the app, fires on a printable key while a text field has focus.

        Textual hands printable keys to a focused Input or TextArea before the bindings of its
        screen and of the app see them, but not priority bindings, and a widget that lets a
        key bubble (a TextArea on `tab`, a custom field) would reach them too. One check here,
        where every key binding of every screen is looked up, covers them all (textual 8.2.8
        looks bindings up only through this method).
        """
        if self.typing_into_field() and is_printable_key(key):
            return False
        return await super()._check_bindings(key, priority)

    # -- global actions ---------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "time_travel":
            return self.demo
        return True

    def core_work_running(self) -> list:
        return [w for w in self.workers if w.group in ("run", "core") and w.is_running]

    def on_exit_app(self, message: messages.ExitApp) -> None:
        """SIGTERM, or a closed browser tab under `textual serve`, quits once the running step has finished.

        The web driver turns both into ExitApp. Handled at once, it would cancel the step's
        worker while the engine's thread carries on writing the state file, and drop the
        state file's lock under that thread; so the exit waits for the step, like `q`.
        A host-key question the step waits on is declined: nobody is left to answer it, and
        declining changes nothing on any host.
        """
        from tui.screens.host_key import HostKeyScreen

        running = self.core_work_running()
        if not running:
            return
        message.prevent_default()
        if isinstance(self.screen, HostKeyScreen):
            self.screen.dismiss(False)
        if not self.exit_pending:
            self.exit_pending = True
            self.notify("Quitting as soon as the running step has finished.", title="Quit", severity="warning")
            self._exit_after(running)

    @work(group="exit", exit_on_error=False)
    async def _exit_after(self, running: list) -> None:
        for worker in running:
            with contextlib.suppress(Exception):
                await worker.wait()
        self.exit()

    async def action_quit(self) -> None:
        """Quit, but not in the middle of a step: the lock must stay held while the engine works; and not over
        a filled first-run form without asking (nothing of it is written before ctrl+s)."""
        from tui.screens.discard_form import DiscardFormScreen
        from tui.screens.first_run import FirstRunScreen

        running = self.core_work_running()
        if running:
            self.notify("A step is running; quit when it has finished (it saves the state file after every host).",
                        title="Not now", severity="warning")
            return
        if isinstance(self.screen, FirstRunScreen) and self.screen.filled():
            self.push_screen(DiscardFormScreen(), lambda discard: self.exit() if discard else None)
            return
        self.exit()

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_ocsp(self) -> None:
        """What security.ocsp.mode off / lax / strict do; the chosen mode's SQL as a toast."""
        from tui.screens.ocsp import OcspScreen, statement

        if isinstance(self.screen, OcspScreen):
            return
        state = self.state

        def chosen(mode: str | None) -> None:
            if mode:
                self.notify(f"Run on the cluster: {statement(mode)}", title="OCSP", timeout=10)

        self.push_screen(OcspScreen(state.inventory.cluster.ocsp_url if state else None), chosen)

    def action_time_travel(self) -> None:
        """Move the wizard's clock just past the next schedule gate (demo only)."""
        state = self.state
        until = RotationRecord(state.rotation).wait_until if state is not None else None
        if state is None or state.phase != "wait" or until is None:
            self.notify("No schedule date ahead to travel to; time travel works while the rotation waits.",
                        title="Time travel", severity="warning")
            return
        if self.now() >= until:
            self.notify(f"The wizard clock is already past {until:%Y-%m-%d %H:%M} UTC.", title="Time travel")
            return
        self.clock = until + TIME_TRAVEL_MARGIN
        self.notify(f"Wizard clock set to {self.clock:%Y-%m-%d %H:%M} UTC.", title="Time travel")

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """certrotate's actions first (the screen's keys that do something now), then Theme, Keys and Quit."""
        for binding in getattr(screen, "BINDINGS", []):
            if not isinstance(binding, Binding) or binding.action.removeprefix("app.") in ("quit", "help", "ocsp"):
                continue
            if screen.check_action(binding.action, ()) and binding.description:
                # run_action, not getattr(action_…): bindings like choose('ca') carry parameters
                yield SystemCommand(binding.description, binding.tooltip or binding.description,
                                    partial(screen.run_action, binding.action))
        if self.demo and self.check_action("time_travel", ()):
            yield SystemCommand("Time travel", "Move the wizard's clock past the next schedule date (demo)",
                                self.action_time_travel)
        yield SystemCommand("Cloud client CA", "A Cloud cluster's client CAs: expiry and the upload command",
                            self.action_cloud_client_ca)
        yield SystemCommand("OCSP modes", "What security.ocsp.mode off, lax and strict do, and strict's lock-out risk",
                            self.action_ocsp)
        yield SystemCommand("Help", "How the wizard works, and every key", self.action_help)
        built_in = {command.title: command for command in super().get_system_commands(screen)}
        yield from (built_in[title] for title in BUILT_INS if title in built_in)

    def action_cloud_client_ca(self) -> None:
        from tui.screens.cloud_client_ca import DEFAULT_DIR, CloudClientCaScreen

        base = self.state.base_dir if self.state is not None else Path.cwd()
        self.push_screen(CloudClientCaScreen(base / DEFAULT_DIR))
