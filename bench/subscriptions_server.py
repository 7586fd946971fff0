"""One API process for ``bench.subscriptions``: the read API with its subscription hub.

``python -m bench.subscriptions_server --mode vigil|peer --port P --nats URL
--stream S --prefix P --db URL --redis URL --channel C --secret S``

The app is the real ``read_api`` endpoint with the hub in ``app.state``, fed
by JetStream (events) and by Redis (the change notices a projector in another
process publishes), on one uvicorn worker with uvloop and httptools.
``vigil`` shares one execution per subscription key; ``peer`` runs one per
subscriber, as plain strawberry does (every subscriber re-reads its row).
``GET /bench/stats`` answers the hub's counters.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator

import nats
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from commands.auth import Authenticator
from infrastructure.changes import LocalChangeBus
from infrastructure.database import create_engine
from infrastructure.eventstore.codec import build_mapper
from infrastructure.eventstore.jetstream import JetStreamEventStore
from infrastructure.eventstore.setup import JetStreamConfig
from read_api.app import create_graphql_app
from read_api.subscriptions import SubscriptionLimits, build_hub
from read_api.subscriptions.redis_bus import RedisChangeBus


def build_app(args: argparse.Namespace) -> Starlette:
    engine = create_engine(args.db)
    graphql = create_graphql_app(
        engine=engine,
        repository=None,
        authenticator=Authenticator(args.secret),
        bus=LocalChangeBus(),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nc = await nats.connect(args.nats, name="vigil-bench-api")
        config = JetStreamConfig(stream=args.stream, subject_prefix=args.prefix)
        store = JetStreamEventStore(nc, config)
        bus = RedisChangeBus.from_url(args.redis, channel=args.channel)
        hub = build_hub(
            store,
            build_mapper(),
            bus,
            nc=nc,
            engine=engine,
            limits=SubscriptionLimits(per_connection=args.per_connection),
            share_executions=args.mode == "vigil",
        )
        await hub.start()
        app.state.subscriptions = hub
        try:
            yield
        finally:
            await hub.stop()
            await graphql.close()
            await bus.close()
            await store.close()
            await nc.close()
            await engine.dispose()

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse(request.app.state.subscriptions.stats())

    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/bench/stats", stats),
        ],
        lifespan=lifespan,
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.subscriptions_server")
    parser.add_argument("--mode", choices=("vigil", "peer"), required=True)
    parser.add_argument("--port", type=int, required=True)
    for name in ("nats", "stream", "prefix", "db", "redis", "channel", "secret"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--per-connection", type=int, default=100)
    args = parser.parse_args()
    uvicorn.run(
        build_app(args),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        log_level="warning",
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
