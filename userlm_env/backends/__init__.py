"""Model backends: where user simulators and assistants get their text from."""

from userlm_env.backends.errors import BackendError, ServerResponseError, ServerUnavailableError
from userlm_env.backends.http_backend import HTTPBackend, is_http_spec
from userlm_env.backends.models import BUNDLED_SMOLLM2, LoadedModel, ModelLoadError, load_model
from userlm_env.backends.transformers_backend import (
    Generation,
    GenerationRequest,
    SamplingParams,
    SeededSampler,
    TransformersBackend,
)

__all__ = [
    "BUNDLED_SMOLLM2",
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
    "load_model",
]
