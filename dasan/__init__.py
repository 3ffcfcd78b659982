"""Dasan Assist command line (`dasan`)."""
