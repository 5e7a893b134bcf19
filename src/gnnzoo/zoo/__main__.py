"""``python -m gnnzoo.zoo``: export a zoo to a dataset that loads without gnnzoo, import one back, check one.

python -m gnnzoo.zoo export <zoo> <out> [--where key=value ...] [--dtype float16|float32]
python -m gnnzoo.zoo import <export> <zoo>
python -m gnnzoo.zoo check <export>
"""

from __future__ import annotations

import argparse
import sys

from gnnzoo.zoo.store import ZooError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gnnzoo.zoo", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export", help="write <zoo>'s completed runs to the export folder <out>")
    ex.add_argument("zoo")
    ex.add_argument("out")
    ex.add_argument(
        "--where", nargs="*", default=[], metavar="KEY=VALUE", help="record fields or config keys; a,b: any"
    )
    ex.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    ex.add_argument("--shard-mb", type=float, default=256.0, help="most MiB per weights shard")
    ex.add_argument("--seed", type=int, default=0, help="seed of the declared splits")
    im = sub.add_parser("import", help="write an export's runs back into a zoo")
    im.add_argument("export")
    im.add_argument("zoo")
    ck = sub.add_parser("check", help="check an export's files against its manifest")
    ck.add_argument("export")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "export":
            from gnnzoo.zoo.export import export_zoo, parse_where

            m = export_zoo(
                args.zoo, args.out, parse_where(args.where), args.dtype, int(args.shard_mb * 2**20), args.seed
            )
            c = m["counts"]
            print(
                f"exported {c['runs']} runs, {c['checkpoints']} checkpoints, {c['trajectories']} trajectories "
                f"({c['duplicates_dropped']} duplicates dropped) to {args.out} in {m['export_wall_s']:.1f} s"
            )
        elif args.cmd == "import":
            from gnnzoo.zoo.exported import import_export

            zoo = import_export(args.export, args.zoo)
            print(f"imported into {zoo.root}: {len(zoo)} entries")
        else:
            from gnnzoo.zoo.exported import ZooExport

            c = ZooExport(args.export).manifest["counts"]
            print(f"ok: {c['runs']} runs, {c['checkpoints']} checkpoints; every file matches the manifest")
    except (ZooError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
