"""Dataset spec validation: bundled specs load, bad fields raise a SpecError that names the field."""

from __future__ import annotations

import copy
from pathlib import Path

import pydantic
import pytest
import yaml

from genesis_pipelines.engine.core.errors import SpecError
from genesis_pipelines.engine.core.spec import DatasetSpec, discover_specs, load_spec, parse_spec
from genesis_pipelines.engine.sources.locations import source_file

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT / "resources" / "datasets"
CHINOOK = DATASETS / "chinook" / "dataset.yaml"

BUNDLED = discover_specs(DATASETS)


def _chinook_data() -> dict:
    return yaml.safe_load(CHINOOK.read_text(encoding="utf-8"))


def _write(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "dataset.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


# ---------------------------------------------------------------- bundled specs


def test_bundled_specs_are_found():
    names = {p.parent.name for p in BUNDLED}
    assert {"chinook", "nycflights", "nycflights_inferred"} <= names


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.parent.name)
def test_every_bundled_spec_loads_and_its_tables_exist(path: Path):
    spec = load_spec(path)
    assert isinstance(spec, DatasetSpec)
    assert spec.name == path.parent.name
    assert spec.description
    assert spec.source_path.is_dir(), f"{spec.name}: source folder {spec.source_path} missing"
    assert spec.tables, f"{spec.name}: bundled specs declare their tables"
    for table in spec.tables:
        assert source_file(spec, table).is_file(), f"{spec.name}: no file for table {table}"
    # bundled data carries its provenance
    assert (spec.source_path / "SOURCE.md").is_file()


def test_chinook_spec_content():
    spec = load_spec(CHINOOK)
    assert len(spec.tables) == 11
    assert spec.tables["PlaylistTrack"].primary_key_columns == ["PlaylistId", "TrackId"]
    assert all(t.primary_key_columns for t in spec.tables.values())
    assert len(spec.foreign_keys) == 11
    assert ("Employee", "ReportsTo") in {fk.child_ref for fk in spec.foreign_keys}
    assert spec.column_types == {"Genre.Name": "categorical", "MediaType.Name": "categorical", "Playlist.Name": "categorical"}
    assert spec.pii == {"Customer.Company": "keep"}
    # Track (audio and video mixed) uses the autoregressive model, every other table the copula
    assert spec.generator.method_for("Track") == "autoregressive"
    assert spec.generator.method_for("Album") == "gaussian_copula"
    assert spec.scale == 1.0 and spec.holdout_fraction == 0.2 and spec.seed == 0
    assert spec.thresholds.quality_min == 70 and spec.thresholds.exact_copies_max == 0
    assert spec.thresholds.dcr_share_max == 0.6 and spec.thresholds.mia_auc_max == 0.6
    assert spec.schedule == "0 3 * * *"
    assert spec.source_path == CHINOOK.parent.resolve() / "data"


def test_nycflights_specs_share_data_and_differ_in_keys():
    declared = load_spec(DATASETS / "nycflights" / "dataset.yaml")
    inferred = load_spec(DATASETS / "nycflights_inferred" / "dataset.yaml")
    assert declared.source_path.resolve() == inferred.source_path.resolve()
    assert len(declared.foreign_keys) == 5
    assert declared.tables["flights"].primary_key_columns == []
    assert inferred.foreign_keys is None  # absent key: inferred from the data
    assert all(not t.primary_key_columns for t in inferred.tables.values())
    assert set(inferred.tables) == set(declared.tables)


def test_discover_specs_on_missing_folder_is_empty(tmp_path: Path):
    assert discover_specs(tmp_path / "nope") == []


# ---------------------------------------------------------------- bad specs


def _mutated(change) -> dict:
    data = copy.deepcopy(_chinook_data())
    change(data)
    return data


BAD_SPECS = {
    "scale_too_large": (lambda d: d.update(scale=5000), "scale"),
    "scale_zero": (lambda d: d.update(scale=0), "scale"),
    "unknown_top_level_key": (lambda d: d.update(bogus_option=1), "bogus_option"),
    "unknown_table_key": (lambda d: d["tables"]["Album"].update(primary=1), "tables.Album.primary"),
    "bad_pii_policy": (lambda d: d["pii"].update({"Customer.Email": "shred"}), "pii"),
    "bad_column_type": (lambda d: d["column_types"].update({"Genre.Name": "colour"}), "column_types"),
    "fk_to_undeclared_table": (
        lambda d: d["foreign_keys"].append({"child": "Track.AlbumId", "parent": "Record.RecordId"}),
        "foreign_keys.parent",
    ),
    "pii_on_undeclared_table": (lambda d: d["pii"].update({"Shopper.Email": "drop"}), "pii"),
    "generator_for_undeclared_table": (lambda d: d["generator"].update(tables={"Shop": "ctgan"}), "generator.tables"),
    "ref_without_column": (lambda d: d["foreign_keys"].append({"child": "Track", "parent": "Album.AlbumId"}), "child"),
    "bad_cron": (lambda d: d.update(schedule="every day"), "schedule"),
    "bad_name": (lambda d: d.update(name="my dataset"), "name"),
    "bad_source_kind": (lambda d: d["source"].update(kind="excel"), "source.kind"),
    "holdout_too_large": (lambda d: d.update(holdout_fraction=0.95), "holdout_fraction"),
    "mia_auc_below_chance": (lambda d: d["thresholds"].update(mia_auc_max=0.3), "thresholds.mia_auc_max"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_field_raises_spec_error_naming_it(tmp_path: Path, case: str):
    change, field = BAD_SPECS[case]
    path = _write(tmp_path, _mutated(change))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert field in message, message
    assert str(path) in message  # the error says which file


def test_parse_spec_with_same_bad_field():
    with pytest.raises(SpecError, match="scale"):
        parse_spec(_mutated(lambda d: d.update(scale=5000)))


def test_refs_are_not_checked_when_no_tables_declared():
    spec = parse_spec({"name": "free", "pii": {"Anything.Email": "hash"}})
    assert spec.tables == {} and spec.foreign_keys is None


def test_spec_must_be_a_mapping(tmp_path: Path):
    with pytest.raises(SpecError, match="mapping"):
        load_spec(_write(tmp_path, "- just\n- a list\n"))


def test_invalid_yaml(tmp_path: Path):
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(_write(tmp_path, "name: [unclosed\n"))


def test_missing_spec_file(tmp_path: Path):
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "absent.yaml")


def test_spec_is_frozen():
    spec = load_spec(CHINOOK)
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        spec.scale = 2.0  # type: ignore[misc]
