"""Installs the pipeline's code as importable packages.

TFX packages a `module_file`'s folder flat, which breaks imports between our modules; instead the
pipeline refers to installed functions (`model_code.trainer.run_fn`, ...). The same install runs in
the local virtual environment and in the container image used on Kubeflow / Vertex AI.
Pinned dependencies live in requirements.lock (installed with --no-deps, see the Makefile);
the ranges below only document what the code needs.
"""
from setuptools import find_packages, setup

setup(
    name="pets-unet-tfx",
    version="0.1.0",
    description="TFX pipeline that trains, evaluates and pushes a U-Net for Oxford-IIIT Pet segmentation",
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=["pipeline", "pipeline.*", "components", "components.*",
                                    "pets_unet", "pets_unet.*",
                                    "model_code", "model_code.*"]),
    package_data={"components": ["templates/*.j2"]},  # the report page's Jinja2 template
    entry_points={"console_scripts": ["pets-unet-predict=model_code.predict:main",
                                      "pets-unet-batch-predict=model_code.batch_predict:main"]},
    install_requires=[
        "tfx[kfp]==1.16.0",
        "tf-keras==2.16.0",
        "tensorflow-datasets>=4.9,<4.10",
        "pillow",
        "matplotlib",
        "psutil",  # the local runner ends its child processes on Ctrl-C
    ],
)
