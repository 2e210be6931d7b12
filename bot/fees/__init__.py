"""Fees: which amount applies to a procedure, in a province, for a citizen's situation."""
