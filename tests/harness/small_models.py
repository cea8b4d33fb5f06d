"""Build small, untrained models with each package's own classes and save them as a user would.

Used to exercise the adapters for real where pretrained weights cannot be downloaded here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

Z_PTO = [8, 22, 82]


def mace_model_file(path: Path) -> Path:
    """A 2-interaction ScaleShiftMACE (16x0e+16x1o) for O, Ti, Pb, saved with torch.save."""
    import torch
    from e3nn import o3
    from mace import modules

    torch.manual_seed(0)
    model = modules.ScaleShiftMACE(
        r_max=5.0,
        num_bessel=8,
        num_polynomial_cutoff=5,
        max_ell=2,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        num_interactions=2,
        num_elements=3,
        hidden_irreps=o3.Irreps("16x0e+16x1o"),
        MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=np.array([-4.9, -7.9, -3.7]),
        avg_num_neighbors=20.0,
        atomic_numbers=Z_PTO,
        correlation=2,
        gate=torch.nn.functional.silu,
        atomic_inter_scale=1.0,
        atomic_inter_shift=0.0,
    ).double()
    torch.save(model, path)
    return path


def orb_model_files(folder: Path) -> Path:
    """A small orb-v3 conservative architecture: state_dict file plus a models TOML describing it."""
    import torch
    from orb_models.forcefield import pretrained
    from orb_models.forcefield.atomic_system import SystemConfig

    torch.manual_seed(0)
    arch = {"latent_dim": 64, "base_mlp_hidden_dim": 128, "num_message_passing_steps": 2}
    sysconf = {"radius": 6.0, "max_num_neighbors": 120}
    model = pretrained.orb_v3_conservative_architecture(device="cpu", system_config=SystemConfig(**sysconf), **arch)
    weights = folder / "orb-small.ckpt"
    torch.save(model.state_dict(), weights)
    toml = folder / "models.toml"
    toml.write_text(
        "[models.orb-small]\n"
        'family = "orb"\nfunctional = "PBE"\nversion = "untrained-small"\n'
        "[models.orb-small.options]\n"
        f'weights = "{weights.name}"\narchitecture = "orb_v3_conservative_architecture"\n'
        'precision = "float32-high"\n'
        f"architecture_kwargs = {{ latent_dim = {arch['latent_dim']}, base_mlp_hidden_dim = "
        f"{arch['base_mlp_hidden_dim']}, num_message_passing_steps = {arch['num_message_passing_steps']} }}\n"
        f"system_config = {{ radius = {sysconf['radius']}, max_num_neighbors = {sysconf['max_num_neighbors']} }}\n"
    )
    return toml


def deepmd_model_file(folder: Path, backend: str = "pt") -> Path:
    """A tiny se_e2_a DeePMD model trained 1 step on synthetic PbTiO3 frames and frozen.

    ``backend="pt"``: ``dp --pt`` -> ``model.pth``; ``backend="tf"``: ``dp --tf`` -> ``model.pb`` (a
    frozen TensorFlow graph, the form UniPero is published in).
    """
    from pto_checks import structures
    from pto_checks.models.synthetic import make

    calc = make("good")
    data = folder / "data"
    (data / "set.000").mkdir(parents=True)
    type_map = ["O", "Ti", "Pb"]
    coords, boxes, energies, forces = [], [], [], []
    for seed in range(4):
        at = structures.supercell(structures.tetragonal(), 2)
        at.rattle(0.05, seed=seed)
        at.calc = calc
        coords.append(at.positions.ravel())
        boxes.append(at.cell.array.ravel())
        energies.append(at.get_potential_energy())
        forces.append(at.get_forces().ravel())
    types = [type_map.index(s) for s in at.get_chemical_symbols()]
    (data / "type.raw").write_text("\n".join(map(str, types)) + "\n")
    (data / "type_map.raw").write_text("\n".join(type_map) + "\n")
    for name, arr in (("coord", coords), ("box", boxes), ("energy", energies), ("force", forces)):
        np.save(data / "set.000" / f"{name}.npy", np.array(arr))
    inp = {
        "model": {
            "type_map": type_map,
            "descriptor": {"type": "se_e2_a", "sel": [60, 20, 20], "rcut_smth": 0.5, "rcut": 5.0,
                           "neuron": [8, 16], "axis_neuron": 4, "seed": 1},
            "fitting_net": {"neuron": [16, 16], "seed": 1},
        },
        "learning_rate": {"type": "exp", "start_lr": 1e-3, "stop_lr": 1e-4, "decay_steps": 10},
        "loss": {"type": "ener", "start_pref_e": 1, "limit_pref_e": 1, "start_pref_f": 1, "limit_pref_f": 1},
        "training": {"training_data": {"systems": [str(data)], "batch_size": 1}, "numb_steps": 1,
                     "disp_freq": 1, "save_freq": 1, "seed": 1},
    }
    (folder / "input.json").write_text(json.dumps(inp))
    dp = [sys.executable, "-m", "deepmd"]
    env_run = {"cwd": folder, "capture_output": True, "text": True}
    out = "model.pth" if backend == "pt" else "model.pb"
    for step in (["train", "input.json"], ["freeze", "-o", out]):
        done = subprocess.run([*dp, f"--{backend}", *step], **env_run, check=False)
        if done.returncode:
            raise RuntimeError(f"dp --{backend} {' '.join(step)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return folder / out


def synthetic_model_file(folder: Path, variant: str) -> Path:
    """A ``--model-file`` TOML naming the synthetic ``variant`` as the model ``my-model`` (an ASE
    factory, as a user registers their own calculator)."""
    f = folder / f"model_{variant}.toml"
    f.write_text('[models.my-model]\nfamily = "ase"\nfunctional = "PBEsol"\n'
                 '[models.my-model.options]\nfactory = "pto_checks.models.synthetic:make"\n'
                 f'kwargs = {{ variant = "{variant}" }}\n')
    return f
