r"""Writes a run's explanation viewer, a static page that opens from disk (no server needed).

  python -m stt.explain.view --workdir=RUN [--dataset=NAME] [--max_videos=N] [--data_dir=DIR]
  python -m stt.explain.view --workdir=RUN --serve [--port=8000]

writes RUN/viewer/index.html (RUN/viewer_<NAME>/ for an annotation set such as 'vggss', whose
--mode=explain run must exist) from the best checkpoint, the run's data and every explainer's
maps that `--mode=explain` saved (stt/explain/viewer_build.py). Open it in a browser from disk;
`--serve` also serves it on http://localhost:PORT/ (e.g. for a remote machine over
`ssh -L PORT:localhost:PORT host`) until interrupted.

On the page: per video, the segment frames with each explainer's "where" (the annotated boxes,
and the pointing game's point marked hit or miss), the log-mel with each explainer's "when" and
the annotated event shaded, the true and predicted classes, the video's perturbation curves;
across videos, filters (class, hit / miss per explainer, correct / wrong, level), sorting and
paging, kept in the address so a view can be shared. Keys: j / k (or arrows) next / previous
video, e next explainer, Escape back to the list.

Exit status 2 with a one-line message when the workdir or arguments are unusable.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from stt import checkpoint  # pylint: disable=g-import-not-at-top,wrong-import-position
from stt import datasets  # pylint: disable=g-import-not-at-top,wrong-import-position
from stt import trained_run  # pylint: disable=g-import-not-at-top,wrong-import-position
from stt.explain import viewer_build  # pylint: disable=g-import-not-at-top,wrong-import-position

EXIT_BAD_INPUT = 2


def parse_args(argv):
  parser = argparse.ArgumentParser(
      prog="python -m stt.explain.view",
      description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument("--workdir", required=True, help="the run's workdir")
  parser.add_argument("--dataset", default="", help="annotation set, e.g. vggss ('' test split)")
  parser.add_argument("--max_videos", type=int, default=None, help="the first N videos only")
  parser.add_argument("--data_dir", default=None, help="overrides the run's config.data_dir")
  parser.add_argument("--serve", action="store_true", help="serve the page on localhost")
  parser.add_argument("--port", type=int, default=8000)
  return parser.parse_args(argv)


def serve(directory, port: int) -> None:
  """Serves `directory` on http://localhost:port/ until interrupted."""
  handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
  with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
    print(f"Serving the viewer on http://localhost:{port}/index.html (Ctrl-C stops)", flush=True)
    try:
      server.serve_forever()
    except KeyboardInterrupt:
      pass


def main(argv=None) -> int:
  args = parse_args(argv)
  try:
    index = viewer_build.build(
        args.workdir, dataset=args.dataset, max_videos=args.max_videos, data_dir=args.data_dir
    )
  except (
      viewer_build.ViewerError,
      trained_run.RunInfoError,
      datasets.DatasetError,
      checkpoint.NoUsableCheckpointError,
  ) as error:
    print(f"stt.explain.view: error: {error}", file=sys.stderr)
    return EXIT_BAD_INPUT
  print(f"Wrote {index}; open it in a browser (file://{os.path.abspath(str(index))})")
  if args.serve:
    serve(index.parent, args.port)
  return 0


if __name__ == "__main__":
  sys.exit(main())
