"""spark-submit entry point: `ltv learning-curve`. All flags as for the CLI (--seeds, --epochs, --env, --set).

spark-submit --py-files ltv_spark.zip jobs/learning_curve.py --env cluster --seeds 7
"""

import sys

from ltv_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["learning-curve", *sys.argv[1:]]))
