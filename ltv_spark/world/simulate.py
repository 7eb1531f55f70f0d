"""Turn a user's hidden parameters into the raw events a platform would log (and some dirt).

Output rows are strings, as a raw drop has them; ``sort_ms`` and ``day`` are helpers for writing
files in a fixed order and are not part of the drop.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np
import pandas as pd

from ltv_spark.config import BtydWorldConfig
from ltv_spark.contract import RAW_COLUMNS
from ltv_spark.world.btyd import draw_customer, purchase_rows
from ltv_spark.world.model import (
    BUY_LAG_DAYS,
    FIRST_ORDER_PROB,
    Catalog,
    UserParams,
    draw_user,
    engagement,
    make_catalog,
    season,
    user_rng,
)

EVENT_COLUMNS = RAW_COLUMNS  # the generator writes drops in the event contract's columns
HELPER_COLUMNS = ("sort_ms", "day", "malformed")
HOURLY_WEIGHT = np.array([1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 5, 5, 6, 6, 5, 5, 5, 6, 8, 9, 9, 7, 4, 2], float)
DIRT_KINDS = (
    "missing_event_id",
    "missing_user",
    "unparsable_time",
    "time_out_of_range",
    "unknown_event_type",
    "bad_price",
    "bad_quantity",
    "missing_order_id",
    "malformed_line",
    "duplicate",
)
_PHASE_VIEW, _PHASE_CART, _PHASE_PURCHASE = 0, 1, 2
REFUND_DELAY_MEAN_DAYS = 10  # a refund comes 1 + Poisson(10) days (and part of a day) after its order


def user_id_of(user_index: int) -> str:
    return f"u{user_index:08d}"


def simulate_user(
    user: UserParams, catalog: Catalog, seed: int, start: dt.date, days: int, dirty_rate: float = 0.0
) -> pd.DataFrame:
    """All events of one user over the world's days, sorted in time (dirt applied if asked)."""
    events, _, rng = simulated_sessions(user, catalog, seed, start, days)
    if events is None:
        return _empty()
    return _finish(user.user_index, events, rng, dirty_rate, start)


def simulated_sessions(
    user: UserParams, catalog: Catalog, seed: int, start: dt.date, days: int
) -> tuple[pd.DataFrame | None, np.ndarray, np.random.Generator]:
    """The simulator's own record of a user: (events before rendering, each session's day, the rng).

    The events keep the simulator's columns (``session``, ``product``, ``event_type``, ``quantity``,
    ``order``, ``copy``: a view or cart repeated for an ordered item, not a draw of its own), which
    ltv_spark.world.observable reads; None when the user has no session at all.
    """
    rng = user_rng(seed, user.user_index, 1)
    day = np.arange(user.signup_day, days)
    lift = season(start, day)
    browse = engagement(day, user.decline_day, user.decay_days)
    buy = engagement(day, user.decline_day + BUY_LAG_DAYS, user.decay_days)
    n_browse = rng.poisson(user.session_rate * browse * lift)
    n_orders = rng.poisson(user.order_rate * buy * lift)
    if day.size:
        n_orders[0] += int(rng.random() < FIRST_ORDER_PROB)
    session_day = np.concatenate([np.repeat(day, n_browse), np.repeat(day, n_orders)])
    is_order = np.concatenate([np.zeros(n_browse.sum(), bool), np.ones(n_orders.sum(), bool)])
    if session_day.size == 0:
        return None, session_day, rng
    events = _session_events(user, catalog, rng, session_day, is_order)
    events = _concat([events, _refunds(user, rng, events, days)])
    events = _take(events, np.lexsort((events["seq"], events["phase"], events["sort_ms"])))
    return pd.DataFrame(events), session_day, rng


def simulate_partition(seed: int, start: dt.date, days: int, dirty_rate: float):
    """A mapInPandas function: batches of ``id`` (user indexes) -> their events."""

    def simulate(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        catalog = make_catalog(seed)
        for batch in batches:
            frames = [
                simulate_user(draw_user(seed, int(i), days), catalog, seed, start, days, dirty_rate)
                for i in batch["id"]
            ]
            if frames:
                yield pd.concat(frames, ignore_index=True)

    return simulate


def simulate_btyd_partition(seed: int, start: dt.date, days: int, dirty_rate: float, params: BtydWorldConfig):
    """A mapInPandas function for the purchases-only world (ltv_spark.world.btyd): ids -> purchases."""

    def simulate(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            frames = []
            for index in batch["id"]:
                customer = draw_customer(seed, int(index), days, params)
                rng = user_rng(seed, customer.user_index, 11)
                frames.append(_finish(customer.user_index, purchase_rows(customer), rng, dirty_rate, start))
            if frames:
                yield pd.concat(frames, ignore_index=True)

    return simulate


Columns = dict[str, np.ndarray]  # one user's events, column by column, all of one length


def _session_events(
    user: UserParams,
    catalog: Catalog,
    rng: np.random.Generator,
    session_day: np.ndarray,
    is_order: np.ndarray,
) -> Columns:
    n_sessions = session_day.size
    hour = rng.choice(24, size=n_sessions, p=HOURLY_WEIGHT / HOURLY_WEIGHT.sum())
    session_start_s = session_day * 86400 + hour * 3600 + rng.integers(0, 3600, n_sessions)
    intensity = engagement(session_day, user.decline_day, user.decay_days)
    n_views = 1 + rng.poisson(user.views_per_session * intensity)
    view_session = np.repeat(np.arange(n_sessions), n_views)
    view_product = _pick_products(rng, user, catalog, view_session.size)
    carted = rng.random(view_session.size) < user.cart_prob * intensity[view_session]
    order_sessions = np.flatnonzero(is_order)
    n_items = 1 + rng.poisson(user.extra_items, order_sessions.size)
    item_session = np.repeat(order_sessions, n_items)
    item_product = _pick_products(rng, user, catalog, item_session.size)
    item_quantity = 1 + rng.poisson(user.extra_quantity, item_session.size)
    order_number = np.repeat(np.arange(order_sessions.size), n_items)

    events = _concat(
        [
            _part(view_session, view_product, "view", _PHASE_VIEW),
            _part(view_session[carted], view_product[carted], "cart", _PHASE_CART),
            _part(item_session, item_product, "view", _PHASE_VIEW, copy=True),
            _part(item_session, item_product, "cart", _PHASE_CART, copy=True),
            _part(item_session, item_product, "purchase", _PHASE_PURCHASE, item_quantity, order_number),
        ]
    )
    events = _take(events, np.lexsort((events["seq"], events["phase"], events["session"])))  # stable
    session = events["session"]
    gaps = 10 + rng.exponential(80.0, session.size)
    first = np.concatenate([[True], session[1:] != session[:-1]])  # sorted: a session's first event
    offset = np.cumsum(gaps)
    offset -= np.maximum.accumulate(np.where(first, offset, 0.0))  # restart the clock per session
    events["sort_ms"] = ((session_start_s[session] + offset) * 1000).astype(np.int64)
    events["price"] = catalog.product_price[events["product"]]
    events["order_key"] = np.where(events["order"] >= 0, events["order"], -1)
    return events


def _part(session, product, event_type, phase, quantity=None, order=None, copy=False) -> Columns:
    n = len(session)
    return {
        "copy": np.full(n, copy),
        "session": session,
        "product": product,
        "event_type": np.full(n, event_type, dtype=object),
        "phase": np.full(n, phase, dtype=np.int64),
        "seq": np.arange(n),
        "quantity": quantity if quantity is not None else np.zeros(n, np.int64),
        "order": order if order is not None else np.full(n, -1, dtype=np.int64),
    }


def _concat(parts: list[Columns]) -> Columns:
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def _take(events: Columns, rows: np.ndarray) -> Columns:
    """The events at ``rows`` (positions or a mask), every column alike."""
    return {name: values[rows] for name, values in events.items()}


def _pick_products(rng: np.random.Generator, user: UserParams, catalog: Catalog, n: int) -> np.ndarray:
    category = rng.choice(user.category_pref.size, size=n, p=user.category_pref)
    per_category = catalog.product_category.size // user.category_pref.size
    return category * per_category + rng.integers(0, per_category, n)


def _refunds(user: UserParams, rng: np.random.Generator, events: Columns, days: int) -> Columns:
    """Whole orders refunded 1 + Poisson(10) days after purchase, when that is inside the world."""
    is_purchase = events["event_type"] == "purchase"
    orders = np.unique(events["order"][is_purchase])  # ascending
    refunded = orders[rng.random(orders.size) < user.refund_prob]
    delay_ms = (1 + rng.poisson(REFUND_DELAY_MEAN_DAYS, refunded.size)) * 86_400_000 + rng.integers(
        0, 86_400_000, refunded.size
    )
    rows = _take(events, is_purchase & np.isin(events["order"], refunded))
    rows["sort_ms"] = rows["sort_ms"] + delay_ms[np.searchsorted(refunded, rows["order"])]
    rows["event_type"] = np.full(rows["sort_ms"].size, "refund", dtype=object)
    rows["phase"] = np.full(rows["sort_ms"].size, 3, dtype=np.int64)
    return _take(rows, rows["sort_ms"] < days * 86_400_000)


def _finish(
    user_index: int, events: pd.DataFrame, rng: np.random.Generator, dirty_rate: float, start: dt.date
) -> pd.DataFrame:
    """Render the contract's string columns, then apply dirt."""
    uid = user_id_of(user_index)
    n = len(events)
    world_ms = events["sort_ms"].to_numpy()
    is_order = events["event_type"].isin(["purchase", "refund"]).to_numpy()
    order = events["order"].to_numpy()
    out = pd.DataFrame(
        {
            "event_id": [f"{uid}-{i:06d}" for i in range(n)],
            "user_id": uid,
            "event_time": _iso(world_ms, start),
            "event_type": events["event_type"].to_numpy(),
            "product_id": [f"p{p:05d}" for p in events["product"].to_numpy()],
            "category": [f"c{c:02d}" for c in events["product"].to_numpy() // 50],
            "price": [f"{p:.2f}" for p in events["price"].to_numpy()],
            "quantity": np.where(is_order, events["quantity"].astype(str).to_numpy(), ""),
            "order_id": np.where(is_order, [f"o{uid[1:]}-{o:05d}" for o in order], ""),
            "sort_ms": world_ms,
            "day": world_ms // 86_400_000,
            "malformed": False,
        }
    )
    return _add_dirt(out, rng, dirty_rate) if dirty_rate > 0 else out


def _iso(world_ms: np.ndarray, start: dt.date) -> list[str]:
    """Milliseconds since the world's start -> ISO 8601 UTC strings (the world's clock is UTC)."""
    instants = np.datetime64(start.isoformat(), "ms") + world_ms.astype("timedelta64[ms]")
    return [s + "Z" for s in np.datetime_as_string(instants, unit="ms")]


def _add_dirt(events: pd.DataFrame, rng: np.random.Generator, rate: float) -> pd.DataFrame:
    """Turn about ``rate`` of the rows into one contract violation each (or a replayed duplicate)."""
    dirty = np.flatnonzero(rng.random(len(events)) < rate)
    if dirty.size == 0:
        return events
    kinds = rng.integers(0, len(DIRT_KINDS), dirty.size)
    duplicates = []
    for row, kind in zip(dirty, kinds, strict=True):
        name = DIRT_KINDS[kind]
        if name == "duplicate":
            duplicates.append(row)
        elif name == "malformed_line":
            events.at[row, "malformed"] = True
        else:
            column, value = _DIRT_VALUES[name](events.loc[row])
            events.at[row, column] = value
    if duplicates:
        events = pd.concat([events, events.loc[duplicates]], ignore_index=True)
        events = events.sort_values(["sort_ms", "event_id"], kind="stable").reset_index(drop=True)
    return events


_DIRT_VALUES = {
    "missing_event_id": lambda row: ("event_id", ""),
    "missing_user": lambda row: ("user_id", ""),
    "unparsable_time": lambda row: ("event_time", row["event_time"].replace("T", "X")),
    "time_out_of_range": lambda row: ("event_time", "1970-01-01T00:00:00.000Z"),
    "unknown_event_type": lambda row: ("event_type", "click"),
    "bad_price": lambda row: ("price", "-" + row["price"]),
    "bad_quantity": lambda row: ("quantity", "0"),
    "missing_order_id": lambda row: ("order_id", "") if row["order_id"] else ("quantity", "-1"),
}


def _empty() -> pd.DataFrame:
    columns = {c: pd.Series(dtype=object) for c in EVENT_COLUMNS}
    columns.update(
        sort_ms=pd.Series(dtype=np.int64), day=pd.Series(dtype=np.int64), malformed=pd.Series(dtype=bool)
    )
    return pd.DataFrame(columns)
