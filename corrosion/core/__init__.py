"""Types and plumbing every part uses: annotations, labels, typed config, paths, file access, listing, CSV, rejects."""
