"""The configuration object: presets, validation and the dict form TFX carries."""
import json

import pytest

from model_code.config import DEMO, PRESETS, SEED, SMOKE, Config, get_preset


def test_seed_preset_is_the_tutorial_configuration():
    assert (SEED.input_size, SEED.mask_size, SEED.num_filters_start, SEED.num_unet_blocks) == \
        (100, 60, 64, 3)
    assert (SEED.batch_size, SEED.num_epochs) == (50, 25)
    assert SEED.lr_schedule_fractions == (0.2, 0.5, 0.8)
    assert SEED.lr_schedule_values == (3e-4, 1e-4, 1e-5, 1e-6)
    assert SEED.class_weights == (1.0, 1.0, 2.0)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_survive_a_json_round_trip(name):
    config = get_preset(name)
    assert Config.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_presets_keep_the_tutorial_geometry():
    for config in (DEMO, SMOKE):
        assert (config.input_size, config.mask_size) == (100, 60)


def test_bad_configurations_are_named():
    with pytest.raises(ValueError, match="unknown preset 'fast'"):
        get_preset("fast")
    with pytest.raises(ValueError, match="unknown configuration keys"):
        Config.from_dict({"num_epoch": 3})
    with pytest.raises(ValueError, match="class_weights"):
        Config(class_weights=(1.0, 2.0))


def test_transform_gets_only_what_preprocessing_depends_on():
    import dataclasses

    from model_code.config import CUSTOM_CONFIG_KEY, PREPROCESSING_FIELDS

    longer = dataclasses.replace(SMOKE, num_epochs=9, lr_schedule_values=(1.0, 0.1, 0.01, 0.001))
    assert longer.as_custom_config(PREPROCESSING_FIELDS) == \
        SMOKE.as_custom_config(PREPROCESSING_FIELDS)
    partial = Config.from_custom_config(SMOKE.as_custom_config(PREPROCESSING_FIELDS))
    assert partial.mask_size == SMOKE.mask_size
    assert set(SMOKE.as_custom_config(PREPROCESSING_FIELDS)[CUSTOM_CONFIG_KEY]) == \
        set(PREPROCESSING_FIELDS)
