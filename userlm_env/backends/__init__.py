"""Model backends: where user simulators and assistants get their text from.

Importing this package is light: the local transformers engine (torch, transformers) is imported
only when one of its names is first used (``TransformersBackend``, ``SeededSampler``, ``load_model``
...), so a model-free env (``user="replay"``) never loads it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from userlm_env.backends.base import Backend, Generation, GenerationRequest, SamplingParams, chat_completer
from userlm_env.backends.errors import BackendError, ServerResponseError, ServerUnavailableError
from userlm_env.backends.http_backend import HTTPBackend, is_http_spec
from userlm_env.backends.models import BUNDLED_SMOLLM2, LoadedModel, ModelLoadError, load_model

if TYPE_CHECKING:
    from userlm_env.backends.transformers_backend import SeededSampler, TransformersBackend

__all__ = [
    "BUNDLED_SMOLLM2",
    "Backend",
    "BackendError",
    "HTTPBackend",
    "ServerResponseError",
    "ServerUnavailableError",
    "is_http_spec",
    "Generation",
    "GenerationRequest",
    "LoadedModel",
    "ModelLoadError",
    "SamplingParams",
    "SeededSampler",
    "TransformersBackend",
    "chat_completer",
    "load_model",
]

_LAZY = {"SeededSampler": "transformers_backend", "TransformersBackend": "transformers_backend"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"userlm_env.backends.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'userlm_env.backends' has no attribute {name!r}")
