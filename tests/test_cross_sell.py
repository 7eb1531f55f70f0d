"""describe next-category propensity: the label, the category history, the vocabulary, the metrics
(per-category AUC, top-k hit rate) and the three baselines, on hand-made users."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from ltv_spark.baselines.categories import CO_PURCHASE, PAST_CATEGORIES, POPULARITY, category_baselines
from ltv_spark.contract import BRONZE_SCHEMA
from ltv_spark.cross_sell import category_metrics, category_targets, category_vocabulary, history_vector
from ltv_spark.features import CATEGORY_HISTORY, HISTORY_TYPE, category_history
from ltv_spark.labels import user_labels

CUTOFF = dt.date(2025, 8, 1)
T = dt.datetime(2025, 8, 1)
EVENT_COLUMNS = "user_id string, event_time timestamp, event_type string, category string"


def bronze(spark, rows):
    """Bronze rows from (user, time, type, category, order_id)."""
    full = [
        (
            f"e{i}",
            user,
            time,
            kind,
            "p1",
            category,
            10.0,
            1 if kind != "view" else None,
            order,
            "f",
            T,
            0,
            time.date(),
        )
        for i, (user, time, kind, category, order) in enumerate(rows)
    ]
    return spark.createDataFrame(full, BRONZE_SCHEMA)


def it_labels_the_distinct_categories_bought_in_the_horizon(spark):
    events = bronze(
        spark,
        [
            ("u1", dt.datetime(2025, 7, 1), "purchase", "toys", "o0"),  # before T: history, not label
            ("u1", dt.datetime(2025, 8, 2), "purchase", "shoes", "o1"),
            ("u1", dt.datetime(2025, 8, 3), "purchase", "books", "o2"),
            ("u1", dt.datetime(2025, 8, 4), "purchase", "shoes", "o3"),
            ("u1", dt.datetime(2025, 8, 5), "view", "games", None),  # viewed, not bought
            ("u1", dt.datetime(2025, 9, 30), "purchase", "food", "o4"),  # after the horizon
            ("u2", dt.datetime(2025, 7, 1), "view", "toys", None),  # active, buys nothing
        ],
    )
    labels = {r["user_id"]: r["next_categories"] for r in user_labels(events, CUTOFF, 30).collect()}
    assert labels == {"u1": ["books", "shoes"], "u2": []}


def it_gives_each_category_its_share_of_the_users_weighted_events(spark):
    events = spark.createDataFrame(
        [
            ("u1", dt.datetime(2025, 7, 1), "purchase", "toys"),  # weight 1
            ("u1", dt.datetime(2025, 7, 1), "view", "toys"),  # 0.1
            ("u1", dt.datetime(2025, 7, 2), "cart", "books"),  # 0.3
            ("u1", dt.datetime(2025, 7, 2), "view", "books"),  # 0.1
            ("u1", dt.datetime(2025, 7, 2), "refund", "books"),  # not an interest
            ("u2", dt.datetime(2025, 7, 3), "view", None),  # no category: no history
        ],
        EVENT_COLUMNS,
    )
    history = {r["user_id"]: r[CATEGORY_HISTORY] for r in category_history(events).collect()}
    assert list(history) == ["u1"]
    (books, toys) = history["u1"]  # sorted by category
    assert (books["category"], toys["category"]) == ("books", "toys")
    assert (books["share"], toys["share"]) == pytest.approx((0.4 / 1.5, 1.1 / 1.5))
    row = spark.createDataFrame(
        [(history["u1"], ["books"])], f"{CATEGORY_HISTORY} {HISTORY_TYPE}, next_categories array<string>"
    )
    vectors = row.select(
        history_vector(["toys", "games", "books"]).alias("h"), category_targets(["toys", "books"]).alias("t")
    ).first()
    assert vectors["h"] == pytest.approx([1.1 / 1.5, 0.0, 0.4 / 1.5]) and vectors["t"] == [0.0, 1.0]


def it_picks_the_categories_bought_by_most_users(spark):
    labels = spark.createDataFrame(
        [(["a", "b"],), (["b"],), (["b", "c"],), (["c"],), ([],)], "next_categories array<string>"
    )
    assert category_vocabulary(labels, 2) == ["b", "c"]  # b: 3 buyers, c: 2 (before a: 1)
    assert category_vocabulary(labels, 10) == ["b", "c", "a"]
    single = spark.createDataFrame([(["cd"],), (["cd"],)], "next_categories array<string>")
    assert category_vocabulary(single, 10) == []  # one category (CDNOW): no cross-sell head
    assert category_vocabulary(labels, 0) == []


def it_measures_auc_per_category_and_the_top_k_hit_rate(spark):
    scores = {  # user -> (a, b, c)
        "u1": (0.9, 0.5, 0.1),  # bought a
        "u2": (0.8, 0.1, 0.7),  # bought c: c is 2nd
        "u3": (0.2, 0.3, 0.1),  # bought nothing
        "u4": (0.1, 0.2, 0.3),  # bought a: a is 3rd
    }
    runs = spark.createDataFrame(
        [("m", 1, user, name, s) for user, row in scores.items() for name, s in zip("abc", row, strict=True)],
        "model string, seed int, user_id string, category string, score double",
    )
    bought = spark.createDataFrame([("u1", "a"), ("u2", "c"), ("u4", "a")], "user_id string, category string")
    per_category, summary = category_metrics(runs, bought, top=1)
    auc = {r["category"]: r["auc"] for r in per_category.collect()}
    # a: buyers u1 (0.9), u4 (0.1) against u2 (0.8), u3 (0.2): 2 of 4 pairs ranked right
    assert auc["a"] == pytest.approx(0.5)
    assert auc["c"] == pytest.approx(1.0)  # u2's 0.7 is above every other user's c
    assert auc["b"] is None  # nobody bought b
    row = summary.first()
    assert (row["users"], row["buyers"], row["categories"]) == (4, 3, 3)
    assert row["mean_auc"] == pytest.approx(0.75)  # over the categories with buyers and non-buyers
    assert row["top_k_hit_rate"] == pytest.approx(1 / 3)  # top 1: only u1's holds what they bought
    _, top_two = category_metrics(runs, bought, top=2)
    assert top_two.first()["top_k_hit_rate"] == pytest.approx(2 / 3)  # u2's c is 2nd


def it_ranks_by_popularity_own_history_and_co_purchase(spark):
    """Ten users buy toys with books, ten shoes with games, three shoes alone; newcomer bought toys."""
    rows = []
    for i in range(10):
        for category in ("toys", "books"):
            rows.append((f"tb{i}", dt.datetime(2025, 7, 1 + i), "purchase", category))
        for category in ("shoes", "games"):
            rows.append((f"sg{i}", dt.datetime(2025, 7, 1 + i), "purchase", category))
    rows += [(f"s{i}", dt.datetime(2025, 7, 20), "purchase", "shoes") for i in range(3)]  # most bought
    rows += [("newcomer", dt.datetime(2025, 7, 20), "purchase", "toys")]
    rows += [("late", dt.datetime(2025, 8, 2), "purchase", "books")]  # after the cutoff: not seen
    events = spark.createDataFrame(rows, EVENT_COLUMNS)
    users = spark.createDataFrame([("newcomer",), ("nobody",)], "user_id string")
    categories = ["toys", "books", "shoes", "games"]
    baselines = category_baselines(events, users, CUTOFF, categories, seed=1)
    assert set(baselines) == {POPULARITY, PAST_CATEGORIES, CO_PURCHASE}

    def ranking(name: str, user: str) -> list[str]:
        scores = baselines[name].filter(F.col("user_id") == user)
        assert scores.count() == len(categories)  # every category scored for every user
        return [r["category"] for r in scores.orderBy(F.desc("score"), "category").collect()]

    popular = ranking(POPULARITY, "newcomer")
    assert popular == ranking(POPULARITY, "nobody") and popular[0] == "shoes"
    assert ranking(PAST_CATEGORIES, "newcomer")[0] == "toys"  # what they bought before
    assert ranking(PAST_CATEGORIES, "nobody") == popular  # no history: popularity breaks the ties
    co_purchase = ranking(CO_PURCHASE, "newcomer")
    assert co_purchase.index("books") < co_purchase.index("shoes")  # bought with toys by others
    assert co_purchase.index("books") < co_purchase.index("games")
