"""The review loop: which photos of a night an inspector should see, as pre-annotations labelling tools open."""
