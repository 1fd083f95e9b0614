"""Models in PyTorch: loading with their task, the families' anatomy, surgery, students, importance, translation."""
