# Pipeline image for Kubeflow Pipelines / Vertex AI Pipelines (and Dataflow workers, via
# --sdk_container_image). The official TFX 1.16.0 image already has TFX, TF 2.16, TFT, TFMA and
# Beam; this adds the pinned extras and installs this package so `model_code.*` imports work
# and custom artifact types resolve by name (`pets_unet.Quarantine`).
ARG TFX_IMAGE=gcr.io/tfx-oss-public/tfx:1.16.0
FROM ${TFX_IMAGE}

WORKDIR /pipeline
# kubeflow_runner.IMAGE_SETUP_FILE names /pipeline/setup.py in every DirectRunner step's Beam options.
COPY requirements.lock ./
RUN grep -E '^(tf-keras|tensorflow-datasets)==' requirements.lock > extras.txt && \
    pip install --no-cache-dir -r extras.txt
COPY setup.py pyproject.toml README.md ./
COPY model_code/ model_code/
COPY pipeline/ pipeline/
COPY components/ components/
COPY pets_unet/ pets_unet/
# Every step runs `python -m pets_unet.entrypoint` (see kubeflow_runner.py); check it imports,
# and (from /, where the installed package is what imports) that the report's template shipped.
RUN pip install --no-cache-dir --no-deps . && \
    python -c "import model_code.trainer, model_code.preprocessing, pipeline.pipeline, pets_unet.entrypoint" && \
    cd / && python -c "from components import report_page; report_page._template()"
