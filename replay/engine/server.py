"""The simulated engine's HTTP server: aiohttp app factory, routes, and ways to run it.

`make_app` builds the app; `serve` runs it in the current event loop (async context manager);
`serve_in_thread` runs it on its own loop in a background thread (sync context manager), which
is what tests and synchronous callers use. Both yield a `Running` with the base URL: OpenAI
clients use `url + "/v1"`, Anthropic clients use `url`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from corpus import TokenCache
from replay.engine import api_anthropic, api_completions, api_openai, api_responses, exposition
from replay.engine.errors import EngineError
from replay.engine.profiles import PROFILES, Profile, load_profile
from replay.engine.scheduler import Engine
from replay.engine.wire import ENGINE, ENGINE_HEADER, TOKENS, json_response

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_STARTED = time.time()


def resolve(profile: str | Profile) -> Profile:
    """A `Profile` from a name in `PROFILES`, a `.json` file holding one (every field of
    `Profile`; see `replay.engine.profiles`), or the profile itself."""
    if isinstance(profile, Profile):
        return profile
    if profile.endswith(".json"):
        return load_profile(profile)
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(
            f"unknown engine profile {profile!r}; choose one of {', '.join(sorted(PROFILES))} "
            "or give a profile .json file"
        ) from None


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Engine errors become each API's own error shape; nothing else escapes as a crash."""
    path = request.path
    anthropic = path.startswith(("/v1/messages", "/model/")) or "/publishers/anthropic/" in path
    render = api_anthropic.error_response if anthropic else api_openai.error_response
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except EngineError as exc:
        return render(exc)
    except Exception as exc:
        log.exception("simulated engine: unexpected error handling %s", request.path)
        return render(EngineError(f"internal error in the simulated engine: {exc!r}"))


async def _tag(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[ENGINE_HEADER] = "simulated"


async def _health(request: web.Request) -> web.Response:
    profile = request.app[ENGINE].profile
    return json_response({"status": "ok", "engine": "simulated", "profile": profile.name})


async def _models(request: web.Request) -> web.Response:
    profile = request.app[ENGINE].profile
    if "anthropic-version" in request.headers:
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_STARTED))
        entry = {"type": "model", "id": profile.model, "display_name": profile.model}
        entry["created_at"] = created
        return json_response(
            {
                "data": [entry],
                "has_more": False,
                "first_id": profile.model,
                "last_id": profile.model,
            }
        )
    entry2: dict[str, Any] = {"id": profile.model, "object": "model", "created": int(_STARTED)}
    entry2 |= {"owned_by": "agentload-simulated", "max_model_len": profile.max_context}
    return json_response({"object": "list", "data": [entry2]})


async def _metrics(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    text = exposition.render(engine.stats(), engine.profile)
    return web.Response(text=text, headers={"Content-Type": exposition.CONTENT_TYPE})


def make_app(
    profile: str | Profile = "instant",
    *,
    max_queue: int | None = None,
    seed: int = 0,
    time_scale: float = 1.0,
    tokenizer: str = "cl100k_base",
) -> web.Application:
    """The aiohttp app serving one simulated engine; the engine starts and stops with the app.

    `max_queue`: most requests waiting for admission before new ones get 429 (None: no limit).
    `time_scale`: multiplies every modelled duration (0.1 runs ten times faster).
    """
    app = web.Application(middlewares=[_errors], client_max_size=256 * 1024 * 1024)
    app[ENGINE] = Engine(resolve(profile), max_queue=max_queue, seed=seed, time_scale=time_scale)
    app[TOKENS] = TokenCache(tokenizer)
    app[api_responses.STORE] = api_responses.ResponseStore()
    app.on_response_prepare.append(_tag)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await app[ENGINE].start()
        yield
        await app[ENGINE].stop()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/v1/chat/completions", api_openai.chat_completions)
    app.router.add_post("/v1/completions", api_completions.completions)
    app.router.add_post("/v1/responses", api_responses.responses)
    app.router.add_get("/v1/responses", api_responses.socket)  # WebSocket mode
    app.router.add_post("/v1/messages", api_anthropic.messages)
    app.router.add_post("/v1/messages/count_tokens", api_anthropic.count_tokens)
    app.router.add_post(api_anthropic.VERTEX, api_anthropic.vertex)
    app.router.add_post(api_anthropic.BEDROCK, api_anthropic.bedrock)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/health", _health)
    app.router.add_get("/metrics", _metrics)
    return app


@dataclass(frozen=True, slots=True)
class Running:
    """A started engine server: `url` is `http://HOST:PORT` (no trailing slash, no /v1)."""

    url: str
    port: int
    engine: Engine
    app: web.Application


@asynccontextmanager
async def serve(
    profile: str | Profile = "instant",
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    **options: Any,
) -> AsyncIterator[Running]:
    """Serve a simulated engine in the running loop until the block exits; port 0 picks a free
    port. `options` go to `make_app`. Raises `OSError` when the address can't be bound."""
    app = make_app(profile, **options)
    # handler_cancellation: a client that hangs up aborts its request, freeing its KV blocks.
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=5, handler_cancellation=True
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=4096)
        await site.start()
        bound = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        yield Running(url=f"http://{shown}:{bound}", port=bound, engine=app[ENGINE], app=app)
    finally:
        await app[ENGINE].stop()  # fail open streams first so the runner needn't wait for them
        await runner.cleanup()


@contextmanager
def serve_in_thread(profile: str | Profile = "instant", **options: Any) -> Iterator[Running]:
    """`serve` on a fresh event loop in a background thread; the block gets the `Running`.

    Reading `Running.engine.stats()` from the calling thread is fine (it only reads counters).
    """
    started = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        box["loop"], box["stop"] = asyncio.get_running_loop(), stop
        try:
            async with serve(profile, **options) as running:
                box["running"] = running
                started.set()
                await stop.wait()
        except BaseException as exc:
            box["error"] = exc
            raise
        finally:
            started.set()

    def run() -> None:
        try:
            with asyncio.Runner() as runner:
                runner.run(main())
        except BaseException:  # reported to the caller through box["error"]
            pass

    thread = threading.Thread(target=run, name="agentload-engine", daemon=True)
    thread.start()
    started.wait()
    if "error" in box:
        thread.join()
        raise box["error"]
    try:
        yield box["running"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join()
