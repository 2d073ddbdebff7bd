"""Writing filespecs: drafting one from a sample (`describe`), checking one (`check-spec`), its JSON Schema."""
