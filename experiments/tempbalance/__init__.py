"""TempBalance studies: tuned uniform learning rate vs TempBalance (alpha, alpha_farms) on a
low-data CNN (run.py) and in fine-tuning the pretrained MiniLM (finetune.py), paired over seeds."""
