"""spark-submit entry point: `ltv evaluate`. All flags as for the CLI (--data, --seeds, --env, --set).

spark-submit --py-files ltv_spark.zip jobs/evaluate.py --env cluster --data generated --seeds 7,8,9
"""

import sys

from ltv_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
