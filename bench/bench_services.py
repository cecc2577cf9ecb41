"""The services benchmark in one run: search requests/s and p50/p95 latency through `photoindex serve`
at 10k and 100k assets (`bench_api_search.py`), then embed throughput through `photoindex serve-ml`
against in-process inference (`bench_ml_service.py`). Extra arguments go to neither; run the two
scripts directly to tune them.

Usage: python bench/bench_services.py [--quick]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    search = ["--sizes", "10000,100000"] + (["--clients", "1,4", "--runs", "1", "--seconds", "3"] if quick else [])
    embed = ["--repeats", "2", "--images", "512"] if quick else []
    for script, args in (("bench_api_search.py", search), ("bench_ml_service.py", embed)):
        print(f"== {script} {' '.join(args)}", flush=True)
        code = subprocess.call([sys.executable, str(HERE / script), *args])
        if code:
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
