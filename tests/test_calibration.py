"""describe the decile calibration: knots from Spark equal the array deciles, the map keeps the
ranking exactly, and it undoes a model that is right in order but wrong in level."""

from __future__ import annotations

import numpy as np
import pytest

from ltv_spark.calibration import MIN_SLOPE, DecileCalibration


def scored_frame(spark, predicted, actual):
    rows = [(f"u{i}", float(p), float(a)) for i, (p, a) in enumerate(zip(predicted, actual, strict=True))]
    return spark.createDataFrame(rows, "user_id string, predicted double, actual double").repartition(3)


def it_takes_one_knot_per_decile_of_the_prediction(spark):
    rng = np.random.default_rng(3)
    predicted = rng.gamma(1.0, 5.0, 100)
    actual = predicted * 2 + rng.gamma(1.0, 1.0, 100) * 40  # noisy, in order on average
    calibration = DecileCalibration.fit(scored_frame(spark, predicted, actual))
    blocks = np.sort(predicted).reshape(10, 10)  # ten users per decile
    assert calibration.users == 100
    assert calibration.predicted == pytest.approx(blocks.mean(axis=1))
    assert np.all(np.diff(calibration.actual) > 0)


def it_keeps_tied_predictions_in_one_decile(spark):
    predicted = np.repeat([1.0, 2.0, 3.0], [50, 30, 20])
    calibration = DecileCalibration.fit(scored_frame(spark, predicted, predicted * 4))
    assert calibration.predicted == pytest.approx([1.0, 2.0, 3.0])
    assert calibration.actual == pytest.approx([4.0, 8.0, 12.0])


def it_maps_a_model_off_by_a_constant_factor_onto_the_truth(spark):
    truth = np.linspace(1.0, 60.0, 80)
    calibration = DecileCalibration.fit(scored_frame(spark, 3.0 * truth, truth))
    # every knot lies on y = x / 3, so does every interpolated and extrapolated value
    assert calibration.apply(3.0 * truth) == pytest.approx(truth, rel=1e-12)
    assert calibration.apply(np.array([600.0, 0.0])) == pytest.approx([200.0, 0.0])


def it_pools_deciles_whose_actual_value_falls_and_keeps_the_order_strict(spark):
    predicted = np.arange(1.0, 21.0)  # 2 users per decile
    actual = np.array([1, 1, 2, 2, 9, 9, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9], dtype=float)
    calibration = DecileCalibration.fit(scored_frame(spark, predicted, actual))
    # deciles 2..4 (means 9, 3, 4) pool to their mean 16/3; decile 5's mean 5 is then below it
    # and joins them: (9 + 3 + 4 + 5) / 4 = 5.25 for deciles 2..5
    assert calibration.actual[:2] == pytest.approx([1.0, 2.0])
    assert calibration.actual[2] == pytest.approx(5.25)
    for k in (3, 4, 5):
        step = calibration.actual[k] - calibration.actual[k - 1]
        assert step == pytest.approx(MIN_SLOPE * (calibration.predicted[k] - calibration.predicted[k - 1]))
    assert calibration.actual[6:] == pytest.approx([6.0, 7.0, 8.0, 9.0])
    raw = np.linspace(0.0, 40.0, 4001)
    assert np.all(np.diff(calibration.apply(raw)) > 0)  # the ranking is the raw one


def it_is_the_identity_without_knots_and_reads_back_what_it_wrote(spark, tmp_path):
    raw = np.array([0.5, 2.0, 7.0])
    assert DecileCalibration.read(tmp_path).apply(raw) == pytest.approx(raw)
    assert DecileCalibration.read(tmp_path).describe() == "uncalibrated"
    fitted = DecileCalibration.fit(scored_frame(spark, np.arange(1.0, 31.0), np.arange(1.0, 31.0) / 2))
    fitted.write(tmp_path)
    assert DecileCalibration.read(tmp_path) == fitted
    assert DecileCalibration.fit(scored_frame(spark, [], [])) == DecileCalibration()
