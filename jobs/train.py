"""spark-submit entry point: `ltv train`. All flags as for the CLI (--launcher, --num-proc, --env, --set).

spark-submit --py-files ltv_spark.zip jobs/train.py --env cluster --launcher horovod --num-proc 4
"""

import sys

from ltv_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
