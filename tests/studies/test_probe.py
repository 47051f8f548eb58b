"""The linear probe: separable features give AUC 1, constant (zeroed) features exactly 0.5."""

import numpy as np

from egtr.studies.probe import linear_probe


def labelled_features(seed: int = 0, pairs: int = 200, width: int = 6):
    rng = np.random.default_rng(seed)
    positive = rng.random(pairs) < 0.3
    features = rng.normal(size=(pairs, width))
    halves = rng.random(pairs) < 0.5
    return features, positive, halves


def test_separable_features_give_auc_one():
    features, positive, halves = labelled_features()
    features[:, 2] += np.where(positive, 3.0, -3.0)  # one informative direction among noise
    result = linear_probe(features, positive, halves)
    assert result.auc > 0.99
    assert result.train_pairs == halves.sum() and result.test_pairs == (~halves).sum()


def test_constant_features_carry_nothing():
    _, positive, halves = labelled_features()
    assert linear_probe(np.zeros((len(positive), 4)), positive, halves).auc == 0.5


def test_noise_features_are_near_chance_on_held_out_pairs():
    features, positive, halves = labelled_features(seed=1, pairs=400)
    assert abs(linear_probe(features, positive, halves).auc - 0.5) < 0.12


def test_a_training_half_with_one_class_gives_no_auc():
    features, positive, halves = labelled_features()
    positive[halves] = False
    assert linear_probe(features, positive, halves).auc is None
