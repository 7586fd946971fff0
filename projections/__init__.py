"""Read models, kept up to date from the event stream.

* ``tables``: the SQLAlchemy Core tables every read model lives in.
* ``devices``, ``fleets``, ``models``, ``timeline``: one read model each, pure
  apply functions plus a thin writer.
* ``projection``: what a projection is; ``rows``: the one-row-per-aggregate
  kind; ``runner``: a batch through several, in one transaction; ``service``:
  the projector loop (``Projector``); ``catalog``: every projection by name.
* ``envelope``: stream messages to domain events; ``feed``: the durable
  JetStream consumer (read through ``infrastructure.rawinbox``); ``bulk``:
  batched writes for both databases; ``pgcopy``: PostgreSQL's binary COPY
  rows, encoded while a batch is prepared.
* ``checkpoints``, ``lease``, ``metrics``, ``status``: the projector's own
  bookkeeping; ``rebuild`` and ``shadow``: rebuilding without downtime.
"""
