"""OpenAI legacy Completions (/v1/completions) on the simulated engine.

Prompts may be text (counted like capture: linearized, cl100k, content-cached) or token ids,
used as given; a list of strings or of id lists is a batch with one choice per prompt.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from corpus.wire import apis, linearize
from replay.engine import output
from replay.engine.api_openai import DONE, error_body, stream_usage, usage
from replay.engine.errors import EngineError, InvalidRequest
from replay.engine.scheduler import Generation
from replay.engine.wire import (
    ENGINE,
    TOKENS,
    check_ids,
    encode,
    json_response,
    merge,
    opt_bool,
    opt_int,
    prepare_sse,
    read_json,
    req_str,
    segment_ids,
)


def _prompts(request: web.Request, body: dict[str, Any]) -> list[list[int]]:
    prompt = body.get("prompt")
    tokens = request.app[TOKENS]
    texts = linearize.prompts(apis.OPENAI_COMPLETIONS, body)  # one per text prompt
    if texts:
        return [segment_ids(tokens, segs) for segs in texts]
    if isinstance(prompt, list) and prompt and all(isinstance(p, list) for p in prompt):
        return [check_ids(p, "prompt") for p in prompt]
    if isinstance(prompt, list) and prompt:
        return [check_ids(prompt, "prompt")]
    raise InvalidRequest(
        "prompt is required: a string, a list of strings, a list of token ids or a list of "
        f"token-id lists; got {prompt!r:.60}",
        param="prompt",
    )


async def completions(request: web.Request) -> web.StreamResponse:
    """POST /v1/completions."""
    body = await read_json(request)
    model = req_str(body, "model")
    if opt_int(body, "n", minimum=1) not in (None, 1):
        raise InvalidRequest("the simulated engine supports only n=1", param="n")
    if opt_bool(body, "echo"):
        raise InvalidRequest("echo is not supported by the simulated engine", param="echo")
    stream = opt_bool(body, "stream")
    include_usage = stream_usage(body)
    max_tokens = opt_int(body, "max_tokens", minimum=1)
    min_tokens = opt_int(body, "min_tokens") or 0
    ignore_eos = opt_bool(body, "ignore_eos")
    engine = request.app[ENGINE]
    gens: list[Generation] = []
    try:
        for ids in _prompts(request, body):
            gen = engine.submit(
                ids,
                max_tokens=max_tokens,
                min_tokens=min_tokens,
                ignore_eos=ignore_eos,
                param="prompt",
            )
            gens.append(gen)
        if stream:
            return await _stream(request, gens, model, include_usage)
        for gen in gens:
            await gen.wait()
        return json_response(
            {
                "id": f"cmpl-{gens[0].number:024x}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "text": output.text(0, g.generated),
                        "index": i,
                        "logprobs": None,
                        "finish_reason": g.finish_reason,
                    }
                    for i, g in enumerate(gens)
                ],
                "usage": usage(gens),
            }
        )
    finally:
        for gen in gens:
            gen.cancel()


async def _stream(
    request: web.Request, gens: list[Generation], model: str, include_usage: bool
) -> web.StreamResponse:
    resp = await prepare_sse(request)
    base: dict[str, Any] = {"id": f"cmpl-{gens[0].number:024x}", "object": "text_completion"}
    base |= {"created": int(time.time()), "model": model}
    frame = encode(base | {"choices": [{"text": "", "index": 0}]})
    head, tail = frame.split(b'"text":""', 1)
    head = b"data: " + head + b'"text":'
    fill = b'"index":%d,"logprobs":null,"finish_reason":null}'
    tail = tail.replace(b"%", b"%%").replace(b'"index":0}', fill) + b"\n\n"
    pos = [0] * len(gens)
    try:
        async for i, n in merge(gens):
            piece = output.text(pos[i], n)
            pos[i] += n
            await resp.write(head + encode(piece) + tail % i)
    except ConnectionResetError:
        return resp
    except EngineError as exc:
        await resp.write(b"data: " + encode(error_body(exc)) + b"\n\n" + DONE)
        await resp.write_eof()
        return resp
    last = b""
    for i, gen in enumerate(gens):
        choice = {"text": "", "index": i, "logprobs": None, "finish_reason": gen.finish_reason}
        last += b"data: " + encode(base | {"choices": [choice]}) + b"\n\n"
    if include_usage:
        last += b"data: " + encode(base | {"choices": [], "usage": usage(gens)}) + b"\n\n"
    await resp.write(last + DONE)
    await resp.write_eof()
    return resp
