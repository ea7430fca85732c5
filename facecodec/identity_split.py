"""Train/validation split of the shared face clips, by identity.

Shared with the evaluation engineer: validation identities are never trained on, and the same
function gives everyone the same split. The order is a salted hash of each identity label, so
the split is stable under added rows and does not depend on file order.
"""

from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

SPLIT_SALT = "facecodec-split-v1"
VAL_FRACTION = 0.15


@dataclass(frozen=True)
class Clip:
    """One training clip of the manifest (paths relative to the data root, e.g. `train/x.mp4`)."""

    file: str
    identity: str
    frames: int


def read_clips(manifest_path: str | Path) -> list[Clip]:
    """The manifest's video rows under `train/` (portraits are not clips)."""
    with open(manifest_path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [Clip(r["file"], r["identity"], int(r["frames"])) for r in rows if r["file"].startswith("train/")]


def _order_key(identity: str) -> str:
    return hashlib.sha256(f"{SPLIT_SALT}:{identity}".encode()).hexdigest()


def split_identities(manifest_path: str | Path, val_fraction: float = VAL_FRACTION) -> tuple[list[str], list[str]]:
    """(train_ids, val_ids), each sorted; ceil(val_fraction · #identities) go to validation."""
    identities = sorted({c.identity for c in read_clips(manifest_path)})
    if len(identities) < 2:
        raise ValueError(f"{manifest_path}: need at least two identities to split, found {len(identities)}")
    n_val = min(len(identities) - 1, max(1, math.ceil(val_fraction * len(identities))))
    val = sorted(sorted(identities, key=_order_key)[:n_val])
    train = [i for i in identities if i not in set(val)]
    return train, val
