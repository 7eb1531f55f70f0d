"""describe sessionize: a new session after more than the gap, one row per session."""

from __future__ import annotations

import datetime as dt

from chispa import assert_df_equality

from ltv_spark.contract import BRONZE_SCHEMA
from ltv_spark.pipeline import EVENTS, SESSIONS, build_sessions
from ltv_spark.sessions import cap_user_days, sessionize

BASE = dt.datetime(2025, 6, 1, 12, 0)


def event(
    event_id, minutes, user="u1", event_type="view", price=10.0, quantity=None, order=None, category="c1"
):
    time = BASE + dt.timedelta(minutes=minutes)
    return (
        event_id,
        user,
        time,
        event_type,
        "p-" + event_id,
        category,
        price,
        quantity,
        order,
        "f",
        BASE,
        0,
        time.date(),
    )


def events_frame(spark, rows):
    return spark.createDataFrame(rows, BRONZE_SCHEMA)


def starts(sessions):
    return sorted((r["user_id"], r["session_start"], r["n_events"]) for r in sessions.collect())


def it_keeps_a_gap_exactly_at_the_threshold_in_one_session(spark):
    sessions = sessionize(events_frame(spark, [event("a", 0), event("b", 30), event("c", 60.001)]), 30)
    assert starts(sessions) == [("u1", BASE, 2), ("u1", BASE + dt.timedelta(minutes=60.001), 1)]


def it_keeps_a_session_across_midnight_as_one(spark):
    late = [event("a", 11 * 60 + 50), event("b", 12 * 60 + 10)]  # 23:50 and 00:10 the next day
    (session,) = sessionize(events_frame(spark, late), 30).collect()
    assert session["n_events"] == 2
    assert session["session_date"] == dt.date(2025, 6, 1)
    assert session["duration_s"] == 20 * 60


def it_orders_out_of_order_events_by_time(spark):
    rows = [event("c", 100), event("a", 0), event("b", 10)]
    assert starts(sessionize(events_frame(spark, rows), 30)) == [
        ("u1", BASE, 2),
        ("u1", BASE + dt.timedelta(minutes=100), 1),
    ]


def it_handles_one_event_sessions_and_duplicate_timestamps(spark):
    rows = [event("a", 0), event("b", 0, event_type="cart"), event("c", 500), event("d", 0, user="u2")]
    sessions = sessionize(events_frame(spark, rows), 30)
    assert starts(sessions) == [
        ("u1", BASE, 2),
        ("u1", BASE + dt.timedelta(minutes=500), 1),
        ("u2", BASE, 1),
    ]
    first = sessions.filter("user_id = 'u1' AND n_events = 2").first()
    assert (first["n_views"], first["n_carts"], first["duration_s"]) == (1, 1, 0.0)


def it_sums_money_and_names_the_main_category(spark):
    rows = [
        event("a", 0, category="c2"),
        event("b", 1, event_type="purchase", price=5.0, quantity=3, order="o1", category="c1"),
        event("c", 2, event_type="purchase", price=2.0, quantity=1, order="o1", category="c1"),
        event("d", 3, event_type="refund", price=2.0, quantity=1, order="o1", category="c1"),
    ]
    (s,) = sessionize(events_frame(spark, rows), 30).collect()
    assert (s["n_purchases"], s["n_orders"], s["revenue"], s["refunded"]) == (2, 1, 17.0, 2.0)
    assert (s["n_products"], s["n_categories"], s["main_category"]) == (4, 2, "c1")


def it_caps_a_bot_per_user_and_day(spark):
    bot = [event(f"e{i:03d}", i * 0.01, user="bot") for i in range(50)]
    capped = cap_user_days(events_frame(spark, [*bot, event("x", 0)]), 10)
    assert capped.filter("user_id = 'bot'").count() == 10
    assert capped.filter("user_id = 'u1'").count() == 1


def it_rebuilds_only_touched_days_and_equals_a_full_rebuild(spark, store, config):
    days = [
        [event("a", 0), event("b", 11 * 60 + 50)],  # day 1, the second at 23:50
        [event("c", 12 * 60 + 5), event("d", 20 * 60, user="u2")],  # day 2: 00:05 continues it
        [event("e", 36 * 60), event("f", 36 * 60 + 20, user="u2")],  # day 3
    ]
    for batch, rows in enumerate(days):
        batch_rows = [(*row[:11], batch, row[12]) for row in rows]
        store.append(events_frame(spark, batch_rows), EVENTS, partition_by=["event_date"])
        build_sessions(spark, store, config.features)
    full = sessionize(store.read(EVENTS), 30)
    incremental = store.read(SESSIONS)
    assert_df_equality(
        incremental, full.select(*incremental.columns), ignore_row_order=True, ignore_nullable=True
    )
    assert incremental.count() == 5  # u1: a | b+c (across midnight) | e; u2: d | f
    assert build_sessions(spark, store, config.features).days_rebuilt == 0
