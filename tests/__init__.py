"""FlexDash's tests; the folders mirror the rooms of jobs/ (STYLE.md, "Layout")."""
