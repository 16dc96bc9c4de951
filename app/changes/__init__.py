"""What changed, for tools that must follow it: the change feed (derived from the audit
chain), its Atom twin, and the check of factor citations against the releases' states."""
