"""The built-in pruning methods: every module here registers its methods against prunebench.api
(the method registry imports them all on its first lookup)."""
