"""The Lightning module: a DermX-family network, its loss, optimiser and validation metrics.

The Trainer must run with ``inference_mode=False``: DermX+ validation computes Grad-CAM maps, which
need gradients (see :func:`dermx.train.losses.gradcam_maps`).
"""

from __future__ import annotations

import math

import lightning as L
import torch
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from sklearn.metrics import f1_score
from torch.optim.lr_scheduler import LRScheduler

from dermx.explain import CamEngine
from dermx.models.dermx_net import DermXNet
from dermx.train.config import TrainConfig
from dermx.train.losses import DermXLoss, LossParts, class_weight_tensor, maps_at_grid


def macro_f1(diagnosis_probs: torch.Tensor, diagnosis: torch.Tensor, char_probs: torch.Tensor | None = None,
             characteristics: torch.Tensor | None = None) -> dict[str, float]:
    """Diagnosis macro-F1 over the six classes, and characteristic-identification macro-F1 (p ≥ 0.5)
    over the characteristics present in the reference."""
    dx = f1_score(diagnosis.cpu().numpy(), diagnosis_probs.argmax(1).cpu().numpy(),
                  labels=list(range(diagnosis_probs.shape[1])), average="macro", zero_division=0)
    out = {"dx_f1": float(dx)}
    if char_probs is not None and characteristics is not None and char_probs.numel():
        present = characteristics.sum(0) > 0
        if present.any():
            truth = characteristics[:, present].cpu().numpy() > 0.5
            pred = char_probs[:, present].cpu().numpy() >= 0.5
            out["char_f1"] = float(f1_score(truth, pred, average="macro", zero_division=0))
    return out


class DermXModule(L.LightningModule):
    """Trains a :class:`~dermx.models.DermXNet` with CE + BCE (+ λ · guided attention)."""

    def __init__(self, model: DermXNet, config: TrainConfig, char_pos_weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.ga_weight = config.attention_weight if model.characteristic_head is not None else 0.0
        optim = config.optim
        self.criterion = DermXLoss(class_weights=class_weight_tensor(optim.class_weights, model.config.diagnoses),
                                   ga_weight=self.ga_weight, alpha=optim.ga_alpha, smooth=optim.ga_smooth,
                                   char_pos_weight=char_pos_weight, char_weight=optim.char_weight,
                                   dx_weight=0.0 if model.config.bottleneck in ("sequential", "independent")
                                   else 1.0)
        self._val_outputs: list[dict[str, torch.Tensor]] = []
        if config.run.channels_last:
            model.to(memory_format=torch.channels_last)
        # Grad-CAM of every characteristic logit at the CAM layer, at the feature grid, one backward pass
        self._cams = {graph: CamEngine(model, "gradcam", model.config.cam_layer, size="features",
                                       create_graph=graph) for graph in (True, False)}
        self.save_hyperparameters({"train": config.to_dict(), "model": model.config.to_dict()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model(images)

    def attention_weight_now(self) -> float:
        """λ at the current step: ramped linearly from 0 over ``ga_warmup_epochs`` (training only)."""
        warmup = self.config.optim.ga_warmup_epochs
        if self.ga_weight <= 0 or warmup <= 0 or not self.training or self._trainer is None:
            return self.ga_weight
        per_epoch = max(1, int(self.trainer.num_training_batches)) if self.trainer.num_training_batches != float(
            "inf") else 1
        progress = (self.global_step + 1) / (warmup * per_epoch)
        return self.ga_weight * min(1.0, progress)

    def _maps_target(self, maps: torch.Tensor, grid: torch.Size) -> torch.Tensor:
        return maps_at_grid(maps, grid) if self.config.optim.ga_resolution == "features" else maps

    def _step(self, batch: dict[str, torch.Tensor], *, create_graph: bool) -> tuple[dict[str, torch.Tensor],
                                                                                  LossParts]:
        if self.config.run.channels_last:
            batch = {**batch, "image": batch["image"].contiguous(memory_format=torch.channels_last)}
        if self.ga_weight <= 0 or "maps" not in batch:
            outputs = self.model(batch["image"])
            return outputs, self.criterion(outputs, batch["diagnosis"], batch["characteristics"])
        cams = self._cams[create_graph](batch["image"], "characteristic")
        outputs = cams.logits
        maps = cams.maps
        targets = self._maps_target(batch["maps"], maps.shape[-2:])
        self.criterion.ga_weight = self.attention_weight_now()
        return outputs, self.criterion(outputs, batch["diagnosis"], batch["characteristics"], maps, targets)

    def _log_parts(self, stage: str, parts: LossParts, batch_size: int) -> None:
        values = {"loss": parts.total, "loss_dx": parts.diagnosis, "loss_char": parts.characteristic}
        if self.ga_weight > 0:
            values["loss_ga"] = parts.attention
        on_step = stage == "train"
        self.log_dict({f"{stage}/{k}": v.detach() for k, v in values.items()}, on_step=on_step,
                      on_epoch=True, batch_size=batch_size, sync_dist=not on_step,
                      prog_bar=False)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        _, parts = self._step(batch, create_graph=True)
        self._log_parts("train", parts, batch["image"].shape[0])
        if self.ga_weight > 0:
            self.log("train/ga_weight", self.criterion.ga_weight, on_step=True, on_epoch=False, batch_size=1)
        return parts.total

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        outputs, parts = self._step(batch, create_graph=False)
        self._log_parts("val", parts, batch["image"].shape[0])
        # under bf16/16-mixed autocast the logits are half precision, which NumPy cannot take: decoded in float32
        dx_probs, char_probs = self.model.probabilities({k: v.detach() for k, v in outputs.items()})
        self._val_outputs.append({"dx_probs": dx_probs, "diagnosis": batch["diagnosis"],
                                  "char_probs": char_probs, "characteristics": batch["characteristics"]})

    def on_validation_epoch_end(self) -> None:
        if not self._val_outputs:
            return
        gathered = {k: torch.cat([o[k] for o in self._val_outputs]) for k in self._val_outputs[0]}
        self._val_outputs.clear()
        if self.trainer.world_size > 1:
            # all_gather returns the structure it is given (a dict here); Lightning types it as any of them
            gathered = {k: v.flatten(0, 1) for k, v in self.all_gather(gathered).items()}  # type: ignore[union-attr]
        scores = macro_f1(gathered["dx_probs"], gathered["diagnosis"], gathered["char_probs"],
                          gathered["characteristics"])
        self.log_dict({f"val/{k}": v for k, v in scores.items()}, prog_bar=True, rank_zero_only=True)

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        """AdamW + CosineAnnealingWarmRestarts(T0, T_mult, eta_min) stepped per epoch (``restarts``), or
        a linear warm-up from lr/10 over ``warmup_epochs`` then one cosine decay to ``eta_min``, stepped
        per optimisation step (``cosine``)."""
        cfg = self.config.optim
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        schedule: LRScheduler
        if cfg.lr_schedule == "restarts":
            schedule = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=cfg.t0,
                                                                            T_mult=cfg.t_mult, eta_min=cfg.eta_min)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(total - 1, round(cfg.warmup_epochs * total / max(1, cfg.epochs)))
        floor = min(1.0, cfg.eta_min / cfg.lr)

        def factor(step: int) -> float:
            if step < warmup:
                return 0.1 + 0.9 * step / warmup
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
