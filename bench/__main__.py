"""Run every benchmark: `python -m bench [NAME ...]` calls each bench module's `main()` in turn.

Modules are discovered in this package (any `bench/<name>.py` not starting with `_`); naming
some runs only those. Each module runs with its own defaults, or with the options given
after one name (`python -m bench hunt_scale --accounts 1000`). Exit status 1 when any
module failed, 2 for an unknown name or options without exactly one name.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback
from collections.abc import Sequence

import bench


def discover() -> list[str]:
    return sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_")
    )


def main(argv: Sequence[str] | None = None) -> int:
    available = discover()
    given = list(sys.argv[1:] if argv is None else argv)
    # `python -m bench NAME --option ...`: what follows the first option goes to NAME.
    first_option = next((i for i, arg in enumerate(given) if arg.startswith("-")), len(given))
    names, options = given[:first_option] or available, given[first_option:]
    if options and len(names) != 1:
        print("options need exactly one bench module before them", file=sys.stderr)
        return 2
    unknown = [name for name in names if name not in available]
    if unknown:
        print(f"unknown bench module(s): {', '.join(unknown)}", file=sys.stderr)
        print(f"available: {', '.join(available)}", file=sys.stderr)
        return 2
    failed: list[str] = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        run = getattr(module, "main", None)
        if not callable(run):
            print(f"=== bench.{name}: no main(), skipped", flush=True)
            continue
        print(f"=== bench.{name}", flush=True)
        saved_argv, sys.argv = sys.argv, [f"python -m bench.{name}", *options]
        started = time.perf_counter()
        try:
            code = run()
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others
            traceback.print_exc()
            code = 1
        finally:
            sys.argv = saved_argv
        elapsed = time.perf_counter() - started
        if code not in (None, 0):
            failed.append(name)
        status = "FAILED" if name in failed else "done"
        print(f"=== bench.{name}: {status} in {elapsed:.1f} s\n", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
