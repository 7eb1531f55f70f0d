"""CDNOW (Fader, Hardie & Lee 2005), the real purchase log shipped with ``lifetimes``, in our contract.

Each line of CDNOW_master.txt is one purchase: customer id, date (YYYYMMDD), number of CDs, dollar
value. CDNOW_sample.txt (the 2,357-customer sample of the paper) has no header and one more field,
the sample's own customer number, after the original id. Each purchase becomes a ``purchase``
event at midnight UTC with quantity = CDs and unit price = value / CDs, so that price x quantity
is the dollar value.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ltv_spark.contract import RAW_COLUMNS


def cdnow_path(name: str = "CDNOW_master.txt") -> Path:
    """The file inside the installed ``lifetimes`` package (its own loader needs pkg_resources)."""
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the lifetimes package is not installed: it ships the CDNOW files")
    path = Path(spec.origin).parent / "datasets" / name
    if not path.exists():
        raise FileNotFoundError(f"{path} not found in the lifetimes package")
    return path


def read_cdnow(spark: SparkSession, path: str | Path) -> DataFrame:
    """CDNOW lines (master or sample layout) as raw contract rows (strings) + source_file."""
    lines = spark.read.text(str(path)).rdd.map(lambda row: row[0]).zipWithIndex().toDF(["line", "line_no"])
    fields = F.split(F.trim(F.regexp_replace("line", r"\r", "")), r"\s+")
    skip = F.when(F.size(fields) == 5, 1).otherwise(0)  # the sample's extra customer number

    def field(index: int) -> F.Column:
        return F.element_at(fields, skip + index + 1)

    parsed = lines.filter(fields.getItem(0) != "customer_id").select(
        "line_no",
        "line",
        fields.getItem(0).alias("customer"),
        field(1).alias("yyyymmdd"),
        field(2).alias("cds"),
        field(3).alias("dollars"),
    )
    unit_price = F.expr("try_divide(try_cast(dollars AS double), try_cast(cds AS double))")
    event_id = F.format_string("cdnow-%06d", F.col("line_no"))
    raw = parsed.select(
        event_id.alias("event_id"),
        F.col("customer").alias("user_id"),
        F.concat_ws(
            "-", F.substring("yyyymmdd", 1, 4), F.substring("yyyymmdd", 5, 2), F.substring("yyyymmdd", 7, 2)
        ).alias("event_time"),
        F.lit("purchase").alias("event_type"),
        F.lit(None).cast("string").alias("product_id"),
        F.lit("cd").alias("category"),
        F.coalesce(unit_price.cast("string"), F.col("dollars")).alias("price"),
        F.col("cds").alias("quantity"),
        event_id.alias("order_id"),
        F.lit(Path(path).as_uri()).alias("source_file"),
    )
    return raw.select(*RAW_COLUMNS, "source_file")
