"""Names for the ids in the data: segmentation classes, breeds (TFDS `label`) and `species`."""
from typing import Tuple

# Class ids after Transform (the trimap's 1/2/3 shifted down by one).
CLASS_NAMES: Tuple[str, ...] = ("pet", "background", "border")

SPECIES: Tuple[str, ...] = ("Cat", "Dog")

# TFDS oxford_iiit_pet `label` order (official CLASS_ID - 1); cat breeds are capitalised.
BREEDS: Tuple[str, ...] = (
    "Abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle",
    "Bengal", "Birman", "Bombay", "boxer", "British_Shorthair", "chihuahua", "Egyptian_Mau",
    "english_cocker_spaniel", "english_setter", "german_shorthaired", "great_pyrenees", "havanese",
    "japanese_chin", "keeshond", "leonberger", "Maine_Coon", "miniature_pinscher", "newfoundland",
    "Persian", "pomeranian", "pug", "Ragdoll", "Russian_Blue", "saint_bernard", "samoyed",
    "scottish_terrier", "shiba_inu", "Siamese", "Sphynx", "staffordshire_bull_terrier",
    "wheaten_terrier", "yorkshire_terrier",
)
