"""Every root and trainer setting is checked once, before anything runs: a wrong one is one
line, never a silent default or a failure deep inside."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from adamrepro.errors import ConfigError
from adamrepro.settings import RunSettings, TrainerSettings
from conftest import hydra_config


def settings(*overrides: str) -> RunSettings:
    cfg = hydra_config("experiment=mnist_logreg", "device=cpu", *overrides)
    return RunSettings.from_config(OmegaConf.to_container(cfg, resolve=True))


@pytest.mark.parametrize(
    "override,message",
    [
        ("+trainer.epoch=3", "trainer has no setting epoch; its settings are epochs, "),
        ("trainer.divergence_factor=-1", "trainer.divergence_factor must be a finite number > 1"),
        ("trainer.divergence_factor=1", "trainer.divergence_factor must be a finite number > 1"),
        ("trainer.batch_size=abc", "trainer.batch_size must be an integer, got 'abc'"),
        ("trainer.batch_size=0", "trainer.batch_size must be at least 1, got 0"),
        ("trainer.epochs=2.5", "trainer.epochs must be an integer, got 2.5"),
        ("trainer.progress=maybe", "trainer.progress must be true or false, got 'maybe'"),
        ("trainer.max_minutes=inf", "trainer.max_minutes must be a finite number >= 0"),
        ("trainer.stepsize_decay=cosine", "trainer.stepsize_decay must be one of none, "),
        (
            "trainer.minibatch_order=sorted",
            "trainer.minibatch_order must be one of random, fixed, replacement, got 'sorted'",
        ),
        ("trainer.train_eval_subset=-5", "trainer.train_eval_subset must be at least 0, got -5"),
        ("trainer.evaluate_initial=1", "trainer.evaluate_initial must be true or false, got 1"),
        ("seed=abc", "seed must be an integer, got 'abc'"),
        ("seed=-1", "seed must be at least 0, got -1"),
        ("device=tpu", "device must be auto, cpu, cuda or cuda:N, got 'tpu'"),
        ("dtype=float8", "dtype must be one of float32, float64, float16, bfloat16, got 'float8'"),
        ("dtype=float16", "dtype=float16 is refused: in half precision"),
        ("resume=sometimes", "resume must be true or false, got 'sometimes'"),
        ("precision=fp8", "precision must be one of 32-true, bf16-mixed, got 'fp8'"),
        ("precision=bf16_mixed", "precision must be one of 32-true, bf16-mixed, got 'bf16_mixed'"),
        (
            "precision=bf16-mixed dtype=float64",
            "precision=bf16-mixed keeps float32 parameters and costs: it needs dtype=float32",
        ),
    ],
)
def test_a_wrong_setting_is_one_line(override, message):
    with pytest.raises(ConfigError) as error:
        settings(*override.split())
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_the_defaults_and_what_may_be_asked_for_explicitly():
    default = settings()
    # the yaml defaults are the dataclass defaults (hydra_config switches the bar off)
    assert default.trainer == TrainerSettings(epochs=46, stepsize_decay="sqrt_step", progress=False)
    assert default.dtype == torch.float32 and default.resume and default.seed == 0
    half = settings("dtype=float16", "allow_half_precision=true")
    assert half.dtype == torch.float16
    assert settings("trainer.max_minutes=8.5").trainer.max_minutes == 8.5
    assert settings("trainer.batch_size=64").trainer.batch_size == 64
    assert default.precision == "32-true" and settings("precision=bf16-mixed").precision == (
        "bf16-mixed"
    )


def test_bf16_mixed_computes_matmuls_in_bfloat16_and_costs_in_float32():
    x, w = torch.randn(4, 8), torch.randn(8, 3)
    with settings("precision=bf16-mixed").autocast():
        product = x @ w
        cost = torch.nn.functional.cross_entropy(product, torch.tensor([0, 1, 2, 0]))
    assert product.dtype == torch.bfloat16 and cost.dtype == torch.float32
    with settings().autocast():
        assert (x @ w).dtype == torch.float32


def test_no_cuda_is_one_line_where_there_is_none():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="no CUDA device is available"):
        settings("device=cuda")
