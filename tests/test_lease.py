"""The refresh lease (ops.leases): one holder, named to whoever is refused; freed on release, on
expiry and when its holder died on this host; one winner when claims race, in one process on both
engines and between two driver processes on s3a://, where concurrent appends and merges lose no
row either."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import functions as F

import ltv_spark.tables.base as table_base
from ltv_spark.config import TablesConfig
from ltv_spark.jvm_jars import LOG_STORE_CLASS
from ltv_spark.lease import LEASE_SCHEMA, LEASES, Lease, Locked
from ltv_spark.tables import open_store
from tests.conftest import require_jvm_engine
from tests.s3_racer import ROWS_PER_RACER

ROOT = Path(__file__).resolve().parent.parent


def it_refuses_a_second_claim_naming_the_holder(spark, store):
    refused = rf"holds the 'refresh' lease .*: pid {os.getpid()} on .*the first job"
    with Lease(spark, store, "refresh", "the first job"), pytest.raises(Locked, match=refused):
        Lease(spark, store, "refresh", "the second job").claim()
    assert store.read(LEASES).count() == 2  # the claim and its release


def it_frees_the_lease_when_its_holder_leaves_even_on_an_error(spark, store):
    with pytest.raises(RuntimeError, match="the job failed"), Lease(spark, store, "refresh", "a failing job"):
        raise RuntimeError("the job failed")
    with Lease(spark, store, "refresh", "the next job") as lease:
        assert lease.current().purpose == "the next job" and not lease.current().released


def it_takes_over_an_expired_lease_which_the_old_holder_cannot_release(spark, store):
    stale = Lease(spark, store, "refresh", "a job that hung", minutes=0)
    stale.claim()
    fresh = Lease(spark, store, "refresh", "the next day's job")
    fresh.claim()
    stale.release()  # epoch 2 is the fresh claim: the stale release of it is refused
    assert fresh.current().purpose == "the next day's job" and not fresh.current().released
    with pytest.raises(Locked, match="the next day's job"):
        Lease(spark, store, "refresh", "a third job").claim()


def it_takes_over_a_lease_whose_holder_died_on_this_host(spark, store):
    dead_pid = int(
        subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True).stdout
    )
    Lease(spark, store, "refresh", "a job killed with SIGKILL").claim()
    claim = store.read(LEASES).withColumn("pid", F.lit(dead_pid).cast("long"))
    store.overwrite(claim.select(*[c.split()[0] for c in LEASE_SCHEMA.split(", ")]), LEASES)
    with Lease(spark, store, "refresh", "the re-run") as lease:
        assert lease.current().epoch == 2 and lease.current().pid == os.getpid()


def it_lets_only_one_of_two_claims_racing_for_the_same_epoch_win(spark, store, monkeypatch):
    Lease(spark, store, "refresh", "yesterday").__enter__().release()  # the table exists: epoch 2
    second = Lease(spark, store, "refresh", "the job that commits first")

    def the_other_job_commits_first(name: str) -> None:
        monkeypatch.setattr(table_base, "before_commit", None)
        second.claim()  # reads epoch 2 too, and commits epoch 3 before the first job does

    monkeypatch.setattr(table_base, "before_commit", the_other_job_commits_first)
    with pytest.raises(Locked, match="the job that commits first"):
        Lease(spark, store, "refresh", "the job that commits second").claim()
    epoch_three = store.read(LEASES).filter(F.col("epoch") == 3).collect()
    assert [row["purpose"] for row in epoch_three] == ["the job that commits first"]


def it_refuses_to_overwrite_a_commit_file_on_s3a(spark, s3):
    """The log store ``make`` builds: S3 itself refuses a second N.json (no exists-then-write)."""
    require_jvm_engine(spark)
    assert spark.conf.get("spark.delta.logStore.s3a.impl") == LOG_STORE_CLASS
    key = "logstore/_delta_log/00000000000000000000.json"
    s3.client().put_object(Bucket="ltv-test", Key=key, Body=b'{"first":"writer"}\n')
    jvm, gateway = spark._jvm, spark.sparkContext._gateway
    hadoop_conf = spark._jsc.hadoopConfiguration()
    log_store_class = jvm.org.apache.spark.util.Utils.classForName(LOG_STORE_CLASS, True, False)
    types = gateway.new_array(jvm.java.lang.Class, 1)
    types[0] = hadoop_conf.getClass()
    arguments = gateway.new_array(jvm.java.lang.Object, 1)
    arguments[0] = hadoop_conf
    log_store = log_store_class.getConstructor(types).newInstance(arguments)
    lines = jvm.java.util.ArrayList()
    lines.add('{"second":"writer"}')
    path = jvm.org.apache.hadoop.fs.Path(s3.uri(key))
    with pytest.raises(Exception, match="FileAlreadyExistsException"):
        log_store.write(path, lines.iterator(), False, hadoop_conf)
    assert s3.client().get_object(Bucket="ltv-test", Key=key)["Body"].read() == b'{"first":"writer"}\n'
    log_store.write(path, lines.iterator(), True, hadoop_conf)  # overwrite=True (checkpoint hints) does
    assert s3.client().get_object(Bucket="ltv-test", Key=key)["Body"].read() == b'{"second":"writer"}\n'


def it_lets_exactly_one_of_two_drivers_racing_on_s3a_proceed_and_loses_no_row(spark, s3, config, tmp_path):
    require_jvm_engine(spark)
    root, ready = s3.uri("racing/warehouse"), tmp_path / "ready"
    ready.mkdir()
    overrides = ["spark.master=local[1]", "spark.shuffle_partitions=1", "spark.driver_memory=1g"]
    overrides += ["spark.jvm_connector=true", *s3.spark_overrides()]
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    racers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.s3_racer", root, str(ready), str(racer), "2", "--", *overrides],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=environment,
        )  # fmt: skip
        for racer in (1, 2)
    ]
    outcomes = []
    for racer in racers:
        out, err = racer.communicate(timeout=300)
        assert racer.returncode == 0, err[-3000:]
        outcomes.append(json.loads(out.strip().splitlines()[-1]))
    won = [o for o in outcomes if o["lease"] == "won"]
    refused = [o for o in outcomes if o["lease"].startswith("refused")]
    print("racers:", json.dumps(outcomes))
    assert len(won) == 1 and len(refused) == 1, outcomes
    assert re.search(rf"racer {won[0]['racer']}\b", refused[0]["lease"]), outcomes  # names the holder

    store = open_store(spark, TablesConfig(engine="spark-delta", root=root))
    appended = store.read("test.appends")
    assert appended.count() == 2 * ROWS_PER_RACER
    assert appended.select("racer", "i").distinct().count() == 2 * ROWS_PER_RACER
    assert sorted(r["racer"] for r in store.read("test.merged").collect()) == [1, 2]
    assert store.read(LEASES).count() == 1  # one claim committed; the loser's was never written
