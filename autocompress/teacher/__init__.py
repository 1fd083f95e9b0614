"""What is derived from the teacher once per (teacher, data, settings) and cached for every trial and study: its
translations of the training data (sequence-level KD); `prepare` builds everything ahead of a search."""
