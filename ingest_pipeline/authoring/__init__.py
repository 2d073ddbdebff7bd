"""Writing filespecs: drafting one from a sample, checking, importing, exporting and comparing them (issue 11)."""
