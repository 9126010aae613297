"""The code location loads, and the asset graph mirrors each spec's FK graph."""

from __future__ import annotations

import dagster as dg
import pytest

from genesis_pipelines.definitions import build_definitions

pytestmark = pytest.mark.dagster


@pytest.fixture(scope="module")
def defs(tmp_path_factory) -> dg.Definitions:
    with pytest.MonkeyPatch.context() as mp:  # the plans stored at load go to a private data dir, never ./data
        mp.setenv("GENESIS_DATA_DIR", str(tmp_path_factory.mktemp("definitions_data")))
        mp.delenv("GENESIS_SPECS_DIR", raising=False)
        yield build_definitions()


def test_definitions_load_and_validate(defs):
    dg.Definitions.validate_loadable(defs)
    jobs = {job.name for job in defs.resolve_all_job_defs()}
    assert {"chinook_synthetic_twin", "nycflights_synthetic_twin", "nycflights_inferred_synthetic_twin"} <= jobs
    assert set(defs.resources) >= {"warehouse", "storage", "pii_settings"}
    assert defs.resolve_schedule_def("chinook_regeneration").cron_schedule == "0 3 * * *"


def test_asset_keys_groups_and_kinds(defs):
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    for expected in ("chinook/source/Track", "chinook/schema", "chinook/pii_scan", "chinook/model",
                     "chinook/synthetic/PlaylistTrack", "chinook/quality_report", "chinook/privacy_report"):
        assert expected in keys
    node = graph.get(dg.AssetKey(["chinook", "synthetic", "Track"]))
    assert node.group_name == "chinook"
    assert "duckdb" in node.kinds
    # chinook's Track trains the autoregressive network: the model says torch, and scipy for the copulas
    assert {"torch", "scipy"} <= set(graph.get(dg.AssetKey(["chinook", "model"])).kinds)
    assert "html" in graph.get(dg.AssetKey(["chinook", "quality_report"])).kinds


def test_every_asset_names_its_stage(defs):
    """The lineage filter `tag:genesis/stage=<stage>` shows one stage of a twin, so every asset must carry one."""
    from genesis_pipelines.defs.assets.common import STAGES

    graph = defs.resolve_asset_graph()
    stage_of = {k.to_user_string(): graph.get(k).tags.get("genesis/stage") for k in graph.get_all_asset_keys()}
    untagged = sorted(k for k, stage in stage_of.items() if stage is None and not k.endswith("/definition_error"))
    assert not untagged, f"assets without a genesis/stage tag: {untagged[:5]}"
    assert set(stage_of.values()) - {None} <= set(STAGES)
    expected = {"chinook/source/Track": "source", "chinook/schema": "analysis", "chinook/pii_scan": "analysis",
                "chinook/training_plan": "training", "chinook/model/Track": "training", "chinook/model": "training",
                "chinook/synthetic/Track": "synthetic", "chinook/synthetic_files": "synthetic",
                "chinook/quality_report": "reports", "chinook/privacy_report": "reports", "chinook/drift": "monitoring"}
    assert {k: stage_of.get(k) for k in expected} == expected
    # the string the README gives for the UI's lineage filter: chinook's synthetic stage, every synthetic table
    synthetic = dg.AssetSelection.from_string('tag:"genesis/stage"="synthetic" and group:"chinook"').resolve(graph)
    assert dg.AssetKey(["chinook", "synthetic", "PlaylistTrack"]) in synthetic
    assert dg.AssetKey(["chinook", "source", "PlaylistTrack"]) not in synthetic
    assert all(key.path[0] == "chinook" for key in synthetic)


def test_synthetic_deps_follow_the_fk_graph(defs):
    graph = defs.resolve_asset_graph()

    def parents(table: str) -> set[str]:
        return {k.to_user_string() for k in graph.get(dg.AssetKey(["chinook", "synthetic", table])).parent_keys}

    assert parents("Album") == {"chinook/model", "chinook/synthetic/Artist"}
    assert parents("InvoiceLine") == {"chinook/model", "chinook/synthetic/Invoice", "chinook/synthetic/Track"}
    assert parents("PlaylistTrack") == {"chinook/model", "chinook/synthetic/Playlist", "chinook/synthetic/Track"}
    assert "chinook/synthetic/Employee" not in parents("Employee"), "a self reference is not a graph edge"
    # inferred keys shape the graph too
    flights = {k.to_user_string() for k in graph.get(dg.AssetKey(["nycflights_inferred", "synthetic", "flights"])).parent_keys}
    assert flights == {"nycflights_inferred/model", "nycflights_inferred/synthetic/airlines",
                       "nycflights_inferred/synthetic/airports", "nycflights_inferred/synthetic/planes"}


def test_checks_gate_every_synthetic_table(defs):
    graph = defs.resolve_asset_graph()
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert ("chinook/synthetic/Employee", "keys_valid") in checks
    assert ("chinook/synthetic/Customer", "no_pii_leak") in checks
    assert ("chinook/quality_report", "quality_threshold") in checks
    assert ("chinook/privacy_report", "privacy_gates") in checks


def test_adding_a_spec_adds_a_pipeline(tmp_path, monkeypatch, isolated_data):
    from genesis_pipelines_tests.helpers import write_shop

    write_shop(tmp_path / "specs" / "shop")
    monkeypatch.setenv("GENESIS_SPECS_DIR", str(tmp_path / "specs"))
    jobs = {job.name for job in build_definitions().resolve_all_job_defs()}
    assert "shop_synthetic_twin" in jobs and "chinook_synthetic_twin" not in jobs
