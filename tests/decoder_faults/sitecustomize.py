"""Decoder faults for tests/test_decoder_faults.py, outside the production code.

A test puts this folder on PYTHONPATH and sets STT_TEST_DECODER_FAULTS="<video_id>:crash,
<video_id>:hang"; every Python process it starts then imports this module at start-up (the decode
processes of data_pipelines.decode_pool are spawned, so they do too). In them, decoding the clip
`<video_id>.<ext>` kills the process with SIGSEGV (as a crashing native decoder would) or sleeps
for an hour. Without the variable this module does nothing.
"""

import os

FAULTS_ENV = "STT_TEST_DECODER_FAULTS"

if os.environ.get(FAULTS_ENV):
  import functools  # pylint: disable=g-import-not-at-top
  import resource  # pylint: disable=g-import-not-at-top
  import signal  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top

  from data_pipelines import media  # pylint: disable=g-import-not-at-top

  _FAULTS = dict(entry.split(":", 1) for entry in os.environ[FAULTS_ENV].split(",") if ":" in entry)
  _decode_clip = media.decode_clip

  @functools.wraps(_decode_clip)
  def _decode_clip_with_faults(path, *args, **kwargs):
    fault = _FAULTS.get(os.path.splitext(os.path.basename(str(path)))[0])
    if fault == "crash":
      resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file
      os.kill(os.getpid(), signal.SIGSEGV)
    elif fault == "hang":
      time.sleep(3600)
    return _decode_clip(path, *args, **kwargs)

  media.decode_clip = _decode_clip_with_faults
