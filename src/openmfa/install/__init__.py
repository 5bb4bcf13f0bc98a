"""Installing and upgrading a node: config merge, releases, backups around them."""
