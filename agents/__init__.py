"""Assistant policies: local transformers models and scripted baselines, selectable by spec.

=========================  ==================================================================
spec                       assistant
=========================  ==================================================================
``smollm2-135m``           the bundled offline SmolLM2-135M-Instruct
``MODEL``                  a hub id, local directory or ``.gguf`` file (:class:`TransformersAssistant`)
``scripted:immediate``     answers every turn with the sum of the numbers seen
``scripted:clarify``       always asks for more details
``scripted:oracle``        asks until all shards are revealed, then gives the reference answer
``scripted:eager-oracle``  gives the reference answer at once
``scripted:shotgun``       reward hack: lists several candidates including the reference answer
``http://HOST:PORT/v1``    an OpenAI-compatible server (vLLM, SGLang, llama.cpp), chat mode by default
=========================  ==================================================================

HTTP specs take options after ``?`` (see :mod:`userlm_env.backends.http_backend`), e.g.
``http://127.0.0.1:8000/v1,http://127.0.0.1:8001/v1?model=Qwen/Qwen2.5-7B-Instruct&mode=chat``;
``mode=completions&tokenizer=TOK`` renders the prompt client-side instead.
"""

from __future__ import annotations

import difflib

from agents.base import Assistant
from agents.scripted import SCRIPTED, AlwaysClarify, AnswerImmediately, EagerOracle, Shotgun, WaitThenOracle
from agents.transformers_agent import DEFAULT_SAMPLING, TransformersAssistant
from userlm_env.backends.base import SamplingParams


def make_assistant(
    spec: str | Assistant,
    *,
    device: str | None = None,
    dtype: str = "auto",
    system_prompt: str | None = None,
    sampling: SamplingParams = DEFAULT_SAMPLING,
) -> Assistant:
    """Build the assistant named by ``spec`` (see the module table).

    Raises:
        ValueError: unknown scripted baseline.
        userlm_env.backends.ModelLoadError: the model cannot be loaded.
    """
    if isinstance(spec, Assistant):
        return spec
    kind, _, name = spec.partition(":")
    if kind == "scripted":
        if name not in SCRIPTED:
            close = difflib.get_close_matches(name, SCRIPTED, n=1)
            hint = f" Did you mean 'scripted:{close[0]}'?" if close else ""
            raise ValueError(
                f"unknown scripted assistant {spec!r}.{hint} Choices: {['scripted:' + n for n in SCRIPTED]}"
            )
        return SCRIPTED[name]()
    from userlm_env.backends.engines import make_backend

    backend = make_backend(name if kind == "hf" else spec, device=device, dtype=dtype)
    return TransformersAssistant(backend, system_prompt=system_prompt, sampling=sampling, name=spec)


__all__ = [
    "AlwaysClarify",
    "AnswerImmediately",
    "Assistant",
    "EagerOracle",
    "Shotgun",
    "TransformersAssistant",
    "WaitThenOracle",
    "make_assistant",
]
