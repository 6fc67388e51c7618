"""Decoding in child processes that may crash or hang, results in task order.

`IsolatedPool(function, num_workers=N, timeout_s=S, lost=...).map(items)` yields
`function(item)` for every item, in item order, computed by N spawned child processes (at least
one: decoding never runs in the caller, so a decoder crash cannot take the build down). Each
child is sent one item at a time, so a result that does not come back is that item's alone:

  crash    the child died (a segfault or abort in native decoder code, os._exit, the OOM
           killer): `lost(item, "decoder crashed (killed by SIGSEGV)")` (or "exit status N");
  hang     no result `timeout_s` after the child started on the item: the child is killed,
           `lost(item, "timed out after S s")`;
  raise    `function` raised: `lost(item, "<ExceptionType>: <message>")`.

A fresh child takes the place of a crashed or killed one; the other children and their items
are not touched, so no item is ever lost because another one crashed. At most
`N * ITEMS_AHEAD_PER_WORKER` items (`max_ahead`) are taken from `items` ahead of the consumer
(running, or done and waiting for an earlier one), which bounds memory however long `items` is.
The children outlive one `map`, so several lists (a build's splits) pay the start-up once.

`function` and the items travel to the children by pickle (spawn context): `function` must be
importable by reference (a module-level function or a picklable object such as ClipDecoder),
and a script that calls this must do so under `if __name__ == "__main__":` (the children import
the main module again).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import signal
import time
from typing import Any, Callable, Iterator, Sequence

ITEMS_AHEAD_PER_WORKER = 4
STARTUP_TIMEOUT_S = 120.0
"""A child that has not imported the decoder after this long means a broken environment."""
_READY = "ready"


class DecoderProcessError(RuntimeError):
  """A child process could not start (no item is to blame): the environment is broken."""


def _child_main(connection, function: Callable[[Any], Any]):
  """A child's loop: receives (index, item), sends (index, True, result) or (index, False,
  reason); stops on None or when the parent is gone."""
  signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
  connection.send(_READY)
  while True:
    try:
      message = connection.recv()
    except EOFError:
      return
    if message is None:
      return
    index, item = message
    try:
      outcome = (index, True, function(item))
    except Exception as error:  # pylint: disable=broad-except
      outcome = (index, False, f"{type(error).__name__}: {error}")
    connection.send(outcome)


def _exit_description(exitcode: int | None) -> str:
  if exitcode is not None and exitcode < 0:
    try:
      return f"killed by {signal.Signals(-exitcode).name}"
    except ValueError:
      return f"killed by signal {-exitcode}"
  return f"exit status {exitcode}"


class _Child:
  """One child process and its pipe; runs at most one item at a time."""

  def __init__(self, context, function):
    self._context, self._function = context, function
    self.task: tuple[int, Any] | None = None  # (index, item) being decoded
    self.started_s = 0.0  # time.monotonic() when the task was sent, or the child started
    self._start()

  def _start(self):
    self.connection, child_end = self._context.Pipe(duplex=True)
    self.process = self._context.Process(
        target=_child_main, args=(child_end, self._function), daemon=True
    )
    self.process.start()
    child_end.close()  # so that the parent sees EOF when the child dies
    self.ready = False
    self.started_s = time.monotonic()

  def restart(self):
    self.stop()
    self._start()

  def send(self, index: int, item) -> bool:
    """Starts the child on `item`; False (and a fresh child) when it had died while idle."""
    try:
      if not self.process.is_alive():
        raise BrokenPipeError
      self.connection.send((index, item))
    except OSError:  # e.g. the OOM killer took it between two items: no item to blame
      self.restart()
      return False
    self.task = (index, item)
    self.started_s = time.monotonic()
    return True

  def deadline_s(self, timeout_s: float) -> float:
    return self.started_s + (timeout_s if self.ready else STARTUP_TIMEOUT_S)

  def receive(self):
    """The child's message, or None when it died (its pipe is closed)."""
    try:
      return self.connection.recv()
    except (EOFError, OSError):
      return None

  def wait_for_exit(self) -> int | None:
    self.process.join(timeout=5.0)
    if self.process.is_alive():  # closed its pipe but lives on: finish it
      self.process.kill()
      self.process.join()
    return self.process.exitcode

  def stop(self):
    """Kills the child if it is working, otherwise asks it to stop; closes the pipe."""
    if self.process.is_alive():
      if self.task is None and self.ready:
        try:
          self.connection.send(None)
          self.process.join(timeout=2.0)
        except OSError:
          pass
      if self.process.is_alive():
        self.process.kill()
      self.process.join()
    self.connection.close()
    self.task = None


class IsolatedPool:
  """`num_workers` child processes (started on first use, kept across `map` calls) that run
  `function`; see the module docstring. One `map` at a time; `close()` (or `with`) ends them."""

  def __init__(
      self,
      function: Callable[[Any], Any],
      *,
      num_workers: int,
      timeout_s: float,
      lost: Callable[[Any, str], Any],
  ):
    self._function, self._timeout_s, self._lost = function, timeout_s, lost
    self._num_workers = max(1, num_workers)
    self._context = multiprocessing.get_context("spawn")
    self._children: list[_Child] = []
    self._mapping = False

  def __enter__(self) -> "IsolatedPool":
    return self

  def __exit__(self, *exc_info):
    self.close()

  def close(self):
    """Ends the children (killing any that is still working)."""
    for child in self._children:
      child.stop()
    self._children = []

  def map(self, items: Sequence, *, max_ahead: int | None = None) -> Iterator:
    """Yields function(item), or lost(item, reason), for each of `items`, in order.

    max_ahead: how many items may be taken ahead of the consumer (default num_workers *
    ITEMS_AHEAD_PER_WORKER); 1 decodes one item at a time, none wasted when the consumer stops
    early. Closing the iterator early kills the children still working on its items.
    """
    if not items:
      return
    if self._mapping:
      raise RuntimeError("IsolatedPool.map: the previous map is still running")
    self._mapping = True
    window = max_ahead or self._num_workers * ITEMS_AHEAD_PER_WORKER
    while len(self._children) < min(self._num_workers, len(items)):
      self._children.append(_Child(self._context, self._function))
    results: dict[int, Any] = {}  # came back, waiting for an earlier item
    next_to_yield = next_to_send = 0
    try:
      while next_to_yield < len(items):
        for child in self._children:
          if (
              child.ready
              and child.task is None
              and next_to_send < len(items)
              and (next_to_send - next_to_yield < window)
          ):
            if child.send(next_to_send, items[next_to_send]):
              next_to_send += 1
        if next_to_yield in results:
          yield results.pop(next_to_yield)
          next_to_yield += 1
          continue  # the window moved: hand out more first
        # The next item to yield is running or waits for a child that is busy or starting.
        _wait_and_collect(self._children, self._timeout_s, self._lost, results)
    finally:
      self._mapping = False
      abandoned = [child for child in self._children if child.task is not None]
      for child in abandoned:  # its result must not turn up in the next map
        child.stop()
        self._children.remove(child)


def _wait_and_collect(children: list[_Child], timeout_s: float, lost, results: dict):
  """Waits until a child answers, dies or passes its deadline; puts the outcome of its item
  into `results`, restarting the child when it crashed or hung."""
  waiting = [child for child in children if child.task is not None or not child.ready]
  deadline_s = min(child.deadline_s(timeout_s) for child in waiting)
  multiprocessing.connection.wait(
      [child.connection for child in waiting] + [child.process.sentinel for child in waiting],
      timeout=max(0.0, deadline_s - time.monotonic()),
  )
  for child in waiting:
    if child.connection.poll():
      message = child.receive()
      if message is None:
        _give_up(child, results, lost, _crash_reason(child))
      elif message == _READY:
        child.ready, child.started_s = True, time.monotonic()
      else:
        index, succeeded, value = message
        results[index] = value if succeeded else lost(child.task[1], value)
        child.task = None
    elif not child.process.is_alive():
      _give_up(child, results, lost, _crash_reason(child))
    elif time.monotonic() >= child.deadline_s(timeout_s):
      _give_up(
          child,
          results,
          lost,
          f"timed out after {timeout_s if child.ready else STARTUP_TIMEOUT_S:g} s",
      )


def _crash_reason(child: _Child) -> str:
  return f"decoder crashed ({_exit_description(child.wait_for_exit())})"


def _give_up(child: _Child, results: dict, lost, reason: str):
  """Records `lost(item, reason)` for the child's item and starts a fresh child."""
  if child.task is None:  # it never got as far as an item
    raise DecoderProcessError(
        f"a decoder process failed while starting ({reason}); its error, if any, is above. A "
        "script that builds must do so under `if __name__ == '__main__':` (the spawned "
        "processes import it again)"
    )
  index, item = child.task
  results[index] = lost(item, reason)
  child.restart()
