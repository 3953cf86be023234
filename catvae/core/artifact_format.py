"""The format of the published ``.pt`` files (vae.pt, classifier.pt, stats.pt, densities.pt), and reading them safely.

Each file is a ``torch.save``d dict stamped with ``catvae_format`` (:data:`FORMAT_VERSION`) and
``kind`` (``"vae"``, ``"classifier"``, ``"stats"``, ``"densities"``) beside its own fields. Reading one never
lets a bad file surface as a pickle, zip or ``load_state_dict`` traceback: whatever is wrong
(empty, truncated, not PyTorch at all, another kind of artifact, another format version, weights
that do not fit the network, NaN weights) becomes an :class:`~catvae.core.errors.ArtifactError`
naming the file, what is wrong and the command that makes it again.

Bump :data:`FORMAT_VERSION` whenever a field is renamed, removed or changes meaning; files of
another version are refused rather than guessed at.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from catvae.core.errors import ArtifactError

FORMAT_VERSION = 1
FORMAT_FIELD, KIND_FIELD = "catvae_format", "kind"
GENERIC_REMAKE = "python -m catvae.train with the settings that made it"

Net = TypeVar("Net", bound=nn.Module)

# Fields the files held before they carried a format version (catvae before issue 7).
_UNVERSIONED_FIELDS = {
    "vae": {"encoder", "decoder"},  # beside latent_dim and hidden then (the networks' "net" node since)
    "classifier": {"num_classes", "state_dict"},
    "stats": {"mean", "std", "count"},
}


def stamp(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with the format version and kind that :func:`read` checks."""
    return {FORMAT_FIELD: FORMAT_VERSION, KIND_FIELD: kind, **payload}


def broken(path: Path | str, what: str, remake: str | None) -> ArtifactError:
    """The error for an artifact that cannot be used: one line, file first, then how to make it again."""
    return ArtifactError(f"{path}: {what.rstrip('.')}. Make it again with: {remake or GENERIC_REMAKE}")


def _one_line(text: object, limit: int = 300) -> str:
    flat = " ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _first_sentence(text: object) -> str:
    """torch's archive errors go on about miniz internals after their first sentence."""
    return _one_line(text).split(". ")[0].rstrip(".")


def _as_text(head: bytes) -> str | None:
    """The file's first bytes as text, if they are text (UTF-8, no control characters but whitespace)."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not merely a character cut at the end of ``head``
            return None
        text = head[: exc.start].decode("utf-8")
    return text if all(c.isprintable() or c.isspace() for c in text) else None


def _diagnose(path: Path, head: bytes, size: int, error: BaseException) -> str:
    """Why ``torch.load`` refused ``path``, in the user's terms (from the file's first bytes)."""
    if size == 0:
        return "the file is empty (0 bytes)"
    if head.startswith(b"PK\x03\x04"):
        if "Unsupported global" in str(error):  # a whole archive whose pickle names classes or functions
            return (
                "holds Python objects other than tensors and plain containers, which catvae does not unpickle "
                "(torch.load weights_only)"
            )
        with open(path, "rb") as handle:
            whole = zipfile.is_zipfile(handle)
        state = "truncated or corrupt" if not whole else "corrupt"
        return f"{state}: a PyTorch archive of {size} bytes that cannot be read ({_first_sentence(error)})"
    text = _as_text(head)
    if text is not None:
        return f"holds {'JSON' if text.lstrip()[:1] in ('{', '[') else 'text'}, not a PyTorch file"
    if head.startswith(b"\x1f\x8b"):
        return "is a gzip file, not a PyTorch file"
    return f"not a PyTorch file (it starts with bytes {head[:8].hex(' ')})"


def read(path: Path | str, kind: str, remake: str | None = None) -> dict[str, Any]:
    """The dict saved at ``path`` after checking it is a catvae ``kind`` artifact of this format version."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
        size = path.stat().st_size
    except OSError as exc:
        raise broken(path, f"cannot be read ({exc.strerror or exc})", remake) from None
    try:
        # Tensors and plain containers only: a file is data, never code (weights_only).
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise broken(path, _diagnose(path, head, size, exc), remake) from None
    if not isinstance(state, dict):
        raise broken(path, f"holds a {type(state).__name__}, not a catvae {kind} artifact", remake)
    version = state.get(FORMAT_FIELD)
    if version is None:
        if kind in _UNVERSIONED_FIELDS and _UNVERSIONED_FIELDS[kind] <= state.keys():
            what = (
                f"written by a catvae from before artifact format versions (no '{FORMAT_FIELD}' field; "
                f"this catvae reads format {FORMAT_VERSION})"
            )
        else:
            what = f"not a catvae {kind} artifact (no '{FORMAT_FIELD}' field; it holds {sorted(map(str, state))[:6]})"
        raise broken(path, what, remake)
    if version != FORMAT_VERSION:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        what = (
            f"written in artifact format {version!r} by "
            f"{'a newer' if newer else 'another'} catvae; this one reads format {FORMAT_VERSION}"
        )
        raise broken(path, what + (" (upgrade catvae to read it)" if newer else ""), remake)
    if state.get(KIND_FIELD) != kind:
        raise broken(path, f"holds a {state.get(KIND_FIELD)!r} artifact where a {kind!r} one belongs", remake)
    return state


def load_network(make: Callable[[], Net], weights: Any, part: str, path: Path, remake: str | None) -> Net:
    """``make()``'s network holding ``weights`` (fp32, on the CPU), or an error naming what does not fit.

    The network is built on the meta device and the file's tensors are assigned to it, so that a
    file naming absurd sizes is refused by the shape check instead of allocating them first.
    """
    if not isinstance(weights, dict):
        raise broken(path, f"its {part} weights are a {type(weights).__name__}, not a state dict", remake)
    with torch.device("meta"):
        net = make()
    try:
        net.load_state_dict(weights, strict=True, assign=True)
    except (RuntimeError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise broken(path, f"its {part} weights do not fit the network it describes: {_one_line(exc)}", remake) from None
    tensors = list(net.state_dict().values())
    if any(not t.is_floating_point() for t in tensors):
        raise broken(path, f"its {part} weights are not all floating point", remake)
    net.float()
    if not all(bool(torch.isfinite(t).all()) for t in tensors):
        raise broken(path, f"its {part} weights hold NaN or infinite values (a training that diverged?)", remake)
    return net
