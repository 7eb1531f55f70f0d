"""spark-submit entry point: `ltv features`. All flags as for the CLI (--env, --set KEY=VALUE, ...).

spark-submit --py-files ltv_spark.zip jobs/features.py --env cluster [flags]
"""

import sys

from ltv_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["features", *sys.argv[1:]]))
