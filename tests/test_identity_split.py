"""The train/validation split is by identity, deterministic, and covers every identity."""

from __future__ import annotations

from facecodec.identity_split import read_clips, split_identities

HEADER = "file\tsource_repo\tsource_path\tlicence\tidentity\tseconds\twidth\theight\tfps\tframes\tbytes\tsha256\n"


def _manifest(tmp_path, rows):
    path = tmp_path / "MANIFEST.tsv"
    lines = [f"{f}\tr\tp\tMIT\t{ident}\t1\t256\t256\t25\t25\t1\tx\n" for f, ident in rows]
    path.write_text(HEADER + "".join(lines))
    return path


def test_split_is_by_identity_and_deterministic(tmp_path):
    rows = [(f"train/{i}_{j}.mp4", f"person{i}") for i in range(20) for j in range(3)]
    rows.append(("portraits/x.png", "portrait_only"))  # portraits are not clips
    path = _manifest(tmp_path, rows)
    train, val = split_identities(path)
    assert not set(train) & set(val)
    assert set(train) | set(val) == {f"person{i}" for i in range(20)}
    assert len(val) == 3  # ceil(0.15 · 20)
    assert split_identities(path) == (train, val)


def test_split_is_stable_when_rows_are_reordered(tmp_path):
    rows = [(f"train/{i}.mp4", f"p{i}") for i in range(10)]
    a = split_identities(_manifest(tmp_path, rows))
    b = split_identities(_manifest(tmp_path, rows[::-1]))
    assert a == b


def test_shared_manifest_split(shared_faces):
    train, val = split_identities(shared_faces / "MANIFEST.tsv")
    clips = read_clips(shared_faces / "MANIFEST.tsv")
    assert not set(train) & set(val)
    assert len(set(train) | set(val)) == len({c.identity for c in clips})
    val_clips = [c for c in clips if c.identity in val]
    train_clips = [c for c in clips if c.identity in train]
    assert val_clips and train_clips
    assert not {c.file for c in val_clips} & {c.file for c in train_clips}
