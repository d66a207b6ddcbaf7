"""Stage 2 speed: seconds to load the ~23k-row cleaned file into SQLite and local MariaDB.

Input: CLEANED_DATA_FILE if it exists, else a stand-in built from the raw seed (text = query,
text_hash = sha256(text)). Each engine gets a fresh database and four runs: first load (all inserts),
the same file again (all unchanged), 10% relabelled (updates), and `--replace` with 10% of rows
dropped from the file (deletes). Target: the first load into MariaDB under 5 s.

    python benchmarks/bench_load.py [--mariadb-url mysql+pymysql://root@127.0.0.1:3306]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config import get_settings, mask_url  # noqa: E402
from intent_pipeline.files import write_csv_atomic  # noqa: E402
from load_to_mysql import load_file  # noqa: E402

TARGET_SECONDS = 5.0


def cleaned_file(workdir: Path) -> Path:
    """The real stage-1 output if present, else a stand-in with the same columns and size."""
    settings = get_settings()
    if settings.cleaned_data_file.is_file():
        return settings.cleaned_data_file
    raw = pd.read_csv(settings.raw_data_file, dtype=str, keep_default_na=False)
    frame = pd.DataFrame({"text": raw["query"], "label": raw["intent"]})
    frame["text_hash"] = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in frame["text"]]
    frame = frame.drop_duplicates("text_hash")
    path = workdir / "cleaned_standin.csv"
    write_csv_atomic(frame, path)
    return path


def variants(path: Path, workdir: Path) -> dict[str, Path]:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    relabelled = frame.copy()
    every_tenth = relabelled.index % 10 == 0
    relabelled.loc[every_tenth, "label"] = relabelled.loc[every_tenth, "label"] + "_v2"
    write_csv_atomic(relabelled, workdir / "relabelled.csv")
    write_csv_atomic(relabelled[~(relabelled.index % 10 == 1)], workdir / "shrunk.csv")
    return {"relabelled": workdir / "relabelled.csv", "shrunk": workdir / "shrunk.csv"}


def run_engine(name: str, url: str, path: Path, extra: dict[str, Path]) -> None:
    runs = [
        ("first load", path, False),
        ("same file again", path, False),
        ("10% relabelled", extra["relabelled"], False),
        ("--replace, 10% fewer rows", extra["shrunk"], True),
    ]
    for title, file, replace in runs:
        start = time.perf_counter()
        report = load_file(file, url, source="bench", replace=replace)
        seconds = time.perf_counter() - start
        print(f"{name:8s} {title:28s} {seconds:6.2f} s  {report.summary()}")
        if title == "first load":
            verdict = "OK" if seconds < TARGET_SECONDS else "SLOWER THAN TARGET"
            print(f"{name:8s} {'':28s} target < {TARGET_SECONDS:.0f} s: {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mariadb-url", default="mysql+pymysql://root@127.0.0.1:3306",
                        help="MariaDB server URL without database; a throw-away database is created (default: %(default)s)")
    parser.add_argument("--skip-mariadb", action="store_true", help="benchmark SQLite only")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        path = cleaned_file(workdir)
        extra = variants(path, workdir)
        print(f"input: {path} ({sum(1 for _ in open(path, encoding='utf-8')) - 1} lines)")
        run_engine("sqlite", f"sqlite:///{workdir / 'bench.db'}", path, extra)
        if args.skip_mariadb:
            return 0
        name = f"ip_bench_{uuid.uuid4().hex[:10]}"
        server = sa.create_engine(args.mariadb_url + "/")
        try:
            run_engine("mariadb", f"{args.mariadb_url}/{name}?charset=utf8mb4", path, extra)
        finally:
            with server.begin() as conn:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
            server.dispose()
        print(f"mariadb server: {mask_url(args.mariadb_url)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
