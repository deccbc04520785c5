"""hostplane's short-lived host executor: standard library only, Python >= 3.8.

It is shipped to hosts as a zipapp, reads one request on stdin, runs its steps, streams
JSON Lines events on stdout and exits. See ``host_executor.protocol`` for the wire format,
``host_executor.main`` for the command line, ``host_executor.identity`` for how it knows its
own digest.

Events as built (every event is also appended to the host-side journal):

- ``hello``: protocol, digest, version, pid, python, id (null if unreadable), journal (path
  or null), journal_error. Always first, for bad requests too.
- ``step_start``: index (0-based), name, action.
- ``step_end``: index, name, action, status (ok|changed|failed|skipped), rc (null when no
  process ran), stdout, stdout_truncated, stderr, stderr_truncated (+ stdout_b64/stderr_b64
  when the bytes are not UTF-8), duration, data, msg; diff when the request asks for diff
  and the action has one; ignored: true on a failure that ignore_errors let pass.
- ``rollback_start``: reason, steps (indices, in undo order).
  ``rollback_step_start``: index, name, action (the undo's).
  ``rollback_step_end``: like ``step_end``. ``rollback_end``: status (ok|failed), counts.
- ``done``: id, status (ok|changed|failed), exit, counts {ok, changed, failed, skipped} of
  the steps that ended, ignored, not_run (steps never started: they get no events),
  failed_step (index or null), interrupted, reason (why, when interrupted), rolled_back
  (null: no rollback ran; true/false: every undo succeeded or not), duration.
- ``error``: id, code (bad_request|protocol_mismatch|lock_timeout|unknown_journal|usage|
  controller_gone|internal), message, exit; bad requests add field, step_index, step_name;
  protocol_mismatch adds protocol (ours); lock_timeout adds lock. ``done`` or ``error``
  is always the last event.
"""

__version__ = "0.1.0"
