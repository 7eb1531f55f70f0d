"""spark-submit entry point: `ltv promote`, point the registered model's champion alias at a version
(a rollback when it is an older one).

spark-submit jobs/promote.py --env cluster --version 3
"""

import sys

from ltv_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["promote", *sys.argv[1:]]))
