"""Exported artifacts: what a user deploys and what every objective is measured on."""
