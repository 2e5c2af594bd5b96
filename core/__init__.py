"""What every app shares and none owns: plain Python, no models, importing no nomaflow app,
so step modules (leaves) may use it too."""
