"""Segmentation metrics against a hand-computed case, with TFMA-style per-example weights."""
import numpy as np
import pytest
import tensorflow as tf

from model_code.metrics import PixelClassIoU, PixelConfusion, PixelDice, PixelMeanIoU

# Two 2x3 label maps and predictions (class ids 0 pet, 1 background, 2 border).
LABELS = np.array([[[0, 0, 1], [1, 2, 2]],
                   [[0, 1, 1], [1, 1, 2]]])
PREDICTED = np.array([[[0, 1, 1], [1, 2, 0]],
                      [[0, 1, 1], [2, 1, 2]]])
# Confusion matrix counted by hand (rows true, columns predicted). Per class:
#   pet        TP 2, FP 1, FN 1 -> IoU 2/4, Dice 4/6
#   background TP 5, FP 1, FN 1 -> IoU 5/7, Dice 10/12
#   border     TP 2, FP 1, FN 1 -> IoU 2/4, Dice 4/6
CM = np.array([[2, 1, 0],
               [0, 5, 1],
               [1, 0, 2]])
WEIGHTS = np.ones((2, 1), np.float32)  # what TFMA passes: one weight per example


def _scores(class_indexs):
    return tf.one_hot(class_indexs, 3) * 0.9 + 0.05


def _value(metric):
    metric.update_state(tf.constant(LABELS), _scores(PREDICTED), tf.constant(WEIGHTS))
    return float(metric.result())


def test_hand_counted_confusion_matrix_is_right():
    counted = np.zeros((3, 3), int)
    for t, p in zip(LABELS.ravel(), PREDICTED.ravel()):
        counted[t, p] += 1
    np.testing.assert_array_equal(counted, CM)


@pytest.mark.parametrize("class_index, iou", [(0, 2 / 4), (1, 5 / 7), (2, 2 / 4)])
def test_iou_per_class(class_index, iou):
    assert _value(PixelClassIoU(num_classes=3, class_index=class_index)) == pytest.approx(iou)


@pytest.mark.parametrize("class_index, dice", [(0, 4 / 6), (1, 10 / 12), (2, 4 / 6)])
def test_dice_per_class(class_index, dice):
    assert _value(PixelDice(num_classes=3, class_index=class_index)) == pytest.approx(dice)


def test_mean_iou():
    assert _value(PixelMeanIoU(num_classes=3)) == pytest.approx((2 / 4 + 5 / 7 + 2 / 4) / 3)


@pytest.mark.parametrize("true_class, predicted_class", [(t, p) for t in range(3)
                                                         for p in range(3)])
def test_confusion_cells_are_row_normalised(true_class, predicted_class):
    metric = PixelConfusion(num_classes=3, true_class=true_class, predicted_class=predicted_class)
    expected = CM[true_class, predicted_class] / CM[true_class].sum()
    assert _value(metric) == pytest.approx(expected)


def test_example_weights_count_whole_examples():
    metric = PixelClassIoU(num_classes=3, class_index=0)
    metric.update_state(tf.constant(LABELS), _scores(PREDICTED), tf.constant([[1.0], [0.0]]))
    # Only the first example counts: pet TP 1, FP 1 (border->pet), FN 1 (pet->background).
    assert float(metric.result()) == pytest.approx(1 / 3)


def test_metrics_survive_a_config_round_trip():
    for metric in (PixelMeanIoU(3), PixelClassIoU(3, 2, name="iou_border"), PixelDice(3, 1),
                   PixelConfusion(3, 0, 2)):
        clone = type(metric).from_config(metric.get_config())
        assert clone.get_config() == metric.get_config()
