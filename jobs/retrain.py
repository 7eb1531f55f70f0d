"""spark-submit entry point: `ltv retrain`, the weekly job (registers a challenger; promotes it to
champion only if not worse on validation).

spark-submit jobs/retrain.py --env cluster --date 2026-11-23
"""

import sys

from ltv_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["retrain", *sys.argv[1:]]))
