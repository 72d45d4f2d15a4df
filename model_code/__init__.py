"""Model code that runs inside TFX components: config, U-Net, preprocessing, training, metrics."""
