"""spark-submit entry point: `ltv score`. All flags as for the CLI (--as-of, --model, --env, --set).

spark-submit --py-files ltv_spark.zip jobs/score.py --env cluster --as-of 2026-11-24 --model latest
"""

import sys

from ltv_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))
