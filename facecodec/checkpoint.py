"""Load the public face-vid2vid checkpoint (`00000189-checkpoint.pth.tar`) into the `vox256` preset.

The checkpoint is a `torch.save` dict with the state dicts `generator`, `kp_detector` and
`he_estimator` (plus optimiser entries we ignore). Our networks are split differently, so keys are
renamed; everything else is strict: every expected key must be present with its shape, and no
unexpected key may remain in the three used state dicts.

Two conventions are resolved here, once:
* The reference's head-pose layer names are swapped: `fc_roll` produces yaw and `fc_yaw` roll.
* Decoder convs carry the legacy spectral norm (`weight_orig`, `weight_u`, `weight_v`); in eval
  mode the effective weight is weight_orig / σ with σ = u · (W v), folded into a plain conv.
"""

from __future__ import annotations

from pathlib import Path

import torch

USED_MODULES = ("generator", "kp_detector", "he_estimator")

# our prefix → (checkpoint module, checkpoint prefix); the first match wins
_PREFIXES = (
    ("appearance.", "generator", ""),
    ("keypoints.", "kp_detector", ""),
    ("head_pose.", "he_estimator", ""),
    ("motion.", "generator", "dense_motion_network."),
    ("generator.", "generator", ""),
)
_HEAD_SWAP = {"fc_yaw.": "fc_roll.", "fc_roll.": "fc_yaw."}


class CheckpointError(ValueError):
    """The checkpoint does not match the vox256 architecture; the message names the keys."""


def reference_key(key: str) -> tuple[str, str]:
    """Our state-dict key → (checkpoint module, key in that module's state dict)."""
    for ours, module, theirs in _PREFIXES:
        if key.startswith(ours):
            rest = key[len(ours) :]
            if module == "he_estimator":
                for mine, ref in _HEAD_SWAP.items():
                    if rest.startswith(mine):
                        rest = ref + rest[len(mine) :]
                        break
            return module, theirs + rest
    raise KeyError(key)


def _is_spectral(key: str) -> bool:
    """Decoder SPADE-block convs are spectral-normalised in the reference."""
    parts = key.split(".")
    return (key.startswith("generator.decoder.") and parts[-2] in ("conv_0", "conv_1", "conv_s")
            and parts[-1] == "weight")


def fold_spectral_norm(weight_orig: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Effective eval-mode weight of legacy `torch.nn.utils.spectral_norm`: W / (u · W_mat v)."""
    sigma = torch.dot(u, weight_orig.reshape(weight_orig.shape[0], -1) @ v)
    return weight_orig / sigma


def expected_reference_shapes(model_state: dict[str, torch.Tensor]) -> dict[tuple[str, str], tuple[int, ...]]:
    """The checkpoint entries (module, key) → shape that a model with this state dict needs."""
    shapes = {}
    for key, value in model_state.items():
        module, ref = reference_key(key)
        if _is_spectral(key):
            base = ref[: -len("weight")]
            out_ch, fan_in = value.shape[0], value[0].numel()
            shapes[(module, base + "weight_orig")] = tuple(value.shape)
            shapes[(module, base + "weight_u")] = (out_ch,)
            shapes[(module, base + "weight_v")] = (fan_in,)
        else:
            shapes[(module, ref)] = tuple(value.shape)
    return shapes


def convert_reference_state(
    checkpoint: dict, model_state: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Map a reference checkpoint dict onto our state-dict keys, strictly. Raises CheckpointError."""
    missing_modules = [m for m in USED_MODULES if m not in checkpoint]
    if missing_modules:
        raise CheckpointError(f"checkpoint lacks the state dict(s) {missing_modules}; has {sorted(checkpoint)}")
    expected = expected_reference_shapes(model_state)
    problems = []
    for (module, key), shape in expected.items():
        if key not in checkpoint[module]:
            problems.append(f"missing key {module}.{key}")
        elif tuple(checkpoint[module][key].shape) != shape:
            got = tuple(checkpoint[module][key].shape)
            problems.append(f"shape of {module}.{key} is {got}, expected {shape}")
    for module in USED_MODULES:
        problems += [f"unexpected key {module}.{k}" for k in checkpoint[module] if (module, k) not in expected]
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise CheckpointError(f"checkpoint does not match the vox256 preset:\n  {shown}{more}")
    return {key: _our_value(checkpoint, key) for key in model_state}


def _our_value(checkpoint: dict, key: str) -> torch.Tensor:
    module, ref = reference_key(key)
    state = checkpoint[module]
    if _is_spectral(key):
        base = ref[: -len("weight")]
        return fold_spectral_norm(state[base + "weight_orig"], state[base + "weight_u"], state[base + "weight_v"])
    return state[ref]


def load_reference_checkpoint(path: str | Path, model: torch.nn.Module) -> None:
    """Load `00000189-checkpoint.pth.tar` (or any same-layout file) into a vox256 `FaceVid2Vid`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors have many types; name the file
        raise CheckpointError(f"cannot read {path} as a torch checkpoint: {err}") from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} holds a {type(checkpoint).__name__}, expected a dict of state dicts")
    model.load_state_dict(convert_reference_state(checkpoint, model.state_dict()), strict=True)
