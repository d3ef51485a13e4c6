"""Checkpoints named by URL or model-zoo name, as MMEngine's ``CheckpointLoader`` resolves them, downloaded once
into torch's hub cache (``<torch.hub.get_dir()>/checkpoints``) and then read as local files."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from urllib.parse import urlparse

import torch

from mm2lightning.runner.options import UnsupportedOptionError

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_ZOO = ("open-mmlab://", "openmmlab://", "torchvision://", "modelzoo://")
SCHEMES = ("http://", "https://", *_ZOO)  # what resolve_checkpoint downloads


def is_remote(filename: str | os.PathLike) -> bool:
    """Whether ``filename`` is a URL or a model-zoo name rather than a local path."""
    return bool(_SCHEME.match(str(filename)))


def resolve_checkpoint(filename: str | os.PathLike) -> Path:
    """The local file for ``filename``: a path as it is; ``http(s)://`` downloaded into torch's hub cache (once,
    as MMEngine's ``load_url``); ``open-mmlab://NAME`` and ``torchvision://NAME`` through MMEngine's model lists
    (mmengine must be installed: toolboxes bring it) to their URL or file.

    Raises:
        UnsupportedOptionError: Another scheme (a ``ValueError``).
        ValueError: A model-zoo name without mmengine.
        KeyError: A model-zoo name that MMEngine's list does not have.
    """
    name = str(filename)
    if not is_remote(name):
        return Path(os.path.expanduser(name))
    if name.startswith(_ZOO):
        return resolve_checkpoint(_zoo_url(name))
    if name.startswith(SCHEMES):
        return download(name)
    raise UnsupportedOptionError(
        f"checkpoint {name!r}: the scheme is not supported; mm2lightning loads local paths, http(s):// URLs, "
        "open-mmlab:// and torchvision:// names (MMEngine's file backends, e.g. s3:// or pavi://, are not carried)"
    )


def download(url: str) -> Path:
    """``url`` downloaded to ``<hub dir>/checkpoints/<its file name>``, unless that file is there already."""
    directory = Path(torch.hub.get_dir()) / "checkpoints"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / os.path.basename(urlparse(url).path)
    if not path.is_file():  # download_url_to_file writes a temporary file and moves it: whole or absent
        torch.hub.download_url_to_file(url, str(path), progress=False)
    return path


def _zoo_url(name: str) -> str:
    """The URL (or file) of an ``open-mmlab://`` / ``torchvision://`` name, from MMEngine's own lists."""
    try:
        from mmengine.runner import checkpoint as mm_checkpoint
    except ImportError as error:
        raise ValueError(
            f"checkpoint {name!r}: model-zoo names are looked up in MMEngine's model lists; install mmengine "
            "(OpenMMLab toolboxes bring it) or give the checkpoint's https:// URL"
        ) from error
    scheme, model = name.split("://", 1)
    if scheme in ("torchvision", "modelzoo"):
        urls = mm_checkpoint.get_torchvision_models()
        model = model.lower().replace("_weights", "")  # ResNet50_Weights.IMAGENET1K_V1 -> resnet50.imagenet1k_v1
    else:
        urls = mm_checkpoint.get_external_models()
        deprecated = mm_checkpoint.get_deprecated_model_names()
        if model in deprecated:
            warnings.warn(f"{scheme}://{model} is deprecated in favor of {scheme}://{deprecated[model]}", stacklevel=3)
            model = deprecated[model]
    if model not in urls:
        raise KeyError(f"checkpoint {name!r}: {model!r} is not in MMEngine's model list")
    url = urls[model]
    if url.startswith(("http://", "https://")):
        return url
    return os.path.join(mm_checkpoint._get_mmengine_home(), url)  # as MMEngine: a file under its home
