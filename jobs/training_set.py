"""spark-submit entry point: `ltv training-set`. All flags as for the CLI (--env, --set KEY=VALUE, ...).

spark-submit --py-files ltv_spark.zip jobs/training_set.py --env cluster [flags]
"""

import sys

from ltv_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["training-set", *sys.argv[1:]]))
