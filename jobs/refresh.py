"""spark-submit entry point: `ltv refresh`, the daily job. Flags as for the CLI.

spark-submit jobs/refresh.py --env local --date 2026-11-20
spark-submit --archives ltv_env.tar.gz#environment jobs/refresh.py --env cluster \
    --from 2026-11-01 --to 2026-11-07
"""

import sys

from ltv_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["refresh", *sys.argv[1:]]))
