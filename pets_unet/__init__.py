"""The artifact types this pipeline adds to TFX's, importable by their type names.

In a Kubeflow Pipelines or Vertex AI container, TFX's entrypoint turns a type it does not know
into a Python class by importing the type's name as a class path (tensorflow/tfx#5744, #6102),
and KFP wants `<namespace>.<Name>` type names; so `pets_unet.Quarantine` lives at exactly that
path. `system.HTML` is the name both platforms' UIs display as a web page; it cannot be a class
path, so `pets_unet.entrypoint` tells TFX where its class is (TYPE_CLASSES).
"""
from tfx.types.artifact import Artifact
from tfx.types.value_artifact import ValueArtifact


class Quarantine(Artifact):
    """Examples set aside by ExampleQuarantine, with the reason for each."""

    TYPE_NAME = "pets_unet.Quarantine"


class HtmlReport(ValueArtifact):
    """One self-contained HTML page, stored as a file at the artifact's URI."""

    TYPE_NAME = "system.HTML"

    def encode(self, value: str) -> bytes:
        return value.encode("utf-8")

    def decode(self, serialized_value: bytes) -> str:
        return serialized_value.decode("utf-8")


# Type name -> class path, for every type above (the container entrypoint's lookup table).
TYPE_CLASSES = {cls.TYPE_NAME: f"{__name__}.{cls.__name__}" for cls in (Quarantine, HtmlReport)}
