"""The job store: jobs, their hosts' outcomes and every event, in SQLite or PostgreSQL.

The only package that imports SQLAlchemy or Alembic, and only from its modules, never on
``import control_server.store``: the CLI loads it when it records or reads a job.

- ``jobstore.JobStore``: ``JobStore.open(url)`` migrates, then typed reads and writes;
- ``sink.StoreSink``: a run's events, written as they arrive;
- ``records``: job states and the dataclasses the store returns (no SQLAlchemy);
- ``jobspec``: what a job stores about its run (secrets redacted) and reading it back;
- ``resume.resume_job``: take up an interrupted job.
- several control servers (issue 10; serve uses ``servers`` and ``capacity.usage``, the
  rest is not wired yet): ``servers`` (registry, the SQLite one-server rule), ``queue``
  (job queue, leases, fencing tokens), ``fenced`` (``JobStore`` writes under a lease),
  ``capacity`` (capacity claims);
- tables the service reads and writes through typed functions: ``tokens``, ``hostevents``,
  ``instances``, ``facts`` (each host's last facts).
"""
