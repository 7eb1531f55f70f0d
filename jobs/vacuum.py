"""spark-submit entry point: `ltv vacuum`, delete the files no version of any table needs any more
(replaced versions, killed jobs' leftovers) once older than the retention.

spark-submit jobs/vacuum.py --env cluster --retention-hours 168
"""

import sys

from ltv_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["vacuum", *sys.argv[1:]]))
