from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dermx.explain import CamEngine
from dermx.models import build_model
from dermx.train import DermXLoss, class_weight_tensor, guided_attention_loss


def test_guided_attention_matches_hand_computation() -> None:
    p = torch.tensor([[[[1.0, 0.5], [0.0, 0.0]]]])  # (1, 1, 2, 2)
    y = torch.tensor([[[[1.0, 1.0], [0.0, 0.5]]]])
    # TP = 1 + 0.5 = 1.5; P = 2.5; TN = 0 + 0 + 1 + 0.5 = 1.5; N = 1.5
    expected = 1 - (0.5 * (1.5 + 1) / (2.5 + 1) + 0.5 * (1.5 + 1) / (1.5 + 1))
    value = guided_attention_loss(p, y, torch.tensor([[True]]))
    assert value.item() == pytest.approx(expected, abs=1e-6)


def test_guided_attention_averages_present_pairs_only() -> None:
    p = torch.rand(2, 3, 4, 4)
    y = (torch.rand(2, 3, 4, 4) > 0.5).float()
    present = torch.tensor([[True, False, False], [False, False, True]])
    both = guided_attention_loss(p, y, present)
    first = guided_attention_loss(p[:1, :1], y[:1, :1], present[:1, :1])
    last = guided_attention_loss(p[1:, 2:], y[1:, 2:], present[1:, 2:])
    assert both.item() == pytest.approx((first.item() + last.item()) / 2, abs=1e-6)
    assert guided_attention_loss(p, y, torch.zeros(2, 3, dtype=torch.bool)).item() == 0.0


def test_guided_attention_perfect_map_scores_zero_and_maps_are_resized() -> None:
    y = torch.zeros(1, 1, 8, 8)
    y[..., :4, :] = 1
    assert guided_attention_loss(y, y, torch.tensor([[True]])).item() == pytest.approx(0.0, abs=1e-6)
    small = torch.zeros(1, 1, 2, 2)
    small[..., 0, :] = 1
    assert guided_attention_loss(small, y, torch.tensor([[True]])).item() < 0.2


def test_class_weights_are_aligned_by_name() -> None:
    weights = class_weight_tensor({"vitiligo": 3.0, "Acne": 2.0})
    assert weights.tolist() == [2.0, 1.0, 1.0, 1.0, 1.0, 3.0]
    with pytest.raises(ValueError, match="Eczema"):
        class_weight_tensor({"Eczema": 1.0})


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = build_model("small", kind="dermx+", pretrained=False)
    for module in model.modules():  # timm zero-initialises the last BN of each block: undo, so maps vary
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.5, 1.5)
    return model.train()


def test_maps_of_all_characteristics_in_one_backward_equal_a_loop() -> None:
    model = _model()
    images = torch.randn(3, 3, 64, 64)
    engine = CamEngine(model, "gradcam", model.config.cam_layer, size="features", create_graph=True)
    torch.manual_seed(1)  # same dropout masks in both forward passes
    result = engine(images, "characteristic")
    assert result.route == "jacobian"  # the small preset's CAM layer (layer4) feeds global pooling
    assert result.maps.shape == (3, 16, 2, 2)
    activations = {}
    handle = model.cam_module().register_forward_hook(lambda m, i, o: activations.setdefault("a", o))
    torch.manual_seed(1)
    logits = model(images)["characteristic"]
    handle.remove()
    a = activations["a"]
    reference = []
    for c in range(logits.shape[1]):
        (grad,) = torch.autograd.grad(logits[:, c].sum(), a, retain_graph=True)
        cam = torch.relu((grad.mean((-2, -1), keepdim=True) * a).sum(1))
        low, high = cam.amin((-2, -1), keepdim=True), cam.amax((-2, -1), keepdim=True)
        reference.append((cam - low) / (high - low + 1e-7))
    torch.testing.assert_close(result.maps, torch.stack(reference, 1), atol=1e-5, rtol=0)


def test_guided_attention_gradient_reaches_the_backbone() -> None:
    model = _model()
    images = torch.randn(2, 3, 64, 64)
    result = CamEngine(model, "gradcam", model.config.cam_layer, size="features", create_graph=True)(
        images, "characteristic")
    targets = torch.rand(2, 16, 64, 64)
    loss = DermXLoss(ga_weight=10.0)(result.logits, torch.tensor([0, 5]), torch.ones(2, 16), result.maps, targets)
    model.zero_grad()
    loss.attention.backward()
    assert model.backbone.conv1.weight.grad.abs().sum() > 0
    assert model.backbone.layer4[1].conv2.weight.grad.abs().sum() > 0
    assert loss.total.item() == pytest.approx(
        (loss.diagnosis + loss.characteristic + 10 * loss.attention).item(), rel=1e-6)


def test_targets_are_area_averaged_to_the_grid_and_the_loss_matches_a_hand_computation() -> None:
    """A 4 × 4 reference brought to a 2 × 2 grid: each cell is the mean of its 2 × 2 block, so a lesion of
    one pixel keeps a quarter of a cell (nearest sampling would drop it or fill the cell)."""
    from dermx.train import maps_at_grid

    y = torch.zeros(1, 1, 4, 4)
    y[0, 0, 0, 0] = 1.0  # one pixel in the top-left cell
    y[0, 0, 2:, 2:] = 0.5  # the whole bottom-right cell outlined by half the raters
    target = maps_at_grid(y, (2, 2))
    assert target[0, 0].tolist() == [[0.25, 0.0], [0.0, 0.5]]
    p = torch.tensor([[[[1.0, 0.0], [0.5, 1.0]]]])
    # TP = 1·0.25 + 1·0.5 = 0.75; P = 0.75; TN = 0·0.75 + 1·1 + 0.5·1 + 0·0.5 = 1.5; N = 4 − 0.75 = 3.25
    expected = 1 - (0.5 * (0.75 + 1) / (0.75 + 1) + 0.5 * (1.5 + 1) / (3.25 + 1))
    assert guided_attention_loss(p, target, torch.tensor([[True]])).item() == pytest.approx(expected, abs=1e-6)
    assert maps_at_grid(y, (4, 4)) is y


def test_module_takes_the_attention_loss_at_the_cam_grid_by_default() -> None:
    from dermx.train import TrainConfig
    from dermx.train.module import DermXModule

    torch.manual_seed(0)
    model = build_model("tiny", kind="dermx+", input_size=(32, 32), pretrained=False)
    module = DermXModule(model, TrainConfig.of(kind="dermx+", preset="tiny")).eval()  # no dropout noise
    assert module.config.optim.ga_resolution == "features"
    images, refs = torch.randn(2, 3, 32, 32), torch.rand(2, 16, 32, 32)
    batch = {"image": images, "maps": refs, "diagnosis": torch.tensor([0, 1]),
             "characteristics": torch.ones(2, 16)}
    _, parts = module._step(batch, create_graph=False)
    cams = CamEngine(model, "gradcam", model.config.cam_layer, size="features")(images, "characteristic")
    assert cams.maps.shape[-2:] == (4, 4)  # 32 px at output stride 8
    expected = guided_attention_loss(cams.maps, maps_at_grid_ref(refs, (4, 4)),
                                     torch.ones(2, 16, dtype=torch.bool))
    assert parts.attention.item() == pytest.approx(expected.item(), rel=1e-5)


def test_loss_at_the_grid_equals_the_loss_of_the_map_repeated_over_each_cell() -> None:
    """Area-averaged targets are consistent with the input-size loss: with s divided by the cell area,
    the grid loss is the input-size loss of the nearest-upsampled map (every sum at the input is the
    cell area times the sum over cells of the cell's map value and mean target)."""
    torch.manual_seed(1)
    p, y = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 16, 16)
    present = torch.tensor([[True, True, False], [False, True, True]])
    at_input = guided_attention_loss(F.interpolate(p, scale_factor=4, mode="nearest"), y, present, smooth=1.0)
    at_grid = guided_attention_loss(p, maps_at_grid_ref(y, (4, 4)), present, smooth=1.0 / 16)
    assert at_grid.item() == pytest.approx(at_input.item(), abs=1e-6)


def maps_at_grid_ref(maps: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Area averaging by reshaping (grid divides the size): the mean over each block."""
    b, t, h, w = maps.shape
    return maps.reshape(b, t, grid[0], h // grid[0], grid[1], w // grid[1]).mean(dim=(3, 5))
