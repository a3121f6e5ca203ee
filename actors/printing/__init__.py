"""Printing: the receipt layout, the print jobs kept on disk, and the spooler that prints them once."""
