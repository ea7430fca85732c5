"""Fit the expression basis (`facecodec.expression.ExpressionBasis`) on the training identities.

For pairs of frames of the same clip (MediaPipe landmarks cached by `facecodec train`), the canonical
displacement of the moving landmarks, later minus earlier, is collected; the basis is the leading
right-singular vectors of those displacements (uncentred: coefficient 0 is "no change").

    python scripts/expression_basis.py --data ../shared/data/faces/train --out facecodec/data/expression_basis.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from facecodec.expression import MOVING, RIGID, ExpressionBasis, align
from facecodec.train.data import load_clips
from facecodec.train.face_labels import compute_face_labels
from facecodec.train.split import split_identities

INTEROCULAR = (RIGID.index(33), RIGID.index(263))


def mean_rigid(faces: list[np.ndarray], rounds: int = 3) -> np.ndarray:
    """Generalised Procrustes mean of the RIGID landmarks, centred, inter-ocular distance 1."""
    def normalise(points):
        points = points - points.mean(0)
        return points / np.linalg.norm(points[INTEROCULAR[0]] - points[INTEROCULAR[1]])

    reference = normalise(faces[0][list(RIGID)].astype(np.float64))
    for _ in range(rounds):
        aligned = []
        for face in faces:
            s, r, t = align(face, reference)
            aligned.append(s * face[list(RIGID)] @ r.T + t)
        reference = normalise(np.mean(aligned, axis=0))
    return reference


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="training clips, MANIFEST.tsv beside them")
    p.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "facecodec" / "frames")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--size", type=int, default=16, help="coefficients kept")
    p.add_argument("--pairs-per-clip", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    manifest = args.data.parent / "MANIFEST.tsv"
    train_ids, _ = split_identities(manifest)
    clips = load_clips(args.data.parent, manifest, train_ids, args.cache)
    _, landmarks = compute_face_labels([c.path for c in clips])
    rng = np.random.default_rng(args.seed)
    per_clip = [lm[np.isfinite(lm).all(axis=(1, 2))].astype(np.float64) for lm in landmarks]
    sample = np.concatenate([lm[rng.choice(len(lm), min(len(lm), 20), replace=False)] for lm in per_clip if len(lm)])
    reference = mean_rigid(list(sample))
    probe = ExpressionBasis(reference, np.zeros((len(MOVING), 3)), np.zeros((1, 3 * len(MOVING))), np.ones(1))
    rows, faces = [], []
    for lm in per_clip:
        if len(lm) < 2:
            continue
        canon = np.stack([probe.canonical(f)[0] for f in lm])  # (T, M, 3)
        faces.append(canon.mean(0))
        a, b = rng.integers(0, len(lm), (2, args.pairs_per_clip))
        rows.append((canon[b] - canon[a]).reshape(args.pairs_per_clip, -1))
    x = np.concatenate(rows)
    _, sv, vt = np.linalg.svd(x, full_matrices=False)
    explained = np.cumsum(sv**2) / (sv**2).sum()
    components = vt[: args.size]
    spread = (x @ components.T).std(0)
    basis = ExpressionBasis(reference, np.mean(faces, axis=0), components, spread)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    basis.save(args.out)
    print(f"{len(x)} pairs of {len(per_clip)} clips ({len(train_ids)} identities); variance explained by "
          + ", ".join(f"{k}: {100 * explained[k - 1]:.1f} %" for k in (4, 8, 12, 16, 24, 32) if k <= len(explained))
          + f"; basis id {basis.id:08x} → {args.out}")


if __name__ == "__main__":
    main()
