"""Learning-rate schedules: hand-computed factors, the budget's progress, the callback on the groups."""

import math
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.callbacks import Timer

from egtr.engine.optim import adamw
from egtr.engine.schedule import LR_DROP_AT, LR_DROP_FACTOR, LearningRateSchedule, budget_progress, lr_factor
from egtr.engine.settings import TrainSettings, preset


def test_factors():
    assert lr_factor("constant", 0, 0, 0.7) == 1.0
    assert lr_factor("constant", 4, 10, 0.0) == pytest.approx(0.5)  # step 4 is the 5th of 10 warm-up steps
    assert lr_factor("constant", 9, 10, 0.0) == 1.0
    assert lr_factor("cosine", 100, 0, 0.0) == 1.0
    assert lr_factor("cosine", 100, 0, 0.5) == pytest.approx(0.5)
    assert lr_factor("cosine", 100, 0, 0.25) == pytest.approx((1 + math.cos(math.pi / 4)) / 2)
    assert lr_factor("cosine", 100, 0, 1.0) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor("cosine", 100, 0, 1.5) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor("cosine", 1, 4, 0.5) == pytest.approx(0.5 * 0.5)
    assert lr_factor("step", 100, 0, LR_DROP_AT - 1e-9) == 1.0
    assert lr_factor("step", 100, 0, LR_DROP_AT) == pytest.approx(LR_DROP_FACTOR)
    assert lr_factor("step", 100, 0, 1.0) == pytest.approx(LR_DROP_FACTOR)
    assert lr_factor("step", 1, 4, 0.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="lr_schedule"):
        lr_factor("linear", 0, 0, 0.0)


def fake_trainer(step: int, max_steps: int = -1, max_epochs: int = -1, callbacks=(), total=float("inf")):
    return SimpleNamespace(
        global_step=step,
        max_steps=max_steps,
        max_epochs=max_epochs,
        callbacks=list(callbacks),
        estimated_stepping_batches=total,
        optimizers=[],
    )


def test_progress_by_steps_time_or_epochs():
    assert budget_progress(fake_trainer(25, max_steps=100)) == pytest.approx(0.25)
    timer = Timer(duration={"minutes": 10})
    timer.load_state_dict({"time_elapsed": {"train": 150.0}})  # 2.5 of 10 minutes, as after a resume
    assert budget_progress(fake_trainer(5, callbacks=[timer])) == pytest.approx(0.25)
    assert budget_progress(fake_trainer(5, max_steps=10, callbacks=[timer])) == pytest.approx(0.5)
    assert budget_progress(fake_trainer(30, max_epochs=3, total=120)) == pytest.approx(0.25)
    assert budget_progress(fake_trainer(30, max_epochs=3)) == 0.0  # an unknown length: stays at the start


def test_callback_scales_every_group_from_its_initial_rate():
    weights = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))]
    optimizer = adamw([{"params": [weights[0]], "lr": 1e-3}, {"params": [weights[1]], "lr": 1e-4}], 1e-4)
    schedule = LearningRateSchedule("cosine", warmup_steps=0)
    trainer = fake_trainer(50, max_steps=100)
    trainer.optimizers = [optimizer]
    for _ in range(2):  # applying it twice at one step gives the same rates (from initial_lr, not from lr)
        schedule.on_train_batch_start(trainer, None, None, 0)
        assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([5e-4, 5e-5])
    resumed = adamw([{"params": [weights[0]], "lr": 1e-3}, {"params": [weights[1]], "lr": 1e-4}], 1e-4)
    resumed.load_state_dict(optimizer.state_dict())  # a resumed run keeps initial_lr in its groups
    trainer.optimizers, trainer.global_step = [resumed], 75
    schedule.on_train_batch_start(trainer, None, None, 0)
    expected = (1 + math.cos(math.pi * 0.75)) / 2
    assert [group["lr"] for group in resumed.param_groups] == pytest.approx(
        [1e-3 * expected, 1e-4 * expected]
    )


@pytest.mark.parametrize("implementation", ["default", "for-loop", "foreach", "fused"])
def test_adamw_implementations_give_the_same_update(implementation):
    def trained(kind: str) -> torch.Tensor:
        torch.manual_seed(0)
        weight = torch.nn.Parameter(torch.randn(5, 3))
        optimizer = adamw([{"params": [weight], "lr": 1e-2}], 1e-4, kind)
        for _ in range(3):
            (weight**2).sum().backward()
            optimizer.step()
            optimizer.zero_grad()
        return weight.detach()

    torch.testing.assert_close(trained(implementation), trained("for-loop"), rtol=1e-6, atol=1e-7)


def test_settings_check_the_names_and_fused_with_mixed_precision():
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainSettings(lr_schedule="linear")
    with pytest.raises(ValueError, match="adamw_implementation"):
        TrainSettings(adamw_implementation="apex")
    with pytest.raises(ValueError, match="cannot clip"):
        TrainSettings(adamw_implementation="fused", precision="bf16-mixed")
    TrainSettings(adamw_implementation="fused", precision="bf16-mixed", gradient_clip=0)
    for dataset in ("visual_genome", "open_images"):  # the official presets: constant rates, torch's AdamW
        for phase in ("detector", "detector_finetune", "egtr", "finetune"):
            settings = preset(dataset, phase)
            assert (settings.lr_schedule, settings.warmup_steps, settings.adamw_implementation) == (
                "constant",
                0,
                "default",
            )
