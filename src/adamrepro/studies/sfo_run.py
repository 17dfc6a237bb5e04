"""SFO's driver: the sum-of-functions optimizer (`optim/sfo.py`) on one of the project's
experiments, recorded as any run is, so that the figure code draws it beside the others.

    python -m adamrepro.studies.sfo_run experiment=mnist_mlp_deterministic [overrides] \
        [+sfo.subfunctions=24] [+sfo.passes=25] hydra.run.dir=DIR

SFO is not a population optimizer and chooses for itself which minibatch to evaluate, so it
cannot run inside the training loop: this driver splits the training set once, by a seeded
permutation, into `subfunctions` fixed minibatches (default sqrt(n) / 10, the rule the SFO
authors give), builds the experiment's model with one member in float64, and lets SFO take
`passes` x N steps. Each subfunction is its minibatch's share of the training objective
(mean cost x size / n), so that they sum to the objective. After every pass (N steps) it
records, like the training loop: train_cost (the mean of the subfunction costs evaluated
during the pass, in mean-cost units), train_cost_full, test_loss and test_accuracy at the
pass's end (and train_cost_subset with trainer.train_eval_subset), the wall time, the time
spent in SFO's steps alone (step_time_s, cumulative, without the evaluations), and SFO's
own memory (its subspace basis and models); a row of epoch 0 holds the costs before the first
step.

Like a run of the loop it survives being stopped: every `trainer.checkpoint_minutes` (between two
steps), on SIGINT/SIGTERM/SIGUSR1/2 and when `trainer.max_minutes` is spent, it writes
`checkpoint.pt` (the weights, SFO's state: its basis and models, the pass in hand, the random
generators) beside the record, and the same command continues from there; the checkpoint is
deleted once the run is complete. With 100 subfunctions SFO's basis alone is 4.4 GB on the
Figure 2 (b) network, and so is each checkpoint.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ..checkpoint import (
    CHECKPOINT_NAME,
    StopRequests,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from ..data import load_data
from ..errors import USER_ERRORS, ConfigError
from ..models import build_model
from ..optim.sfo import SFO
from ..records import differences, new_record, read_record, run_identity, save_record
from ..training.evaluation import DivergenceMonitor, evaluation, evaluation_subset


def subfunction_batches(n: int, count: int, seed: int) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return [order[i::count] for i in range(count)]


def sfo_memory(optimizer: SFO) -> int:
    """Bytes SFO holds beyond the model: the basis and every subfunction's model."""
    size = optimizer.basis.numel() * optimizer.basis.element_size()
    for model in optimizer.models:
        for tensor in (model.x, model.g, model.hessian):
            if tensor is not None:
                size += tensor.numel() * tensor.element_size()
        size += sum(s.numel() * s.element_size() * 2 for s, _ in model.history)
    return size


def run_sfo(config: DictConfig | dict[str, Any], out_dir: Path) -> dict[str, Any]:
    cfg: dict[str, Any] = (
        OmegaConf.to_container(config, resolve=True)
        if isinstance(config, DictConfig)
        else dict(config)
    )  # type: ignore[assignment]
    settings = dict(cfg.get("sfo") or {})
    unknown = set(settings) - {"subfunctions", "passes", "selection", "max_history"}
    if unknown:
        raise ConfigError(f"sfo has no setting {', '.join(sorted(unknown))}")
    seed = int(cfg["seed"])
    torch.manual_seed(seed)
    dtype = torch.float64
    data = load_data(cfg["data"]).to("cpu", dtype)
    model = build_model(cfg["model"], data, [seed]).to(dtype=dtype)
    n = len(data.x_train)
    count = int(settings.get("subfunctions") or max(2, round(math.sqrt(n) / 10)))
    passes = int(settings.get("passes") or cfg["trainer"]["epochs"])
    batches = subfunction_batches(n, count, seed)
    params = list(model.parameters())

    def subfunction(i: int) -> tuple[float, torch.Tensor]:
        rows = batches[i]
        model.zero_grad(set_to_none=True)
        cost = model.cost(data.x_train[rows], data.y_train[rows])[0] * (len(rows) / n)
        cost.backward()
        return cost.item(), torch.cat([p.grad.reshape(-1) for p in params])

    optimizer = SFO(
        params,
        subfunction,
        count,
        selection=settings.get("selection", "distance"),
        max_history=int(settings.get("max_history", 10)),
        seed=seed,
    )
    member = {
        "name": "sfo",
        "label": "SFO",
        "stepsize": math.nan,
        "subfunctions": count,
        "seed": seed,
    }
    fresh = new_record(
        cfg,
        [member],
        seed=seed,
        device=torch.device("cpu"),
        data=data.description,
        sfo={"subfunctions": count, "parameters": sum(p.numel() for p in params)},
    )
    eval_batch = int(cfg["trainer"]["eval_batch_size"])
    subset = evaluation_subset(
        n, int(cfg["trainer"].get("train_eval_subset", 0)), seed, torch.device("cpu")
    )
    watch = DivergenceMonitor(1, math.inf, torch.device("cpu"))  # nothing is frozen: SFO alone

    def evaluate() -> dict[str, float]:
        columns = evaluation(model, data, eval_batch, watch, True, subset=subset)
        return {name: values[0] for name, values in columns.items()}

    record, position = resume(fresh, out_dir, model, optimizer)
    epoch, values, stepping, peak = position
    started = time.perf_counter() - float(record["wall_time_s"])
    if not record["curves"]:  # x = 0 of a figure that draws the cost before training
        record["curves"].append(
            {
                "member": 0,
                "epoch": 0,
                "train_cost": math.nan,
                **evaluate(),
                "current_stepsize": optimizer.step_scale,
                "wall_time_s": 0.0,
                "step_time_s": 0.0,
            }
        )
    every = 60.0 * float(cfg["trainer"].get("checkpoint_minutes") or math.inf)
    budget = cfg["trainer"].get("max_minutes")
    deadline = None if budget is None else time.monotonic() + 60.0 * float(budget)
    saved = time.monotonic()

    def checkpoint() -> None:
        state = {
            "model": model.state_dict(),
            "sfo": optimizer.state_dict(),
            "epoch": epoch,
            "values": list(values),
            "stepping": stepping,
            "peak": peak,
            "rng": rng_state(torch.device("cpu")),  # the dropout masks
        }
        record["wall_time_s"] = time.perf_counter() - started
        save_checkpoint(state, out_dir)
        save_record(record, out_dir)

    with StopRequests(deadline) as stops:
        try:
            while epoch < passes:
                while len(values) < count:
                    step_started = time.perf_counter()
                    values.append(optimizer.step()[1] * count)  # in mean-cost units
                    stepping += time.perf_counter() - step_started
                    asked = stops.requested()
                    if asked or time.monotonic() - saved >= every:
                        checkpoint()
                        saved = time.monotonic()
                    if asked:
                        record["status"] = asked
                        save_record(record, out_dir)
                        print(f"{asked}: continue with the same command", file=sys.stderr)
                        stops.finish()
                        return record
                peak = max(peak, sfo_memory(optimizer))
                epoch += 1
                row = {
                    "member": 0,
                    "epoch": epoch,
                    "train_cost": sum(values) / len(values),
                    **evaluate(),
                    "current_stepsize": optimizer.step_scale,
                    "wall_time_s": time.perf_counter() - started,
                    "step_time_s": stepping,
                }
                values = []
                record["curves"].append(row)
                record["wall_time_s"] = row["wall_time_s"]
                record["sfo"].update(
                    events=dict(optimizer.events),
                    memory_bytes=peak,
                    subspace=optimizer.basis.shape[1],
                )
                save_record(record, out_dir)
                print(
                    f"pass {epoch}: cost {row['train_cost']:.4g}, "
                    f"full {row['train_cost_full']:.4g}",
                    file=sys.stderr,
                    flush=True,
                )
            record["status"] = "completed"
        except KeyboardInterrupt:
            record["status"] = "interrupted"
            raise
        finally:
            save_record(record, out_dir)
    (out_dir / CHECKPOINT_NAME).unlink(missing_ok=True)
    return record


def resume(
    fresh: dict[str, Any], out_dir: Path, model: torch.nn.Module, optimizer: SFO
) -> tuple[dict[str, Any], tuple[int, list[float], float, int]]:
    """The record to continue and where (passes done, the values of the pass in hand, the
    seconds spent stepping, the peak memory): from the checkpoint in `out_dir` when its record
    is of the same run and not complete; else `fresh` from the start."""
    start: tuple[int, list[float], float, int] = (0, [], 0.0, 0)
    record = read_record(out_dir)
    if record is None or record.get("status") == "completed":
        return fresh, start
    changed = differences(run_identity(record["config"]), run_identity(fresh["config"]))
    state = load_checkpoint(out_dir, torch.device("cpu"))
    if changed or state is None:
        return fresh, start
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["sfo"])
    set_rng_state(state["rng"], torch.device("cpu"))
    record["curves"] = [row for row in record["curves"] if row["epoch"] <= state["epoch"]]
    record["status"] = "running"
    print(
        f"resuming {out_dir} at pass {state['epoch'] + 1}, step {len(state['values'])} "
        f"of {optimizer.n}",
        file=sys.stderr,
    )
    return record, (state["epoch"], list(state["values"]), state["stepping"], state["peak"])


def main() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from ..training import CONFIG_DIR

    @hydra.main(config_path=CONFIG_DIR, config_name="train", version_base="1.3")
    def _run(cfg: DictConfig) -> None:
        try:
            run_sfo(cfg, Path(HydraConfig.get().runtime.output_dir))
        except USER_ERRORS as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)

    _run()


if __name__ == "__main__":
    from adamrepro.studies.sfo_run import main as _main

    _main()
