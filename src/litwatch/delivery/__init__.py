"""What leaves litwatch for readers: digests, mail, exports."""
