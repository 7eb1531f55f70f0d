"""spark-submit entry point: `ltv sessions`. All flags as for the CLI (--env, --set KEY=VALUE, ...).

spark-submit --py-files ltv_spark.zip jobs/sessions.py --env cluster [flags]
"""

import sys

from ltv_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["sessions", *sys.argv[1:]]))
