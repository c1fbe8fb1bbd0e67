"""TempBalance study: tuned uniform learning rate vs TempBalance (alpha, alpha_farms) on a
low-data CNN, paired over seeds."""
