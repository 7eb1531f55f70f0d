"""describe the decile calibration: knots from Spark equal the array deciles, the map keeps the
ranking exactly, and it undoes a model that is right in order but wrong in level."""

from __future__ import annotations

import numpy as np
import pytest

from ltv_spark.calibration import MIN_SLOPE, DecileCalibration, miscalibration_spread, shrunk_toward_raw


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
    truth = np.repeat(np.linspace(1.0, 60.0, 10), 8)  # exact within each decile: nothing to shrink
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


def it_shrinks_a_noisy_deciles_knot_toward_the_raw_prediction(spark):
    rng = np.random.default_rng(5)
    predicted = np.repeat(np.arange(1.0, 11.0), 50)  # ten deciles of 50 users
    actual = 2.0 * predicted  # nine deciles exactly twice the prediction: no sampling noise
    top = predicted == 10.0
    actual[top] = rng.lognormal(0.0, 2.0, top.sum()) * 10.0  # one heavy-tailed, noisy decile
    calibration = DecileCalibration.fit(scored_frame(spark, predicted, actual))
    assert calibration.actual[:9] == pytest.approx(2.0 * np.arange(1.0, 10.0))
    raw_mean = actual[top].mean()
    d = raw_mean / 10.0 - 1
    v = actual[top].var(ddof=1) / (50 * 10.0**2)
    tau2 = miscalibration_spread(np.r_[np.ones(9), d], np.r_[np.zeros(9), v])
    assert 9 / tau2 + d**2 / (tau2 + v) == pytest.approx(10)  # the Paule-Mandel equation holds
    assert calibration.actual[9] == pytest.approx(10.0 * (1 + d * tau2 / (tau2 + v)))
    assert abs(calibration.actual[9] - 10.0) < abs(raw_mean - 10.0)  # nearer the raw prediction


# The deciles (mean raw prediction, mean actual value, variance of the actual value, users) of a
# weekly-plan Transformer of the demo world on its validation cutoff (seed 7, lr 0.001, 2026-12-07):
# it predicts 1.27x the total, 0.70x in the top decile; the lowest decile's relative variance is 0.17.
MEASURED_DECILES = [
    (0.3476, 0.3692, 31.88, 1523),
    (1.389, 1.375, 113.8, 1523),
    (3.989, 2.95, 280.0, 1523),
    (8.71, 8.671, 1418.0, 1523),
    (15.93, 16.02, 2674.0, 1523),
    (25.97, 21.8, 2930.0, 1523),
    (39.34, 36.26, 6747.0, 1523),
    (57.75, 54.11, 10250.0, 1523),
    (91.22, 71.36, 13460.0, 1523),
    (232.3, 163.9, 44070.0, 1523),
]


def it_corrects_the_level_although_one_decile_is_noisy_in_relative_terms():
    predicted, actual, variance, users = (np.array(column) for column in zip(*MEASURED_DECILES, strict=True))
    d = actual / predicted - 1
    v = variance / (users * predicted**2)
    assert np.mean(d**2 - v) < 0  # the plain moment estimate: no spread, every knot would stay raw
    assert miscalibration_spread(d, v) == pytest.approx(0.0205, abs=0.0005)
    shrunk = shrunk_toward_raw(predicted, actual, variance, users)
    assert shrunk[9] == pytest.approx(actual[9], rel=0.02)  # well measured: keeps its correction
    assert shrunk[0] == pytest.approx(predicted[0], rel=0.01)  # the noisy lowest decile stays near raw
    assert users @ predicted / (users @ actual) == pytest.approx(1.266, abs=0.001)  # raw total / true
    assert users @ shrunk / (users @ actual) == pytest.approx(1.0, abs=0.015)  # calibrated: 1.011


def it_finds_no_spread_within_the_sampling_noise_and_the_exact_one_without_noise():
    assert miscalibration_spread(np.array([0.1, -0.1]), np.array([0.5, 0.5])) == 0.0
    assert miscalibration_spread(np.array([0.3, -0.3]), np.array([0.0, 0.0])) == pytest.approx(0.09)
    assert miscalibration_spread(np.array([]), np.array([])) == 0.0


def it_keeps_the_raw_prediction_where_no_miscalibration_stands_out_of_the_noise():
    predicted = np.array([1.0, 2.0, 3.0])
    actual = np.array([1.1, 1.8, 3.3])
    variance = np.array([4.0, 9.0, 16.0])  # sampling variance far above the miscalibrations
    shrunk = shrunk_toward_raw(predicted, actual, variance, np.array([10, 10, 10]))
    assert shrunk == pytest.approx(predicted)
