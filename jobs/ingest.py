"""spark-submit entry point: `ltv ingest`. All flags as for the CLI (--env, --set KEY=VALUE, ...).

spark-submit --py-files ltv_spark.zip jobs/ingest.py --env cluster [flags]
"""

import sys

from ltv_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]]))
