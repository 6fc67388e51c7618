r"""Runs one command as N cooperating JAX processes on this machine (multi-host, locally).

  python launch/local.py --num_processes=2 --devices_per_process=2 -- \
      python -m stt.main --config=configs/synthetic.py:smoke --workdir=/tmp/w2

Every process gets the same command plus, in its environment, STT_COORDINATOR_ADDRESS,
STT_NUM_PROCESSES and STT_PROCESS_ID (read by `stt.main`, which calls
`jax.distributed.initialize`), XLA_FLAGS giving it M CPU devices, and JAX_PLATFORMS=cpu
unless JAX_PLATFORMS is set. This is how the tests run real multi-process training, and how to
try a pod-style run on a laptop.

Output lines are prefixed with `[p<i>]`. SIGINT/SIGTERM are forwarded to every process (so a
preemption can be rehearsed). If one process fails the others are stopped. The exit status is
the first non-zero status of a process, else 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time


def free_port() -> int:
  with socket.socket() as sock:
    sock.bind(("localhost", 0))
    return sock.getsockname()[1]


def process_environment(
    process_id: int, num_processes: int, devices_per_process: int, port: int, base=os.environ
) -> dict:
  """The environment of process `process_id`: coordinator, rank and its CPU device count."""
  xla_flags = [
      flag
      for flag in base.get("XLA_FLAGS", "").split()
      if not flag.startswith("--xla_force_host_platform_device_count")
  ]
  xla_flags.append(f"--xla_force_host_platform_device_count={devices_per_process}")
  return dict(
      base,
      STT_COORDINATOR_ADDRESS=f"localhost:{port}",
      STT_NUM_PROCESSES=str(num_processes),
      STT_PROCESS_ID=str(process_id),
      XLA_FLAGS=" ".join(xla_flags),
      JAX_PLATFORMS=base.get("JAX_PLATFORMS", "cpu"),
  )


def _relay(prefix: str, stream, sink):
  for line in stream:
    sink.write(f"{prefix} {line}")
    sink.flush()


def launch(
    command: list[str], num_processes: int, devices_per_process: int, port: int | None = None
) -> int:
  """Starts the processes, relays their output, waits; returns the launcher's exit status."""
  port = port or free_port()
  processes, relays = [], []
  for process_id in range(num_processes):
    process = subprocess.Popen(
        command,
        env=process_environment(process_id, num_processes, devices_per_process, port),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    relay = threading.Thread(
        target=_relay, args=(f"[p{process_id}]", process.stdout, sys.stdout), daemon=True
    )
    relay.start()
    processes.append(process)
    relays.append(relay)

  def forward(signum, frame):
    del frame
    for process in processes:
      if process.poll() is None:
        process.send_signal(signum)

  previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
  status = 0
  try:
    while any(process.poll() is None for process in processes):
      failed = [p.returncode for p in processes if p.poll() not in (None, 0)]
      if failed and not status:
        status = failed[0]
        for process in processes:  # one process failed: the others would wait for it forever
          if process.poll() is None:
            process.terminate()
      time.sleep(0.1)
  finally:
    for signum, handler in previous.items():
      signal.signal(signum, handler)
  for relay in relays:
    relay.join(timeout=5)
  return status or next((p.returncode for p in processes if p.returncode), 0)


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
  """Splits `[options] -- COMMAND...` into the parsed options and the command."""
  parser = argparse.ArgumentParser(
      prog="launch/local.py",
      usage="%(prog)s [options] -- COMMAND...",
      description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument(
      "--num_processes",
      type=int,
      default=2,
      metavar="N",
      help="how many processes to start (default: %(default)s)",
  )
  parser.add_argument(
      "--devices_per_process",
      type=int,
      default=1,
      metavar="M",
      help="CPU devices each process sees, through XLA_FLAGS (default: %(default)s)",
  )
  parser.add_argument(
      "--port",
      type=int,
      default=None,
      help="port of the coordinator (process 0) on localhost (default: a free port)",
  )
  split = argv.index("--") if "--" in argv else len(argv)
  args = parser.parse_args(argv[:split])  # --help prints the text above and exits
  command = argv[split + 1 :]
  if not command:
    parser.error("give the command to run after --")
  if args.num_processes < 1 or args.devices_per_process < 1:
    parser.error("--num_processes and --devices_per_process must be positive")
  return args, command


def main(argv=None) -> int:
  args, command = parse_args(sys.argv[1:] if argv is None else argv)
  return launch(command, args.num_processes, args.devices_per_process, args.port)


if __name__ == "__main__":
  sys.exit(main())
