"""spark-submit entry point: `ltv stream`, near-real-time scoring (runs until stopped).

spark-submit jobs/stream.py --env cluster                   # a long-running streaming job
spark-submit jobs/stream.py --env cluster --available-now   # catch up on what has landed, then stop
"""

import sys

from ltv_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["stream", *sys.argv[1:]]))
