"""The data side of trainers: video files → clip tensors. Imports nothing of the training side."""
