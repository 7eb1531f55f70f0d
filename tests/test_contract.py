"""describe the event contract: every kind of bad row gets its own reason, good rows are typed."""

from __future__ import annotations

import datetime as dt

from chispa import assert_df_equality

from ltv_spark.contract import RAW_COLUMNS, Reason, classify_events
from ltv_spark.ingest import count_by_file, label_rows

MIN, MAX = dt.datetime(2000, 1, 1), dt.datetime(2026, 1, 2)
T = "2025-06-01T10:00:00.000Z"
GOOD_VIEW = ("e1", "u1", T, "view", "p1", "c1", "9.99", "", "")
GOOD_BUY = ("e2", "u1", T, "purchase", "p1", "c1", "9.99", "2", "o1")

CASES = [
    (GOOD_VIEW, None),
    (GOOD_BUY, None),
    (("e3", "u1", "2025-06-01 10:00:00", "CART", "p1", "c1", "", "", ""), None),  # case and space tolerated
    (("", "u1", T, "view", "p1", "c1", "1", "", ""), Reason.MISSING_EVENT_ID),
    (("e4", " ", T, "view", "p1", "c1", "1", "", ""), Reason.MISSING_USER),
    (("e5", "u1", "yesterday", "view", "p1", "c1", "1", "", ""), Reason.UNPARSABLE_TIME),
    (("e6", "u1", "1970-01-01T00:00:00Z", "view", "p1", "c1", "1", "", ""), Reason.TIME_OUT_OF_RANGE),
    (("e7", "u1", "2031-01-01T00:00:00Z", "view", "p1", "c1", "1", "", ""), Reason.TIME_OUT_OF_RANGE),
    (("e8", "u1", T, "click", "p1", "c1", "1", "", ""), Reason.UNKNOWN_TYPE),
    (("e9", "u1", T, "purchase", "p1", "c1", "-1.00", "1", "o2"), Reason.BAD_PRICE),
    (("e10", "u1", T, "purchase", "p1", "c1", "", "1", "o2"), Reason.BAD_PRICE),
    (("e11", "u1", T, "view", "p1", "c1", "NaN", "", ""), Reason.BAD_PRICE),
    (("e12", "u1", T, "view", "p1", "c1", "abc", "", ""), Reason.BAD_PRICE),
    (("e13", "u1", T, "purchase", "p1", "c1", "5", "0", "o3"), Reason.BAD_QUANTITY),
    (("e14", "u1", T, "refund", "p1", "c1", "5", "1.5", "o3"), Reason.BAD_QUANTITY),
    (("e15", "u1", T, "cart", "p1", "c1", "5", "-2", ""), Reason.BAD_QUANTITY),
    (("e16", "u1", T, "purchase", "p1", "c1", "5", "1", ""), Reason.MISSING_ORDER_ID),
]


def raw_frame(spark, rows, corrupt=None):
    corrupt = corrupt or [None] * len(rows)
    data = [(*row, "file:/drop/a.csv", bad) for row, bad in zip(rows, corrupt, strict=True)]
    schema = ", ".join(f"{c} string" for c in RAW_COLUMNS) + ", source_file string, _corrupt_record string"
    return spark.createDataFrame(data, schema)


def it_tags_each_broken_rule_with_its_reason(spark):
    rows = [row for row, _ in CASES]
    classified = classify_events(raw_frame(spark, rows), MIN, MAX)
    actual = [row["reason"] for row in classified.select("reason").collect()]
    assert actual == [reason for _, reason in CASES]


def it_marks_lines_the_reader_could_not_split_as_malformed(spark):
    classified = classify_events(raw_frame(spark, [GOOD_VIEW], corrupt=["e1,u1,broken"]), MIN, MAX)
    row = classified.first()
    assert row["reason"] == Reason.MALFORMED_LINE
    assert row["raw"] == "e1,u1,broken"


def it_types_good_rows_and_keeps_the_original_values_of_bad_ones(spark):
    bad_buy = (*GOOD_BUY[:6], "-9.99", *GOOD_BUY[7:])
    good, bad = classify_events(raw_frame(spark, [GOOD_BUY, bad_buy]), MIN, MAX).collect()
    assert good["event_time"] == dt.datetime(2025, 6, 1, 10, 0)
    assert (good["price"], good["quantity"], good["order_id"]) == (9.99, 2, "o1")
    assert good["raw"] is None  # bronze keeps the typed values; only quarantine needs the original
    assert (bad["reason"], bad["price"]) == (Reason.BAD_PRICE, -9.99) and '"price":"-9.99"' in bad["raw"]


TEN_UTC = dt.datetime(2025, 6, 1, 10, 0)
TIMES = [  # (raw event_time, stored UTC time or None: unparsable_time)
    ("2025-06-01T10:00:00Z", TEN_UTC),
    ("2025-06-01T12:00:00+02:00", TEN_UTC),
    ("2025-06-01 05:30:00-0430", TEN_UTC),
    ("2025-06-01T10:00:00", TEN_UTC),  # no zone: taken as UTC
    ("1748772000", TEN_UTC),  # epoch seconds
    ("1748772000.25", TEN_UTC + dt.timedelta(milliseconds=250)),
    ("1748772000000", TEN_UTC),  # epoch milliseconds
    ("17487720", None),  # 8 digits: neither seconds nor milliseconds of this era
    ("174877200000000", None),  # microseconds: not accepted
]


def it_stores_zoned_and_epoch_times_in_utc_and_names_the_others_unparsable(spark):
    rows = [(f"t{i}", "u1", raw, "view", "", "", "", "", "") for i, (raw, _) in enumerate(TIMES)]
    classified = classify_events(raw_frame(spark, rows), MIN, MAX).collect()
    assert [r["event_time"] for r in classified] == [expected for _, expected in TIMES]
    reasons = [r["reason"] for r in classified]
    assert reasons == [None if expected else Reason.UNPARSABLE_TIME for _, expected in TIMES]


def it_drops_repeated_event_ids_and_every_row_lands_somewhere(spark):
    rows = [GOOD_VIEW, GOOD_VIEW, GOOD_BUY, CASES[3][0], CASES[8][0]]
    existing = spark.createDataFrame([("e2",)], "event_id string")  # e2 is already in bronze
    labelled = label_rows(classify_events(raw_frame(spark, rows), MIN, MAX), existing)
    counts = count_by_file(labelled).first()
    assert (
        counts["input_rows"],
        counts["bronze_rows"],
        counts["quarantine_rows"],
        counts["duplicate_rows"],
    ) == (
        5,
        1,
        2,
        2,
    )


def it_keeps_the_earliest_of_repeated_event_ids(spark):
    later = ("e1", "u1", "2025-06-01T11:00:00Z", "view", "p9", "c1", "1", "", "")
    labelled = label_rows(classify_events(raw_frame(spark, [later, GOOD_VIEW]), MIN, MAX))
    statuses = labelled.select("product_id", "status").orderBy("product_id")
    expected = spark.createDataFrame(
        [("p1", "bronze"), ("p9", "duplicate")], "product_id string, status string"
    )
    assert_df_equality(statuses, expected, ignore_nullable=True)


def it_parses_each_raw_value_once_however_many_rules_read_it(spark):
    labelled = label_rows(classify_events(raw_frame(spark, [GOOD_VIEW, GOOD_BUY]), MIN, MAX))
    plan = labelled._jdf.queryExecution().optimizedPlan().toString()
    # Spark evaluates an expression as often as it is written into the plan: the time parse (read
    # by two rules and the output) and the reason (read by raw, the dedupe and the status) once.
    assert plan.count("timestamp_millis(") == 1, plan
    assert plan.count(f"THEN {Reason.MISSING_ORDER_ID}") == 1, plan
