"""Device choice, training cost figures, the training-log bridge and the model asset's pool and metadata."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch

from genesis_pipelines.engine.core.device import TRAINING_LOGGER, forward_training_log, measure_training, resolve_device
from genesis_pipelines.engine.core.errors import SpecError
from genesis_pipelines.engine.core.spec import load_spec

HAS_CUDA = torch.cuda.is_available()


def test_auto_picks_what_is_there():
    assert resolve_device("auto") == ("cuda" if HAS_CUDA else "cpu")
    assert resolve_device("CPU") == "cpu"


@pytest.mark.dagster  # Dagster is imported in the tests that use it, so the unit tier never loads it
def test_the_device_resource_resolves_as_the_engine_does():
    from genesis_pipelines.defs.resources import DeviceResource

    assert DeviceResource().resolve() == resolve_device("auto")


def test_cpu_and_auto_without_a_driver_do_not_import_torch():
    # a copula table's training step in its own process must not pay torch's import (~6 CPU s) to learn "cpu"
    import subprocess
    import sys

    code = ("import sys; from genesis_pipelines.engine.core.device import resolve_device\n"
            "assert resolve_device('cpu') == 'cpu' and resolve_device('auto') == 'cpu'\n"
            "print('torch' in sys.modules)")
    env = {**__import__("os").environ, "CUDA_VISIBLE_DEVICES": "-1"}  # auto with no GPU visible, on any machine
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("bad", ["tpu", "cuda:x", "gpu0"])
def test_bad_device_names_fail_clearly(bad):
    with pytest.raises(SpecError, match="auto, cpu, cuda, cuda:N"):
        resolve_device(bad)


@pytest.mark.skipif(HAS_CUDA, reason="checks the error raised without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(SpecError, match="no CUDA GPU"):
        resolve_device("cuda:0")


def test_cpu_cost_is_measured():
    with measure_training("cpu") as cost:
        np.ones((256, 256)).sum()
    assert cost.seconds >= 0 and cost.peak_memory_bytes > 10 * 2**20 and cost.memory_kind == "process_peak_rss"
    assert set(cost.as_metadata()) == {"device", "training_seconds", "peak_memory_mib", "peak_memory_kind"}


def test_training_logger_is_forwarded_only_inside_the_block():
    seen: list[str] = []
    logger = logging.getLogger(TRAINING_LOGGER)
    with forward_training_log(seen.append):
        logger.info("epoch %d loss %.2f", 1, 0.5)
    logger.info("after")
    assert seen == ["epoch 1 loss 0.50"]


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
def test_cuda_cost_uses_max_allocated():
    with measure_training("cuda") as cost:
        torch.ones((1024, 1024), device="cuda").sum().item()
    assert cost.memory_kind == "cuda_max_allocated" and cost.peak_memory_bytes >= 4 * 2**20


def _tiny_dataset(folder):
    rng = np.random.default_rng(0)
    data = folder / "data"
    data.mkdir(parents=True)
    pd.DataFrame({"shop_id": np.arange(1, 41), "region": rng.choice(["n", "s"], 40)}).to_csv(data / "shops.csv", index=False)
    pd.DataFrame({"sale_id": np.arange(1, 301), "shop_id": rng.integers(1, 41, 300),
                  "amount": np.round(rng.gamma(2, 10, 300), 2)}).to_csv(data / "sales.csv", index=False)
    spec = folder / "dataset.yaml"
    spec.write_text("name: tiny\nsource: {kind: csv_folder, path: data}\n"
                    "tables:\n  shops: {primary_key: shop_id}\n  sales: {primary_key: sale_id}\n"
                    "foreign_keys:\n  - {child: sales.shop_id, parent: shops.shop_id}\n"
                    "constraints:\n  - {kind: positive, table: sales, column: amount}\n")
    return spec


@pytest.mark.dagster
def test_training_steps_hold_the_gpu_pool_only_on_cuda_and_record_their_cost(tmp_path, isolated_data, monkeypatch):
    import dagster as dg

    from genesis_pipelines.defs.factory import build_dataset_defs
    from genesis_pipelines.defs.resources import default_resources

    spec = load_spec(_tiny_dataset(tmp_path))
    torch_spec = spec.model_copy(update={"generator": spec.generator.model_copy(update={"tables": {"sales": "autoregressive"}})})
    monkeypatch.setenv("GENESIS_DEVICE", "cuda")
    on_cuda = {k.to_user_string(): a.op.pool for a in build_dataset_defs(torch_spec).assets for k in a.keys}
    # only the table whose generator trains with torch on CUDA; the copula table, plan and assembly run beside it
    assert on_cuda["tiny/model/sales"] == "gpu" and on_cuda["tiny/model/shops"] is None
    assert on_cuda["tiny/model"] is None and on_cuda["tiny/training_plan"] is None
    monkeypatch.setenv("GENESIS_DEVICE", "cpu")
    assert {a.op.pool for a in build_dataset_defs(torch_spec).assets} == {None}
    defs = build_dataset_defs(spec)
    model = next(a for a in defs.assets if dg.AssetKey(["tiny", "model"]) in a.keys)
    result = dg.materialize(assets=list(defs.assets), resources=default_resources(), instance=dg.DagsterInstance.ephemeral(),
                            selection=dg.AssetSelection.assets(dg.AssetKey(["tiny", "model"])).upstream())
    assert result.success
    metadata = result.asset_materializations_for_node(model.op.name)[0].metadata
    assert metadata["device"].value == "cpu" and metadata["peak_memory_kind"].value == "process_peak_rss"
    assert metadata["training_seconds"].value >= 0 and metadata["peak_memory_mib"].value > 0
    assert metadata["generators"].value["sales"]["method"] == "gaussian_copula"
    table = result.asset_materializations_for_node("tiny__model__sales")[0].metadata
    assert table["device"].value == "cpu" and table["train_rows"].value > 0 and table["method"].value == "gaussian_copula"
