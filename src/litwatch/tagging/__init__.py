"""Tagging texts and papers with the genes, pathways and conditions of a vocabulary."""
