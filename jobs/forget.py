"""spark-submit entry point: `ltv forget`, delete customers' rows from every table on their request
(and keep them out of later ingests: a suppression list of hashed ids).

spark-submit jobs/forget.py --env cluster --users-file /dbfs/requests/2026-12-03.txt --requested-by dpo
"""

import sys

from ltv_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["forget", *sys.argv[1:]]))
