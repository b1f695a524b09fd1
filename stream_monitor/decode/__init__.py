"""From raw messages to typed column batches, and the record of what was rejected."""
