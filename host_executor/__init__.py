"""hostplane's short-lived host executor: standard library only, Python >= 3.8.

It is shipped to hosts as a zipapp, reads one request on stdin, runs its steps, streams
JSON Lines events on stdout and exits. See ``host_executor.protocol`` for the wire format.
"""

__version__ = "0.1.0"
