"""Writing filespecs: drafting, importing, exporting and comparing them (issue 11)."""
