"""Write the synthetic click/conversion data as the CSV files examples/train.toml reads."""

import pathlib
import sys

import tfmtl

rows = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
folder = pathlib.Path(__file__).parent / "synthetic"
folder.mkdir(exist_ok=True)
train, valid = tfmtl.data.synthetic_recsys(rows, seed=0).split(0.8, seed=0)
print(tfmtl.data.write_csv(train, folder / "train.csv"), tfmtl.data.write_csv(valid, folder / "valid.csv"))
