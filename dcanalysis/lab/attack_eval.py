"""White-box and transfer attacks on the lab models: the Diffusion Classifier against the CNN, ResNet and ViT trained
on the same split, under the same L-infinity PGD (``dcanalysis.evaluation.attacks``).

    python -m dcanalysis.lab.attack_eval --dataset mnist --out DIR --n-images 100 --eps 0.03 0.1 0.3 1.0

For each budget (in [0, 1] pixel units): PGD with the margin loss against each model (the Diffusion Classifier's
gradient averaged over ``--eot`` fresh (t, eps) draws per class at every step), scored by that model; the
ResNet's adversarial images scored by the Diffusion Classifier (a transfer attack); and the standard checks that an
attack works: accuracy falls as the budget grows, a budget of 1 (any image) should reach about 0, and twice the
steps at ``--check-eps`` must not raise accuracy. The Diffusion Classifier is scored as chapter 9 scores it
(exhaustive, ``--trials`` even trials per class, its own seeded noise plans, which the attack never sees).
Results go to ``{dataset}_attacks.json`` as they finish; a rerun with the same settings skips finished entries.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..classifier import ClassifierConfig, DiffusionClassifier
from ..denoiser import conditioning_to
from ..estimators import interval_order
from ..evaluation.attacks import diffusion_scores, margin_loss, pgd_linf, pixel_budget, stratified_timesteps
from ..evaluation.lab_datasets import load_lab_dataset, to_model_input
from ..evaluation.run_store import read_entries_file, write_atomically
from ..images import pad_to
from ..schedules import Schedule
from .evaluate import accuracy_entry
from .registry import CLASSIFIER_NAMES, load_lab_classifier, load_lab_diffusion

NAMES = {"cnn": "CNN", "resnet": "ResNet", "vit": "ViT"}


def diffusion_attack_loss(adapter, labels: torch.Tensor, eot: int, generator: torch.Generator):
    """The margin loss of the Diffusion Classifier's scores for images (B, 1, 28, 28), fresh noise every call."""
    cond = conditioning_to(adapter.embed(list(range(adapter.num_classes))), adapter.device)

    def loss(x):
        x0 = adapter.encode(x)
        t = stratified_timesteps(len(x), eot, adapter.process.num_timesteps, generator)
        noise = torch.randn((len(x), eot, *x0.shape[1:]), generator=generator)
        return margin_loss(diffusion_scores(adapter, x0, cond, t, noise), labels)
    return loss


def baseline_loss(model, labels: torch.Tensor):
    return lambda x: margin_loss(model(pad_to(x, 32)).float(), labels)  # noqa: E731


@torch.no_grad()
def baseline_accuracy(model, x: torch.Tensor, labels: torch.Tensor) -> dict:
    pred = model(pad_to(x, 32)).argmax(1)
    return accuracy_entry(pred.cpu().numpy(), labels.cpu().numpy())


def diffusion_accuracy(clf: DiffusionClassifier, x: torch.Tensor, labels: torch.Tensor, batch: int) -> dict:
    pred = []
    for s in range(0, len(x), batch):
        chunk = x[s:s + batch].cpu()
        results = clf.classify_batch(list(chunk), list(range(10)), image_indices=list(range(s, s + len(chunk))))
        pred += [r.prediction for r in results]
    return accuracy_entry(np.array(pred), labels.cpu().numpy())


def attack_in_batches(make_loss, x, labels, eps, *, steps, batch, generator):
    """PGD over the images in groups of ``batch`` (memory), each group its own loss closure."""
    out = []
    for s in range(0, len(x), batch):
        xb, yb = x[s:s + batch], labels[s:s + batch]
        out.append(pgd_linf(make_loss(yb), xb, eps, steps=steps, step_size=eps / 4, generator=generator))
    return torch.cat(out)


def result_rows(result: dict) -> list[dict]:
    """One row per (entry, model) of a ``{dataset}_attacks.json``: eps, steps, model, attack ("white-box", or
    "transfer from <source>" for images attacked through another model), n, accuracy, ci_lo, ci_hi."""
    def row(e: dict, model: str, attack: str, r: dict) -> dict:
        return {"eps": e["eps"], "steps": e["steps"], "model": model, "attack": attack, "n": r["n"],
                "accuracy": r["accuracy"], "ci_lo": r["ci95"][0], "ci_hi": r["ci95"][1]}

    rows = []
    for e in result["entries"].values():
        rows += [row(e, model, "white-box", r) for model, r in e["accuracy"].items()]
        for name, r in e["transfer"].items():  # "<model> on the <source>'s images"
            model, source = name.split(" on the ")
            source = source.removesuffix(" images").removesuffix("'s")
            rows.append(row(e, model, f"transfer from {source}", r))
    return rows


def robustness_verdicts(rows: list[dict], steps: int) -> list[str]:
    """Per budget above 0, the Diffusion Classifier's white-box accuracy at ``steps`` against each baseline's:
    "above" / "below" where the 95 % intervals lie apart, "overlap" where the images run cannot tell
    (``estimators.interval_order``)."""
    white = [r for r in rows if r["attack"] == "white-box" and r["steps"] == steps]
    lines = []
    for eps in sorted({r["eps"] for r in white if r["eps"] > 0}):
        at = {r["model"]: r for r in white if r["eps"] == eps}
        dc = at.pop("Diffusion Classifier")
        lines.append(f"budget {eps:g}: Diffusion Classifier {100 * dc['accuracy']:.0f} % is " + ", ".join(
            f"{interval_order((dc['ci_lo'], dc['ci_hi']), (r['ci_lo'], r['ci_hi']))} {m} ({100 * r['accuracy']:.0f} %)"
            for m, r in at.items()))
    return lines


def attack_checks(result: dict) -> list[str]:
    """The standard sanity checks of an attack evaluation (Carlini et al., 2019, "On evaluating adversarial
    robustness"), one line each per model, computed from a ``{dataset}_attacks.json``:
    white-box accuracy never rises with the budget (at the base number of steps); a budget of 1 (any image) reaches
    0; twice the steps do not raise accuracy beyond its interval; the white-box attack is at least as strong as the
    transfer attack from the ResNet at every budget (were it weaker, the gradient would be masked, not absent)."""
    s = result["settings"]
    rows = result_rows(result)
    lines = []
    white = [r for r in rows if r["attack"] == "white-box"]
    for model in dict.fromkeys(r["model"] for r in white):
        curve = sorted((r["eps"], r["accuracy"]) for r in white if r["model"] == model and r["steps"] == s["steps"])
        rises = [(a, b) for a, b in zip(curve, curve[1:]) if b[1] > a[1]]
        at_one = dict(curve).get(1.0)
        twice = {r["steps"]: r for r in white if r["model"] == model and r["eps"] == s["check_eps"]}
        base, more = twice.get(s["steps"]), twice.get(2 * s["steps"])
        parts = ["falls with the budget: " + ("yes" if not rises else "no, rises " + ", ".join(
                     f"{a[0]:g} -> {b[0]:g}" for a, b in rises)),
                 f"at budget 1: {100 * at_one:.0f} %" if at_one is not None else "budget 1 not run"]
        if base and more:
            verdict = "no gain" if more["accuracy"] <= base["accuracy"] else (
                "within the interval" if more["accuracy"] <= base["ci_hi"] else "RISES beyond the interval")
            parts.append(f"{2 * s['steps']} steps at {s['check_eps']:g}: {100 * more['accuracy']:.0f} % against "
                         f"{100 * base['accuracy']:.0f} % ({verdict})")
        if model == "Diffusion Classifier":
            transfer = {r["eps"]: r["accuracy"] for r in rows if r["model"] == model and r["steps"] == s["steps"]
                        and r["attack"].startswith("transfer")}
            weaker = [e for e, acc in transfer.items() if dict(curve).get(e, 0) > acc]
            parts.append("white-box at least as strong as transfer: " + (
                "yes" if not weaker else "no at " + ", ".join(f"{e:g}" for e in weaker)))
        lines.append(f"{model}: " + "; ".join(parts))
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description="White-box and transfer attacks on the lab models.")
    p.add_argument("--dataset", required=True, choices=["mnist", "fashion_mnist"])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--n-images", type=int, default=100, help="the first test images")
    p.add_argument("--eps", type=float, nargs="+", default=[0.03, 0.1, 0.3, 1.0], help="budgets, [0, 1] pixel units")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--check-eps", type=float, default=0.1, help="budget at which twice the steps are also run")
    p.add_argument("--eot", type=int, default=4, help="fresh (t, eps) draws per class at every attack step")
    p.add_argument("--trials", type=int, default=100, help="even trials per class when the classifier is scored")
    p.add_argument("--attack-batch", type=int, default=50, help="images per PGD group")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args(argv)
    if min(a.eps) < 0 or a.n_images < 1 or a.steps < 1 or a.eot < 1:
        raise SystemExit("--eps must be >= 0 and --n-images, --steps and --eot at least 1.")
    settings = {k: getattr(a, k) for k in ("dataset", "n_images", "eps", "steps", "check_eps", "eot", "trials", "seed")}
    a.out.mkdir(parents=True, exist_ok=True)
    path = a.out / f"{a.dataset}_attacks.json"
    results = read_entries_file(path, settings, what="attacks")
    results["device"] = torch.cuda.get_device_name() if a.device == "cuda" else "cpu"
    entries = results["entries"]

    def save(key, entry):
        entries[key] = entry
        write_atomically(path, lambda f: f.write(json.dumps(results, indent=1).encode()))
        print(f"{key}: " + ", ".join(f"{m} {100 * r['accuracy']:.1f} %" for m, r in entry["accuracy"].items()),
              flush=True)

    dtype = torch.bfloat16 if a.device == "cuda" else torch.float32
    adapter = load_lab_diffusion(f"{a.dataset}_unet", device=a.device, dtype=dtype)
    for prm in adapter.unet.parameters():
        prm.requires_grad_(False)
    clf = DiffusionClassifier(adapter, ClassifierConfig(schedule=Schedule.exhaustive(a.trials), seed=a.seed,
                                                        batch_size=10 * a.trials * 10))
    baselines = {NAMES[c.removeprefix(a.dataset + "_")]: load_lab_classifier(c, device=a.device).eval()
                 for c in CLASSIFIER_NAMES if c.startswith(a.dataset + "_")}
    for m in baselines.values():
        for prm in m.parameters():
            prm.requires_grad_(False)
    test = load_lab_dataset(a.dataset, test_only=True)
    x = to_model_input(test.test_images[:a.n_images]).to(a.device)
    y = torch.as_tensor(test.test_labels[:a.n_images]).long().to(a.device)
    gen = torch.Generator().manual_seed(a.seed)
    plans = [(eps, a.steps) for eps in [0.0] + list(a.eps)] + [(a.check_eps, 2 * a.steps)]
    for eps01, steps in tqdm(plans, desc=f"{a.dataset} attacks"):
        key = f"eps={eps01:g} steps={steps}"
        if key in entries:
            continue
        eps = pixel_budget(eps01)
        t0 = time.perf_counter()
        gen.manual_seed(a.seed + int(1000 * eps01) + steps)  # each entry its own draws: a resume gives the same
        x_dc = attack_in_batches(lambda yb: diffusion_attack_loss(adapter, yb, a.eot, gen), x, y, eps, steps=steps,
                                 batch=a.attack_batch, generator=gen)
        dc_attack_s = time.perf_counter() - t0
        acc = {"Diffusion Classifier": diffusion_accuracy(clf, x_dc, y, batch=10)}
        transfer = {f"{n} on the Diffusion Classifier's images": baseline_accuracy(m, x_dc, y)
                    for n, m in baselines.items()}
        for name, model in baselines.items():
            x_b = attack_in_batches(lambda yb: baseline_loss(model, yb), x, y, eps, steps=steps, batch=a.attack_batch,
                                    generator=gen)
            acc[name] = baseline_accuracy(model, x_b, y)
            if name == "ResNet":  # the transfer attack: the ResNet's adversarial images shown to the others
                transfer["Diffusion Classifier on the ResNet's images"] = diffusion_accuracy(clf, x_b, y, batch=10)
        save(key, {"eps": eps01, "steps": steps, "accuracy": acc, "transfer": transfer,
                   "diffusion_attack_s_per_image": dc_attack_s / a.n_images,
                   "diffusion_attack_evaluations_per_image": steps * a.eot * 10 if eps01 else 0,
                   "wall_s": time.perf_counter() - t0})


if __name__ == "__main__":
    main()
