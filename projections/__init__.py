"""Read models, kept up to date from the event stream.

* ``tables``: the SQLAlchemy Core tables every read model lives in.
* ``devices``, ``fleets``, ``models``, ``timeline``: one read model each, pure
  apply functions plus a thin writer.
* ``projection``: what a projection is; ``runner``: a batch through several,
  in one transaction; ``service``: the projector loop (``Projector``).
* ``envelope``: stream messages to domain events; ``feed``: the durable
  JetStream consumer; ``bulk``: batched writes for PostgreSQL and SQLite.
* ``checkpoints``, ``lease``, ``metrics``, ``status``: the projector's own
  bookkeeping; ``rebuild`` and ``shadow``: rebuilding without downtime.
"""
