"""The rust-region model: per-pixel rust probability on a frozen ImageNet backbone, boxes from its regions."""
