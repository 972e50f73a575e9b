"""The REST API's HTTP server: waitress, with its event loop on a thread of the model server.

Waitress has no call that stops a server: its loop ends only on a KeyboardInterrupt or
SystemExit, which reach the main thread alone, and the answers not yet sent are then lost.
``RestServer.stop`` takes the steps of gRPC's ``server.stop(grace)`` instead: close the
listening sockets, let the requests in flight finish, then close the connections left.
Connections belong to the event loop's thread, so each step runs there, passed in through
the trigger that waitress's worker threads use to wake the loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, TypeVar

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication

T = TypeVar("T")

DRAIN_POLL_SECONDS = 0.05


class RestServer:
    """``app`` served on ``host:port`` by ``threads`` worker threads, once ``start()`` is called."""

    def __init__(self, app: WSGIApplication, host: str, port: int, threads: int) -> None:
        # Waitress keeps its listening sockets, connections and triggers in this map, and
        # its loop runs while the map is not empty.
        self._map: dict[int, wasyncore.dispatcher] = {}
        # poll(), not select(): select() cannot watch a file descriptor numbered above 1023,
        # which a busy process can reach.
        self._server = create_server(app, map=self._map, host=host, port=port, threads=threads,
                                     asyncore_use_poll=True)
        # One listener per address that ``host`` resolves to.
        self._listeners = [item for item in self._map.values() if isinstance(item, BaseWSGIServer)]
        self._loop = threading.Thread(target=self._server.run, name="rest", daemon=True)

    def start(self) -> None:
        self._loop.start()

    def stop(self, grace: float) -> threading.Event:
        """Close the listening sockets, wait for the requests in flight to be answered, then
        close the connections: those still busy after ``grace`` seconds too. The steps run
        on a thread of their own (the caller never waits on the loop); the returned event is
        set once they are done."""
        stopped = threading.Event()
        threading.Thread(target=self._stop, args=(time.monotonic() + grace, stopped), name="rest-stop",
                         daemon=True).start()
        return stopped

    def _stop(self, deadline: float, stopped: threading.Event) -> None:
        self._in_loop(self._close_listeners)
        while self._in_loop(self._close_idle_connections) and time.monotonic() < deadline:
            time.sleep(DRAIN_POLL_SECONDS)
        self._in_loop(self._close_all)
        self._loop.join()
        stopped.set()

    def _in_loop(self, call: Callable[[], T]) -> T:
        """Run ``call`` on the event loop's thread and return its result."""
        done: Future[T] = Future()

        def run() -> None:
            try:
                done.set_result(call())
            except BaseException as error:
                done.set_exception(error)

        self._listeners[0].trigger.pull_trigger(run)
        return done.result()

    def _close_listeners(self) -> None:
        for listener in self._listeners:
            # The socket alone: BaseWSGIServer.close would close the trigger too, which the
            # worker threads still need to hand their answers to the loop.
            wasyncore.dispatcher.close(listener)

    def _close_idle_connections(self) -> int:
        """Have each connection with no request in progress closed once its answers are
        sent; return how many connections are still open."""
        connections = [item for item in self._map.values() if isinstance(item, HTTPChannel)]
        for connection in connections:
            with connection.requests_lock:
                if not connection.requests:
                    connection.close_when_flushed = True  # reads no further request
        return len(connections)

    def _close_all(self) -> None:
        for item in list(self._map.values()):
            if isinstance(item, HTTPChannel):
                item.handle_close()  # also wakes a worker thread waiting for its output to be sent
        wasyncore.close_all(self._map)  # the triggers: with the map empty, the loop returns
