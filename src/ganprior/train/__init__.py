"""Training loops (encoders now; StyleGAN2 and pix2pixHD to come)."""
