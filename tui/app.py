"""The tracekit terminal UI: composes the screens and owns the store reader.

    from tracekit.tui.app import run_app
    run_app(open_reader("traces.duckdb"))

Screens (one module each under screens/): the trace list (start), a trace's span tree and details, conversation
replay, dashboards (KQL tiles), the KQL console, the key help. Data comes only through `StoreReader.rows()` and
`sql()` (read-only) and always from Textual workers, so the UI never waits on a query.
"""

from __future__ import annotations

import asyncio
import gc
import signal
from typing import TYPE_CHECKING, Any, Callable

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.worker import Worker, WorkerState, get_current_worker

from tracekit.errors import TracekitError
from tracekit.store.reader import StoreReader
from tracekit.tui.screens.trace_list import TraceListScreen

if TYPE_CHECKING:  # the other screens are imported when first opened: the first paint needs only the list
    from tracekit.tui.data import FirstPage, KnownStart
    from tracekit.tui.screens.trace_view import LoadedTrace, TraceViewScreen

QUIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class TracekitApp(App):
    """Trace explorer, live tail and conversation replay over one store."""

    CSS_PATH = "app.tcss"
    TITLE = "tracekit"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Keys"),
        Binding("d", "dashboards", "Dashboards"),
        Binding("colon", "kql", "KQL console"),
        Binding("a", "alerts", "Alerts"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, reader: StoreReader, *, live: bool = True, title: str | None = None,
                 collector_status: Callable[[], dict[str, Any]] | None = None,
                 first_page: FirstPage | None = None) -> None:
        super().__init__()
        self.reader = reader
        self.first_page = first_page  # the list's first page, already being queried (taken by the list once)
        # The collector's counters (alerts, continuous evaluation), when the UI runs beside or through a collector.
        self.collector_status = collector_status or getattr(reader, "collector_status", None)
        self.live = live
        if title:
            self.title = title
        self.sub_title = reader.location
        self.trace_view: TraceViewScreen | None = None  # kept (installed) and reused for every trace opened
        self.warmed_up = False  # the trace view has been built ahead of the first open (or that was not needed)

    def on_mount(self) -> None:
        # SIGTERM, or SIGHUP when the terminal is closed, end the app as `q` does: whoever started it (the collector
        # in `tracekit`) then shuts down cleanly instead of being killed with its state file left behind.
        loop = asyncio.get_running_loop()
        for signum in QUIT_SIGNALS:
            try:
                loop.add_signal_handler(signum, self.exit)
            except (RuntimeError, ValueError):  # not the main thread (an embedding app): its signals, its call
                break
        self.push_screen(TraceListScreen(live=self.live))

    def on_unmount(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in QUIT_SIGNALS:
            loop.remove_signal_handler(signum)
        gc.unfreeze()  # what freeze_long_lived() kept from the collector becomes collectable again

    def freeze_long_lived(self) -> None:
        """Keep the objects made so far (modules, classes, the screens' widgets and styles) out of the cyclic garbage
        collector's full passes: they live as long as the app, and a full pass, which a move's allocations trigger
        every so often, walked all of them on the UI thread (tens of milliseconds in the middle of a move). Called
        once the trace list and once the trace view are first shown."""
        gc.freeze()

    @work(thread=True, exclusive=True, group="warm-up", exit_on_error=False)
    def warm_up(self) -> None:
        """Import the trace view's modules and build the kept trace view while the user reads the list (called once
        the first page is settled), so that the first Enter costs what every later one does."""
        import tracekit.tui.screens.trace_view  # noqa: F401

        # A callback in the app's message queue: keys pressed while it runs wait behind it, so they reach the list
        # and never the trace view while that is (unseen) on top.
        self.call_later(self.prepare_trace_view)

    async def prepare_trace_view(self) -> None:
        """Compose and mount the kept trace view unseen: pushed and popped again within one batch update, so nothing
        reaches the terminal."""
        from tracekit.tui.screens.trace_list import TraceListScreen

        try:
            if self.trace_view is not None or not isinstance(self.screen, TraceListScreen):
                return  # a trace was opened already, or another screen is up: the first open builds it
            screen = self.kept_trace_view()
            with self.batch_update():
                await self.push_screen(screen)
                await self.pop_screen()
        finally:
            self.warmed_up = True

    def kept_trace_view(self) -> TraceViewScreen:
        """The trace view kept (installed) for every trace opened, made on first use."""
        from tracekit.tui.screens.trace_view import TraceViewScreen

        if self.trace_view is None:
            self.trace_view = TraceViewScreen(live=self.live)
            self.install_screen(self.trace_view, "trace-view")
            self.call_after_refresh(self.freeze_long_lived)  # the kept trace view and its widgets
        return self.trace_view

    def open_trace(self, trace_id: str, *, select_span: str | None = None, known: KnownStart | None = None) -> None:
        """Show one trace's span tree (optionally with a span selected), once its first frame's data is loaded;
        `known` (from a trace list row) bounds the span query (see `trace_spans`)."""
        self.load_trace(trace_id, select_span, known)

    @work(thread=True, exclusive=True, group="open-trace", exit_on_error=False)
    def load_trace(self, trace_id: str, select_span: str | None, known: KnownStart | None) -> None:
        from tracekit.tui.screens.trace_view import load_trace

        try:
            trace = load_trace(self.reader, trace_id, select_span, known)
        except TracekitError as error:
            self.call_from_thread(self.notify, str(error), severity="error", title="query failed")
            return
        if not get_current_worker().is_cancelled:  # another trace was asked for meanwhile
            self.call_from_thread(self.show_trace, trace)

    def show_trace(self, trace: LoadedTrace) -> None:
        """Push the trace view with `trace` in it: the kept instance, unless it is already on the stack (a trace
        opened from a conversation opened from a trace), then a new one."""
        from tracekit.tui.screens.trace_view import TraceViewScreen

        screen = self.kept_trace_view()
        if screen in self.screen_stack:
            screen = TraceViewScreen(live=self.live)
        screen.show_trace(trace)
        self.push_screen(screen)

    def open_conversation(self, key: str) -> None:
        """Replay a conversation (conversation id, response id or trace id)."""
        from tracekit.tui.screens.conversation import ConversationScreen

        self.push_screen(ConversationScreen(key, live=self.live))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A query or rendering worker failed unexpectedly: say so and keep the session (expected failures, such
        as bad queries, are handled by the screens themselves)."""
        if event.state is WorkerState.ERROR:
            error = event.worker.error
            self.notify(f"{type(error).__name__}: {error}", severity="error", title="something went wrong",
                        timeout=10)

    def action_dashboards(self) -> None:
        """The dashboards screen (tiles from tracekit.dashboards, run over the store)."""
        from tracekit.tui.screens.dashboards import DashboardsScreen

        if not isinstance(self.screen, DashboardsScreen):
            self.push_screen(DashboardsScreen())

    def action_kql(self) -> None:
        """The KQL console."""
        from tracekit.tui.screens.kql_console import KqlConsoleScreen

        if not isinstance(self.screen, KqlConsoleScreen):
            self.push_screen(KqlConsoleScreen())

    def action_alerts(self) -> None:
        """The alert rules' latest states (recorded by `tracekit collect --alerts`)."""
        from tracekit.tui.screens.alerts import AlertsScreen

        if not isinstance(self.screen, AlertsScreen):
            self.push_screen(AlertsScreen())

    def action_help(self) -> None:
        from tracekit.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))


def run_app(reader: StoreReader, *, live: bool = True, title: str | None = None,
            collector_status: Callable[[], dict[str, Any]] | None = None,
            first_page: FirstPage | None = None) -> None:
    """Run the TUI on `reader` until the user quits (`live` polls the store for new spans); `first_page`, started
    before this module was imported, saves the list its first query."""
    TracekitApp(reader, live=live, title=title, collector_status=collector_status, first_page=first_page).run()
