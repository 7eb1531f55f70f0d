"""spark-submit entry point: `ltv ingest-cdnow`. All flags as for the CLI (--env, --set KEY=VALUE, ...).

spark-submit --py-files ltv_spark.zip jobs/ingest_cdnow.py --env cluster [flags]
"""

import sys

from ltv_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest-cdnow", *sys.argv[1:]]))
