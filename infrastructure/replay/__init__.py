"""Replay tooling: read the event log back, whole or live, and check it.

* ``stream``: raw reads of the JetStream event stream and commit decoding;
* ``tail``: filtered, live event feeds (``vigil events tail``);
* ``history``: an aggregate as of a version or time (``vigil aggregate show``);
* ``export`` / ``importing``: the NDJSON dump format (``vigil events export|import``);
* ``verify`` / ``readmodels``: integrity checks (``vigil events verify``);
* ``describe``: events and state as plain data; ``connect``: finding NATS.

Everything here is usable without the CLI, which only parses and prints.
"""
