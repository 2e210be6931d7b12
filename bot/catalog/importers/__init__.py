"""Readers for the national portal exports: crawl, portal lists, Ministry of Defence."""
