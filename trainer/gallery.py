"""The Grad-CAM / feature-map gallery: each run saves its row (the same test images for every run) in
``gallery.npz`` when it is evaluated, so a report can be drawn later without the weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from cxr_desktop.core.architectures import cam_target_layer
from cxr_desktop.core.explain import grad_cam
from cxr_desktop.core.preprocess import normalize_input
from trainer.data.cache import ImageCache, decode_for_training
from trainer.data.samples import SampleTable

GALLERY = "gallery.npz"


def gallery_picks(labels: np.ndarray, count: int = 4) -> list[int]:
    """``count - 1`` positives and one negative, seeded, so every run of a study shows the same images."""
    rng = np.random.default_rng(0)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    picks = list(rng.choice(pos, min(count - 1, len(pos)), replace=False)) if len(pos) else []
    return [int(i) for i in picks + (list(rng.choice(neg, 1, replace=False)) if len(neg) else [])]


def _probability_and_feature_map(model, layer, x: torch.Tensor, index: int) -> tuple[float, np.ndarray]:
    """The finding's probability and the channel-mean activation of ``layer`` for one input."""
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda module, inputs, output: captured.append(output.detach().float()))
    try:
        with torch.no_grad():
            prob = torch.sigmoid(model(x)[0, index]).item()
    finally:
        handle.remove()
    return prob, captured[0][0].mean(0).cpu().numpy()


def save_gallery_rows(
    model: torch.nn.Module, architecture: str, spec, cache_dir: str, test: SampleTable, index: int, run_dir: Path
) -> None:
    picks = gallery_picks(test.labels[:, index])
    cache = ImageCache.open(Path(cache_dir)) if cache_dir else None
    model = model.float().eval()
    device = next(model.parameters()).device
    layer = cam_target_layer(architecture, model)
    images, cams, fmaps, probs = [], [], [], []
    for i in picks:
        row = cache.lookup(test.paths[i]) if cache else None
        img = np.array(cache.array[row]) if row is not None else decode_for_training(test.paths[i], spec)
        x = normalize_input(torch.from_numpy(img)[None].to(device), spec)
        cams.append(grad_cam(model, layer, x, index)[0].astype(np.float16))
        prob, fmap = _probability_and_feature_map(model, layer, x, index)
        images.append(img)
        fmaps.append(fmap.astype(np.float16))
        probs.append(prob)
    np.savez_compressed(
        run_dir / GALLERY,
        picks=np.array(picks),
        labels=test.labels[picks, index],
        images=np.stack(images),
        cams=np.stack(cams),
        fmaps=np.stack(fmaps),
        probs=np.array(probs),
    )


def draw_gallery(rows: dict[str, Path], finding: str, path: Path) -> None:
    """``rows``: label -> run folder holding ``gallery.npz``; one figure row per run."""
    data = {label: np.load(folder / GALLERY) for label, folder in rows.items()}
    count = len(next(iter(data.values()))["picks"])
    fig = Figure(figsize=(2.0 * 2 * count, 2.1 * len(data) + 0.6))
    axes = fig.subplots(len(data), 2 * count, squeeze=False)
    for r, (label, d) in enumerate(data.items()):
        for c in range(count):
            ax_cam, ax_map = axes[r, 2 * c], axes[r, 2 * c + 1]
            ax_cam.imshow(d["images"][c], cmap="gray")
            ax_cam.imshow(d["cams"][c].astype(np.float32), cmap="jet", alpha=0.4)
            truth = "pos" if d["labels"][c] == 1 else "neg"
            ax_cam.set_title(f"#{d['picks'][c]} {truth} p={d['probs'][c]:.2f}", fontsize=7)
            ax_map.imshow(d["fmaps"][c].astype(np.float32), cmap="viridis")
            ax_map.set_title("feature map", fontsize=7)
            for ax in (ax_cam, ax_map):
                ax.set_xticks([])
                ax.set_yticks([])
        axes[r, 0].set_ylabel(label.replace(", ", "\n"), fontsize=6)
    fig.suptitle(
        f"Grad-CAM ({finding}) and mean feature map of the Grad-CAM layer: the same test images "
        "under each configuration",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
